//! Where the project's binaries are: the cargo output directory that the
//! running test binary (or xtask) was built into.

use std::path::{Path, PathBuf};

/// A directory holding `baton-control`, `baton-node`, `baton-cni`.
#[derive(Debug, Clone)]
pub struct Binaries {
    dir: PathBuf,
}

impl Binaries {
    /// Binaries in `dir` (e.g. `target/debug`).
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The binaries built alongside the running executable: a test binary
    /// lives in `target/<profile>/deps/`, the binaries in `target/<profile>/`.
    /// `cargo xtask test` builds them before running the tests.
    pub fn beside_current_exe() -> Self {
        let exe = std::env::current_exe().expect("the running executable has a path");
        let mut dir = exe
            .parent()
            .expect("an executable lives in a directory")
            .to_path_buf();
        if dir.file_name().is_some_and(|n| n == "deps") {
            dir.pop();
        }
        Self { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of binary `name`, checked to exist.
    pub fn path(&self, name: &str) -> Result<PathBuf, MissingBinary> {
        let path = self.dir.join(name);
        if path.is_file() {
            Ok(path)
        } else {
            Err(MissingBinary { path })
        }
    }
}

/// A binary the cluster needs was not built.
#[derive(Debug, thiserror::Error)]
#[error("{} is missing: build it first (`cargo xtask build`; `cargo xtask test` does this)", path.display())]
pub struct MissingBinary {
    pub path: PathBuf,
}
