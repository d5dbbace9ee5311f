//! Storage of API objects in etcd: key layout, transactional writes, the
//! watch cache and compaction.

pub mod compaction;
pub mod encryption;
pub mod etcd;
pub mod keys;
pub mod metrics;
pub mod object;
pub mod watch_cache;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::Duration;

use crate::api::resource::Resource;
use crate::api::status::ApiError;
use crate::kinds::RESOURCES;

pub use encryption::Encryption;
pub use etcd::{Etcd, EtcdTls, Kv, SideEffect, TxnFailure};
pub use object::{CachedObject, Fields};
pub use watch_cache::{EventType, Notice, WatchCache, WatchEvent};

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("etcd {op} failed: {message}")]
    Unavailable { op: &'static str, message: String },
    #[error("etcd {op} timed out")]
    Timeout { op: &'static str },
    #[error("required revision has been compacted (compacted to {revision})")]
    Compacted { revision: i64 },
    #[error("stored object at {key} is not valid JSON: {message}")]
    Corrupt { key: String, message: String },
    /// A value the encryption transformers could not open or seal.
    #[error("unable to transform key {key:?}: {message}")]
    Transform { key: String, message: String },
}

/// Storage settings.
#[derive(Debug, Clone)]
pub struct StorageConfig {
    pub endpoints: Vec<String>,
    /// Deadline of every etcd call.
    pub request_timeout: Duration,
    /// Compaction interval; zero disables compaction.
    pub compaction_interval: Duration,
    /// Client certificate and CA of etcd's mutual TLS; `None` speaks
    /// plain HTTP.
    pub tls: Option<EtcdTls>,
    /// Transformers of the resources encrypted at rest.
    pub encryption: Arc<Encryption>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            endpoints: vec!["http://127.0.0.1:2379".into()],
            request_timeout: Duration::from_secs(5),
            compaction_interval: Duration::from_secs(300),
            tls: None,
            encryption: Arc::new(Encryption::none()),
        }
    }
}

/// etcd plus one watch cache per resource prefix.
pub struct Store {
    pub etcd: Etcd,
    caches: HashMap<String, Arc<WatchCache>>,
    /// Last revision compacted by this server.
    pub compacted: Arc<AtomicI64>,
}

impl Store {
    /// Connects to etcd and starts the watch caches and compaction.
    pub async fn start(config: &StorageConfig) -> Result<Arc<Self>, StorageError> {
        let etcd = Etcd::connect(config).await?;
        let compacted = Arc::new(AtomicI64::new(0));
        let mut caches = HashMap::new();
        for r in RESOURCES {
            if !r.verbs.contains(&"list") {
                continue;
            }
            let prefix = keys::resource_prefix(r);
            caches.entry(prefix.clone()).or_insert_with(|| {
                WatchCache::new(
                    prefix,
                    etcd.clone(),
                    r.strategy.selectable_fields(),
                    compacted.clone(),
                )
            });
        }
        for cache in caches.values() {
            tokio::spawn(cache.clone().run());
        }
        tokio::spawn(compaction::run(
            etcd.clone(),
            config.compaction_interval,
            compacted.clone(),
        ));
        Ok(Arc::new(Store {
            etcd,
            caches,
            compacted,
        }))
    }

    /// The watch cache serving a resource.
    pub fn cache(&self, r: &Resource) -> Option<&Arc<WatchCache>> {
        self.caches.get(&keys::resource_prefix(r))
    }

    /// All caches are listed and watching.
    pub fn caches_ready(&self) -> bool {
        self.caches.values().all(|c| c.is_ready())
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Timeout { .. } => ApiError::timeout(
                "Timeout: request did not complete within requested timeout - context deadline exceeded",
            ),
            StorageError::Unavailable { message, .. } => {
                ApiError::unavailable(format!("etcd is unavailable: {message}"))
            }
            StorageError::Compacted { revision } => ApiError::expired(format!(
                "The resourceVersion for the provided list is too old (compacted to {revision})."
            )),
            StorageError::Corrupt { key, message } => ApiError::internal(format!(
                "stored object {key} could not be decoded: {message}"
            )),
            e @ StorageError::Transform { .. } => ApiError::internal(e.to_string()),
        }
    }
}
