//! Map pins under bpffs: what makes the dataplane's state outlive a restart.
//!
//! aya reopens a pinned map by path without comparing it to the object's
//! definition, so a pin left by a build with a different layout would be
//! reused silently and read with the wrong key or value size. Before loading,
//! every existing pin is compared with the embedded object's definition of the
//! same map (type, key size, value size, capacity); a mismatch stops the load
//! with both shapes named, and nothing is replaced behind the operator's back.

use std::{
    fmt, fs, io,
    path::{Path, PathBuf},
};

use aya::maps::{MapError, MapInfo};
use baton_abi::PINNED_MAPS;

use crate::dataplane::capacity::Capacities;
use crate::sys::mount::{MountError, is_bpffs};

/// The pin directory or a pin in it is not usable.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    /// The directory could not be created.
    #[error("create pin directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The directory is not on bpffs, so pins cannot be created there.
    #[error("pin directory {path} is not on a bpf filesystem (mount -t bpf bpf <dir>)")]
    NotBpffs { path: PathBuf },
    /// The filesystem of the directory could not be determined.
    #[error("pin directory: {0}")]
    Statfs(#[from] MountError),
    /// The embedded object could not be parsed: the build is broken.
    #[error("parse the embedded eBPF object: {0}")]
    Object(#[source] Box<aya_obj::ParseError>),
    /// The ABI lists a pinned map the object does not define: the build is
    /// broken.
    #[error("the eBPF object defines no map {name}")]
    MissingMap { name: &'static str },
    /// An existing pin could not be inspected.
    #[error("inspect pinned map {path}: {source}")]
    Inspect {
        path: PathBuf,
        #[source]
        source: Box<MapError>,
    },
    /// An existing pin has another layout than this build's map.
    #[error(
        "pinned map {path} is {found} but this build defines {name} as {expected}; \
         remove the pin to start from an empty map"
    )]
    Incompatible {
        name: &'static str,
        path: PathBuf,
        expected: MapShape,
        found: MapShape,
    },
}

/// What must match between a pinned map and the object's definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapShape {
    /// `enum bpf_map_type` value.
    pub map_type: u32,
    /// Key size in bytes.
    pub key_size: u32,
    /// Value size in bytes (per CPU for per-CPU maps).
    pub value_size: u32,
    /// Capacity.
    pub max_entries: u32,
}

impl fmt::Display for MapShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "type {} key {} B value {} B max {} entries",
            self.map_type, self.key_size, self.value_size, self.max_entries
        )
    }
}

/// Creates `dir` if needed and checks it is on bpffs.
pub fn prepare(dir: &Path) -> Result<(), PinError> {
    fs::create_dir_all(dir).map_err(|source| PinError::CreateDir {
        path: dir.to_owned(),
        source,
    })?;
    if !is_bpffs(dir)? {
        return Err(PinError::NotBpffs {
            path: dir.to_owned(),
        });
    }
    Ok(())
}

/// The shape each map of [`PINNED_MAPS`] has when `object` is loaded with
/// `capacities` (which override the object's sizes).
pub fn expected_shapes(
    object: &[u8],
    capacities: &Capacities,
) -> Result<Vec<(&'static str, MapShape)>, PinError> {
    let object =
        aya_obj::Object::parse(object).map_err(|error| PinError::Object(Box::new(error)))?;
    let sizes = capacities.map_sizes();
    PINNED_MAPS
        .iter()
        .map(|&name| {
            let map = object.maps.get(name).ok_or(PinError::MissingMap { name })?;
            let max_entries = sizes
                .iter()
                .find(|(sized, _)| *sized == name)
                .map_or(map.max_entries(), |(_, size)| *size);
            Ok((
                name,
                MapShape {
                    map_type: map.map_type(),
                    key_size: map.key_size(),
                    value_size: map.value_size(),
                    max_entries,
                },
            ))
        })
        .collect()
}

/// Checks every pin already in `dir` against the map `object` defines when
/// loaded with `capacities`.
pub fn check_compatible(
    dir: &Path,
    object: &[u8],
    capacities: &Capacities,
) -> Result<(), PinError> {
    for (name, expected) in expected_shapes(object, capacities)? {
        let path = dir.join(name);
        if !path.exists() {
            continue;
        }
        let info = MapInfo::from_pin(&path).map_err(|source| PinError::Inspect {
            path: path.clone(),
            source: Box::new(source),
        })?;
        let found = MapShape {
            map_type: info
                .map_type()
                .map(|map_type| map_type as u32)
                .unwrap_or(u32::MAX),
            key_size: info.key_size(),
            value_size: info.value_size(),
            max_entries: info.max_entries(),
        };
        if found != expected {
            return Err(PinError::Incompatible {
                name,
                path,
                expected,
                found,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use baton_abi::{METRICS_MAP_MAX_ENTRIES, METRICS_MAP_NAME, MetricsKey, MetricsValue};

    use super::*;

    /// `BPF_MAP_TYPE_PERCPU_HASH`.
    const PERCPU_HASH: u32 = 5;

    #[test]
    fn embedded_object_defines_the_abi_maps_with_the_abi_layout() {
        let shapes = expected_shapes(crate::EBPF_OBJECT, &Capacities::default()).unwrap();
        let (_, metrics) = shapes
            .iter()
            .find(|(name, _)| *name == METRICS_MAP_NAME)
            .expect("metrics map is pinned");
        assert_eq!(
            *metrics,
            MapShape {
                map_type: PERCPU_HASH,
                key_size: size_of::<MetricsKey>() as u32,
                value_size: size_of::<MetricsValue>() as u32,
                max_entries: METRICS_MAP_MAX_ENTRIES,
            }
        );
    }

    #[test]
    fn every_pinned_map_has_the_abi_key_and_value_sizes() {
        use baton_abi::{config, conntrack, lb, route, sock};
        const HASH: u32 = 1;
        const ARRAY: u32 = 2;
        const LRU_HASH: u32 = 9;
        const SK_STORAGE: u32 = 24;
        let expected: &[(&str, u32, usize, usize)] = &[
            (
                lb::SERVICES_MAP_NAME,
                HASH,
                size_of::<lb::ServiceKey>(),
                size_of::<lb::ServiceValue>(),
            ),
            (
                lb::SLOTS_MAP_NAME,
                HASH,
                size_of::<lb::SlotKey>(),
                size_of::<lb::SlotValue>(),
            ),
            (lb::BACKENDS_MAP_NAME, HASH, 4, size_of::<lb::Backend>()),
            (
                lb::MEMBERS_MAP_NAME,
                HASH,
                size_of::<lb::MemberKey>(),
                size_of::<lb::MemberValue>(),
            ),
            (lb::MAGLEV_MAP_NAME, ARRAY, 4, size_of::<lb::MaglevEntry>()),
            (
                lb::AFFINITY_MAP_NAME,
                LRU_HASH,
                size_of::<lb::AffinityKey>(),
                size_of::<lb::AffinityValue>(),
            ),
            (
                lb::BACKEND_CONNS_MAP_NAME,
                ARRAY,
                4,
                size_of::<lb::BackendConns>(),
            ),
            (lb::RR_MAP_NAME, ARRAY, 4, size_of::<lb::RrState>()),
            (
                lb::SERVICE_STATS_MAP_NAME,
                PERCPU_HASH,
                4,
                size_of::<lb::ServiceStats>(),
            ),
            (
                sock::REVSK_MAP_NAME,
                LRU_HASH,
                size_of::<sock::RevSkKey>(),
                size_of::<sock::RevSkValue>(),
            ),
            (
                sock::SOCK_STATE_MAP_NAME,
                SK_STORAGE,
                4,
                size_of::<sock::SockState>(),
            ),
            (
                conntrack::CT_MAP_NAME,
                LRU_HASH,
                size_of::<conntrack::CtKey>(),
                size_of::<conntrack::CtEntry>(),
            ),
            (
                route::ENDPOINTS_MAP_NAME,
                HASH,
                size_of::<route::Ipv4Key>(),
                size_of::<route::Endpoint>(),
            ),
            (
                route::LOCAL_ADDRS_MAP_NAME,
                HASH,
                size_of::<route::Ipv4Key>(),
                size_of::<route::LocalAddr>(),
            ),
            (
                route::NODE_ADDRS_MAP_NAME,
                HASH,
                size_of::<route::Ipv4Key>(),
                size_of::<route::LocalAddr>(),
            ),
            (
                config::CONFIG_MAP_NAME,
                ARRAY,
                4,
                size_of::<config::Config>(),
            ),
        ];
        let shapes = expected_shapes(crate::EBPF_OBJECT, &Capacities::default()).unwrap();
        assert_eq!(shapes.len(), expected.len() + 1, "a pinned map is untested");
        for (name, map_type, key, value) in expected {
            let (_, shape) = shapes
                .iter()
                .find(|(pinned, _)| pinned == name)
                .unwrap_or_else(|| panic!("{name} is not pinned"));
            assert_eq!(shape.map_type, *map_type, "{name}: type");
            assert_eq!(shape.key_size as usize, *key, "{name}: key size");
            assert_eq!(shape.value_size as usize, *value, "{name}: value size");
        }
    }

    #[test]
    fn configured_capacities_are_what_pins_are_checked_against() {
        let capacities = Capacities {
            conntrack: 1024,
            ..Capacities::default()
        };
        let shapes = expected_shapes(crate::EBPF_OBJECT, &capacities).unwrap();
        let (_, ct) = shapes
            .iter()
            .find(|(name, _)| *name == baton_abi::conntrack::CT_MAP_NAME)
            .unwrap();
        assert_eq!(ct.max_entries, 1024);
    }

    #[test]
    fn a_directory_off_bpffs_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let error = prepare(dir.path()).unwrap_err();
        assert!(matches!(error, PinError::NotBpffs { .. }), "{error}");
    }
}
