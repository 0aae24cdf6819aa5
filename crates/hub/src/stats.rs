//! Request counters, exposed as JSON at `GET /api/_hugbucket/stats` (Hub token required) so
//! that other test suites can assert e.g. "the second GET fetched zero xorb ranges".

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value, json};

/// Every route the hub serves (also the unit of fault injection).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// `GET /api/whoami-v2`
    Whoami,
    /// `GET /api/_hugbucket/stats`
    Stats,
    /// `GET /api/agent-harnesses`
    AgentHarnesses,
    /// `POST /api/buckets/{ns}/{name}`
    BucketCreate,
    /// `GET /api/buckets/{ns}/{name}`
    BucketInfo,
    /// `GET /api/buckets/{ns}`
    BucketList,
    /// `DELETE /api/buckets/{ns}/{name}`
    BucketDelete,
    /// `PUT /api/buckets/{ns}/{name}/settings`
    BucketSettings,
    /// `POST /api/repos/move`
    RepoMove,
    /// `GET /api/buckets/{id}/tree[/{prefix}]`
    Tree,
    /// `POST /api/buckets/{id}/paths-info`
    PathsInfo,
    /// `POST /api/buckets/{id}/batch`
    Batch,
    /// `GET /api/buckets/{id}/xet-read-token`
    XetReadToken,
    /// `GET /api/buckets/{id}/xet-write-token`
    XetWriteToken,
    /// `GET /api/buckets/{id}/events`
    Events,
    /// `HEAD /buckets/{id}/resolve/{path}`
    ResolveHead,
    /// `GET /buckets/{id}/resolve/{path}`
    ResolveGet,
    /// `POST /v1/xorb-grants/default/{hash}`
    XorbGrant,
    /// `POST /v1/xorbs/default/{hash}`
    XorbUpload,
    /// `POST /v1/shards`
    ShardV1,
    /// `POST /v2/shards`
    ShardV2,
    /// `GET /v1/chunks/default/{hash}`
    DedupQuery,
    /// `GET /v1/reconstructions/{hash}`
    ReconV1,
    /// `GET /v2/reconstructions/{hash}`
    ReconV2,
    /// `GET /fetch/xorbs/{hash}`
    Fetch,
    /// `POST /v1/telemetry`
    Telemetry,
    /// Anything else.
    Unknown,
}

impl Route {
    /// All routes, in a fixed order.
    pub const ALL: [Route; 27] = [
        Route::Whoami,
        Route::Stats,
        Route::AgentHarnesses,
        Route::BucketCreate,
        Route::BucketInfo,
        Route::BucketList,
        Route::BucketDelete,
        Route::BucketSettings,
        Route::RepoMove,
        Route::Tree,
        Route::PathsInfo,
        Route::Batch,
        Route::XetReadToken,
        Route::XetWriteToken,
        Route::Events,
        Route::ResolveHead,
        Route::ResolveGet,
        Route::XorbGrant,
        Route::XorbUpload,
        Route::ShardV1,
        Route::ShardV2,
        Route::DedupQuery,
        Route::ReconV1,
        Route::ReconV2,
        Route::Fetch,
        Route::Telemetry,
        Route::Unknown,
    ];

    /// Stable snake_case name (stats keys, logs, `--faults` rules).
    pub fn name(self) -> &'static str {
        match self {
            Route::Whoami => "whoami",
            Route::Stats => "stats",
            Route::AgentHarnesses => "agent_harnesses",
            Route::BucketCreate => "bucket_create",
            Route::BucketInfo => "bucket_info",
            Route::BucketList => "bucket_list",
            Route::BucketDelete => "bucket_delete",
            Route::BucketSettings => "bucket_settings",
            Route::RepoMove => "repo_move",
            Route::Tree => "tree",
            Route::PathsInfo => "paths_info",
            Route::Batch => "batch",
            Route::XetReadToken => "xet_read_token",
            Route::XetWriteToken => "xet_write_token",
            Route::Events => "events",
            Route::ResolveHead => "resolve_head",
            Route::ResolveGet => "resolve_get",
            Route::XorbGrant => "xorb_grant",
            Route::XorbUpload => "xorb_upload",
            Route::ShardV1 => "shard_v1",
            Route::ShardV2 => "shard_v2",
            Route::DedupQuery => "dedup_query",
            Route::ReconV1 => "reconstruction_v1",
            Route::ReconV2 => "reconstruction_v2",
            Route::Fetch => "fetch",
            Route::Telemetry => "telemetry",
            Route::Unknown => "unknown",
        }
    }

    /// Parses a [`Route::name`].
    pub fn from_name(s: &str) -> Option<Route> {
        Route::ALL.into_iter().find(|r| r.name() == s)
    }

    fn index(self) -> usize {
        Route::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// Atomic counters.
#[derive(Default)]
pub struct Stats {
    /// Xorbs newly stored.
    pub xorb_uploads: AtomicU64,
    /// Bytes of xorbs newly stored (serialized, without footer).
    pub xorb_upload_bytes: AtomicU64,
    /// Xorb uploads of already-stored xorbs.
    pub xorb_uploads_existing: AtomicU64,
    /// Shards accepted.
    pub shard_uploads: AtomicU64,
    /// Files newly registered by shards.
    pub shard_files_registered: AtomicU64,
    /// Uploads rejected by verification (xorbs and shards).
    pub uploads_rejected: AtomicU64,
    /// Byte ranges served from fetch URLs.
    pub xorb_range_fetches: AtomicU64,
    /// Bytes served from fetch URLs.
    pub xorb_range_bytes: AtomicU64,
    /// Fetch requests with several ranges (answered multipart/byteranges).
    pub multirange_fetches: AtomicU64,
    /// Reconstruction answers.
    pub reconstructions: AtomicU64,
    /// Global dedup queries answered with a shard.
    pub dedup_hits: AtomicU64,
    /// Global dedup queries answered 404.
    pub dedup_misses: AtomicU64,
    /// Batch calls.
    pub batch_calls: AtomicU64,
    /// Batch operations applied (add/copy/delete).
    pub batch_ops: AtomicU64,
    /// Bytes served by resolve GETs.
    pub resolve_bytes: AtomicU64,
    /// Batch `copyFile` operations applied.
    pub copy_ops: AtomicU64,
    /// Fetch URLs refused as expired.
    pub fetch_expired: AtomicU64,
    /// Fetches refused because their Range differed from the signed one.
    pub fetch_range_refused: AtomicU64,
    by_route: [AtomicU64; Route::ALL.len()],
}

impl Stats {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts one request of `route`.
    pub fn count_route(&self, route: Route) {
        self.by_route[route.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Requests served for `route`.
    pub fn route_count(&self, route: Route) -> u64 {
        self.by_route[route.index()].load(Ordering::Relaxed)
    }

    /// All counters as JSON.
    pub fn to_json(&self) -> Value {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut routes = Map::new();
        for r in Route::ALL {
            let n = self.route_count(r);
            if n > 0 {
                routes.insert(r.name().to_string(), json!(n));
            }
        }
        json!({
            "xorb_uploads": g(&self.xorb_uploads),
            "xorb_upload_bytes": g(&self.xorb_upload_bytes),
            "xorb_uploads_existing": g(&self.xorb_uploads_existing),
            "shard_uploads": g(&self.shard_uploads),
            "shard_files_registered": g(&self.shard_files_registered),
            "uploads_rejected": g(&self.uploads_rejected),
            "xorb_range_fetches": g(&self.xorb_range_fetches),
            "xorb_range_bytes": g(&self.xorb_range_bytes),
            "multirange_fetches": g(&self.multirange_fetches),
            "reconstructions": g(&self.reconstructions),
            "dedup_hits": g(&self.dedup_hits),
            "dedup_misses": g(&self.dedup_misses),
            "batch_calls": g(&self.batch_calls),
            "batch_ops": g(&self.batch_ops),
            "resolve_bytes": g(&self.resolve_bytes),
            "copy_ops": g(&self.copy_ops),
            "fetch_expired": g(&self.fetch_expired),
            "fetch_range_refused": g(&self.fetch_range_refused),
            "requests": Value::Object(routes),
        })
    }
}
