//! Resource names and quantities (core validation: `validateResourceName`,
//! `validateContainerResourceName`, `ValidateResourceQuantityValue`,
//! `ValidateResourceRequirements`, `ValidatePositiveQuantityValue`; helpers
//! from pkg/apis/core/helper).

use std::cmp::Ordering;
use std::collections::BTreeMap;

use baton_apimachinery::quantity::Quantity;
use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as WireQuantity;

use super::field::{self, Cause, Path};
use super::formats::is_qualified_name;
use super::metadata::IS_NEGATIVE;

const STANDARD_CONTAINER_RESOURCES: &[&str] = &["cpu", "memory", "ephemeral-storage"];
const STANDARD_RESOURCES: &[&str] = &[
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
    "services",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "storage",
    "requests.storage",
    "services.nodeports",
    "services.loadbalancers",
];
const INTEGER_RESOURCES: &[&str] = &[
    "pods",
    "services",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "services.nodeports",
    "services.loadbalancers",
];

fn is_hugepages(name: &str) -> bool {
    name.starts_with("hugepages-")
}

/// `helper.IsNativeResource`: unprefixed or in `kubernetes.io/`.
fn is_native(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

/// `helper.IsExtendedResourceName`.
fn is_extended(name: &str) -> bool {
    !is_native(name)
        && !name.starts_with("requests.")
        && is_qualified_name(&format!("requests.{name}")).is_empty()
}

/// `helper.IsOvercommitAllowed`.
fn overcommit_allowed(name: &str) -> bool {
    is_native(name) && !is_hugepages(name)
}

fn is_integer_resource(name: &str) -> bool {
    INTEGER_RESOURCES.contains(&name) || is_extended(name)
}

/// `validateResourceName`.
pub fn validate_resource_name(name: &str, path: &Path) -> Vec<Cause> {
    let errs: Vec<Cause> = is_qualified_name(name)
        .into_iter()
        .map(|m| field::invalid(path, name, &m))
        .collect();
    if !errs.is_empty() {
        return errs;
    }
    if !name.contains('/') && !STANDARD_RESOURCES.contains(&name) && !is_hugepages(name) {
        return vec![field::invalid(
            path,
            name,
            "must be a standard resource type or fully qualified",
        )];
    }
    errs
}

/// `validateContainerResourceName`.
pub fn validate_container_resource_name(name: &str, path: &Path) -> Vec<Cause> {
    let mut errs = validate_resource_name(name, path);
    if !name.contains('/') {
        if !STANDARD_CONTAINER_RESOURCES.contains(&name) && !is_hugepages(name) {
            errs.push(field::invalid(
                path,
                name,
                "must be a standard resource for containers",
            ));
        }
    } else if !is_native(name) && !is_extended(name) {
        errs.push(field::invalid(
            path,
            name,
            "doesn't follow extended resource name standard",
        ));
    }
    errs
}

/// Parses a wire quantity, reporting a malformed one at `path`.
pub fn parse_quantity(q: &WireQuantity, path: &Path) -> Result<Quantity, Cause> {
    Quantity::parse(&q.0).map_err(|e| field::invalid(path, &q.0, &e.to_string()))
}

/// `ValidateResourceQuantityValue`: non-negative, whole for integer
/// resources.
pub fn validate_quantity_value(resource: &str, q: &Quantity, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    if q.is_negative() {
        errs.push(field::invalid(path, q.canonical(), IS_NEGATIVE));
    }
    if is_integer_resource(resource) && q.milli_value() % 1000 != 0 {
        errs.push(field::invalid(
            path,
            field::BadValue::Go(q.canonical()),
            "must be an integer",
        ));
    }
    errs
}

/// `ValidatePositiveQuantityValue`.
pub fn validate_positive_quantity(q: &Quantity, path: &Path) -> Vec<Cause> {
    if q.is_zero() || q.is_negative() {
        vec![field::invalid(
            path,
            q.canonical(),
            "must be greater than zero",
        )]
    } else {
        Vec::new()
    }
}

/// Validates a `ResourceList` and returns the parsed quantities.
fn validate_list(
    list: Option<&BTreeMap<String, WireQuantity>>,
    path: &Path,
    errs: &mut Vec<Cause>,
) -> BTreeMap<String, Quantity> {
    let mut parsed = BTreeMap::new();
    for (name, q) in list.into_iter().flatten() {
        let p = path.key(name);
        errs.extend(validate_container_resource_name(name, &p));
        match parse_quantity(q, &p) {
            Ok(q) => {
                errs.extend(validate_quantity_value(name, &q, &p));
                parsed.insert(name.clone(), q);
            }
            Err(e) => errs.push(e),
        }
    }
    parsed
}

/// `ValidateResourceRequirements` for a container: names, quantities,
/// requests ≤ limits, non-overcommittable resources equal.
pub fn validate_resource_requirements(req: &ResourceRequirements, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    let lim_path = path.child("limits");
    let req_path = path.child("requests");
    let limits = validate_list(req.limits.as_ref(), &lim_path, &mut errs);
    let requests = validate_list(req.requests.as_ref(), &req_path, &mut errs);
    for (name, q) in &requests {
        match limits.get(name) {
            Some(limit) => {
                let ord = q.cmp_value(limit);
                if ord != Ordering::Equal && !overcommit_allowed(name) {
                    errs.push(field::invalid(
                        &req_path,
                        q.canonical(),
                        &format!("must be equal to {name} limit of {}", limit.canonical()),
                    ));
                } else if ord == Ordering::Greater {
                    errs.push(field::invalid(
                        &req_path,
                        q.canonical(),
                        &format!(
                            "must be less than or equal to {name} limit of {}",
                            limit.canonical()
                        ),
                    ));
                }
            }
            None if !overcommit_allowed(name) => {
                errs.push(field::required(
                    &lim_path,
                    "Limit must be set for non overcommitable resources",
                ));
            }
            None => {}
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(v: serde_json::Value) -> ResourceRequirements {
        serde_json::from_value(v).unwrap()
    }

    fn msgs(errs: &[Cause]) -> Vec<String> {
        errs.iter().map(Cause::error_string).collect()
    }

    // ValidateResourceRequirements: request above limit.
    #[test]
    fn requests_above_limits() {
        let p = Path::new("spec")
            .child("containers")
            .index(0)
            .child("resources");
        assert_eq!(
            msgs(&validate_resource_requirements(
                &req(serde_json::json!({"limits": {"cpu": "1"}, "requests": {"cpu": "2"}})),
                &p
            )),
            vec![
                "spec.containers[0].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1"
            ]
        );
        assert!(validate_resource_requirements(&req(serde_json::json!({"limits": {"memory": "1Gi"}, "requests": {"memory": "512Mi"}})), &p).is_empty());
    }

    // validateContainerResourceName / ValidateResourceQuantityValue / quantity syntax.
    #[test]
    fn names_and_values() {
        let p = Path::new("r");
        assert_eq!(
            msgs(&validate_resource_requirements(
                &req(serde_json::json!({"limits": {"gpu": "1"}})),
                &p
            )),
            vec![
                "r.limits[gpu]: Invalid value: \"gpu\": must be a standard resource type or fully qualified",
                "r.limits[gpu]: Invalid value: \"gpu\": must be a standard resource for containers",
            ]
        );
        assert_eq!(
            msgs(&validate_resource_requirements(
                &req(serde_json::json!({"requests": {"cpu": "-1"}})),
                &p
            )),
            vec!["r.requests[cpu]: Invalid value: \"-1\": must be greater than or equal to 0"]
        );
        assert_eq!(
            msgs(&validate_resource_requirements(
                &req(serde_json::json!({"limits": {"example.com/dongle": "500m"}})),
                &p
            )),
            vec!["r.limits[example.com/dongle]: Invalid value: 500m: must be an integer"]
        );
        assert_eq!(
            msgs(&validate_resource_requirements(
                &req(serde_json::json!({"limits": {"memory": "1Gb"}})),
                &p
            )),
            vec![
                "r.limits[memory]: Invalid value: \"1Gb\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
            ]
        );
    }

    // Hugepages are not overcommittable.
    #[test]
    fn hugepages_must_match() {
        let p = Path::new("r");
        assert_eq!(
            msgs(&validate_resource_requirements(
                &req(
                    serde_json::json!({"limits": {"hugepages-2Mi": "4Mi"}, "requests": {"hugepages-2Mi": "2Mi"}})
                ),
                &p
            )),
            vec!["r.requests: Invalid value: \"2Mi\": must be equal to hugepages-2Mi limit of 4Mi"]
        );
    }
}
