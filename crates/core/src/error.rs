//! The core's one error type. Front-ends map it to protocol errors in one place each
//! (`hugbucket-s3`'s error module, `hugbucket-ftp`'s error module).

use hugbucket_upstream::{Fault, UpstreamError};
use thiserror::Error;

/// Errors of object operations.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CoreError {
    /// The bucket does not exist.
    #[error("no such bucket: {0}")]
    NoSuchBucket(String),
    /// The key does not exist.
    #[error("no such key: {0}")]
    NoSuchKey(String),
    /// CreateBucket on a bucket that already exists (all buckets are the caller's own).
    #[error("bucket already exists: {0}")]
    BucketAlreadyOwnedByYou(String),
    /// DeleteBucket on a bucket that still holds objects.
    #[error("bucket not empty: {0}")]
    BucketNotEmpty(String),
    /// The bucket name is not valid.
    #[error("invalid bucket name: {0}")]
    InvalidBucketName(String),
    /// The key is not valid (empty, too long, not storable).
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// The requested range starts at or beyond the end of the object.
    #[error("range not satisfiable for an object of {size} bytes")]
    InvalidRange {
        /// Object size.
        size: u64,
    },
    /// The multipart upload id is unknown (or was aborted / expired).
    #[error("no such upload: {0}")]
    NoSuchUpload(String),
    /// A listed part was not uploaded, or its ETag does not match.
    #[error("invalid part: {0}")]
    InvalidPart(String),
    /// Parts are not listed in ascending order.
    #[error("parts must be listed in ascending order")]
    InvalidPartOrder,
    /// A part other than the last is smaller than the 5 MiB minimum.
    #[error("a part other than the last is smaller than 5 MiB")]
    EntityTooSmall,
    /// A conditional write's condition (`If-None-Match: *`, `If-Match`) did not hold.
    #[error("precondition failed: {0}")]
    PreconditionFailed(String),
    /// `partNumber` names a part the object does not have.
    #[error("no part {part}: the object has {parts}")]
    InvalidPartNumber {
        /// Requested part.
        part: u32,
        /// Parts the object has.
        parts: u32,
    },
    /// A request argument is invalid.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The client's body ended early, ran past its declared length, or failed.
    #[error("incomplete body: {0}")]
    IncompleteBody(String),
    /// The upstream Hub or CAS failed.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// Data read back from the CAS did not verify (never served).
    #[error("data integrity: {0}")]
    Integrity(String),
    /// A fault of ours (local state, a task that panicked, ...).
    #[error("internal error: {0}")]
    Internal(String),
}

impl CoreError {
    /// Whether retrying the same request later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            CoreError::Upstream(e) => e.is_retryable(),
            CoreError::Integrity(_) => true,
            _ => false,
        }
    }

    /// Whose fault this is.
    pub fn fault(&self) -> Fault {
        match self {
            CoreError::Upstream(e) => e.fault(),
            CoreError::Integrity(_) => Fault::Upstream,
            CoreError::Internal(_) => Fault::Internal,
            _ => Fault::Client,
        }
    }
}

impl From<hugbucket_engine::EngineError> for CoreError {
    fn from(e: hugbucket_engine::EngineError) -> Self {
        CoreError::Integrity(e.to_string())
    }
}

impl From<sled::Error> for CoreError {
    fn from(e: sled::Error) -> Self {
        CoreError::Internal(format!("local state: {e}"))
    }
}

/// Result alias.
pub type Result<T, E = CoreError> = std::result::Result<T, E>;
