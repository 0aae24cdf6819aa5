//! The cache crate's error type.

use std::io;
use std::path::PathBuf;

/// Errors returned by the cache.
///
/// Reads never return errors: a missing, corrupt or unreadable entry is a miss (and a corrupt
/// one is dropped and counted). Errors come from writes, opening and flushing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// A file system operation on the cache directory failed.
    #[error("cache I/O on {path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The index store failed.
    #[error("cache index: {0}")]
    Index(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A `put` whose chunk lengths do not describe its data.
    #[error("invalid cache entry: {0}")]
    InvalidEntry(String),
    /// A `put` larger than the whole cache capacity.
    #[error("cache entry of {len} bytes exceeds the capacity of {capacity} bytes")]
    EntryTooLarge {
        /// Bytes the entry would take on disk.
        len: u64,
        /// The configured capacity.
        capacity: u64,
    },
    /// A configuration value that cannot be used.
    #[error("invalid cache configuration: {0}")]
    Config(String),
}

impl CacheError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        CacheError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = CacheError> = std::result::Result<T, E>;
