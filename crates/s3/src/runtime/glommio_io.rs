//! The audited hyper-on-glommio adapter: `hyper::rt::{Read, Write}` over glommio's
//! `TcpStream` (with a `sendmsg` fast path for vectored writes) and a `hyper::rt::Timer`
//! over glommio timers.
//!
//! This is the only module of the crate allowed to use `unsafe`. Each block has a
//! `SAFETY:` note; there are four:
//! 1. viewing hyper's uninitialised read buffer as `&mut [u8]` *after zero-filling it*;
//! 2. telling hyper how many of those bytes `recv` filled;
//! 3. borrowing the stream's file descriptor for the vectored `sendmsg`;
//! 4. `Send`/`Sync` for the timer's sleep future (glommio timers are `Rc`-based).
#![allow(unsafe_code)]

use std::future::Future;
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use hyper::rt::{ReadBufCursor, Sleep, Timer};

/// Largest slice handed to one `recv` (bounds the zero-filling per read).
const MAX_READ: usize = 256 << 10;

/// Smallest slice handed to one `recv`.
const MIN_READ: usize = 16 << 10;

/// A glommio TCP stream usable by hyper.
pub struct GlommioIo {
    stream: TcpStream,
    /// Bytes to zero-fill and offer to the next `recv`: follows what the peer sends (twice
    /// the last read, doubling while reads fill it), so a connection carrying small
    /// requests does not zero `MAX_READ` bytes for each of them.
    read_size: usize,
}

impl GlommioIo {
    /// Wraps an accepted stream.
    pub fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            read_size: MIN_READ,
        }
    }
}

/// The next read size after a read of `n` bytes out of `offered`.
fn next_read_size(offered: usize, n: usize) -> usize {
    let want = if n == offered { offered * 2 } else { n * 2 };
    want.clamp(MIN_READ, MAX_READ)
}

impl hyper::rt::Read for GlommioIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        // SAFETY: `as_mut` hands out the cursor's unfilled region; we only write to it
        // (zero-fill, then `recv`), never read uninitialised memory and never de-init it.
        let uninit: &mut [MaybeUninit<u8>] = unsafe { buf.as_mut() };
        let len = uninit.len().min(self.read_size);
        let uninit = &mut uninit[..len];
        for b in uninit.iter_mut() {
            b.write(0);
        }
        // SAFETY: every element of `uninit` was initialised by the loop above, and
        // `MaybeUninit<u8>` has the same layout as `u8`.
        let slice: &mut [u8] = unsafe { &mut *(uninit as *mut [MaybeUninit<u8>] as *mut [u8]) };
        match Pin::new(&mut self.stream).poll_read(cx, slice) {
            Poll::Ready(Ok(n)) => {
                // SAFETY: `recv` wrote `n <= len` bytes at the start of the region, which
                // were already initialised anyway.
                unsafe { buf.advance(n) };
                self.read_size = next_read_size(len, n);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl hyper::rt::Write for GlommioIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let fd = self.stream.as_raw_fd();
        // SAFETY: `fd` belongs to `self.stream`, which is alive and not closed for the whole
        // lifetime of this borrow (it ends at the end of this statement block).
        let result = {
            let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
            socket2::SockRef::from(&borrowed)
                .send_vectored_with_flags(bufs, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
        };
        match result {
            Ok(n) => Poll::Ready(Ok(n)),
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::Interrupted =>
            {
                // Let glommio register write readiness (or write, if it became writable).
                match bufs.iter().find(|b| !b.is_empty()) {
                    Some(first) => Pin::new(&mut self.stream).poll_write(cx, first),
                    None => Poll::Ready(Ok(0)),
                }
            }
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_close(cx)
    }
}

/// hyper's timer on glommio. Must only be used by connections served on the glommio
/// executor thread that created it (which is how the glommio listener uses it).
#[derive(Clone, Copy, Debug, Default)]
pub struct GlommioTimer;

struct GlommioSleep(glommio::timer::Timer);

// SAFETY: hyper requires `Sleep: Send + Sync`, but a glommio timer is `Rc`-based and tied
// to its executor. Every `GlommioSleep` is created by hyper inside a connection future that
// is spawned with `glommio::spawn_local` and therefore polled, and dropped, only on the
// executor thread that created it; it is never shared or moved across threads.
unsafe impl Send for GlommioSleep {}
// SAFETY: see above; no `&GlommioSleep` ever reaches another thread.
unsafe impl Sync for GlommioSleep {}

impl Future for GlommioSleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

impl Sleep for GlommioSleep {}

impl Timer for GlommioTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        Box::pin(GlommioSleep(glommio::timer::Timer::new(duration)))
    }
    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        self.sleep(deadline.saturating_duration_since(Instant::now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_size_follows_the_peer() {
        // Small requests keep it small; full reads double it up to the cap.
        assert_eq!(next_read_size(MIN_READ, 300), MIN_READ);
        assert_eq!(next_read_size(MIN_READ, MIN_READ), 2 * MIN_READ);
        assert_eq!(next_read_size(MAX_READ, MAX_READ), MAX_READ);
        assert_eq!(next_read_size(MAX_READ, 40 << 10), 80 << 10);
        assert_eq!(next_read_size(MAX_READ, 0), MIN_READ);
    }
}
