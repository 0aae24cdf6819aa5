//! Protocol constants (spec §2.1, §4.4, §3.7).

/// Target chunk size of the CDC (64 KiB).
pub const TARGET_CHUNK_SIZE: usize = 65_536;
/// Smallest chunk the CDC cuts (except the final chunk of a file).
pub const MIN_CHUNK_SIZE: usize = TARGET_CHUNK_SIZE / 8;
/// Largest chunk the CDC produces.
pub const MAX_CHUNK_SIZE: usize = TARGET_CHUNK_SIZE * 2;
/// Gear hash match mask (top 16 bits).
pub const GEAR_MASK: u64 = 0xFFFF_0000_0000_0000;
/// Bytes at the start of each chunk that are never fed to the rolling hash.
pub const CHUNK_SKIP: usize = MIN_CHUNK_SIZE - 64 - 1;

/// Maximum uncompressed bytes in one xorb.
pub const MAX_XORB_BYTES: usize = 64 * 1024 * 1024;
/// Maximum number of chunks in one xorb.
pub const MAX_XORB_CHUNKS: usize = 8192;

/// A chunk is eligible for a global dedup query when `hash % this == 0`.
pub const GLOBAL_DEDUP_CHUNK_MODULUS: u64 = 1024;
/// Minimum number of chunks between two global dedup queries of one file.
pub const MIN_SPACING_BETWEEN_GLOBAL_DEDUP_QUERIES: usize = 256;

/// Chunks per block for which the compression scheme is predicted once.
pub const COMPRESSION_SCHEME_RETEST_INTERVAL: usize = 32;
