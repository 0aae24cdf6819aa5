//! The S3 service: every supported operation on top of the gateway core
//! ([`hugbucket_core::Gateway`]), served thread-per-core by [`start`].
//!
//! A request goes through the [`Frontend`] (limits, routing, authentication, body plan),
//! then `Service::dispatch` calls the handler of its `Operation`. Handlers live next to
//! their resource: `bucket` (buckets and listings), `object` (object data, copy,
//! delete) and `multipart`; `headers` holds the HTTP details they share (ranges,
//! conditional requests, response headers). Handlers await core calls directly: the
//! core runs each on its own runtimes (a call about one object: its owner key shard's),
//! so no handler chooses where a call runs. Bodies cross between the core runtime and
//! the serving core through the [`Bridge`]: request bodies stream verified (a body that
//! fails verification ends its stream with an error, so the core never commits it) and
//! response bodies stream back. Core errors become S3 errors only in
//! [`crate::core_error`].
//!
//! Shutdown is graceful: [`S3Server::shutdown`] makes new requests answer 503 with
//! `Connection: close`, waits for the requests in flight (response bodies included) to
//! finish, then stops the cores.

mod bucket;
mod headers;
mod multipart;
mod object;

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use ::http::request::Parts;
use ::http::{HeaderValue, Request, Response, StatusCode};
use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::BodyExt;
use hugbucket_core::{Gateway, ObjectRef};
use hyper::body::{Body, Frame, Incoming, SizeHint};

use crate::auth::{Authenticator, Credentials, VerifyingBody};
use crate::core_error::{to_s3, to_s3_with_body_error};
use crate::error::{S3Error, S3ErrorCode};
use crate::frontend::{Frontend, collect_body, decorate, error_response};
use crate::router::{Operation, Route, RouterConfig};
use crate::runtime::bridge::{Bridge, ByteStream, request_body};
use crate::runtime::{
    BoxError, Handler, HandlerFactory, ResponseBody, RuntimeKind, ServeConfig, Server, empty,
};
use crate::xml::Owner;
use futures_util::FutureExt;

/// Configuration of the S3 service.
#[derive(Debug, Clone)]
pub struct S3Config {
    /// Runtime serving the cores.
    pub runtime: RuntimeKind,
    /// Listener and connection settings.
    pub serve: ServeConfig,
    /// Addressing (virtual-hosted-style base domains).
    pub router: RouterConfig,
    /// Accepted key pairs.
    pub credentials: Credentials,
    /// Region reported by GetBucketLocation and HeadBucket.
    pub region: String,
}

/// Process-wide state of the service: draining flag and requests in flight.
#[derive(Debug, Default)]
struct Shared {
    draining: AtomicBool,
    in_flight: AtomicUsize,
    metrics: crate::metrics::S3Metrics,
}

/// Counts a request as in flight until dropped (it travels with the response body).
struct InFlight(Arc<Shared>);

impl InFlight {
    fn enter(shared: &Arc<Shared>) -> Self {
        shared.in_flight.fetch_add(1, Ordering::SeqCst);
        Self(shared.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A response body that keeps its request counted as in flight until it is done.
struct GuardedBody {
    inner: ResponseBody,
    _guard: InFlight,
}

impl Body for GuardedBody {
    type Data = Bytes;
    type Error = BoxError;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                self._guard.0.metrics.bytes_out.inc_by(data.len() as u64);
            }
        }
        polled
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The S3 front-end's counters (cheap to clone).
#[derive(Debug, Clone)]
pub struct S3Stats {
    shared: Arc<Shared>,
}

impl S3Stats {
    /// Registers the front-end's metric families (`hugbucket_s3_*`) with `registry`.
    pub fn register(&self, registry: &mut prometheus_client::registry::Registry) {
        let shared = self.shared.clone();
        self.shared
            .metrics
            .register(registry, move || shared.in_flight.load(Ordering::SeqCst));
    }

    /// Requests of `operation` (e.g. `"PutObject"`) answered with `status` so far.
    pub fn request_count(&self, operation: &str, status: u16) -> u64 {
        self.shared.metrics.count(operation, status)
    }
}

/// The running S3 front-end.
#[derive(Debug)]
pub struct S3Server {
    server: Server,
    shared: Arc<Shared>,
}

impl S3Server {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// Requests in flight (response bodies still streaming included).
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::SeqCst)
    }

    /// A handle on the front-end's counters that outlives the server.
    pub fn stats(&self) -> S3Stats {
        S3Stats {
            shared: self.shared.clone(),
        }
    }

    /// Graceful shutdown: new requests are refused (503, `Connection: close`), requests in
    /// flight get up to `grace` to finish, then the cores stop and drop what is left.
    pub async fn shutdown(self, grace: Duration) {
        self.shared.draining.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + grace;
        while self.in_flight() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left = self.in_flight();
        if left > 0 {
            tracing::warn!(requests = left, "S3: abandoning requests still in flight");
        }
        let server = self.server;
        let _ = tokio::task::spawn_blocking(move || server.shutdown()).await;
    }
}

/// Starts the S3 service on `config.serve.addr`. `bridge` leads to the tokio runtime the
/// gateway runs on.
pub fn start(gateway: Gateway, bridge: Bridge, config: S3Config) -> io::Result<S3Server> {
    let shared = Arc::new(Shared::default());
    let factory = factory(gateway, bridge, config.clone(), shared.clone());
    let server = crate::runtime::serve(config.runtime, config.serve, factory)?;
    Ok(S3Server { server, shared })
}

fn factory(
    gateway: Gateway,
    bridge: Bridge,
    config: S3Config,
    shared: Arc<Shared>,
) -> HandlerFactory {
    Arc::new(move |core| {
        let service = Rc::new(Service {
            frontend: Frontend::new(
                config.router.clone(),
                Authenticator::new(config.credentials.clone()),
            ),
            bridge: bridge.clone(),
            gateway: gateway.clone(),
            owner: Owner {
                id: "hugbucket".into(),
                display_name: "hugbucket".into(),
            },
            region: config.region.clone(),
            shared: shared.clone(),
            core,
        });
        let h: Handler = Rc::new(move |req| Box::pin(service.clone().handle(req)));
        h
    })
}

/// Result of a handler.
pub(crate) type S3Result = Result<Response<ResponseBody>, S3Error>;

/// An admitted request, as handlers see it.
pub(crate) struct Req {
    /// Method, URI, headers.
    pub parts: Parts,
    /// Operation, bucket, key, query.
    pub route: Route,
    /// Declared decoded body length (Content-Length or x-amz-decoded-content-length).
    pub declared_length: Option<u64>,
    /// The verified body.
    pub body: VerifyingBody<Incoming>,
}

impl Req {
    /// The bucket (the router guarantees one for bucket and object operations).
    pub fn bucket(&self) -> &str {
        self.route.bucket.as_deref().unwrap_or_default()
    }
    /// The key (the router guarantees one for object operations).
    pub fn key(&self) -> &str {
        self.route.key.as_deref().unwrap_or_default()
    }
    /// A header as text, if present and valid.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.parts.headers.get(name).and_then(|v| v.to_str().ok())
    }
    /// A query parameter.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.route.query.get(name)
    }
    /// Reads the whole (small, XML) body.
    pub async fn collect(self, limit: usize) -> Result<Bytes, S3Error> {
        collect_body(self.body, limit).await
    }
}

/// The service of one core.
pub(crate) struct Service {
    frontend: Frontend,
    bridge: Bridge,
    gateway: Gateway,
    owner: Owner,
    region: String,
    shared: Arc<Shared>,
    core: usize,
}

impl Service {
    async fn handle(self: Rc<Self>, req: Request<Incoming>) -> Response<ResponseBody> {
        let ids = self.frontend.ids();
        let span = tracing::info_span!(
            "s3",
            request_id = %ids.request_id,
            op = tracing::field::Empty,
            bucket = tracing::field::Empty,
            key = tracing::field::Empty,
        );
        tracing::Instrument::instrument(self.handle_in_span(req, ids, span.clone()), span).await
    }

    async fn handle_in_span(
        self: Rc<Self>,
        req: Request<Incoming>,
        ids: crate::frontend::Ids,
        span: tracing::Span,
    ) -> Response<ResponseBody> {
        let guard = InFlight::enter(&self.shared);
        let started = Instant::now();
        let (parts, body) = req.into_parts();
        let method = parts.method.clone();
        let resource = parts.uri.path().to_string();
        let expect = expects_continue(&parts);
        let mut op = None;
        let mut declared = None;
        let result = if self.shared.draining.load(Ordering::SeqCst) {
            Err(S3Error::with_message(
                S3ErrorCode::ServiceUnavailable,
                "The server is shutting down.",
            ))
        } else {
            match self.frontend.admit(&parts, SystemTime::now()) {
                Ok(admitted) => {
                    op = Some(admitted.route.op);
                    span.record("op", tracing::field::debug(admitted.route.op));
                    if let Some(b) = &admitted.route.bucket {
                        span.record("bucket", b.as_str());
                    }
                    if let Some(k) = &admitted.route.key {
                        span.record("key", k.as_str());
                    }
                    declared = admitted.body.declared_length;
                    let req = Req {
                        parts,
                        route: admitted.route,
                        declared_length: admitted.body.declared_length,
                        body: VerifyingBody::new(body, admitted.body),
                    };
                    unwind_to_500(self.dispatch(req)).await
                }
                Err(e) => Err(e),
            }
        };
        // A client that sent an oversized header section is misbehaving or hostile: answer
        // and stop reading from it.
        let mut close = false;
        let mut resp = match result {
            Ok(mut resp) => {
                decorate(&mut resp, &ids);
                resp
            }
            Err(e) => {
                close = e.code() == S3ErrorCode::RequestHeaderSectionTooLarge;
                error_response(&e, &method, &resource, &ids)
            }
        };
        // An answer to `Expect: 100-continue` that came without `100 Continue` (empty body,
        // or an error before the body was read) leaves botocore misparsing the next
        // response on the connection (boto/botocore#3010): close such connections.
        let early = match expect {
            Expect::Nothing => false,
            Expect::EmptyBody => true,
            Expect::Body => !resp.status().is_success(),
        };
        if early || close || self.shared.draining.load(Ordering::SeqCst) {
            resp.headers_mut().insert(
                ::http::header::CONNECTION,
                HeaderValue::from_static("close"),
            );
        }
        let status = resp.status().as_u16();
        let op_name = op.map_or_else(|| "Unrouted".to_string(), |o| format!("{o:?}"));
        self.shared
            .metrics
            .record(&op_name, status, started.elapsed());
        let bytes_in = declared.filter(|_| resp.status().is_success()).unwrap_or(0);
        self.shared.metrics.bytes_in.inc_by(bytes_in);
        let ms = started.elapsed().as_millis() as u64;
        if status >= 500 {
            tracing::warn!(core = self.core, %method, path = %resource, status, bytes_in, ms, "s3 request failed");
        } else {
            tracing::info!(core = self.core, %method, status, bytes_in, ms, "s3 request");
        }
        resp.map(|inner| {
            GuardedBody {
                inner,
                _guard: guard,
            }
            .boxed_unsync()
        })
    }

    async fn dispatch(&self, req: Req) -> S3Result {
        use Operation as O;
        match req.route.op {
            O::Health => Ok(Response::new(crate::runtime::full("OK"))),
            O::ListBuckets => self.list_buckets(req).await,
            O::CreateBucket => self.create_bucket(req).await,
            O::DeleteBucket => self.delete_bucket(req).await,
            O::HeadBucket => self.head_bucket(req).await,
            O::GetBucketLocation => self.get_bucket_location(req).await,
            O::GetBucketVersioning => self.get_bucket_versioning(req).await,
            O::ListObjectsV2 => self.list_objects(req, true).await,
            O::ListObjects => self.list_objects(req, false).await,
            O::PutObject => self.put_object(req).await,
            O::GetObject => self.get_object(req).await,
            O::HeadObject => self.head_object(req).await,
            O::DeleteObject => self.delete_object(req).await,
            O::DeleteObjects => self.delete_objects(req).await,
            O::CopyObject => self.copy_object(req).await,
            O::CreateMultipartUpload => self.create_multipart_upload(req).await,
            O::UploadPart => self.upload_part(req).await,
            O::UploadPartCopy => self.upload_part_copy(req).await,
            O::CompleteMultipartUpload => self.complete_multipart_upload(req).await,
            O::AbortMultipartUpload => self.abort_multipart_upload(req).await,
            O::ListMultipartUploads => self.list_multipart_uploads(req).await,
            O::ListParts => self.list_parts(req).await,
            O::NotImplemented => Err(S3Error::new(S3ErrorCode::NotImplemented)),
        }
    }

    /// The core's reference to `bucket/key` (names checked there).
    fn object(&self, bucket: &str, key: &str) -> Result<ObjectRef, S3Error> {
        self.gateway.object(bucket, key).map_err(|e| to_s3(&e))
    }

    /// Awaits a core call (the core runs it where it belongs); its error is mapped in
    /// the one place.
    async fn core<T>(
        &self,
        call: impl Future<Output = hugbucket_core::Result<T>>,
    ) -> Result<T, S3Error> {
        call.await.map_err(|e| to_s3(&e))
    }

    /// Like [`Service::core`], streaming the verified request body into the call `f`
    /// makes. A body that fails verification ends the stream with an error, so the core
    /// commits nothing; the body's own S3 error (BadDigest, SignatureDoesNotMatch, ...) is
    /// what the client sees then.
    async fn core_with_body<T, F, Fut>(
        &self,
        body: VerifyingBody<Incoming>,
        f: F,
    ) -> Result<T, S3Error>
    where
        F: FnOnce(ByteStream) -> Fut,
        Fut: Future<Output = hugbucket_core::Result<T>>,
    {
        let body_error: Rc<RefCell<Option<S3Error>>> = Rc::default();
        let seen = body_error.clone();
        let tapped = body.inspect(move |item| {
            if let Err(e) = item {
                seen.borrow_mut().get_or_insert_with(|| e.clone());
            }
        });
        let (pump, stream) = request_body(tapped);
        let ((), result) = futures_util::future::join(pump, f(stream)).await;
        let body_error = body_error.borrow().clone();
        match result {
            // The core only commits after a clean end of the stream; a body error that
            // still raced past it is reported, never silently accepted.
            Ok(v) => match body_error {
                None => Ok(v),
                Some(e) => Err(e),
            },
            Err(e) => Err(to_s3_with_body_error(&e, body_error.as_ref())),
        }
    }
}

/// What a request's `Expect` header asked for.
enum Expect {
    /// No `Expect: 100-continue`.
    Nothing,
    /// `100-continue` with `Content-Length: 0`: hyper never sends `100 Continue` for it.
    EmptyBody,
    /// `100-continue` with a body.
    Body,
}

fn expects_continue(parts: &Parts) -> Expect {
    let h = &parts.headers;
    let asked = h
        .get(::http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let empty = h
        .get(::http::header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() == b"0");
    match (asked, empty) {
        (false, _) => Expect::Nothing,
        (true, true) => Expect::EmptyBody,
        (true, false) => Expect::Body,
    }
}

/// Runs a request handler; a panic in it (a bug) answers this request with
/// `500 InternalError` instead of taking down the core's executor with every connection
/// on it.
async fn unwind_to_500(handler: impl Future<Output = S3Result>) -> S3Result {
    match std::panic::AssertUnwindSafe(handler).catch_unwind().await {
        Ok(result) => result,
        Err(_) => {
            tracing::error!("request handler panicked");
            Err(S3Error::new(S3ErrorCode::InternalError))
        }
    }
}

/// An empty response with `status`.
pub(crate) fn status_response(status: StatusCode) -> Response<ResponseBody> {
    let mut r = Response::new(empty());
    *r.status_mut() = status;
    r
}

/// A 200 XML answer (request ids are added by the caller of the handler).
pub(crate) fn xml_ok(xml: String) -> Response<ResponseBody> {
    let mut r = Response::new(crate::runtime::full(xml));
    r.headers_mut().insert(
        ::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_handler_answers_500() {
        let panics = async {
            if std::hint::black_box(true) {
                panic!("a handler bug");
            }
            Ok(status_response(StatusCode::OK))
        };
        let err = futures_lite::future::block_on(unwind_to_500(panics)).unwrap_err();
        assert_eq!(err.code(), S3ErrorCode::InternalError);
        let ids = crate::frontend::Ids {
            request_id: "R".into(),
            host_id: "H".into(),
        };
        let r = error_response(&err, &::http::Method::GET, "/b/k", &ids);
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        // A handler that does not panic is answered as it answers.
        let fine = async { Ok(status_response(StatusCode::NO_CONTENT)) };
        let r = futures_lite::future::block_on(unwind_to_500(fine)).unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
    }
}
