//! Certificate files on disk: written atomically with the key readable
//! only by root, and read back with their lifetimes.

use std::path::Path;

use super::CertError;

pub(super) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CertError + '_ {
    move |source| CertError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes `text` to `path` through a temporary file renamed over it, with
/// `mode`; the directory is made if missing.
pub fn write_atomic(path: &Path, text: &str, mode: u32) -> Result<(), CertError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(text.as_bytes()).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// The seconds since the epoch a PEM certificate (the first of `pem`) is
/// valid from and until.
pub fn validity(pem: &str) -> Option<(i64, i64)> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok()?;
    let cert = pem.parse_x509().ok()?;
    let v = cert.validity();
    Some((v.not_before.timestamp(), v.not_after.timestamp()))
}

/// When the certificate should be renewed: 80% into its lifetime.
pub fn renew_at(pem: &str) -> Option<i64> {
    let (from, until) = validity(pem)?;
    Some(from + (until - from) * 4 / 5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_four_fifths_into_the_lifetime_and_files_are_private() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.not_before = rcgen::date_time_ymd(2030, 1, 1);
        params.not_after = rcgen::date_time_ymd(2030, 1, 11);
        let pem = params.self_signed(&key).unwrap().pem();
        let (from, until) = validity(&pem).unwrap();
        assert_eq!(until - from, 10 * 86_400);
        assert_eq!(renew_at(&pem), Some(from + 8 * 86_400));
        assert_eq!(validity("garbage"), None);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pki/key.pem");
        write_atomic(&path, "secret", 0o600).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "secret");
    }
}
