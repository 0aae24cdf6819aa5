//! The gateway value and its wiring: the state it owns (Hub client, CAS clients, key
//! shards, chunk cache, buffers, caches) and the accessors the rest of the core builds on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hugbucket_cache::{CacheConfig, ChunkCache, DiskCache};
use hugbucket_engine::buffers::BufferPool;
use hugbucket_upstream::{BucketId, CasClient, HubClient, TokenScope, UpstreamError};
use tokio::runtime::Handle;
use tokio::sync::OnceCell;

use crate::config::CoreConfig;
use crate::error::{CoreError, Result};
use crate::names::{self, validate_bucket};
use crate::state::{SledState, StateStore};
use crate::ttl::TtlCache;
use crate::{list, multipart, shards, sidecar};

/// The gateway core. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Gateway {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) hub: HubClient,
    pub(crate) config: CoreConfig,
    pub(crate) namespace: OnceCell<String>,
    pub(crate) state: Arc<dyn StateStore>,
    /// CAS clients per (bucket id, scope): they cache tokens and detected API versions.
    pub(crate) cas: Mutex<HashMap<(String, bool), CasClient>>,
    /// Decoded xorb chunk ranges, across restarts.
    pub(crate) cache: Option<Arc<dyn ChunkCache>>,
    /// Per-key state (metadata, reconstructions, single flights, write order), by owner.
    pub(crate) shards: shards::KeyShards,
    /// Where bulk tasks (term fetches) run: the runtime the gateway was built on.
    pub(crate) work: Option<Handle>,
    /// PUTs and parts being ingested right now.
    pub(crate) uploads_in_flight: Arc<std::sync::atomic::AtomicUsize>,
    /// Multipart upload records read from buckets (they never change).
    pub(crate) upload_records: multipart::RecordCache,
    /// Held while an upload record is looked up at the Hub for a part.
    pub(crate) record_lookup: tokio::sync::Mutex<()>,
    /// Group commit of multipart part entries.
    pub(crate) part_records: Arc<multipart::Coalescer>,
    /// Whole-object reads aborted because the bytes read did not hash to the object's hash.
    pub(crate) read_hash_mismatches: Arc<std::sync::atomic::AtomicU64>,
    /// Xorb serialization buffers kept between PUTs (a fresh 64 MiB buffer is
    /// page-faulted in again by every PUT).
    pub(crate) xorb_buffers: Arc<BufferPool>,
    /// Metadata sidecar contents by their Xet hash.
    pub(crate) sidecars: sidecar::SidecarCache,
    /// Where the Hub listing behind a page that ended at a key can resume, for
    /// continuations that carry only the key (ListObjects V1 markers, `start-after`).
    pub(crate) list_resume: TtlCache<list::ResumeKey, String>,
}

/// Counts an upload as in flight while alive.
pub(crate) struct UploadGuard(Arc<std::sync::atomic::AtomicUsize>);

impl UploadGuard {
    pub(crate) fn enter(counter: &Arc<std::sync::atomic::AtomicUsize>) -> Self {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        UploadGuard(counter.clone())
    }
}

impl Drop for UploadGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("hub", &self.hub)
            .field("config", &self.config)
            .field("cache", &self.cache.is_some())
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// A gateway over `hub` with local state in `config.data_dir` (sled) and, when
    /// `config.cache_dir` is set, the persistent chunk cache there.
    pub async fn new(config: CoreConfig, hub: HubClient) -> Result<Self> {
        let dir = config.data_dir.join("gateway-state");
        let cache_cfg = config
            .cache_dir
            .clone()
            .map(|d| CacheConfig::new(d, config.cache_capacity));
        let (state, cache) = tokio::task::spawn_blocking(move || {
            let state = SledState::open(&dir)?;
            let cache = match cache_cfg {
                Some(c) => Some(
                    DiskCache::open(c)
                        .map_err(|e| CoreError::Internal(format!("chunk cache: {e}")))?,
                ),
                None => None,
            };
            Ok::<_, CoreError>((state, cache))
        })
        .await
        .map_err(|e| CoreError::Internal(e.to_string()))??;
        let cache = cache.map(|c| Arc::new(c) as Arc<dyn ChunkCache>);
        Self::with_parts(config, hub, Arc::new(state), cache)
    }

    /// A gateway with the given state store and chunk cache.
    pub fn with_parts(
        config: CoreConfig,
        hub: HubClient,
        state: Arc<dyn StateStore>,
        cache: Option<Arc<dyn ChunkCache>>,
    ) -> Result<Self> {
        let shards = if config.key_shard_cpus.is_empty() {
            shards::KeyShards::inline(1, config.metadata_ttl, config.reconstruction_ttl)
        } else {
            shards::KeyShards::start(
                &config.key_shard_cpus,
                config.metadata_ttl,
                config.reconstruction_ttl,
            )
            .map_err(|e| CoreError::Internal(format!("starting the key shards: {e}")))?
        };
        Ok(Gateway {
            inner: Arc::new(Inner {
                hub,
                namespace: OnceCell::new(),
                state,
                cas: Mutex::new(HashMap::new()),
                cache,
                shards,
                work: Handle::try_current().ok(),
                uploads_in_flight: Arc::default(),
                upload_records: Default::default(),
                record_lookup: tokio::sync::Mutex::new(()),
                part_records: multipart::Coalescer::new(config.part_record_interval),
                read_hash_mismatches: Arc::default(),
                xorb_buffers: Arc::new(BufferPool::new(config.max_concurrent_xorb_uploads + 1)),
                sidecars: sidecar::new_cache(),
                list_resume: TtlCache::new(10_000, list::RESUME_TTL),
                config,
            }),
        })
    }

    /// Number of key shards.
    pub fn shard_count(&self) -> usize {
        self.inner.shards.len()
    }

    pub(crate) fn shard(&self, bucket: &str, path: &str) -> &shards::ShardState {
        // Paths and keys name the same object; the owner is computed from the key.
        let key = names::path_to_key(path);
        self.inner
            .shards
            .state(self.inner.shards.owner(bucket, &key))
    }

    /// The shard runtimes (empty without): front-ends spread their sessions over them.
    pub fn shard_runtimes(&self) -> &[Handle] {
        self.inner.shards.runtimes()
    }

    /// Calls run on each shard's runtime so far.
    pub fn shard_calls(&self) -> Vec<u64> {
        (0..self.inner.shards.len())
            .map(|i| {
                self.inner
                    .shards
                    .state(i)
                    .calls
                    .load(std::sync::atomic::Ordering::Relaxed)
            })
            .collect()
    }

    /// The chunk cache, if enabled.
    pub fn cache(&self) -> Option<&Arc<dyn ChunkCache>> {
        self.inner.cache.as_ref()
    }

    /// Objects and parts being uploaded right now.
    pub fn uploads_in_flight(&self) -> usize {
        self.inner
            .uploads_in_flight
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whole-object reads aborted so far because the bytes read did not hash to the
    /// object's file hash (the client got a cut-short response, never a complete one).
    pub fn read_hash_mismatches(&self) -> u64 {
        self.inner
            .read_hash_mismatches
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The Hub client.
    pub fn hub(&self) -> &HubClient {
        &self.inner.hub
    }

    /// The Hub namespace of the caller's buckets (whoami, cached).
    pub async fn namespace(&self) -> Result<String> {
        let g = self.clone();
        self.on_work(async move { g.namespace_here().await }).await
    }

    pub(crate) async fn namespace_here(&self) -> Result<String> {
        let ns = self
            .inner
            .namespace
            .get_or_try_init(|| async { self.inner.hub.namespace().await })
            .await?;
        Ok(ns.clone())
    }

    pub(crate) async fn bucket_id(&self, bucket: &str) -> Result<BucketId> {
        validate_bucket(bucket)?;
        let ns = self.namespace_here().await?;
        BucketId::new(&ns, bucket).map_err(|_| CoreError::InvalidBucketName(bucket.to_string()))
    }

    pub(crate) fn cas(&self, id: &BucketId, scope: TokenScope) -> CasClient {
        let key = (id.to_string(), matches!(scope, TokenScope::Write));
        let mut map = self.inner.cas.lock().expect("cas map lock");
        map.entry(key)
            .or_insert_with(|| self.inner.hub.cas(id, scope))
            .clone()
    }

    /// Maps "not found" from a bucket-scoped call to NoSuchBucket.
    pub(crate) fn bucket_err(bucket: &str) -> impl Fn(UpstreamError) -> CoreError + '_ {
        move |e| match e.root() {
            UpstreamError::NotFound(_) => CoreError::NoSuchBucket(bucket.to_string()),
            _ => e.into(),
        }
    }
}
