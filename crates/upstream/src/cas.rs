//! The Xet CAS API client (spec §6).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures_util::Stream;
use futures_util::stream::BoxStream;
use http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use hugbucket_engine::XetHash;
use reqwest::Url;
use serde::Deserialize;

use crate::config::UpstreamConfig;
use crate::encode::quote_segment;
use crate::error::{Result, UpstreamError};
use crate::reconstruction::{ByteRange, Reconstruction, parse_v1, parse_v2};
use crate::retry::{retry_decision, with_retry};
use crate::session::HubInner;
use crate::shard_stream::ShardStreamParser;
use crate::token::XetToken;
use crate::transport::{RawResponse, Req, Transport, failure_from, join_url};

/// How many grants are requested for one xorb before falling back to the direct upload.
pub const MAX_GRANT_ATTEMPTS: u32 = 3;

/// How a xorb upload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XorbUpload {
    /// The grant request answered 200: the CAS already has the xorb; nothing was sent.
    AlreadyExists,
    /// Uploaded through a grant and committed. `was_inserted` = false when the CAS already
    /// had it.
    ViaGrant {
        /// `was_inserted` of the commit answer (true when absent).
        was_inserted: bool,
    },
    /// Uploaded with the direct `POST /v1/xorbs/default/{hash}`.
    Direct {
        /// `was_inserted` of the answer.
        was_inserted: bool,
    },
}

/// How a shard upload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardUpload {
    /// `/v2/shards` streamed a `result` frame.
    V2,
    /// `/v1/shards` answered `{"result": n}` (0 = already existed, 1 = registered).
    V1 {
        /// The `result` field.
        result: u8,
    },
}

const API_UNKNOWN: u8 = 0;
const API_V2: u8 = 2;
const API_V1: u8 = 1;

#[derive(Debug)]
enum TokenSource {
    Hub { hub: Arc<HubInner>, url: String },
    Static(XetToken),
}

/// Client of the CAS API of one bucket and token scope. Cheap to clone.
///
/// The base URL is the `casUrl` of the current token; CAS API calls carry
/// `Authorization: Bearer <xet token>` and `X-Xet-Session-Id`. Presigned URLs (xorb fetches,
/// grant uploads) are called without Authorization. Fallbacks detected once (grants
/// unavailable, v1-only shards or reconstructions) are remembered by this client.
#[derive(Debug, Clone)]
pub struct CasClient {
    inner: Arc<CasInner>,
}

#[derive(Debug)]
struct CasInner {
    transport: Arc<Transport>,
    source: TokenSource,
    grants_unavailable: AtomicBool,
    shard_api: AtomicU8,
    recon_api: AtomicU8,
}

#[derive(Deserialize)]
struct WasInserted {
    #[serde(default = "yes")]
    was_inserted: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
struct Grant {
    id: String,
    method: String,
    url: String,
    #[serde(default)]
    headers: std::collections::HashMap<String, String>,
}

#[derive(Deserialize)]
struct V1ShardReply {
    result: u8,
}

enum GrantOutcome {
    Done(XorbUpload),
    /// Grants not offered (404/501) or the grant path failed: use the direct upload.
    Fallback,
}

impl CasClient {
    pub(crate) fn from_hub(hub: Arc<HubInner>, token_url: String) -> Self {
        let transport = hub.transport().clone();
        Self::build(
            transport,
            TokenSource::Hub {
                hub,
                url: token_url,
            },
        )
    }

    /// A client with a fixed token (never refreshed), e.g. for tests or a token handed
    /// over by a caller.
    pub fn with_static_token(token: XetToken, config: UpstreamConfig) -> Result<Self> {
        let transport = Arc::new(Transport::new(config)?);
        Ok(Self::build(transport, TokenSource::Static(token)))
    }

    fn build(transport: Arc<Transport>, source: TokenSource) -> Self {
        CasClient {
            inner: Arc::new(CasInner {
                transport,
                source,
                grants_unavailable: AtomicBool::new(false),
                shard_api: AtomicU8::new(API_UNKNOWN),
                recon_api: AtomicU8::new(API_UNKNOWN),
            }),
        }
    }

    /// The current token (refreshed through the Hub when `exp <= now + margin`).
    pub async fn token(&self) -> Result<XetToken> {
        match &self.inner.source {
            TokenSource::Hub { hub, url } => hub.xet_token_from_url(url).await,
            TokenSource::Static(t) => Ok(t.clone()),
        }
    }

    /// True once a grant request answered 404/501 (later uploads go direct).
    pub fn grants_unavailable(&self) -> bool {
        self.inner.grants_unavailable.load(Ordering::Relaxed)
    }

    fn transport(&self) -> &Transport {
        &self.inner.transport
    }

    /// A CAS API request for `path` with the current token.
    async fn api_req(&self, op: &'static str, method: Method, path: &str) -> Result<Req> {
        let token = self.token().await?;
        let url = join_url(&token.cas_url, path)?;
        Ok(Req::new(op, method, url)
            .bearer(Some(&token.access_token))
            .session())
    }

    /// Drops the cached token so that the next call fetches a new one from the token route.
    /// False for a static token (nothing to refresh).
    fn forget_token(&self) -> bool {
        match &self.inner.source {
            TokenSource::Hub { hub, url } => {
                hub.forget_token_url(url);
                crate::metrics::METRICS.token_refreshes.inc();
                true
            }
            TokenSource::Static(_) => false,
        }
    }

    /// Sends the CAS API request `build(api_req(..))` with retries and reads the answer. A
    /// 401 (the token expired early or was revoked) drops the cached token and sends the
    /// request once more with a freshly fetched one; a second 401 is returned.
    async fn execute_api(
        &self,
        op: &'static str,
        method: Method,
        path: &str,
        build: impl Fn(Req) -> Req,
    ) -> Result<RawResponse> {
        let req = build(self.api_req(op, method.clone(), path).await?);
        let resp = self.transport().execute(&req).await?;
        if resp.status != 401 || !self.forget_token() {
            return Ok(resp);
        }
        let req = build(self.api_req(op, method, path).await?);
        self.transport().execute(&req).await
    }

    /// Uploads a serialized xorb (chunk records, no footer) as hf_xet 1.8 does: first
    /// `POST /v1/xorb-grants/default/{hash}` with its length and CRC-64/NVME;
    /// * 201 → send the bytes with the grant's method, URL and headers (no Authorization;
    ///   2xx or 412 = stored; 400/403/409 → new grant, at most 3, then direct), then
    ///   `POST /v1/xorb-commits/default/{hash}/grant/{id}` (404 → new grant);
    /// * 200 → the CAS already has it: nothing is sent;
    /// * 404/501 → grants unavailable (remembered): direct `POST /v1/xorbs/default/{hash}`
    ///   answering `{"was_inserted": bool}`;
    ///
    /// any other grant/commit status is an error. 400 on the direct path = bad hash or
    /// malformed xorb.
    pub async fn upload_xorb(&self, hash: &XetHash, data: Bytes) -> Result<XorbUpload> {
        if !self.grants_unavailable() {
            if let GrantOutcome::Done(done) = self.upload_xorb_via_grant(hash, &data).await? {
                return Ok(done);
            }
        }
        self.upload_xorb_direct(hash, data).await
    }

    async fn upload_xorb_via_grant(&self, hash: &XetHash, data: &Bytes) -> Result<GrantOutcome> {
        const OP: &str = "xorb grant";
        const COMMIT: &str = "xorb commit";
        let crc = hugbucket_engine::crc64::crc64_nvme(data);
        let body = serde_json::json!({
            "length": data.len(),
            "checksum": { "algo": "crc64nvme", "value": crc.to_string() },
        });
        for _ in 0..MAX_GRANT_ATTEMPTS {
            let resp = self
                .execute_api(
                    OP,
                    Method::POST,
                    &format!("/v1/xorb-grants/default/{hash}"),
                    |r| r.json_body(&body),
                )
                .await?;
            let grant: Grant = match resp.status {
                201 => resp.json(OP)?,
                200 => return Ok(GrantOutcome::Done(XorbUpload::AlreadyExists)),
                404 | 501 => {
                    self.inner.grants_unavailable.store(true, Ordering::Relaxed);
                    return Ok(GrantOutcome::Fallback);
                }
                _ => return Err(resp.error(OP)),
            };
            // Send the bytes to the grant URL.
            match self.send_to_grant(&grant, data).await {
                Ok(GrantSend::Stored) => {}
                Ok(GrantSend::NewGrant) => continue,
                Err(_) => return Ok(GrantOutcome::Fallback),
            }
            let path = format!(
                "/v1/xorb-commits/default/{hash}/grant/{}",
                quote_segment(&grant.id)
            );
            let resp = self.execute_api(COMMIT, Method::POST, &path, |r| r).await?;
            match resp.status {
                200..=299 => {
                    let was_inserted = if resp.body.iter().all(u8::is_ascii_whitespace) {
                        true
                    } else {
                        resp.json::<WasInserted>(COMMIT)?.was_inserted
                    };
                    return Ok(GrantOutcome::Done(XorbUpload::ViaGrant { was_inserted }));
                }
                404 => continue,
                _ => return Err(resp.error(COMMIT)),
            }
        }
        Ok(GrantOutcome::Fallback)
    }

    async fn send_to_grant(&self, grant: &Grant, data: &Bytes) -> Result<GrantSend> {
        const OP: &str = "xorb grant upload";
        let method = Method::from_bytes(grant.method.as_bytes())
            .map_err(|_| UpstreamError::decode(OP, format!("bad method {:?}", grant.method)))?;
        let url = Url::parse(&grant.url)
            .map_err(|e| UpstreamError::decode(OP, format!("bad grant url: {e}")))?;
        let mut headers = HeaderMap::new();
        for (k, v) in &grant.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| UpstreamError::decode(OP, format!("bad header name {k:?}")))?;
            let value = HeaderValue::from_str(v)
                .map_err(|_| UpstreamError::decode(OP, format!("bad header value for {k}")))?;
            headers.insert(name, value);
        }
        let mut req = Req::new(OP, method, url)
            .presigned()
            .session()
            .long()
            .body(data.clone());
        req.headers = headers;
        let resp = self.transport().execute(&req).await?;
        match resp.status {
            200..=299 | 412 => Ok(GrantSend::Stored),
            400 | 403 | 409 => Ok(GrantSend::NewGrant),
            _ => Err(resp.error(OP)),
        }
    }

    /// Direct xorb upload `POST /v1/xorbs/default/{hash}` → 200 `{"was_inserted": bool}`.
    pub async fn upload_xorb_direct(&self, hash: &XetHash, data: Bytes) -> Result<XorbUpload> {
        const OP: &str = "upload xorb";
        let resp = self
            .execute_api(
                OP,
                Method::POST,
                &format!("/v1/xorbs/default/{hash}"),
                |r| r.long().body(data.clone()),
            )
            .await?;
        if !resp.is_success() {
            return Err(resp.error(OP));
        }
        let reply: WasInserted = resp.json(OP)?;
        Ok(XorbUpload::Direct {
            was_inserted: reply.was_inserted,
        })
    }

    /// Uploads a shard in upload form (no lookup tables/footer), after all its xorbs.
    /// `POST /v2/shards` answers 200 with NDJSON frames: `result` = success, `error` =
    /// [`UpstreamError::ShardRejected`] (retried when flagged retryable), progress and unknown
    /// frames are skipped, a stream without a terminal frame is an error. 404/501 → `POST
    /// /v1/shards` (`{"result": 0|1}`), remembered. 400 = invalid shard or failed
    /// verification.
    pub async fn upload_shard(&self, shard: Bytes) -> Result<ShardUpload> {
        if self.inner.shard_api.load(Ordering::Relaxed) != API_V1 {
            match self.upload_shard_v2(&shard).await? {
                Some(done) => {
                    self.inner.shard_api.store(API_V2, Ordering::Relaxed);
                    return Ok(done);
                }
                None => self.inner.shard_api.store(API_V1, Ordering::Relaxed),
            }
        }
        self.upload_shard_v1(shard).await
    }

    /// `Ok(None)` = v2 not available. A 401 is retried once with a new token.
    async fn upload_shard_v2(&self, shard: &Bytes) -> Result<Option<ShardUpload>> {
        match self.upload_shard_v2_with_token(shard).await {
            Err(UpstreamError::Unauthorized(_)) if self.forget_token() => {
                self.upload_shard_v2_with_token(shard).await
            }
            r => r,
        }
    }

    async fn upload_shard_v2_with_token(&self, shard: &Bytes) -> Result<Option<ShardUpload>> {
        const OP: &str = "upload shard v2";
        let cfg = self.transport().cfg.retry.clone();
        with_retry(&cfg, |_| async {
            let req = self
                .api_req(OP, Method::POST, "/v2/shards")
                .await?
                .body(shard.clone());
            // One attempt per iteration: this closure is the retry loop (the frames after
            // the head can fail retryably too).
            let mut resp = self.transport().send_streaming_once(&req).await?;
            let status = resp.status().as_u16();
            if status == 404 || status == 501 {
                return Ok(None);
            }
            if !(200..300).contains(&status) {
                let headers = resp.headers().clone();
                let body = resp.bytes().await.unwrap_or_default();
                return Err(UpstreamError::from_status(failure_from(
                    OP, status, &headers, &body,
                )));
            }
            let mut parser = ShardStreamParser::new();
            while let Some(piece) = resp
                .chunk()
                .await
                .map_err(|e| UpstreamError::from_reqwest(OP, e))?
            {
                if parser.push(&piece)?.is_some() {
                    return Ok(Some(ShardUpload::V2));
                }
            }
            parser.finish()?;
            Ok(Some(ShardUpload::V2))
        })
        .await
    }

    async fn upload_shard_v1(&self, shard: Bytes) -> Result<ShardUpload> {
        const OP: &str = "upload shard v1";
        let resp = self
            .execute_api(OP, Method::POST, "/v1/shards", |r| {
                r.long().body(shard.clone())
            })
            .await?;
        if !resp.is_success() {
            return Err(resp.error(OP));
        }
        let reply: V1ShardReply = resp.json(OP)?;
        Ok(ShardUpload::V1 {
            result: reply.result,
        })
    }

    /// The reconstruction of `file_hash`, optionally for a byte range (sent as
    /// `Range: bytes=start-end`, inclusive). `GET /v2/reconstructions/{hash}` first; 501, or
    /// 404 while v2 has not been seen working, falls back to `/v1/reconstructions/{hash}`
    /// (remembered once v1 answers). 404 = unknown file; 416 = start beyond the end.
    /// The empty file (hash all zeros, size 0) needs no reconstruction: callers should not
    /// ask for it (hf_xet does not).
    pub async fn reconstruction(
        &self,
        file_hash: &XetHash,
        range: Option<ByteRange>,
    ) -> Result<Reconstruction> {
        let api = self.inner.recon_api.load(Ordering::Relaxed);
        if api != API_V1 {
            let resp = self.reconstruction_req(2, file_hash, range).await?;
            match resp.status {
                200..=299 => {
                    self.inner.recon_api.store(API_V2, Ordering::Relaxed);
                    return parse_v2(&resp.body);
                }
                501 => {}
                404 if api == API_UNKNOWN => {}
                _ => return Err(resp.error("reconstruction v2")),
            }
        }
        let resp = self.reconstruction_req(1, file_hash, range).await?;
        if !resp.is_success() {
            return Err(resp.error("reconstruction v1"));
        }
        let r = parse_v1(&resp.body)?;
        self.inner.recon_api.store(API_V1, Ordering::Relaxed);
        Ok(r)
    }

    async fn reconstruction_req(
        &self,
        version: u8,
        file_hash: &XetHash,
        range: Option<ByteRange>,
    ) -> Result<RawResponse> {
        let op = if version == 2 {
            "reconstruction v2"
        } else {
            "reconstruction v1"
        };
        let range = match range {
            Some(r) => Some(
                HeaderValue::from_str(&r.header_value())
                    .map_err(|e| UpstreamError::InvalidArgument(e.to_string()))?,
            ),
            None => None,
        };
        self.execute_api(
            op,
            Method::GET,
            &format!("/v{version}/reconstructions/{file_hash}"),
            |req| match &range {
                Some(v) => req.header(header::RANGE, v.clone()),
                None => req,
            },
        )
        .await
    }

    /// Global dedup query `GET /v1/chunks/default/{chunk_hash}`: 200 → the shard bytes
    /// (complete form, possibly with HMAC'ed chunk hashes); anything else — 404, any other
    /// status, any transport error — → `None`, as hf_xet does. Not retried.
    pub async fn global_dedup_shard(&self, chunk_hash: &XetHash) -> Option<Bytes> {
        const OP: &str = "global dedup";
        let req = self
            .api_req(OP, Method::GET, &format!("/v1/chunks/default/{chunk_hash}"))
            .await
            .ok()?;
        let resp = self.transport().attempt(&req).await.ok()?;
        (resp.status == 200).then_some(resp.body)
    }

    /// Starts a ranged fetch of stored xorb bytes from a presigned `url` (no Authorization;
    /// `Range: bytes=start-end`, inclusive). The answer must be 206 with a matching
    /// `Content-Range` (and `Content-Length`, when given); else
    /// [`UpstreamError::RangeMismatch`] (retryable). 401/403 →
    /// [`UpstreamError::FetchUrlExpired`]: re-query the reconstruction for a fresh URL.
    /// The returned stream yields the body as it arrives (bounded memory) and fails if the
    /// total length differs from the range's. When the connection breaks mid-body it resumes
    /// with a narrower `Range` on the same URL (within the retry budget), unless the URL is
    /// signed for its exact range (`X-Xet-Signed-Range`, see [`is_range_signed`]): such a
    /// URL refuses any other range, so the error is returned for the caller to re-query the
    /// reconstruction of the remaining bytes.
    pub async fn fetch_xorb_range(&self, url: &str, range: ByteRange) -> Result<XorbRangeStream> {
        let url = Url::parse(url)
            .map_err(|e| UpstreamError::InvalidArgument(format!("bad fetch url: {e}")))?;
        let transport = self.inner.transport.clone();
        let first = open_range(&transport, &url, range).await?;
        let state = FetchState {
            transport,
            resumable: !is_range_signed(&url),
            url,
            range,
            pos: range.start,
            resp: Some(first),
            resumes: 1,
            started: Instant::now(),
            done: false,
        };
        let stream = futures_util::stream::unfold(state, |mut st| async move {
            let item = st.next_piece().await?;
            Some((item, st))
        });
        Ok(XorbRangeStream {
            inner: Box::pin(stream),
            len: range.len(),
        })
    }

    /// [`CasClient::fetch_xorb_range`] collected into one buffer.
    pub async fn fetch_xorb_range_bytes(&self, url: &str, range: ByteRange) -> Result<Bytes> {
        use futures_util::StreamExt;
        let mut stream = self.fetch_xorb_range(url, range).await?;
        let mut out = Vec::with_capacity(usize::try_from(range.len().min(64 << 20)).unwrap_or(0));
        while let Some(piece) = stream.next().await {
            out.extend_from_slice(&piece?);
        }
        Ok(Bytes::from(out))
    }
}

enum GrantSend {
    Stored,
    NewGrant,
}

/// True when a fetch URL is signed for an exact byte range (it carries the
/// `X-Xet-Signed-Range` query parameter, as v2 reconstruction URLs do): the CAS refuses any
/// other `Range` on it, a narrower one to resume included.
pub fn is_range_signed(url: &Url) -> bool {
    url.query_pairs()
        .any(|(k, _)| k.eq_ignore_ascii_case("X-Xet-Signed-Range"))
}

/// Parses `Content-Range: bytes S-E/T` (T may be `*`).
pub fn parse_content_range(v: &str) -> Option<(u64, u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (s, e) = range.trim().split_once('-')?;
    let s = s.trim().parse().ok()?;
    let e = e.trim().parse().ok()?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    (e >= s).then_some((s, e, total))
}

/// Sends one ranged GET (retrying the head) and checks the status and range headers.
async fn open_range(
    transport: &Transport,
    url: &Url,
    range: ByteRange,
) -> Result<reqwest::Response> {
    const OP: &str = "fetch xorb range";
    let value = HeaderValue::from_str(&range.header_value())
        .map_err(|e| UpstreamError::InvalidArgument(e.to_string()))?;
    let req = Req::new(OP, Method::GET, url.clone())
        .presigned()
        .session()
        .header(header::RANGE, value);
    let resp = transport.execute_streaming(&req).await?;
    let status = resp.status().as_u16();
    let mismatch = |message: String| UpstreamError::RangeMismatch { op: OP, message };
    match status {
        206 => {}
        401 | 403 => {
            let headers = resp.headers().clone();
            let body = resp.bytes().await.unwrap_or_default();
            return Err(UpstreamError::FetchUrlExpired(failure_from(
                OP, status, &headers, &body,
            )));
        }
        200 => return Err(mismatch("server ignored the Range header (200)".into())),
        _ => {
            let headers = resp.headers().clone();
            let body = resp.bytes().await.unwrap_or_default();
            return Err(UpstreamError::from_status(failure_from(
                OP, status, &headers, &body,
            )));
        }
    }
    let cr = resp
        .headers()
        .get(header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_content_range);
    match cr {
        Some((s, e, _)) if s == range.start && e == range.end => {}
        Some((s, e, _)) => {
            return Err(mismatch(format!(
                "asked {}-{}, got Content-Range {s}-{e}",
                range.start, range.end
            )));
        }
        None => return Err(mismatch("206 without a valid Content-Range".into())),
    }
    let declared = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(n) = declared {
        if n != range.len() {
            return Err(mismatch(format!(
                "Content-Length {n} for a range of {} bytes",
                range.len()
            )));
        }
    }
    Ok(resp)
}

struct FetchState {
    transport: Arc<Transport>,
    /// False for a range-signed URL: an interruption is returned, not resumed.
    resumable: bool,
    url: Url,
    range: ByteRange,
    /// Next byte expected.
    pos: u64,
    resp: Option<reqwest::Response>,
    /// Attempts so far (for the retry budget of resumptions).
    resumes: u32,
    started: Instant,
    done: bool,
}

impl FetchState {
    async fn next_piece(&mut self) -> Option<Result<Bytes>> {
        const OP: &str = "fetch xorb range";
        loop {
            if self.done {
                return None;
            }
            let resp = match self.resp.as_mut() {
                Some(r) => r,
                None => {
                    let rest = ByteRange {
                        start: self.pos,
                        end: self.range.end,
                    };
                    match open_range(&self.transport, &self.url, rest).await {
                        Ok(r) => self.resp.insert(r),
                        Err(e) => {
                            self.done = true;
                            return Some(Err(e));
                        }
                    }
                }
            };
            let err = match resp.chunk().await {
                Ok(Some(piece)) => {
                    let end = self.pos + piece.len() as u64;
                    if end > self.range.end + 1 {
                        self.done = true;
                        return Some(Err(UpstreamError::RangeMismatch {
                            op: OP,
                            message: format!(
                                "body longer than the {} bytes asked",
                                self.range.len()
                            ),
                        }));
                    }
                    self.pos = end;
                    if piece.is_empty() {
                        continue;
                    }
                    return Some(Ok(piece));
                }
                Ok(None) if self.pos == self.range.end + 1 => {
                    self.done = true;
                    return None;
                }
                Ok(None) => UpstreamError::RangeMismatch {
                    op: OP,
                    message: format!(
                        "body ended after {} of {} bytes",
                        self.pos - self.range.start,
                        self.range.len()
                    ),
                },
                Err(e) => UpstreamError::from_reqwest(OP, e),
            };
            // Interrupted: resume from `pos` if the URL allows it and the budget too.
            self.resp = None;
            if !self.resumable {
                self.done = true;
                return Some(Err(err));
            }
            let cfg = &self.transport.cfg.retry;
            match retry_decision(
                cfg,
                self.resumes,
                self.started.elapsed(),
                &err,
                rand::random(),
            ) {
                Some(delay) => {
                    tokio::time::sleep(delay).await;
                    self.resumes += 1;
                }
                None => {
                    self.done = true;
                    return Some(Err(err));
                }
            }
        }
    }
}

/// The body of a ranged xorb fetch: a stream of `Bytes` pieces totalling exactly the
/// requested length, or an error.
pub struct XorbRangeStream {
    inner: BoxStream<'static, Result<Bytes>>,
    len: u64,
}

impl std::fmt::Debug for XorbRangeStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XorbRangeStream")
            .field("len", &self.len)
            .finish()
    }
}

impl XorbRangeStream {
    /// Number of bytes the stream yields in total.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Always false (ranges are never empty).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Stream for XorbRangeStream {
    type Item = Result<Bytes>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_parsing() {
        assert_eq!(
            parse_content_range("bytes 3158602-6317090/27291331"),
            Some((3158602, 6317090, Some(27291331)))
        );
        assert_eq!(parse_content_range("bytes 0-0/*"), Some((0, 0, None)));
        assert_eq!(parse_content_range("bytes 5-4/10"), None);
        assert_eq!(parse_content_range("items 0-1/2"), None);
        assert_eq!(parse_content_range("bytes */10"), None);
        assert_eq!(parse_content_range(""), None);
    }

    #[test]
    fn range_signed_urls() {
        let signed =
            Url::parse("http://h/xorbs/default/ab?X-Xet-Signed-Range=1&Expires=9&Signature=s")
                .unwrap();
        assert!(is_range_signed(&signed));
        let plain = Url::parse("http://h/xorbs/default/ab?Expires=9&Signature=s").unwrap();
        assert!(!is_range_signed(&plain));
    }
}
