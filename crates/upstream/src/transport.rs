//! The HTTP layer shared by the Hub and CAS clients: two reqwest clients (API calls without
//! redirects; presigned URLs with redirects and never any Authorization), retries, body
//! size limits and error mapping. Both honour the proxy environment variables
//! (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`, as curl and huggingface_hub do).

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use reqwest::Url;
use serde::de::DeserializeOwned;

use crate::config::RetryConfig;
use crate::config::UpstreamConfig;
use crate::error::{HttpFailure, Result, UpstreamError, is_retryable_status};
use crate::ratelimit::{Gate, RouteClass};
use crate::retry::with_retry;

/// `X-Xet-Session-Id` header name.
pub const SESSION_HEADER: &str = "x-xet-session-id";

/// Installs rustls' `ring` provider as the process default (ignoring "already installed").
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A request description that can be sent several times (the body is `Bytes`).
#[derive(Debug, Clone)]
pub(crate) struct Req {
    pub op: &'static str,
    pub method: Method,
    pub url: Url,
    /// Bearer token for `Authorization`, if any.
    pub bearer: Option<String>,
    pub headers: HeaderMap,
    pub body: Option<Bytes>,
    /// Send `X-Xet-Session-Id`.
    pub session: bool,
    /// Use the presigned-URL client (redirects followed, no auth ever).
    pub presigned: bool,
    /// Apply `request_timeout` (small API calls only).
    pub total_timeout: bool,
    /// Background work: the longer rate-limit budget applies (see [`RetryConfig`]).
    pub background: bool,
}

impl Req {
    pub fn new(op: &'static str, method: Method, url: Url) -> Self {
        Req {
            op,
            method,
            url,
            bearer: None,
            headers: HeaderMap::new(),
            body: None,
            session: false,
            presigned: false,
            total_timeout: true,
            background: false,
        }
    }

    /// The Hub rate-limit class this request counts against.
    pub fn class(&self) -> RouteClass {
        RouteClass::of_path(self.url.path())
    }

    /// No overall timeout (large uploads): only the connect and read timeouts apply.
    pub fn long(mut self) -> Self {
        self.total_timeout = false;
        self
    }

    pub fn bearer(mut self, token: Option<&str>) -> Self {
        self.bearer = token.map(str::to_string);
        self
    }

    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.insert(name, value);
        self
    }

    pub fn body(mut self, body: Bytes) -> Self {
        self.body = Some(body);
        self
    }

    pub fn json_body(self, value: &serde_json::Value) -> Self {
        let bytes = serde_json::to_vec(value).unwrap_or_default();
        self.header(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )
        .body(Bytes::from(bytes))
    }

    pub fn session(mut self) -> Self {
        self.session = true;
        self
    }

    pub fn presigned(mut self) -> Self {
        self.presigned = true;
        self.bearer = None;
        self
    }
}

/// A fully read response.
#[derive(Debug, Clone)]
pub(crate) struct RawResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl RawResponse {
    /// The error for this response (its status is unexpected for `op`).
    pub fn error(&self, op: &'static str) -> UpstreamError {
        UpstreamError::from_status(failure_from(op, self.status, &self.headers, &self.body))
    }

    /// Parses the body as JSON with simd-json.
    pub fn json<T: DeserializeOwned>(&self, op: &'static str) -> Result<T> {
        parse_json(op, &self.body)
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Parses JSON with simd-json (which needs a mutable copy of the input).
pub(crate) fn parse_json<T: DeserializeOwned>(op: &'static str, body: &[u8]) -> Result<T> {
    let mut buf = body.to_vec();
    simd_json::serde::from_slice::<T>(&mut buf).map_err(|e| UpstreamError::decode(op, e))
}

/// Builds the failure details of an unexpected answer.
pub(crate) fn failure_from(
    op: &'static str,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
) -> HttpFailure {
    let header_str = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let error_code = header_str("x-error-code");
    let message = header_str("x-error-message")
        .or_else(|| {
            let v: serde_json::Value = serde_json::from_slice(body).ok()?;
            ["error", "message", "detail"]
                .iter()
                .find_map(|k| v.get(*k).and_then(|m| m.as_str()).map(str::to_string))
        })
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(&body[..body.len().min(512)]);
            text.trim().to_string()
        });
    let retry_after = crate::ratelimit::wait_hint(headers);
    HttpFailure {
        op,
        status,
        error_code,
        message,
        retry_after,
    }
}

/// Generates a UUIDv7-shaped session id (48-bit unix milliseconds, version 7, random rest).
pub fn new_session_id() -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let r: u128 = rand::random();
    let mut v: u128 = (u128::from(ms & 0xFFFF_FFFF_FFFF)) << 80;
    v |= 0x7u128 << 76; // version
    v |= (r & 0xFFF) << 64; // rand_a
    v |= 0b10u128 << 62; // variant
    v |= (r >> 12) & ((1u128 << 62) - 1); // rand_b
    let h = format!("{v:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Current unix time in seconds.
pub(crate) fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Two reqwest clients plus the shared configuration.
#[derive(Debug)]
pub(crate) struct Transport {
    api: reqwest::Client,
    presigned: reqwest::Client,
    pub cfg: UpstreamConfig,
    pub session_id: String,
    /// Rate-limit classes the Hub closed until their reset.
    gate: Gate,
}

impl Transport {
    pub fn new(cfg: UpstreamConfig) -> Result<Self> {
        install_crypto_provider();
        let base = || {
            reqwest::Client::builder()
                .connect_timeout(cfg.connect_timeout)
                .read_timeout(cfg.read_timeout)
                .user_agent(cfg.user_agent.clone())
                // Proxies come from the environment (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY,
                // NO_PROXY; reqwest's default), for API calls and fetch URLs alike.
                .tcp_nodelay(true)
        };
        let api = base()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| UpstreamError::Config(format!("building http client: {e}")))?;
        let presigned = base()
            .redirect(reqwest::redirect::Policy::limited(5))
            .build()
            .map_err(|e| UpstreamError::Config(format!("building http client: {e}")))?;
        let session_id = cfg.session_id.clone().unwrap_or_else(new_session_id);
        Ok(Transport {
            api,
            presigned,
            cfg,
            session_id,
            gate: Gate::default(),
        })
    }

    /// The retry policy of `req` (background work gets the longer rate-limit budget).
    fn retry_cfg(&self, req: &Req) -> RetryConfig {
        let mut cfg = self.cfg.retry.clone();
        if req.background {
            cfg.rate_limit_budget = cfg.background_rate_limit_budget;
        }
        cfg
    }

    /// Waits while the Hub has closed `req`'s class (a 429 or a spent budget told us
    /// until when), or fails at once with a 429-like error when the reopening is past
    /// `deadline` (the retry loop then gives up: the caller answers SlowDown).
    async fn pass_gate(&self, req: &Req, deadline: Instant) -> Result<()> {
        let class = req.class();
        let wait = self.gate.wait_for(class);
        if wait.is_zero() {
            return Ok(());
        }
        if Instant::now() + wait > deadline {
            return Err(UpstreamError::RateLimited(HttpFailure {
                op: req.op,
                status: 429,
                error_code: None,
                message: format!(
                    "the Hub's {} rate limit resets in {} s",
                    class.label(),
                    wait.as_secs_f64().ceil()
                ),
                retry_after: Some(wait),
            }));
        }
        crate::metrics::METRICS.add_throttle_wait(wait);
        tokio::time::sleep(wait).await;
        Ok(())
    }

    /// Whether the Hub said less than half of `class`'s budget is left.
    pub fn budget_scarce(&self, class: RouteClass) -> bool {
        self.gate.scarce(class)
    }

    /// Records what an answer says about the rate limit of `req`'s class.
    fn observe(&self, req: &Req, status: u16, headers: &HeaderMap) {
        let class = req.class();
        if status == 429 {
            crate::metrics::METRICS.rate_limited.inc();
        }
        self.gate.observe(class, status, headers);
    }

    fn build(&self, req: &Req, whole_timeout: bool) -> reqwest::RequestBuilder {
        crate::metrics::METRICS.count_request(req.url.path());
        let client = if req.presigned {
            &self.presigned
        } else {
            &self.api
        };
        let mut rb = client
            .request(req.method.clone(), req.url.clone())
            .headers(req.headers.clone());
        if let (Some(token), false) = (&req.bearer, req.presigned) {
            rb = rb.bearer_auth(token);
        }
        if req.session {
            rb = rb.header(SESSION_HEADER, &self.session_id);
        }
        if let Some(body) = &req.body {
            rb = rb.body(body.clone());
        } else if req.method == Method::POST || req.method == Method::PUT {
            rb = rb.header(header::CONTENT_LENGTH, "0");
        }
        if let (true, true, Some(t)) = (whole_timeout, req.total_timeout, self.cfg.request_timeout)
        {
            rb = rb.timeout(t);
        }
        rb
    }

    /// Reads a whole body, refusing more than `max_response_bytes`.
    async fn read_body(&self, op: &'static str, mut resp: reqwest::Response) -> Result<Bytes> {
        let limit = self.cfg.max_response_bytes;
        if resp.content_length().is_some_and(|n| n > limit) {
            return Err(UpstreamError::TooLarge { op, limit });
        }
        let mut buf = BytesMut::with_capacity(
            resp.content_length()
                .map(|n| n.min(16 << 20) as usize)
                .unwrap_or(0),
        );
        while let Some(piece) = resp
            .chunk()
            .await
            .map_err(|e| UpstreamError::from_reqwest(op, e))?
        {
            if buf.len() as u64 + piece.len() as u64 > limit {
                return Err(UpstreamError::TooLarge { op, limit });
            }
            buf.extend_from_slice(&piece);
        }
        Ok(buf.freeze())
    }

    /// One attempt: send, read the whole body; retryable statuses become errors.
    pub(crate) async fn attempt(&self, req: &Req) -> Result<RawResponse> {
        let deadline = Instant::now() + self.retry_cfg(req).rate_limit_budget;
        self.attempt_until(req, deadline).await
    }

    /// [`Transport::attempt`], waiting for a closed rate-limit class at most until
    /// `deadline`.
    async fn attempt_until(&self, req: &Req, deadline: Instant) -> Result<RawResponse> {
        self.pass_gate(req, deadline).await?;
        let resp = self
            .build(req, true)
            .send()
            .await
            .map_err(|e| UpstreamError::from_reqwest(req.op, e))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        self.observe(req, status, &headers);
        let body = self.read_body(req.op, resp).await?;
        if is_retryable_status(status) {
            return Err(UpstreamError::from_status(failure_from(
                req.op, status, &headers, &body,
            )));
        }
        Ok(RawResponse {
            status,
            headers,
            body,
        })
    }

    /// Sends `req` with retries and reads the whole response. Transport failures and
    /// retryable statuses (5xx, 408, 429) are retried within the budget and returned as
    /// errors when it runs out; every other status is returned for the caller to interpret.
    pub async fn execute(&self, req: &Req) -> Result<RawResponse> {
        let cfg = self.retry_cfg(req);
        let deadline = Instant::now() + cfg.rate_limit_budget;
        with_retry(&cfg, |_| self.attempt_until(req, deadline)).await
    }

    /// Sends `req` with retries for the response head only and returns the response with
    /// its body unread (for streaming). Retryable statuses are retried; other statuses are
    /// returned.
    pub async fn execute_streaming(&self, req: &Req) -> Result<reqwest::Response> {
        let cfg = self.retry_cfg(req);
        with_retry(&cfg, |_| self.send_streaming_once(req)).await
    }

    /// One attempt of [`Transport::execute_streaming`]: a retryable status becomes an error
    /// (for a caller that runs its own retry loop around more than the head).
    pub async fn send_streaming_once(&self, req: &Req) -> Result<reqwest::Response> {
        let deadline = Instant::now() + self.retry_cfg(req).rate_limit_budget;
        self.pass_gate(req, deadline).await?;
        let resp = self
            .build(req, false)
            .send()
            .await
            .map_err(|e| UpstreamError::from_reqwest(req.op, e))?;
        let status = resp.status().as_u16();
        self.observe(req, status, resp.headers());
        if is_retryable_status(status) {
            let headers = resp.headers().clone();
            let body = self.read_body(req.op, resp).await.unwrap_or_default();
            return Err(UpstreamError::from_status(failure_from(
                req.op, status, &headers, &body,
            )));
        }
        Ok(resp)
    }
}

/// Joins `path` (already encoded, starting with `/`) to a base URL string without a
/// trailing slash.
pub(crate) fn join_url(base: &str, path: &str) -> Result<Url> {
    let s = format!("{}{}", base.trim_end_matches('/'), path);
    Url::parse(&s).map_err(|e| UpstreamError::InvalidArgument(format!("bad url {s:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn session_id_shape() {
        let id = new_session_id();
        assert_eq!(id.len(), 36);
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('7'));
        assert!(matches!(parts[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'));
        assert_ne!(id, new_session_id());
    }

    #[test]
    fn failure_message_sources() {
        let mut h = HeaderMap::new();
        let f = failure_from("op", 404, &h, br#"{"error":"chunk not tracked"}"#);
        assert_eq!(f.message, "chunk not tracked");
        assert_eq!(f.error_code, None);
        h.insert("x-error-code", HeaderValue::from_static("RepoNotFound"));
        h.insert(
            "x-error-message",
            HeaderValue::from_static("Repository not found"),
        );
        h.insert("retry-after", HeaderValue::from_static("7"));
        let f = failure_from("op", 404, &h, b"ignored");
        assert_eq!(f.message, "Repository not found");
        assert_eq!(f.error_code.as_deref(), Some("RepoNotFound"));
        assert_eq!(f.retry_after, Some(Duration::from_secs(7)));
        let long = vec![b'x'; 4000];
        let f = failure_from("op", 500, &HeaderMap::new(), &long);
        assert_eq!(f.message.len(), 512);
    }

    #[test]
    fn join_url_strips_trailing_slash() {
        assert_eq!(
            join_url("http://h:1/", "/v1/x").unwrap().as_str(),
            "http://h:1/v1/x"
        );
        assert!(join_url("not a url", "/x").is_err());
    }
}
