//! Timestamps in the API's types.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};

/// Now, as a `Time` (seconds precision on the wire).
pub fn now() -> Time {
    Time(jiff::Timestamp::now())
}

/// Now, as a `MicroTime`.
pub fn now_micro() -> MicroTime {
    MicroTime(jiff::Timestamp::now())
}

/// Seconds elapsed since `t` (negative when `t` is in the future).
pub fn age_secs(t: &jiff::Timestamp, now: jiff::Timestamp) -> f64 {
    (now.as_millisecond() - t.as_millisecond()) as f64 / 1000.0
}
