//! The hub's one error type, and its mapping to HTTP responses (status, JSON body,
//! `X-Error-Code` / `X-Error-Message` headers) in one place: [`HubError::into_response`].

use http::{HeaderValue, Response, StatusCode};
use hugbucket_engine::EngineError;
use thiserror::Error;

use crate::body::{RespBody, full};

/// Everything that can go wrong while serving a request.
#[derive(Debug, Error)]
pub enum HubError {
    /// No, or an unknown, Hub token (401).
    #[error("{0}")]
    Unauthorized(String),
    /// A valid credential without the right to do this (403).
    #[error("{0}")]
    Forbidden(String),
    /// The bucket does not exist (404, `RepoNotFound`).
    #[error("bucket not found: {0}")]
    BucketNotFound(String),
    /// An anonymous caller asked for a bucket that is private or missing (401,
    /// `RepoNotFound`, as the Hub answers: it does not tell which).
    #[error("bucket not found: {0}")]
    BucketNotFoundAnonymous(String),
    /// The file does not exist in the bucket (404, `EntryNotFound`).
    #[error("entry not found: {0}")]
    EntryNotFound(String),
    /// Any other unknown resource (404).
    #[error("not found: {0}")]
    NotFound(String),
    /// The route exists but not with this method (405).
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The bucket already exists (409; the body carries its `url`).
    #[error("bucket {id} already exists")]
    BucketExists {
        /// Bucket id `ns/name`.
        id: String,
        /// Its URL under the Hub endpoint.
        url: String,
    },
    /// Malformed request (400).
    #[error("{0}")]
    BadRequest(String),
    /// Uploaded data failed to parse or verify (400).
    #[error("invalid upload: {0}")]
    Invalid(#[from] EngineError),
    /// Request body over the route's limit (413).
    #[error("request body too large (limit {limit} bytes)")]
    PayloadTooLarge {
        /// The route's limit.
        limit: u64,
    },
    /// A `Range` that starts past the end (416).
    #[error("range not satisfiable (size {size})")]
    RangeNotSatisfiable {
        /// Size of the resource.
        size: u64,
    },
    /// Metadata store failure (500).
    #[error("storage error: {0}")]
    Storage(String),
    /// File system failure (500).
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// An error injected by [`crate::faults::Faults`].
    #[error("injected fault")]
    Injected {
        /// Status to answer with.
        status: StatusCode,
    },
}

impl HubError {
    /// HTTP status and `X-Error-Code` for this error.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "Unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "Forbidden"),
            Self::BucketNotFound(_) => (StatusCode::NOT_FOUND, "RepoNotFound"),
            Self::BucketNotFoundAnonymous(_) => (StatusCode::UNAUTHORIZED, "RepoNotFound"),
            Self::EntryNotFound(_) => (StatusCode::NOT_FOUND, "EntryNotFound"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "NotFound"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed"),
            Self::BucketExists { .. } => (StatusCode::CONFLICT, "RepoExists"),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "BadRequest"),
            Self::Invalid(_) => (StatusCode::BAD_REQUEST, "InvalidUpload"),
            Self::PayloadTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLarge"),
            Self::RangeNotSatisfiable { .. } => {
                (StatusCode::RANGE_NOT_SATISFIABLE, "RangeNotSatisfiable")
            }
            Self::Storage(_) | Self::Io(_) => (StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
            Self::Injected { status } => (*status, "InjectedFault"),
        }
    }

    /// The one place errors become responses.
    pub fn into_response(self) -> Response<RespBody> {
        let (status, code) = self.status_and_code();
        let message = self.to_string();
        let mut body = serde_json::json!({ "error": message });
        if let Self::BucketExists { url, .. } = &self {
            body["url"] = serde_json::Value::String(url.clone());
        }
        let mut resp = Response::new(full(serde_json::to_vec(&body).unwrap_or_default()));
        *resp.status_mut() = status;
        let h = resp.headers_mut();
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert("x-error-code", HeaderValue::from_static(code));
        if let Ok(v) = HeaderValue::from_str(&header_safe(&message)) {
            h.insert("x-error-message", v);
        }
        if let Self::RangeNotSatisfiable { size } = self
            && let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}"))
        {
            h.insert(http::header::CONTENT_RANGE, v);
        }
        resp
    }
}

impl From<sled::Error> for HubError {
    fn from(e: sled::Error) -> Self {
        Self::Storage(e.to_string())
    }
}

/// Keeps printable ASCII only (header values), at most 500 characters.
fn header_safe(s: &str) -> String {
    s.chars()
        .map(|c| if (' '..='~').contains(&c) { c } else { ' ' })
        .take(500)
        .collect()
}
