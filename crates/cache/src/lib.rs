//! Persistent xorb chunk cache for the gateway's GET path.
//!
//! - [`ChunkCache`]: the contract; [`DiskCache`]: its persistent implementation (memory-mapped
//!   append-only segment files + an [`IndexStore`], sled by default, [`MemoryIndex`] for tests).
//! - [`CacheCollector`]: the counters as `prometheus-client` families (`hugbucket_cache_*`).
//!
//! # What is cached
//!
//! An entry is keyed by a xorb hash and a chunk index range `[start, end)`
//! ([`ChunkRangeKey`]): exactly what a reconstruction term, or a fetch-info entry, covers
//! (spec §6.5). Its value is the **decoded** (uncompressed) bytes of those chunks plus each
//! chunk's length. Decoded rather than the raw chunk records because a hit is then a
//! zero-copy slice of a mapped file handed straight to the response body: no LZ4 work per
//! GET, and any sub-range of chunks is a slice too (so a term inside a cached fetch range
//! hits). The price is disk space: up to ~2× for compressible data, none for the
//! incompressible weights that dominate buckets.
//!
//! # Guarantees
//!
//! Every record carries a CRC-32 over its key, lengths and data, checked on every read: a
//! get returns the bytes that were put for that key, or nothing. Corrupt or truncated data
//! (bit rot, a power cut) becomes a miss, the entry is dropped and counted, and a restart
//! reopens warm with every entry that still verifies. The live segment bytes stay within
//! the capacity plus one segment.
//!
//! # Blocking
//!
//! All methods are synchronous. A hit reads from a memory map, which may fault pages in from
//! disk; a put writes a file and an index entry. Async callers on a latency-sensitive
//! executor should run puts (and gets that are likely cold) on a blocking pool.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod config;
mod disk;
mod error;
mod index;
mod key;
mod metrics;
mod mmap;
mod segment;

pub use bytes::Bytes;
pub use config::{CacheConfig, DEFAULT_SEGMENT_SIZE, MIN_AUTO_SEGMENT_SIZE};
pub use disk::DiskCache;
pub use error::{CacheError, Result};
pub use index::{IndexOp, IndexStore, MemoryIndex, SledIndex};
pub use key::ChunkRangeKey;
pub use metrics::{CacheCollector, CacheStats};

/// A cache of decoded xorb chunk ranges.
///
/// Contract:
/// - a `put` is **not** required to make the next `get` hit (the entry may be rejected,
///   evicted, or dropped as corrupt at any time);
/// - a `get` never returns bytes that differ from what was `put` for that key: for a key
///   `[s, e)` it returns the decoded bytes of exactly chunks `s..e`, served from an entry
///   for that key or from any entry whose range covers it;
/// - reads never fail: anything wrong is a miss;
/// - all methods may be called from many threads at once.
pub trait ChunkCache: Send + Sync {
    /// The decoded bytes of chunks `[key.start, key.end)` of `key.xorb`, if cached.
    fn get(&self, key: &ChunkRangeKey) -> Option<Bytes>;

    /// Like [`ChunkCache::get`], plus the uncompressed length of each chunk (one per chunk
    /// of `key`, summing to the bytes' length), so that a reader can recompute the chunk
    /// hashes of what it serves.
    fn get_chunks(&self, key: &ChunkRangeKey) -> Option<(Bytes, Vec<u32>)>;

    /// Whether a get of `key` would find an entry (without reading or verifying it, and
    /// without counting a hit or a miss or touching recency).
    fn contains(&self, key: &ChunkRangeKey) -> bool;

    /// Stores `data`, the decoded bytes of chunks `[key.start, key.end)`, whose individual
    /// uncompressed lengths are `chunk_lens` (one per chunk, summing to `data.len()`).
    /// A put of a key already covered by an entry does nothing.
    fn put(&self, key: &ChunkRangeKey, chunk_lens: &[u32], data: &[u8]) -> Result<()> {
        self.put_pieces(key, chunk_lens, &[data])
    }

    /// [`ChunkCache::put`] of the concatenation of `pieces`, without concatenating them
    /// first (a reader decoding chunk by chunk hands over its chunks as they are).
    fn put_pieces(&self, key: &ChunkRangeKey, chunk_lens: &[u32], pieces: &[&[u8]]) -> Result<()>;

    /// Drops every entry a get of `key` could be served from: the one stored under `key`
    /// and any covering it (so that bytes found wrong are never served again).
    fn remove(&self, key: &ChunkRangeKey) -> Result<()>;

    /// Current counters and gauges.
    fn stats(&self) -> CacheStats;

    /// Counts one xorb range fetched upstream after a miss (`bytes` on the wire), so that
    /// one Prometheus family reports both sides.
    fn record_upstream_fetch(&self, bytes: u64);

    /// Makes the cache's state durable (recency included). Call periodically and at
    /// shutdown; without it an unclean shutdown loses recent entries and recency, never
    /// correctness.
    fn flush(&self) -> Result<()>;
}
