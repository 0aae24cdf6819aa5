//! The core's one error type. Front-ends map it to protocol errors in one place each
//! (`hugbucket-s3`'s `core_error` module, `hugbucket-ftp`'s `error` module).
//!
//! Upstream failures are classified here, into [`UpstreamKind`] plus a retryable tag, so
//! that the front-ends depend on the core alone and never on the upstream client's error
//! type (the layer rule checked by `hugbucket/tests/layers.rs`).

use std::time::Duration;

use hugbucket_upstream::UpstreamError;
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
    Upstream(UpstreamFailure),
    /// Data read back from the CAS did not verify (never served).
    #[error("data integrity: {0}")]
    Integrity(String),
    /// The runtime that was to run the call is shutting down.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A fault of ours (local state, a task that panicked, ...).
    #[error("internal error: {0}")]
    Internal(String),
}

impl CoreError {
    /// Whether retrying the same request later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            CoreError::Upstream(f) => f.retryable,
            CoreError::Integrity(_) | CoreError::Unavailable(_) => true,
            _ => false,
        }
    }
}

/// A failed Hub or CAS call, as the core reports it.
#[derive(Debug, Clone, Error)]
#[error("{message}")]
pub struct UpstreamFailure {
    /// What went wrong, as far as a front-end needs to tell.
    pub kind: UpstreamKind,
    /// Whether repeating the request later may succeed (the upstream client has already
    /// retried within its budget).
    pub retryable: bool,
    /// The upstream client's description (operation, status, message), for logs.
    pub message: String,
}

/// The classes of upstream failure the front-ends map to protocol errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UpstreamKind {
    /// The Hub or CAS could not be reached, or did not answer in time.
    Unavailable,
    /// The Hub or CAS rate-limited us (429), possibly saying for how long.
    SlowDown {
        /// The delay asked for with `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// The Hub or CAS failed on its side: 5xx, a dropped connection, a wrong-sized range, a
    /// body we cannot decode or that is too large, a shard refused for now.
    Server,
    /// The gateway's Hub token was refused (401).
    Unauthorized,
    /// The gateway's Hub token may not do this (403), or a fetch URL expired.
    Forbidden,
    /// A resource the core expected is missing (404).
    NotFound,
    /// The resource is in a conflicting state (409).
    Conflict,
    /// The requested range starts beyond the end of the file (416).
    RangeNotSatisfiable,
    /// The upstream refused a request the core built (400, an unexpected status, a rejected
    /// shard, a bad client configuration): a fault of ours.
    Rejected,
}

impl From<&UpstreamError> for UpstreamKind {
    fn from(e: &UpstreamError) -> Self {
        use UpstreamError as U;
        match e.root() {
            U::Connect { .. } | U::Timeout { .. } => UpstreamKind::Unavailable,
            U::RateLimited(f) => UpstreamKind::SlowDown {
                retry_after: f.retry_after,
            },
            U::Server(_)
            | U::Transport { .. }
            | U::RangeMismatch { .. }
            | U::Decode { .. }
            | U::TooLarge { .. }
            | U::ShardRejected {
                retryable: true, ..
            } => UpstreamKind::Server,
            U::Unauthorized(_) => UpstreamKind::Unauthorized,
            U::Forbidden(_) | U::FetchUrlExpired(_) => UpstreamKind::Forbidden,
            U::NotFound(_) => UpstreamKind::NotFound,
            U::Conflict(_) | U::AlreadyExists { .. } => UpstreamKind::Conflict,
            U::RangeNotSatisfiable(_) => UpstreamKind::RangeNotSatisfiable,
            _ => UpstreamKind::Rejected,
        }
    }
}

impl From<&UpstreamError> for UpstreamFailure {
    fn from(e: &UpstreamError) -> Self {
        UpstreamFailure {
            kind: UpstreamKind::from(e),
            retryable: e.is_retryable(),
            message: e.to_string(),
        }
    }
}

impl From<UpstreamError> for CoreError {
    fn from(e: UpstreamError) -> Self {
        CoreError::Upstream(UpstreamFailure::from(&e))
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

#[cfg(test)]
mod tests {
    use super::*;
    use hugbucket_upstream::HttpFailure;

    #[test]
    fn upstream_failures_are_classified() {
        let status =
            |s: u16| CoreError::from(UpstreamError::from_status(HttpFailure::bare("t", s)));
        let kind = |e: &CoreError| match e {
            CoreError::Upstream(f) => f.kind,
            other => panic!("not an upstream failure: {other:?}"),
        };
        let cases: &[(u16, UpstreamKind, bool)] = &[
            (400, UpstreamKind::Rejected, false),
            (401, UpstreamKind::Unauthorized, false),
            (403, UpstreamKind::Forbidden, false),
            (404, UpstreamKind::NotFound, false),
            (409, UpstreamKind::Conflict, false),
            (416, UpstreamKind::RangeNotSatisfiable, false),
            (429, UpstreamKind::SlowDown { retry_after: None }, true),
            (500, UpstreamKind::Server, true),
            (501, UpstreamKind::Server, false),
            (503, UpstreamKind::Server, true),
        ];
        for &(s, k, retryable) in cases {
            let e = status(s);
            assert_eq!((kind(&e), e.is_retryable()), (k, retryable), "{s}");
            assert!(e.to_string().contains(&s.to_string()), "{e}");
        }
        let mut limited = HttpFailure::bare("t", 429);
        limited.retry_after = Some(Duration::from_secs(7));
        let e = CoreError::from(UpstreamError::from_status(limited.clone()));
        assert_eq!(
            kind(&e),
            UpstreamKind::SlowDown {
                retry_after: Some(Duration::from_secs(7))
            }
        );
        // The failure of a coalesced call, shared by every commit in it, classifies as its
        // root.
        let shared =
            UpstreamError::Shared(std::sync::Arc::new(UpstreamError::from_status(limited)));
        assert_eq!(
            kind(&CoreError::from(shared)),
            UpstreamKind::SlowDown {
                retry_after: Some(Duration::from_secs(7))
            }
        );
        let e = CoreError::from(UpstreamError::ShardRejected {
            message: "busy".into(),
            retryable: true,
        });
        assert_eq!((kind(&e), e.is_retryable()), (UpstreamKind::Server, true));
    }
}
