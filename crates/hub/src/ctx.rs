//! Per-request context shared by the Hub API and CAS handlers: the base URL that generated
//! links (token `casUrl`s, fetch URLs) point at, and the calling user. Below `server`, `hubapi` and `cas`, so
//! those import it and not each other.

use http::HeaderMap;

use crate::Hub;

/// Per-request context.
pub(crate) struct Ctx {
    /// Base URL clients use to reach us (no trailing slash).
    pub base: String,
    /// Who is calling (`None` = anonymous).
    pub caller: Option<Caller>,
}

impl Ctx {
    pub(crate) fn new(hub: &Hub, headers: &HeaderMap, caller: Option<Caller>) -> Self {
        Self {
            base: base_url(hub, headers),
            caller,
        }
    }
}

/// The user a Hub token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Caller {
    /// A main token: the hub's own user, member of every namespace no other user owns.
    Main,
    /// A `--user NS:TOKEN` token: acts for its namespace only.
    User(String),
}

impl Caller {
    /// The user's name (whoami).
    pub(crate) fn name<'a>(&'a self, hub: &'a Hub) -> &'a str {
        match self {
            Caller::Main => &hub.namespace,
            Caller::User(ns) => ns,
        }
    }

    /// Whether this user may act for namespace `ns`.
    pub(crate) fn owns(&self, hub: &Hub, ns: &str) -> bool {
        match self {
            Caller::Main => ns == hub.namespace || !hub.users.iter().any(|(u, _)| u == ns),
            Caller::User(u) => u == ns,
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
