//! Removing what killed test runs left behind: namespaces (and the
//! processes still inside them), host links, host safety routes and run
//! directories (with their mounts) whose owner is dead. Anything whose owner
//! is alive, and the persistent cluster, are never touched.
//!
//! Runs under the registry lock, so no cluster is being set up meanwhile.

use std::collections::BTreeSet;
use std::fs;

use crate::addressing::{PERSISTENT_SLOT, Slot, slot_of_metric};
use crate::exec::CommandError;
use crate::iproute;
use crate::netns::Netns;
use crate::owner::pid_in_use;
use crate::process;
use crate::registry::{Registry, RegistryLock};
use crate::safety;
use crate::topology::parse_ephemeral;

/// Removes leftovers of dead test clusters and returns what was removed.
pub(crate) fn sweep(registry: &Registry, lock: &RegistryLock) -> Result<Vec<String>, CommandError> {
    let mut removed = Vec::new();
    let mut live_slots = BTreeSet::new();

    // 1. Clusters with a record: the record says exactly what they own.
    for (slot, record) in registry.records(lock) {
        match record {
            Some(record) if record.owner.is_alive() => {
                live_slots.insert(slot);
            }
            Some(record) => {
                tracing::info!(cluster = %record.topology.name, pid = record.owner.pid, "removing leftovers of a dead run");
                for problem in record.topology.destroy() {
                    tracing::warn!(cluster = %record.topology.name, "{problem}");
                }
                removed.push(format!("cluster {}", record.topology.name));
                if let Err(err) = registry.remove(slot) {
                    tracing::warn!(%err, "removing slot record");
                }
            }
            None => {
                tracing::warn!(slot, "unreadable slot record; removing it");
                let _ = registry.remove(slot);
            }
        }
    }

    // 2. Resources without a record (a record removed by hand, or a
    //    teardown that failed half-way): recognised by the owner PID in
    //    their names. A name's PID that is in use counts as alive.
    let dead = |name: &str| parse_ephemeral(name).filter(|(pid, _)| !pid_in_use(*pid));
    for name in iproute::netns_list()? {
        if let Some((_, slot)) = dead(&name) {
            let ns = Netns::new(&name);
            if let Ok(pids) = ns.pids() {
                let _ = process::kill_all(&pids);
            }
            tracing::info!(netns = %name, slot, "removing leftover namespace");
            match iproute::netns_del(&name) {
                Ok(()) => removed.push(format!("namespace {name}")),
                Err(err) => tracing::warn!(%err, "removing leftover namespace"),
            }
        }
    }
    for link in iproute::links(None)? {
        let name = link.ifname;
        if name.starts_with("bt") && dead(&name).is_some() {
            tracing::info!(link = %name, "removing leftover host link");
            match iproute::link_del(None, &name) {
                Ok(()) => removed.push(format!("link {name}")),
                Err(err) => tracing::warn!(%err, "removing leftover host link"),
            }
        }
    }

    // 3. Safety routes of slots nobody alive holds.
    let stale_metrics: BTreeSet<u32> = iproute::harness_host_routes()?
        .into_iter()
        .filter_map(|r| r.metric)
        .filter(|&m| {
            slot_of_metric(m)
                .is_some_and(|s: Slot| s != PERSISTENT_SLOT && !live_slots.contains(&s))
        })
        .collect();
    for metric in stale_metrics {
        tracing::info!(metric, "removing leftover host safety routes");
        match safety::remove_metric(metric) {
            Ok(()) => removed.push(format!("safety routes metric {metric}")),
            Err(err) => tracing::warn!(%err, "removing leftover safety routes"),
        }
    }

    // 4. Run directories (and mounts beneath them).
    if let Ok(dir) = fs::read_dir(registry.root()) {
        for entry in dir.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if dead(&name).is_some() {
                tracing::info!(dir = %entry.path().display(), "removing leftover run directory");
                if let Err(err) = crate::host::remove_run_dir(&entry.path()) {
                    tracing::warn!(%err, "removing leftover run directory");
                } else {
                    removed.push(format!("run dir {}", entry.path().display()));
                }
            }
        }
    }
    Ok(removed)
}
