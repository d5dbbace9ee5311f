//! Keeping the load balancer equal to the desired state, incrementally.
//!
//! [`Syncer`] remembers the desired specs of every service (the latest
//! [`Translation`]) and what the maps hold per spec name. A batch of changed
//! services ([`Syncer::update`]) deletes the spec names a service no longer
//! has, then upserts only the specs that differ from what is programmed —
//! deletes first, so a frontend moving from one service port to another in
//! the same batch never conflicts with itself. A spec that fails (map full,
//! frontend owned by another service, kernel error) keeps what the maps held
//! before (the dataplane writes nothing on failure) and is retried with
//! exponential backoff ([`Syncer::retry_due`]); each new failure and each
//! recovery is reported once, for a log line, a metric and an Event.
//!
//! The maps are reached through [`Programmer`], implemented by the
//! dataplane's [`LoadBalancer`] and by a recording fake in the tests.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    time::{Duration, Instant},
};

use crate::dataplane::{
    Applied, LbError, LoadBalancer, Protocol, ReconcileReport, ServiceSpec, lb::spec::View,
};

use super::translate::{HealthCheck, ServiceRef, Translation};

/// Where specs are programmed.
pub trait Programmer {
    /// Creates or updates `spec`.
    fn upsert(&mut self, spec: &ServiceSpec) -> Result<Applied, LbError>;
    /// Removes the spec named `name`.
    fn delete(&mut self, name: &str) -> Result<(), LbError>;
    /// Makes the maps hold exactly `specs` (adopting state restored from
    /// pinned maps).
    fn reconcile(&mut self, specs: &[ServiceSpec]) -> ReconcileReport;
}

impl Programmer for LoadBalancer {
    fn upsert(&mut self, spec: &ServiceSpec) -> Result<Applied, LbError> {
        self.upsert_service(spec)
    }

    fn delete(&mut self, name: &str) -> Result<(), LbError> {
        self.delete_service(name)
    }

    fn reconcile(&mut self, specs: &[ServiceSpec]) -> ReconcileReport {
        LoadBalancer::reconcile(self, specs)
    }
}

/// The spec name an [`LbError`] is about.
#[must_use]
pub fn error_service(error: &LbError) -> &str {
    match error {
        LbError::InvalidSpec { service, .. }
        | LbError::FrontendConflict { service, .. }
        | LbError::MapFull { service, .. }
        | LbError::Map { service, .. }
        | LbError::NotFound { service } => service,
    }
}

/// Short, stable name of an error's kind, for metric labels and Event
/// reasons.
#[must_use]
pub fn error_kind(error: &LbError) -> &'static str {
    match error {
        LbError::InvalidSpec { .. } => "invalid_spec",
        LbError::FrontendConflict { .. } => "frontend_conflict",
        LbError::MapFull { .. } => "map_full",
        LbError::Map { .. } => "map_error",
        LbError::NotFound { .. } => "not_found",
    }
}

/// Retry delays of a failing spec: `initial`, doubling up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    fn delay(&self, attempts: u32) -> Duration {
        let factor = 1u32 << attempts.saturating_sub(1).min(16);
        self.initial.saturating_mul(factor).min(self.max)
    }
}

/// A spec the maps do not hold as desired.
#[derive(Debug, Clone)]
struct Failure {
    service: ServiceRef,
    /// What should be programmed; `None`: the spec should be gone.
    desired: Option<ServiceSpec>,
    /// Text of the last error (a new text is reported again).
    error: String,
    attempts: u32,
    retry_at: Instant,
}

/// One failed spec, as reported by a sync.
#[derive(Debug)]
pub struct FailureReport {
    pub service: ServiceRef,
    pub spec: String,
    pub error: LbError,
    /// The first failure of this spec, or a different error than the last:
    /// worth an Event.
    pub new: bool,
    /// Attempts so far.
    pub attempts: u32,
}

/// What one sync did.
#[derive(Debug, Default)]
pub struct SyncReport {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub deleted: usize,
    pub failures: Vec<FailureReport>,
    /// Specs that failed before and are programmed now.
    pub recovered: Vec<(ServiceRef, String)>,
    /// Services whose desired state was looked at.
    pub services: usize,
}

impl SyncReport {
    /// Whether the maps were written.
    #[must_use]
    pub fn wrote(&self) -> bool {
        self.created + self.updated + self.deleted > 0
    }
}

/// Entries the programmed specs occupy, per map (what the maps' fill is,
/// computed from the specs instead of walking the kernel maps).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Service ports programmed.
    pub services: usize,
    /// Services-map entries.
    pub frontends: usize,
    /// Distinct backends.
    pub backends: usize,
    /// Service memberships.
    pub members: usize,
    /// Slots of the current banks.
    pub slots: usize,
    /// Maglev tables.
    pub maglev_tables: usize,
}

/// Desired state and what is programmed.
#[derive(Debug, Default)]
pub struct Syncer {
    desired: HashMap<ServiceRef, Translation>,
    programmed: HashMap<String, ServiceSpec>,
    failures: BTreeMap<String, Failure>,
    backoff: Backoff,
}

impl Syncer {
    #[must_use]
    pub fn new(backoff: Backoff) -> Self {
        Self {
            backoff,
            ..Self::default()
        }
    }

    /// The first sync after start: makes the maps hold exactly the specs of
    /// `translations` (state restored from pinned maps is adopted where it
    /// matches and written nowhere else; services nobody wants any more are
    /// removed).
    pub fn initial(
        &mut self,
        programmer: &mut impl Programmer,
        translations: Vec<(ServiceRef, Translation)>,
        now: Instant,
    ) -> SyncReport {
        let mut report = SyncReport {
            services: translations.len(),
            ..SyncReport::default()
        };
        self.desired = translations.into_iter().collect();
        let mut specs: Vec<ServiceSpec> = Vec::new();
        let mut owner: HashMap<String, ServiceRef> = HashMap::new();
        for (service, translation) in &self.desired {
            for spec in &translation.specs {
                owner.insert(spec.name.clone(), service.clone());
                specs.push(spec.clone());
            }
        }
        // A stable order: the same restart programs in the same order.
        specs.sort_by(|a, b| a.name.cmp(&b.name));
        let result = programmer.reconcile(&specs);
        report.created = result.created;
        report.updated = result.updated;
        report.unchanged = result.unchanged;
        report.deleted = result.deleted;
        let failed: HashSet<String> = result
            .errors
            .iter()
            .map(|error| error_service(error).to_owned())
            .collect();
        self.programmed = specs
            .iter()
            .filter(|spec| !failed.contains(&spec.name))
            .map(|spec| (spec.name.clone(), spec.clone()))
            .collect();
        self.failures.clear();
        for error in result.errors {
            let name = error_service(&error).to_owned();
            // Leftovers the reconcile could not delete are not a service of
            // ours; they are retried by the next full reconcile.
            let Some(service) = owner.get(&name).cloned() else {
                report.failures.push(FailureReport {
                    service: ServiceRef::new("", ""),
                    spec: name,
                    error,
                    new: true,
                    attempts: 1,
                });
                continue;
            };
            let desired = specs.iter().find(|spec| spec.name == name).cloned();
            report
                .failures
                .push(self.record_failure(service, name, desired, error, now));
        }
        report
    }

    /// Applies new translations of `changes` (`None`: the service is gone).
    pub fn update(
        &mut self,
        programmer: &mut impl Programmer,
        changes: Vec<(ServiceRef, Option<Translation>)>,
        now: Instant,
    ) -> SyncReport {
        let mut report = SyncReport {
            services: changes.len(),
            ..SyncReport::default()
        };
        let mut deletes: Vec<(ServiceRef, String)> = Vec::new();
        let mut upserts: Vec<(ServiceRef, ServiceSpec)> = Vec::new();
        for (service, translation) in changes {
            let old_names: BTreeSet<String> = self
                .desired
                .get(&service)
                .map(|old| old.specs.iter().map(|spec| spec.name.clone()).collect())
                .unwrap_or_default();
            let new_specs = translation
                .as_ref()
                .map(|t| t.specs.clone())
                .unwrap_or_default();
            let new_names: BTreeSet<&str> = new_specs.iter().map(|s| s.name.as_str()).collect();
            for name in old_names {
                if !new_names.contains(name.as_str()) {
                    deletes.push((service.clone(), name));
                }
            }
            for spec in new_specs {
                let failing = self.failures.contains_key(&spec.name);
                if failing || self.programmed.get(&spec.name) != Some(&spec) {
                    upserts.push((service.clone(), spec));
                }
            }
            match translation {
                Some(translation) => {
                    self.desired.insert(service, translation);
                }
                None => {
                    self.desired.remove(&service);
                }
            }
        }
        for (service, name) in deletes {
            self.delete(programmer, service, name, now, &mut report);
        }
        for (service, spec) in upserts {
            self.upsert(programmer, service, spec, now, &mut report);
        }
        report
    }

    /// Retries the failed specs whose backoff has run out.
    pub fn retry_due(&mut self, programmer: &mut impl Programmer, now: Instant) -> SyncReport {
        let due: Vec<(String, Failure)> = self
            .failures
            .iter()
            .filter(|(_, failure)| failure.retry_at <= now)
            .map(|(name, failure)| (name.clone(), failure.clone()))
            .collect();
        let mut report = SyncReport::default();
        for (name, failure) in due {
            match failure.desired {
                Some(spec) => self.upsert(programmer, failure.service, spec, now, &mut report),
                None => self.delete(programmer, failure.service, name, now, &mut report),
            }
        }
        report
    }

    /// When the next retry is due.
    #[must_use]
    pub fn next_retry(&self) -> Option<Instant> {
        self.failures.values().map(|failure| failure.retry_at).min()
    }

    /// Services the syncer knows (desired).
    pub fn services(&self) -> impl Iterator<Item = &ServiceRef> {
        self.desired.keys()
    }

    /// The latest translation of `service`.
    #[must_use]
    pub fn desired(&self, service: &ServiceRef) -> Option<&Translation> {
        self.desired.get(service)
    }

    /// Names of the programmed specs.
    pub fn programmed_names(&self) -> impl Iterator<Item = &str> {
        self.programmed.keys().map(String::as_str)
    }

    /// Number of specs that currently fail.
    #[must_use]
    pub fn failing(&self) -> usize {
        self.failures.len()
    }

    /// The programmed spec named `name`.
    #[must_use]
    pub fn programmed(&self, name: &str) -> Option<&ServiceSpec> {
        self.programmed.get(name)
    }

    /// The health checks the desired state asks for.
    #[must_use]
    pub fn health_checks(&self) -> BTreeMap<ServiceRef, HealthCheck> {
        self.desired
            .iter()
            .filter_map(|(service, t)| Some((service.clone(), t.health_check?)))
            .collect()
    }

    /// Entries the programmed specs occupy.
    #[must_use]
    pub fn usage(&self) -> Usage {
        let mut usage = Usage {
            services: self.programmed.len(),
            ..Usage::default()
        };
        let mut backends: HashSet<(std::net::Ipv4Addr, u16, Protocol)> = HashSet::new();
        for spec in self.programmed.values() {
            let entries = spec.frontend_entries();
            usage.frontends += entries.len();
            let views: BTreeSet<View> = entries.iter().map(|entry| entry.view).collect();
            let mut members = BTreeSet::new();
            for view in views {
                let (view_backends, _) = spec.view_backends(view);
                usage.slots += view_backends
                    .iter()
                    .map(|backend| usize::from(backend.weight))
                    .sum::<usize>();
                if spec.algorithm == crate::dataplane::Algorithm::Maglev {
                    usage.maglev_tables += 1;
                }
                for backend in view_backends {
                    members.insert((backend.addr, backend.port));
                    backends.insert((backend.addr, backend.port, spec.protocol));
                }
            }
            usage.members += members.len();
        }
        usage.backends = backends.len();
        usage
    }

    fn upsert(
        &mut self,
        programmer: &mut impl Programmer,
        service: ServiceRef,
        spec: ServiceSpec,
        now: Instant,
        report: &mut SyncReport,
    ) {
        match programmer.upsert(&spec) {
            Ok(applied) => {
                match applied {
                    Applied::Created => report.created += 1,
                    Applied::Updated => report.updated += 1,
                    Applied::Unchanged => report.unchanged += 1,
                }
                if self.failures.remove(&spec.name).is_some() {
                    report.recovered.push((service, spec.name.clone()));
                }
                self.programmed.insert(spec.name.clone(), spec);
            }
            Err(error) => {
                let name = spec.name.clone();
                let failure = self.record_failure(service, name, Some(spec), error, now);
                report.failures.push(failure);
            }
        }
    }

    fn delete(
        &mut self,
        programmer: &mut impl Programmer,
        service: ServiceRef,
        name: String,
        now: Instant,
        report: &mut SyncReport,
    ) {
        if !self.programmed.contains_key(&name) {
            // Never programmed (its creation failed): nothing to remove,
            // nothing to retry.
            self.failures.remove(&name);
            return;
        }
        match programmer.delete(&name) {
            Ok(()) | Err(LbError::NotFound { .. }) => {
                report.deleted += 1;
                self.programmed.remove(&name);
                if self.failures.remove(&name).is_some() {
                    report.recovered.push((service, name));
                }
            }
            Err(error) => {
                let failure = self.record_failure(service, name, None, error, now);
                report.failures.push(failure);
            }
        }
    }

    fn record_failure(
        &mut self,
        service: ServiceRef,
        name: String,
        desired: Option<ServiceSpec>,
        error: LbError,
        now: Instant,
    ) -> FailureReport {
        let text = error.to_string();
        let previous = self.failures.get(&name);
        let attempts = previous.map_or(0, |failure| failure.attempts) + 1;
        let new = previous.is_none_or(|failure| failure.error != text);
        self.failures.insert(
            name.clone(),
            Failure {
                service: service.clone(),
                desired,
                error: text,
                attempts,
                retry_at: now + self.backoff.delay(attempts),
            },
        );
        FailureReport {
            service,
            spec: name,
            error,
            new,
            attempts,
        }
    }
}

#[cfg(test)]
#[path = "sync_tests.rs"]
mod tests;
