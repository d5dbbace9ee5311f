//! The proxy's sync loop, on a thread of its own (map writes are system
//! calls): it waits for [`Change`]s, coalesces a burst into one batch —
//! after a change it keeps collecting until no change came for the
//! debounce time or the batch is `max_delay` old — translates only the
//! services the batch touched, and hands them to the [`Syncer`]. Between
//! batches it retries failed specs, recomputes everything every sync
//! period (a safety net against a missed event; only differences are
//! written), collects expired conntrack entries and refreshes the node's
//! addresses. After each sync it updates the metrics, the health checks,
//! the service names of the dump, logs, and sends Events for new failures
//! and recoveries.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    path::PathBuf,
    sync::{
        Arc, Mutex,
        mpsc::{Receiver, RecvTimeoutError},
    },
    time::{Duration, Instant, SystemTime},
};

use tracing::{debug, info, warn};

use super::{
    Config,
    events::{EventSender, ServiceEvent},
    healthcheck::{HealthChecks, ProxyHealth},
    metrics::ProxyMetrics,
    sync::{FailureReport, SyncReport, Syncer, error_kind},
    translate::{NodeContext, ServiceRef, Translation, translate},
    watch::{Change, SliceKey, Stores},
};
use crate::{
    dataplane::{Dataplane, LbError, SharedDataplane},
    metrics::unix_now,
};

/// How often the node's addresses are looked at.
const ADDRESS_REFRESH: Duration = Duration::from_secs(5);
/// Shortest interval between two publications of the programmed state
/// (usage metrics, service names).
const STATE_INTERVAL: Duration = Duration::from_secs(1);
/// File (in the state directory) naming the programmed services by id, for
/// `baton-node dataplane dump`.
pub const NAMES_FILE: &str = "service-names.json";

/// Which EndpointSlices belong to which service.
#[derive(Debug, Default)]
struct SliceIndex {
    owner: HashMap<SliceKey, ServiceRef>,
    by_service: HashMap<ServiceRef, BTreeSet<SliceKey>>,
}

impl SliceIndex {
    fn rebuild(stores: &Stores) -> Self {
        let mut index = Self::default();
        for slice in stores.slices.state() {
            if let Some(service) = ServiceRef::of_slice(&slice) {
                index.set(super::watch::slice_key(&slice), Some(service));
            }
        }
        index
    }

    /// Records that `key` belongs to `service` now; returns the service it
    /// belonged to before.
    fn set(&mut self, key: SliceKey, service: Option<ServiceRef>) -> Option<ServiceRef> {
        let old = self.owner.remove(&key);
        if let Some(old) = &old
            && let Some(keys) = self.by_service.get_mut(old)
        {
            keys.remove(&key);
            if keys.is_empty() {
                self.by_service.remove(old);
            }
        }
        if let Some(service) = service {
            self.by_service
                .entry(service.clone())
                .or_default()
                .insert(key.clone());
            self.owner.insert(key, service);
        }
        old
    }
}

/// The loop's state.
pub struct SyncLoop {
    pub(super) config: Config,
    pub(super) stores: Stores,
    pub(super) changes: Receiver<Change>,
    pub(super) dataplane: SharedDataplane,
    pub(super) metrics: Arc<ProxyMetrics>,
    pub(super) names: Arc<Mutex<HashMap<u32, String>>>,
    pub(super) events: EventSender,
    pub(super) health: Arc<ProxyHealth>,
    pub(super) health_checks: HealthChecks,
    syncer: Syncer,
    index: SliceIndex,
    /// Earliest `last-change-trigger-time` per service not yet programmed.
    triggers: HashMap<ServiceRef, SystemTime>,
    /// The programmed state changed since it was last published.
    state_dirty: bool,
    /// Services were created or deleted since the names were published.
    names_dirty: bool,
    state_published: Instant,
}

impl SyncLoop {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        config: Config,
        stores: Stores,
        changes: Receiver<Change>,
        dataplane: SharedDataplane,
        metrics: Arc<ProxyMetrics>,
        names: Arc<Mutex<HashMap<u32, String>>>,
        events: EventSender,
        health: Arc<ProxyHealth>,
        health_checks: HealthChecks,
    ) -> Self {
        let syncer = Syncer::new(config.retry);
        Self {
            config,
            stores,
            changes,
            dataplane,
            metrics,
            names,
            events,
            health,
            health_checks,
            syncer,
            index: SliceIndex::default(),
            triggers: HashMap::new(),
            state_dirty: false,
            names_dirty: false,
            state_published: Instant::now(),
        }
    }

    fn node_context(&self) -> NodeContext {
        NodeContext {
            node_name: self.config.node_name.clone(),
            default_algorithm: self.config.default_algorithm,
        }
    }

    /// Runs until the watches are gone.
    pub fn run(mut self) {
        // Changes of the first lists are in the stores already.
        while self.changes.try_recv().is_ok() {}
        self.initial();
        let now = Instant::now();
        let mut next_periodic = now + self.config.sync_period;
        let mut next_gc = now + self.config.conntrack_gc_interval;
        let mut next_addresses = now + ADDRESS_REFRESH;
        loop {
            let mut deadline = next_periodic.min(next_gc).min(next_addresses);
            if let Some(retry) = self.syncer.next_retry() {
                deadline = deadline.min(retry);
            }
            if let Some(publish) = self.state_deadline() {
                deadline = deadline.min(publish);
            }
            match self
                .changes
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(first) => {
                    let batch = self.collect(first);
                    self.apply(batch);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            let now = Instant::now();
            if self.state_deadline().is_some_and(|publish| publish <= now) {
                self.publish_state();
            }
            if self.syncer.next_retry().is_some_and(|retry| retry <= now) {
                let start = Instant::now();
                let report = {
                    let mut dataplane = lock(&self.dataplane);
                    self.syncer.retry_due(dataplane.load_balancer(), now)
                };
                self.finish("retry", start, &report);
            }
            if now >= next_periodic {
                next_periodic = now + self.config.sync_period;
                let mut all: HashSet<ServiceRef> = self.syncer.services().cloned().collect();
                all.extend(
                    self.stores
                        .services
                        .state()
                        .iter()
                        .map(|s| ServiceRef::of_service(s)),
                );
                self.sync_services(all, "periodic");
            }
            if now >= next_gc {
                next_gc = now + self.config.conntrack_gc_interval;
                self.conntrack_gc();
            }
            if now >= next_addresses {
                next_addresses = now + ADDRESS_REFRESH;
                let result = self
                    .config
                    .node
                    .refresh_addresses(&mut lock(&self.dataplane));
                if let Err(error) = result {
                    warn!(%error, "refreshing the node's addresses");
                }
            }
        }
    }

    /// The first sync: every service, reconciled with what the pinned maps
    /// hold.
    fn initial(&mut self) {
        let start = Instant::now();
        self.index = SliceIndex::rebuild(&self.stores);
        self.update_node();
        let ctx = self.node_context();
        let translations: Vec<(ServiceRef, Translation)> = self
            .stores
            .services
            .state()
            .iter()
            .map(|service| {
                let service_ref = ServiceRef::of_service(service);
                let translation = self.translate(&service_ref, service, &ctx);
                (service_ref, translation)
            })
            .collect();
        for (service, translation) in &translations {
            self.warn_about(service, translation, None);
        }
        let report = {
            let mut dataplane = lock(&self.dataplane);
            self.syncer
                .initial(dataplane.load_balancer(), translations, Instant::now())
        };
        info!(
            services = report.services,
            created = report.created,
            updated = report.updated,
            unchanged = report.unchanged,
            deleted = report.deleted,
            failed = report.failures.len(),
            "initial sync: maps reconciled with the API (unchanged entries kept from the pinned maps)"
        );
        self.finish("initial", start, &report);
        self.conntrack_gc();
    }

    /// Collects the changes of one burst: until none came for the debounce
    /// time, or the batch is `max_delay` old.
    fn collect(&mut self, first: Change) -> Vec<Change> {
        let started = Instant::now();
        self.health.queued();
        self.metrics.last_queued.set(unix_now());
        let mut batch = vec![first];
        loop {
            let left = self.config.max_delay.saturating_sub(started.elapsed());
            if left.is_zero() {
                break;
            }
            match self.changes.recv_timeout(self.config.debounce.min(left)) {
                Ok(change) => batch.push(change),
                Err(_) => break,
            }
        }
        batch
    }

    /// Applies one batch of changes.
    fn apply(&mut self, batch: Vec<Change>) {
        let mut dirty: HashSet<ServiceRef> = HashSet::new();
        let mut resync = false;
        let mut node = false;
        for change in batch {
            match change {
                Change::Service(service) => {
                    self.metrics.service_changes.inc();
                    dirty.insert(service);
                }
                Change::Slice {
                    key,
                    service,
                    trigger,
                } => {
                    self.metrics.endpoint_changes.inc();
                    if let (Some(service), Some(trigger)) = (&service, trigger) {
                        let earliest = self.triggers.entry(service.clone()).or_insert(trigger);
                        *earliest = (*earliest).min(trigger);
                    }
                    if let Some(old) = self.index.set(key, service.clone()) {
                        dirty.insert(old);
                    }
                    dirty.extend(service);
                }
                Change::Resync => resync = true,
                Change::Node => node = true,
            }
        }
        if node {
            self.update_node();
        }
        if resync {
            self.index = SliceIndex::rebuild(&self.stores);
            dirty.extend(self.syncer.services().cloned());
            dirty.extend(
                self.stores
                    .services
                    .state()
                    .iter()
                    .map(|service| ServiceRef::of_service(service)),
            );
        }
        if !dirty.is_empty() {
            self.sync_services(dirty, if resync { "resync" } else { "incremental" });
        } else {
            self.health.updated();
        }
    }

    /// Translates `services` from the stores and syncs them.
    fn sync_services(&mut self, services: HashSet<ServiceRef>, kind: &'static str) {
        let start = Instant::now();
        let ctx = self.node_context();
        let mut changes = Vec::with_capacity(services.len());
        for service_ref in services {
            let translation = self
                .stores
                .service(&service_ref)
                .map(|service| self.translate(&service_ref, &service, &ctx));
            if let Some(translation) = &translation {
                let before = self
                    .syncer
                    .desired(&service_ref)
                    .map(|t| t.warnings.clone());
                self.warn_about(&service_ref, translation, before.as_deref());
            }
            changes.push((service_ref, translation));
        }
        let touched: Vec<ServiceRef> = changes.iter().map(|(s, _)| s.clone()).collect();
        let report = {
            let mut dataplane = lock(&self.dataplane);
            self.syncer
                .update(dataplane.load_balancer(), changes, Instant::now())
        };
        if report.wrote() || !report.failures.is_empty() {
            debug!(
                kind,
                services = report.services,
                created = report.created,
                updated = report.updated,
                deleted = report.deleted,
                failed = report.failures.len(),
                elapsed_ms = start.elapsed().as_secs_f64() * 1e3,
                "services synced"
            );
        }
        self.finish(kind, start, &report);
        let now = SystemTime::now();
        for service in touched {
            if let Some(trigger) = self.triggers.remove(&service)
                && let Ok(elapsed) = now.duration_since(trigger)
            {
                self.metrics
                    .network_programming
                    .observe(elapsed.as_secs_f64());
            }
        }
    }

    fn translate(
        &self,
        service_ref: &ServiceRef,
        service: &k8s_openapi::api::core::v1::Service,
        ctx: &NodeContext,
    ) -> Translation {
        let slices: Vec<_> = self
            .index
            .by_service
            .get(service_ref)
            .into_iter()
            .flatten()
            .filter_map(|key| self.stores.slice(key))
            .collect();
        translate(service, slices.iter().map(AsRef::as_ref), ctx)
    }

    /// An Event for warnings that are new for the service.
    fn warn_about(
        &self,
        service: &ServiceRef,
        translation: &Translation,
        before: Option<&[String]>,
    ) {
        if translation.warnings.is_empty() || before == Some(translation.warnings.as_slice()) {
            return;
        }
        warn!(%service, warnings = ?translation.warnings, "parts of the service are not used");
        let _ = self.events.send(ServiceEvent {
            service: service.clone(),
            warning: true,
            reason: "UnsupportedServiceSpec",
            action: "Program",
            note: translation.warnings.join("; "),
        });
    }

    /// Whether this node may get load-balancer traffic (`/healthz`).
    fn update_node(&self) {
        let eligible = self
            .stores
            .nodes
            .state()
            .iter()
            .find(|node| node.metadata.name.as_deref() == Some(self.config.node_name.as_str()))
            .is_none_or(|node| {
                node.metadata.deletion_timestamp.is_none()
                    && !node
                        .spec
                        .as_ref()
                        .and_then(|spec| spec.taints.as_ref())
                        .is_some_and(|taints| {
                            taints
                                .iter()
                                .any(|taint| taint.key == "ToBeDeletedByClusterAutoscaler")
                        })
            });
        self.health.set_node_eligible(eligible);
    }

    /// Metrics, logs, Events, health checks and names after a sync.
    fn finish(&mut self, kind: &'static str, start: Instant, report: &SyncReport) {
        let metrics = &self.metrics;
        metrics.sync_duration.observe(start.elapsed().as_secs_f64());
        metrics.last_sync.set(unix_now());
        metrics
            .syncs
            .get_or_create(&vec![("kind".to_owned(), kind.to_owned())])
            .inc();
        for failure in &report.failures {
            self.report_failure(failure);
        }
        for (service, spec) in &report.recovered {
            info!(%service, spec, "service programmed again");
            let _ = self.events.send(ServiceEvent {
                service: service.clone(),
                warning: false,
                reason: "ServiceProgrammed",
                action: "Program",
                note: format!("{spec} is programmed into the eBPF maps again"),
            });
        }
        self.metrics
            .services_failing
            .set(i64::try_from(self.syncer.failing()).unwrap_or(i64::MAX));

        if report.wrote() || kind == "initial" {
            self.state_dirty = true;
            if report.created + report.deleted > 0 || kind == "initial" {
                self.names_dirty = true;
            }
        }
        if kind == "initial" {
            self.publish_state();
        }

        let checks = self.syncer.health_checks();
        for (service, message) in self.health_checks.sync(&checks) {
            let _ = self.events.send(ServiceEvent {
                service,
                warning: true,
                reason: "FailedToStartServiceHealthcheck",
                action: "Listen",
                note: message,
            });
        }
        self.metrics.health_check_local_endpoints.clear();
        for (service, check) in &checks {
            self.metrics
                .health_check_local_endpoints
                .get_or_create(&vec![
                    ("namespace".to_owned(), service.namespace.clone()),
                    ("service".to_owned(), service.name.clone()),
                ])
                .set(i64::try_from(check.local_endpoints).unwrap_or(i64::MAX));
        }
        self.health.updated();
    }

    /// Publishes what the maps hold — the usage metrics, and the service
    /// names for the metrics and the dump — at most once per
    /// [`STATE_INTERVAL`]: during a burst of thousands of changes this
    /// walks every programmed service a few times, not once per batch.
    fn publish_state(&mut self) {
        if !self.state_dirty {
            return;
        }
        self.state_dirty = false;
        self.state_published = Instant::now();
        let names_dirty = std::mem::take(&mut self.names_dirty);
        let usage = self.syncer.usage();
        let (slot_entries, capacities, names) = {
            let mut dataplane = lock(&self.dataplane);
            let capacities = *dataplane.capacities();
            let lb = dataplane.load_balancer();
            let names = names_dirty.then(|| {
                self.syncer
                    .programmed_names()
                    .filter_map(|name| Some((lb.service_id(name)?, name.to_owned())))
                    .collect::<HashMap<u32, String>>()
            });
            (lb.slot_entries(), capacities, names)
        };
        self.metrics.set_usage(&usage, slot_entries, &capacities);
        if let Some(names) = names {
            self.write_names(&names);
            if let Ok(mut shared) = self.names.lock() {
                *shared = names;
            }
        }
    }

    /// When the state must be published next, if it changed.
    fn state_deadline(&self) -> Option<Instant> {
        self.state_dirty
            .then_some(self.state_published + STATE_INTERVAL)
    }

    fn report_failure(&self, failure: &FailureReport) {
        let kind = error_kind(&failure.error);
        self.metrics
            .sync_errors
            .get_or_create(&vec![("reason".to_owned(), kind.to_owned())])
            .inc();
        let map_full = match &failure.error {
            LbError::MapFull { map, .. } => {
                self.metrics
                    .map_full_errors
                    .get_or_create(&vec![("map".to_owned(), (*map).to_owned())])
                    .inc();
                true
            }
            _ => false,
        };
        if !failure.new {
            debug!(service = %failure.service, spec = failure.spec, error = %failure.error, attempts = failure.attempts, "still failing");
            return;
        }
        warn!(
            service = %failure.service,
            spec = failure.spec,
            error = %failure.error,
            "service not programmed; retrying with backoff"
        );
        if failure.service.name.is_empty() {
            return;
        }
        let _ = self.events.send(ServiceEvent {
            service: failure.service.clone(),
            warning: true,
            reason: if map_full {
                "DataplaneMapFull"
            } else {
                "FailedToProgramService"
            },
            action: "Program",
            note: failure.error.to_string(),
        });
    }

    fn conntrack_gc(&self) {
        let start = Instant::now();
        let (result, endpoints, capacities) = {
            let mut dataplane = lock(&self.dataplane);
            let result = dataplane.conntrack_gc();
            let endpoints = dataplane.node().endpoints().map(|e| e.len());
            (result, endpoints, *dataplane.capacities())
        };
        self.metrics
            .conntrack_gc_duration
            .observe(start.elapsed().as_secs_f64());
        match result {
            Ok(report) => {
                let live = report.scanned.saturating_sub(report.removed);
                self.metrics
                    .conntrack_entries
                    .set(i64::try_from(live).unwrap_or(i64::MAX));
                self.metrics
                    .conntrack_gc_removed
                    .inc_by(u64::try_from(report.removed).unwrap_or(u64::MAX));
                self.metrics.set_fill(
                    baton_abi::conntrack::CT_MAP_NAME,
                    live,
                    capacities.conntrack,
                );
                if report.removed > 0 {
                    debug!(removed = report.removed, live, "conntrack entries expired");
                }
            }
            Err(error) => warn!(%error, "conntrack garbage collection"),
        }
        if let Ok(endpoints) = endpoints {
            self.metrics.set_fill(
                baton_abi::route::ENDPOINTS_MAP_NAME,
                endpoints,
                capacities.endpoints,
            );
        }
    }

    /// Writes the id → name file `baton-node dataplane dump` reads.
    fn write_names(&self, names: &HashMap<u32, String>) {
        let Some(dir) = &self.config.state_dir else {
            return;
        };
        let sorted: BTreeMap<String, &String> = names
            .iter()
            .map(|(id, name)| (id.to_string(), name))
            .collect();
        let text = serde_json::to_string_pretty(&sorted).unwrap_or_default();
        let path: PathBuf = dir.join(NAMES_FILE);
        let tmp = dir.join(format!(".{NAMES_FILE}.tmp"));
        let result = std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(&tmp, text))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(error) = result {
            warn!(path = %path.display(), %error, "writing service names");
        }
    }
}

fn lock(dataplane: &SharedDataplane) -> std::sync::MutexGuard<'_, Dataplane> {
    dataplane
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Reads the names file of `state_dir`, if there is one.
#[must_use]
pub fn read_names(state_dir: &std::path::Path) -> HashMap<u32, String> {
    std::fs::read_to_string(state_dir.join(NAMES_FILE))
        .ok()
        .and_then(|text| serde_json::from_str::<BTreeMap<String, String>>(&text).ok())
        .map(|names| {
            names
                .into_iter()
                .filter_map(|(id, name)| Some((id.parse().ok()?, name)))
                .collect()
        })
        .unwrap_or_default()
}
