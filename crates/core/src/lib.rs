//! Object semantics on Hugging Face Storage Buckets over Xet: the gateway core that the S3
//! and FTP front-ends translate to. Contract: `docs/core-api.md`.
//!
//! - S3 bucket `name` ↔ Hub bucket `{namespace}/{name}`; the namespace comes from whoami.
//! - PUT streams the body through the engine's ingest pipeline, uploading each xorb while
//!   the body arrives, then the shard, then registers the path with a batch `addFile`. An
//!   upload that fails at any step registers nothing: the previous object stays visible.
//! - GET asks the CAS for the reconstruction of just the requested range and streams the
//!   decoded chunks out with a bounded prefetch window.
//! - Copy registers the existing content hash at the new path: no bytes move.
//! - Multipart parts are ingested and uploaded when they arrive; the upload and its parts
//!   are recorded in the bucket itself (hidden entries under `.hugbucket/uploads/`), so any
//!   node of a fleet can continue, list, complete or abort any upload.
//!
//! All of it runs on tokio (reqwest lives there). Each key belongs to one shard, which
//! owns its metadata cache entry, reconstructions, single-flight fetches and write order;
//! with `key_shard_cpus` set, each shard has a pinned runtime that runs its keys' calls
//! (see `shards`).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod affinity;
mod error;
mod flight;
mod get;
mod list;
mod multipart;
pub mod names;
mod put;
mod shards;
mod sidecar;
mod small;
pub mod state;
mod ttl;
mod types;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use hugbucket_cache::{CacheConfig, ChunkCache, DiskCache};
use hugbucket_engine::buffers::BufferPool;
use hugbucket_upstream::{
    BatchOp, BucketId, CasClient, CreateBucketOptions, RemoteFile, TokenScope, UpstreamError,
    Visibility,
};
use tokio::runtime::Handle;
use tokio::sync::OnceCell;

pub use error::{CoreError, Result, UpstreamFailure, UpstreamKind};
/// The upstream client a [`Gateway`] is built on, and its settings: whoever builds a
/// gateway (the binary, a front-end's tests) needs no dependency on `hugbucket-upstream`.
pub use hugbucket_upstream::{HubClient, RetryConfig, UpstreamConfig};
pub use put::INGEST_BLOCK;
pub use shards::spawn_abortable;
pub use sidecar::sidecar_path;
pub use state::{MemoryState, SledState, StateStore};
pub use types::{
    BucketInfo, ByteRange, ByteStream, CopyMetadata, GetResult, ListPage, ListRequest,
    MultipartUpload, ObjectExtra, ObjectMeta, PartMeta, PutOptions, WriteCondition,
};

use crate::names::{etag, key_to_path, now_millis, parse_iso8601, validate_bucket};
use crate::shards::Stat;
use crate::ttl::TtlCache;

/// Configuration of the core.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// Directory for local durable state (multipart records).
    pub data_dir: PathBuf,
    /// Xorb uploads in flight per PUT (each holds up to one 64 MiB xorb).
    pub max_concurrent_xorb_uploads: usize,
    /// Reconstruction terms fetched ahead of the one being sent, per GET, at most (the
    /// bytes fetched ahead are bounded too, see `get`).
    pub get_prefetch_window: usize,
    /// Multipart uploads created longer than this ago are removed.
    pub multipart_expiry: Duration,
    /// Part entries of one bucket are registered by at most one shared `/batch` call per
    /// this interval (a part's acknowledgment waits for the call carrying its entry).
    pub part_record_interval: Duration,
    /// Recompute chunk hashes and the file hash on whole-object GETs.
    pub verify_reads: bool,
    /// Directory of the persistent chunk cache (`None` = no cache).
    pub cache_dir: Option<PathBuf>,
    /// Capacity of the chunk cache in bytes.
    pub cache_capacity: u64,
    /// How long file metadata (paths-info) is reused; our own writes invalidate it at once,
    /// other writers' changes (other nodes of a fleet included) show after at most this
    /// long. Zero: every HEAD/GET asks the Hub (read-after-write across nodes).
    pub metadata_ttl: Duration,
    /// How long a reconstruction (with its presigned fetch URLs) is reused; keep it well
    /// below the URLs' lifetime.
    pub reconstruction_ttl: Duration,
    /// One key shard with its own runtime pinned to each of these CPUs (empty: one shard,
    /// calls run where they are made).
    pub key_shard_cpus: Vec<usize>,
    /// Visibility of buckets created through the gateway (S3 CreateBucket, FTP MKD).
    /// Private by default: the Hub makes a bucket created without one public.
    pub bucket_visibility: Visibility,
}

impl CoreConfig {
    /// Defaults, with state under `data_dir`.
    pub fn new(data_dir: PathBuf) -> Self {
        CoreConfig {
            data_dir,
            max_concurrent_xorb_uploads: 1,
            get_prefetch_window: 16,
            multipart_expiry: Duration::from_secs(7 * 24 * 3600),
            part_record_interval: Duration::from_secs(1),
            verify_reads: true,
            cache_dir: None,
            cache_capacity: 10 << 30,
            metadata_ttl: Duration::from_secs(2),
            reconstruction_ttl: Duration::from_secs(60),
            key_shard_cpus: Vec::new(),
            bucket_visibility: Visibility::Private,
        }
    }
}

/// The gateway core. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    hub: HubClient,
    config: CoreConfig,
    namespace: OnceCell<String>,
    state: Arc<dyn StateStore>,
    /// CAS clients per (bucket id, scope): they cache tokens and detected API versions.
    cas: Mutex<HashMap<(String, bool), CasClient>>,
    /// Decoded xorb chunk ranges, across restarts.
    cache: Option<Arc<dyn ChunkCache>>,
    /// Per-key state (metadata, reconstructions, single flights, write order), by owner.
    shards: shards::KeyShards,
    /// Where bulk tasks (term fetches) run: the runtime the gateway was built on.
    work: Option<Handle>,
    /// PUTs and parts being ingested right now.
    uploads_in_flight: Arc<std::sync::atomic::AtomicUsize>,
    /// Multipart upload records read from buckets (they never change).
    upload_records: multipart::RecordCache,
    /// Held while an upload record is looked up at the Hub for a part.
    record_lookup: tokio::sync::Mutex<()>,
    /// Group commit of multipart part entries.
    part_records: Arc<multipart::Coalescer>,
    /// Whole-object reads aborted because the bytes read did not hash to the object's hash.
    read_hash_mismatches: Arc<std::sync::atomic::AtomicU64>,
    /// Xorb serialization buffers kept between PUTs (a fresh 64 MiB buffer is
    /// page-faulted in again by every PUT).
    xorb_buffers: Arc<BufferPool>,
    /// Metadata sidecar contents by their Xet hash.
    sidecars: sidecar::SidecarCache,
    /// Where the Hub listing behind a page that ended at a key can resume, for
    /// continuations that carry only the key (ListObjects V1 markers, `start-after`).
    list_resume: TtlCache<list::ResumeKey, String>,
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

    /// The shard owning `bucket/key`.
    pub fn owner(&self, bucket: &str, key: &str) -> usize {
        self.inner.shards.owner(bucket, key)
    }

    fn shard(&self, bucket: &str, path: &str) -> &shards::ShardState {
        // Paths and keys name the same object; the owner is computed from the key.
        let key = names::path_to_key(path);
        self.inner.shards.state(self.owner(bucket, &key))
    }

    /// The runtime of the shard owning `bucket/key`, to run a call about that key on
    /// (`None` when the shards have no runtimes). Counts the call for that shard.
    pub fn route_to_owner(&self, bucket: &str, key: &str) -> Option<Handle> {
        let i = self.owner(bucket, key);
        let handle = self.inner.shards.runtime(i)?.clone();
        self.inner
            .shards
            .state(i)
            .calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Some(handle)
    }

    /// Runs `fut`, a call about `bucket/key`, on the runtime of the shard owning that key
    /// (in place when the shards have no runtimes). Dropping the returned future aborts it.
    pub async fn on_owner<T, F>(&self, bucket: &str, key: &str, fut: F) -> Result<T>
    where
        F: std::future::Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        let Some(handle) = self.route_to_owner(bucket, key) else {
            return fut.await;
        };
        match spawn_abortable(&handle, fut).await {
            Ok(r) => r,
            Err(e) => Err(CoreError::Internal(format!("key shard task: {e}"))),
        }
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
        let ns = self
            .inner
            .namespace
            .get_or_try_init(|| async { self.inner.hub.namespace().await })
            .await?;
        Ok(ns.clone())
    }

    async fn bucket_id(&self, bucket: &str) -> Result<BucketId> {
        validate_bucket(bucket)?;
        let ns = self.namespace().await?;
        BucketId::new(&ns, bucket).map_err(|_| CoreError::InvalidBucketName(bucket.to_string()))
    }

    fn cas(&self, id: &BucketId, scope: TokenScope) -> CasClient {
        let key = (id.to_string(), matches!(scope, TokenScope::Write));
        let mut map = self.inner.cas.lock().expect("cas map lock");
        map.entry(key)
            .or_insert_with(|| self.inner.hub.cas(id, scope))
            .clone()
    }

    /// Maps "not found" from a bucket-scoped call to NoSuchBucket.
    fn bucket_err(bucket: &str) -> impl Fn(UpstreamError) -> CoreError + '_ {
        move |e| match e.root() {
            UpstreamError::NotFound(_) => CoreError::NoSuchBucket(bucket.to_string()),
            _ => e.into(),
        }
    }

    // ---------------------------------------------------------------- buckets

    /// All buckets of the namespace.
    pub async fn list_buckets(&self) -> Result<Vec<BucketInfo>> {
        let ns = self.namespace().await?;
        let all = self
            .inner
            .hub
            .list_buckets(&ns, None)?
            .collect_all()
            .await?;
        let mut out: Vec<BucketInfo> = all
            .into_iter()
            .filter_map(|b| {
                let name = b.id.split_once('/').map(|(_, n)| n.to_string())?;
                Some(BucketInfo {
                    name,
                    created: b
                        .created_at
                        .as_deref()
                        .and_then(parse_iso8601)
                        .unwrap_or(UNIX_EPOCH),
                })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Creates a bucket with the configured visibility (private unless configured public).
    pub async fn create_bucket(&self, bucket: &str) -> Result<()> {
        let id = self.bucket_id(bucket).await?;
        let options = CreateBucketOptions {
            visibility: Some(self.inner.config.bucket_visibility),
            ..CreateBucketOptions::default()
        };
        match self
            .inner
            .hub
            .create_bucket(id.namespace(), id.name(), &options)
            .await
        {
            Ok(_) => Ok(()),
            Err(UpstreamError::AlreadyExists { .. }) => {
                Err(CoreError::BucketAlreadyOwnedByYou(bucket.to_string()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Bucket info; NoSuchBucket when absent.
    pub async fn head_bucket(&self, bucket: &str) -> Result<BucketInfo> {
        let id = self.bucket_id(bucket).await?;
        let info = self
            .inner
            .hub
            .bucket_info(&id)
            .await
            .map_err(Self::bucket_err(bucket))?;
        Ok(BucketInfo {
            name: bucket.to_string(),
            created: info
                .created_at
                .as_deref()
                .and_then(parse_iso8601)
                .unwrap_or(UNIX_EPOCH),
        })
    }

    /// Deletes an empty bucket (BucketNotEmpty otherwise; folder markers count as objects,
    /// hidden gateway records such as stale sidecars do not).
    pub async fn delete_bucket(&self, bucket: &str) -> Result<()> {
        let id = self.bucket_id(bucket).await?;
        let mut pager = self.inner.hub.list_tree(&id, None, Some(true))?;
        while let Some(page) = pager.next_page().await.map_err(Self::bucket_err(bucket))? {
            let visible = page.iter().any(|e| match e {
                hugbucket_upstream::TreeEntry::File(f) => !names::is_hidden(&f.path),
                hugbucket_upstream::TreeEntry::Directory(d) => !names::is_hidden(&d.path),
            });
            if visible {
                return Err(CoreError::BucketNotEmpty(bucket.to_string()));
            }
        }
        self.inner
            .hub
            .delete_bucket(&id)
            .await
            .map_err(Self::bucket_err(bucket))
    }

    // ---------------------------------------------------------------- objects

    /// The Hub entries of the object at `path` and of its sidecar (cached per shard).
    async fn stat_path(&self, bucket: &str, id: &BucketId, path: &str) -> Result<Option<Stat>> {
        let cache_key = (bucket.to_string(), path.to_string());
        let shard = self.shard(bucket, path);
        if let Some(f) = shard.metadata.get(&cache_key) {
            return Ok(Some(f));
        }
        let epoch = shard.epoch();
        let found = self.fetch_stat(bucket, id, path).await?;
        if let Some(f) = &found {
            shard.cache_if_unchanged(epoch, cache_key, f.clone());
        }
        Ok(found)
    }

    /// Like [`Gateway::stat_path`], bypassing the cache: one paths-info call for the
    /// object and its sidecar.
    async fn fetch_stat(&self, bucket: &str, id: &BucketId, path: &str) -> Result<Option<Stat>> {
        let side = sidecar::sidecar_path(&names::path_to_key(path));
        let files = self
            .inner
            .hub
            .lookup(id, vec![path.to_string(), side.clone()])
            .await
            .map_err(Self::bucket_err(bucket))?;
        let mut object = None;
        let mut sidecar = None;
        for f in files {
            if f.path == path {
                object = Some(f);
            } else if f.path == side {
                sidecar = Some(f);
            }
        }
        Ok(object.map(|o| (o, sidecar)))
    }

    /// Listing metadata of an object (no sidecar: ETag parts from local records).
    fn meta_of(&self, bucket: &str, key: &str, f: &RemoteFile) -> ObjectMeta {
        let parts = self.multipart_parts_of(bucket, key, &f.xet_hash);
        ObjectMeta {
            key: key.to_string(),
            size: f.size,
            etag: etag(&f.xet_hash, parts),
            last_modified: f
                .mtime
                .as_deref()
                .or(f.uploaded_at.as_deref())
                .and_then(parse_iso8601)
                .unwrap_or(UNIX_EPOCH),
            content_type: f.content_type.clone(),
            xet_hash: f.xet_hash,
            extra: ObjectExtra::default(),
            parts: Vec::new(),
        }
    }

    /// Full metadata of an object: its Hub entry and its sidecar, if that still matches.
    async fn full_meta(
        &self,
        bucket: &str,
        id: &BucketId,
        key: &str,
        (f, side): &Stat,
    ) -> Result<ObjectMeta> {
        let mut meta = self.meta_of(bucket, key, f);
        if let Some(s) = self.load_sidecar(id, key, f, side.as_ref()).await? {
            meta.extra = s.extra.clone();
            if !s.parts.is_empty() {
                meta.etag = etag(&f.xet_hash, Some(s.parts.len() as u32));
                meta.parts = s.parts.clone();
            }
        }
        Ok(meta)
    }

    /// Metadata of an object.
    pub async fn head_object(&self, bucket: &str, key: &str) -> Result<ObjectMeta> {
        let id = self.bucket_id(bucket).await?;
        let path = key_to_path(key)?;
        match self.stat_path(bucket, &id, &path).await? {
            Some(stat) => self.full_meta(bucket, &id, key, &stat).await,
            None => {
                // Distinguish a missing bucket from a missing key.
                self.head_bucket(bucket).await?;
                Err(CoreError::NoSuchKey(key.to_string()))
            }
        }
    }

    /// Stores an object from a stream. Nothing is visible until the whole body arrived,
    /// every xorb and the shard were accepted and the path was registered.
    pub async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: ByteStream,
        opts: PutOptions,
    ) -> Result<ObjectMeta> {
        let _counted = UploadGuard::enter(&self.inner.uploads_in_flight);
        let id = self.bucket_id(bucket).await?;
        let path = key_to_path(key)?;
        // Concurrent uploads to the bucket share their commit's `/batch` call.
        let announced = self.inner.hub.expect_commit(&id);
        let cas = self.cas(&id, TokenScope::Write);
        // Fail fast (before reading the body) when the bucket does not exist.
        cas.token().await.map_err(Self::bucket_err(bucket))?;
        let ingested = put::ingest_and_upload(
            &cas,
            body,
            opts.size_hint,
            self.inner.config.max_concurrent_xorb_uploads,
            &self.inner.xorb_buffers,
        )
        .await?;
        cas.upload_shard(bytes::Bytes::from(ingested.output.shard.to_upload_bytes()))
            .await?;
        let hash = ingested.summary.file_hash;
        let mtime = opts.mtime_ms.unwrap_or_else(now_millis);
        let mut ops = vec![BatchOp::AddFile {
            path: path.clone(),
            xet_hash: hash,
            mtime,
            content_type: opts.content_type.clone(),
        }];
        ops.extend(
            self.stage_sidecar(&id, key, hash, mtime, &opts.extra, &[])
                .await?,
        );
        let with_sidecar = ops.len() > 1;
        drop(announced);
        let mut commit = self
            .register(&id, bucket, &path, ops, opts.condition.as_ref())
            .await?;
        self.forget_multipart_etag(bucket, key)?;
        if !with_sidecar {
            // The node knows what the key holds now: a HEAD/GET right after costs no Hub
            // call. (No sidecar written: any older one is stale, as for a lookup.)
            let file = RemoteFile {
                path,
                size: ingested.summary.size,
                xet_hash: hash,
                mtime: Some(names::format_iso8601_ms(mtime)),
                uploaded_at: None,
                content_type: opts.content_type.clone(),
            };
            commit.publish((file, None));
        }
        Ok(ObjectMeta {
            key: key.to_string(),
            size: ingested.summary.size,
            etag: etag(&hash, None),
            last_modified: UNIX_EPOCH + Duration::from_millis(mtime),
            content_type: opts.content_type,
            xet_hash: hash,
            extra: opts.extra,
            parts: Vec::new(),
        })
    }

    /// Takes `bucket/path`'s commit lock in its shard (see `shards`): commits of one key
    /// run one at a time; its cached metadata is invalidated at start and end.
    async fn commit_lock(&self, bucket: &str, path: &str) -> shards::CommitGuard<'_> {
        let key = (bucket.to_string(), path.to_string());
        self.shard(bucket, path).commit_lock(&key).await
    }

    /// THE commit entry point: applies `ops`, the batch operations of one commit of
    /// `bucket/path` (the object's `addFile`/`copyFile` and its sidecar's), under the key's
    /// commit lock, in one `/batch` call that concurrent commits of the bucket share (see
    /// [`HubClient::commit`]; a refused operation fails this commit only). The caller holds
    /// the returned guard while it updates the key's local records, and may
    /// [`publish`](shards::CommitGuard::publish) what the key now holds. `condition` is
    /// checked under the lock first, on a fresh paths-info answer: atomic against this
    /// node's writers only (the Hub's batch API has no compare-and-swap).
    async fn register(
        &self,
        id: &BucketId,
        bucket: &str,
        path: &str,
        ops: Vec<BatchOp>,
        condition: Option<&WriteCondition>,
    ) -> Result<shards::CommitGuard<'_>> {
        let commit = self.commit_lock(bucket, path).await;
        if let Some(c) = condition {
            self.check_condition(id, bucket, path, c).await?;
        }
        let failed = self
            .inner
            .hub
            .commit(id, ops)
            .await
            .map_err(Self::bucket_err(bucket))?;
        // Removing a finished upload's records is cleanup: their failures fail nothing.
        match failed
            .iter()
            .find(|f| !multipart::is_upload_record(&f.path))
        {
            None => Ok(commit),
            Some(f) => Err(CoreError::Internal(format!(
                "hub refused to register {}: {}",
                f.path, f.error
            ))),
        }
    }

    /// Checks a conditional write against the object now at `path`.
    async fn check_condition(
        &self,
        id: &BucketId,
        bucket: &str,
        path: &str,
        condition: &WriteCondition,
    ) -> Result<()> {
        let key = names::path_to_key(path);
        let current = self.fetch_stat(bucket, id, path).await?;
        match (condition, current) {
            (WriteCondition::IfNoneMatch, None) => Ok(()),
            (WriteCondition::IfNoneMatch, Some(_)) => Err(CoreError::PreconditionFailed(format!(
                "{key:?} exists (If-None-Match: *)"
            ))),
            (WriteCondition::IfMatch(_), None) => Err(CoreError::NoSuchKey(key)),
            (WriteCondition::IfMatch(want), Some(stat)) => {
                let meta = self.full_meta(bucket, id, &key, &stat).await?;
                let unquote = |s: &str| s.trim().trim_matches('"').to_string();
                if want.trim() == "*" || unquote(want) == unquote(&meta.etag) {
                    Ok(())
                } else {
                    Err(CoreError::PreconditionFailed(format!(
                        "{key:?} has ETag {} (If-Match: {want})",
                        meta.etag
                    )))
                }
            }
        }
    }

    /// Reads part `part_number` of an object (S3 `partNumber`): a part of a multipart
    /// object from its stored parts layout; part 1 of any other object is all of it.
    pub async fn get_object_part(
        &self,
        bucket: &str,
        key: &str,
        part_number: u32,
    ) -> Result<GetResult> {
        // The object may change between the lookup and the read: read again then.
        for _ in 0..3 {
            let meta = self.head_object(bucket, key).await?;
            let range = meta
                .part_range(part_number)
                .ok_or(CoreError::InvalidPartNumber {
                    part: part_number,
                    parts: meta.parts.len().max(1) as u32,
                })?;
            // Part 1 of a single-part object is a plain whole read.
            let range = match meta.parts.is_empty() {
                true => None,
                false => range.map(|(a, b)| ByteRange::FromTo(a, b)),
            };
            let got = self.get_object(bucket, key, range).await?;
            if got.meta.xet_hash == meta.xet_hash {
                return Ok(GetResult { meta, ..got });
            }
        }
        Err(CoreError::Internal(format!(
            "{key:?} kept changing during a part read"
        )))
    }

    /// Reads an object, or a byte range of it, as a stream.
    pub async fn get_object(
        &self,
        bucket: &str,
        key: &str,
        range: Option<ByteRange>,
    ) -> Result<GetResult> {
        let meta = self.head_object(bucket, key).await?;
        let resolved = match range {
            None => None,
            Some(r) => Some(
                r.resolve(meta.size)
                    .ok_or(CoreError::InvalidRange { size: meta.size })?,
            ),
        };
        let (start, end) = match resolved {
            Some(r) => r,
            None if meta.size == 0 => {
                return Ok(GetResult {
                    meta,
                    range: None,
                    body: Box::pin(futures::stream::empty()),
                });
            }
            None => (0, meta.size - 1),
        };
        let id = self.bucket_id(bucket).await?;
        let cas = self.cas(&id, TokenScope::Read);
        let recon_key = (meta.xet_hash, start, end);
        let shard = self.inner.shards.state(self.owner(bucket, key));
        let recon = match shard.reconstructions.get(&recon_key) {
            Some(r) => r,
            None => {
                let r = cas
                    .reconstruction(
                        &meta.xet_hash,
                        Some(hugbucket_upstream::ByteRange { start, end }),
                    )
                    .await?;
                shard.reconstructions.insert(recon_key, r.clone());
                r
            }
        };
        let whole = start == 0 && end + 1 == meta.size;
        let verify = (whole && self.inner.config.verify_reads).then_some(meta.xet_hash);
        let ctx = get::ReadCtx {
            cas,
            file: meta.xet_hash,
            cache: self.inner.cache.clone(),
            flights: shard.flights.clone(),
            runtime: self.inner.work.clone().unwrap_or_else(Handle::current),
            hash_mismatches: self.inner.read_hash_mismatches.clone(),
        };
        let body = get::reconstruct_stream(
            ctx,
            recon,
            start,
            end - start + 1,
            self.inner.config.get_prefetch_window,
            verify,
        );
        Ok(GetResult {
            meta,
            range: resolved,
            body: Box::pin(body),
        })
    }

    /// Copies an object with a batch `copyFile` (source bucket and content hash, as
    /// huggingface_hub sends it): no bytes move. The destination gets the source's
    /// metadata or, with [`CopyMetadata::Replace`], the given one (then its condition
    /// applies to the destination too); the content type goes along only when it differs
    /// from the source's.
    pub async fn copy_object(
        &self,
        src_bucket: &str,
        src_key: &str,
        dst_bucket: &str,
        dst_key: &str,
        metadata: CopyMetadata,
    ) -> Result<ObjectMeta> {
        let src = self.head_object(src_bucket, src_key).await?;
        let src_id = self.bucket_id(src_bucket).await?;
        let dst_id = self.bucket_id(dst_bucket).await?;
        let dst_path = key_to_path(dst_key)?;
        let (content_type, extra, mtime, condition) = match metadata {
            CopyMetadata::Copy => (
                src.content_type.clone(),
                src.extra.clone(),
                now_millis(),
                None,
            ),
            CopyMetadata::Replace(o) => (
                o.content_type.or(src.content_type.clone()),
                o.extra,
                o.mtime_ms.unwrap_or_else(now_millis),
                o.condition,
            ),
        };
        let changed_type = content_type
            .clone()
            .filter(|t| Some(t) != src.content_type.as_ref());
        let mut ops = vec![BatchOp::CopyFile {
            path: dst_path.clone(),
            xet_hash: src.xet_hash,
            mtime,
            source_repo_type: "bucket".into(),
            source_repo_id: src_id.to_string(),
            content_type: changed_type,
        }];
        ops.extend(
            self.stage_sidecar(&dst_id, dst_key, src.xet_hash, mtime, &extra, &src.parts)
                .await?,
        );
        let _commit = self
            .register(&dst_id, dst_bucket, &dst_path, ops, condition.as_ref())
            .await?;
        let parts = match src.parts.len() {
            0 => self.multipart_parts_of(src_bucket, src_key, &src.xet_hash),
            n => Some(n as u32),
        };
        self.set_multipart_etag(dst_bucket, dst_key, &src.xet_hash, parts)?;
        Ok(ObjectMeta {
            key: dst_key.to_string(),
            size: src.size,
            etag: etag(&src.xet_hash, parts),
            last_modified: UNIX_EPOCH + Duration::from_millis(mtime),
            content_type,
            xet_hash: src.xet_hash,
            extra,
            parts: src.parts,
        })
    }

    /// Deletes an object; deleting a missing key succeeds (S3 semantics).
    pub async fn delete_object(&self, bucket: &str, key: &str) -> Result<()> {
        let results = self.delete_objects(bucket, &[key.to_string()]).await?;
        results.into_iter().next().map(|(_, r)| r).unwrap_or(Ok(()))
    }

    /// Of the paths whose `deleteFile` the Hub reported failed, those that still exist (one
    /// paths-info call when any failed). A delete refused because the path does not exist
    /// ("not found", however the Hub words it) reached its goal: S3 and FTP count it done.
    async fn failed_deletes_present(
        &self,
        id: &BucketId,
        failed: &[hugbucket_upstream::BatchFailure],
    ) -> Result<std::collections::HashSet<String>> {
        if failed.is_empty() {
            return Ok(Default::default());
        }
        let paths: Vec<String> = failed.iter().map(|f| f.path.clone()).collect();
        let found = self.inner.hub.paths_info(id, &paths).await?;
        Ok(found.into_iter().map(|f| f.path).collect())
    }

    /// Deletes many objects with one batch per 1000; per-key results.
    pub async fn delete_objects(
        &self,
        bucket: &str,
        keys: &[String],
    ) -> Result<Vec<(String, Result<()>)>> {
        let id = self.bucket_id(bucket).await?;
        let mut results = Vec::with_capacity(keys.len());
        let mut ops = Vec::new();
        let mut paths = Vec::new();
        for key in keys {
            match key_to_path(key) {
                Ok(p) => {
                    ops.push(BatchOp::DeleteFile { path: p.clone() });
                    // The sidecar goes with its object; a missing one is no error.
                    ops.push(BatchOp::DeleteFile {
                        path: sidecar::sidecar_path(key),
                    });
                    paths.push((key.clone(), p));
                }
                Err(e) => results.push((key.clone(), Err(e))),
            }
        }
        if !ops.is_empty() {
            // Take the keys' commit locks in one global order (so two batches never wait
            // on each other crosswise); writes of these keys already started finish first.
            // They are held until the local records are updated too.
            let mut lock_paths: Vec<&str> = paths.iter().map(|(_, p)| p.as_str()).collect();
            lock_paths.sort_unstable();
            lock_paths.dedup();
            let mut _commits = Vec::with_capacity(lock_paths.len());
            for p in lock_paths {
                _commits.push(self.commit_lock(bucket, p).await);
            }
            // One commit of many keys: its operations go in one call (several when more
            // than a call takes), shared with other commits of the bucket.
            let failed = self
                .inner
                .hub
                .commit(&id, ops)
                .await
                .map_err(Self::bucket_err(bucket))?;
            let still_there = self.failed_deletes_present(&id, &failed).await?;
            for (key, path) in &paths {
                let failed = failed
                    .iter()
                    .find(|f| &f.path == path && still_there.contains(path));
                let r = match failed {
                    Some(f) => Err(CoreError::Internal(format!(
                        "hub refused to delete: {}",
                        f.error
                    ))),
                    None => self.forget_multipart_etag(bucket, key),
                };
                results.push((key.clone(), r));
            }
        }
        Ok(results)
    }
}
