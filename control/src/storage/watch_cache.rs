//! The watch cache: one etcd watch per resource prefix, the current state of
//! every object in memory, and a bounded window of recent events fanned out
//! to every client watch. LISTs at "any" or a not-older-than revision are
//! served from here; watches from a revision inside the window replay it;
//! older ones go to etcd directly (or get 410 once compacted).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use etcd_client::{EventType as EtcdEventType, WatchOptions};
use tokio::sync::{broadcast, mpsc, watch};
use tracing::{debug, info, warn};

use super::StorageError;
use super::etcd::Etcd;
use super::keys::prefix_end;
use super::object::{CachedObject, Fields, decode, restamp};

/// Kind of a watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change of one object.
#[derive(Debug, Clone)]
pub struct WatchEvent {
    pub kind: EventType,
    pub object: Arc<CachedObject>,
    /// The state before this change (for selector transitions).
    pub prev: Option<Arc<CachedObject>>,
    pub revision: i64,
}

/// What the cache tells its watchers.
#[derive(Debug, Clone)]
pub enum Notice {
    Event(Arc<WatchEvent>),
    /// Everything up to this revision has been delivered.
    Progress(i64),
    /// The cache was rebuilt (after a compaction gap): watchers must end.
    Reset,
}

/// Events kept for watches that start from a past revision.
const HISTORY: usize = 20_000;
/// Notices buffered per watcher before it is considered too slow (it is
/// then closed and resumes from its last revision out of the history).
/// High-churn resources get a deeper buffer; the buffer is allocated up
/// front, so the rest stay small.
fn fanout(prefix: &str) -> usize {
    const BUSY: &[&str] = &[
        "/pods/",
        "/events/",
        "/endpointslices/",
        "/leases/",
        "/nodes/",
    ];
    if BUSY.iter().any(|b| prefix.ends_with(b)) {
        16_384
    } else {
        2_048
    }
}
/// Keys read per etcd range call while (re)listing.
const LIST_PAGE: i64 = 2_000;

struct State {
    ready: bool,
    revision: i64,
    objects: BTreeMap<String, Arc<CachedObject>>,
    history: VecDeque<Arc<WatchEvent>>,
    /// Every event after this revision is in `history`.
    window_start: i64,
}

/// The cache of one storage prefix.
pub struct WatchCache {
    prefix: String,
    etcd: Etcd,
    fields: Fields,
    state: RwLock<State>,
    tx: broadcast::Sender<Notice>,
    revision_tx: watch::Sender<i64>,
    progress_tx: mpsc::Sender<()>,
    progress_rx: tokio::sync::Mutex<Option<mpsc::Receiver<()>>>,
    /// Revision etcd history was compacted to by this server: older
    /// watches must get 410 even if the window still holds them.
    compacted: Arc<AtomicI64>,
}

/// A client watch on the cache: replayed events, then live ones.
pub struct CacheWatch {
    pub initial: VecDeque<Arc<WatchEvent>>,
    pub rx: broadcast::Receiver<Notice>,
    /// Revision the watch is current to once `initial` is drained.
    pub start_revision: i64,
}

/// Where a watch must be served from.
pub enum WatchStart {
    Cache(CacheWatch),
    /// Older than the window: read etcd's history directly.
    Etcd,
}

impl WatchCache {
    pub fn new(prefix: String, etcd: Etcd, fields: Fields, compacted: Arc<AtomicI64>) -> Arc<Self> {
        let (tx, _) = broadcast::channel(fanout(&prefix));
        let (revision_tx, _) = watch::channel(0);
        let (progress_tx, progress_rx) = mpsc::channel(1);
        Arc::new(WatchCache {
            prefix,
            etcd,
            fields,
            state: RwLock::new(State {
                ready: false,
                revision: 0,
                objects: BTreeMap::new(),
                history: VecDeque::new(),
                window_start: 0,
            }),
            tx,
            revision_tx,
            progress_tx,
            progress_rx: tokio::sync::Mutex::new(Some(progress_rx)),
            compacted,
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn fields(&self) -> Fields {
        self.fields
    }

    /// Serves reads: listed and its watch is live.
    pub fn is_ready(&self) -> bool {
        self.read().ready
    }

    pub fn revision(&self) -> i64 {
        self.read().revision
    }

    /// Number of objects held.
    pub fn len(&self) -> usize {
        self.read().objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs the list-then-watch loop forever (spawn it).
    pub async fn run(self: Arc<Self>) {
        let mut progress_rx = match self.progress_rx.lock().await.take() {
            Some(rx) => rx,
            None => return,
        };
        loop {
            let rev = match self.relist().await {
                Ok(rev) => rev,
                Err(e) => {
                    debug!(prefix = %self.prefix, error = %e, "watch cache list failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            info!(prefix = %self.prefix, revision = rev, "watch cache listed");
            loop {
                let from = self.read().revision + 1;
                match self.watch_from(from, &mut progress_rx).await {
                    Err(StorageError::Compacted { .. }) => break,
                    Err(e) => {
                        debug!(prefix = %self.prefix, error = %e, "watch cache watch interrupted");
                        self.write().ready = false;
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    Ok(()) => {
                        self.write().ready = false;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        }
    }

    async fn relist(&self) -> Result<i64, StorageError> {
        let end = prefix_end(&self.prefix);
        let mut start = self.prefix.clone();
        let mut revision = 0;
        let mut objects = BTreeMap::new();
        loop {
            let page = self
                .etcd
                .range(&start, &end, revision, LIST_PAGE, false)
                .await?;
            if revision == 0 {
                revision = page.revision;
            }
            let last = page.kvs.last().map(|kv| kv.key.clone());
            for kv in page.kvs {
                if let Some(obj) = decode(&kv.key, &kv.value, kv.mod_revision, self.fields) {
                    objects.insert(kv.key, obj);
                }
            }
            match (page.more, last) {
                (true, Some(last)) => start = format!("{last}\0"),
                _ => break,
            }
        }
        let had_state = {
            let mut st = self.write();
            let had = st.revision > 0;
            st.objects = objects;
            st.history.clear();
            st.revision = revision;
            st.window_start = revision;
            st.ready = true;
            if had {
                let _ = self.tx.send(Notice::Reset);
            }
            had
        };
        if had_state {
            warn!(prefix = %self.prefix, "watch cache rebuilt; watchers restarted");
        }
        let _ = self.revision_tx.send(revision);
        Ok(revision)
    }

    async fn watch_from(
        &self,
        from: i64,
        progress_rx: &mut mpsc::Receiver<()>,
    ) -> Result<(), StorageError> {
        let opts = WatchOptions::new()
            .with_prefix()
            .with_prev_key()
            .with_progress_notify()
            .with_start_revision(from);
        let mut client = self.etcd.watch_client();
        let stream = tokio::time::timeout(
            self.etcd.timeout(),
            client.watch(self.prefix.as_str(), Some(opts)),
        )
        .await
        .map_err(|_| StorageError::Timeout { op: "watch" })?
        .map_err(|e| StorageError::Unavailable {
            op: "watch",
            message: e.to_string(),
        })?;
        let (mut sender, mut responses) = stream.split();
        let mut created = false;
        loop {
            tokio::select! {
                msg = responses.message() => {
                    let resp = msg.map_err(|e| StorageError::Unavailable { op: "watch", message: e.to_string() })?;
                    let Some(resp) = resp else { return Ok(()) };
                    if resp.compact_revision() > 0 {
                        return Err(StorageError::Compacted { revision: resp.compact_revision() });
                    }
                    if resp.canceled() {
                        return Err(StorageError::Unavailable { op: "watch", message: resp.cancel_reason().to_string() });
                    }
                    if resp.created() {
                        created = true;
                        self.write().ready = true;
                        continue;
                    }
                    let header_rev = resp.header().map(|h| h.revision()).unwrap_or(0);
                    if resp.events().is_empty() {
                        if created && header_rev > 0 {
                            self.progress(header_rev);
                        }
                        continue;
                    }
                    self.apply(resp.events());
                }
                req = progress_rx.recv() => {
                    if req.is_some() && created {
                        let _ = sender.request_progress().await;
                    }
                }
            }
        }
    }

    fn progress(&self, revision: i64) {
        let mut st = self.write();
        if revision > st.revision {
            st.revision = revision;
            let _ = self.tx.send(Notice::Progress(revision));
            drop(st);
            let _ = self.revision_tx.send(revision);
        }
    }

    fn apply(&self, events: &[etcd_client::Event]) {
        let mut st = self.write();
        let mut last = st.revision;
        for ev in events {
            let Some(kv) = ev.kv() else { continue };
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            let revision = kv.mod_revision();
            let prev = st.objects.get(&key).cloned();
            let event = match ev.event_type() {
                EtcdEventType::Put => {
                    let Some(obj) =
                        decode_event(&self.etcd, &key, kv.value(), revision, self.fields)
                    else {
                        continue;
                    };
                    st.objects.insert(key, obj.clone());
                    WatchEvent {
                        kind: if prev.is_some() {
                            EventType::Modified
                        } else {
                            EventType::Added
                        },
                        object: obj,
                        prev,
                        revision,
                    }
                }
                EtcdEventType::Delete => {
                    st.objects.remove(&key);
                    let Some(prev) = prev.or_else(|| {
                        ev.prev_kv().and_then(|p| {
                            decode_event(&self.etcd, &key, p.value(), p.mod_revision(), self.fields)
                        })
                    }) else {
                        continue;
                    };
                    WatchEvent {
                        kind: EventType::Deleted,
                        object: Arc::new(restamp(&prev, revision, self.fields)),
                        prev: Some(prev),
                        revision,
                    }
                }
            };
            let event = Arc::new(event);
            st.history.push_back(event.clone());
            while st.history.len() > HISTORY {
                if let Some(old) = st.history.pop_front() {
                    st.window_start = old.revision;
                }
            }
            last = last.max(revision);
            let _ = self.tx.send(Notice::Event(event));
        }
        st.revision = last;
        drop(st);
        let _ = self.revision_tx.send(last);
    }

    /// Waits until the cache has seen `revision` (asking etcd for a progress
    /// notification), or gives up after `wait`.
    pub async fn wait_for(&self, revision: i64, wait: Duration) -> bool {
        let mut rx = self.revision_tx.subscribe();
        let ok = |c: &WatchCache| {
            let st = c.read();
            st.ready && st.revision >= revision
        };
        if ok(self) {
            return true;
        }
        let _ = self.progress_tx.try_send(());
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if ok(self) {
                return true;
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                _ => return ok(self),
            }
        }
    }

    /// Objects whose key starts with `prefix`, at the cache's revision.
    pub fn snapshot(&self, prefix: &str) -> Option<(i64, Vec<Arc<CachedObject>>)> {
        let st = self.read();
        if !st.ready {
            return None;
        }
        let end = prefix_end(prefix);
        let items = st
            .objects
            .range(prefix.to_string()..end)
            .map(|(_, v)| v.clone())
            .collect();
        Some((st.revision, items))
    }

    /// One object by key, if the cache is live.
    pub fn get(&self, key: &str) -> Option<Option<Arc<CachedObject>>> {
        let st = self.read();
        if !st.ready {
            return None;
        }
        Some(st.objects.get(key).cloned())
    }

    /// Starts a client watch. `from == 0` means "now, with the current state
    /// as synthetic ADDED events" when `initial` is set, or just "now".
    pub fn watch(&self, from: i64, prefix: &str, initial: bool) -> WatchStart {
        let st = self.read();
        if !st.ready {
            return WatchStart::Etcd;
        }
        if from == 0 {
            let mut events = VecDeque::new();
            if initial {
                let end = prefix_end(prefix);
                for (_, obj) in st.objects.range(prefix.to_string()..end) {
                    events.push_back(Arc::new(WatchEvent {
                        kind: EventType::Added,
                        object: obj.clone(),
                        prev: None,
                        revision: obj.revision,
                    }));
                }
            }
            return WatchStart::Cache(CacheWatch {
                initial: events,
                rx: self.tx.subscribe(),
                start_revision: st.revision,
            });
        }
        if from < st.window_start || from < self.compacted.load(Ordering::Relaxed) {
            return WatchStart::Etcd;
        }
        let initial = st
            .history
            .iter()
            .filter(|e| e.revision > from)
            .cloned()
            .collect();
        WatchStart::Cache(CacheWatch {
            initial,
            rx: self.tx.subscribe(),
            start_revision: st.revision.max(from),
        })
    }
}

/// Decodes the value of a watch event, opened by the encryption
/// transformers; a value that cannot be opened is skipped and logged.
fn decode_event(
    etcd: &Etcd,
    key: &str,
    raw: &[u8],
    revision: i64,
    fields: Fields,
) -> Option<Arc<CachedObject>> {
    match etcd.open_value(key, raw) {
        Ok((plain, _)) => decode(key, &plain, revision, fields),
        Err(e) => {
            warn!(error = %e, "watch event skipped");
            None
        }
    }
}

/// A watch read straight from etcd's history (for revisions older than the
/// cache window), delivering the same notices as the cache.
pub fn watch_etcd(
    etcd: Etcd,
    prefix: String,
    from: i64,
    fields: Fields,
) -> mpsc::Receiver<Result<Notice, StorageError>> {
    let (tx, rx) = mpsc::channel(1024);
    tokio::spawn(async move {
        let opts = WatchOptions::new()
            .with_prefix()
            .with_prev_key()
            .with_progress_notify()
            .with_start_revision(from);
        let mut client = etcd.watch_client();
        let stream =
            match tokio::time::timeout(etcd.timeout(), client.watch(prefix.as_str(), Some(opts)))
                .await
            {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    let _ = tx
                        .send(Err(StorageError::Unavailable {
                            op: "watch",
                            message: e.to_string(),
                        }))
                        .await;
                    return;
                }
                Err(_) => {
                    let _ = tx.send(Err(StorageError::Timeout { op: "watch" })).await;
                    return;
                }
            };
        let (_sender, mut responses) = stream.split();
        let mut known: BTreeMap<String, Arc<CachedObject>> = BTreeMap::new();
        loop {
            let resp = match responses.message().await {
                Ok(Some(r)) => r,
                Ok(None) => return,
                Err(e) => {
                    let _ = tx
                        .send(Err(StorageError::Unavailable {
                            op: "watch",
                            message: e.to_string(),
                        }))
                        .await;
                    return;
                }
            };
            if resp.compact_revision() > 0 {
                let _ = tx
                    .send(Err(StorageError::Compacted {
                        revision: resp.compact_revision(),
                    }))
                    .await;
                return;
            }
            if resp.created() {
                continue;
            }
            if resp.events().is_empty() {
                let rev = resp.header().map(|h| h.revision()).unwrap_or(0);
                if rev > 0 && tx.send(Ok(Notice::Progress(rev))).await.is_err() {
                    return;
                }
                continue;
            }
            for ev in resp.events() {
                let Some(kv) = ev.kv() else { continue };
                let key = String::from_utf8_lossy(kv.key()).into_owned();
                let revision = kv.mod_revision();
                let prev = known.get(&key).cloned().or_else(|| {
                    ev.prev_kv().and_then(|p| {
                        decode_event(&etcd, &key, p.value(), p.mod_revision(), fields)
                    })
                });
                let event = match ev.event_type() {
                    EtcdEventType::Put => {
                        let Some(obj) = decode_event(&etcd, &key, kv.value(), revision, fields)
                        else {
                            continue;
                        };
                        known.insert(key, obj.clone());
                        WatchEvent {
                            kind: if kv.create_revision() == revision {
                                EventType::Added
                            } else {
                                EventType::Modified
                            },
                            object: obj,
                            prev,
                            revision,
                        }
                    }
                    EtcdEventType::Delete => {
                        known.remove(&key);
                        let Some(prev) = prev else { continue };
                        WatchEvent {
                            kind: EventType::Deleted,
                            object: Arc::new(restamp(&prev, revision, fields)),
                            prev: Some(prev),
                            revision,
                        }
                    }
                };
                if tx.send(Ok(Notice::Event(Arc::new(event)))).await.is_err() {
                    return;
                }
            }
        }
    });
    rx
}
