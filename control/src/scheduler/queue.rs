//! The scheduling queue (kube-scheduler's `PriorityQueue`): an active heap
//! ordered by priority then arrival, a backoff queue (1 s doubling per
//! failed attempt up to 10 s), and a pool of unschedulable pods that only a
//! cluster event (node added or changed, pod deleted, volume changed…) or a
//! five-minute flush moves back. A move request that arrives while a pod is
//! being scheduled sends that pod to backoff instead of the pool, so no
//! event is missed (the `moveRequestCycle` rule).

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::Notify;

use super::cache::pod_key;

/// Backoff bounds (kube-scheduler's defaults).
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(10),
        }
    }
}

impl Backoff {
    /// Backoff after `attempts` failed attempts.
    pub fn duration(&self, attempts: u32) -> Duration {
        let mut d = self.initial;
        for _ in 1..attempts {
            d = d.saturating_mul(2);
            if d >= self.max {
                return self.max;
            }
        }
        d.min(self.max)
    }
}

/// How long an unschedulable pod waits at most before being retried.
const UNSCHEDULABLE_MAX: Duration = Duration::from_secs(300);

/// A pod in the queue.
#[derive(Debug, Clone)]
pub struct QueuedPod {
    pub pod: Arc<Pod>,
    pub key: String,
    pub attempts: u32,
    /// First time the pod was added (kept across attempts).
    pub initial: Instant,
    /// When it entered the active queue this time (ordering tie-break).
    pub enqueued: Instant,
    /// The move-request cycle when it was popped.
    pub popped_cycle: u64,
}

struct Entry {
    priority: i32,
    enqueued: Instant,
    key: String,
}

impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    fn cmp(&self, o: &Self) -> Ordering {
        // Max-heap: higher priority first, then earlier.
        self.priority
            .cmp(&o.priority)
            .then_with(|| o.enqueued.cmp(&self.enqueued))
            .then_with(|| o.key.cmp(&self.key))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Where {
    Active,
    Backoff(Instant),
    Unschedulable(Instant),
    InFlight,
}

#[derive(Default)]
struct State {
    pods: HashMap<String, (QueuedPod, Where)>,
    heap: BinaryHeap<Entry>,
    move_cycle: u64,
    closed: bool,
}

/// The queue; cheap to share.
#[derive(Clone, Default)]
pub struct SchedulingQueue {
    state: Arc<Mutex<State>>,
    notify: Arc<Notify>,
    backoff: Backoff,
}

fn priority(p: &Pod) -> i32 {
    p.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

impl SchedulingQueue {
    pub fn new(backoff: Backoff) -> Self {
        SchedulingQueue {
            backoff,
            ..Default::default()
        }
    }

    fn push_active(st: &mut State, key: &str, now: Instant) {
        if let Some((qp, w)) = st.pods.get_mut(key) {
            *w = Where::Active;
            qp.enqueued = now;
            st.heap.push(Entry {
                priority: priority(&qp.pod),
                enqueued: now,
                key: key.to_string(),
            });
        }
    }

    /// A new pending pod, or an update of one.
    pub fn add_or_update(&self, pod: Arc<Pod>) {
        let key = pod_key(&pod);
        let now = Instant::now();
        let mut st = self.state.lock().expect("queue");
        match st.pods.get_mut(&key) {
            Some((qp, w)) => {
                let spec_changed =
                    qp.pod.spec != pod.spec || qp.pod.metadata.labels != pod.metadata.labels;
                qp.pod = pod;
                // An update may make an unschedulable pod schedulable.
                if spec_changed && matches!(w, Where::Unschedulable(_)) {
                    Self::push_active(&mut st, &key, now);
                    self.notify.notify_one();
                }
            }
            None => {
                let qp = QueuedPod {
                    pod,
                    key: key.clone(),
                    attempts: 0,
                    initial: now,
                    enqueued: now,
                    popped_cycle: 0,
                };
                st.pods.insert(key.clone(), (qp, Where::Active));
                Self::push_active(&mut st, &key, now);
                self.notify.notify_one();
            }
        }
    }

    /// The pod was deleted or bound by someone else.
    pub fn delete(&self, key: &str) {
        self.state.lock().expect("queue").pods.remove(key);
    }

    /// Waits for the next pod to schedule; None once closed.
    pub async fn pop(&self) -> Option<QueuedPod> {
        loop {
            let notified = self.notify.notified();
            {
                let mut st = self.state.lock().expect("queue");
                if st.closed {
                    return None;
                }
                let cycle = st.move_cycle;
                while let Some(e) = st.heap.pop() {
                    let live = matches!(st.pods.get(&e.key), Some((qp, Where::Active)) if qp.enqueued == e.enqueued);
                    if !live {
                        continue;
                    }
                    let (qp, w) = st.pods.get_mut(&e.key).expect("live");
                    *w = Where::InFlight;
                    qp.attempts += 1;
                    qp.popped_cycle = cycle;
                    return Some(qp.clone());
                }
            }
            notified.await;
        }
    }

    /// Scheduling failed. `unschedulable`: no node fits (to the pool, or to
    /// backoff if the cluster changed meanwhile); otherwise an error (to
    /// backoff).
    pub fn requeue(&self, qp: &QueuedPod, unschedulable: bool) {
        let now = Instant::now();
        let mut st = self.state.lock().expect("queue");
        let moved_meanwhile = st.move_cycle > qp.popped_cycle;
        let backoff = self.backoff.duration(qp.attempts);
        let Some((stored, w)) = st.pods.get_mut(&qp.key) else {
            return;
        };
        if *w != Where::InFlight {
            return;
        }
        stored.attempts = qp.attempts;
        *w = if unschedulable && !moved_meanwhile {
            Where::Unschedulable(now)
        } else {
            Where::Backoff(now + backoff)
        };
    }

    /// Scheduling succeeded (the pod is bound or being bound).
    pub fn done(&self, key: &str) {
        let mut st = self.state.lock().expect("queue");
        if matches!(st.pods.get(key), Some((_, Where::InFlight))) {
            st.pods.remove(key);
        }
    }

    /// A cluster event that may make unschedulable pods schedulable: they go
    /// to the active queue, or to backoff if their backoff has not expired.
    pub fn move_all_to_active_or_backoff(&self) {
        let now = Instant::now();
        let mut st = self.state.lock().expect("queue");
        st.move_cycle += 1;
        let keys: Vec<(String, u32, Instant)> = st
            .pods
            .iter()
            .filter_map(|(k, (qp, w))| match w {
                Where::Unschedulable(since) => Some((k.clone(), qp.attempts, *since)),
                _ => None,
            })
            .collect();
        let mut woke = false;
        for (k, attempts, since) in keys {
            let until = since + self.backoff.duration(attempts);
            if until > now {
                if let Some((_, w)) = st.pods.get_mut(&k) {
                    *w = Where::Backoff(until);
                }
            } else {
                Self::push_active(&mut st, &k, now);
                woke = true;
            }
        }
        if woke {
            self.notify.notify_one();
        }
    }

    /// Moves expired backoffs to active and flushes pods unschedulable for
    /// too long (run every second).
    pub fn flush(&self) {
        let now = Instant::now();
        let mut st = self.state.lock().expect("queue");
        let due: Vec<String> = st
            .pods
            .iter()
            .filter(|(_, (_, w))| match w {
                Where::Backoff(t) => *t <= now,
                Where::Unschedulable(since) => now.duration_since(*since) >= UNSCHEDULABLE_MAX,
                _ => false,
            })
            .map(|(k, _)| k.clone())
            .collect();
        let woke = !due.is_empty();
        for k in due {
            Self::push_active(&mut st, &k, now);
        }
        if woke {
            self.notify.notify_one();
        }
    }

    /// Pods waiting (any state), for metrics and tests.
    pub fn len(&self) -> usize {
        self.state.lock().expect("queue").pods.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Ends `pop`.
    pub fn close(&self) {
        self.state.lock().expect("queue").closed = true;
        self.notify.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, prio: i32) -> Arc<Pod> {
        Arc::new(serde_json::from_value(json!({"metadata": {"name": name, "namespace": "d"}, "spec": {"priority": prio, "containers": []}})).unwrap())
    }

    #[test]
    fn backoff_doubles_to_ten_seconds() {
        let b = Backoff::default();
        let secs: Vec<u64> = (1..=6).map(|a| b.duration(a).as_secs()).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 10, 10]);
    }

    #[tokio::test]
    async fn higher_priority_first_then_fifo() {
        let q = SchedulingQueue::new(Backoff::default());
        q.add_or_update(pod("a", 0));
        q.add_or_update(pod("b", 10));
        q.add_or_update(pod("c", 0));
        let order: Vec<String> = [q.pop().await, q.pop().await, q.pop().await]
            .into_iter()
            .map(|p| p.unwrap().key)
            .collect();
        assert_eq!(order, vec!["d/b", "d/a", "d/c"]);
    }

    #[tokio::test]
    async fn unschedulable_pods_wait_for_a_cluster_event() {
        let q = SchedulingQueue::new(Backoff {
            initial: Duration::ZERO,
            max: Duration::ZERO,
        });
        q.add_or_update(pod("a", 0));
        let p = q.pop().await.unwrap();
        q.requeue(&p, true);
        q.flush();
        assert!(
            tokio::time::timeout(Duration::from_millis(50), q.pop())
                .await
                .is_err(),
            "parked until an event"
        );
        q.move_all_to_active_or_backoff();
        let p = tokio::time::timeout(Duration::from_millis(50), q.pop())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(p.attempts, 2);
        // An event while it is being scheduled sends it to backoff instead.
        q.move_all_to_active_or_backoff();
        q.requeue(&p, true);
        q.flush();
        assert!(
            tokio::time::timeout(Duration::from_millis(50), q.pop())
                .await
                .unwrap()
                .is_some()
        );
    }
}
