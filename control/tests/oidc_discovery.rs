//! Service-account issuer discovery against the real API server: a
//! service account reads the OpenID configuration and the key set (the
//! `system:service-account-issuer-discovery` binding), a token from the
//! TokenRequest API verifies with the served key, the key set's URL
//! follows `--service-account-jwks-uri`, and a user without a binding is
//! refused.

mod common;
mod support;

use std::path::Path;

use baton_control::apiserver::auth::tokens::{Claims, ISSUER};
use common::{ApiServer, Etcd, stderr};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use support::users::{as_user, kubeconfig_with};

const CONFIG: &str = "/.well-known/openid-configuration";
const JWKS: &str = "/openid/v1/jwks";

/// A kube-rs client with the credentials of `kubeconfig`.
async fn client_of(kubeconfig: &Path) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .expect("config");
    kube::Client::try_from(cfg).expect("client")
}

/// GET `path`: status, content type, cache control and JSON body.
async fn get(client: &kube::Client, path: &str) -> (u16, String, String, Value) {
    let req = http::Request::get(path).body(Vec::new()).unwrap();
    let resp = client.send(req.map(Into::into)).await.expect("request");
    let header = |name: http::header::HeaderName| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let status = resp.status().as_u16();
    let content_type = header(http::header::CONTENT_TYPE);
    let cache = header(http::header::CACHE_CONTROL);
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .expect("body")
        .to_bytes();
    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (status, content_type, cache, value)
}

/// A token of ServiceAccount `name` in `namespace` from the TokenRequest
/// API (`kubectl create token`).
fn token(api: &ApiServer, namespace: &str, name: &str) -> String {
    api.kubectl_ok(&["create", "token", name, "-n", namespace])
        .trim()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn service_accounts_read_the_issuer_documents_and_tokens_verify_with_them() {
    let etcd = Etcd::start();
    let mut api = ApiServer::start(&etcd);
    api.kubectl_ok(&["create", "namespace", "team"]);
    api.kubectl_ok(&["create", "serviceaccount", "relying", "-n", "team"]);
    let sa_token = token(&api, "team", "relying");
    let sa_conf = kubeconfig_with(&api, "relying", &["--token", &sa_token]);
    let sa = client_of(&sa_conf).await;

    // The configuration, as kube-apiserver writes it; the key set's URL is
    // at the server's external address by default.
    let (status, content_type, cache, config) = get(&sa, CONFIG).await;
    assert_eq!(status, 200, "{config}");
    assert_eq!(content_type, "application/json");
    assert_eq!(cache, "public, max-age=3600");
    assert_eq!(config["issuer"], ISSUER);
    assert_eq!(
        config["jwks_uri"],
        format!("https://127.0.0.1:{}/openid/v1/jwks", api.port)
    );
    assert_eq!(
        config["response_types_supported"],
        serde_json::json!(["id_token"])
    );
    assert_eq!(
        config["subject_types_supported"],
        serde_json::json!(["public"])
    );
    assert_eq!(
        config["id_token_signing_alg_values_supported"],
        serde_json::json!(["ES256"])
    );
    // The trailing-slash form is served too (the role names both).
    let (status, _, _, again) = get(&sa, &format!("{CONFIG}/")).await;
    assert_eq!((status, &again), (200, &config));

    // The key set, and a fresh token verifies with its key alone.
    let (status, content_type, cache, jwks) = get(&sa, JWKS).await;
    assert_eq!(status, 200, "{jwks}");
    assert_eq!(content_type, "application/jwk-set+json");
    assert_eq!(cache, "public, max-age=3600");
    let keys = jwks["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1, "{jwks}");
    let key = &keys[0];
    assert_eq!(
        (&key["kty"], &key["crv"], &key["alg"], &key["use"]),
        (
            &Value::from("EC"),
            &Value::from("P-256"),
            &Value::from("ES256"),
            &Value::from("sig")
        )
    );
    let fresh = token(&api, "team", "relying");
    let header = jsonwebtoken::decode_header(&fresh).expect("JWT header");
    assert_eq!(header.alg, Algorithm::ES256);
    assert_eq!(header.kid.as_deref(), key["kid"].as_str());
    let decoding = DecodingKey::from_ec_components(
        key["x"].as_str().expect("x"),
        key["y"].as_str().expect("y"),
    )
    .expect("EC key");
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_issuer(&[config["issuer"].as_str().unwrap()]);
    validation.set_audience(&[ISSUER]);
    let claims = jsonwebtoken::decode::<Claims>(&fresh, &decoding, &validation)
        .expect("the token verifies with the served key")
        .claims;
    assert_eq!(claims.sub, "system:serviceaccount:team:relying");

    // A user without a binding to the discovery role is refused, as any
    // non-resource URL is.
    let jane_conf = kubeconfig_with(&api, "jane", &["--token", "not-a-user"]);
    let refused = as_user(&jane_conf).run(&["get", "--raw", JWKS], None);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("Unauthorized"),
        "{}",
        stderr(&refused)
    );
    let plane_user = {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_baton-control"))
            .args(["kubeconfig", "--cert-dir"])
            .arg(api.cert_dir())
            .args(["--server", &api.url(), "--user", "jane", "--out"])
            .arg(api.dir.path().join("jane-cert.conf"))
            .output()
            .expect("kubeconfig");
        assert!(out.status.success(), "{}", stderr(&out));
        as_user(&api.dir.path().join("jane-cert.conf"))
    };
    for path in [CONFIG, JWKS] {
        let out = plane_user.run(&["get", "--raw", path], None);
        assert!(!out.status.success(), "jane read {path}");
        let err = stderr(&out);
        assert!(
            err.contains(&format!(
                r#"forbidden: User "jane" cannot get path "{path}""#
            )),
            "{err}"
        );
    }

    // `--service-account-jwks-uri` names the key set elsewhere.
    api.extra
        .push("--service-account-jwks-uri=https://keys.example.com/cluster/jwks".into());
    api.stop();
    api.resume();
    let sa = client_of(&sa_conf).await;
    let (status, _, _, config) = get(&sa, CONFIG).await;
    assert_eq!(status, 200, "{config}");
    assert_eq!(config["jwks_uri"], "https://keys.example.com/cluster/jwks");
    assert_eq!(config["issuer"], ISSUER);
    // The key is the same: tokens issued before still verify.
    let (_, _, _, after) = get(&sa, JWKS).await;
    assert_eq!(after, jwks);
}

#[test]
fn a_jwks_uri_other_than_https_is_refused_at_start() {
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_baton-control"))
        .arg("apiserver")
        .args(etcd.apiserver_flags())
        .args(["--bind-address", "127.0.0.1"])
        .args(["--secure-port", &common::free_port().to_string()])
        .arg("--cert-dir")
        .arg(dir.path().join("pki"))
        .arg("--service-account-jwks-uri=http://keys.example.com/jwks")
        .output()
        .expect("baton-control runs");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("service-account-jwks-uri requires https scheme"),
        "{}",
        stderr(&out)
    );
}
