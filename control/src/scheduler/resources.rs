//! Resource arithmetic of the scheduler: a pod's effective requests
//! (`resource.PodRequests`: sum of containers, at least each init
//! container, plus overhead) and a node's allocatable, in milli-CPU and
//! bytes.

use std::collections::BTreeMap;

use baton_apimachinery::quantity::Quantity;
use k8s_openapi::api::core::v1::{Node, Pod, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;

/// CPU assumed for a container without a cpu request, when scoring only
/// (`schedutil.DefaultMilliCPURequest`).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// Memory assumed likewise (`schedutil.DefaultMemoryRequest`, 200 MiB).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// Amounts of the resources the scheduler accounts for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    pub pods: i64,
}

impl Resources {
    pub fn add(&mut self, o: &Resources) {
        self.milli_cpu += o.milli_cpu;
        self.memory += o.memory;
        self.ephemeral_storage += o.ephemeral_storage;
        self.pods += o.pods;
    }

    pub fn sub(&mut self, o: &Resources) {
        self.milli_cpu -= o.milli_cpu;
        self.memory -= o.memory;
        self.ephemeral_storage -= o.ephemeral_storage;
        self.pods -= o.pods;
    }

    fn max(&mut self, o: &Resources) {
        self.milli_cpu = self.milli_cpu.max(o.milli_cpu);
        self.memory = self.memory.max(o.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(o.ephemeral_storage);
    }
}

fn milli(q: &ApiQuantity) -> i64 {
    Quantity::parse(&q.0)
        .map(|q| q.milli_value().clamp(0, i64::MAX as i128) as i64)
        .unwrap_or(0)
}

fn value(q: &ApiQuantity) -> i64 {
    Quantity::parse(&q.0)
        .map(|q| q.value().clamp(0, i64::MAX as i128) as i64)
        .unwrap_or(0)
}

/// Reads a resource list (requests, allocatable).
pub fn from_list(list: Option<&BTreeMap<String, ApiQuantity>>) -> Resources {
    let mut r = Resources::default();
    for (k, q) in list.into_iter().flatten() {
        match k.as_str() {
            "cpu" => r.milli_cpu = milli(q),
            "memory" => r.memory = value(q),
            "ephemeral-storage" => r.ephemeral_storage = value(q),
            "pods" => r.pods = value(q),
            _ => {}
        }
    }
    r
}

fn requests(rr: Option<&ResourceRequirements>) -> Resources {
    // A limit without a request defaults the request (API defaulting does
    // this too; kept for objects written before defaulting).
    let Some(rr) = rr else {
        return Resources::default();
    };
    let mut r = from_list(rr.requests.as_ref());
    let l = from_list(rr.limits.as_ref());
    let has = |k: &str| rr.requests.as_ref().is_some_and(|m| m.contains_key(k));
    if !has("cpu") {
        r.milli_cpu = l.milli_cpu;
    }
    if !has("memory") {
        r.memory = l.memory;
    }
    r
}

/// A pod's requests, and the same with the scoring defaults applied to
/// containers that request no cpu/memory (`non_zero`).
pub fn pod_requests(pod: &Pod) -> (Resources, Resources) {
    let Some(spec) = &pod.spec else {
        return (Resources::default(), Resources::default());
    };
    let mut sum = Resources::default();
    let mut non_zero = Resources::default();
    for c in &spec.containers {
        let r = requests(c.resources.as_ref());
        sum.add(&r);
        let mut nz = r;
        if nz.milli_cpu == 0 {
            nz.milli_cpu = DEFAULT_MILLI_CPU_REQUEST;
        }
        if nz.memory == 0 {
            nz.memory = DEFAULT_MEMORY_REQUEST;
        }
        non_zero.add(&nz);
    }
    // Restartable init containers (sidecars) run beside the app; the others
    // run one at a time before it.
    let mut sidecars = Resources::default();
    let mut init_max = Resources::default();
    for c in spec.init_containers.iter().flatten() {
        let r = requests(c.resources.as_ref());
        if c.restart_policy.as_deref() == Some("Always") {
            sidecars.add(&r);
            init_max.max(&sidecars);
        } else {
            let mut with = sidecars;
            with.add(&r);
            init_max.max(&with);
        }
    }
    sum.add(&sidecars);
    sum.max(&init_max);
    non_zero.add(&sidecars);
    non_zero.max(&init_max);
    if let Some(o) = &spec.overhead {
        let o = from_list(Some(o));
        sum.add(&o);
        non_zero.add(&o);
    }
    sum.pods = 1;
    non_zero.pods = 1;
    (sum, non_zero)
}

/// A node's allocatable (capacity when allocatable is absent).
pub fn node_allocatable(node: &Node) -> Resources {
    let st = node.status.as_ref();
    from_list(
        st.and_then(|s| s.allocatable.as_ref())
            .or_else(|| st.and_then(|s| s.capacity.as_ref())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_sum_containers_and_take_max_of_init() {
        let pod: Pod = serde_json::from_value(json!({
            "spec": {
                "containers": [
                    {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}},
                    {"name": "b", "resources": {"limits": {"cpu": "1"}}},
                ],
                "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2"}}}],
                "overhead": {"cpu": "10m"},
            }
        }))
        .unwrap();
        let (r, nz) = pod_requests(&pod);
        assert_eq!(r.milli_cpu, 2010);
        assert_eq!(r.memory, 64 * 1024 * 1024);
        assert_eq!(nz.memory, 64 * 1024 * 1024 + DEFAULT_MEMORY_REQUEST);
        assert_eq!(r.pods, 1);
    }
}
