//! Authorization with the real kubectl against the real API server
//! (`--authorization-mode=Node,RBAC`, its default): what a user, a service
//! account and a node may do, and what they are refused with
//! kube-apiserver's messages.

mod common;
mod support;

use std::process::Output;

use baton_e2e::kubectl::Kubectl;
use common::{stderr, stdout};
use support::Plane;
use support::users::{as_user, kubeconfig_with, wait_for};

/// The run's stderr, which must be a refusal.
fn refused(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "expected a refusal, got success: {}",
        stdout(out)
    );
    stderr(out)
}

fn must_fail_with(k: &Kubectl, args: &[&str], message: &str) {
    let err = refused(&k.run(args, None));
    assert!(
        err.contains(message),
        "kubectl {args:?}: want {message:?} in {err:?}"
    );
}

/// The `edit` role has its rules once the aggregation controller ran.
fn wait_for_aggregation(plane: &Plane) {
    wait_for("the edit ClusterRole's aggregated rules", || {
        let rules = plane.kubectl_ok(&["get", "clusterrole", "edit", "-o", "jsonpath={.rules}"]);
        rules.contains("configmaps") && rules.contains("pods/exec") && rules.contains("\"list\"")
    });
}

const PENDING_POD: &str = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"NAME","namespace":"NS"},
"spec":{"containers":[{"name":"c","image":"busybox"}]}}"#;

fn create_pod(plane: &Plane, namespace: &str, name: &str) {
    let pod = PENDING_POD.replace("NAME", name).replace("NS", namespace);
    let out = plane
        .cluster
        .api
        .kubectl_stdin(&["create", "-f", "-"], &pod);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn users_get_what_their_bindings_grant_and_nothing_else() {
    let plane = Plane::start(&[]);
    for ns in ["team", "other"] {
        plane.kubectl_ok(&["create", "namespace", ns]);
    }
    create_pod(&plane, "team", "web");
    create_pod(&plane, "other", "web");
    let jane = as_user(&plane.kubeconfig("jane"));

    // No bindings: every request refused, in upstream's words.
    let scope = r#"in API group "" in the namespace "team""#;
    must_fail_with(
        &jane,
        &["get", "pods", "-n", "team"],
        &format!(
            r#"Error from server (Forbidden): pods is forbidden: User "jane" cannot list resource "pods" {scope}"#
        ),
    );
    must_fail_with(
        &jane,
        &["get", "pod", "web", "-n", "team"],
        &format!(r#"pods "web" is forbidden: User "jane" cannot get resource "pods" {scope}"#),
    );
    must_fail_with(
        &jane,
        &["get", "--raw", "/api/v1/namespaces/team/pods?watch=true"],
        &format!(r#"pods is forbidden: User "jane" cannot watch resource "pods" {scope}"#),
    );
    must_fail_with(
        &jane,
        &["create", "configmap", "c", "-n", "team"],
        &format!(
            r#"configmaps is forbidden: User "jane" cannot create resource "configmaps" {scope}"#
        ),
    );
    for stream in [
        &["exec", "web", "-n", "team", "--", "true"][..],
        &["logs", "web", "-n", "team"],
        &["port-forward", "pod/web", "-n", "team", "18080:80"],
    ] {
        must_fail_with(
            &jane,
            stream,
            &format!(r#"pods "web" is forbidden: User "jane" cannot get resource "pods" {scope}"#),
        );
    }
    must_fail_with(
        &jane,
        &["get", "pods", "-n", "team", "--as=bob"],
        r#"users "bob" is forbidden: User "jane" cannot impersonate resource "users" in API group "" at the cluster scope"#,
    );
    must_fail_with(
        &jane,
        &["get", "nodes"],
        r#"nodes is forbidden: User "jane" cannot list resource "nodes" in API group "" at the cluster scope"#,
    );
    // What every authenticated user may do still works.
    assert_eq!(
        jane.run_ok(
            &[
                "auth",
                "whoami",
                "-o",
                "jsonpath={.status.userInfo.username}"
            ],
            None
        ),
        "jane"
    );
    jane.run_ok(&["api-resources", "-o", "name"], None);
    let out = jane.run(&["auth", "can-i", "list", "pods", "-n", "team"], None);
    assert_eq!(
        (out.status.code(), stdout(&out).as_str()),
        (Some(1), "no\n")
    );

    // `edit` in team: acting in team only.
    wait_for_aggregation(&plane);
    plane.kubectl_ok(&[
        "create",
        "rolebinding",
        "jane-edit",
        "--clusterrole=edit",
        "--user=jane",
        "-n",
        "team",
    ]);
    wait_for("jane's binding to take effect", || {
        jane.run(&["get", "configmaps", "-n", "team"], None)
            .status
            .success()
    });
    jane.run_ok(
        &[
            "create",
            "configmap",
            "c",
            "-n",
            "team",
            "--from-literal=k=v",
        ],
        None,
    );
    jane.run_ok(&["get", "pods", "-n", "team"], None);
    jane.run_ok(&["get", "secrets", "-n", "team"], None);
    jane.run_ok(&["delete", "configmap", "c", "-n", "team"], None);
    must_fail_with(
        &jane,
        &["create", "configmap", "c", "-n", "other"],
        r#"configmaps is forbidden: User "jane" cannot create resource "configmaps" in API group "" in the namespace "other""#,
    );
    must_fail_with(&jane, &["get", "pods", "-n", "other"], "forbidden");
    // edit cannot grant: roles are admin's.
    must_fail_with(
        &jane,
        &[
            "create",
            "role",
            "r",
            "--verb=get",
            "--resource=pods",
            "-n",
            "team",
        ],
        r#"roles.rbac.authorization.k8s.io is forbidden: User "jane" cannot create resource "roles" in API group "rbac.authorization.k8s.io" in the namespace "team""#,
    );
    // The streams are authorized as `create` on their subresource, which
    // edit grants: the refusal now comes from the pod having no node.
    let err = refused(&jane.run(&["exec", "web", "-n", "team", "--", "true"], None));
    assert!(!err.contains("forbidden"), "{err}");

    // `auth can-i --list` tells what requests get.
    let list = jane.run_ok(&["auth", "can-i", "--list", "-n", "team"], None);
    let row = |resource: &str| {
        list.lines()
            .find(|l| l.split_whitespace().next() == Some(resource))
            .map(|l| l.to_owned())
    };
    let cm = row("configmaps").unwrap_or_else(|| panic!("no configmaps row in {list}"));
    for verb in [
        "create", "delete", "get", "list", "patch", "update", "watch",
    ] {
        assert!(cm.contains(verb), "{cm}");
    }
    assert!(row("roles.rbac.authorization.k8s.io").is_none(), "{list}");
    assert!(row("nodes").is_none(), "{list}");
    let other = jane.run_ok(&["auth", "can-i", "--list", "-n", "other"], None);
    assert!(!other.contains("configmaps"), "{other}");
    for (verb, resource, ns, want) in [
        ("create", "configmaps", "team", "yes"),
        ("delete", "pods", "team", "yes"),
        ("create", "pods/exec", "team", "yes"),
        ("create", "configmaps", "other", "no"),
        ("create", "roles", "team", "no"),
        ("list", "nodes", "", "no"),
    ] {
        let mut args = vec!["auth", "can-i", verb, resource];
        if !ns.is_empty() {
            args.extend(["-n", ns]);
        }
        let out = jane.run(&args, None);
        assert_eq!(stdout(&out).trim(), want, "can-i {verb} {resource} -n {ns}");
    }
}

#[test]
fn service_accounts_and_escalation() {
    let plane = Plane::start(&[]);
    plane.kubectl_ok(&["create", "namespace", "team"]);
    create_pod(&plane, "team", "web");
    wait_for_aggregation(&plane);

    // A service account's token acts as the account: only its bindings.
    plane.kubectl_ok(&["create", "serviceaccount", "builder", "-n", "team"]);
    let token = plane.kubectl_ok(&["create", "token", "builder", "-n", "team"]);
    let sa_conf = kubeconfig_with(&plane.cluster.api, "builder", &["--token", token.trim()]);
    let builder = as_user(&sa_conf);
    must_fail_with(
        &builder,
        &["get", "pods", "-n", "team"],
        r#"pods is forbidden: User "system:serviceaccount:team:builder" cannot list resource "pods" in API group "" in the namespace "team""#,
    );
    plane.kubectl_ok(&[
        "create",
        "rolebinding",
        "builder-view",
        "--clusterrole=view",
        "--serviceaccount=team:builder",
        "-n",
        "team",
    ]);
    wait_for("the account's binding", || {
        builder
            .run(&["get", "pods", "-n", "team"], None)
            .status
            .success()
    });
    must_fail_with(
        &builder,
        &["delete", "pod", "web", "-n", "team"],
        r#"pods "web" is forbidden: User "system:serviceaccount:team:builder" cannot delete resource "pods""#,
    );
    must_fail_with(
        &builder,
        &["get", "secrets", "-n", "team"],
        "cannot list resource \"secrets\"",
    );
    must_fail_with(
        &builder,
        &["get", "pods", "-n", "default"],
        "cannot list resource \"pods\"",
    );

    // Escalation: an admin of team grants only what it holds.
    let jane = as_user(&plane.kubeconfig("jane"));
    plane.kubectl_ok(&[
        "create",
        "rolebinding",
        "jane-admin",
        "--clusterrole=admin",
        "--user=jane",
        "-n",
        "team",
    ]);
    wait_for("jane's admin binding", || {
        jane.run(&["get", "roles", "-n", "team"], None)
            .status
            .success()
    });
    jane.run_ok(
        &[
            "create",
            "role",
            "pod-reader",
            "--verb=get",
            "--verb=list",
            "--resource=pods",
            "-n",
            "team",
        ],
        None,
    );
    jane.run_ok(
        &[
            "create",
            "rolebinding",
            "bob-view",
            "--clusterrole=view",
            "--user=bob",
            "-n",
            "team",
        ],
        None,
    );
    let err = refused(&jane.run(
        &[
            "create",
            "role",
            "node-reader",
            "--verb=get",
            "--resource=nodes",
            "-n",
            "team",
        ],
        None,
    ));
    assert!(err.contains(r#"roles.rbac.authorization.k8s.io "node-reader" is forbidden: user "jane" (groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held:"#), "{err}");
    assert!(
        err.contains(r#"{APIGroups:[""], Resources:["nodes"], Verbs:["get"]}"#),
        "{err}"
    );
    let err = refused(&jane.run(
        &[
            "create",
            "rolebinding",
            "jane-root",
            "--clusterrole=cluster-admin",
            "--user=jane",
            "-n",
            "team",
        ],
        None,
    ));
    assert!(err.contains(r#"rolebindings.rbac.authorization.k8s.io "jane-root" is forbidden: user "jane" (groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held:"#), "{err}");
    // Widening a role already held is refused the same way.
    let err = refused(&jane.run(&["patch", "role", "pod-reader", "-n", "team", "--type=json",
        "-p", r#"[{"op":"add","path":"/rules/-","value":{"apiGroups":[""],"resources":["nodes"],"verbs":["list"]}}]"#], None));
    assert!(
        err.contains("attempting to grant RBAC permissions not currently held"),
        "{err}"
    );
    // With `bind` on cluster-admin, the binding is allowed.
    plane.kubectl_ok(&[
        "create",
        "clusterrole",
        "bind-admin",
        "--verb=bind",
        "--resource=clusterroles",
        "--resource-name=cluster-admin",
    ]);
    plane.kubectl_ok(&[
        "create",
        "clusterrolebinding",
        "jane-bind",
        "--clusterrole=bind-admin",
        "--user=jane",
    ]);
    wait_for("jane's bind permission", || {
        jane.run(
            &[
                "create",
                "rolebinding",
                "jane-root",
                "--clusterrole=cluster-admin",
                "--user=jane",
                "-n",
                "team",
            ],
            None,
        )
        .status
        .success()
    });
}

#[test]
fn a_node_reads_and_writes_only_what_its_pods_need() {
    let plane = Plane::new();
    let api = &plane.cluster.api;
    plane.kubectl_ok(&["create", "namespace", "team"]);
    for node in ["n1", "n2"] {
        let body = format!(r#"{{"apiVersion":"v1","kind":"Node","metadata":{{"name":"{node}"}}}}"#);
        let out = api.kubectl_stdin(&["create", "-f", "-"], &body);
        assert!(out.status.success(), "{}", stderr(&out));
        plane.kubectl_ok(&[
            "create",
            "secret",
            "generic",
            &format!("s-{node}"),
            "-n",
            "team",
            "--from-literal=k=v",
        ]);
        let pod = format!(
            r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"p-{node}","namespace":"team"}},
            "spec":{{"nodeName":"{node}","automountServiceAccountToken":false,"containers":[{{"name":"c","image":"busybox"}}],
            "volumes":[{{"name":"s","secret":{{"secretName":"s-{node}"}}}}]}}}}"#
        );
        let out = api.kubectl_stdin(&["create", "-f", "-"], &pod);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    plane.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "unused",
        "-n",
        "team",
        "--from-literal=k=v",
    ]);
    let n1 = as_user(&plane.kubeconfig_in("system:node:n1", &["system:nodes"]));

    n1.run_ok(&["get", "secret", "s-n1", "-n", "team"], None);
    let user = r#"User "system:node:n1""#;
    for secret in ["s-n2", "unused"] {
        must_fail_with(
            &n1,
            &["get", "secret", secret, "-n", "team"],
            &format!(
                r#"secrets "{secret}" is forbidden: {user} cannot get resource "secrets" in API group "" in the namespace "team": no relationship found between node 'n1' and this object"#
            ),
        );
    }
    must_fail_with(&n1, &["get", "secrets", "-n", "team"], "forbidden");
    // Its own Node and its pods' status only.
    n1.run_ok(&["label", "node", "n1", "zone=a"], None);
    must_fail_with(
        &n1,
        &["label", "node", "n2", "zone=a"],
        r#"nodes "n2" is forbidden"#,
    );
    must_fail_with(&n1, &["delete", "node", "n2"], r#"nodes "n2" is forbidden"#);
    must_fail_with(
        &n1,
        &["delete", "pod", "p-n2", "-n", "team"],
        r#"pods "p-n2" is forbidden: node "n1" can only delete pods with spec.nodeName set to itself"#,
    );
    // A status write (PUT, as the kubelet sends it) of another node's pod.
    let running = |pod: &str| {
        let json = plane.kubectl_ok(&["get", "pod", pod, "-n", "team", "-o", "json"]);
        let mut object: serde_json::Value = serde_json::from_str(&json).expect("a pod");
        object["status"]["phase"] = serde_json::json!("Running");
        object.to_string()
    };
    let replace = ["replace", "--subresource=status", "-f", "-"];
    let err = refused(&n1.run(&replace, Some(&running("p-n2"))));
    assert!(err.contains(r#"pods "p-n2" is forbidden: node "n1" can only update pod status for pods with spec.nodeName set to itself"#), "{err}");
    n1.run_ok(&replace, Some(&running("p-n1")));
    must_fail_with(&n1, &["create", "namespace", "mine"], "forbidden");
    must_fail_with(
        &n1,
        &[
            "create",
            "clusterrolebinding",
            "root",
            "--clusterrole=cluster-admin",
            "--user=system:node:n1",
        ],
        "forbidden",
    );
}
