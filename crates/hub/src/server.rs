//! Accept loop, routing, per-request logging/counting and fault injection.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderMap, Method, Request, Response};
use http_body::Body as _;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::Hub;
use crate::body::{ReqBody, RespBody};
use crate::ctx::{Caller, Ctx};
use crate::error::HubError;
use crate::faults::{self, FaultAction, FaultBody, ResetFlag};
use crate::stats::Route;
use crate::{auth, cas, hubapi};

pub(crate) async fn serve(
    listener: TcpListener,
    hub: Arc<Hub>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        tokio::select! {
            acc = listener.accept() => {
                let (stream, _peer) = match acc {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let hub = hub.clone();
                let reset = ResetFlag::default();
                let stream = ResettableStream {
                    inner: stream,
                    reset: reset.clone(),
                };
                let svc = service_fn(move |req| {
                    let hub = hub.clone();
                    let reset = reset.clone();
                    async move { Ok::<_, Infallible>(handle(hub, req, reset).await) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(60))
                    .serve_connection(TokioIo::new(stream), svc);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(10)) => {}
    }
}

async fn handle(hub: Arc<Hub>, req: Request<Incoming>, reset: ResetFlag) -> Response<RespBody> {
    let start = Instant::now();
    let declared_len = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let req = req.map(|b| ReqBody::new(b, declared_len));
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let user_agent = req
        .headers()
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string();
    let route = classify(&method, &path);
    // Emulated rate limits come first: a refused call is not served (nor faulted).
    let limit = hub.limits.check(route);
    let refused = limit.filter(|d| !d.allowed);
    let fault = if refused.is_some() {
        None
    } else {
        hub.faults.check(route)
    };
    let result = match fault {
        _ if refused.is_some() => {
            crate::stats::Stats::add(&hub.stats.rate_limited, 1);
            Err(HubError::RateLimited(
                refused.map(|d| d.rule.class.name()).unwrap_or_default(),
            ))
        }
        None => dispatch(&hub, route, req).await,
        Some(action) => match faults::injected_error(action) {
            Some(e) => Err(e),
            None => {
                if let FaultAction::Delay(d) = action {
                    tokio::time::sleep(d).await;
                }
                dispatch(&hub, route, req).await.map(|resp| match action {
                    FaultAction::Reset(_) | FaultAction::Truncate(_) | FaultAction::Trickle(_) => {
                        resp.map(|b| FaultBody::new(b, action, reset).boxed())
                    }
                    _ => resp,
                })
            }
        },
    };
    let mut resp = result.unwrap_or_else(|e| {
        if e.status_and_code().0.is_server_error() && !matches!(e, HubError::Injected { .. }) {
            tracing::warn!(error = %e, %path, "request failed");
        }
        e.into_response()
    });
    if let Some(d) = limit {
        d.set_headers(resp.headers_mut());
    }
    hub.stats.count_route(route);
    let bytes = resp.body().size_hint().exact().unwrap_or(0);
    tracing::info!(
        method = %method,
        path = %path,
        route = route.name(),
        status = resp.status().as_u16(),
        bytes,
        duration_ms = start.elapsed().as_secs_f64() * 1000.0,
        user_agent = %user_agent,
        "request"
    );
    resp
}

/// The accepted socket, reset (RST instead of FIN) when closed after a `reset` fault.
struct ResettableStream {
    inner: tokio::net::TcpStream,
    reset: ResetFlag,
}

impl Drop for ResettableStream {
    fn drop(&mut self) {
        if self.reset.load(std::sync::atomic::Ordering::Relaxed) {
            // SO_LINGER 0: closing sends a RST. (Deprecated because a non-zero linger
            // blocks on drop; zero never does.)
            #[allow(deprecated)]
            let _ = self.inner.set_linger(Some(Duration::ZERO));
        }
    }
}

impl tokio::io::AsyncRead for ResettableStream {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for ResettableStream {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

fn segments(path: &str) -> Vec<&str> {
    path.trim_start_matches('/').split('/').collect()
}

/// Which route a request is for (Unknown = 404).
pub(crate) fn classify(method: &Method, path: &str) -> Route {
    let s = segments(path);
    let m = method.as_str();
    match (m, s.as_slice()) {
        ("GET", ["api", "whoami-v2"]) => Route::Whoami,
        ("GET", ["api", "_hugbucket", "stats"]) => Route::Stats,
        ("GET", ["api", "agent-harnesses"]) => Route::AgentHarnesses,
        ("POST", ["api", "repos", "move"]) => Route::RepoMove,
        ("GET", ["api", "buckets", _]) => Route::BucketList,
        ("POST", ["api", "buckets", _, _]) => Route::BucketCreate,
        ("GET", ["api", "buckets", _, _]) => Route::BucketInfo,
        ("DELETE", ["api", "buckets", _, _]) => Route::BucketDelete,
        ("PUT", ["api", "buckets", _, _, "settings"]) => Route::BucketSettings,
        ("GET", ["api", "buckets", _, _, "tree", ..]) => Route::Tree,
        ("POST", ["api", "buckets", _, _, "paths-info"]) => Route::PathsInfo,
        ("POST", ["api", "buckets", _, _, "batch"]) => Route::Batch,
        ("GET", ["api", "buckets", _, _, "xet-read-token"]) => Route::XetReadToken,
        ("GET", ["api", "buckets", _, _, "xet-write-token"]) => Route::XetWriteToken,
        ("GET", ["api", "buckets", _, _, "events"]) => Route::Events,
        ("HEAD", ["buckets", _, _, "resolve", _, ..]) => Route::ResolveHead,
        ("GET", ["buckets", _, _, "resolve", _, ..]) => Route::ResolveGet,
        ("POST", ["v1", "xorb-grants", _, _]) => Route::XorbGrant,
        ("POST", ["v1", "xorbs", _, _]) => Route::XorbUpload,
        ("POST", ["v1", "shards"]) => Route::ShardV1,
        ("POST", ["v2", "shards"]) => Route::ShardV2,
        ("GET", ["v1", "chunks", _, _]) => Route::DedupQuery,
        ("GET", ["v1", "reconstructions", _]) => Route::ReconV1,
        ("GET", ["v2", "reconstructions", _]) => Route::ReconV2,
        ("GET" | "HEAD", ["fetch", "xorbs", _]) => Route::Fetch,
        ("POST", ["v1", "telemetry"]) => Route::Telemetry,
        _ => Route::Unknown,
    }
}

async fn dispatch(
    hub: &Arc<Hub>,
    route: Route,
    req: Request<ReqBody>,
) -> Result<Response<RespBody>, HubError> {
    let path = req.uri().path().to_string();
    let s = segments(&path);
    // Routes that do not use the Hub token.
    match route {
        Route::XorbGrant => return cas::xorb_grant(hub, &req),
        Route::XorbUpload => return cas::xorb_upload(hub, s[2], s[3], req).await,
        Route::ShardV1 => return cas::shard_upload(hub, req, false).await,
        Route::ShardV2 => return cas::shard_upload(hub, req, true).await,
        Route::DedupQuery => return cas::dedup_query(hub, s[2], s[3], &req).await,
        Route::ReconV1 => return cas::reconstruction(hub, s[2], &req, false).await,
        Route::ReconV2 => return cas::reconstruction(hub, s[2], &req, true).await,
        Route::Fetch => return cas::fetch(hub, s[2], &req).await,
        Route::Telemetry => return cas::telemetry(req).await,
        Route::Unknown => {
            return Err(HubError::NotFound(format!("{} {}", req.method(), path)));
        }
        _ => {}
    }
    let caller = caller(hub, req.headers())?;
    if caller.is_none() && !anonymous_allowed(route) {
        return Err(HubError::Unauthorized(
            "Authorization header with a Hub token is required".into(),
        ));
    }
    let ctx = Ctx::new(hub, req.headers(), caller);
    match route {
        Route::Whoami => hubapi::whoami(hub, &ctx),
        Route::Stats => Ok(crate::body::json_response(
            http::StatusCode::OK,
            &hub.stats.to_json(),
        )),
        Route::AgentHarnesses => Ok(crate::body::json_response(
            http::StatusCode::OK,
            &serde_json::json!({"standardEnvVars": [], "harnesses": {}}),
        )),
        Route::RepoMove => hubapi::move_bucket(hub, &ctx, req).await,
        Route::BucketList => hubapi::list_buckets(hub, &ctx, s[2], &req),
        Route::BucketCreate => hubapi::create_bucket(hub, &ctx, s[2], s[3], req).await,
        Route::BucketInfo => hubapi::bucket_info(hub, &ctx, s[2], s[3]),
        Route::BucketDelete => hubapi::delete_bucket(hub, &ctx, s[2], s[3]).await,
        Route::BucketSettings => hubapi::bucket_settings(hub, &ctx, s[2], s[3], req).await,
        Route::Tree => hubapi::tree(hub, &ctx, &s, &req),
        Route::PathsInfo => hubapi::paths_info(hub, &ctx, s[2], s[3], req).await,
        Route::Batch => hubapi::batch(hub, &ctx, s[2], s[3], req).await,
        Route::XetReadToken => hubapi::xet_token(hub, &ctx, s[2], s[3], auth::Scope::Read),
        Route::XetWriteToken => hubapi::xet_token(hub, &ctx, s[2], s[3], auth::Scope::Write),
        Route::Events => Err(HubError::NotFound("bucket events are not supported".into())),
        Route::ResolveHead => hubapi::resolve(hub, &ctx, &s, &req, true).await,
        Route::ResolveGet => hubapi::resolve(hub, &ctx, &s, &req, false).await,
        _ => Err(HubError::NotFound(path.clone())),
    }
}

/// Routes an anonymous caller may use: reads, which then see public buckets only.
fn anonymous_allowed(route: Route) -> bool {
    matches!(
        route,
        Route::BucketInfo
            | Route::BucketList
            | Route::Tree
            | Route::PathsInfo
            | Route::XetReadToken
            | Route::ResolveHead
            | Route::ResolveGet
    )
}

/// The caller of a request: `None` without a token, 401 for a token nobody has.
pub(crate) fn caller(hub: &Hub, headers: &HeaderMap) -> Result<Option<Caller>, HubError> {
    let Some(t) = auth::bearer(headers) else {
        return Ok(None);
    };
    if auth::token_matches(&hub.tokens, t) {
        return Ok(Some(Caller::Main));
    }
    let mut found = None;
    for (ns, tok) in &hub.users {
        if auth::token_matches(std::slice::from_ref(tok), t) {
            found = Some(Caller::User(ns.clone()));
        }
    }
    found
        .map(Some)
        .ok_or_else(|| HubError::Unauthorized("Invalid credentials in Authorization header".into()))
}
