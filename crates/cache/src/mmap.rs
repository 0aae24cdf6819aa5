//! The crate's only `unsafe`: mapping segment files read-only.
//!
//! Audit notes. A mapping stays valid while the file is modified or unlinked; what can go
//! wrong is (a) reading bytes that another writer changes at the same time (a data race on
//! those bytes) and (b) touching a page that lies beyond the current end of the file
//! (SIGBUS). The cache rules both out for its own accesses:
//! - segment files live in the cache's own directory and are only written by the cache's
//!   writer, strictly by appending past every byte that has been handed to a reader;
//! - readers only slice ranges of entries that were fully written (and so lie inside the
//!   file) before they were published under a lock;
//! - files are truncated only at open, before they are mapped, and never while mapped.
//!
//! Other processes modifying or truncating segment files while the cache is open are outside
//! its contract (the usual precondition of memory-mapped stores).
#![allow(unsafe_code)]

use std::fs::File;
use std::io;

/// A read-only shared mapping of the first `len` bytes of a file. `len` may exceed the
/// file's current length (an active segment is mapped at its full size and grows into the
/// mapping by appends); only bytes below the file length may be read.
pub(crate) struct MappedFile {
    map: Option<memmap2::Mmap>,
}

impl MappedFile {
    /// Maps `len` bytes of `file` (an empty map when `len == 0`).
    pub(crate) fn map(file: &File, len: usize) -> io::Result<Self> {
        if len == 0 {
            return Ok(MappedFile { map: None });
        }
        // SAFETY: see the module notes: the file belongs to the cache, is never truncated
        // while mapped, and its mapped bytes are only read after they were written (by this
        // process, in ranges no reader has seen yet) and lie below the end of the file.
        let map = unsafe { memmap2::MmapOptions::new().len(len).map(file)? };
        Ok(MappedFile { map: Some(map) })
    }

    /// The mapped bytes. Callers slice only ranges that lie inside the file (see above).
    pub(crate) fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }
}
