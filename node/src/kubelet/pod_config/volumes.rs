//! Pod volumes under the kubelet's root directory
//! (`<root>/pods/<uid>/volumes/kubernetes.io~<plugin>/<name>`): configMap,
//! secret, downwardAPI and projected volumes (secret and projected ones on
//! tmpfs) written atomically like the
//! kubelet's `AtomicWriter` (files in a timestamped directory, a `..data`
//! symlink swapped with one rename, user-visible names linking through
//! it, so a reader never sees half an update); emptyDir on disk or tmpfs;
//! hostPath with its type checks; persistentVolumeClaim bound to hostPath
//! or local PersistentVolumes.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use baton_apimachinery::quantity::Quantity;
use k8s_openapi::api::core::v1::{
    Container, KeyToPath, PersistentVolume, PersistentVolumeClaim, Pod, Volume,
};
use kube::Client;
use kube::api::Api;
use nix::mount::{MntFlags, MsFlags};

use super::configmap_secret_watch::{Kind, NotListed, SourceData, Sources};
use super::env;
use super::service_account_tokens::Tokens;
use crate::cri::api as cri;
use crate::kubelet::metrics::StorageMetrics;

const DATA_LINK: &str = "..data";

/// The kubelet's volume plugin that sets up `v`, as its metrics name it. A
/// claim has its volume's plugin, not known before the claim is resolved:
/// its set-up (a directory of a hostPath or local volume) is not timed.
fn plugin_of(v: &Volume) -> Option<&'static str> {
    Some(if v.empty_dir.is_some() {
        "kubernetes.io/empty-dir"
    } else if v.host_path.is_some() {
        "kubernetes.io/host-path"
    } else if v.config_map.is_some() {
        "kubernetes.io/configmap"
    } else if v.secret.is_some() {
        "kubernetes.io/secret"
    } else if v.downward_api.is_some() {
        "kubernetes.io/downward-api"
    } else if v.projected.is_some() {
        "kubernetes.io/projected"
    } else {
        return None;
    })
}

/// Setting up or removing a volume failed.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{action} {}: {source}", path.display())]
    Mount {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("volume {volume}: {message}")]
    Invalid { volume: String, message: String },
    #[error("volume {volume}: {source}")]
    Source {
        volume: String,
        #[source]
        source: NotListed,
    },
    #[error("volume {volume}: {source}")]
    Api {
        volume: String,
        #[source]
        source: Box<kube::Error>,
    },
}

/// Whether `pod` has volumes whose contents follow their sources
/// (configMap, secret, downwardAPI, projected) and so are refreshed while
/// it runs.
#[must_use]
pub fn refreshed(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .is_some_and(|volumes| {
            volumes.iter().any(|v| {
                v.config_map.is_some()
                    || v.secret.is_some()
                    || v.downward_api.is_some()
                    || v.projected.is_some()
            })
        })
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> VolumeError {
    move |source| VolumeError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// A file of a projected-style volume: contents and mode.
type Files = BTreeMap<String, (Vec<u8>, u32)>;

/// Writes `files` into `dir` atomically (see the module docs). Returns
/// whether anything changed.
pub fn write_atomic(dir: &Path, files: &Files) -> Result<bool, VolumeError> {
    fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
    let data = dir.join(DATA_LINK);
    let old_target = fs::read_link(&data).ok();
    if let Some(old) = &old_target
        && read_tree(&dir.join(old)).as_ref() == Some(files)
    {
        return Ok(false);
    }
    let stamp = format!(
        "..{}_{:08x}",
        jiff::Timestamp::now().strftime("%Y_%m_%d_%H_%M_%S.%f"),
        rand::random::<u32>()
    );
    let target = dir.join(&stamp);
    fs::create_dir(&target).map_err(io_err("creating", &target))?;
    for (rel, (bytes, mode)) in files {
        let path = target.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io_err("creating", parent))?;
        }
        fs::write(&path, bytes).map_err(io_err("writing", &path))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(*mode))
            .map_err(io_err("chmod", &path))?;
    }
    let tmp_link = dir.join("..data_tmp");
    let _ = fs::remove_file(&tmp_link);
    std::os::unix::fs::symlink(&stamp, &tmp_link).map_err(io_err("linking", &tmp_link))?;
    fs::rename(&tmp_link, &data).map_err(io_err("renaming into", &data))?;
    // User-visible names: the first path component of every file.
    let visible: std::collections::BTreeSet<String> = files
        .keys()
        .filter_map(|k| k.split('/').next().map(str::to_owned))
        .collect();
    for name in &visible {
        let link = dir.join(name);
        if fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new(DATA_LINK).join(name), &link)
                .map_err(io_err("linking", &link))?;
        }
    }
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with("..") && !visible.contains(&name) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
    if let Some(old) = old_target {
        let _ = fs::remove_dir_all(dir.join(old));
    }
    Ok(true)
}

fn read_tree(root: &Path) -> Option<Files> {
    fn walk(root: &Path, dir: &Path, out: &mut Files) -> io::Result<()> {
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                walk(root, &path, out)?;
            } else {
                let rel = path.strip_prefix(root).map_err(io::Error::other)?;
                let mode = entry.metadata()?.permissions().mode() & 0o7777;
                out.insert(rel.to_string_lossy().into_owned(), (fs::read(&path)?, mode));
            }
        }
        Ok(())
    }
    let mut out = Files::new();
    walk(root, root, &mut out).ok()?;
    Some(out)
}

/// Files of a configMap/secret source: every key, or the listed items.
fn key_files(
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&Vec<KeyToPath>>,
    default_mode: u32,
    volume: &str,
    optional: bool,
) -> Result<Files, VolumeError> {
    let mut files = Files::new();
    match items {
        None => {
            for (k, v) in data {
                files.insert(k.clone(), (v.clone(), default_mode));
            }
        }
        Some(items) => {
            for item in items {
                match data.get(&item.key) {
                    Some(v) => {
                        let mode = item
                            .mode
                            .map_or(default_mode, |m| u32::try_from(m).unwrap_or(default_mode));
                        files.insert(item.path.clone(), (v.clone(), mode));
                    }
                    None if optional => {}
                    None => {
                        return Err(VolumeError::Invalid {
                            volume: volume.to_owned(),
                            message: format!("configuration has no key {}", item.key),
                        });
                    }
                }
            }
        }
    }
    Ok(files)
}

fn mode_of(mode: Option<i32>) -> u32 {
    mode.and_then(|m| u32::try_from(m).ok()).unwrap_or(0o644)
}

/// What of a pod's own object its volumes' files can show besides what
/// only a new pod changes (name, UID, resources): its labels and
/// annotations, through downwardAPI items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodMetadata {
    labels: Option<BTreeMap<String, String>>,
    annotations: Option<BTreeMap<String, String>>,
}

impl PodMetadata {
    #[must_use]
    pub fn of(pod: &Pod) -> Self {
        Self {
            labels: pod.metadata.labels.clone(),
            annotations: pod.metadata.annotations.clone(),
        }
    }
}

/// The pod's volumes, set up on this node.
#[derive(Clone)]
pub struct Volumes {
    client: Client,
    root: PathBuf,
    /// The ConfigMaps and Secrets they mount.
    pub sources: Sources,
    /// Service-account tokens of projected volumes.
    tokens: Tokens,
    /// How long set-ups took (`storage_operation_duration_seconds`).
    pub metrics: StorageMetrics,
}

impl std::fmt::Debug for Volumes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Volumes")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl Volumes {
    #[must_use]
    pub fn new(client: Client, root: PathBuf, sources: Sources) -> Self {
        Self {
            tokens: Tokens::new(client.clone()),
            client,
            root,
            sources,
            metrics: StorageMetrics::default(),
        }
    }

    /// `<root>/pods/<uid>`.
    #[must_use]
    pub fn pod_dir(&self, uid: &str) -> PathBuf {
        self.root.join("pods").join(uid)
    }

    fn volume_dir(&self, uid: &str, plugin: &str, name: &str) -> PathBuf {
        self.pod_dir(uid)
            .join("volumes")
            .join(format!("kubernetes.io~{plugin}"))
            .join(name)
    }

    /// Sets up (or refreshes: configMap, secret, downwardAPI and projected
    /// contents follow their sources) every volume of `pod`; returns the
    /// host path of each volume by name.
    pub async fn setup(
        &self,
        pod: &Pod,
        pod_ip: &str,
        host_ip: &str,
    ) -> Result<HashMap<String, PathBuf>, VolumeError> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let namespace = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let mut paths = HashMap::new();
        for volume in pod
            .spec
            .as_ref()
            .and_then(|s| s.volumes.clone())
            .unwrap_or_default()
        {
            let start = Instant::now();
            let path = self
                .setup_one(pod, &uid, &namespace, &volume, pod_ip, host_ip)
                .await;
            if let Some(plugin) = plugin_of(&volume) {
                self.metrics.mounted(plugin, start.elapsed(), path.is_ok());
            }
            paths.insert(volume.name.clone(), path?);
        }
        Ok(paths)
    }

    /// A ConfigMap or Secret `name` that volume `volume` of pod `uid`
    /// mounts, from its watch ([`Sources`]).
    async fn source(
        &self,
        uid: &str,
        kind: Kind,
        namespace: &str,
        name: &str,
        volume: &str,
    ) -> Result<Option<Arc<SourceData>>, VolumeError> {
        self.sources
            .get(uid, kind, namespace, name)
            .await
            .map_err(|source| VolumeError::Source {
                volume: volume.to_owned(),
                source,
            })
    }

    async fn setup_one(
        &self,
        pod: &Pod,
        uid: &str,
        namespace: &str,
        v: &Volume,
        pod_ip: &str,
        host_ip: &str,
    ) -> Result<PathBuf, VolumeError> {
        let api_err = |source: kube::Error| VolumeError::Api {
            volume: v.name.clone(),
            source: Box::new(source),
        };
        if let Some(ed) = &v.empty_dir {
            let dir = self.volume_dir(uid, "empty-dir", &v.name);
            fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o777))
                .map_err(io_err("chmod", &dir))?;
            if ed.medium.as_deref() == Some("Memory") {
                let size = ed
                    .size_limit
                    .as_ref()
                    .and_then(|q| Quantity::parse(&q.0).ok())
                    .map(|q| q.value_i64());
                mount_tmpfs(&dir, size)?;
            }
            return Ok(dir);
        }
        if let Some(hp) = &v.host_path {
            let path = PathBuf::from(&hp.path);
            check_host_path(&path, hp.type_.as_deref().unwrap_or(""), &v.name)?;
            return Ok(path);
        }
        if let Some(cm_src) = &v.config_map {
            let dir = self.volume_dir(uid, "configmap", &v.name);
            let optional = cm_src.optional.unwrap_or(false);
            let data = match self
                .source(uid, Kind::ConfigMap, namespace, &cm_src.name, &v.name)
                .await?
            {
                Some(data) => data,
                None if optional => Arc::default(),
                None => {
                    return Err(VolumeError::Invalid {
                        volume: v.name.clone(),
                        message: format!("configmap \"{}\" not found", cm_src.name),
                    });
                }
            };
            let files = key_files(
                &data,
                cm_src.items.as_ref(),
                mode_of(cm_src.default_mode),
                &v.name,
                optional,
            )?;
            write_atomic(&dir, &files)?;
            return Ok(dir);
        }
        if let Some(s_src) = &v.secret {
            let dir = self.volume_dir(uid, "secret", &v.name);
            let optional = s_src.optional.unwrap_or(false);
            let name = s_src.secret_name.clone().unwrap_or_default();
            let data = match self
                .source(uid, Kind::Secret, namespace, &name, &v.name)
                .await?
            {
                Some(data) => data,
                None if optional => Arc::default(),
                None => {
                    return Err(VolumeError::Invalid {
                        volume: v.name.clone(),
                        message: format!("secret \"{name}\" not found"),
                    });
                }
            };
            // Secrets stay in memory, as the kubelet keeps them.
            fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
            mount_tmpfs(&dir, None)?;
            let files = key_files(
                &data,
                s_src.items.as_ref(),
                mode_of(s_src.default_mode),
                &v.name,
                optional,
            )?;
            write_atomic(&dir, &files)?;
            return Ok(dir);
        }
        if let Some(da) = &v.downward_api {
            let dir = self.volume_dir(uid, "downward-api", &v.name);
            let files = downward_files(
                pod,
                da.items.as_deref().unwrap_or_default(),
                mode_of(da.default_mode),
                pod_ip,
                host_ip,
                &v.name,
            )?;
            write_atomic(&dir, &files)?;
            return Ok(dir);
        }
        if let Some(pr) = &v.projected {
            let dir = self.volume_dir(uid, "projected", &v.name);
            let default_mode = mode_of(pr.default_mode);
            let mut files = Files::new();
            for source in pr.sources.clone().unwrap_or_default() {
                if let Some(cm_src) = source.config_map {
                    let optional = cm_src.optional.unwrap_or(false);
                    let data = match self
                        .source(uid, Kind::ConfigMap, namespace, &cm_src.name, &v.name)
                        .await?
                    {
                        Some(data) => data,
                        None if optional => Arc::default(),
                        None => {
                            return Err(VolumeError::Invalid {
                                volume: v.name.clone(),
                                message: format!("configmap \"{}\" not found", cm_src.name),
                            });
                        }
                    };
                    files.extend(key_files(
                        &data,
                        cm_src.items.as_ref(),
                        default_mode,
                        &v.name,
                        optional,
                    )?);
                }
                if let Some(s_src) = source.secret {
                    let optional = s_src.optional.unwrap_or(false);
                    let data = match self
                        .source(uid, Kind::Secret, namespace, &s_src.name, &v.name)
                        .await?
                    {
                        Some(data) => data,
                        None if optional => Arc::default(),
                        None => {
                            return Err(VolumeError::Invalid {
                                volume: v.name.clone(),
                                message: format!("secret \"{}\" not found", s_src.name),
                            });
                        }
                    };
                    files.extend(key_files(
                        &data,
                        s_src.items.as_ref(),
                        default_mode,
                        &v.name,
                        optional,
                    )?);
                }
                if let Some(da) = source.downward_api {
                    files.extend(downward_files(
                        pod,
                        da.items.as_deref().unwrap_or_default(),
                        default_mode,
                        pod_ip,
                        host_ip,
                        &v.name,
                    )?);
                }
                if let Some(token) = source.service_account_token {
                    let sa = pod
                        .spec
                        .as_ref()
                        .and_then(|s| s.service_account_name.clone())
                        .unwrap_or_else(|| "default".into());
                    // Without its token the volume is not set up (the
                    // kubelet's `FailedMount`), and the sync is retried.
                    let value = self
                        .tokens
                        .get(
                            pod,
                            namespace,
                            &sa,
                            token.audience.clone(),
                            token.expiration_seconds,
                        )
                        .await
                        .map_err(api_err)?;
                    files.insert(token.path.clone(), (value.into_bytes(), default_mode));
                }
            }
            // In memory, as the kubelet keeps projected volumes: they may
            // carry secrets and tokens.
            fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
            mount_tmpfs(&dir, None)?;
            write_atomic(&dir, &files)?;
            return Ok(dir);
        }
        if let Some(claim) = &v.persistent_volume_claim {
            let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), namespace);
            let pvc = pvcs.get(&claim.claim_name).await.map_err(api_err)?;
            let pv_name = pvc
                .spec
                .and_then(|s| s.volume_name)
                .filter(|n| !n.is_empty())
                .ok_or_else(|| VolumeError::Invalid {
                    volume: v.name.clone(),
                    message: format!(
                        "persistentvolumeclaim \"{}\" is not bound",
                        claim.claim_name
                    ),
                })?;
            let pvs: Api<PersistentVolume> = Api::all(self.client.clone());
            let pv = pvs.get(&pv_name).await.map_err(api_err)?;
            let spec = pv.spec.unwrap_or_default();
            let path = spec
                .host_path
                .map(|h| h.path)
                .or_else(|| spec.local.map(|l| l.path))
                .ok_or_else(|| VolumeError::Invalid {
                    volume: v.name.clone(),
                    message: format!("persistentvolume {pv_name} is neither hostPath nor local"),
                })?;
            let path = PathBuf::from(path);
            fs::create_dir_all(&path).map_err(io_err("creating", &path))?;
            return Ok(path);
        }
        Err(VolumeError::Invalid {
            volume: v.name.clone(),
            message: "unsupported volume type".into(),
        })
    }

    /// Unmounts and removes everything of pod `uid`.
    pub fn teardown(&self, uid: &str) -> Result<(), VolumeError> {
        self.sources.release(uid);
        self.tokens.forget(uid);
        let dir = self.pod_dir(uid);
        for point in mounts_under(&dir) {
            nix::mount::umount2(&point, MntFlags::MNT_DETACH).map_err(|source| {
                VolumeError::Mount {
                    action: "unmounting",
                    path: point.clone(),
                    source,
                }
            })?;
        }
        match fs::remove_dir_all(&dir) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => Err(io_err("removing", &dir)(err)),
            _ => Ok(()),
        }
    }

    /// UIDs of pods with a directory here (for cleaning up after a crash).
    #[must_use]
    pub fn pod_uids(&self) -> Vec<String> {
        fs::read_dir(self.root.join("pods"))
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn downward_files(
    pod: &Pod,
    items: &[k8s_openapi::api::core::v1::DownwardAPIVolumeFile],
    default_mode: u32,
    pod_ip: &str,
    host_ip: &str,
    volume: &str,
) -> Result<Files, VolumeError> {
    let sources = env::Sources::of_node(pod_ip, host_ip);
    let mut files = Files::new();
    for item in items {
        let mode = item
            .mode
            .map_or(default_mode, |m| u32::try_from(m).unwrap_or(default_mode));
        let value = if let Some(f) = &item.field_ref {
            env::field_value(pod, &f.field_path, &sources)
        } else if let Some(r) = &item.resource_field_ref {
            let container = pod
                .spec
                .as_ref()
                .and_then(|s| {
                    s.containers
                        .iter()
                        .find(|c| Some(&c.name) == r.container_name.as_ref())
                        .or(s.containers.first())
                })
                .cloned()
                .unwrap_or_default();
            env::resource_value(
                &container,
                &r.resource,
                r.divisor.as_ref().map(|d| d.0.as_str()),
                &sources,
            )
        } else {
            continue;
        }
        .map_err(|err| VolumeError::Invalid {
            volume: volume.to_owned(),
            message: err.to_string(),
        })?;
        files.insert(item.path.clone(), (value.into_bytes(), mode));
    }
    Ok(files)
}

fn check_host_path(path: &Path, kind: &str, volume: &str) -> Result<(), VolumeError> {
    let invalid = |message: String| VolumeError::Invalid {
        volume: volume.to_owned(),
        message,
    };
    let meta = fs::metadata(path).ok();
    match kind {
        "DirectoryOrCreate" if meta.is_none() => {
            fs::create_dir_all(path).map_err(io_err("creating", path))?;
            fs::set_permissions(path, fs::Permissions::from_mode(0o755))
                .map_err(io_err("chmod", path))
        }
        "FileOrCreate" if meta.is_none() => {
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).map_err(io_err("creating", parent))?;
            }
            fs::write(path, b"").map_err(io_err("creating", path))
        }
        "Directory" | "DirectoryOrCreate" if !meta.as_ref().is_some_and(fs::Metadata::is_dir) => {
            Err(invalid(format!(
                "hostPath type check failed: {} is not a directory",
                path.display()
            )))
        }
        "File" | "FileOrCreate" if !meta.as_ref().is_some_and(fs::Metadata::is_file) => {
            Err(invalid(format!(
                "hostPath type check failed: {} is not a file",
                path.display()
            )))
        }
        "Socket" | "CharDevice" | "BlockDevice" if meta.is_none() => Err(invalid(format!(
            "hostPath type check failed: {} does not exist",
            path.display()
        ))),
        _ => Ok(()),
    }
}

fn mount_tmpfs(dir: &Path, size: Option<i64>) -> Result<(), VolumeError> {
    if is_mount_point(dir) {
        return Ok(());
    }
    let options = size.map(|s| format!("size={s}"));
    nix::mount::mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        options.as_deref(),
    )
    .map_err(|source| VolumeError::Mount {
        action: "mounting tmpfs on",
        path: dir.to_owned(),
        source,
    })
}

/// Whether `dir` is a mount point (of a file system other than its
/// parent's, as every tmpfs is): two `stat`s, where the volumes are
/// refreshed often, instead of reading the node's whole mount table.
fn is_mount_point(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let device = |p: &Path| fs::metadata(p).map(|m| m.dev()).ok();
    match (device(dir), dir.parent().and_then(device)) {
        (Some(own), Some(parent)) => own != parent,
        _ => false,
    }
}

/// Mount points at or below `dir`, deepest first.
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = info
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| p.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

/// The CRI mounts of container `c`: its volumeMounts (with subPath).
pub fn mounts(
    c: &Container,
    volumes: &HashMap<String, PathBuf>,
) -> Result<Vec<cri::Mount>, VolumeError> {
    let mut out = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        let base = volumes.get(&m.name).ok_or_else(|| VolumeError::Invalid {
            volume: m.name.clone(),
            message: format!("container {} mounts a volume the pod does not have", c.name),
        })?;
        let host_path = match m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            Some(sub) => {
                if sub.split('/').any(|part| part == "..") || sub.starts_with('/') {
                    return Err(VolumeError::Invalid {
                        volume: m.name.clone(),
                        message: format!("subPath {sub} must be a relative path without '..'"),
                    });
                }
                let path = base.join(sub);
                if fs::symlink_metadata(&path).is_err() {
                    fs::create_dir_all(&path).map_err(io_err("creating", &path))?;
                }
                path
            }
            None => base.clone(),
        };
        out.push(cri::Mount {
            container_path: m.mount_path.clone(),
            host_path: host_path.display().to_string(),
            readonly: m.read_only.unwrap_or(false),
            propagation: match m.mount_propagation.as_deref() {
                Some("HostToContainer") => cri::MountPropagation::PropagationHostToContainer as i32,
                Some("Bidirectional") => cri::MountPropagation::PropagationBidirectional as i32,
                _ => cri::MountPropagation::PropagationPrivate as i32,
            },
            ..Default::default()
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(pairs: &[(&str, &str)]) -> Files {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (v.as_bytes().to_vec(), 0o644)))
            .collect()
    }

    #[test]
    fn a_mount_point_is_told_from_a_plain_directory() {
        assert!(is_mount_point(Path::new("/proc")));
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_mount_point(dir.path()));
        assert!(!is_mount_point(&dir.path().join("absent")));
    }

    #[test]
    fn only_volumes_that_follow_a_source_are_refreshed() {
        let pod = |volume: serde_json::Value| -> Pod {
            serde_json::from_value(serde_json::json!({
                "spec": {"containers": [], "volumes": [volume]},
            }))
            .unwrap()
        };
        assert!(!refreshed(&Pod::default()));
        assert!(!refreshed(&pod(
            serde_json::json!({"name": "v", "emptyDir": {}})
        )));
        assert!(!refreshed(&pod(
            serde_json::json!({"name": "v", "hostPath": {"path": "/tmp"}})
        )));
        for source in [
            serde_json::json!({"name": "v", "configMap": {"name": "cm"}}),
            serde_json::json!({"name": "v", "secret": {"secretName": "s"}}),
            serde_json::json!({"name": "v", "downwardAPI": {"items": []}}),
            serde_json::json!({"name": "v", "projected": {"sources": []}}),
        ] {
            assert!(refreshed(&pod(source.clone())), "{source}");
        }
    }

    #[test]
    fn atomic_writes_swap_the_data_link_and_drop_stale_names() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert!(write_atomic(d, &files(&[("key", "v1"), ("sub/nested", "n")])).unwrap());
        assert_eq!(fs::read_to_string(d.join("key")).unwrap(), "v1");
        assert_eq!(fs::read_to_string(d.join("sub/nested")).unwrap(), "n");
        assert!(
            fs::symlink_metadata(d.join("key"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        let first = fs::read_link(d.join(DATA_LINK)).unwrap();
        // Same contents: nothing is rewritten.
        assert!(!write_atomic(d, &files(&[("key", "v1"), ("sub/nested", "n")])).unwrap());
        assert!(write_atomic(d, &files(&[("key", "v2")])).unwrap());
        assert_eq!(fs::read_to_string(d.join("key")).unwrap(), "v2");
        assert!(fs::symlink_metadata(d.join("sub")).is_err());
        assert!(
            !d.join(&first).exists(),
            "the old data directory is removed"
        );
    }

    #[test]
    fn items_select_keys_with_paths_and_modes() {
        let data = BTreeMap::from([
            ("a".to_owned(), b"1".to_vec()),
            ("b".to_owned(), b"2".to_vec()),
        ]);
        let items = vec![KeyToPath {
            key: "b".into(),
            path: "dir/b.txt".into(),
            mode: Some(0o600),
        }];
        let f = key_files(&data, Some(&items), 0o644, "v", false).unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(f["dir/b.txt"], (b"2".to_vec(), 0o600));
        let missing = vec![KeyToPath {
            key: "zzz".into(),
            path: "z".into(),
            mode: None,
        }];
        assert!(key_files(&data, Some(&missing), 0o644, "v", false).is_err());
        assert!(
            key_files(&data, Some(&missing), 0o644, "v", true)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn host_path_types_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let new_dir = dir.path().join("made");
        check_host_path(&new_dir, "DirectoryOrCreate", "v").unwrap();
        assert!(new_dir.is_dir());
        assert!(check_host_path(&dir.path().join("absent"), "Directory", "v").is_err());
        check_host_path(&dir.path().join("f"), "FileOrCreate", "v").unwrap();
        assert!(check_host_path(&dir.path().join("f"), "Directory", "v").is_err());
    }
}
