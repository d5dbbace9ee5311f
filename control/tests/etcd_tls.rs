//! etcd over mutual TLS, as a kubeadm cluster runs it: etcd trusts only
//! client certificates signed by its own CA; the API server presents
//! `apiserver-etcd-client` and works, while a client without a
//! certificate, or with one from another CA, is refused.

mod common;

use std::path::Path;
use std::time::Duration;

use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};

/// Whether a client with `tls` can read from etcd at `url`.
async fn can_read(url: &str, tls: Option<TlsOptions>) -> bool {
    let mut opts = ConnectOptions::new().with_connect_timeout(Duration::from_secs(3));
    if let Some(tls) = tls {
        opts = opts.with_tls(tls);
    }
    let attempt = async {
        let mut c = Client::connect([url], Some(opts)).await?;
        c.get("/registry/", None).await
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(10), attempt).await,
        Ok(Ok(_))
    )
}

fn pem(p: &Path) -> Vec<u8> {
    std::fs::read(p).expect("PEM file")
}

#[tokio::test]
async fn etcd_refuses_clients_without_its_certificate_and_the_api_server_works() {
    let c = common::Cluster::start();
    c.api
        .kubectl_ok(&["create", "configmap", "over-tls", "--from-literal=a=b"]);
    assert!(
        c.etcd
            .read("/registry/configmaps/default/over-tls")
            .await
            .is_some(),
        "the API server wrote through TLS"
    );

    let pki = c.etcd.pki();
    let ca = Certificate::from_pem(pem(&pki.ca));
    let url = c.etcd.url();
    // The API server's client certificate: accepted.
    let with_identity = TlsOptions::new()
        .ca_certificate(ca.clone())
        .identity(Identity::from_pem(
            pem(&pki.client_cert),
            pem(&pki.client_key),
        ));
    assert!(can_read(&url, Some(with_identity)).await);
    // TLS without a client certificate: refused.
    let anonymous = TlsOptions::new().ca_certificate(ca.clone());
    assert!(!can_read(&url, Some(anonymous)).await);
    // A certificate from the cluster CA (not etcd's): refused.
    let cluster = c.api.cert_dir();
    let foreign = TlsOptions::new()
        .ca_certificate(ca)
        .identity(Identity::from_pem(
            pem(&cluster.join("admin.crt")),
            pem(&cluster.join("admin.key")),
        ));
    assert!(!can_read(&url, Some(foreign)).await);
    // Plain HTTP: refused.
    let plain = url.replace("https://", "http://");
    assert!(!can_read(&plain, None).await);
}

#[test]
fn the_certs_subcommand_is_idempotent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_baton-control"))
            .args(["certs", "--cert-dir", dir.path().to_str().unwrap()])
            .args(["--etcd-san", "10.0.0.5"])
            .output()
            .expect("runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run();
    let files = [
        "ca.crt",
        "ca.key",
        "sa.key",
        "etcd/ca.crt",
        "etcd/ca.key",
        "etcd/server.crt",
        "etcd/server.key",
        "apiserver-etcd-client.crt",
        "apiserver-etcd-client.key",
    ];
    let first: Vec<Vec<u8>> = files.iter().map(|f| pem(&dir.path().join(f))).collect();
    run();
    let second: Vec<Vec<u8>> = files.iter().map(|f| pem(&dir.path().join(f))).collect();
    assert_eq!(first, second);
}
