//! What client-go's `EventCorrelator` does to a recorder's events before
//! they are written, so a probe failing every second makes one Event
//! whose count rises (`kubectl describe`'s `(x12 over 11s)`), not one
//! object per failure:
//!
//! - **aggregation**: more than [`MAX_SIMILAR`] events of one object,
//!   type and reason with different messages within
//!   [`AGGREGATE_WINDOW`] become one event whose message starts with
//!   `(combined from similar events): `;
//! - **deduplication**: an event seen before (same source, object, type,
//!   reason and message) is written as a patch of the earlier one: `count`
//!   up by one, `lastTimestamp` and `message` new;
//! - **spam filter**: each source and object may write 25 events at once,
//!   then one every five minutes; the rest are dropped.
//!
//! Each cache keeps its newest [`CACHE_SIZE`] keys, as client-go's LRUs.

use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use lru::LruCache;
use serde_json::{Value, json};

/// Entries each cache keeps (client-go's `maxLruCacheEntries`).
const CACHE_SIZE: usize = 4096;
/// Similar events with different messages before they are combined
/// (`defaultAggregateMaxEvents`).
const MAX_SIMILAR: usize = 10;
/// How long similar events are counted together
/// (`defaultAggregateIntervalInSeconds`).
const AGGREGATE_WINDOW: Duration = Duration::from_secs(600);
/// Events a source may write about one object at once
/// (`defaultSpamBurst`).
const SPAM_BURST: f64 = 25.0;
/// And then one every so often (`defaultSpamQPS`: 1/300).
const SPAM_REFILL: Duration = Duration::from_secs(300);
/// The message prefix of a combined event.
const COMBINED: &str = "(combined from similar events): ";

/// What to write for an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// A new Event object.
    Create(Event),
    /// A patch (`count`, `lastTimestamp`, `message`) of the Event named
    /// `name`; `event` is what to create instead if it is gone.
    Patch {
        name: String,
        patch: Value,
        event: Event,
    },
    /// Nothing: the spam filter dropped it.
    Drop,
}

/// The similar events seen of one object, type and reason.
struct Similar {
    messages: LruCache<String, ()>,
    last: Instant,
}

/// What was last written for an event key.
struct Observation {
    count: i32,
    first_timestamp: Option<Time>,
    name: String,
}

/// A token bucket per source and object.
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The correlator's caches.
pub struct Correlator {
    similar: LruCache<String, Similar>,
    observed: LruCache<String, Observation>,
    spam: LruCache<String, Bucket>,
}

impl Default for Correlator {
    fn default() -> Self {
        let size = NonZeroUsize::new(CACHE_SIZE).expect("a non-zero cache size");
        Self {
            similar: LruCache::new(size),
            observed: LruCache::new(size),
            spam: LruCache::new(size),
        }
    }
}

fn source_and_object(e: &Event) -> [&str; 7] {
    let source = e.source.as_ref();
    let object = &e.involved_object;
    [
        source.and_then(|s| s.component.as_deref()).unwrap_or(""),
        source.and_then(|s| s.host.as_deref()).unwrap_or(""),
        object.kind.as_deref().unwrap_or(""),
        object.namespace.as_deref().unwrap_or(""),
        object.name.as_deref().unwrap_or(""),
        object.uid.as_deref().unwrap_or(""),
        object.api_version.as_deref().unwrap_or(""),
    ]
}

/// client-go's `getSpamKey`.
fn spam_key(e: &Event) -> String {
    source_and_object(e).concat()
}

/// client-go's `EventAggregatorByReasonFunc`: the object, type and reason
/// (the aggregate key), and the message (the local key).
fn aggregate_key(e: &Event) -> String {
    let mut key = source_and_object(e).concat();
    key.push_str(e.type_.as_deref().unwrap_or(""));
    key.push_str(e.reason.as_deref().unwrap_or(""));
    key
}

/// client-go's `getEventKey`: everything that makes two events the same.
fn event_key(e: &Event) -> String {
    let object = &e.involved_object;
    let mut key = source_and_object(e)[..5].concat();
    for part in [
        object.field_path.as_deref(),
        object.uid.as_deref(),
        object.api_version.as_deref(),
        e.type_.as_deref(),
        e.reason.as_deref(),
        e.message.as_deref(),
    ] {
        key.push_str(part.unwrap_or(""));
    }
    key
}

impl Correlator {
    /// What to write for `event`, recorded at `now`: aggregated, then
    /// compared with what was seen (which counts it even when the spam
    /// filter then drops it), as client-go's `EventCorrelate` does.
    pub fn correlate(&mut self, mut event: Event, now: Instant) -> Write {
        let key = match self.aggregate(&mut event, now) {
            Some(aggregate) => aggregate,
            None => event_key(&event),
        };
        let write = match self.observed.get_mut(&key) {
            None => {
                self.observed.put(
                    key,
                    Observation {
                        count: event.count.unwrap_or(1),
                        first_timestamp: event.first_timestamp.clone(),
                        name: event.metadata.name.clone().unwrap_or_default(),
                    },
                );
                Write::Create(event)
            }
            Some(seen) => {
                seen.count += 1;
                event.count = Some(seen.count);
                event.first_timestamp.clone_from(&seen.first_timestamp);
                let patch = json!({
                    "count": seen.count,
                    "lastTimestamp": event.last_timestamp,
                    "message": event.message,
                });
                Write::Patch {
                    name: seen.name.clone(),
                    patch,
                    event,
                }
            }
        };
        let event = match &write {
            Write::Create(event) | Write::Patch { event, .. } => event,
            Write::Drop => return write,
        };
        if self.allowed(event, now) {
            write
        } else {
            Write::Drop
        }
    }

    /// The Event written for `event` is named `name` (a patch that found
    /// its event gone created another).
    pub fn written(&mut self, event: &Event, name: &str) {
        if let Some(seen) = self.observed.get_mut(&event_key(event)) {
            name.clone_into(&mut seen.name);
        }
    }

    /// The spam filter: whether the source may write about the object now.
    fn allowed(&mut self, event: &Event, now: Instant) -> bool {
        let bucket = self.spam.get_or_insert_mut(spam_key(event), || Bucket {
            tokens: SPAM_BURST,
            at: now,
        });
        let refilled =
            now.saturating_duration_since(bucket.at).as_secs_f64() / SPAM_REFILL.as_secs_f64();
        bucket.tokens = (bucket.tokens + refilled).min(SPAM_BURST);
        bucket.at = now;
        if bucket.tokens < 1.0 {
            return false;
        }
        bucket.tokens -= 1.0;
        true
    }

    /// Combines the event with its similar ones once there are too many
    /// (client-go's `EventAggregate`): a new event with the combined
    /// message, counted under the key of the object, type and reason
    /// (returned) whatever its message.
    fn aggregate(&mut self, event: &mut Event, now: Instant) -> Option<String> {
        let key = aggregate_key(event);
        let size = NonZeroUsize::new(CACHE_SIZE).expect("a non-zero cache size");
        let similar = self.similar.get_or_insert_mut(key.clone(), || Similar {
            messages: LruCache::new(size),
            last: now,
        });
        if now.saturating_duration_since(similar.last) > AGGREGATE_WINDOW {
            similar.messages.clear();
        }
        similar.last = now;
        let message = event.message.clone().unwrap_or_default();
        similar.messages.put(message.clone(), ());
        if similar.messages.len() < MAX_SIMILAR {
            return None;
        }
        // The set stays one below the threshold: the next new message
        // reaches it again.
        similar.messages.pop_lru();
        let time = jiff::Timestamp::now();
        let name = event.involved_object.name.as_deref().unwrap_or_default();
        event.metadata.name = Some(format!("{name}.{:x}", time.as_nanosecond()));
        event.message = Some(format!("{COMBINED}{message}"));
        event.count = Some(1);
        event.first_timestamp = Some(Time(time));
        event.last_timestamp = Some(Time(time));
        Some(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{EventSource, ObjectReference};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn event(name: &str, reason: &str, message: &str, at: &str) -> Event {
        let time = Time(at.parse().unwrap());
        Event {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                kind: Some("Pod".into()),
                namespace: Some("default".into()),
                name: Some("web".into()),
                uid: Some("u1".into()),
                api_version: Some("v1".into()),
                ..Default::default()
            },
            source: Some(EventSource {
                component: Some("kubelet".into()),
                host: Some("node-1".into()),
            }),
            type_: Some("Warning".into()),
            reason: Some(reason.into()),
            message: Some(message.into()),
            count: Some(1),
            first_timestamp: Some(time.clone()),
            last_timestamp: Some(time),
            ..Default::default()
        }
    }

    #[test]
    fn a_repeated_event_patches_the_first_with_its_count_and_time() {
        let mut c = Correlator::default();
        let now = Instant::now();
        let first = event("web.1", "Unhealthy", "probe failed", "2026-01-01T00:00:00Z");
        assert_eq!(
            c.correlate(first.clone(), now),
            Write::Create(first.clone())
        );
        for (n, at) in [(2, "2026-01-01T00:00:05Z"), (3, "2026-01-01T00:00:10Z")] {
            let Write::Patch { name, patch, event } =
                c.correlate(event("web.x", "Unhealthy", "probe failed", at), now)
            else {
                panic!("a repeat is a patch");
            };
            assert_eq!(name, "web.1");
            assert_eq!(
                patch,
                json!({"count": n, "lastTimestamp": at, "message": "probe failed"})
            );
            assert_eq!(event.first_timestamp, first.first_timestamp);
        }
        // Another reason or message is another event.
        assert!(matches!(
            c.correlate(
                event("web.2", "BackOff", "probe failed", "2026-01-01T00:00:11Z"),
                now
            ),
            Write::Create(_)
        ));
        assert!(matches!(
            c.correlate(
                event("web.3", "Unhealthy", "other", "2026-01-01T00:00:12Z"),
                now
            ),
            Write::Create(_)
        ));
    }

    #[test]
    fn a_recreated_event_is_patched_under_its_new_name() {
        let mut c = Correlator::default();
        let now = Instant::now();
        let e = event("web.1", "Unhealthy", "probe failed", "2026-01-01T00:00:00Z");
        c.correlate(e.clone(), now);
        let Write::Patch { event: again, .. } = c.correlate(e.clone(), now) else {
            panic!("a repeat is a patch");
        };
        c.written(&again, "web.2");
        let Write::Patch { name, .. } = c.correlate(e, now) else {
            panic!("a repeat is a patch");
        };
        assert_eq!(name, "web.2");
    }

    #[test]
    fn many_similar_messages_are_combined() {
        let mut c = Correlator::default();
        let now = Instant::now();
        let mut last = None;
        for i in 0..MAX_SIMILAR {
            last = Some(c.correlate(
                event(
                    &format!("web.{i}"),
                    "Failed",
                    &format!("attempt {i}"),
                    "2026-01-01T00:00:00Z",
                ),
                now,
            ));
        }
        let Some(Write::Create(combined)) = last else {
            panic!("the tenth message is a new, combined event");
        };
        assert_eq!(
            combined.message.as_deref(),
            Some("(combined from similar events): attempt 9")
        );
        let combined_name = combined.metadata.name.clone().unwrap();
        assert!(combined_name.starts_with("web."), "{combined_name}");
        // The next new message counts on the combined event.
        let next = c.correlate(
            event("web.x", "Failed", "attempt 10", "2026-01-01T00:00:01Z"),
            now,
        );
        let Write::Patch { name, patch, .. } = &next else {
            panic!("{next:?}");
        };
        assert_eq!(name, &combined_name);
        assert_eq!(patch["count"], 2);
        assert_eq!(
            patch["message"],
            "(combined from similar events): attempt 10"
        );
        // Long after, the messages count again from nothing.
        let later = now + AGGREGATE_WINDOW + Duration::from_secs(1);
        let Write::Create(alone) = c.correlate(
            event("web.y", "Failed", "attempt 11", "2026-01-01T00:20:00Z"),
            later,
        ) else {
            panic!("a new message after the window is its own event");
        };
        assert_eq!(alone.message.as_deref(), Some("attempt 11"));
    }

    #[test]
    fn a_source_writes_25_events_of_an_object_at_once_then_one_per_five_minutes() {
        let mut c = Correlator::default();
        let now = Instant::now();
        let written = (0..30)
            .filter(|i| {
                c.correlate(
                    event(
                        "web",
                        "Unhealthy",
                        &format!("{}", i % 3),
                        "2026-01-01T00:00:00Z",
                    ),
                    now,
                ) != Write::Drop
            })
            .count();
        assert_eq!(written, 25);
        let e = event("web", "Unhealthy", "0", "2026-01-01T00:05:00Z");
        assert_eq!(
            c.correlate(e.clone(), now + Duration::from_secs(60)),
            Write::Drop
        );
        assert_ne!(c.correlate(e, now + SPAM_REFILL), Write::Drop);
    }
}
