//! The Hub bucket API client (spec §7).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderValue, Method, header};
use reqwest::Url;

use crate::cas::CasClient;
use crate::coalesce::{CallFuture, Coalescer, Job};
use crate::config::UpstreamConfig;
use crate::encode::{BucketId, quote_segment, validate_part};
use crate::error::{Result, UpstreamError};
use crate::link::find_rel;
use crate::models::{
    BatchFailure, BatchOp, BatchOutcome, BucketInfo, CreateBucketOptions, RawBatchReply,
    RemoteFile, ResolvedFile, TreeEntry, WhoAmI, batch_ndjson, parse_bucket_page, parse_paths_info,
    parse_tree_page,
};
use crate::session::HubInner;
use crate::token::{TokenCache, TokenScope, XetToken};
use crate::transport::{Req, Transport};

/// Most paths per `paths-info` request.
pub const PATHS_INFO_MAX: usize = 1000;
/// Most operations per `batch` request.
pub const BATCH_MAX_OPS: usize = 1000;
/// The public Hub, whose URLs in refresh routes are rewritten to the configured endpoint.
const PUBLIC_HUB: &str = "https://huggingface.co";

/// Client of the Hub bucket API. Cheap to clone (shared state behind an `Arc`).
///
/// Every call sends `Authorization: Bearer <hf token>` when a token is configured. Calls
/// are retried on connect errors, timeouts, 5xx, 408 and 429 (see
/// [`crate::RetryConfig`]); other failures are returned at once as an [`UpstreamError`].
#[derive(Clone, Debug)]
pub struct HubClient {
    inner: Arc<HubInner>,
    /// CAS clients per token URL. Kept out of `HubInner` so that a `CasClient` (which holds
    /// the `HubInner` for token refreshes) does not form a reference cycle.
    cas: Arc<Mutex<HashMap<String, CasClient>>>,
    /// Concurrent commits per bucket, sent together (see `crate::coalesce`).
    commits: Arc<Coalescer<CommitJob>>,
    /// Concurrent single-object lookups per bucket, sent together.
    lookups: Arc<Coalescer<LookupJob>>,
    /// Calls made through this handle are background work (longer rate-limit budget).
    background: bool,
}

impl HubClient {
    /// Builds a client for the Hub at `endpoint` (e.g. `https://huggingface.co`, or the
    /// embedded hub's `http://127.0.0.1:port`) with an optional HF token. Installs the
    /// rustls `ring` crypto provider if none is installed.
    pub fn new(endpoint: &str, hf_token: Option<String>, config: UpstreamConfig) -> Result<Self> {
        let endpoint = endpoint.trim_end_matches('/').to_string();
        let url = Url::parse(&endpoint)
            .map_err(|e| UpstreamError::Config(format!("bad hub endpoint {endpoint:?}: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(UpstreamError::Config(format!(
                "hub endpoint must be http(s): {endpoint}"
            )));
        }
        let transport = Arc::new(Transport::new(config)?);
        Ok(HubClient {
            inner: Arc::new(HubInner {
                transport,
                endpoint,
                token: hf_token.filter(|t| !t.is_empty()),
                whoami: tokio::sync::OnceCell::new(),
                tokens: TokenCache::new(),
            }),
            cas: Arc::new(Mutex::new(HashMap::new())),
            commits: Arc::default(),
            lookups: Arc::default(),
            background: false,
        })
    }

    /// This client for background work: its calls may wait a whole rate-limit window of
    /// the Hub (`RetryConfig::background_rate_limit_budget`) instead of the interactive
    /// budget. Shares everything else (tokens, coalescing, rate-limit state).
    pub fn background(&self) -> HubClient {
        HubClient {
            background: true,
            ..self.clone()
        }
    }

    /// The endpoint, without trailing slash.
    pub fn endpoint(&self) -> &str {
        &self.inner.endpoint
    }

    /// The configuration in use.
    pub fn config(&self) -> &UpstreamConfig {
        &self.inner.transport.cfg
    }

    /// The `X-Xet-Session-Id` sent on Xet requests.
    pub fn session_id(&self) -> &str {
        &self.inner.transport.session_id
    }

    fn url(&self, path: &str) -> Result<Url> {
        crate::transport::join_url(&self.inner.endpoint, path)
    }

    fn req(&self, op: &'static str, method: Method, path: &str) -> Result<Req> {
        let mut req = Req::new(op, method, self.url(path)?).bearer(self.inner.token.as_deref());
        req.background = self.background;
        Ok(req)
    }

    async fn send(&self, req: &Req) -> Result<crate::transport::RawResponse> {
        self.inner.transport.execute(req).await
    }

    /// `GET /api/whoami-v2`. Cached for the life of the client (the route is strictly
    /// rate-limited). 401 = bad or missing token.
    pub async fn whoami(&self) -> Result<WhoAmI> {
        self.inner
            .whoami
            .get_or_try_init(|| async {
                let req = self.req("whoami", Method::GET, "/api/whoami-v2")?;
                let resp = self.send(&req).await?;
                if !resp.is_success() {
                    return Err(resp.error("whoami"));
                }
                resp.json::<WhoAmI>("whoami")
            })
            .await
            .cloned()
    }

    /// The caller's namespace (`whoami().name`).
    pub async fn namespace(&self) -> Result<String> {
        Ok(self.whoami().await?.name)
    }

    /// `POST /api/buckets/{namespace}/{name}`; returns the bucket URL. 409 becomes
    /// [`UpstreamError::AlreadyExists`] carrying the `url` of the 409 body (also what a
    /// retry after a lost 5xx answer may see). Namespace `me` = the caller.
    pub async fn create_bucket(
        &self,
        namespace: &str,
        name: &str,
        options: &CreateBucketOptions,
    ) -> Result<String> {
        const OP: &str = "create bucket";
        validate_part("namespace", namespace)?;
        validate_part("bucket name", name)?;
        let body = serde_json::to_value(options).map_err(|e| UpstreamError::decode(OP, e))?;
        let req = self
            .req(
                OP,
                Method::POST,
                &format!("/api/buckets/{namespace}/{name}"),
            )?
            .json_body(&body);
        let resp = self.send(&req).await?;
        let url_of = |body: &[u8]| -> Option<String> {
            let v: serde_json::Value = serde_json::from_slice(body).ok()?;
            v.get("url")?.as_str().map(str::to_string)
        };
        match resp.status {
            200..=299 => {
                url_of(&resp.body).ok_or_else(|| UpstreamError::decode(OP, "response without url"))
            }
            409 => Err(UpstreamError::AlreadyExists {
                url: url_of(&resp.body).unwrap_or_default(),
            }),
            _ => Err(resp.error(OP)),
        }
    }

    /// `GET /api/buckets/{id}`. 404 (`X-Error-Code: RepoNotFound`) = no such bucket.
    pub async fn bucket_info(&self, id: &BucketId) -> Result<BucketInfo> {
        const OP: &str = "bucket info";
        let req = self.req(OP, Method::GET, &format!("/api/buckets/{id}"))?;
        let resp = self.send(&req).await?;
        if !resp.is_success() {
            return Err(resp.error(OP));
        }
        resp.json(OP)
    }

    /// `GET /api/buckets/{namespace}[?search=…]` (namespace `me` = the caller), one page at
    /// a time; pages are linked with `Link rel="next"`, followed verbatim.
    pub fn list_buckets(&self, namespace: &str, search: Option<&str>) -> Result<Pager<BucketInfo>> {
        validate_part("namespace", namespace)?;
        let mut url = self.url(&format!("/api/buckets/{namespace}"))?;
        if let Some(s) = search {
            url.query_pairs_mut().append_pair("search", s);
        }
        Ok(Pager::new(
            self.clone(),
            "list buckets",
            url,
            parse_bucket_page,
        ))
    }

    /// `DELETE /api/buckets/{id}`. 404 = no such bucket.
    pub async fn delete_bucket(&self, id: &BucketId) -> Result<()> {
        const OP: &str = "delete bucket";
        let req = self.req(OP, Method::DELETE, &format!("/api/buckets/{id}"))?;
        let resp = self.send(&req).await?;
        if !resp.is_success() {
            return Err(resp.error(OP));
        }
        Ok(())
    }

    /// `PUT /api/buckets/{id}/settings` with `{"private": bool}`.
    pub async fn update_bucket_settings(&self, id: &BucketId, private: bool) -> Result<()> {
        const OP: &str = "bucket settings";
        let req = self
            .req(OP, Method::PUT, &format!("/api/buckets/{id}/settings"))?
            .json_body(&serde_json::json!({ "private": private }));
        let resp = self.send(&req).await?;
        if !resp.is_success() {
            return Err(resp.error(OP));
        }
        Ok(())
    }

    /// `POST /api/repos/move` with `{"fromRepo","toRepo","type":"bucket"}` (rename/move a
    /// bucket). 404 = no such source; 409 = destination exists.
    pub async fn move_bucket(&self, from: &BucketId, to: &BucketId) -> Result<()> {
        const OP: &str = "move bucket";
        let req = self
            .req(OP, Method::POST, "/api/repos/move")?
            .json_body(&serde_json::json!({
                "fromRepo": from.to_string(),
                "toRepo": to.to_string(),
                "type": "bucket",
            }));
        let resp = self.send(&req).await?;
        if !resp.is_success() {
            return Err(resp.error(OP));
        }
        Ok(())
    }

    /// `GET /api/buckets/{id}/tree[/{quote(prefix, safe="")}]?recursive=…`, one page at a
    /// time (stop early by dropping the pager). The prefix is matched lexically by the Hub
    /// (`logs` also matches `logs.json`); filter client-side for directory semantics.
    /// `recursive = None` omits the parameter (server default: non-recursive). An unknown
    /// prefix gives an empty listing; 404 = no such bucket.
    pub fn list_tree(
        &self,
        id: &BucketId,
        prefix: Option<&str>,
        recursive: Option<bool>,
    ) -> Result<Pager<TreeEntry>> {
        let mut path = format!("/api/buckets/{id}/tree");
        if let Some(p) = prefix.filter(|p| !p.is_empty()) {
            path.push('/');
            path.push_str(&quote_segment(p));
        }
        let mut url = self.url(&path)?;
        if let Some(r) = recursive {
            url.query_pairs_mut()
                .append_pair("recursive", if r { "true" } else { "false" });
        }
        Ok(Pager::new(self.clone(), "list tree", url, parse_tree_page))
    }

    /// `POST /api/buckets/{id}/paths-info` with `{"paths": [...]}`, split into requests of
    /// at most 1000 paths. Missing paths are silently omitted from the answer; only files
    /// are returned.
    pub async fn paths_info(&self, id: &BucketId, paths: &[String]) -> Result<Vec<RemoteFile>> {
        const OP: &str = "paths info";
        let mut out = Vec::new();
        for group in paths.chunks(PATHS_INFO_MAX) {
            let req = self
                .req(OP, Method::POST, &format!("/api/buckets/{id}/paths-info"))?
                .json_body(&serde_json::json!({ "paths": group }));
            let resp = self.send(&req).await?;
            if !resp.is_success() {
                return Err(resp.error(OP));
            }
            out.extend(parse_paths_info(&resp.body)?);
        }
        Ok(out)
    }

    /// `POST /api/buckets/{id}/batch` (NDJSON, `Content-Type: application/x-ndjson`, every
    /// line ending in `\n`). Operations are sent copies first, then adds, then deletes, at
    /// most 1000 per request. Both 200 and 422 carry `{"failed": [...]}`; their failures are
    /// collected in the outcome (the batch is not transactional). Any other status is an
    /// error (earlier requests stay applied). Retried on 5xx: operations are idempotent.
    pub async fn batch(&self, id: &BucketId, ops: &[BatchOp]) -> Result<BatchOutcome> {
        const OP: &str = "batch";
        let mut sorted: Vec<&BatchOp> = ops.iter().collect();
        sorted.sort_by_key(|op| op.rank());
        let mut outcome = BatchOutcome::default();
        for group in sorted.chunks(BATCH_MAX_OPS) {
            let owned: Vec<BatchOp> = group.iter().map(|o| (*o).clone()).collect();
            let req = self
                .req(OP, Method::POST, &format!("/api/buckets/{id}/batch"))?
                .header(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/x-ndjson"),
                )
                .body(Bytes::from(batch_ndjson(&owned)));
            let resp = self.send(&req).await?;
            outcome.requests += 1;
            match resp.status {
                200..=299 | 422 => {
                    let reply: RawBatchReply = resp.json(OP)?;
                    outcome.failed.extend(reply.failed);
                }
                _ => return Err(resp.error(OP)),
            }
        }
        Ok(outcome)
    }

    /// Commits `ops`, the batch operations of ONE commit (e.g. an object's `addFile` and
    /// its sidecar's), in one `/batch` call. Commits of the same bucket made while a call is
    /// in flight share the next call (at most [`BATCH_MAX_OPS`] operations; the ops of one
    /// commit are never split unless they alone exceed it): a lone commit is sent at once.
    /// Returns the failures among `ops`; a failure of the whole call is the error of every
    /// commit in it. Callers keep per-path order themselves (one commit per path in flight).
    pub async fn commit(&self, id: &BucketId, ops: Vec<BatchOp>) -> Result<Vec<BatchFailure>> {
        self.commits.submit(self, id, ops).await
    }

    /// Announces a commit to bucket `id` that is on its way (e.g. a PUT whose body is
    /// still being uploaded): while the returned guard lives, a commit of the bucket that
    /// finds no call in flight waits for it (at most 50 ms) so they share one call. Drop it
    /// before calling [`HubClient::commit`]. Without announcements a lone commit is sent
    /// at once.
    pub fn expect_commit(&self, id: &BucketId) -> CommitAnnouncement {
        CommitAnnouncement {
            _guard: self.commits.expect(id),
        }
    }

    /// Whether the Hub said less than half of the `/api/` budget is left in its window.
    pub(crate) fn api_budget_scarce(&self) -> bool {
        self.inner
            .transport
            .budget_scarce(crate::ratelimit::RouteClass::Api)
    }

    /// `paths-info` for `paths`, one lookup: lookups of the same bucket made while a call is
    /// in flight share the next call (up to [`PATHS_INFO_MAX`] paths). Returns the files
    /// found among `paths`.
    pub async fn lookup(&self, id: &BucketId, paths: Vec<String>) -> Result<Vec<RemoteFile>> {
        self.lookups.submit(self, id, paths).await
    }

    /// `HEAD /buckets/{id}/resolve/{quote(path, safe="")}` with `Accept-Encoding: identity`.
    /// Redirects are followed only while they stay on the Hub's origin and the response
    /// carries no `X-Xet-Hash`; otherwise the metadata is read from the redirect itself.
    /// 404 (`EntryNotFound`) = no such file.
    pub async fn resolve_head(&self, id: &BucketId, path: &str) -> Result<ResolvedFile> {
        const OP: &str = "resolve";
        let mut url = self.url(&format!("/buckets/{id}/resolve/{}", quote_segment(path)))?;
        let hub_origin = self.url("/")?.origin();
        for _ in 0..5 {
            let req = Req::new(OP, Method::HEAD, url.clone())
                .bearer(self.inner.token.as_deref())
                .header(
                    header::ACCEPT_ENCODING,
                    HeaderValue::from_static("identity"),
                );
            let resp = self.send(&req).await?;
            let h = &resp.headers;
            let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
            let is_redirect = (300..400).contains(&resp.status);
            if !resp.is_success() && !is_redirect {
                return Err(resp.error(OP));
            }
            let location = get("location");
            if is_redirect && get("x-xet-hash").is_none() {
                if let Some(next) = location.as_deref().and_then(|l| url.join(l).ok()) {
                    if next.origin() == hub_origin {
                        url = next;
                        continue;
                    }
                }
            }
            let xet_hash = match get("x-xet-hash") {
                Some(s) => Some(
                    hugbucket_engine::XetHash::from_hex(s.trim())
                        .map_err(|e| UpstreamError::decode(OP, e))?,
                ),
                None => None,
            };
            let size = get("x-linked-size")
                .or_else(|| {
                    if is_redirect {
                        None
                    } else {
                        get("content-length")
                    }
                })
                .and_then(|s| s.trim().parse::<u64>().ok());
            let xet_auth_url = find_rel(h, "xet-auth")
                .or_else(|| get("x-xet-refresh-route"))
                .map(|u| self.rewrite_public_hub(&u));
            return Ok(ResolvedFile {
                status: resp.status,
                xet_hash,
                size,
                xet_auth_url,
                reconstruction_url: find_rel(h, "xet-reconstruction-info"),
                etag: get("etag"),
                content_type: get("content-type"),
                location: if is_redirect { location } else { None },
            });
        }
        Err(UpstreamError::decode(OP, "too many redirects"))
    }

    /// Rewrites `https://huggingface.co/...` to the configured endpoint; relative routes
    /// are made absolute.
    fn rewrite_public_hub(&self, u: &str) -> String {
        if let Some(rest) = u.strip_prefix(PUBLIC_HUB) {
            if rest.is_empty() || rest.starts_with('/') {
                return format!("{}{}", self.inner.endpoint, rest);
            }
        }
        if u.starts_with('/') {
            return format!("{}{}", self.inner.endpoint, u);
        }
        u.to_string()
    }

    /// The token route of a bucket: `{endpoint}/api/buckets/{id}/xet-{read|write}-token`
    /// (no revision segment for buckets).
    pub fn token_url(&self, id: &BucketId, scope: TokenScope) -> String {
        format!("{}/api/buckets/{id}/{}", self.inner.endpoint, scope.route())
    }

    /// A Xet token for `id` and `scope`, from the cache while `exp > now + margin`
    /// (default 30 s), else fetched (`GET` token route, Hub auth). Concurrent callers share
    /// one fetch. Besides `exp`, a 401 from a CAS call drops the token: the call is sent once
    /// more with a new one.
    pub async fn xet_token(&self, id: &BucketId, scope: TokenScope) -> Result<XetToken> {
        self.xet_token_from_url(&self.token_url(id, scope)).await
    }

    /// Like [`HubClient::xet_token`] for an explicit refresh URL (e.g.
    /// [`ResolvedFile::xet_auth_url`]); cached per URL.
    pub async fn xet_token_from_url(&self, url: &str) -> Result<XetToken> {
        self.inner.xet_token_from_url(url).await
    }

    /// Drops the cached token of `id` and `scope`, so the next call fetches a new one (the
    /// CAS client does this itself when a call answers 401).
    pub fn forget_xet_token(&self, id: &BucketId, scope: TokenScope) {
        self.inner.tokens.invalidate(&self.token_url(id, scope));
    }

    /// Fetches a token without the cache. JSON body `{"accessToken","exp","casUrl"}`
    /// (headers `X-Xet-*` as a fallback). 401/403 = not allowed; 404 = no such bucket.
    pub async fn fetch_token(&self, url: &str) -> Result<XetToken> {
        self.inner.fetch_token(url).await
    }

    /// The CAS client for `id` and `scope` (one per token URL, shared, so the remembered
    /// API fallbacks persist). Its token comes from [`HubClient::xet_token`].
    pub fn cas(&self, id: &BucketId, scope: TokenScope) -> CasClient {
        self.cas_for_token_url(&self.token_url(id, scope))
    }

    /// The CAS client whose token comes from `token_url` (e.g. a `xet-auth` link).
    pub fn cas_for_token_url(&self, token_url: &str) -> CasClient {
        let mut map = self.cas.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(token_url.to_string())
            .or_insert_with(|| CasClient::from_hub(self.inner.clone(), token_url.to_string()))
            .clone()
    }
}

/// Commits coalesced per bucket as [`HubClient::commit`]'s are, on a queue of their own
/// whose `/batch` calls for one bucket are at least `pace` apart: whatever arrives in the
/// meantime shares the next call (e.g. multipart part records: a long upload costs one
/// `/api/` call per interval, whatever its number of parts).
#[derive(Debug)]
pub struct PacedCommits {
    commits: Arc<Coalescer<CommitJob>>,
}

impl PacedCommits {
    /// A queue whose calls for one bucket are at least `pace` apart.
    pub fn new(pace: std::time::Duration) -> Self {
        Self {
            commits: Arc::new(Coalescer::paced(pace)),
        }
    }

    /// Commits `ops`, the operations of ONE commit, with the next call of bucket `id`;
    /// returns the failures among `ops` (see [`HubClient::commit`]).
    pub async fn commit(
        &self,
        hub: &HubClient,
        id: &BucketId,
        ops: Vec<BatchOp>,
    ) -> Result<Vec<BatchFailure>> {
        self.commits.submit(hub, id, ops).await
    }
}

/// A commit announced with [`HubClient::expect_commit`]; the announcement ends when this
/// drops.
pub struct CommitAnnouncement {
    _guard: crate::coalesce::Expected<CommitJob>,
}

/// Coalesced `/batch` calls: one item = the operations of one commit.
struct CommitJob;

impl Job for CommitJob {
    type Item = Vec<BatchOp>;
    type Out = Vec<BatchFailure>;
    const MAX_WEIGHT: usize = BATCH_MAX_OPS;

    fn weight(item: &Self::Item) -> usize {
        item.len()
    }

    fn keys(item: &Self::Item) -> Vec<String> {
        item.iter().map(|op| op.path().to_string()).collect()
    }

    fn run(hub: HubClient, id: BucketId, items: Vec<Self::Item>) -> CallFuture<Self::Out> {
        Box::pin(async move {
            let all: Vec<BatchOp> = items.iter().flatten().cloned().collect();
            let mut failed = hub.batch(&id, &all).await?.failed;
            // Paths are unique within a call (see `Job::keys`): each failure belongs to
            // exactly one commit.
            Ok(items
                .iter()
                .map(|ops| {
                    let (mine, rest) = failed
                        .drain(..)
                        .partition(|f| ops.iter().any(|op| op.path() == f.path));
                    failed = rest;
                    mine
                })
                .collect())
        })
    }
}

/// Coalesced `paths-info` calls: one item = the paths of one lookup.
struct LookupJob;

impl Job for LookupJob {
    type Item = Vec<String>;
    type Out = Vec<RemoteFile>;
    const MAX_WEIGHT: usize = PATHS_INFO_MAX;

    fn weight(item: &Self::Item) -> usize {
        item.len()
    }

    fn keys(_: &Self::Item) -> Vec<String> {
        Vec::new()
    }

    fn run(hub: HubClient, id: BucketId, items: Vec<Self::Item>) -> CallFuture<Self::Out> {
        Box::pin(async move {
            let mut paths: Vec<String> = items.iter().flatten().cloned().collect();
            paths.sort_unstable();
            paths.dedup();
            let found = hub.paths_info(&id, &paths).await?;
            Ok(items
                .iter()
                .map(|want| {
                    found
                        .iter()
                        .filter(|f| want.contains(&f.path))
                        .cloned()
                        .collect()
                })
                .collect())
        })
    }
}

type PageParser<T> = fn(&[u8]) -> Result<Vec<T>>;

/// Pages of a paginated Hub listing. Each [`Pager::next_page`] makes one request; the next
/// page's URL comes from the `Link rel="next"` header and is followed verbatim.
#[derive(Debug)]
pub struct Pager<T> {
    hub: HubClient,
    op: &'static str,
    /// The first page's URL: a resume point must be this URL with another query.
    first: Url,
    /// The URL of the page fetched last.
    current: Option<Url>,
    next: Option<Url>,
    parse: PageParser<T>,
    pages: usize,
}

impl<T> Pager<T> {
    fn new(hub: HubClient, op: &'static str, first: Url, parse: PageParser<T>) -> Self {
        Pager {
            hub,
            op,
            first: first.clone(),
            current: None,
            next: Some(first),
            parse,
            pages: 0,
        }
    }

    /// Where to resume this listing from the page fetched last (`Some(query)`), to
    /// re-read it: the query of its URL. `None` before the first page, or when the Hub's
    /// link left the first page's path (such a listing can only restart).
    pub fn current_resume_point(&self) -> Option<String> {
        self.resume_point(self.current.as_ref()?)
    }

    /// Where to resume this listing at the next page: the query of the `next` link.
    /// `None` after the last page, or when the link left the first page's path.
    pub fn next_resume_point(&self) -> Option<String> {
        self.resume_point(self.next.as_ref()?)
    }

    fn resume_point(&self, url: &Url) -> Option<String> {
        let same_place = url.origin() == self.first.origin() && url.path() == self.first.path();
        same_place.then(|| url.query().unwrap_or("").to_string())
    }

    /// Continues the listing at a resume point from [`Pager::next_resume_point`] or
    /// [`Pager::current_resume_point`] (possibly of an earlier pager of the same listing):
    /// the next request is the first page's URL with that query. The point is untrusted
    /// input (it travels in S3 continuation tokens): it is refused (`false`, the pager
    /// unchanged) unless it keeps every query parameter of the first page, so it can only
    /// move the listing's position, never its bucket, prefix or mode.
    pub fn resume_at(&mut self, point: &str) -> bool {
        if self.pages != 0 {
            return false;
        }
        let mut url = self.first.clone();
        url.set_query(Some(point).filter(|p| !p.is_empty()));
        let given: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let kept = self
            .first
            .query_pairs()
            .into_owned()
            .all(|pair| given.contains(&pair));
        if kept {
            self.next = Some(url);
        }
        kept
    }

    /// Adds a query parameter to the first request (e.g. a page-size `limit`); later pages
    /// follow the `next` links verbatim. Has no effect once a page was fetched.
    pub fn with_query(mut self, key: &str, value: &str) -> Self {
        if self.pages == 0 {
            if let Some(url) = self.next.as_mut() {
                url.query_pairs_mut().append_pair(key, value);
            }
        }
        self
    }

    /// Number of pages fetched so far.
    pub fn pages_fetched(&self) -> usize {
        self.pages
    }

    /// Whether another page may follow.
    pub fn has_next(&self) -> bool {
        self.next.is_some()
    }

    /// Fetches the next page; `Ok(None)` after the last one.
    pub async fn next_page(&mut self) -> Result<Option<Vec<T>>> {
        let Some(url) = self.next.take() else {
            return Ok(None);
        };
        let mut req =
            Req::new(self.op, Method::GET, url.clone()).bearer(self.hub.inner.token.as_deref());
        req.background = self.hub.background;
        let resp = self.hub.send(&req).await?;
        if !resp.is_success() {
            return Err(resp.error(self.op));
        }
        let items = (self.parse)(&resp.body)?;
        self.pages += 1;
        self.current = Some(url.clone());
        if let Some(next) = find_rel(&resp.headers, "next") {
            let next = url
                .join(&next)
                .map_err(|e| UpstreamError::decode(self.op, format!("bad next link: {e}")))?;
            if next == url {
                return Err(UpstreamError::decode(self.op, "next link points to itself"));
            }
            self.next = Some(next);
        }
        Ok(Some(items))
    }

    /// Fetches all remaining pages.
    pub async fn collect_all(mut self) -> Result<Vec<T>> {
        let mut out = Vec::new();
        while let Some(page) = self.next_page().await? {
            out.extend(page);
        }
        Ok(out)
    }
}

impl<T: Send + 'static> Pager<T> {
    /// The remaining pages as a stream (ends after the last page or the first error).
    pub fn into_stream(self) -> futures_util::stream::BoxStream<'static, Result<Vec<T>>> {
        Box::pin(futures_util::stream::unfold(
            Some(self),
            |state| async move {
                let mut pager = state?;
                match pager.next_page().await {
                    Ok(Some(page)) => Some((Ok(page), Some(pager))),
                    Ok(None) => None,
                    Err(e) => Some((Err(e), None)),
                }
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let hub = HubClient::new("http://127.0.0.1:9/", None, UpstreamConfig::default()).unwrap();
        let id = BucketId::parse("u/b").unwrap();
        assert_eq!(
            hub.token_url(&id, TokenScope::Write),
            "http://127.0.0.1:9/api/buckets/u/b/xet-write-token"
        );
        assert_eq!(
            hub.rewrite_public_hub("https://huggingface.co/api/buckets/u/b/xet-read-token"),
            "http://127.0.0.1:9/api/buckets/u/b/xet-read-token"
        );
        assert_eq!(
            hub.rewrite_public_hub("https://huggingface.com/x"),
            "https://huggingface.com/x"
        );
        let pager = hub.list_tree(&id, Some("dir/sub dir"), Some(true)).unwrap();
        assert_eq!(
            pager.next.as_ref().unwrap().as_str(),
            "http://127.0.0.1:9/api/buckets/u/b/tree/dir%2Fsub%20dir?recursive=true"
        );
        let pager = hub.list_tree(&id, None, None).unwrap();
        assert_eq!(
            pager.next.as_ref().unwrap().as_str(),
            "http://127.0.0.1:9/api/buckets/u/b/tree"
        );
        assert!(HubClient::new("ftp://x", None, UpstreamConfig::default()).is_err());
        assert!(HubClient::new("not a url", None, UpstreamConfig::default()).is_err());
    }
}
