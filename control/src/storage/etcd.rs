//! The etcd v3 client wrapper: every call has a deadline, every error is
//! classified (unavailable, timeout, compacted), and writes are transactions
//! on the key's create/mod revision as kube-apiserver's etcd3 store does.
//! Values pass through the encryption transformers here, on every read,
//! write and watch event: everything above this wrapper sees plaintext.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, GetOptions, Identity, KvClient,
    TlsOptions, Txn, TxnOp, TxnOpResponse, WatchClient,
};

use super::encryption::Encryption;
use super::{StorageConfig, StorageError};

/// A key-value pair read from etcd with its revisions.
#[derive(Debug, Clone)]
pub struct Kv {
    pub key: String,
    pub value: Vec<u8>,
    pub mod_revision: i64,
    pub create_revision: i64,
    /// The value was not written by the first encryption provider: an
    /// update rewrites it even when the object is unchanged.
    pub stale: bool,
}

/// One page of a range read.
#[derive(Debug, Default)]
pub struct Page {
    pub kvs: Vec<Kv>,
    /// Revision the range was read at.
    pub revision: i64,
    /// More keys exist after the last one returned.
    pub more: bool,
    /// Number of keys in the whole range (not just this page).
    pub count: i64,
}

/// An extra operation carried in the same transaction as an object write
/// (allocator bookkeeping): the key must be absent and is created, or is
/// deleted.
#[derive(Debug, Clone)]
pub enum SideEffect {
    Claim { key: String, value: Vec<u8> },
    Release { key: String },
}

/// Outcome of a conditional write that lost its comparison.
#[derive(Debug)]
pub enum TxnFailure {
    /// The object's revision did not match; carries what is there now.
    Object(Option<Kv>),
    /// A claimed side-effect key already existed.
    Claimed(String),
}

/// etcd client with a deadline on every call.
#[derive(Clone)]
pub struct Etcd {
    client: Client,
    timeout: Duration,
    encryption: Arc<Encryption>,
}

/// The client side of etcd's mutual TLS (`--etcd-cafile`,
/// `--etcd-certfile`, `--etcd-keyfile`), as PEM.
#[derive(Debug, Clone)]
pub struct EtcdTls {
    pub ca: Vec<u8>,
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
}

impl EtcdTls {
    /// Reads the three PEM files.
    pub fn load(
        ca: &std::path::Path,
        cert: &std::path::Path,
        key: &std::path::Path,
    ) -> std::io::Result<Self> {
        Ok(EtcdTls {
            ca: std::fs::read(ca)?,
            cert: std::fs::read(cert)?,
            key: std::fs::read(key)?,
        })
    }

    fn options(&self) -> TlsOptions {
        TlsOptions::new()
            .ca_certificate(Certificate::from_pem(&self.ca))
            .identity(Identity::from_pem(&self.cert, &self.key))
    }
}

/// Largest gRPC message accepted from etcd (a page of big objects).
const MAX_MESSAGE: usize = 512 * 1024 * 1024;

impl Etcd {
    /// Connects lazily: the call succeeds while etcd is down, and requests
    /// fail until it comes back. With TLS settings the endpoints are
    /// `https://` (a bare `host:port` is too).
    pub async fn connect(config: &StorageConfig) -> Result<Self, StorageError> {
        let timeout = config.request_timeout;
        let eps: Vec<String> = config
            .endpoints
            .iter()
            .map(|e| match &config.tls {
                Some(_) => e.clone(),
                None => e.trim_start_matches("http://").to_string(),
            })
            .collect();
        let mut opts = ConnectOptions::new()
            .with_connect_timeout(timeout)
            .with_timeout(timeout)
            .with_keep_alive(Duration::from_secs(10), timeout)
            .with_keep_alive_while_idle(true);
        if let Some(tls) = &config.tls {
            opts = opts.with_tls(tls.options());
        }
        let client =
            Client::connect(eps, Some(opts))
                .await
                .map_err(|e| StorageError::Unavailable {
                    op: "connect",
                    message: e.to_string(),
                })?;
        Ok(Etcd {
            client,
            timeout,
            encryption: config.encryption.clone(),
        })
    }

    /// The plaintext of a value read at `key`, and whether it is stale.
    pub fn open_value<'a>(
        &self,
        key: &str,
        value: &'a [u8],
    ) -> Result<(Cow<'a, [u8]>, bool), StorageError> {
        self.encryption
            .from_storage(key, value)
            .map_err(|e| StorageError::Transform {
                key: key.to_string(),
                message: e.to_string(),
            })
    }

    fn seal_value(&self, key: &str, value: Vec<u8>) -> Result<Vec<u8>, StorageError> {
        match self.encryption.to_storage(key, &value) {
            Ok(Cow::Borrowed(_)) => Ok(value),
            Ok(Cow::Owned(sealed)) => Ok(sealed),
            Err(e) => Err(StorageError::Transform {
                key: key.to_string(),
                message: e.to_string(),
            }),
        }
    }

    /// A key-value pair read from etcd, its value opened.
    fn kv_of(&self, kv: etcd_client::KeyValue) -> Result<Kv, StorageError> {
        let mod_revision = kv.mod_revision();
        let create_revision = kv.create_revision();
        let (k, v) = kv.into_key_value();
        let key = String::from_utf8_lossy(&k).into_owned();
        let (value, stale) = match self.open_value(&key, &v)? {
            (Cow::Borrowed(_), stale) => (v, stale),
            (Cow::Owned(plain), stale) => (plain, stale),
        };
        Ok(Kv {
            key,
            value,
            mod_revision,
            create_revision,
            stale,
        })
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub(crate) fn kv(&self) -> KvClient {
        self.client
            .kv_client()
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE)
    }

    pub(crate) fn watch_client(&self) -> WatchClient {
        self.client
            .watch_client()
            .max_decoding_message_size(MAX_MESSAGE)
    }

    async fn deadline<T, F>(&self, op: &'static str, fut: F) -> Result<T, StorageError>
    where
        F: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        let started = std::time::Instant::now();
        let out = match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(classify(op, e)),
            Err(_) => Err(StorageError::Timeout { op }),
        };
        super::metrics::observe_etcd(op, started.elapsed());
        out
    }

    /// Reads one key (linearizable).
    pub async fn get(&self, key: &str) -> Result<(Option<Kv>, i64), StorageError> {
        let mut kv = self.kv();
        let mut resp = self.deadline("get", kv.get(key, None)).await?;
        let rev = resp.header().map(|h| h.revision()).unwrap_or(0);
        let kv = resp.take_kvs().into_iter().next();
        Ok((kv.map(|kv| self.kv_of(kv)).transpose()?, rev))
    }

    /// The current revision of the store (a linearizable read of nothing).
    pub async fn current_revision(&self) -> Result<i64, StorageError> {
        let mut kv = self.kv();
        let resp = self
            .deadline(
                "get",
                kv.get(
                    "/registry/health",
                    Some(GetOptions::new().with_count_only()),
                ),
            )
            .await?;
        Ok(resp.header().map(|h| h.revision()).unwrap_or(0))
    }

    /// Reads `[start, end)` at `revision` (0 = newest), at most `limit` keys
    /// (0 = all).
    pub async fn range(
        &self,
        start: &str,
        end: &str,
        revision: i64,
        limit: i64,
        keys_only: bool,
    ) -> Result<Page, StorageError> {
        let mut opts = GetOptions::new().with_range(end.as_bytes().to_vec());
        if revision > 0 {
            opts = opts.with_revision(revision);
        }
        if limit > 0 {
            opts = opts.with_limit(limit);
        }
        if keys_only {
            opts = opts.with_keys_only();
        }
        let mut kv = self.kv();
        let mut resp = self.deadline("list", kv.get(start, Some(opts))).await?;
        let revision = resp.header().map(|h| h.revision()).unwrap_or(0);
        let more = resp.more();
        let count = resp.count();
        Ok(Page {
            kvs: if keys_only {
                resp.take_kvs()
                    .into_iter()
                    .map(|kv| Kv {
                        key: String::from_utf8_lossy(kv.key()).into_owned(),
                        value: Vec::new(),
                        mod_revision: kv.mod_revision(),
                        create_revision: kv.create_revision(),
                        stale: false,
                    })
                    .collect()
            } else {
                resp.take_kvs()
                    .into_iter()
                    .map(|kv| self.kv_of(kv))
                    .collect::<Result<_, _>>()?
            },
            revision,
            more,
            count,
        })
    }

    /// Creates `key` if absent, with side effects; returns the new revision.
    pub async fn create(
        &self,
        key: &str,
        value: Vec<u8>,
        effects: &[SideEffect],
    ) -> Result<Result<i64, TxnFailure>, StorageError> {
        let cmp = vec![Compare::create_revision(key, CompareOp::Equal, 0)];
        self.write_txn("create", key, None, cmp, Some(value), effects)
            .await
    }

    /// Replaces `key` if its mod revision is still `expected`.
    pub async fn update(
        &self,
        key: &str,
        expected: i64,
        value: Vec<u8>,
        effects: &[SideEffect],
    ) -> Result<Result<i64, TxnFailure>, StorageError> {
        let cmp = vec![Compare::mod_revision(key, CompareOp::Equal, expected)];
        self.write_txn("update", key, Some(expected), cmp, Some(value), effects)
            .await
    }

    /// Deletes `key` if its mod revision is still `expected`.
    pub async fn delete(
        &self,
        key: &str,
        expected: i64,
        effects: &[SideEffect],
    ) -> Result<Result<i64, TxnFailure>, StorageError> {
        let cmp = vec![Compare::mod_revision(key, CompareOp::Equal, expected)];
        self.write_txn("delete", key, Some(expected), cmp, None, effects)
            .await
    }

    async fn write_txn(
        &self,
        op: &'static str,
        key: &str,
        expected: Option<i64>,
        mut cmp: Vec<Compare>,
        value: Option<Vec<u8>>,
        effects: &[SideEffect],
    ) -> Result<Result<i64, TxnFailure>, StorageError> {
        let mut ops = vec![match value {
            Some(v) => TxnOp::put(key, self.seal_value(key, v)?, None),
            None => TxnOp::delete(key, None),
        }];
        for e in effects {
            match e {
                SideEffect::Claim { key, value } => {
                    cmp.push(Compare::create_revision(key.as_str(), CompareOp::Equal, 0));
                    ops.push(TxnOp::put(
                        key.as_str(),
                        self.seal_value(key, value.clone())?,
                        None,
                    ));
                }
                SideEffect::Release { key } => ops.push(TxnOp::delete(key.as_str(), None)),
            }
        }
        let txn = Txn::new()
            .when(cmp)
            .and_then(ops)
            .or_else(vec![TxnOp::get(key, None)]);
        let mut kv = self.kv();
        let resp = self.deadline(op, kv.txn(txn)).await?;
        let rev = resp.header().map(|h| h.revision()).unwrap_or(0);
        if resp.succeeded() {
            return Ok(Ok(rev));
        }
        let current = resp.op_responses().into_iter().find_map(|r| match r {
            TxnOpResponse::Get(mut g) => Some(g.take_kvs().into_iter().next()),
            _ => None,
        });
        let current = current.flatten().map(|kv| self.kv_of(kv)).transpose()?;
        // The object comparison held when the key is as expected: then a
        // claimed side-effect key was taken.
        let object_held = match (&current, expected) {
            (None, None) => true,
            (Some(cur), Some(rev)) => cur.mod_revision == rev,
            _ => false,
        };
        if object_held {
            for e in effects {
                if let SideEffect::Claim { key, .. } = e {
                    let (held, _) = self.get(key).await?;
                    if held.is_some() {
                        return Ok(Err(TxnFailure::Claimed(key.clone())));
                    }
                }
            }
        }
        Ok(Err(TxnFailure::Object(current)))
    }

    /// Deletes a key unconditionally (allocator cleanup).
    pub async fn delete_key(&self, key: &str) -> Result<(), StorageError> {
        let mut kv = self.kv();
        self.deadline("delete", kv.delete(key, None)).await?;
        Ok(())
    }

    /// Puts a key unconditionally.
    pub async fn put(&self, key: &str, value: Vec<u8>) -> Result<i64, StorageError> {
        let mut kv = self.kv();
        let value = self.seal_value(key, value)?;
        let resp = self.deadline("update", kv.put(key, value, None)).await?;
        Ok(resp.header().map(|h| h.revision()).unwrap_or(0))
    }

    /// Compacts history up to `revision`.
    pub async fn compact(&self, revision: i64) -> Result<(), StorageError> {
        let mut kv = self.kv();
        self.deadline("compact", kv.compact(revision, None)).await?;
        Ok(())
    }
}

fn classify(op: &'static str, e: etcd_client::Error) -> StorageError {
    match &e {
        etcd_client::Error::GRpcStatus(s) => {
            let msg = s.message().to_string();
            if msg.contains("required revision has been compacted") {
                return StorageError::Compacted { revision: 0 };
            }
            // gRPC code 4 is DEADLINE_EXCEEDED.
            if s.code() as i32 == 4 {
                return StorageError::Timeout { op };
            }
            StorageError::Unavailable { op, message: msg }
        }
        _ => StorageError::Unavailable {
            op,
            message: e.to_string(),
        },
    }
}
