//! Reading one pod's runtime state from CRI: its sandboxes and containers
//! (two list calls filtered by the pod's UID label), and the status of
//! only those whose state changed since the last read
//! ([`RuntimeCache`]), with the termination message of each newly exited
//! container.

use std::collections::HashMap;
use std::sync::Mutex;

use super::observed::PodRuntime;
use super::relist::{self, Fingerprint};
use super::runtime_cache::RuntimeCache;
use super::termination_message;
use crate::cri::api;
use crate::cri::labels;
use crate::cri::{Cri, CriError};

/// Reads the runtime state of pod `uid` from CRI: its sandboxes and
/// containers, and the status of those whose state changed since the last
/// read ([`RuntimeCache`]).
pub async fn observe(
    cri: &Cri,
    cache: &Mutex<RuntimeCache>,
    uid: &str,
) -> Result<PodRuntime, CriError> {
    Ok(observe_with_fingerprint(cri, cache, uid).await?.0)
}

/// [`observe`], with the pod's fingerprint as the relist computes it from
/// the same lists.
pub async fn observe_with_fingerprint(
    cri: &Cri,
    cache: &Mutex<RuntimeCache>,
    uid: &str,
) -> Result<(PodRuntime, Fingerprint), CriError> {
    let selector = HashMap::from([(labels::POD_UID.to_owned(), uid.to_owned())]);
    let sandboxes = cri
        .list_pod_sandboxes(Some(api::PodSandboxFilter {
            label_selector: selector.clone(),
            ..Default::default()
        }))
        .await?;
    let cache = || {
        cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    let mut ips = HashMap::new();
    for s in &sandboxes {
        if s.state != api::PodSandboxState::SandboxReady as i32 {
            continue;
        }
        let known = cache().sandbox_ip(&s.id);
        let ip = match known {
            Some(ip) => ip,
            None => match cri.pod_sandbox_status(&s.id).await {
                Ok(status) => {
                    let Some(net) = status.network else { continue };
                    cache().remember_sandbox_ip(uid, &s.id, &net.ip);
                    net.ip
                }
                Err(_) => continue,
            },
        };
        ips.insert(s.id.clone(), ip);
    }
    let listed = cri
        .list_containers(Some(api::ContainerFilter {
            label_selector: selector,
            ..Default::default()
        }))
        .await?;
    let mut containers = Vec::with_capacity(listed.len());
    for c in &listed {
        let known = cache().container_status(c);
        let status = match known {
            Some(status) => status,
            None => match cri.container_status(&c.id).await {
                Ok(mut status) => {
                    termination_message::add_message(&mut status);
                    cache().remember_container_status(uid, &status);
                    status
                }
                Err(err) if err.is_not_found() => continue,
                Err(err) => return Err(err),
            },
        };
        containers.push((status, c.pod_sandbox_id.clone()));
    }
    cache().retain_listed(
        uid,
        &ips.keys().map(String::as_str).collect(),
        &listed.iter().map(|c| c.id.as_str()).collect(),
    );
    let fingerprint = relist::fingerprints(&sandboxes, &listed)
        .remove(uid)
        .unwrap_or_default();
    let mut grouped = PodRuntime::group(&sandboxes, &ips, &containers);
    Ok((grouped.remove(uid).unwrap_or_default(), fingerprint))
}
