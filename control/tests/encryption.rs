//! Secrets encrypted at rest (`--encryption-provider-config`): what etcd
//! holds is the provider's ciphertext under `k8s:enc:<provider>:v1:<key>:`,
//! and keys rotate by kube-apiserver's documented procedure (new key first,
//! restart, rewrite every Secret, drop the old key).

mod common;

use std::path::Path;

const KEY1: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const KEY2: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";
const PASSWORD: &str = "hunter2-in-plain-text";

/// An EncryptionConfiguration for Secrets with `providers` (YAML items).
fn write_config(path: &Path, providers: &str) {
    let text = format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: [secrets]\n    providers:\n{providers}"
    );
    std::fs::write(path, text).expect("config written");
}

fn aesgcm(name: &str, secret: &str) -> String {
    format!(
        "      - aesgcm:\n          keys:\n            - name: {name}\n              secret: {secret}\n"
    )
}

const IDENTITY: &str = "      - identity: {}\n";

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// The `data` of every Secret in the cluster, by namespace/name.
fn all_secret_data(api: &common::ApiServer) -> Vec<(String, serde_json::Value)> {
    let out = api.kubectl_ok(&["get", "secrets", "-A", "-o", "json"]);
    let list: serde_json::Value = serde_json::from_str(&out).expect("json list");
    let mut items: Vec<(String, serde_json::Value)> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|s| {
            (
                format!(
                    "{}/{}",
                    s["metadata"]["namespace"].as_str().unwrap_or_default(),
                    s["metadata"]["name"].as_str().unwrap_or_default()
                ),
                s["data"].clone(),
            )
        })
        .collect();
    items.sort_by(|a, b| a.0.cmp(&b.0));
    items
}

/// Every stored Secret's raw value.
async fn stored_secrets(etcd: &common::Etcd) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for key in etcd.keys("/registry/secrets/").await {
        let value = etcd.read(&key).await.expect("value");
        out.push((key, value));
    }
    out
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn secrets_are_encrypted_in_etcd_and_keys_rotate() {
    let etcd = common::Etcd::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("encryption.yaml");

    // A Secret written before encryption is turned on stays plaintext, and
    // is read through `identity`.
    let mut api = common::ApiServer::start(&etcd);
    api.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "before",
        "--from-literal=password=early-plain",
    ]);
    api.stop();
    assert!(contains(
        &etcd
            .read("/registry/secrets/default/before")
            .await
            .expect("stored"),
        &b64("early-plain")
    ));

    write_config(&config, &(aesgcm("key1", KEY1) + IDENTITY));
    let flag = format!("--encryption-provider-config={}", config.display());
    api.extra.push(flag);
    api.resume();
    api.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "db",
        &format!("--from-literal=password={PASSWORD}"),
    ]);
    api.kubectl_ok(&["create", "namespace", "other"]);
    api.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "tls-ish",
        "-n",
        "other",
        "--from-literal=k=v2",
    ]);
    let raw = etcd
        .read("/registry/secrets/default/db")
        .await
        .expect("stored");
    assert!(
        raw.starts_with(b"k8s:enc:aesgcm:v1:key1:"),
        "{}",
        String::from_utf8_lossy(&raw)
    );
    assert!(!contains(&raw, &b64(PASSWORD)));
    assert!(!contains(&raw, PASSWORD));
    assert!(!contains(&raw, "\"kind\""));
    // Other resources are not encrypted.
    let ns = etcd
        .read("/registry/namespaces/other")
        .await
        .expect("stored");
    assert!(ns.starts_with(b"{"), "{}", String::from_utf8_lossy(&ns));
    let got = api.kubectl_ok(&["get", "secret", "db", "-o", "jsonpath={.data.password}"]);
    assert_eq!(got, b64(PASSWORD));
    let got = api.kubectl_ok(&["get", "secret", "before", "-o", "jsonpath={.data.password}"]);
    assert_eq!(got, b64("early-plain"));
    let before = all_secret_data(&api);
    assert!(before.len() >= 3, "{before:?}");

    // Rotation: the new key first, restart, rewrite every Secret.
    api.stop();
    write_config(
        &config,
        &(aesgcm("key2", KEY2) + &aesgcm("key1", KEY1) + IDENTITY),
    );
    api.resume();
    assert_eq!(all_secret_data(&api), before);
    let json = api.kubectl_ok(&["get", "secrets", "-A", "-o", "json"]);
    let replaced = api.kubectl_stdin(&["replace", "-f", "-"], &json);
    assert!(replaced.status.success(), "{}", common::stderr(&replaced));
    let stored = stored_secrets(&etcd).await;
    assert_eq!(stored.len(), before.len());
    for (key, value) in &stored {
        assert!(
            value.starts_with(b"k8s:enc:aesgcm:v1:key2:"),
            "{key}: {}",
            String::from_utf8_lossy(value)
        );
    }
    assert_eq!(all_secret_data(&api), before);

    // The old key and identity removed: everything still reads.
    api.stop();
    write_config(&config, &aesgcm("key2", KEY2));
    api.resume();
    assert_eq!(all_secret_data(&api), before);
    let got = api.kubectl_ok(&[
        "get",
        "secret",
        "db",
        "-n",
        "default",
        "-o",
        "jsonpath={.data.password}",
    ]);
    assert_eq!(got, b64(PASSWORD));
    // A write after the rotation uses the remaining key.
    api.kubectl_ok(&["create", "secret", "generic", "late", "--from-literal=a=b"]);
    let late = etcd
        .read("/registry/secrets/default/late")
        .await
        .expect("stored");
    assert!(late.starts_with(b"k8s:enc:aesgcm:v1:key2:"));
}

#[tokio::test]
async fn a_value_no_configured_provider_reads_is_an_internal_error() {
    let etcd = common::Etcd::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("encryption.yaml");
    write_config(&config, &aesgcm("key1", KEY1));
    let flag = format!("--encryption-provider-config={}", config.display());
    let api = common::ApiServer::start_with(&etcd, &[&flag]);
    api.kubectl_ok(&["create", "secret", "generic", "s", "--from-literal=a=b"]);
    // A plaintext value planted behind the server's back: no `identity`
    // provider is listed, so it has no matching prefix.
    let mut c = etcd.client().await;
    c.put(
        "/registry/secrets/default/planted",
        br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"planted","namespace":"default"}}"#.to_vec(),
        None,
    )
    .await
    .expect("put");
    let out = api.kubectl(&["get", "secret", "planted"]);
    assert!(!out.status.success());
    let err = common::stderr(&out);
    assert!(err.contains("no matching prefix found"), "{err}");
    let ok = api.kubectl_ok(&["get", "secret", "s", "-o", "jsonpath={.data.a}"]);
    assert_eq!(ok, b64("b"));
}

#[test]
fn a_bad_configuration_stops_the_server_with_upstreams_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("encryption.yaml");
    write_config(
        &config,
        "      - aesgcm:\n          keys:\n            - name: k\n              secret: c2hvcnQ=\n",
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_baton-control"))
        .arg("apiserver")
        .arg(format!("--encryption-provider-config={}", config.display()))
        .args(["--cert-dir", dir.path().join("pki").to_str().unwrap()])
        .args(["--etcd-servers", "http://127.0.0.1:1"])
        .args(["--bind-address", "127.0.0.1", "--secure-port", "0"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("secret is not of the expected length, got 5, expected one of [16 24 32]"),
        "{err}"
    );
}
