//! Kubernetes Events about Services (events.k8s.io/v1, through
//! kube-runtime's recorder, which folds repeats into an event series), as
//! kube-proxy reports problems on the Service they concern: a service port
//! that could not be programmed (map full, frontend conflict), one that
//! recovered, a health-check port that could not be opened, parts of a
//! Service the datapath cannot use. Written by a task in the background so
//! the sync loop never waits for the API server.

use k8s_openapi::api::core::v1::{ObjectReference, Service};
use kube::{
    Client,
    runtime::{
        events::{Event, EventType, Recorder, Reporter},
        reflector::{ObjectRef, Store},
    },
};
use tokio::sync::mpsc;
use tracing::warn;

use super::translate::ServiceRef;

/// Reporting controller of the proxy's Events.
pub const REPORTING_CONTROLLER: &str = "baton-proxy";

/// Longest note the Events API accepts.
const MAX_NOTE: usize = 1024;

/// One Event to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEvent {
    pub service: ServiceRef,
    pub warning: bool,
    /// `PascalCase` reason, e.g. `FailedToProgramService`.
    pub reason: &'static str,
    /// `PascalCase` action, e.g. `Program`.
    pub action: &'static str,
    pub note: String,
}

/// Where the sync loop sends Events.
pub type EventSender = mpsc::UnboundedSender<ServiceEvent>;

/// Writes the Events received on `events` until every sender is gone.
pub async fn publish(
    client: Client,
    node_name: String,
    services: Store<Service>,
    mut events: mpsc::UnboundedReceiver<ServiceEvent>,
) {
    let recorder = Recorder::new(
        client,
        Reporter {
            controller: REPORTING_CONTROLLER.into(),
            instance: Some(node_name),
        },
    );
    while let Some(event) = events.recv().await {
        let uid = services
            .get(&ObjectRef::new(&event.service.name).within(&event.service.namespace))
            .and_then(|service| service.metadata.uid.clone());
        let reference = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Service".into()),
            name: Some(event.service.name.clone()),
            namespace: Some(event.service.namespace.clone()),
            uid,
            ..ObjectReference::default()
        };
        let mut note = event.note.clone();
        if note.len() > MAX_NOTE {
            let mut end = MAX_NOTE;
            while !note.is_char_boundary(end) {
                end -= 1;
            }
            note.truncate(end);
        }
        let record = Event {
            type_: if event.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: event.reason.into(),
            note: Some(note),
            action: event.action.into(),
            secondary: None,
        };
        if let Err(error) = recorder.publish(&record, &reference).await {
            warn!(service = %event.service, reason = event.reason, %error, "could not write an Event");
        }
    }
}
