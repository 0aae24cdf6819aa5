//! A few large byte buffers kept for reuse across uploads.
//!
//! A xorb is serialized into (and a hub receives it into) a buffer of up to 64 MiB. A
//! fresh buffer is page-faulted in, page by page, every time it is filled; a buffer that
//! was filled before is not. [`BufferPool`] keeps the largest few buffers handed back so
//! that the next upload reuses them. It is bounded by count (and so, for xorb buffers, by
//! about `keep × 64 MiB`) and shared between threads.

use std::sync::{Arc, Mutex};

/// The largest few buffers handed back, for reuse.
#[derive(Debug)]
pub struct BufferPool {
    keep: usize,
    /// Ascending by capacity: the largest is taken first, the smallest dropped first.
    kept: Mutex<Vec<Vec<u8>>>,
}

impl Default for BufferPool {
    /// A pool keeping one buffer.
    fn default() -> Self {
        Self::new(1)
    }
}

impl BufferPool {
    /// A pool keeping at most `keep` buffers.
    pub fn new(keep: usize) -> Self {
        Self {
            keep,
            kept: Mutex::new(Vec::new()),
        }
    }

    /// An empty buffer: the largest kept one, or a new one (no capacity) when none is.
    pub fn take(&self) -> Vec<u8> {
        self.kept
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_default()
    }

    /// Hands `buf` back (cleared): kept if it is among the `keep` largest.
    pub fn give(&self, mut buf: Vec<u8>) {
        if buf.capacity() == 0 || self.keep == 0 {
            return;
        }
        buf.clear();
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        let at = kept.partition_point(|b| b.capacity() < buf.capacity());
        kept.insert(at, buf);
        if kept.len() > self.keep {
            kept.remove(0);
        }
    }

    /// `buf`, handed back to `pool` when the returned owner is dropped: the owner of a
    /// byte buffer lent to code that frees it (e.g. `bytes::Bytes::from_owner`).
    pub fn lend(pool: &Arc<Self>, buf: Vec<u8>) -> Lent {
        Lent {
            buf,
            pool: pool.clone(),
        }
    }

    /// Number of buffers kept.
    pub fn len(&self) -> usize {
        self.kept.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no buffer is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A buffer that goes back to its [`BufferPool`] when dropped (see [`BufferPool::lend`]).
#[derive(Debug)]
pub struct Lent {
    buf: Vec<u8>,
    pool: Arc<BufferPool>,
}

impl AsRef<[u8]> for Lent {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        self.pool.give(std::mem::take(&mut self.buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lent_buffer_comes_back_when_dropped() {
        let pool = Arc::new(BufferPool::new(2));
        let lent = BufferPool::lend(&pool, vec![7u8; 100]);
        assert_eq!(lent.as_ref(), &[7u8; 100][..]);
        assert!(pool.is_empty());
        drop(lent);
        assert_eq!(pool.len(), 1);
        assert!(pool.take().capacity() >= 100);
    }

    #[test]
    fn keeps_the_largest_few_and_hands_out_the_largest_first() {
        let pool = BufferPool::new(2);
        assert_eq!(pool.take().capacity(), 0);
        for cap in [10, 30, 20, 5] {
            let mut b = Vec::with_capacity(cap);
            b.extend_from_slice(&[1, 2, 3]);
            pool.give(b);
        }
        assert_eq!(pool.len(), 2);
        let first = pool.take();
        assert!(first.is_empty(), "handed out cleared");
        let caps = [
            first.capacity(),
            pool.take().capacity(),
            pool.take().capacity(),
        ];
        assert!(caps[0] >= 30 && (20..30).contains(&caps[1]), "{caps:?}");
        assert_eq!(caps[2], 0);
        assert!(pool.is_empty());
    }

    #[test]
    fn keeping_none_keeps_nothing() {
        let pool = BufferPool::new(0);
        pool.give(Vec::with_capacity(100));
        assert!(pool.is_empty());
    }
}
