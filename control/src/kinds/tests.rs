//! The catalog's shape.

use super::*;

#[test]
fn plurals_are_unique_per_group_version() {
    for (i, a) in RESOURCES.iter().enumerate() {
        for b in &RESOURCES[i + 1..] {
            assert!(
                !(a.group == b.group && a.version == b.version && a.plural == b.plural),
                "{} listed twice",
                a.group_resource()
            );
        }
    }
}

#[test]
fn core_group_comes_first_and_names_resolve() {
    assert_eq!(group_versions()[0], ("", "v1"));
    let deploy = find("apps", "v1", "deployments").expect("deployments");
    assert_eq!(deploy.group_resource(), "deployments.apps");
    assert_eq!(deploy.subresource("scale").map(|s| s.kind), Some("Scale"));
    assert_eq!(find_kind("", "v1", "Pod").map(|r| r.plural), Some("pods"));
}
