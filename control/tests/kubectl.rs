//! The seeds' journey with the real kubectl against the real API server on
//! real etcd.

mod common;

use std::time::{Duration, Instant};

use common::{Cluster, examples, stderr, stdout};

fn ex(name: &str) -> String {
    examples().join(name).to_string_lossy().into_owned()
}

#[test]
fn apply_seed_manifests_then_edit_and_server_side_apply() {
    let c = Cluster::start();
    let api = &c.api;
    let out = api.kubectl_ok(&[
        "apply",
        "-f",
        &ex("nginx-deployment.yaml"),
        "-f",
        &ex("nginx-service.yaml"),
    ]);
    assert!(
        out.contains("deployment.apps/nginx-deployment created"),
        "{out}"
    );
    assert!(out.contains("service/nginx created"), "{out}");

    // Edited re-apply: client-side apply sends a strategic merge patch.
    let edited = std::fs::read_to_string(ex("nginx-deployment.yaml"))
        .unwrap()
        .replace("replicas: 3", "replicas: 4")
        .replace("baton.local/echo:1", "baton.local/echo:2");
    let path = api.dir.path().join("edited.yaml");
    std::fs::write(&path, edited).unwrap();
    let out = api.kubectl_ok(&["apply", "-f", path.to_str().unwrap()]);
    assert!(
        out.contains("deployment.apps/nginx-deployment configured"),
        "{out}"
    );
    let got = api.kubectl_ok(&["get", "deploy", "nginx-deployment", "-o", "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].image} {.metadata.generation}"]);
    assert_eq!(got, "4 baton.local/echo:2 2");

    // kubectl's server-side apply takes over what its client-side apply
    // recorded (kube-apiserver's lastAppliedManager): no conflict.
    let out = api.kubectl_ok(&["apply", "--server-side", "-f", &ex("nginx-deployment.yaml")]);
    assert!(out.contains("serverside-applied"), "{out}");
    let got = api.kubectl_ok(&[
        "get",
        "deploy",
        "nginx-deployment",
        "-o",
        "jsonpath={.spec.replicas}",
    ]);
    assert_eq!(got, "3");
    // Another manager changing those fields conflicts with their owner…
    let out = api.kubectl(&[
        "apply",
        "--server-side",
        "--field-manager=deployer",
        "-f",
        path.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("with \"kubectl\" using apps/v1"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains(".spec.replicas"), "{}", stderr(&out));
    // …applying equal values (the ports' defaulted protocol included) does
    // not: the fields are shared…
    let out = api.kubectl_ok(&[
        "apply",
        "--server-side",
        "--field-manager=deployer",
        "-f",
        &ex("nginx-deployment.yaml"),
    ]);
    assert!(out.contains("serverside-applied"), "{out}");
    // …and a forced apply takes them.
    let out = api.kubectl_ok(&[
        "apply",
        "--server-side",
        "--field-manager=deployer",
        "--force-conflicts",
        "-f",
        path.to_str().unwrap(),
    ]);
    assert!(out.contains("serverside-applied"), "{out}");
    let yaml = api.kubectl_ok(&[
        "get",
        "deploy",
        "nginx-deployment",
        "-o",
        "yaml",
        "--show-managed-fields",
    ]);
    assert!(yaml.contains("manager: deployer"), "{yaml}");
    assert!(yaml.contains("operation: Apply"), "{yaml}");
    assert!(yaml.contains("replicas: 4"), "{yaml}");

    // A created object applied unchanged by another manager: no conflict.
    api.kubectl_ok(&[
        "create",
        "-f",
        &ex("nginx-service.yaml"),
        "-n",
        "kube-public",
    ]);
    let out = api.kubectl_ok(&[
        "apply",
        "--server-side",
        "--field-manager=deployer",
        "-n",
        "kube-public",
        "-f",
        &ex("nginx-service.yaml"),
    ]);
    assert!(out.contains("serverside-applied"), "{out}");
}

#[test]
fn get_wide_columns_describe_and_api_resources() {
    let c = Cluster::start();
    let api = &c.api;
    api.kubectl_ok(&[
        "apply",
        "-f",
        &ex("nginx-deployment.yaml"),
        "-f",
        &ex("nginx-service.yaml"),
    ]);
    let out = api.kubectl_ok(&["get", "deploy,rs,pods,svc,endpointslices", "-o", "wide"]);
    for col in [
        "READY",
        "UP-TO-DATE",
        "AVAILABLE",
        "CONTAINERS",
        "IMAGES",
        "SELECTOR",
        "TYPE",
        "CLUSTER-IP",
        "EXTERNAL-IP",
        "PORT(S)",
        "ADDRESSTYPE",
        "ENDPOINTS",
    ] {
        assert!(out.contains(col), "missing column {col}:\n{out}");
    }
    assert!(out.contains("deployment.apps/nginx-deployment"), "{out}");
    assert!(out.contains("baton.local/echo:1"), "{out}");
    assert!(
        out.contains("service/kubernetes") && out.contains("10.96.0.1"),
        "{out}"
    );
    let svc = api.kubectl_ok(&[
        "get",
        "svc",
        "nginx",
        "-o",
        "jsonpath={.spec.clusterIP} {.spec.ports[0].nodePort}",
    ]);
    let mut parts = svc.split(' ');
    let ip: std::net::Ipv4Addr = parts.next().unwrap().parse().unwrap();
    assert!(
        ip.octets()[0] == 10 && (96..112).contains(&ip.octets()[1]),
        "{ip}"
    );
    let port: u16 = parts.next().unwrap().parse().unwrap();
    assert!((30000..=32767).contains(&port));

    let d = api.kubectl_ok(&["describe", "deployment", "nginx-deployment"]);
    assert!(d.contains("Name:") && d.contains("nginx-deployment"), "{d}");
    assert!(d.contains("Replicas:") && d.contains("3 desired"), "{d}");
    let d = api.kubectl_ok(&["describe", "svc", "nginx"]);
    assert!(d.contains("NodePort:"), "{d}");

    let r = api.kubectl_ok(&["api-resources"]);
    for line in [
        "deployments",
        "deploy",
        "apps/v1",
        "endpointslices",
        "priorityclasses",
        "leases",
    ] {
        assert!(r.contains(line), "{line} missing:\n{r}");
    }
    let e = api.kubectl_ok(&["explain", "deployment.spec.strategy"]);
    assert!(e.contains("DeploymentStrategy"), "{e}");
    assert!(e.contains("rollingUpdate"), "{e}");
}

#[test]
fn scale_label_annotate_patch_and_edit() {
    let c = Cluster::start();
    let api = &c.api;
    api.kubectl_ok(&["apply", "-f", &ex("nginx-deployment.yaml")]);
    let d = "deployment/nginx-deployment";
    assert!(
        api.kubectl_ok(&["scale", d, "--replicas=5"])
            .contains("scaled")
    );
    assert_eq!(
        api.kubectl_ok(&["get", d, "-o", "jsonpath={.spec.replicas}"]),
        "5"
    );
    api.kubectl_ok(&["label", d, "tier=web"]);
    api.kubectl_ok(&["annotate", d, "note=hello"]);
    assert_eq!(
        api.kubectl_ok(&[
            "get",
            d,
            "-o",
            "jsonpath={.metadata.labels.tier} {.metadata.annotations.note}"
        ]),
        "web hello"
    );
    api.kubectl_ok(&["label", d, "tier-"]);
    assert_eq!(
        api.kubectl_ok(&["get", d, "-o", "jsonpath={.metadata.labels.tier}"]),
        ""
    );

    api.kubectl_ok(&[
        "patch",
        d,
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/replicas","value":2}]"#,
    ]);
    assert_eq!(
        api.kubectl_ok(&["get", d, "-o", "jsonpath={.spec.replicas}"]),
        "2"
    );
    api.kubectl_ok(&[
        "patch",
        d,
        "--type=merge",
        "-p",
        r#"{"spec":{"minReadySeconds":7}}"#,
    ]);
    assert_eq!(
        api.kubectl_ok(&["get", d, "-o", "jsonpath={.spec.minReadySeconds}"]),
        "7"
    );
    // Strategic merge: containers merge by name, so the sidecar is added.
    api.kubectl_ok(&[
        "patch",
        d,
        "--type=strategic",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"busybox"}]}}}}"#,
    ]);
    assert_eq!(
        api.kubectl_ok(&[
            "get",
            d,
            "-o",
            "jsonpath={.spec.template.spec.containers[*].name}"
        ]),
        "nginx sidecar"
    );

    let editor = api.dir.path().join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nsed -i 's/minReadySeconds: 7/minReadySeconds: 9/' \"$1\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&editor, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = baton_e2e::kubectl::output(
        api.kubectl_runner()
            .command()
            .args(["edit", d])
            .env("EDITOR", &editor),
        None,
    )
    .unwrap_or_else(|error| panic!("{error}"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("edited"), "{}", stdout(&out));
    assert_eq!(
        api.kubectl_ok(&["get", d, "-o", "jsonpath={.spec.minReadySeconds}"]),
        "9"
    );
    let mf = api.kubectl_ok(&["get", d, "-o", "yaml", "--show-managed-fields"]);
    assert!(mf.contains("manager: kubectl-edit"), "{mf}");
}

#[test]
fn create_expose_watch_and_delete() {
    let c = Cluster::start();
    let api = &c.api;
    // A watch started before the pod exists streams its events.
    let mut watch = baton_e2e::kubectl::spawn(
        api.kubectl_runner()
            .command()
            .args(["get", "pods", "-w", "--no-headers"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null()),
    )
    .unwrap_or_else(|error| panic!("{error}"));
    std::thread::sleep(Duration::from_millis(1500));
    api.kubectl_ok(&["run", "w1", "--image=busybox"]);
    api.kubectl_ok(&["label", "pod", "w1", "x=y"]);
    std::thread::sleep(Duration::from_millis(1500));
    let _ = watch.kill();
    let out = watch.wait_with_output().unwrap();
    let text = stdout(&out);
    assert!(
        text.lines().filter(|l| l.starts_with("w1")).count() >= 2,
        "watch output: {text}"
    );

    let out = api.kubectl_ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx",
        "--replicas=2",
    ]);
    assert!(out.contains("deployment.apps/web created"), "{out}");
    let out = api.kubectl_ok(&[
        "expose",
        "deployment",
        "web",
        "--port=80",
        "--target-port=8080",
    ]);
    assert!(out.contains("service/web exposed"), "{out}");
    assert_eq!(
        api.kubectl_ok(&[
            "get",
            "svc",
            "web",
            "-o",
            "jsonpath={.spec.selector.app} {.spec.ports[0].targetPort}"
        ]),
        "web 8080"
    );

    // An unscheduled pod is deleted at once; kubectl waits until it is gone.
    let started = Instant::now();
    let out = api.kubectl_ok(&["delete", "pod", "w1"]);
    assert!(out.contains("pod \"w1\" deleted"), "{out}");
    assert!(started.elapsed() < Duration::from_secs(20));
    let out = api.kubectl(&["get", "pod", "w1"]);
    assert!(
        stderr(&out).contains("pods \"w1\" not found"),
        "{}",
        stderr(&out)
    );
    api.kubectl_ok(&["delete", "deployment", "web"]);
    api.kubectl_ok(&["delete", "svc", "web"]);
}

#[test]
fn auth_can_i_answers_as_the_authorizer_decides() {
    let c = Cluster::start();
    let api = &c.api;
    // The admin (system:masters) may do anything, and the reviews say so:
    // for resources, subresources and other paths.
    assert_eq!(
        api.kubectl_ok(&["auth", "can-i", "create", "pods"]),
        "yes\n"
    );
    assert_eq!(
        api.kubectl_ok(&[
            "auth",
            "can-i",
            "delete",
            "deployments.apps",
            "-n",
            "kube-system"
        ]),
        "yes\n"
    );
    assert_eq!(
        api.kubectl_ok(&["auth", "can-i", "create", "pods", "--subresource=exec"]),
        "yes\n"
    );
    assert_eq!(
        api.kubectl_ok(&["auth", "can-i", "get", "/healthz"]),
        "yes\n"
    );
    let rules = api.kubectl_ok(&["auth", "can-i", "--list"]);
    let rows: Vec<Vec<&str>> = rules
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [
            vec![
                "Resources",
                "Non-Resource",
                "URLs",
                "Resource",
                "Names",
                "Verbs"
            ],
            vec!["*.*", "[]", "[]", "[*]"],
            vec!["[*]", "[]", "[*]"],
        ],
        "{rules}"
    );

    // Impersonation: the request acts as the user kubectl names.
    let whoami = |args: &[&str]| {
        let mut all = vec![
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username} {.status.userInfo.groups} {.status.userInfo.uid}",
        ];
        all.extend_from_slice(args);
        api.kubectl_ok(&all)
    };
    assert_eq!(
        whoami(&[]),
        r#"kubernetes-admin ["system:masters","system:authenticated"] "#
    );
    assert_eq!(
        whoami(&["--as=jane", "--as-group=devs", "--as-uid=1234"]),
        r#"jane ["devs","system:authenticated"] 1234"#
    );
    assert_eq!(
        whoami(&["--as=system:serviceaccount:team:builder"]),
        r#"system:serviceaccount:team:builder ["system:serviceaccounts","system:serviceaccounts:team","system:authenticated"] "#
    );
    // A SubjectAccessReview asks about someone else; it needs a subject.
    // (Sent raw: kubectl's client-side validation of a kind without PATCH
    // looks for CustomResourceDefinitions, which are not served.)
    let ask = |path: &str, kind: &str, namespace: &str, spec: &str| {
        let body = format!(
            "{{\"apiVersion\":\"authorization.k8s.io/v1\",\"kind\":\"{kind}\",\
             \"metadata\":{{\"namespace\":\"{namespace}\"}},\"spec\":{spec}}}"
        );
        let out = api.kubectl_stdin(
            &[
                "create",
                "--raw",
                &format!("/apis/authorization.k8s.io/v1{path}"),
                "-f",
                "-",
            ],
            &body,
        );
        if out.status.success() {
            let answer: serde_json::Value =
                serde_json::from_str(&stdout(&out)).expect("a review in JSON");
            Ok(answer["status"].clone())
        } else {
            Err(stderr(&out))
        }
    };
    let sar = "/subjectaccessreviews";
    assert_eq!(
        ask(
            sar,
            "SubjectAccessReview",
            "",
            r#"{"user":"jane","resourceAttributes":{"verb":"get","resource":"secrets","namespace":"team"}}"#,
        ),
        Ok(serde_json::json!({"allowed": false})),
        "jane has no bindings"
    );
    assert_eq!(
        ask(
            sar,
            "SubjectAccessReview",
            "",
            r#"{"user":"jane","groups":["system:masters"],"resourceAttributes":{"verb":"get","resource":"secrets","namespace":"team"}}"#,
        ),
        Ok(serde_json::json!({"allowed": true}))
    );
    assert_eq!(
        ask(
            sar,
            "SubjectAccessReview",
            "",
            r#"{"user":"jane","groups":["system:authenticated"],"nonResourceAttributes":{"verb":"get","path":"/healthz"}}"#,
        ),
        Ok(serde_json::json!({"allowed": true})),
        "system:public-info-viewer"
    );
    let nobody = ask(
        sar,
        "SubjectAccessReview",
        "",
        r#"{"resourceAttributes":{"verb":"get","resource":"secrets"}}"#,
    )
    .expect_err("a review without a subject");
    assert!(
        nobody.contains(
            "SubjectAccessReview \"\" is invalid: spec.user: Invalid value: \"\": at least one of user or group must be specified"
        ),
        "{nobody}"
    );
    // A local review asks only about its own namespace.
    let local = |asked: &str| {
        ask(
            "/namespaces/team/localsubjectaccessreviews",
            "LocalSubjectAccessReview",
            "team",
            &format!(
                r#"{{"groups":["devs"],"resourceAttributes":{{"verb":"list","resource":"pods","namespace":"{asked}"}}}}"#
            ),
        )
    };
    assert_eq!(local("team"), Ok(serde_json::json!({"allowed": false})));
    let other = local("other").expect_err("another namespace");
    assert!(
        other.contains(
            "spec.resourceAttributes.namespace: Invalid value: \"other\": must match metadata.namespace"
        ),
        "{other}"
    );
    // A question must be exactly one: a resource or a path.
    let neither = ask(
        "/selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
        "",
        "{}",
    )
    .expect_err("a review without a question");
    assert!(
        neither.contains(
            "spec.resourceAttributes: Invalid value: null: exactly one of nonResourceAttributes or resourceAttributes must be specified"
        ),
        "{neither}"
    );
    // A rules review needs the namespace it lists rules for.
    let unscoped = ask(
        "/selfsubjectrulesreviews",
        "SelfSubjectRulesReview",
        "",
        "{}",
    )
    .expect_err("a rules review without a namespace");
    assert!(unscoped.contains("no namespace on request"), "{unscoped}");
    // Reviews are answered, never stored.
    let out = api.kubectl(&["get", "selfsubjectaccessreviews"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("(MethodNotAllowed)"),
        "{}",
        stderr(&out)
    );
}

/// A pod in `ns`: one container, with `spec` fields and the container's
/// securityContext as given.
fn pod_yaml(name: &str, ns: &str, spec: &str, security_context: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n{spec}  containers:\n  - name: c\n    image: baton.local/echo:1\n    securityContext: {security_context}\n"
    )
}

#[test]
fn pod_security_enforces_and_warns_per_namespace_labels() {
    let c = Cluster::start();
    let api = &c.api;
    api.kubectl_ok(&["create", "namespace", "strict"]);
    api.kubectl_ok(&[
        "label",
        "namespace",
        "strict",
        "pod-security.kubernetes.io/enforce=restricted",
    ]);

    // Enforce: a privileged pod is refused with upstream's Status.
    let privileged = pod_yaml("priv", "strict", "", "{privileged: true}");
    let out = api.kubectl_stdin(&["apply", "-f", "-"], &privileged);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(
        stderr(&out).contains(
            "pods \"priv\" is forbidden: violates PodSecurity \"restricted:latest\": \
             privileged (container \"c\" must not set securityContext.privileged=true), \
             allowPrivilegeEscalation != false (container \"c\" must set securityContext.allowPrivilegeEscalation=false), \
             unrestricted capabilities (container \"c\" must set securityContext.capabilities.drop=[\"ALL\"]), \
             runAsNonRoot != true (pod or container \"c\" must set securityContext.runAsNonRoot=true), \
             seccompProfile (pod or container \"c\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
        ),
        "{}",
        stderr(&out)
    );
    let out = api.kubectl(&["get", "pod", "priv", "-n", "strict"]);
    assert!(!out.status.success(), "a refused pod is not stored");

    // A pod meeting the restricted profile is admitted.
    let hardened = pod_yaml(
        "hardened",
        "strict",
        "  securityContext:\n    runAsNonRoot: true\n    seccompProfile: {type: RuntimeDefault}\n",
        "{allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}",
    );
    let out = api.kubectl_stdin(&["apply", "-f", "-"], &hardened);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("Warning"), "{}", stderr(&out));

    // So is an ephemeral container added to it.
    let out = api.kubectl(&[
        "debug",
        "hardened",
        "-n",
        "strict",
        "--image=baton.local/echo:1",
        "--container=dbg",
    ]);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(
        stderr(&out).contains(
            "pods \"hardened\" is forbidden: violates PodSecurity \"restricted:latest\": \
             allowPrivilegeEscalation != false (container \"dbg\" must set securityContext.allowPrivilegeEscalation=false), \
             unrestricted capabilities (container \"dbg\" must set securityContext.capabilities.drop=[\"ALL\"])"
        ),
        "{}",
        stderr(&out)
    );

    // Templates are never enforced.
    let deployment = |name: &str, ns: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      hostNetwork: true\n      containers:\n      - name: c\n        image: baton.local/echo:1\n"
        )
    };
    let out = api.kubectl_stdin(&["apply", "-f", "-"], &deployment("web", "strict"));
    assert!(out.status.success(), "{}", stderr(&out));

    // Invalid policy labels are refused as Invalid.
    let out = api.kubectl(&[
        "label",
        "namespace",
        "strict",
        "--overwrite",
        "pod-security.kubernetes.io/enforce=strict",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(
            "metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: \"strict\": must be one of privileged, baseline, restricted"
        ),
        "{}",
        stderr(&out)
    );

    // Warn: admitted, with the violations as a Warning.
    api.kubectl_ok(&["create", "namespace", "lax"]);
    api.kubectl_ok(&[
        "label",
        "namespace",
        "lax",
        "pod-security.kubernetes.io/warn=baseline",
    ]);
    let hostnet = pod_yaml("hostnet", "lax", "  hostNetwork: true\n", "{}");
    let out = api.kubectl_stdin(&["apply", "-f", "-"], &hostnet);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "Warning: would violate PodSecurity \"baseline:latest\": host namespaces (hostNetwork=true)"
        ),
        "{}",
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("pod/hostnet created"),
        "{}",
        stdout(&out)
    );
    let out = api.kubectl_stdin(&["apply", "-f", "-"], &deployment("web", "lax"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "Warning: would violate PodSecurity \"baseline:latest\": host namespaces (hostNetwork=true)"
        ),
        "{}",
        stderr(&out)
    );

    // Tightening enforce warns of the existing pods that violate it.
    let out = api.kubectl(&[
        "label",
        "namespace",
        "lax",
        "pod-security.kubernetes.io/enforce=baseline",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(
            "Warning: existing pods in namespace \"lax\" violate the new PodSecurity enforce level \"baseline:latest\""
        ),
        "{err}"
    );
    assert!(err.contains("Warning: hostnet: host namespaces"), "{err}");
}
