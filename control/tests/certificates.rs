//! CertificateSigningRequests with the real kubectl: who may ask, who may
//! approve, what the signer issues from the cluster CA, and the
//! certificates nobody gets (`system:masters`, another node's).

mod common;
mod support;

use std::time::Duration;

use base64::Engine as _;
use baton_e2e::kubectl::Kubectl;
use common::stderr;
use support::Plane;
use support::users::{as_user, kubeconfig_with, wait_for};

/// A key and a PEM CSR for `cn` in `organizations`.
fn request(cn: &str, organizations: &[&str]) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    for o in organizations {
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, *o);
    }
    let csr = params.serialize_request(&key).unwrap().pem().unwrap();
    (key.serialize_pem(), csr)
}

fn manifest(name: &str, csr: &str, signer: &str, usages: &[&str]) -> String {
    serde_json::json!({
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {
            "request": base64::engine::general_purpose::STANDARD.encode(csr),
            "signerName": signer,
            "usages": usages,
            "expirationSeconds": 3600,
        },
    })
    .to_string()
}

fn condition(plane: &Plane, name: &str) -> String {
    let table = plane.kubectl_ok(&["get", "csr", name, "--no-headers"]);
    table
        .split_whitespace()
        .last()
        .unwrap_or_default()
        .to_owned()
}

const CLIENT: &str = "kubernetes.io/kube-apiserver-client";
const KUBELET_CLIENT: &str = "kubernetes.io/kube-apiserver-client-kubelet";

#[test]
fn requests_are_approved_by_those_allowed_and_signed_from_the_cluster_ca() {
    let plane = Plane::start(&[]);
    let api = &plane.cluster.api;
    let jane = as_user(&plane.kubeconfig("jane"));
    let (key, csr) = request("alice", &["devs"]);
    let alice_csr = manifest("alice", &csr, CLIENT, &["client auth"]);

    // Asking needs a binding.
    let out = jane.run(&["create", "-f", "-"], Some(&alice_csr));
    assert!(!out.status.success());
    assert!(stderr(&out).contains(r#"certificatesigningrequests.certificates.k8s.io is forbidden: User "jane" cannot create resource "certificatesigningrequests" in API group "certificates.k8s.io" at the cluster scope"#), "{}", stderr(&out));
    plane.kubectl_ok(&[
        "create",
        "clusterrolebinding",
        "jane-csr",
        "--clusterrole=system:node-bootstrapper",
        "--user=jane",
    ]);
    wait_for("jane's binding", || {
        jane.run(&["get", "csr"], None).status.success()
    });
    jane.run_ok(&["create", "-f", "-"], Some(&alice_csr));
    let row = plane.kubectl_ok(&["get", "csr", "alice"]);
    let cells: Vec<&str> = row.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(cells[0], "alice");
    assert_eq!(&cells[2..], [CLIENT, "jane", "60m", "Pending"], "{row}");

    // Approving needs the approval subresource, then `approve` on the signer.
    let out = jane.run(&["certificate", "approve", "alice"], None);
    assert!(!out.status.success());
    assert!(stderr(&out).contains(r#"User "jane" cannot update resource "certificatesigningrequests/approval" in API group "certificates.k8s.io" at the cluster scope"#), "{}", stderr(&out));
    plane.kubectl_ok(&[
        "create",
        "clusterrole",
        "csr-approval",
        "--verb=update",
        "--resource=certificatesigningrequests/approval",
    ]);
    plane.kubectl_ok(&[
        "create",
        "clusterrolebinding",
        "jane-approval",
        "--clusterrole=csr-approval",
        "--user=jane",
    ]);
    wait_for("the approval binding", || {
        let out = jane.run(&["certificate", "approve", "alice"], None);
        stderr(&out).contains(r#"certificatesigningrequests.certificates.k8s.io "alice" is forbidden: user not permitted to approve requests with signerName "kubernetes.io/kube-apiserver-client""#)
    });
    assert_eq!(condition(&plane, "alice"), "Pending");
    let approved = plane.kubectl_ok(&["certificate", "approve", "alice"]);
    assert_eq!(
        approved.trim(),
        "certificatesigningrequest.certificates.k8s.io/alice approved"
    );
    wait_for("alice's certificate", || {
        condition(&plane, "alice") == "Approved,Issued"
    });

    // The certificate authenticates as the request's subject.
    let cert_b64 = plane.kubectl_ok(&[
        "get",
        "csr",
        "alice",
        "-o",
        "jsonpath={.status.certificate}",
    ]);
    let cert = base64::engine::general_purpose::STANDARD
        .decode(cert_b64.trim())
        .unwrap();
    let dir = api.dir.path();
    std::fs::write(dir.join("alice.crt"), &cert).unwrap();
    std::fs::write(dir.join("alice.key"), &key).unwrap();
    let (crt_path, key_path) = (dir.join("alice.crt"), dir.join("alice.key"));
    let conf = kubeconfig_with(
        api,
        "alice",
        &[
            "--client-certificate",
            crt_path.to_str().unwrap(),
            "--client-key",
            key_path.to_str().unwrap(),
        ],
    );
    let whoami = as_user(&conf).run_ok(
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username} {.status.userInfo.groups}",
        ],
        None,
    );
    assert_eq!(whoami, r#"alice ["devs","system:authenticated"]"#);

    // Nobody gets a system:masters certificate from the client signer.
    let (_, root) = request("root", &["system:masters"]);
    let out = api.kubectl_stdin(
        &["create", "-f", "-"],
        &manifest("root", &root, CLIENT, &["client auth"]),
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains(r#"certificatesigningrequests.certificates.k8s.io "root" is forbidden: use of kubernetes.io/kube-apiserver-client signer with system:masters group is not allowed"#), "{}", stderr(&out));

    // Denied requests stay unsigned.
    let (_, bob) = request("bob", &[]);
    jane.run_ok(
        &["create", "-f", "-"],
        Some(&manifest("bob", &bob, CLIENT, &["client auth"])),
    );
    plane.kubectl_ok(&["certificate", "deny", "bob"]);
    assert_eq!(condition(&plane, "bob"), "Denied");
}

#[test]
fn a_node_renews_its_own_client_certificate_and_nothing_else() {
    let plane = Plane::start(&[]);
    let n1 = as_user(&plane.kubeconfig_in("system:node:n1", &["system:nodes"]));
    let kubelet_usages = ["digital signature", "client auth"];

    // Its own client certificate: approved and issued without anyone.
    let (_, own) = request("system:node:n1", &["system:nodes"]);
    n1.run_ok(
        &["create", "-f", "-"],
        Some(&manifest(
            "n1-client",
            &own,
            KUBELET_CLIENT,
            &kubelet_usages,
        )),
    );
    wait_for("n1's certificate", || {
        condition(&plane, "n1-client") == "Approved,Issued"
    });
    let reason = plane.kubectl_ok(&[
        "get",
        "csr",
        "n1-client",
        "-o",
        "jsonpath={.status.conditions[0].reason}",
    ]);
    assert_eq!(reason, "AutoApproved");

    // Another node's, or one in system:masters: left pending; approved by
    // an administrator, the signer still refuses the masters one.
    let (_, other) = request("system:node:n2", &["system:nodes"]);
    n1.run_ok(
        &["create", "-f", "-"],
        Some(&manifest(
            "n2-client",
            &other,
            KUBELET_CLIENT,
            &kubelet_usages,
        )),
    );
    let (_, masters) = request("system:node:n1", &["system:masters"]);
    n1.run_ok(
        &["create", "-f", "-"],
        Some(&manifest(
            "n1-masters",
            &masters,
            KUBELET_CLIENT,
            &kubelet_usages,
        )),
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(condition(&plane, "n2-client"), "Pending");
    assert_eq!(condition(&plane, "n1-masters"), "Pending");
    let out = n1.run(&["certificate", "approve", "n1-masters"], None);
    assert!(!out.status.success(), "a node approves nothing");
    plane.kubectl_ok(&["certificate", "approve", "n1-masters"]);
    wait_for("the signer's refusal", || {
        condition(&plane, "n1-masters") == "Approved,Failed"
    });
    let why = plane.kubectl_ok(&[
        "get",
        "csr",
        "n1-masters",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Failed\")].message}",
    ]);
    assert_eq!(why, "organization is not set to system:nodes");

    // The client signer refuses system:masters whoever asks.
    let (_, root) = request("root", &["system:masters"]);
    let out = n1.run(
        &["create", "-f", "-"],
        Some(&manifest("root", &root, CLIENT, &["client auth"])),
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("use of kubernetes.io/kube-apiserver-client signer with system:masters group is not allowed"), "{}", stderr(&out));
}

/// kubectl with only a bearer token and the cluster CA.
fn with_token(plane: &Plane, name: &str, token: &str) -> Kubectl {
    as_user(&kubeconfig_with(
        &plane.cluster.api,
        name,
        &["--token", token],
    ))
}

fn bootstrap_token(plane: &Plane, id: &str, secret: &str, expiration: &str) {
    plane.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        &format!("bootstrap-token-{id}"),
        "-n",
        "kube-system",
        "--type=bootstrap.kubernetes.io/token",
        &format!("--from-literal=token-id={id}"),
        &format!("--from-literal=token-secret={secret}"),
        &format!("--from-literal=expiration={expiration}"),
        "--from-literal=usage-bootstrap-authentication=true",
        "--from-literal=auth-extra-groups=system:bootstrappers:workers",
    ]);
}

#[test]
fn a_bootstrap_token_gets_a_node_its_client_certificate_and_expires() {
    let plane = Plane::start(&[]);
    let later = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1);
    bootstrap_token(&plane, "abcdef", "0123456789abcdef", &later.to_string());
    let joining = with_token(&plane, "joining", "abcdef.0123456789abcdef");
    assert_eq!(
        joining.run_ok(
            &[
                "auth",
                "whoami",
                "-o",
                "jsonpath={.status.userInfo.username} {.status.userInfo.groups}"
            ],
            None
        ),
        r#"system:bootstrap:abcdef ["system:bootstrappers","system:bootstrappers:workers","system:authenticated"]"#
    );
    // It may ask for a node's client certificate, which is approved and
    // issued without an administrator; nothing else.
    let (_, csr) = request("system:node:n9", &["system:nodes"]);
    joining.run_ok(
        &["create", "-f", "-"],
        Some(&manifest(
            "n9-client",
            &csr,
            KUBELET_CLIENT,
            &["digital signature", "client auth"],
        )),
    );
    wait_for("n9's certificate", || {
        condition(&plane, "n9-client") == "Approved,Issued"
    });
    let requestor =
        plane.kubectl_ok(&["get", "csr", "n9-client", "-o", "jsonpath={.spec.username}"]);
    assert_eq!(requestor, "system:bootstrap:abcdef");
    let out = joining.run(&["get", "pods", "-A"], None);
    assert!(
        stderr(&out).contains(r#"User "system:bootstrap:abcdef" cannot list resource "pods""#),
        "{}",
        stderr(&out)
    );
    // A wrong secret is refused.
    let out = with_token(&plane, "wrong", "abcdef.0123456789abcdee").run(&["auth", "whoami"], None);
    assert!(stderr(&out).contains("Unauthorized"), "{}", stderr(&out));

    // An expired token is refused, and the token cleaner deletes it.
    let past = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1);
    bootstrap_token(&plane, "oldtok", "0123456789abcdef", &past.to_string());
    let out =
        with_token(&plane, "expired", "oldtok.0123456789abcdef").run(&["auth", "whoami"], None);
    assert!(stderr(&out).contains("Unauthorized"), "{}", stderr(&out));
    wait_for("the expired token deleted", || {
        !plane
            .cluster
            .api
            .kubectl(&[
                "get",
                "secret",
                "bootstrap-token-oldtok",
                "-n",
                "kube-system",
            ])
            .status
            .success()
    });
    plane.kubectl_ok(&[
        "get",
        "secret",
        "bootstrap-token-abcdef",
        "-n",
        "kube-system",
    ]);
}

#[test]
fn a_created_token_signs_cluster_info_until_it_is_gone() {
    use baton_apimachinery::bootstrap_token::{ca_cert_hash, verify_detached};
    let plane = Plane::start(&[]);
    let admin = plane.cluster.api.kubeconfig();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_baton-control"))
        .args(["token", "create", "--print-join-command", "--kubeconfig"])
        .arg(&admin)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let words: Vec<&str> = printed.split_whitespace().collect();
    let ca = std::fs::read(plane.cluster.api.cert_dir().join("ca.crt")).unwrap();
    assert_eq!(
        words[..4],
        ["baton-node", "join", "--server", &plane.cluster.api.url()],
        "{printed}"
    );
    assert_eq!(words[4], "--token");
    assert_eq!(
        words[6..],
        [
            "--discovery-token-ca-cert-hash",
            &ca_cert_hash(&ca).unwrap()
        ]
    );
    let token = words[5];
    let (id, secret) = token.split_once('.').unwrap();

    // The Secret as `kubeadm token create` writes it.
    let data = |key: &str| {
        let v = plane.kubectl_ok(&[
            "get",
            "secret",
            &format!("bootstrap-token-{id}"),
            "-n",
            "kube-system",
            "-o",
            &format!("jsonpath={{.data.{key}}}"),
        ]);
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(v).unwrap()).unwrap()
    };
    assert_eq!(data("token-secret"), secret);
    assert_eq!(data("usage-bootstrap-signing"), "true");
    assert_eq!(data("usage-bootstrap-authentication"), "true");
    assert_eq!(
        data("auth-extra-groups"),
        "system:bootstrappers:baton:default-node-token"
    );
    let expires: jiff::Timestamp = data("expiration").parse().unwrap();
    let ttl = expires.as_second() - jiff::Timestamp::now().as_second();
    assert!((23 * 3600..=24 * 3600).contains(&ttl), "{ttl}");

    // The bootstrap signer signs cluster-info with it.
    let field = |key: &str| {
        plane.kubectl_ok(&[
            "get",
            "configmap",
            "cluster-info",
            "-n",
            "kube-public",
            "-o",
            &format!("jsonpath={{.data.{key}}}"),
        ])
    };
    let jws_key = format!("jws-kubeconfig-{id}");
    wait_for("cluster-info signed", || !field(&jws_key).is_empty());
    let kubeconfig = field("kubeconfig");
    assert!(verify_detached(
        &field(&jws_key),
        kubeconfig.as_bytes(),
        id,
        secret
    ));
    // A token that is gone signs nothing.
    plane.kubectl_ok(&[
        "delete",
        "secret",
        &format!("bootstrap-token-{id}"),
        "-n",
        "kube-system",
    ]);
    wait_for("the signature removed", || field(&jws_key).is_empty());
}
