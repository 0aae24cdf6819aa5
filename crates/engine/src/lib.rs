//! Pure implementation of the Xet content-addressed storage formats and pipelines.
//!
//! This crate has no async runtime and performs no network or file I/O of its own
//! (apart from what callers feed it). Everything here must be byte-for-byte compatible
//! with Hugging Face's `hf_xet` client; see `../shared/spec/xet-protocol.md`.
//!
//! Modules:
//! - [`hash`]: the 32-byte [`XetHash`] and every keyed BLAKE3 construction (chunk, Merkle,
//!   file, verification hashes).
//! - [`chunking`]: streaming gearhash content-defined chunking.
//! - [`compression`]: chunk compression schemes (none, LZ4 frame, ByteGrouping4 + LZ4).
//! - [`xorb`]: xorb serialization and parsing (with and without footer).
//! - [`shard`]: shard (MDB) writer and reader.
//! - [`ingest`]: the streaming upload pipeline (bytes in, xorbs + file info out).
//! - [`crc64`]: CRC-64/NVME, used by xorb upload grants.
//! - [`buffers`]: a pool of large buffers reused across uploads.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod buffers;
pub mod chunking;
pub mod compression;
pub mod constants;
pub mod crc64;
pub mod error;
pub mod hash;
pub mod ingest;
pub mod shard;
pub mod xorb;

pub use error::{EngineError, Result};
pub use hash::XetHash;
