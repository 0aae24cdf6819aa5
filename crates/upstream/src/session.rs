//! The session behind a [`crate::HubClient`]: transport, endpoint, HF token, the cached
//! whoami and xet tokens. The CAS clients a hub client creates hold it too, to refresh
//! their tokens; a module of its own so that `hub` and `cas` both use it without
//! importing each other.

use std::sync::Arc;

use http::Method;
use reqwest::Url;

use crate::error::{Result, UpstreamError};
use crate::models::WhoAmI;
use crate::token::{TokenCache, XetToken};
use crate::transport::{Req, Transport, now_unix};

/// The state a token refresh needs (shared with the CAS clients).
#[derive(Debug)]
pub(crate) struct HubInner {
    pub(crate) transport: Arc<Transport>,
    pub(crate) endpoint: String,
    pub(crate) token: Option<String>,
    pub(crate) whoami: tokio::sync::OnceCell<WhoAmI>,
    pub(crate) tokens: TokenCache<String>,
}

impl HubInner {
    pub(crate) fn transport(&self) -> &Arc<Transport> {
        &self.transport
    }

    pub(crate) async fn xet_token_from_url(&self, url: &str) -> Result<XetToken> {
        let margin = self.transport.cfg.token_refresh_margin;
        let key = url.to_string();
        self.tokens
            .get_or_refresh(&key, now_unix, margin, || self.fetch_token(url))
            .await
    }

    /// Drops the cached token of a token URL.
    pub(crate) fn forget_token_url(&self, url: &str) {
        self.tokens.invalidate(&url.to_string());
    }

    pub(crate) async fn fetch_token(&self, url: &str) -> Result<XetToken> {
        const OP: &str = "xet token";
        let url = Url::parse(url)
            .map_err(|e| UpstreamError::InvalidArgument(format!("bad token url {url:?}: {e}")))?;
        let req = Req::new(OP, Method::GET, url)
            .bearer(self.token.as_deref())
            .session();
        let resp = self.transport.execute(&req).await?;
        if !resp.is_success() {
            return Err(resp.error(OP));
        }
        XetToken::from_response(&resp.headers, &resp.body)
    }
}
