//! Events as client-go's recorder writes them: core/v1 Events (what
//! `kubectl describe` and `kubectl get events` show), queued without
//! blocking the caller and written in the background, with repeats counted
//! on the first Event, too many similar ones combined and too many of one
//! object dropped ([`correlator`]).
//!
//! The controllers, the scheduler and the kubelet each make a [`Recorder`]
//! with their own [`Reporter`] (component, host, instance).

pub mod correlator;
mod recorder;

pub use recorder::{EventType, Record, Recorder, Reporter, new_event, reference};
