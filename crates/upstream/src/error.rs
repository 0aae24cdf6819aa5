//! The one error type of the upstream client.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;

/// Who is to blame for a failed upstream call.
///
/// The gateway uses this to pick the status it returns to its own clients: `Client` faults
/// map to 4xx (the caller asked for something missing, forbidden or conflicting),
/// `Upstream` faults map to 502/503/504 (Hugging Face misbehaved or is unreachable) and
/// `Internal` faults map to 500 (we sent a request the upstream could not accept).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// The upstream service failed, is unreachable, or answered something we cannot parse.
    Upstream,
    /// The request of the gateway's own client cannot be satisfied (not found, conflict,
    /// bad credentials, unsatisfiable range, invalid argument).
    Client,
    /// A bug on our side: the upstream rejected a request we built as malformed.
    Internal,
}

/// Details of an HTTP answer with an unexpected status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpFailure {
    /// Which call failed (e.g. `"bucket info"`).
    pub op: &'static str,
    /// The HTTP status code.
    pub status: u16,
    /// The `X-Error-Code` response header, when present (e.g. `RepoNotFound`).
    pub error_code: Option<String>,
    /// `X-Error-Message`, else the `error`/`message` field of a JSON body, else the start of
    /// the body text (at most 512 bytes).
    pub message: String,
    /// How long the server asked to wait: the `RateLimit` reset when no call remains in
    /// the window, else `Retry-After` (seconds form only).
    pub retry_after: Option<Duration>,
}

impl HttpFailure {
    /// A failure with just an operation name and a status (no headers or body).
    pub fn bare(op: &'static str, status: u16) -> Self {
        HttpFailure {
            op,
            status,
            error_code: None,
            message: String::new(),
            retry_after: None,
        }
    }
}

impl fmt::Display for HttpFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: HTTP {}", self.op, self.status)?;
        if let Some(code) = &self.error_code {
            write!(f, " ({code})")?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

/// Every failure of a Hub or CAS call.
///
/// [`UpstreamError::is_retryable`] says whether repeating the same request may succeed
/// (the client's own retry loop already did so, within its budget); [`UpstreamError::fault`]
/// says who is to blame. [`UpstreamError::status`] gives the HTTP status when there is one.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum UpstreamError {
    /// 404: the bucket, path, file hash or route does not exist.
    #[error("not found: {0}")]
    NotFound(HttpFailure),
    /// 409: the resource is in a conflicting state.
    #[error("conflict: {0}")]
    Conflict(HttpFailure),
    /// `create_bucket` got 409: the bucket already exists. `url` is the `url` field of the
    /// 409 body (empty when the body had none).
    #[error("bucket already exists: {url}")]
    AlreadyExists {
        /// The bucket URL reported by the Hub.
        url: String,
    },
    /// 401: missing or invalid credentials. A CAS call answered 401 has already been sent
    /// again once with a newly fetched xet token, so this means the Hub token or the bucket
    /// access itself is refused.
    #[error("unauthorized: {0}")]
    Unauthorized(HttpFailure),
    /// 403 on a Hub or CAS API call: authenticated but not allowed.
    #[error("forbidden: {0}")]
    Forbidden(HttpFailure),
    /// 403 on a presigned xorb fetch URL: the URL expired. Re-query the reconstruction to get
    /// fresh URLs, then retry.
    #[error("fetch url expired or forbidden: {0}")]
    FetchUrlExpired(HttpFailure),
    /// 416: the requested range starts beyond the end of the file.
    #[error("range not satisfiable: {0}")]
    RangeNotSatisfiable(HttpFailure),
    /// 400 (and 422 outside the batch call): the upstream says our request was malformed.
    #[error("bad request: {0}")]
    BadRequest(HttpFailure),
    /// 429: rate limited (retryable).
    #[error("rate limited: {0}")]
    RateLimited(HttpFailure),
    /// 5xx or 408 (retryable, except 501 Not Implemented, which signals an API version the
    /// server does not offer).
    #[error("upstream server error: {0}")]
    Server(HttpFailure),
    /// Any other unexpected status.
    #[error("unexpected status: {0}")]
    Status(HttpFailure),
    /// The TCP/TLS connection could not be established (retryable).
    #[error("{op}: cannot connect: {source}")]
    Connect {
        /// Which call failed.
        op: &'static str,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The connect or read timeout elapsed (retryable).
    #[error("{op}: timed out: {source}")]
    Timeout {
        /// Which call failed.
        op: &'static str,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The connection failed after it was established, e.g. dropped in the middle of a body
    /// (retryable).
    #[error("{op}: transport error: {source}")]
    Transport {
        /// Which call failed.
        op: &'static str,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// A ranged fetch returned a different range or length than requested (retryable, as
    /// hf_xet treats a wrong-size body).
    #[error("{op}: unexpected range: {message}")]
    RangeMismatch {
        /// Which call failed.
        op: &'static str,
        /// What was wrong.
        message: String,
    },
    /// The upstream answered with a body we cannot parse.
    #[error("{op}: cannot decode response: {message}")]
    Decode {
        /// Which call failed.
        op: &'static str,
        /// What was wrong.
        message: String,
    },
    /// A response body exceeded the configured size limit.
    #[error("{op}: response body larger than {limit} bytes")]
    TooLarge {
        /// Which call failed.
        op: &'static str,
        /// The limit in bytes.
        limit: u64,
    },
    /// `/v2/shards` answered 200 and then an `error` frame.
    #[error("shard rejected: {message} (retryable: {retryable})")]
    ShardRejected {
        /// The message of the error frame.
        message: String,
        /// The `retryable` flag of the error frame.
        retryable: bool,
    },
    /// An argument given to the client is invalid (bad bucket id, empty range, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The client could not be built (TLS setup, bad endpoint URL).
    #[error("client configuration error: {0}")]
    Config(String),
    /// The failure of one call made on behalf of several requests (coalesced commits or
    /// lookups, see `crate::coalesce`): each of them gets it. Every method answers as the
    /// inner error; [`UpstreamError::root`] unwraps it.
    #[error("{0}")]
    Shared(Arc<UpstreamError>),
}

/// Result alias for upstream calls.
pub type Result<T, E = UpstreamError> = std::result::Result<T, E>;

impl UpstreamError {
    /// True when repeating the same request may succeed: connect errors, timeouts,
    /// interrupted transfers, 5xx, 408, 429, a wrong-sized ranged fetch, and shard error
    /// frames flagged retryable.
    pub fn is_retryable(&self) -> bool {
        match self {
            UpstreamError::Shared(e) => e.is_retryable(),
            UpstreamError::Server(f) => f.status != 501,
            UpstreamError::RateLimited(_)
            | UpstreamError::Connect { .. }
            | UpstreamError::Timeout { .. }
            | UpstreamError::Transport { .. }
            | UpstreamError::RangeMismatch { .. } => true,
            UpstreamError::ShardRejected { retryable, .. } => *retryable,
            _ => false,
        }
    }

    /// Who is to blame; see [`Fault`].
    pub fn fault(&self) -> Fault {
        match self {
            UpstreamError::Shared(e) => e.fault(),
            UpstreamError::NotFound(_)
            | UpstreamError::Conflict(_)
            | UpstreamError::AlreadyExists { .. }
            | UpstreamError::Unauthorized(_)
            | UpstreamError::Forbidden(_)
            | UpstreamError::RangeNotSatisfiable(_)
            | UpstreamError::InvalidArgument(_) => Fault::Client,
            UpstreamError::BadRequest(_) | UpstreamError::Status(_) | UpstreamError::Config(_) => {
                Fault::Internal
            }
            UpstreamError::ShardRejected { retryable, .. } => {
                if *retryable {
                    Fault::Upstream
                } else {
                    Fault::Internal
                }
            }
            UpstreamError::FetchUrlExpired(_)
            | UpstreamError::RateLimited(_)
            | UpstreamError::Server(_)
            | UpstreamError::Connect { .. }
            | UpstreamError::Timeout { .. }
            | UpstreamError::Transport { .. }
            | UpstreamError::RangeMismatch { .. }
            | UpstreamError::Decode { .. }
            | UpstreamError::TooLarge { .. } => Fault::Upstream,
        }
    }

    /// The HTTP status of the failed answer, when the failure is an HTTP status.
    pub fn status(&self) -> Option<u16> {
        match self.root() {
            UpstreamError::AlreadyExists { .. } => Some(409),
            e => e.http_failure().map(|f| f.status),
        }
    }

    /// The details of the HTTP answer, when the failure is an HTTP status.
    pub fn http_failure(&self) -> Option<&HttpFailure> {
        match self {
            UpstreamError::Shared(e) => e.http_failure(),
            UpstreamError::NotFound(f)
            | UpstreamError::Conflict(f)
            | UpstreamError::Unauthorized(f)
            | UpstreamError::Forbidden(f)
            | UpstreamError::FetchUrlExpired(f)
            | UpstreamError::RangeNotSatisfiable(f)
            | UpstreamError::BadRequest(f)
            | UpstreamError::RateLimited(f)
            | UpstreamError::Server(f)
            | UpstreamError::Status(f) => Some(f),
            _ => None,
        }
    }

    /// The error itself, or the shared one inside [`UpstreamError::Shared`].
    pub fn root(&self) -> &UpstreamError {
        match self {
            UpstreamError::Shared(e) => e.root(),
            e => e,
        }
    }

    /// The delay the server asked for (`RateLimit` reset or `Retry-After`), if any.
    pub fn retry_after(&self) -> Option<Duration> {
        self.http_failure().and_then(|f| f.retry_after)
    }

    /// Maps an HTTP status to the matching variant (403 becomes [`UpstreamError::Forbidden`];
    /// fetch calls turn it into [`UpstreamError::FetchUrlExpired`] themselves).
    pub fn from_status(failure: HttpFailure) -> Self {
        match failure.status {
            400 | 422 => UpstreamError::BadRequest(failure),
            401 => UpstreamError::Unauthorized(failure),
            403 => UpstreamError::Forbidden(failure),
            404 => UpstreamError::NotFound(failure),
            408 => UpstreamError::Server(failure),
            409 => UpstreamError::Conflict(failure),
            416 => UpstreamError::RangeNotSatisfiable(failure),
            429 => UpstreamError::RateLimited(failure),
            500..=599 => UpstreamError::Server(failure),
            _ => UpstreamError::Status(failure),
        }
    }

    /// Classifies a reqwest transport error.
    pub(crate) fn from_reqwest(op: &'static str, source: reqwest::Error) -> Self {
        if source.is_timeout() {
            UpstreamError::Timeout { op, source }
        } else if source.is_connect() {
            UpstreamError::Connect { op, source }
        } else if source.is_builder() {
            UpstreamError::Config(format!("{op}: {source}"))
        } else {
            UpstreamError::Transport { op, source }
        }
    }

    pub(crate) fn decode(op: &'static str, message: impl fmt::Display) -> Self {
        UpstreamError::Decode {
            op,
            message: message.to_string(),
        }
    }
}

/// Whether an HTTP status is retryable on its own (5xx except 501, 408, 429).
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502..=599)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(status: u16) -> HttpFailure {
        HttpFailure::bare("test", status)
    }

    #[test]
    fn status_classification() {
        let cases: &[(u16, bool, Fault)] = &[
            (400, false, Fault::Internal),
            (401, false, Fault::Client),
            (403, false, Fault::Client),
            (404, false, Fault::Client),
            (405, false, Fault::Internal),
            (408, true, Fault::Upstream),
            (409, false, Fault::Client),
            (416, false, Fault::Client),
            (422, false, Fault::Internal),
            (429, true, Fault::Upstream),
            (500, true, Fault::Upstream),
            (501, false, Fault::Upstream),
            (502, true, Fault::Upstream),
            (503, true, Fault::Upstream),
            (504, true, Fault::Upstream),
        ];
        for &(status, retryable, fault) in cases {
            let err = UpstreamError::from_status(failure(status));
            assert_eq!(err.is_retryable(), retryable, "status {status}");
            assert_eq!(err.fault(), fault, "status {status}");
            assert_eq!(err.status(), Some(status));
            assert_eq!(is_retryable_status(status), retryable, "status {status}");
        }
    }

    #[test]
    fn non_http_variants() {
        let e = UpstreamError::AlreadyExists { url: "u".into() };
        assert_eq!(e.status(), Some(409));
        assert_eq!(e.fault(), Fault::Client);
        let e = UpstreamError::ShardRejected {
            message: "x".into(),
            retryable: true,
        };
        assert!(e.is_retryable());
        assert_eq!(e.fault(), Fault::Upstream);
        let e = UpstreamError::ShardRejected {
            message: "x".into(),
            retryable: false,
        };
        assert!(!e.is_retryable());
        assert_eq!(e.fault(), Fault::Internal);
        let e = UpstreamError::decode("op", "bad json");
        assert!(!e.is_retryable());
        assert_eq!(e.fault(), Fault::Upstream);
        assert_eq!(e.status(), None);
        let e = UpstreamError::FetchUrlExpired(failure(403));
        assert!(!e.is_retryable());
        assert_eq!(e.status(), Some(403));
        let mut f = failure(429);
        f.retry_after = Some(Duration::from_secs(4));
        let e = UpstreamError::Shared(Arc::new(UpstreamError::from_status(f)));
        assert!(e.is_retryable());
        assert_eq!(e.fault(), Fault::Upstream);
        assert_eq!(e.status(), Some(429));
        assert_eq!(e.retry_after(), Some(Duration::from_secs(4)));
        assert!(matches!(e.root(), UpstreamError::RateLimited(_)));
        let e = UpstreamError::Shared(Arc::new(UpstreamError::AlreadyExists { url: "u".into() }));
        assert_eq!((e.status(), e.fault()), (Some(409), Fault::Client));
    }

    #[test]
    fn display_includes_status_code_and_message() {
        let mut f = failure(404);
        f.op = "bucket info";
        f.error_code = Some("RepoNotFound".into());
        f.message = "Repository not found".into();
        let e = UpstreamError::from_status(f);
        assert_eq!(
            e.to_string(),
            "not found: bucket info: HTTP 404 (RepoNotFound): Repository not found"
        );
    }
}
