//! HTTP body types: the response body type, streaming bodies fed from blocking readers,
//! and the self-draining request body. Reading request bodies (with limits) and `Range`
//! headers, which can fail with a [`crate::error::HubError`], is in [`crate::request`].

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use tokio::sync::mpsc;

/// Body of every response.
pub type RespBody = BoxBody<Bytes, std::io::Error>;

/// A complete in-memory body.
pub fn full(data: impl Into<Bytes>) -> RespBody {
    Full::new(data.into())
        .map_err(|never| match never {})
        .boxed()
}

/// An empty body.
pub fn empty() -> RespBody {
    full(Bytes::new())
}

/// A JSON response with the given status.
pub fn json_response(status: StatusCode, value: &impl serde::Serialize) -> Response<RespBody> {
    let data = serde_json::to_vec(value).unwrap_or_default();
    let mut resp = Response::new(full(data));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// Size of the pieces streamed from disk.
pub const STREAM_PIECE: usize = 256 * 1024;

/// A response body fed through a bounded channel (by a blocking reader task), with an exact
/// length so that hyper sends `Content-Length`.
pub struct ChannelBody {
    rx: mpsc::Receiver<std::io::Result<Bytes>>,
    remaining: u64,
}

impl ChannelBody {
    /// Creates the body and the sender the producer writes to. The producer must send
    /// exactly `len` bytes (or an error).
    pub fn new(len: u64) -> (mpsc::Sender<std::io::Result<Bytes>>, Self) {
        let (tx, rx) = mpsc::channel(4);
        (tx, Self { rx, remaining: len })
    }
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "body producer ended early",
            )))),
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(Some(Ok(data))) => {
                let n = data.len() as u64;
                if n > self.remaining {
                    return Poll::Ready(Some(Err(std::io::Error::other(
                        "body producer sent too much",
                    ))));
                }
                self.remaining -= n;
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// Request bodies left unread up to this size are drained after the response so that the
/// connection stays reusable (clients pool connections; an early close races with their
/// next request). Larger leftovers close the connection.
const DRAIN_LIMIT: u64 = 4 * 1024 * 1024;

/// The request body handed to handlers: an [`Incoming`](hyper::body::Incoming) that drains
/// itself (in a background task, bounded) when dropped unread, e.g. after an auth error.
pub struct ReqBody {
    inner: Option<hyper::body::Incoming>,
    declared_len: Option<u64>,
    done: bool,
}

impl ReqBody {
    /// Wraps a hyper request body (`declared_len` = its Content-Length, if any).
    pub fn new(inner: hyper::body::Incoming, declared_len: Option<u64>) -> Self {
        Self {
            inner: Some(inner),
            declared_len,
            done: false,
        }
    }
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let r = Pin::new(inner).poll_frame(cx);
        if matches!(r, Poll::Ready(None)) {
            self.done = true;
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |b| b.size_hint())
    }
}

impl Drop for ReqBody {
    fn drop(&mut self) {
        let Some(mut body) = self.inner.take() else {
            return;
        };
        if self.done || body.is_end_stream() || self.declared_len.is_some_and(|n| n > DRAIN_LIMIT) {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let mut seen = 0u64;
                while let Some(Ok(frame)) = body.frame().await {
                    if let Some(d) = frame.data_ref() {
                        seen += d.len() as u64;
                        if seen > DRAIN_LIMIT {
                            break;
                        }
                    }
                }
            });
        }
    }
}
