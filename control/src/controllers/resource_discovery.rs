//! The resources the garbage collector and the namespace controller act on,
//! found through API discovery (as kube-controller-manager does), not a
//! fixed list: every listable, watchable, deletable resource.

use kube::discovery::{ApiCapabilities, ApiResource, Discovery, Scope, verbs};

/// A resource and what it supports.
#[derive(Debug, Clone)]
pub struct Deletable {
    pub resource: ApiResource,
    pub namespaced: bool,
    pub delete_collection: bool,
}

/// Resources never listed for deletion; `events` only by the garbage
/// collector (`ignoredResources`: never owners, far too many to track).
fn ignored(ar: &ApiResource, for_gc: bool) -> bool {
    (for_gc && ar.plural == "events") || ar.plural == "bindings" || ar.plural == "componentstatuses"
}

impl Deletable {
    /// Whether the garbage collector tracks this resource.
    pub fn collected(&self) -> bool {
        !ignored(&self.resource, true)
    }
}

/// Listable, watchable and deletable resources, preferred versions only.
pub async fn deletable(client: &kube::Client) -> Result<Vec<Deletable>, kube::Error> {
    let d = Discovery::new(client.clone()).run().await?;
    let mut out = Vec::new();
    for g in d.groups() {
        for (ar, caps) in g.recommended_resources() {
            if usable(&ar, &caps) {
                out.push(Deletable {
                    namespaced: caps.scope == Scope::Namespaced,
                    delete_collection: caps.supports_operation(verbs::DELETE_COLLECTION),
                    resource: ar,
                });
            }
        }
    }
    Ok(out)
}

fn usable(ar: &ApiResource, caps: &ApiCapabilities) -> bool {
    !ignored(ar, false)
        && [verbs::LIST, verbs::WATCH, verbs::DELETE]
            .iter()
            .all(|v| caps.supports_operation(v))
}
