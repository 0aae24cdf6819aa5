//! The engine's one error type.

use thiserror::Error;

/// Errors produced by parsing or validating Xet data. All of them mean "the input bytes are
/// not valid"; none is retryable.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EngineError {
    /// A hash string is not 64 hex digits.
    #[error("invalid xet hash string: {0}")]
    InvalidHashString(String),
    /// A xorb or chunk record is malformed.
    #[error("invalid xorb: {0}")]
    InvalidXorb(String),
    /// A chunk payload could not be decompressed, or decompressed to the wrong size.
    #[error("invalid chunk compression: {0}")]
    Decompression(String),
    /// A shard is malformed.
    #[error("invalid shard: {0}")]
    InvalidShard(String),
    /// A hash recomputed from data does not match the claimed one.
    #[error("hash mismatch: {what}: expected {expected}, computed {computed}")]
    HashMismatch {
        /// What was being checked (e.g. "xorb hash").
        what: &'static str,
        /// The claimed hash.
        expected: String,
        /// The hash computed from the data.
        computed: String,
    },
    /// A size or count limit was exceeded.
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),
}

/// Result alias for engine operations.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;
