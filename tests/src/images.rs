//! The cluster's container images, built without docker or a registry: OCI
//! image archives written from files (the project's own static binaries and
//! busybox-static), imported into a node's containerd with `ctr`.
//!
//! - `baton.local/pause:1`: `/pause` (the sandbox image of every node).
//! - `baton.local/echo:1`: `/echo` (HTTP/TCP/UDP echo server, see
//!   `tests/images/src/bin/echo/main.rs`) as entrypoint, plus busybox with `sh`,
//!   `cat`, `sleep`, `wget`… so `kubectl exec` and shell commands work.
//!
//! An archive is an OCI image layout in a tar file (`oci-layout`,
//! `index.json`, `blobs/sha256/…`) holding one manifest, one config and one
//! gzip'd layer. Builds are reproducible: fixed timestamps and owners, so
//! the same inputs give the same digests.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use flate2::Compression;
use flate2::GzBuilder;
use serde_json::json;
use sha2::{Digest as _, Sha256};

use crate::exec::{self, CommandError};

/// The sandbox (pause) image every node's containerd uses.
pub const PAUSE_IMAGE: &str = "baton.local/pause:1";
/// The echo server image with busybox.
pub const ECHO_IMAGE: &str = "baton.local/echo:1";
/// The Rust target the image binaries are built for (static, no libc needed).
pub const IMAGE_TARGET: &str = "x86_64-unknown-linux-musl";
/// busybox-static's binary (Debian package `busybox-static`).
pub const BUSYBOX: &str = "/bin/busybox";
/// busybox applets linked into the echo image's `/bin`.
pub const BUSYBOX_APPLETS: &[&str] = &[
    "sh",
    "ash",
    "cat",
    "sleep",
    "wget",
    "ls",
    "echo",
    "touch",
    "rm",
    "mkdir",
    "ps",
    "kill",
    "env",
    "hostname",
    "ip",
    "ping",
    "nc",
    "nslookup",
    "grep",
    "head",
    "tail",
    "date",
    "true",
    "false",
    "test",
    "[",
    "id",
    "mount",
    "df",
    "stat",
    "readlink",
    "wc",
    "sort",
    "tr",
    "dd",
    "mv",
    "cp",
    "ln",
    "chmod",
    "find",
    "xargs",
    "seq",
    "printf",
    "uname",
    "tar",
    "gzip",
    "gunzip",
    "zcat",
    "sed",
    "awk",
    "cut",
    "tee",
    "du",
    "base64",
    "sha256sum",
    "md5sum",
    "timeout",
    "pwd",
    "dirname",
    "basename",
    "expr",
    "which",
    "pidof",
    "top",
    "netstat",
    "free",
    "nproc",
    "whoami",
    "vi",
    "less",
    "od",
    "hexdump",
    "dmesg",
    "route",
    "ifconfig",
    "traceroute",
    "arp",
    "telnet",
];
/// Where CRI-managed images live in containerd.
pub const CRI_NAMESPACE: &str = "k8s.io";

const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
/// Timestamp of every entry (reproducible digests).
const EPOCH: u64 = 0;

/// Errors building or importing images.
#[derive(Debug, thiserror::Error)]
pub enum ImagesError {
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{what} is not a statically linked executable ({})", path.display())]
    NotStatic { what: &'static str, path: PathBuf },
    #[error(transparent)]
    Command(#[from] Box<CommandError>),
}

impl From<CommandError> for ImagesError {
    fn from(err: CommandError) -> Self {
        Self::Command(Box::new(err))
    }
}

/// One entry of an image's single layer.
#[derive(Debug, Clone)]
pub enum Entry {
    Dir {
        path: String,
        mode: u32,
    },
    File {
        path: String,
        data: Vec<u8>,
        mode: u32,
    },
    Symlink {
        path: String,
        target: String,
    },
}

/// What an image holds and how it runs.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct ImageSpec {
    /// Full reference, e.g. `baton.local/echo:1`.
    pub name: String,
    pub entries: Vec<Entry>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    /// Ports in the config's `ExposedPorts` (`8080/tcp`).
    pub exposed_ports: Vec<String>,
}

/// A written archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archive {
    pub name: String,
    pub path: PathBuf,
    /// `sha256:…` of the manifest (what containerd reports as the image's
    /// repo digest).
    pub manifest_digest: String,
    /// `sha256:…` of the config (the image ID CRI reports).
    pub config_digest: String,
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ImagesError {
    move |source| ImagesError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// The base directories every image has (runc creates mount points, but
/// programs expect `/tmp` and `/etc`).
fn base_entries() -> Vec<Entry> {
    let dir = |path: &str, mode| Entry::Dir {
        path: path.to_owned(),
        mode,
    };
    vec![
        dir("bin", 0o755),
        dir("dev", 0o755),
        dir("etc", 0o755),
        dir("proc", 0o755),
        dir("sys", 0o755),
        dir("root", 0o700),
        dir("tmp", 0o1777),
        dir("var", 0o755),
        Entry::File {
            path: "etc/passwd".into(),
            data: b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"
                .to_vec(),
            mode: 0o644,
        },
        Entry::File {
            path: "etc/group".into(),
            data: b"root:x:0:\nnogroup:x:65534:\n".to_vec(),
            mode: 0o644,
        },
    ]
}

/// The pause image around the `pause` binary at `pause_bin`.
pub fn pause_image(pause_bin: &Path) -> Result<ImageSpec, ImagesError> {
    let data = read_static(pause_bin, "the pause binary")?;
    let mut entries = base_entries();
    entries.push(Entry::File {
        path: "pause".into(),
        data,
        mode: 0o755,
    });
    Ok(ImageSpec {
        name: PAUSE_IMAGE.into(),
        entries,
        entrypoint: vec!["/pause".into()],
        env: vec!["PATH=/bin".into()],
        working_dir: "/".into(),
        ..ImageSpec::default()
    })
}

/// The echo image: the `echo` binary at `echo_bin` as entrypoint, and
/// busybox with its applets in `/bin`.
pub fn echo_image(echo_bin: &Path, busybox: &Path) -> Result<ImageSpec, ImagesError> {
    let echo = read_static(echo_bin, "the echo binary")?;
    let busybox = read_static(busybox, "busybox")?;
    let mut entries = base_entries();
    entries.push(Entry::File {
        path: "echo".into(),
        data: echo,
        mode: 0o755,
    });
    entries.push(Entry::File {
        path: "bin/busybox".into(),
        data: busybox,
        mode: 0o755,
    });
    entries.extend(BUSYBOX_APPLETS.iter().map(|applet| Entry::Symlink {
        path: format!("bin/{applet}"),
        target: "busybox".into(),
    }));
    Ok(ImageSpec {
        name: ECHO_IMAGE.into(),
        entries,
        entrypoint: vec!["/echo".into()],
        env: vec!["PATH=/bin".into()],
        working_dir: "/".into(),
        exposed_ports: vec!["8080/tcp".into(), "9000/tcp".into(), "5353/udp".into()],
        ..ImageSpec::default()
    })
}

/// Reads an executable that must be static (it runs in an image without a
/// libc): an ELF file without a `PT_INTERP` program header.
fn read_static(path: &Path, what: &'static str) -> Result<Vec<u8>, ImagesError> {
    let data = fs::read(path).map_err(io_err("reading", path))?;
    if !is_static_elf(&data) {
        return Err(ImagesError::NotStatic {
            what,
            path: path.to_owned(),
        });
    }
    Ok(data)
}

/// Whether `data` is a 64-bit little-endian ELF without an interpreter.
fn is_static_elf(data: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    let read_u16 = |at: usize| {
        data.get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let read_u64 = |at: usize| {
        data.get(at..at + 8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    };
    if data.len() < 64 || &data[..4] != b"\x7fELF" || data[4] != 2 || data[5] != 1 {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) =
        (read_u64(0x20), read_u16(0x36), read_u16(0x38))
    else {
        return false;
    };
    let Ok(phoff) = usize::try_from(phoff) else {
        return false;
    };
    (0..usize::from(phnum)).all(|i| {
        let at = phoff + i * usize::from(phentsize);
        data.get(at..at + 4)
            .is_some_and(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) != PT_INTERP)
    })
}

/// The uncompressed layer tar of `entries` (sorted, fixed owners and times).
fn layer_tar(entries: &[Entry]) -> Result<Vec<u8>, io::Error> {
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    sorted.sort_by(|a, b| entry_path(a).cmp(entry_path(b)));
    let mut builder = tar::Builder::new(Vec::new());
    for entry in sorted {
        let mut header = tar::Header::new_gnu();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(EPOCH);
        match entry {
            Entry::Dir { path, mode } => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(*mode);
                header.set_size(0);
                builder.append_data(&mut header, format!("{path}/"), io::empty())?;
            }
            Entry::File { path, data, mode } => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(*mode);
                header.set_size(data.len() as u64);
                builder.append_data(&mut header, path, data.as_slice())?;
            }
            Entry::Symlink { path, target } => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                builder.append_link(&mut header, path, target)?;
            }
        }
    }
    builder.into_inner()
}

fn entry_path(entry: &Entry) -> &str {
    match entry {
        Entry::Dir { path, .. } | Entry::File { path, .. } | Entry::Symlink { path, .. } => path,
    }
}

fn gzip(data: &[u8]) -> Result<Vec<u8>, io::Error> {
    // mtime 0 and no file name: the same layer always has the same digest.
    let mut encoder = GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), Compression::default());
    encoder.write_all(data)?;
    encoder.finish()
}

/// Writes `spec` as an OCI image archive at `out` (parents created).
pub fn write_archive(spec: &ImageSpec, out: &Path) -> Result<Archive, ImagesError> {
    let build = || -> Result<(Vec<u8>, String, String), io::Error> {
        let layer = layer_tar(&spec.entries)?;
        let diff_id = sha256(&layer);
        let layer_gz = gzip(&layer)?;
        let layer_digest = sha256(&layer_gz);
        let exposed: BTreeMap<&str, serde_json::Value> = spec
            .exposed_ports
            .iter()
            .map(|p| (p.as_str(), json!({})))
            .collect();
        let config = serde_json::to_vec(&json!({
            "architecture": "amd64",
            "os": "linux",
            "created": "1970-01-01T00:00:00Z",
            "config": {
                "Entrypoint": spec.entrypoint,
                "Cmd": if spec.cmd.is_empty() { serde_json::Value::Null } else { json!(spec.cmd) },
                "Env": spec.env,
                "WorkingDir": spec.working_dir,
                "ExposedPorts": exposed,
            },
            "rootfs": { "type": "layers", "diff_ids": [diff_id] },
            "history": [{ "created": "1970-01-01T00:00:00Z", "created_by": "baton-e2e images" }],
        }))?;
        let config_digest = sha256(&config);
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": { "mediaType": CONFIG_MEDIA_TYPE, "digest": config_digest, "size": config.len() },
            "layers": [{ "mediaType": LAYER_MEDIA_TYPE, "digest": layer_digest, "size": layer_gz.len() }],
        }))?;
        let manifest_digest = sha256(&manifest);
        let tag = spec.name.rsplit_once(':').map_or("latest", |(_, t)| t);
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": INDEX_MEDIA_TYPE,
            "manifests": [{
                "mediaType": MANIFEST_MEDIA_TYPE,
                "digest": manifest_digest,
                "size": manifest.len(),
                "platform": { "architecture": "amd64", "os": "linux" },
                "annotations": {
                    // containerd names the imported image after this one.
                    "io.containerd.image.name": spec.name,
                    "org.opencontainers.image.ref.name": tag,
                },
            }],
        }))?;
        let mut archive = tar::Builder::new(Vec::new());
        let mut add = |path: &str, data: &[u8]| -> io::Result<()> {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(0o644);
            header.set_mtime(EPOCH);
            header.set_size(data.len() as u64);
            archive.append_data(&mut header, path, data)
        };
        add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        add("index.json", &index)?;
        for (digest, blob) in [
            (&layer_digest, &layer_gz),
            (&config_digest, &config),
            (&manifest_digest, &manifest),
        ] {
            let hex = digest.trim_start_matches("sha256:");
            add(&format!("blobs/sha256/{hex}"), blob)?;
        }
        Ok((archive.into_inner()?, manifest_digest, config_digest))
    };
    let (bytes, manifest_digest, config_digest) = build().map_err(io_err("building", out))?;
    if let Some(parent) = out.parent() {
        fs::create_dir_all(parent).map_err(io_err("creating", parent))?;
    }
    // Written beside and renamed, so a reader never sees half an archive.
    let tmp = out.with_extension(format!("tar.{}.tmp", std::process::id()));
    fs::write(&tmp, &bytes).map_err(io_err("writing", &tmp))?;
    fs::rename(&tmp, out).map_err(io_err("renaming into", out))?;
    Ok(Archive {
        name: spec.name.clone(),
        path: out.to_owned(),
        manifest_digest,
        config_digest,
    })
}

/// The cargo target directory of this workspace: `$CARGO_TARGET_DIR`, or
/// `target/` at the repository root.
#[must_use]
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || repo_root().join("target"),
        |dir| {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                repo_root().join(dir)
            }
        },
    )
}

/// The repository root (the parent of the harness crate).
#[must_use]
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the harness crate is one level below the root")
        .to_owned()
}

/// Where [`build_standard`] writes the archives: `<target>/baton/images`.
#[must_use]
pub fn archives_dir() -> PathBuf {
    target_dir().join("baton").join("images")
}

/// Where the image binaries are built: pause, echo, and the benchmarks'
/// load generator.
pub fn binaries_dir() -> PathBuf {
    target_dir().join(IMAGE_TARGET).join("release")
}

/// Builds the image binaries (`baton-images`, release, for
/// [`IMAGE_TARGET`]) with `cargo` and writes the pause and echo archives
/// into `out_dir`. Returns them, pause first.
pub fn build_standard(cargo: &Path, out_dir: &Path) -> Result<Vec<Archive>, ImagesError> {
    let mut cmd = Command::new(cargo);
    cmd.current_dir(repo_root()).args([
        "build",
        "--release",
        "-p",
        "baton-images",
        "--target",
        IMAGE_TARGET,
    ]);
    exec::run(&mut cmd, Duration::from_secs(900))?.check()?;
    let bins = binaries_dir();
    let pause = pause_image(&bins.join("pause"))?;
    let echo = echo_image(&bins.join("echo"), Path::new(BUSYBOX))?;
    Ok(vec![
        write_archive(&pause, &out_dir.join("pause.tar"))?,
        write_archive(&echo, &out_dir.join("echo.tar"))?,
    ])
}

/// The standard archives in [`archives_dir`], built (again) once per
/// process: the build is incremental, so an unchanged image costs a no-op
/// `cargo build`, and a changed echo server or pause never leaves a stale
/// archive behind. `cargo xtask images` builds them ahead of the tests.
pub fn ensure_standard() -> Result<Vec<PathBuf>, ImagesError> {
    static BUILT: std::sync::Mutex<Option<Vec<PathBuf>>> = std::sync::Mutex::new(None);
    let mut built = BUILT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(paths) = built.as_ref() {
        return Ok(paths.clone());
    }
    let cargo = std::env::var_os("CARGO").map_or_else(|| PathBuf::from("cargo"), PathBuf::from);
    let paths: Vec<PathBuf> = build_standard(&cargo, &archives_dir())?
        .into_iter()
        .map(|a| a.path)
        .collect();
    *built = Some(paths.clone());
    Ok(paths)
}

/// Imports an OCI archive into the CRI namespace of the containerd
/// listening on `socket` (`ctr images import`, which also unpacks it into
/// the default snapshotter, as CRI needs).
pub fn import(socket: &Path, archive: &Path) -> Result<(), ImagesError> {
    let mut cmd = Command::new("ctr");
    cmd.arg("--address")
        .arg(socket)
        .args(["--namespace", CRI_NAMESPACE, "images", "import"])
        .arg(archive);
    exec::run(&mut cmd, Duration::from_secs(120))?.check()?;
    Ok(())
}

/// Pushes the image of an OCI archive written by [`write_archive`] to the
/// registry at `registry` (`127.0.0.1:5000`, plain HTTP) as
/// `<repository>:<tag>`, from inside `netns` (where the registry listens),
/// with `curl`: every blob (upload session, then one PUT), then the
/// manifest.
pub fn push(
    netns: &crate::Netns,
    archive: &Path,
    registry: &str,
    repository: &str,
    tag: &str,
    scratch: &Path,
) -> Result<(), ImagesError> {
    let file = fs::File::open(archive).map_err(io_err("opening", archive))?;
    let mut tar = tar::Archive::new(file);
    let dir = scratch.join(format!("push-{repository}-{tag}"));
    fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
    tar.unpack(&dir).map_err(io_err("unpacking", archive))?;
    let index_path = dir.join("index.json");
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(&index_path).map_err(io_err("reading", &index_path))?)
            .map_err(|e| io_err("parsing", &index_path)(io::Error::other(e)))?;
    let manifest_digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let blob = |digest: &str| {
        dir.join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    };
    let manifest_path = blob(&manifest_digest);
    let manifest: serde_json::Value = serde_json::from_slice(
        &fs::read(&manifest_path).map_err(io_err("reading", &manifest_path))?,
    )
    .map_err(|e| io_err("parsing", &manifest_path)(io::Error::other(e)))?;
    let mut digests: Vec<String> = vec![
        manifest["config"]["digest"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    ];
    digests.extend(
        manifest["layers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["digest"].as_str().map(str::to_owned)),
    );
    let timeout = Duration::from_secs(60);
    for digest in &digests {
        // Start an upload session, then finish it with the whole blob.
        let start = format!("http://{registry}/v2/{repository}/blobs/uploads/");
        let head = netns.run_ok(
            "curl",
            ["-sSf", "-X", "POST", "-D", "-", "-o", "/dev/null", &start],
            timeout,
        )?;
        let location = head
            .stdout
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("location")
                    .then(|| v.trim().to_owned())
            })
            .unwrap_or_default();
        let location = if location.starts_with('/') {
            format!("http://{registry}{location}")
        } else {
            location
        };
        let separator = if location.contains('?') { '&' } else { '?' };
        let url = format!("{location}{separator}digest={digest}");
        let data = format!("@{}", blob(digest).display());
        netns.run_ok(
            "curl",
            [
                "-sSf",
                "-X",
                "PUT",
                "-H",
                "Content-Type: application/octet-stream",
                "--data-binary",
                &data,
                &url,
            ],
            timeout,
        )?;
    }
    let url = format!("http://{registry}/v2/{repository}/manifests/{tag}");
    let data = format!("@{}", manifest_path.display());
    let content_type = format!("Content-Type: {MANIFEST_MEDIA_TYPE}");
    netns.run_ok(
        "curl",
        [
            "-sSf",
            "-X",
            "PUT",
            "-H",
            &content_type,
            "--data-binary",
            &data,
            &url,
        ],
        timeout,
    )?;
    let _ = fs::remove_dir_all(&dir);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_spec() -> ImageSpec {
        ImageSpec {
            name: "baton.local/test:7".into(),
            entries: vec![
                Entry::File {
                    path: "bin/x".into(),
                    data: b"hello".to_vec(),
                    mode: 0o755,
                },
                Entry::Symlink {
                    path: "bin/y".into(),
                    target: "x".into(),
                },
                Entry::Dir {
                    path: "bin".into(),
                    mode: 0o755,
                },
            ],
            entrypoint: vec!["/bin/x".into()],
            ..ImageSpec::default()
        }
    }

    #[test]
    fn archives_are_reproducible_oci_layouts_with_consistent_digests() {
        let dir = tempfile::tempdir().unwrap();
        let a = write_archive(&tiny_spec(), &dir.path().join("a.tar")).unwrap();
        let b = write_archive(&tiny_spec(), &dir.path().join("b.tar")).unwrap();
        assert_eq!(a.manifest_digest, b.manifest_digest);
        assert_eq!(fs::read(&a.path).unwrap(), fs::read(&b.path).unwrap());

        let mut files = BTreeMap::new();
        let mut archive = tar::Archive::new(fs::File::open(&a.path).unwrap());
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            io::Read::read_to_end(&mut entry, &mut data).unwrap();
            files.insert(path, data);
        }
        // Every blob is stored under its own digest.
        for (path, data) in &files {
            if let Some(hex) = path.strip_prefix("blobs/sha256/") {
                assert_eq!(sha256(data), format!("sha256:{hex}"));
            }
        }
        let index: serde_json::Value = serde_json::from_slice(&files["index.json"]).unwrap();
        let desc = &index["manifests"][0];
        assert_eq!(desc["digest"], a.manifest_digest.as_str());
        assert_eq!(
            desc["annotations"]["io.containerd.image.name"],
            "baton.local/test:7"
        );
        assert_eq!(
            desc["annotations"]["org.opencontainers.image.ref.name"],
            "7"
        );
        let manifest_hex = a.manifest_digest.trim_start_matches("sha256:");
        let manifest: serde_json::Value =
            serde_json::from_slice(&files[&format!("blobs/sha256/{manifest_hex}")]).unwrap();
        assert_eq!(manifest["config"]["digest"], a.config_digest.as_str());
        let config_hex = a.config_digest.trim_start_matches("sha256:");
        let config: serde_json::Value =
            serde_json::from_slice(&files[&format!("blobs/sha256/{config_hex}")]).unwrap();
        assert_eq!(config["config"]["Entrypoint"][0], "/bin/x");

        // The layer's diff_id is the digest of the uncompressed tar, whose
        // entries are sorted, owned by root and carry their modes.
        let layer_hex = manifest["layers"][0]["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:")
            .to_owned();
        let gz = &files[&format!("blobs/sha256/{layer_hex}")];
        let mut raw = Vec::new();
        io::Read::read_to_end(&mut flate2::read::GzDecoder::new(gz.as_slice()), &mut raw).unwrap();
        assert_eq!(config["rootfs"]["diff_ids"][0], sha256(&raw).as_str());
        let mut layer = tar::Archive::new(raw.as_slice());
        let entries: Vec<(String, u32, tar::EntryType)> = layer
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    e.header().mode().unwrap(),
                    e.header().entry_type(),
                )
            })
            .collect();
        assert_eq!(
            entries,
            [
                ("bin/".to_owned(), 0o755, tar::EntryType::Directory),
                ("bin/x".to_owned(), 0o755, tar::EntryType::Regular),
                ("bin/y".to_owned(), 0o777, tar::EntryType::Symlink),
            ]
        );
    }

    #[test]
    fn only_static_executables_go_into_images() {
        let busybox = Path::new(BUSYBOX);
        if busybox.exists() {
            assert!(is_static_elf(&fs::read(busybox).unwrap()));
        }
        // A dynamically linked program has an interpreter.
        assert!(!is_static_elf(&fs::read("/bin/sh").unwrap()));
        assert!(!is_static_elf(b"#!/bin/sh\n"));
    }
}
