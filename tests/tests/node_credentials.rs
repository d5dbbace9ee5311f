//! A node's credentials end to end: it joins with only a bootstrap token
//! and the CA's public key hash, and rotates its client certificate before
//! it expires, on a namespace cluster with real etcd, API server,
//! containerd, baton-node and kubectl.

use std::time::Duration;

use baton_e2e::Stack;

/// Runs `baton-node join` in `node`'s namespace; its output and whether
/// it succeeded.
fn join(c: &Stack, token: &str, hash: &str, out: &std::path::Path) -> (bool, String) {
    let node = &c.cluster.nodes()[0];
    let baton_node = c.binaries.path("baton-node").unwrap();
    let result = node
        .netns()
        .run(
            &baton_node.display().to_string(),
            [
                "join".to_owned(),
                format!("--server={}", c.plane.server),
                format!("--token={token}"),
                format!("--discovery-token-ca-cert-hash={hash}"),
                format!("--bootstrap-kubeconfig={}", out.display()),
            ],
            Duration::from_secs(30),
        )
        .expect("running baton-node join");
    let text = format!("{}{}", result.stdout, result.stderr);
    (result.status.success(), text)
}

#[test]
fn a_node_joins_with_only_a_bootstrap_token_and_the_ca_hash() {
    let c = Stack::start(1);
    let node = "baton-node-1";
    // The node joined as the harness joins every node: a token and the CA
    // hash; its client certificate came from a CSR of the token's user,
    // approved without an administrator, and it is Ready.
    let requests = c.kubectl_ok(&[
        "get",
        "csr",
        "-o",
        "jsonpath={range .items[?(@.spec.signerName==\"kubernetes.io/kube-apiserver-client-kubelet\")]}{.spec.username} {.status.conditions[0].type} {.status.conditions[0].reason}{\"\\n\"}{end}",
    ]);
    assert!(
        requests
            .lines()
            .any(|l| l.starts_with("system:bootstrap:") && l.ends_with(" Approved AutoApproved")),
        "{requests}"
    );
    let table = c.kubectl_ok(&["get", "csr"]);
    assert!(
        table.lines().any(
            |l| l.contains("kubernetes.io/kube-apiserver-client-kubelet")
                && l.contains("system:bootstrap:")
                && l.contains("Approved,Issued")
        ),
        "{table}"
    );
    assert_eq!(
        c.get(
            "node",
            node,
            "{.status.conditions[?(@.type==\"Ready\")].status}"
        ),
        "True"
    );
    let paths = baton_e2e::nodes::NodeAgentPaths::for_node(&c.cluster.nodes()[0]);
    let who = baton_e2e::kubectl::Kubectl::new(&paths.kubeconfig).run(
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username} {.status.userInfo.groups}",
        ],
        None,
    );
    assert!(
        who.status.success(),
        "{}",
        String::from_utf8_lossy(&who.stderr)
    );
    let who = String::from_utf8_lossy(&who.stdout);
    assert!(
        who.starts_with("system:node:baton-node-1 ") && who.contains("system:nodes"),
        "{who}"
    );
    let agent = c
        .cluster
        .process(&baton_e2e::nodes::agent_name(&c.cluster.nodes()[0]))
        .expect("the node agent runs");
    assert!(
        agent.command.contains("--bootstrap-kubeconfig"),
        "{}",
        agent.command
    );

    // Discovery trusts only a cluster-info signed with the token and a CA
    // with the pinned hash.
    let ca = std::fs::read(c.pki.join("ca.crt")).unwrap();
    let hash = baton_apimachinery::bootstrap_token::ca_cert_hash(&ca).unwrap();
    let created = std::process::Command::new(c.binaries.path("baton-control").unwrap())
        .args(["token", "create", "--ttl", "10m", "--kubeconfig"])
        .arg(&c.kubeconfig)
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let token = String::from_utf8_lossy(&created.stdout).trim().to_owned();
    let out = tempfile::tempdir().unwrap();
    let written = out.path().join("bootstrap-kubeconfig");
    let signed = |c: &Stack| {
        c.kubectl_ok(&[
            "get",
            "configmap",
            "cluster-info",
            "-n",
            "kube-public",
            "-o",
            &format!("jsonpath={{.data.jws-kubeconfig-{}}}", &token[..6]),
        ])
    };
    c.wait(
        Duration::from_secs(30),
        "the token signs cluster-info",
        |c| !signed(c).is_empty(),
    );
    let (ok, text) = join(&c, &token, "sha256:0000", &written);
    assert!(!ok, "{text}");
    assert!(
        text.contains(
            "cluster CA found in cluster-info ConfigMap is invalid: none of the public keys"
        ),
        "{text}"
    );
    assert!(!written.exists());
    let (ok, text) = join(&c, &token, &hash, &written);
    assert!(ok, "{text}");
    let kubeconfig = std::fs::read_to_string(&written).unwrap();
    assert!(kubeconfig.contains(&token), "{kubeconfig}");

    // An expired token neither signs cluster-info nor authenticates.
    let past = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1);
    c.apply(&format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: bootstrap-token-oldtok, namespace: kube-system}}
type: bootstrap.kubernetes.io/token
stringData:
  token-id: oldtok
  token-secret: 0123456789abcdef
  expiration: "{past}"
  usage-bootstrap-authentication: "true"
  usage-bootstrap-signing: "true"
"#
    ));
    let (ok, text) = join(&c, "oldtok.0123456789abcdef", &hash, &written);
    assert!(!ok, "{text}");
    assert!(
        text.contains(
            r#"there is no JWS signed token in the cluster-info ConfigMap. This token id "oldtok" is invalid for this cluster"#
        ),
        "{text}"
    );
    let refused = c.kubectl_with_token(
        &c.pki.join("ca.crt"),
        "oldtok.0123456789abcdef",
        &["auth", "whoami"],
    );
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("Unauthorized"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

/// A certificate for the node's user from the cluster CA (which the test
/// holds; the node does not) that is 90% through its ten minutes.
fn nearly_expired_node_certificate(c: &Stack, node: &str) -> (String, i64) {
    use rcgen::{CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose};
    let read = |f: &str| std::fs::read_to_string(c.pki.join(f)).unwrap();
    let ca_key = rcgen::KeyPair::from_pem(&read("ca.key")).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(&read("ca.crt"), &ca_key).unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("system:node:{node}"));
    dn.push(DnType::OrganizationName, "system:nodes");
    params.distinguished_name = dn;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::seconds(540);
    params.not_after = now + time::Duration::seconds(60);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    (
        format!("{}{}", cert.pem(), key.serialize_pem()),
        params.not_after.unix_timestamp(),
    )
}

#[test]
fn the_node_rotates_its_client_certificate_before_it_expires() {
    use baton_node::credentials::files::validity;
    let c = Stack::start(1);
    let node = &c.cluster.nodes()[0];
    let paths = baton_e2e::nodes::NodeAgentPaths::for_node(node);
    let pem = paths.root_dir.join("pki/kubelet-client-current.pem");
    assert!(pem.exists(), "the bootstrapped certificate's file");

    // The agent restarts with a certificate past 80% of its life.
    let (short, expires) = nearly_expired_node_certificate(&c, node.name());
    c.kill_node(1);
    std::fs::write(&pem, &short).unwrap();
    c.start_node(1);
    let pid = c
        .cluster
        .process(&baton_e2e::nodes::agent_name(node))
        .unwrap()
        .pid;

    // It asks for a new one as itself, approved as a renewal, and keeps it.
    c.wait(Duration::from_secs(60), "a rotated certificate", |_| {
        std::fs::read_to_string(&pem)
            .ok()
            .and_then(|p| validity(&p))
            .is_some_and(|(_, until)| until > expires + 3600)
    });
    let renewals = c.kubectl_ok(&[
        "get",
        "csr",
        "-o",
        "jsonpath={range .items[?(@.spec.signerName==\"kubernetes.io/kube-apiserver-client-kubelet\")]}{.spec.username} {.status.conditions[0].reason}{\"\\n\"}{end}",
    ]);
    assert!(
        renewals
            .lines()
            .any(|l| l == format!("system:node:{} AutoApproved", node.name())),
        "{renewals}"
    );

    // After the old certificate expired and the API server dropped every
    // connection, the same agent process still reaches it: new
    // connections show the new certificate.
    while jiff::Timestamp::now().as_second() <= expires + 1 {
        std::thread::sleep(Duration::from_millis(500));
    }
    c.cluster.kill_process("apiserver").unwrap();
    baton_e2e::control_plane::ensure_apiserver(&c.cluster, &c.binaries, &c.plane)
        .expect("restarting the API server");
    let renewed_after = |c: &Stack| {
        let renew = c.kubectl_ok(&[
            "get",
            "lease",
            node.name(),
            "-n",
            "kube-node-lease",
            "-o",
            "jsonpath={.spec.renewTime}",
        ]);
        renew
            .parse::<jiff::Timestamp>()
            .is_ok_and(|t| t.as_second() > expires + 5)
    };
    c.wait(
        Duration::from_secs(60),
        "the node's Lease renewed after the old certificate expired",
        |c| renewed_after(c),
    );
    assert_eq!(
        c.cluster
            .process(&baton_e2e::nodes::agent_name(node))
            .unwrap()
            .pid,
        pid,
        "the agent was not restarted"
    );
    assert_eq!(
        c.get(
            "node",
            node.name(),
            "{.status.conditions[?(@.type==\"Ready\")].status}"
        ),
        "True"
    );
}
