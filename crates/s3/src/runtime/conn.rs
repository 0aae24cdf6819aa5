//! One HTTP/1.1 connection, runtime-agnostic: hyper with a timer and header read timeout,
//! byte-progress tracking on the socket, and the per-request progress watchdog.

use std::cell::Cell;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::future::{Either, select};
use hyper::body::{Body, Frame, SizeHint};
use hyper::rt::{Read, ReadBufCursor, Timer, Write};
use hyper::server::conn::http1;

use super::{Handler, LocalBoxFuture, ResponseBody, ServeConfig, WATCHDOG_ABORTS};

/// Progress of one connection: last time bytes moved, and responses in flight.
pub(crate) struct Progress {
    last: Cell<Instant>,
    active: Cell<u32>,
}

impl Progress {
    fn new() -> Self {
        Self {
            last: Cell::new(Instant::now()),
            active: Cell::new(0),
        }
    }
    fn touch(&self) {
        self.last.set(Instant::now());
    }
    /// How long a response in flight has made no progress, if longer than `limit`.
    fn stalled(&self, limit: Duration) -> Option<Duration> {
        let idle = self.last.get().elapsed();
        (self.active.get() > 0 && idle > limit).then_some(idle)
    }
}

/// Records socket progress.
struct ProgressIo<I> {
    inner: I,
    progress: Rc<Progress>,
}

impl<I: Read + Unpin> Read for ProgressIo<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) {
            self.progress.touch();
        }
        r
    }
}

impl<I: Write + Unpin> Write for ProgressIo<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.progress.touch();
        }
        r
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.progress.touch();
        }
        r
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A response body registered with the connection's watchdog while it is alive.
pub(crate) struct WatchBody {
    inner: ResponseBody,
    progress: Rc<Progress>,
}

impl WatchBody {
    fn new(inner: ResponseBody, progress: Rc<Progress>) -> Self {
        progress.active.set(progress.active.get() + 1);
        progress.touch();
        Self { inner, progress }
    }
}

impl Drop for WatchBody {
    fn drop(&mut self) {
        self.progress
            .active
            .set(self.progress.active.get().saturating_sub(1));
    }
}

impl Body for WatchBody {
    type Data = bytes::Bytes;
    type Error = super::BoxError;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Serves one connection until it closes, fails, or the watchdog aborts it.
pub(crate) async fn serve_connection<I, T>(
    io: I,
    timer: T,
    handler: Handler,
    cfg: Rc<ServeConfig>,
    sleep: fn(Duration) -> LocalBoxFuture<()>,
    peer: Option<SocketAddr>,
) where
    I: Read + Write + Unpin + 'static,
    T: Timer + Send + Sync + 'static,
{
    let progress = Rc::new(Progress::new());
    let io = ProgressIo {
        inner: io,
        progress: progress.clone(),
    };
    let p = progress.clone();
    let svc = hyper::service::service_fn(move |req| {
        let h = handler.clone();
        let p = p.clone();
        async move {
            let resp = h(req).await;
            Ok::<_, Infallible>(resp.map(|b| WatchBody::new(b, p)))
        }
    });
    let conn = http1::Builder::new()
        .timer(timer)
        .header_read_timeout(cfg.header_read_timeout)
        .keep_alive(true)
        .max_buf_size(cfg.max_buf_size.max(8192))
        .serve_connection(io, svc);
    let watchdog = async {
        loop {
            sleep(cfg.watchdog_tick).await;
            if let Some(idle) = progress.stalled(cfg.stall_timeout) {
                WATCHDOG_ABORTS.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    ?peer,
                    idle_ms = idle.as_millis() as u64,
                    "response made no progress; aborting the connection"
                );
                return;
            }
        }
    };
    match select(pin!(conn), pin!(watchdog)).await {
        Either::Left((Err(e), _)) => {
            tracing::debug!(?peer, error = %e, "connection ended with an error")
        }
        Either::Left((Ok(()), _)) | Either::Right(((), _)) => {}
    }
}
