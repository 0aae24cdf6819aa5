//! Per-request context shared by the Hub API and CAS handlers: the base URL that generated
//! links (token `casUrl`s, fetch URLs) point at. Below `server`, `hubapi` and `cas`, so
//! those import it and not each other.

use http::HeaderMap;

use crate::Hub;

/// Per-request context.
pub(crate) struct Ctx {
    /// Base URL clients use to reach us (no trailing slash).
    pub base: String,
}

impl Ctx {
    pub(crate) fn new(hub: &Hub, headers: &HeaderMap) -> Self {
        Self {
            base: base_url(hub, headers),
        }
    }
}

/// The base URL for generated links: the configured public URL, else `http://{Host}`.
pub(crate) fn base_url(hub: &Hub, headers: &HeaderMap) -> String {
    if let Some(u) = &hub.public_url {
        return u.clone();
    }
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
        })
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}
