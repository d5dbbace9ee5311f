//! etcd's PKI, laid out as kubeadm's beside the cluster's: a CA of its own
//! (`etcd/ca.crt|key`), etcd's serving certificate (`etcd/server.crt|key`,
//! for server and client auth, SANs `localhost`, `127.0.0.1`, `::1`, the
//! host name and any extra names or addresses), and the API server's client
//! certificate signed by the etcd CA (`apiserver-etcd-client.crt|key`).
//! Created idempotently: existing files are kept, and the serving
//! certificate is reissued only when its SANs change.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use rcgen::ExtendedKeyUsagePurpose;

use super::certs::{self, Ca, CertError, Pair};

/// Paths of etcd's PKI under a cert dir.
#[derive(Debug, Clone)]
pub struct EtcdPki {
    /// `etcd/ca.crt`: etcd's `--trusted-ca-file`, the API server's
    /// `--etcd-cafile`.
    pub ca: PathBuf,
    /// `etcd/server.crt|key`: etcd's `--cert-file`/`--key-file`.
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// `apiserver-etcd-client.crt|key`: the API server's `--etcd-certfile`
    /// and `--etcd-keyfile`.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl EtcdPki {
    /// Where the files live under `dir`.
    pub fn paths(dir: &Path) -> Self {
        let etcd = dir.join("etcd");
        EtcdPki {
            ca: etcd.join("ca.crt"),
            server_cert: etcd.join("server.crt"),
            server_key: etcd.join("server.key"),
            client_cert: dir.join("apiserver-etcd-client.crt"),
            client_key: dir.join("apiserver-etcd-client.key"),
        }
    }
}

/// The SANs of etcd's serving certificate: the loopback names and
/// addresses, the host name, and `extra` (each an IP address or a DNS
/// name).
pub fn server_sans(extra: &[String]) -> (Vec<String>, Vec<IpAddr>) {
    let mut dns = vec!["localhost".to_string()];
    let mut ips = vec![
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ];
    if let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let h = h.trim();
        if !h.is_empty() {
            dns.push(h.to_string());
        }
    }
    for san in extra {
        match san.parse::<IpAddr>() {
            Ok(ip) => ips.push(ip),
            Err(_) => dns.push(san.clone()),
        }
    }
    dns.sort();
    dns.dedup();
    ips.sort();
    ips.dedup();
    (dns, ips)
}

/// Creates what is missing of etcd's PKI under `dir`.
pub fn ensure(dir: &Path, extra_sans: &[String]) -> Result<EtcdPki, CertError> {
    let paths = EtcdPki::paths(dir);
    let etcd_dir = dir.join("etcd");
    let ca = Ca::load_or_create_named(&etcd_dir, "etcd-ca")?;
    let (dns, ips) = server_sans(extra_sans);
    let wanted = format!(
        "{}\n{}\n",
        dns.join(","),
        ips.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    );
    let sans = etcd_dir.join("server.sans");
    let current = paths.server_cert.exists()
        && paths.server_key.exists()
        && certs::read(&sans).ok().as_deref() == Some(wanted.as_str());
    if !current {
        let pair = ca.issue_server(
            "kube-etcd",
            &dns,
            &ips,
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        )?;
        write_pair(&paths.server_cert, &paths.server_key, &pair)?;
        certs::write(&sans, &wanted, false)?;
    }
    if !(paths.client_cert.exists() && paths.client_key.exists()) {
        let pair = ca.issue_client("kube-apiserver-etcd-client", &[])?;
        write_pair(&paths.client_cert, &paths.client_key, &pair)?;
    }
    Ok(paths)
}

fn write_pair(cert: &Path, key: &Path, pair: &Pair) -> Result<(), CertError> {
    certs::write(key, &pair.key_pem, true)?;
    certs::write(cert, &pair.cert_pem, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject_and_sans(path: &Path) -> (String, Vec<String>, String) {
        let pem = std::fs::read(path).unwrap();
        let der = rustls_pemfile::certs(&mut pem.as_slice())
            .next()
            .unwrap()
            .unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let cn = cert
            .subject()
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap()
            .to_string();
        let sans = cert
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|s| {
                s.value
                    .general_names
                    .iter()
                    .map(|n| n.to_string())
                    .collect()
            })
            .unwrap_or_default();
        (cn, sans, cert.issuer().to_string())
    }

    #[test]
    fn the_pki_is_kubeadms_and_created_once() {
        let dir = tempfile::tempdir().unwrap();
        let pki = ensure(dir.path(), &["10.1.2.3".into(), "etcd.example".into()]).unwrap();
        for f in [
            &pki.ca,
            &pki.server_cert,
            &pki.server_key,
            &pki.client_cert,
            &pki.client_key,
        ] {
            assert!(f.exists(), "{}", f.display());
        }
        assert!(dir.path().join("etcd/ca.key").exists());
        let (cn, sans, issuer) = subject_and_sans(&pki.server_cert);
        assert_eq!(cn, "kube-etcd");
        assert!(issuer.contains("etcd-ca"), "{issuer}");
        let sans = sans.join(" ");
        // x509-parser shows addresses as hex bytes.
        for want in [
            "DNSName(localhost)",
            "DNSName(etcd.example)",
            "IPAddress(7f:00:00:01)",
            "IPAddress(0a:01:02:03)",
        ] {
            assert!(sans.contains(want), "{want} missing from {sans}");
        }
        let (cn, _, issuer) = subject_and_sans(&pki.client_cert);
        assert_eq!(cn, "kube-apiserver-etcd-client");
        assert!(issuer.contains("etcd-ca"), "{issuer}");
        // A second run keeps every file.
        let before: Vec<Vec<u8>> = [&pki.ca, &pki.server_cert, &pki.client_cert]
            .iter()
            .map(|p| std::fs::read(p).unwrap())
            .collect();
        let again = ensure(dir.path(), &["10.1.2.3".into(), "etcd.example".into()]).unwrap();
        let after: Vec<Vec<u8>> = [&again.ca, &again.server_cert, &again.client_cert]
            .iter()
            .map(|p| std::fs::read(p).unwrap())
            .collect();
        assert_eq!(before, after);
        // The cluster CA is a different one.
        let cluster = Ca::load_or_create(dir.path()).unwrap();
        assert_ne!(cluster.cert_pem.as_bytes(), before[0].as_slice());
    }
}
