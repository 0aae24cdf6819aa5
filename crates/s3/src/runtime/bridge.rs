//! The one bridge for bodies between the serving cores (glommio or pinned tokio
//! current-thread) and the gateway core's tokio runtime. Core calls need none: the core
//! runs them on its own runtimes, whatever executor awaits them.
//!
//! - [`request_body`] streams a local (`!Send`) request body to a `Send` [`ByteStream`]
//!   over a bounded channel; the returned pump future must be polled alongside the call.
//! - [`Bridge::response_body`] streams a core [`ByteStream`] back as a hyper body over a
//!   bounded channel, from a task on the core runtime.
//!
//! Channels hold [`CHANNEL_CAPACITY`] pieces, so a slow side applies backpressure to the
//! other and memory stays bounded.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

use crate::error::S3Error;

/// The core's body stream type (same as `hugbucket_core::ByteStream`).
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, io::Error>> + Send>>;

/// Pieces buffered per direction.
pub const CHANNEL_CAPACITY: usize = 16;

/// A handle to the core's tokio runtime, where response bodies are pulled.
#[derive(Clone, Debug)]
pub struct Bridge {
    handle: tokio::runtime::Handle,
}

impl Bridge {
    /// A bridge to the runtime behind `handle`.
    pub fn new(handle: tokio::runtime::Handle) -> Self {
        Self { handle }
    }

    /// Streams `stream` (polled on the core runtime) into a hyper body. `size` is the
    /// exact length if known (hyper then sends `Content-Length`).
    pub fn response_body(&self, mut stream: ByteStream, size: Option<u64>) -> ChanBody {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        self.handle.spawn(async move {
            loop {
                tokio::select! {
                    item = stream.next() => {
                        let Some(item) = item else { break };
                        let stop = item.is_err();
                        if tx.send(item).await.is_err() || stop {
                            break;
                        }
                    }
                    // The client went away: stop pulling from the core.
                    () = tx.closed() => break,
                }
            }
        });
        ChanBody {
            rx,
            remaining: size,
        }
    }
}

/// A hyper body fed by a bounded channel.
#[derive(Debug)]
pub struct ChanBody {
    rx: mpsc::Receiver<Result<Bytes, io::Error>>,
    remaining: Option<u64>,
}

impl ChanBody {
    /// A body and the sender feeding it (capacity [`CHANNEL_CAPACITY`]).
    pub fn channel(size: Option<u64>) -> (mpsc::Sender<Result<Bytes, io::Error>>, Self) {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        (
            tx,
            Self {
                rx,
                remaining: size,
            },
        )
    }
}

impl Body for ChanBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(b))) => {
                if let Some(r) = &mut self.remaining {
                    *r = r.saturating_sub(b.len() as u64);
                }
                Poll::Ready(Some(Ok(Frame::data(b))))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => match self.remaining {
                Some(r) if r > 0 => Poll::Ready(Some(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "body ended early",
                )))),
                _ => Poll::Ready(None),
            },
            Poll::Pending => Poll::Pending,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self.remaining {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

/// Streams a local request body (e.g. a [`crate::auth::VerifyingBody`]) to a `Send`
/// [`ByteStream`]. Poll the returned pump together with the call that consumes the
/// stream (e.g. `futures::join!(pump, bridge.run(core.put_object(.., stream, ..)))`).
/// Body errors travel as `io::Error`s carrying the [`S3Error`] (see [`S3Error::from_io`]).
pub fn request_body<S>(body: S) -> (impl Future<Output = ()> + 'static, ByteStream)
where
    S: Stream<Item = Result<Bytes, S3Error>> + Unpin + 'static,
{
    let (tx, mut rx) = mpsc::channel::<Result<Bytes, io::Error>>(CHANNEL_CAPACITY);
    let pump = async move {
        let mut body = body;
        loop {
            let next = futures_lite::future::or(async { Some(body.next().await) }, async {
                tx.closed().await;
                None
            })
            .await;
            match next {
                None | Some(None) => break,
                Some(Some(item)) => {
                    let stop = item.is_err();
                    if tx.send(item.map_err(S3Error::into_io)).await.is_err() || stop {
                        break;
                    }
                }
            }
        }
    };
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    (pump, Box::pin(stream))
}
