//! baton's CNI plugin (spec 1.0): ADD, DEL, CHECK and VERSION.
//!
//! ADD allocates an address from the node's podCIDR ([`ipam`]), creates a
//! veth pair into the pod's namespace, gives the pod the address as a /32
//! with a default route via [`types::GATEWAY`] on the host veth (a static
//! neighbour entry, so the pod never ARPs for it), routes the /32 to the
//! host veth in the node namespace, and records the endpoint (address,
//! host ifindex and MACs) for the dataplane under
//! `<dataDir>/endpoints/<ip>.json`, which baton-node applies to its
//! dataplane (pod networking, `podnet`). DEL undoes it and is idempotent.
//!
//! The binary (`baton-cni`) is a thin wrapper around [`run`]; the logic is
//! [`Plugin`], generic over the link side effects ([`link::PodLinks`]).

pub mod ipam;
pub mod link;
pub mod loopback;
pub mod types;

use std::collections::HashSet;
use std::fs;
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use self::ipam::{Ipam, IpamError, Owner};
use self::link::{LinkError, PodLinks, SetupRequest};
use self::types::{
    AddResult, CNI_VERSION, ErrorResult, GATEWAY, Interface, IpConfig, NetConf, Route,
    SUPPORTED_VERSIONS, codes,
};

/// Directory below `dataDir` with one record per endpoint.
pub const ENDPOINTS_DIR: &str = "endpoints";

/// A failed plugin call, as the spec's error object.
#[derive(Debug, thiserror::Error)]
#[error("{msg}{}", if details.is_empty() { String::new() } else { format!(": {details}") })]
pub struct PluginError {
    pub code: u32,
    pub msg: String,
    pub details: String,
}

impl PluginError {
    fn new(code: u32, msg: impl Into<String>, details: impl ToString) -> Self {
        Self {
            code,
            msg: msg.into(),
            details: details.to_string(),
        }
    }

    /// The spec's error object.
    #[must_use]
    pub fn to_result(&self) -> ErrorResult {
        ErrorResult {
            cni_version: CNI_VERSION.into(),
            code: self.code,
            msg: self.msg.clone(),
            details: self.details.clone(),
        }
    }
}

impl From<IpamError> for PluginError {
    fn from(err: IpamError) -> Self {
        Self::new(codes::IPAM, "address allocation failed", err)
    }
}

impl From<LinkError> for PluginError {
    fn from(err: LinkError) -> Self {
        Self::new(codes::NETWORK, "pod network setup failed", err)
    }
}

/// The operation asked for by `CNI_COMMAND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Version,
}

/// The parameters of one invocation (the `CNI_*` environment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub command: Command,
    pub container_id: String,
    pub netns: Option<PathBuf>,
    pub ifname: String,
}

impl Invocation {
    /// Reads the `CNI_*` variables through `env`.
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Result<Self, PluginError> {
        let command = match env("CNI_COMMAND").as_deref() {
            Some("ADD") => Command::Add,
            Some("DEL") => Command::Del,
            Some("CHECK") => Command::Check,
            Some("VERSION") => Command::Version,
            other => {
                return Err(PluginError::new(
                    codes::INVALID_ENV,
                    "unknown CNI_COMMAND",
                    format!("{other:?}"),
                ));
            }
        };
        let required = |key: &str| {
            env(key).filter(|v| !v.is_empty()).ok_or_else(|| {
                PluginError::new(codes::INVALID_ENV, format!("{key} is not set"), "")
            })
        };
        if command == Command::Version {
            return Ok(Self {
                command,
                container_id: String::new(),
                netns: None,
                ifname: String::new(),
            });
        }
        let container_id = required("CNI_CONTAINERID")?;
        let ifname = required("CNI_IFNAME")?;
        let netns = env("CNI_NETNS")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        if command != Command::Del && netns.is_none() {
            return Err(PluginError::new(
                codes::INVALID_ENV,
                "CNI_NETNS is not set",
                "",
            ));
        }
        Ok(Self {
            command,
            container_id,
            netns,
            ifname,
        })
    }

    fn owner(&self) -> Owner {
        Owner {
            container_id: self.container_id.clone(),
            ifname: self.ifname.clone(),
        }
    }
}

/// The record of a pod endpoint, for the dataplane and for CHECK.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointRecord {
    pub ip: Ipv4Addr,
    pub container_id: String,
    pub ifname: String,
    pub netns: PathBuf,
    pub host_ifname: String,
    pub host_ifindex: u32,
    pub host_mac: String,
    pub pod_mac: String,
}

/// The plugin over some link implementation.
#[derive(Debug)]
pub struct Plugin<L> {
    links: L,
}

impl<L: PodLinks> Plugin<L> {
    pub fn new(links: L) -> Self {
        Self { links }
    }

    /// The link implementation (tests inspect the fake).
    pub fn links(&self) -> &L {
        &self.links
    }

    /// ADD: address, veth pair, routes, endpoint record.
    pub fn add(&self, inv: &Invocation, conf: &NetConf) -> Result<AddResult, PluginError> {
        let netns = inv
            .netns
            .clone()
            .ok_or_else(|| PluginError::new(codes::INVALID_ENV, "CNI_NETNS is not set", ""))?;
        let ipam = ipam_of(conf)?;
        let ip = ipam.allocate(&inv.owner())?;
        let req = SetupRequest {
            netns: netns.clone(),
            pod_ifname: inv.ifname.clone(),
            host_ifname: link::host_ifname(&inv.container_id, &inv.ifname),
            address: ip,
            gateway: GATEWAY,
            mtu: conf.mtu,
        };
        let endpoint = match self.links.setup(&req) {
            Ok(endpoint) => endpoint,
            Err(err) => {
                // Nothing half-done stays: the address goes back.
                let _ = ipam.release(&inv.owner());
                return Err(err.into());
            }
        };
        let record = EndpointRecord {
            ip,
            container_id: inv.container_id.clone(),
            ifname: inv.ifname.clone(),
            netns: netns.clone(),
            host_ifname: endpoint.host_ifname.clone(),
            host_ifindex: endpoint.host_ifindex,
            host_mac: endpoint.host_mac.clone(),
            pod_mac: endpoint.pod_mac.clone(),
        };
        if let Err(err) = write_endpoint(&conf.data_dir, &record) {
            let _ = self.links.teardown(&req.host_ifname);
            let _ = ipam.release(&inv.owner());
            return Err(PluginError::new(
                codes::IO,
                "recording the endpoint failed",
                err,
            ));
        }
        tracing::info!(container = %inv.container_id, %ip, host_ifname = %endpoint.host_ifname, "pod network added");
        Ok(AddResult {
            cni_version: CNI_VERSION.into(),
            interfaces: vec![
                Interface {
                    name: endpoint.host_ifname,
                    mac: endpoint.host_mac,
                    sandbox: String::new(),
                },
                Interface {
                    name: inv.ifname.clone(),
                    mac: endpoint.pod_mac,
                    sandbox: netns.display().to_string(),
                },
            ],
            ips: vec![IpConfig {
                address: Ipv4Net::from(ip),
                gateway: GATEWAY,
                interface: 1,
            }],
            routes: vec![Route {
                dst: "0.0.0.0/0".parse().expect("valid"),
                gw: GATEWAY,
            }],
            dns: serde_json::json!({}),
        })
    }

    /// DEL: everything ADD made, whatever of it still exists.
    pub fn del(&self, inv: &Invocation, conf: &NetConf) -> Result<(), PluginError> {
        self.links
            .teardown(&link::host_ifname(&inv.container_id, &inv.ifname))?;
        let ipam = ipam_of(conf)?;
        if let Some(ip) = ipam.release(&inv.owner())? {
            remove_endpoint(&conf.data_dir, ip).map_err(|err| {
                PluginError::new(codes::IO, "removing the endpoint record failed", err)
            })?;
            tracing::info!(container = %inv.container_id, %ip, "pod network deleted");
        }
        Ok(())
    }

    /// CHECK: the address is allocated to this container, the host veth
    /// exists, and the pod interface carries the address.
    pub fn check(&self, inv: &Invocation, conf: &NetConf) -> Result<(), PluginError> {
        let netns = inv
            .netns
            .clone()
            .ok_or_else(|| PluginError::new(codes::INVALID_ENV, "CNI_NETNS is not set", ""))?;
        let ip = ipam_of(conf)?.find(&inv.owner())?.ok_or_else(|| {
            PluginError::new(
                codes::UNKNOWN_CONTAINER,
                "no address allocated",
                &inv.container_id,
            )
        })?;
        let host = link::host_ifname(&inv.container_id, &inv.ifname);
        if !self.links.host_link_exists(&host)? {
            return Err(PluginError::new(codes::NETWORK, "host veth missing", host));
        }
        let addrs = self.links.pod_addresses(&netns, &inv.ifname)?;
        if !addrs.iter().any(|a| a.addr() == ip) {
            return Err(PluginError::new(
                codes::NETWORK,
                format!("{} lacks {ip}", inv.ifname),
                format!("{addrs:?}"),
            ));
        }
        Ok(())
    }

    /// Reclaims what sandboxes that no longer exist left: addresses,
    /// endpoint records and host veths. `live` holds the runtime's sandbox
    /// IDs. Returns the released addresses.
    pub fn reclaim(
        &self,
        conf: &NetConf,
        live: &HashSet<String>,
    ) -> Result<Vec<Ipv4Addr>, PluginError> {
        let ipam = ipam_of(conf)?;
        let released = ipam.reclaim(live)?;
        for allocation in &released {
            let _ = remove_endpoint(&conf.data_dir, allocation.ip);
        }
        let kept: HashSet<String> = ipam
            .allocations()?
            .into_iter()
            .map(|a| link::host_ifname(&a.owner.container_id, &a.owner.ifname))
            .collect();
        for name in self.links.host_links()? {
            if !kept.contains(&name) {
                tracing::info!(link = %name, "removing a pod veth no sandbox owns");
                self.links.teardown(&name)?;
            }
        }
        Ok(released.into_iter().map(|a| a.ip).collect())
    }
}

fn ipam_of(conf: &NetConf) -> Result<Ipam, PluginError> {
    let network = if conf.name.is_empty() {
        types::NETWORK_NAME
    } else {
        &conf.name
    };
    Ok(Ipam::new(&conf.data_dir, network, conf.pod_cidr)?)
}

fn endpoint_path(data_dir: &Path, ip: Ipv4Addr) -> PathBuf {
    data_dir.join(ENDPOINTS_DIR).join(format!("{ip}.json"))
}

/// Writes `record` (atomically: a new file renamed over the old one).
pub fn write_endpoint(data_dir: &Path, record: &EndpointRecord) -> io::Result<()> {
    let path = endpoint_path(data_dir, record.ip);
    fs::create_dir_all(path.parent().expect("has a parent"))?;
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    fs::write(
        &tmp,
        serde_json::to_vec_pretty(record).map_err(io::Error::other)?,
    )?;
    fs::rename(&tmp, &path)
}

/// Removes the record of `ip`; an absent record is not an error.
pub fn remove_endpoint(data_dir: &Path, ip: Ipv4Addr) -> io::Result<()> {
    match fs::remove_file(endpoint_path(data_dir, ip)) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    }
}

/// Every endpoint record under `data_dir` (for the dataplane and tests).
pub fn endpoints(data_dir: &Path) -> io::Result<Vec<EndpointRecord>> {
    let dir = data_dir.join(ENDPOINTS_DIR);
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err),
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            match fs::read(&path) {
                Ok(bytes) => out.push(serde_json::from_slice(&bytes).map_err(io::Error::other)?),
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => return Err(err),
            }
        }
    }
    out.sort_by_key(|r: &EndpointRecord| r.ip);
    Ok(out)
}

/// Decodes the network configuration in `stdin` and checks that its
/// `cniVersion` (read by `version`) is one this plugin speaks.
fn decode_conf<T: serde::de::DeserializeOwned>(
    stdin: &[u8],
    version: fn(&T) -> &str,
) -> Result<T, PluginError> {
    let conf: T = serde_json::from_slice(stdin)
        .map_err(|err| PluginError::new(codes::DECODE, "invalid network configuration", err))?;
    let version = version(&conf);
    if !SUPPORTED_VERSIONS.contains(&version) {
        return Err(PluginError::new(
            codes::INCOMPATIBLE_VERSION,
            format!("unsupported cniVersion {version}"),
            SUPPORTED_VERSIONS.join(", "),
        ));
    }
    Ok(conf)
}

/// One plugin run: parses the configuration from `stdin`, dispatches on
/// the invocation, and returns what to print on stdout and the exit code
/// (0, or 1 with the spec's error object).
pub fn run<L: PodLinks>(
    plugin: &Plugin<L>,
    inv: Result<Invocation, PluginError>,
    stdin: &[u8],
) -> (String, i32) {
    let outcome = (|| -> Result<Option<String>, PluginError> {
        let inv = inv?;
        if inv.command == Command::Version {
            return Ok(Some(
                serde_json::json!({
                    "cniVersion": CNI_VERSION,
                    "supportedVersions": SUPPORTED_VERSIONS,
                })
                .to_string(),
            ));
        }
        if loopback::is_requested(stdin) {
            return loopback::run(&inv, stdin);
        }
        let conf = decode_conf(stdin, |c: &NetConf| &c.cni_version)?;
        match inv.command {
            Command::Add => {
                let mut result = plugin.add(&inv, &conf)?;
                // Answer in the configuration's version (libcni converts).
                result.cni_version = conf.cni_version.clone();
                Ok(Some(
                    serde_json::to_string(&result)
                        .map_err(|e| PluginError::new(codes::IO, "encoding", e))?,
                ))
            }
            Command::Del => plugin.del(&inv, &conf).map(|()| None),
            Command::Check => plugin.check(&inv, &conf).map(|()| None),
            Command::Version => unreachable!("handled above"),
        }
    })();
    match outcome {
        Ok(out) => (out.unwrap_or_default(), 0),
        Err(err) => {
            tracing::error!(%err, "CNI call failed");
            (
                serde_json::to_string(&err.to_result()).unwrap_or_default(),
                1,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::link::fake::{Call, FakeLinks};
    use super::*;

    fn conf(dir: &Path) -> NetConf {
        NetConf {
            cni_version: CNI_VERSION.into(),
            name: "baton".into(),
            plugin_type: types::PLUGIN_TYPE.into(),
            pod_cidr: "10.244.3.0/24".parse().unwrap(),
            data_dir: dir.to_owned(),
            mtu: 1500,
            endpoint_socket: None,
            prev_result: None,
        }
    }

    fn env(command: &str, id: &str) -> impl Fn(&str) -> Option<String> {
        let vars: HashMap<&str, String> = HashMap::from([
            ("CNI_COMMAND", command.to_owned()),
            ("CNI_CONTAINERID", id.to_owned()),
            ("CNI_NETNS", format!("/var/run/netns/cni-{id}")),
            ("CNI_IFNAME", "eth0".to_owned()),
            ("CNI_PATH", "/opt/cni/bin".to_owned()),
        ]);
        move |k| vars.get(k).cloned()
    }

    fn call(
        plugin: &Plugin<FakeLinks>,
        dir: &Path,
        command: &str,
        id: &str,
    ) -> (serde_json::Value, i32) {
        let stdin = serde_json::to_vec(&conf(dir)).unwrap();
        let (out, code) = run(plugin, Invocation::from_env(env(command, id)), &stdin);
        (
            serde_json::from_str(&out).unwrap_or(serde_json::Value::Null),
            code,
        )
    }

    #[test]
    fn add_gives_an_address_from_the_pod_cidr_and_a_default_route() {
        let dir = tempfile::tempdir().unwrap();
        let plugin = Plugin::new(FakeLinks::default());
        let (result, code) = call(&plugin, dir.path(), "ADD", "c1");
        assert_eq!(code, 0, "{result}");
        assert_eq!(result["cniVersion"], "1.0.0");
        assert_eq!(result["ips"][0]["address"], "10.244.3.2/32");
        assert_eq!(result["ips"][0]["gateway"], "169.254.1.1");
        assert_eq!(result["ips"][0]["interface"], 1);
        assert_eq!(result["interfaces"][1]["name"], "eth0");
        assert_eq!(result["interfaces"][1]["sandbox"], "/var/run/netns/cni-c1");
        assert_eq!(result["routes"][0]["dst"], "0.0.0.0/0");
        let records = endpoints(dir.path()).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].ip, Ipv4Addr::new(10, 244, 3, 2));
        assert_eq!(records[0].host_ifname, link::host_ifname("c1", "eth0"));

        let (_, code) = call(&plugin, dir.path(), "CHECK", "c1");
        assert_eq!(code, 0);
        // A second pod gets another address.
        let (result, _) = call(&plugin, dir.path(), "ADD", "c2");
        assert_eq!(result["ips"][0]["address"], "10.244.3.3/32");
    }

    #[test]
    fn del_is_idempotent_and_frees_everything() {
        let dir = tempfile::tempdir().unwrap();
        let plugin = Plugin::new(FakeLinks::default());
        call(&plugin, dir.path(), "ADD", "c1");
        for _ in 0..2 {
            let (out, code) = call(&plugin, dir.path(), "DEL", "c1");
            assert_eq!(code, 0, "{out}");
        }
        assert!(plugin.links().links.borrow().is_empty());
        assert!(endpoints(dir.path()).unwrap().is_empty());
        let (out, code) = call(&plugin, dir.path(), "CHECK", "c1");
        assert_eq!(code, 1);
        assert_eq!(out["code"], codes::UNKNOWN_CONTAINER);
    }

    #[test]
    fn a_failed_setup_returns_the_address_and_reports_an_error_object() {
        let dir = tempfile::tempdir().unwrap();
        let plugin = Plugin::new(FakeLinks::default());
        *plugin.links().fail_setup.borrow_mut() = Some("RTNETLINK answers: File exists".into());
        let (out, code) = call(&plugin, dir.path(), "ADD", "c1");
        assert_eq!(code, 1);
        assert_eq!(out["code"], codes::NETWORK);
        assert!(
            out["details"].as_str().unwrap().contains("File exists"),
            "{out}"
        );
        let ipam = Ipam::new(dir.path(), "baton", "10.244.3.0/24".parse().unwrap()).unwrap();
        assert!(ipam.allocations().unwrap().is_empty());
    }

    #[test]
    fn version_and_bad_input() {
        let plugin = Plugin::new(FakeLinks::default());
        let (out, code) = run(&plugin, Invocation::from_env(env("VERSION", "")), b"");
        assert_eq!(code, 0);
        let out: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert!(
            out["supportedVersions"]
                .as_array()
                .unwrap()
                .contains(&"1.0.0".into())
        );
        let (out, code) = run(&plugin, Invocation::from_env(env("ADD", "c")), b"{not json");
        assert_eq!(code, 1);
        let out: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(out["code"], codes::DECODE);
        let (out, code) = run(&plugin, Invocation::from_env(|_| None), b"");
        assert_eq!(code, 1);
        assert!(out.contains("CNI_COMMAND"), "{out}");
    }

    #[test]
    fn reclaim_frees_addresses_and_veths_of_vanished_sandboxes() {
        let dir = tempfile::tempdir().unwrap();
        let plugin = Plugin::new(FakeLinks::default());
        call(&plugin, dir.path(), "ADD", "live");
        call(&plugin, dir.path(), "ADD", "gone");
        let released = plugin
            .reclaim(&conf(dir.path()), &HashSet::from(["live".to_owned()]))
            .unwrap();
        assert_eq!(released, [Ipv4Addr::new(10, 244, 3, 3)]);
        let links: Vec<String> = plugin.links().links.borrow().keys().cloned().collect();
        assert_eq!(links, [link::host_ifname("live", "eth0")]);
        assert!(
            plugin
                .links()
                .calls
                .borrow()
                .contains(&Call::Teardown(link::host_ifname("gone", "eth0")))
        );
    }
}
