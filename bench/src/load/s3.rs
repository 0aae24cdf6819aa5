//! S3 load: a hyper client with a keep-alive pool as large as the concurrency, SigV4
//! header auth (`UNSIGNED-PAYLOAD`), path-style URLs.
//!
//! Keys are `{prefix}obj-{n:08}` ([`object_key`]). `get`, `mixed` and `list` first upload
//! `--objects` objects numbered `0..objects` (skipped with `--no-prepare`, to read what an
//! earlier `put` run wrote); `put` and `multipart` write `0, 1, 2, …` (modulo `--objects`
//! when given). In `mixed` mode GETs read the prepared objects (never written or deleted
//! during the run, so `--verify` holds), PUTs write new numbers from `objects` upward and
//! DELETEs remove objects those PUTs wrote (a DELETE with none left becomes a PUT).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hugbucket_s3::encoding::{KEY_ENCODE_SET, URI_ENCODE_SET};
use hyper::body::{Frame, Incoming};
use hyper::header::{CONTENT_LENGTH, ETAG, HOST, HeaderValue};
use hyper::{HeaderMap, Method, Request, Response, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use percent_encoding::utf8_percent_encode;
use tokio::sync::Semaphore;

use super::data::{ObjectPieces, PIECE, Verifier, object_bytes, splitmix64};
use super::report::{Progress, Report, RunInfo};
use super::sigv4::{SigV4Signer, SignError, UNSIGNED_PAYLOAD};
use super::spec::{Mix, SizeSpec};
use super::stats::{Dispenser, ErrorLog, Live, Recorder};
use super::{Limit, LoadError, check_loopback, object_key};

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// What the S3 workers do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum S3Mode {
    /// PutObject of new objects.
    Put,
    /// GetObject of the prepared objects.
    Get,
    /// A weighted mix of put/get/list/delete (`--mix`).
    Mixed,
    /// ListObjectsV2 of the whole prefix, following continuation tokens.
    List,
    /// Create, UploadPart × N (parallel), Complete; one object of `--size` per operation.
    Multipart,
}

impl S3Mode {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            S3Mode::Put => "put",
            S3Mode::Get => "get",
            S3Mode::Mixed => "mixed",
            S3Mode::List => "list",
            S3Mode::Multipart => "multipart",
        }
    }
}

/// Operations of the `mixed` mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3Op {
    /// PutObject.
    Put,
    /// GetObject.
    Get,
    /// ListObjectsV2 (all pages).
    List,
    /// DeleteObject.
    Delete,
}

impl FromStr for S3Op {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "put" => Ok(S3Op::Put),
            "get" => Ok(S3Op::Get),
            "list" => Ok(S3Op::List),
            "delete" => Ok(S3Op::Delete),
            _ => Err(format!(
                "unknown S3 operation {s:?} (put, get, list, delete)"
            )),
        }
    }
}

/// Everything an S3 run needs.
#[derive(Debug, Clone)]
pub struct S3Config {
    /// `http://host:port`.
    pub endpoint: String,
    /// Allow a non-loopback endpoint.
    pub allow_remote: bool,
    /// Access key id.
    pub access_key: String,
    /// Secret key.
    pub secret_key: String,
    /// Bucket.
    pub bucket: String,
    /// Create the bucket first (an existing one is fine).
    pub create_bucket: bool,
    /// Mode.
    pub mode: S3Mode,
    /// Object sizes.
    pub size: SizeSpec,
    /// Parallel requests.
    pub concurrency: usize,
    /// End of the run.
    pub limit: Limit,
    /// Key prefix.
    pub prefix: String,
    /// Operation mix of `mixed`.
    pub mix: Mix<S3Op>,
    /// Prepared objects (get/mixed/list) or key space (put/multipart).
    pub objects: Option<u64>,
    /// Do not upload the prepared objects.
    pub no_prepare: bool,
    /// Multipart part size.
    pub part_size: u64,
    /// ListObjectsV2 page size.
    pub max_keys: u32,
    /// Check GET bodies byte by byte.
    pub verify: bool,
    /// Data seed.
    pub seed: u64,
    /// Per-operation timeout.
    pub timeout: Duration,
    /// No progress line.
    pub quiet: bool,
}

/// Prepared objects of get/mixed/list when `--objects` is not given.
pub const DEFAULT_OBJECTS: u64 = 100;

/// Why one operation failed.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// Unexpected HTTP status; `detail` is the S3 error code or the start of the body.
    #[error("HTTP {status}: {detail}")]
    Status {
        /// Status code.
        status: u16,
        /// Error code or body excerpt.
        detail: String,
    },
    /// Connection or protocol failure.
    #[error("transport: {0}")]
    Transport(String),
    /// The operation took longer than `--timeout`.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The body differs from the expected object.
    #[error("verify: {0}")]
    Verify(String),
    /// A response could not be understood.
    #[error("bad response: {0}")]
    Protocol(String),
    /// The request could not be signed.
    #[error(transparent)]
    Sign(#[from] SignError),
}

/// `err` and its sources, joined by `: `.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut s = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        s.push_str(": ");
        s.push_str(&e.to_string());
        cur = e.source();
    }
    s
}

fn empty() -> Body {
    Empty::new().boxed_unsync()
}

/// Body of bytes `offset .. offset + len` of object `key`, generated as it is sent.
fn object_body(seed: u64, key: &str, offset: u64, len: u64) -> Body {
    if len <= PIECE as u64 {
        Full::new(object_bytes(seed, key, offset, len as usize)).boxed_unsync()
    } else {
        let pieces = ObjectPieces::new(seed, key, offset, len).map(|b| Ok(Frame::data(b)));
        StreamBody::new(futures::stream::iter(pieces)).boxed_unsync()
    }
}

/// A signed S3 client for one bucket.
#[derive(Clone)]
pub struct S3Client {
    http: Client<HttpConnector, Body>,
    authority: String,
    signer: SigV4Signer,
    bucket: String,
}

impl S3Client {
    /// A client for `endpoint` (`http://host:port`) keeping up to `pool` idle connections.
    pub fn new(
        endpoint: &str,
        allow_remote: bool,
        signer: SigV4Signer,
        bucket: &str,
        pool: usize,
    ) -> Result<Self, LoadError> {
        let uri: Uri = endpoint
            .parse()
            .map_err(|e| LoadError::Usage(format!("endpoint {endpoint:?}: {e}")))?;
        if uri.scheme_str() != Some("http") {
            return Err(LoadError::Usage(format!(
                "endpoint {endpoint:?}: only http:// endpoints are supported"
            )));
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(LoadError::Usage(format!(
                "endpoint {endpoint:?}: no path or query allowed (the bucket is --bucket)"
            )));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| LoadError::Usage(format!("endpoint {endpoint:?}: no host")))?;
        check_loopback(authority.host(), allow_remote)?;
        if bucket.is_empty() || bucket.contains('/') {
            return Err(LoadError::Usage(format!("invalid bucket name {bucket:?}")));
        }
        let mut conn = HttpConnector::new();
        conn.set_nodelay(true);
        let http = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(pool.max(1))
            .pool_idle_timeout(Duration::from_secs(90))
            .build(conn);
        Ok(Self {
            http,
            authority: authority.to_string(),
            signer,
            bucket: bucket.to_string(),
        })
    }

    fn path(&self, key: Option<&str>) -> String {
        let b = utf8_percent_encode(&self.bucket, URI_ENCODE_SET);
        match key {
            None => format!("/{b}"),
            Some(k) => format!("/{b}/{}", utf8_percent_encode(k, KEY_ENCODE_SET)),
        }
    }

    async fn send(
        &self,
        method: Method,
        key: Option<&str>,
        query: &str,
        body: Body,
        len: Option<u64>,
    ) -> Result<Response<Incoming>, OpError> {
        let path = self.path(key);
        let mut headers = HeaderMap::new();
        headers.insert(
            HOST,
            HeaderValue::from_str(&self.authority)
                .map_err(|_| OpError::Protocol("bad host".into()))?,
        );
        self.signer.sign(
            method.as_str(),
            &path,
            query,
            &mut headers,
            UNSIGNED_PAYLOAD,
            SystemTime::now(),
        )?;
        if let Some(n) = len {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(n));
        }
        let uri = if query.is_empty() {
            format!("http://{}{path}", self.authority)
        } else {
            format!("http://{}{path}?{query}", self.authority)
        };
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .body(body)
            .map_err(|e| OpError::Protocol(e.to_string()))?;
        *req.headers_mut() = headers;
        self.http
            .request(req)
            .await
            .map_err(|e| OpError::Transport(error_chain(&e)))
    }

    /// PutObject of object `key` (`len` bytes of the seed's data).
    pub async fn put(&self, seed: u64, key: &str, len: u64) -> Result<u64, OpError> {
        let body = object_body(seed, key, 0, len);
        let resp = self
            .send(Method::PUT, Some(key), "", body, Some(len))
            .await?;
        drain(expect(resp, &[200]).await?).await?;
        Ok(len)
    }

    /// GetObject; checks the body with `verify` when given. Returns the body size.
    pub async fn get(&self, key: &str, mut verify: Option<Verifier>) -> Result<u64, OpError> {
        let resp = self.send(Method::GET, Some(key), "", empty(), None).await?;
        let mut body = expect(resp, &[200]).await?.into_body();
        let mut n = 0u64;
        while let Some(f) = body.frame().await {
            let f = f.map_err(|e| OpError::Transport(error_chain(&e)))?;
            if let Ok(d) = f.into_data() {
                n += d.len() as u64;
                if let Some(v) = verify.as_mut() {
                    v.update(&d);
                }
            }
        }
        if let Some(v) = verify {
            v.finish().map_err(OpError::Verify)?;
        }
        Ok(n)
    }

    /// DeleteObject.
    pub async fn delete(&self, key: &str) -> Result<(), OpError> {
        let resp = self
            .send(Method::DELETE, Some(key), "", empty(), None)
            .await?;
        drain(expect(resp, &[200, 204]).await?).await?;
        Ok(())
    }

    /// ListObjectsV2 of `prefix`, all pages of `max_keys`. Returns (response bytes, keys).
    pub async fn list(&self, prefix: &str, max_keys: u32) -> Result<(u64, u64), OpError> {
        let (mut bytes, mut keys) = (0u64, 0u64);
        let mut token: Option<String> = None;
        loop {
            let mut q = format!(
                "list-type=2&max-keys={max_keys}&prefix={}",
                utf8_percent_encode(prefix, URI_ENCODE_SET)
            );
            if let Some(t) = &token {
                q.push_str("&continuation-token=");
                q.extend(utf8_percent_encode(t, URI_ENCODE_SET));
            }
            let resp = self.send(Method::GET, None, &q, empty(), None).await?;
            let body = read_to_string(expect(resp, &[200]).await?, 64 << 20).await?;
            bytes += body.len() as u64;
            keys += body.matches("<Key>").count() as u64;
            if xml_text(&body, "IsTruncated").as_deref() != Some("true") {
                return Ok((bytes, keys));
            }
            let next = xml_text(&body, "NextContinuationToken").ok_or_else(|| {
                OpError::Protocol("truncated listing without NextContinuationToken".into())
            })?;
            if token.as_deref() == Some(next.as_str()) {
                return Err(OpError::Protocol(
                    "listing repeats its continuation token".into(),
                ));
            }
            token = Some(next);
        }
    }

    /// CreateBucket; an existing bucket of ours is fine.
    pub async fn create_bucket(&self) -> Result<(), OpError> {
        let resp = self.send(Method::PUT, None, "", empty(), Some(0)).await?;
        match expect(resp, &[200]).await {
            Ok(r) => drain(r).await.map(|_| ()),
            Err(OpError::Status {
                status: 409,
                detail,
            }) if detail == "BucketAlreadyOwnedByYou" => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// One multipart upload of object `key` (`size` bytes in parts of `part_size`), parts
    /// in parallel as far as `permits` allows. Each successful part is appended to `parts`
    /// as (latency, bytes). Returns the object size.
    pub async fn multipart(
        &self,
        seed: u64,
        key: &str,
        size: u64,
        part_size: u64,
        permits: &Semaphore,
        parts: &mut Vec<(Duration, u64)>,
    ) -> Result<u64, OpError> {
        let upload_id = {
            let _p = permits
                .acquire()
                .await
                .map_err(|e| OpError::Protocol(e.to_string()))?;
            let resp = self
                .send(Method::POST, Some(key), "uploads", empty(), Some(0))
                .await?;
            let body = read_to_string(expect(resp, &[200]).await?, 1 << 20).await?;
            xml_text(&body, "UploadId")
                .ok_or_else(|| OpError::Protocol("no UploadId in the response".into()))?
        };
        let id_q = utf8_percent_encode(&upload_id, URI_ENCODE_SET).to_string();
        let n_parts = size.div_ceil(part_size.max(1)).max(1);
        let uploads = (1..=n_parts).map(|pn| {
            let off = (pn - 1) * part_size;
            let len = part_size.min(size - off);
            let q = format!("partNumber={pn}&uploadId={id_q}");
            async move {
                let _p = permits
                    .acquire()
                    .await
                    .map_err(|e| OpError::Protocol(e.to_string()))?;
                let t = Instant::now();
                let resp = self
                    .send(
                        Method::PUT,
                        Some(key),
                        &q,
                        object_body(seed, key, off, len),
                        Some(len),
                    )
                    .await?;
                let resp = expect(resp, &[200]).await?;
                let etag = resp
                    .headers()
                    .get(ETAG)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
                    .ok_or_else(|| OpError::Protocol(format!("part {pn}: no ETag")))?;
                drain(resp).await?;
                Ok::<_, OpError>((pn, etag, t.elapsed(), len))
            }
        });
        let results = futures::future::join_all(uploads).await;
        let mut etags = Vec::with_capacity(results.len());
        let mut first_err = None;
        for r in results {
            match r {
                Ok((pn, etag, took, len)) => {
                    parts.push((took, len));
                    etags.push((pn, etag));
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        let done = match first_err {
            Some(e) => Err(e),
            None => self.complete(key, &id_q, &etags, permits).await,
        };
        if done.is_err() {
            // Best effort: do not leave the parts behind.
            if let Ok(r) = self
                .send(
                    Method::DELETE,
                    Some(key),
                    &format!("uploadId={id_q}"),
                    empty(),
                    None,
                )
                .await
            {
                let _ = drain(r).await;
            }
        }
        done.map(|()| size)
    }

    async fn complete(
        &self,
        key: &str,
        id_q: &str,
        etags: &[(u64, String)],
        permits: &Semaphore,
    ) -> Result<(), OpError> {
        let mut xml = String::from("<CompleteMultipartUpload>");
        for (pn, etag) in etags {
            xml.push_str(&format!(
                "<Part><PartNumber>{pn}</PartNumber><ETag>{}</ETag></Part>",
                xml_escape(etag)
            ));
        }
        xml.push_str("</CompleteMultipartUpload>");
        let len = xml.len() as u64;
        let _p = permits
            .acquire()
            .await
            .map_err(|e| OpError::Protocol(e.to_string()))?;
        let resp = self
            .send(
                Method::POST,
                Some(key),
                &format!("uploadId={id_q}"),
                Full::new(Bytes::from(xml)).boxed_unsync(),
                Some(len),
            )
            .await?;
        // S3 may report a failed completion with status 200 and an <Error> body.
        let body = read_to_string(expect(resp, &[200]).await?, 1 << 20).await?;
        if body.contains("<Error>") {
            return Err(OpError::Status {
                status: 200,
                detail: xml_text(&body, "Code").unwrap_or_else(|| "Error".into()),
            });
        }
        Ok(())
    }
}

/// `resp` when its status is in `ok`, otherwise the status and the S3 error code.
async fn expect(resp: Response<Incoming>, ok: &[u16]) -> Result<Response<Incoming>, OpError> {
    let status = resp.status();
    if ok.contains(&status.as_u16()) {
        return Ok(resp);
    }
    let body = read_to_string(resp, 64 << 10).await.unwrap_or_default();
    let detail = xml_text(&body, "Code").unwrap_or_else(|| {
        let t: String = body.trim().chars().take(160).collect();
        if t.is_empty() {
            status.canonical_reason().unwrap_or("").to_string()
        } else {
            t
        }
    });
    Err(OpError::Status {
        status: status.as_u16(),
        detail,
    })
}

/// Reads and discards the body; returns its size.
async fn drain(resp: Response<Incoming>) -> Result<u64, OpError> {
    let mut body = resp.into_body();
    let mut n = 0u64;
    while let Some(f) = body.frame().await {
        let f = f.map_err(|e| OpError::Transport(error_chain(&e)))?;
        if let Ok(d) = f.into_data() {
            n += d.len() as u64;
        }
    }
    Ok(n)
}

/// The body as text, refusing more than `limit` bytes.
async fn read_to_string(resp: Response<Incoming>, limit: usize) -> Result<String, OpError> {
    let mut body = resp.into_body();
    let mut out = Vec::new();
    while let Some(f) = body.frame().await {
        let f = f.map_err(|e| OpError::Transport(error_chain(&e)))?;
        if let Ok(d) = f.into_data() {
            if out.len() + d.len() > limit {
                return Err(OpError::Protocol(format!(
                    "response body over {limit} bytes"
                )));
            }
            out.extend_from_slice(&d);
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Text of the first `<tag>…</tag>` in `xml`, entities decoded.
pub fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&close)?;
    Some(xml_unescape(&xml[start..end]))
}

fn xml_unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(semi) = rest.find(';') else { break };
        let ent = &rest[1..semi];
        let ch = match ent {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => ent
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| ent.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match ch {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Runs `f` with a timeout.
async fn timed<T>(
    t: Duration,
    f: impl std::future::Future<Output = Result<T, OpError>>,
) -> Result<T, OpError> {
    tokio::time::timeout(t, f)
        .await
        .unwrap_or(Err(OpError::Timeout(t)))
}

struct Shared {
    cfg: S3Config,
    client: S3Client,
    live: Arc<Live>,
    log: ErrorLog,
    /// Objects `0..stable` exist before the run (get/mixed/list).
    stable: u64,
    /// Objects written by mixed-mode PUTs, oldest first (what DELETEs remove).
    fresh: Mutex<VecDeque<u64>>,
    /// In-flight request limit of multipart mode.
    permits: Semaphore,
}

impl Shared {
    async fn do_put(&self, rec: &mut Recorder, idx: u64) -> bool {
        let key = object_key(&self.cfg.prefix, idx);
        let len = self.cfg.size.size_for(self.cfg.seed, &key);
        let t = Instant::now();
        match timed(self.cfg.timeout, self.client.put(self.cfg.seed, &key, len)).await {
            Ok(n) => {
                rec.ok(&self.live, "put", t, n);
                true
            }
            Err(e) => {
                rec.err(&self.live, &self.log, "put", &key, &e.to_string());
                false
            }
        }
    }

    async fn do_get(&self, rec: &mut Recorder, idx: u64) {
        let key = object_key(&self.cfg.prefix, idx);
        let verify = self.cfg.verify.then(|| {
            let len = self.cfg.size.size_for(self.cfg.seed, &key);
            Verifier::new(self.cfg.seed, &key, len)
        });
        let t = Instant::now();
        match timed(self.cfg.timeout, self.client.get(&key, verify)).await {
            Ok(n) => rec.ok(&self.live, "get", t, n),
            Err(e) => rec.err(&self.live, &self.log, "get", &key, &e.to_string()),
        }
    }

    async fn do_list(&self, rec: &mut Recorder) {
        let t = Instant::now();
        let list = async {
            let (bytes, keys) = self
                .client
                .list(&self.cfg.prefix, self.cfg.max_keys)
                .await?;
            // The prepared objects are never deleted during a run: a listing that misses
            // some is wrong (e.g. broken pagination).
            if keys < self.stable {
                return Err(OpError::Protocol(format!(
                    "listed {keys} keys, expected at least the {} prepared objects",
                    self.stable
                )));
            }
            Ok(bytes)
        };
        match timed(self.cfg.timeout, list).await {
            Ok(bytes) => rec.ok(&self.live, "list", t, bytes),
            Err(e) => rec.err(
                &self.live,
                &self.log,
                "list",
                &self.cfg.prefix,
                &e.to_string(),
            ),
        }
    }

    async fn do_delete(&self, rec: &mut Recorder, idx: u64) {
        let key = object_key(&self.cfg.prefix, idx);
        let t = Instant::now();
        match timed(self.cfg.timeout, self.client.delete(&key)).await {
            Ok(()) => rec.ok(&self.live, "delete", t, 0),
            Err(e) => rec.err(&self.live, &self.log, "delete", &key, &e.to_string()),
        }
    }

    async fn do_multipart(&self, rec: &mut Recorder, idx: u64) {
        let key = object_key(&self.cfg.prefix, idx);
        let size = self.cfg.size.size_for(self.cfg.seed, &key);
        let mut parts = Vec::new();
        let t = Instant::now();
        let r = timed(
            self.cfg.timeout,
            self.client.multipart(
                self.cfg.seed,
                &key,
                size,
                self.cfg.part_size,
                &self.permits,
                &mut parts,
            ),
        )
        .await;
        for (took, len) in parts {
            // Parts drive the progress line; completed uploads are counted once below.
            rec.ok_elapsed(Some(&self.live), "part", took, len);
        }
        match r {
            Ok(n) => rec.ok_elapsed(None, "multipart", t.elapsed(), n),
            Err(e) => rec.err(&self.live, &self.log, "multipart", &key, &e.to_string()),
        }
    }

    /// Key number for write number `i` of put/multipart.
    fn write_index(&self, i: u64) -> u64 {
        match self.cfg.objects {
            Some(n) if n > 0 => i % n,
            _ => i,
        }
    }

    async fn op(&self, rec: &mut Recorder, i: u64) {
        match self.cfg.mode {
            S3Mode::Put => {
                self.do_put(rec, self.write_index(i)).await;
            }
            S3Mode::Multipart => self.do_multipart(rec, self.write_index(i)).await,
            S3Mode::Get => self.do_get(rec, i % self.stable.max(1)).await,
            S3Mode::List => self.do_list(rec).await,
            S3Mode::Mixed => {
                let r = splitmix64(self.cfg.seed ^ i.rotate_left(17));
                match self.cfg.mix.pick(r) {
                    S3Op::Get => self.do_get(rec, splitmix64(r) % self.stable.max(1)).await,
                    S3Op::List => self.do_list(rec).await,
                    S3Op::Delete => {
                        let victim = self.fresh.lock().ok().and_then(|mut q| q.pop_front());
                        match victim {
                            Some(idx) => self.do_delete(rec, idx).await,
                            None => self.mixed_put(rec, i).await,
                        }
                    }
                    S3Op::Put => self.mixed_put(rec, i).await,
                }
            }
        }
    }

    async fn mixed_put(&self, rec: &mut Recorder, i: u64) {
        let idx = self.stable + i;
        if self.do_put(rec, idx).await {
            if let Ok(mut q) = self.fresh.lock() {
                q.push_back(idx);
            }
        }
    }
}

/// Runs `workers` tasks pulling operation numbers from `disp`; returns their merged
/// statistics.
async fn run_workers(sh: &Arc<Shared>, workers: usize, disp: Arc<Dispenser>) -> Recorder {
    let mut tasks = Vec::with_capacity(workers);
    for _ in 0..workers {
        let (sh, disp) = (sh.clone(), disp.clone());
        tasks.push(tokio::spawn(async move {
            let mut rec = Recorder::default();
            while let Some(i) = disp.next() {
                sh.op(&mut rec, i).await;
            }
            rec
        }));
    }
    let mut all = Recorder::default();
    for t in tasks {
        match t.await {
            Ok(r) => all.merge(&r),
            Err(e) => {
                let mut r = Recorder::default();
                r.err(&sh.live, &sh.log, "worker", "-", &e.to_string());
                all.merge(&r);
            }
        }
    }
    all
}

/// Uploads objects `0..n` (not measured); fails on the first error.
async fn prepare(sh: &Arc<Shared>, n: u64) -> Result<(), LoadError> {
    let t = Instant::now();
    let prep = Arc::new(Shared {
        cfg: S3Config {
            mode: S3Mode::Put,
            objects: None,
            ..sh.cfg.clone()
        },
        client: sh.client.clone(),
        live: Arc::default(),
        log: ErrorLog::default(),
        stable: 0,
        fresh: Mutex::new(VecDeque::new()),
        permits: Semaphore::new(1),
    });
    let rec = run_workers(
        &prep,
        sh.cfg.concurrency.min(n as usize).max(1),
        Arc::new(Dispenser::new(Some(n), None)),
    )
    .await;
    let errors: u64 = rec.ops.values().map(|s| s.errors).sum();
    if errors > 0 {
        let first = prep.log.samples().into_iter().next().unwrap_or_default();
        return Err(LoadError::Setup(format!(
            "uploading {n} objects: {errors} failed, first: {first}"
        )));
    }
    if !sh.cfg.quiet {
        eprintln!(
            "prepared {n} objects under {} in {:.2} s",
            sh.cfg.prefix,
            t.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// Runs an S3 load and returns its report.
pub async fn run(cfg: S3Config) -> Result<Report, LoadError> {
    if cfg.concurrency == 0 {
        return Err(LoadError::Usage("--concurrency must be at least 1".into()));
    }
    if cfg.max_keys == 0 {
        return Err(LoadError::Usage("--max-keys must be at least 1".into()));
    }
    if cfg.mode == S3Mode::Multipart && cfg.part_size == 0 {
        return Err(LoadError::Usage(
            "--part-size must be at least 1 byte".into(),
        ));
    }
    let signer = SigV4Signer::new(&cfg.access_key, &cfg.secret_key);
    let client = S3Client::new(
        &cfg.endpoint,
        cfg.allow_remote,
        signer,
        &cfg.bucket,
        cfg.concurrency,
    )?;
    if cfg.create_bucket {
        timed(cfg.timeout, client.create_bucket())
            .await
            .map_err(|e| LoadError::Setup(format!("creating bucket {}: {e}", cfg.bucket)))?;
    }
    let stable = match cfg.mode {
        S3Mode::Get | S3Mode::Mixed | S3Mode::List => cfg.objects.unwrap_or(DEFAULT_OBJECTS),
        S3Mode::Put | S3Mode::Multipart => 0,
    };
    if matches!(cfg.mode, S3Mode::Get | S3Mode::Mixed) && stable == 0 {
        return Err(LoadError::Usage(
            "--objects must be at least 1 for get and mixed".into(),
        ));
    }
    // Multipart: enough uploads in flight to keep `concurrency` parts going.
    let workers = if cfg.mode == S3Mode::Multipart {
        let parts = cfg.size.min.div_ceil(cfg.part_size).max(1);
        (cfg.concurrency as u64).div_ceil(parts).max(1) as usize
    } else {
        cfg.concurrency
    };
    let info = RunInfo {
        protocol: "s3",
        mode: cfg.mode.name().to_string(),
        target: cfg.endpoint.clone(),
        concurrency: cfg.concurrency,
        size: cfg.size,
        seed: cfg.seed,
        verify: cfg.verify,
    };
    let sh = Arc::new(Shared {
        permits: Semaphore::new(cfg.concurrency),
        cfg,
        client,
        live: Arc::default(),
        log: ErrorLog::default(),
        stable,
        fresh: Mutex::new(VecDeque::new()),
    });
    if stable > 0 && !sh.cfg.no_prepare {
        prepare(&sh, stable).await?;
    }
    let progress = Progress::start(
        sh.live.clone(),
        format!("s3 {}", sh.cfg.mode.name()),
        sh.cfg.quiet,
    );
    let start = Instant::now();
    let rec = run_workers(&sh, workers, Arc::new(sh.cfg.limit.dispenser())).await;
    let elapsed = start.elapsed();
    drop(progress);
    Ok(Report::new(
        &info,
        &rec,
        elapsed,
        sh.log.samples(),
        &["part"],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_helpers() {
        let body = "<ListBucketResult><IsTruncated>true</IsTruncated>\
            <NextContinuationToken>a&amp;b&lt;c&#x2F;&#47;&bogus;</NextContinuationToken>\
            <Contents><Key>k1</Key></Contents><Contents><Key>k2</Key></Contents></ListBucketResult>";
        assert_eq!(xml_text(body, "IsTruncated").as_deref(), Some("true"));
        assert_eq!(
            xml_text(body, "NextContinuationToken").as_deref(),
            Some("a&b<c//&bogus;")
        );
        assert_eq!(xml_text(body, "Key").as_deref(), Some("k1"));
        assert_eq!(xml_text(body, "UploadId"), None);
        assert_eq!(xml_escape("\"a&b<c>\""), "\"a&amp;b&lt;c&gt;\"");
    }

    #[test]
    fn endpoint_checks() {
        let s = || SigV4Signer::new("k", "s");
        assert!(S3Client::new("http://127.0.0.1:9000", false, s(), "b", 4).is_ok());
        assert!(S3Client::new("http://localhost:9000/", false, s(), "b", 4).is_ok());
        assert!(matches!(
            S3Client::new("http://10.1.2.3:9000", false, s(), "b", 4),
            Err(LoadError::Remote(_))
        ));
        assert!(S3Client::new("http://10.1.2.3:9000", true, s(), "b", 4).is_ok());
        for bad in [
            "https://127.0.0.1:9000",
            "http://127.0.0.1:9000/b",
            "127.0.0.1:9000",
        ] {
            assert!(
                matches!(
                    S3Client::new(bad, false, s(), "b", 4),
                    Err(LoadError::Usage(_))
                ),
                "{bad}"
            );
        }
        assert!(S3Client::new("http://127.0.0.1:9000", false, s(), "a/b", 4).is_err());
        let c = S3Client::new("http://127.0.0.1:9000", false, s(), "b", 4).unwrap();
        assert_eq!(c.path(Some("dir/a b+c")), "/b/dir/a%20b%2Bc");
        assert_eq!(c.path(None), "/b");
    }

    #[test]
    fn mix_parses_s3_ops() {
        let m: Mix<S3Op> = "put=30,get=60,list=5,delete=5".parse().unwrap();
        assert_eq!(
            m.kinds().collect::<Vec<_>>(),
            vec![S3Op::Put, S3Op::Get, S3Op::List, S3Op::Delete]
        );
        assert!("put=1,stat=1".parse::<Mix<S3Op>>().is_err());
    }
}
