//! The core's configuration.

use std::path::PathBuf;
use std::time::Duration;

use hugbucket_upstream::Visibility;

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
