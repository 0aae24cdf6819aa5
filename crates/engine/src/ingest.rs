//! The streaming upload pipeline: bytes in (any piece sizes), xorbs and shard records out.
//!
//! An [`UploadSession`] packs the chunks of one or more files into xorbs the way `hf_xet`
//! does (spec §4.4): chunks already stored in this session are referenced instead of stored
//! again, a xorb is cut before it would exceed 64 MiB or 8192 chunks, small files share
//! xorbs, and the compression scheme follows the "auto" policy (blocks of 32 chunks starting
//! at the first chunk each file contributes to a xorb).
//!
//! Memory: completed xorbs are handed out by [`UploadSession::take_completed_xorbs`] as soon
//! as they fill, so a caller that uploads them promptly holds about two xorbs (the one being
//! built and the one being uploaded) plus O(chunks) bookkeeping (≈ 80 bytes per 64 KiB chunk
//! for the in-session dedup index and the shard's xorb records).

use std::collections::HashMap;
use std::sync::Arc;

use crate::buffers::BufferPool;
use crate::chunking::Chunker;
use crate::compression::{CompressionScheme, compress_if_smaller};
use crate::constants::MIN_SPACING_BETWEEN_GLOBAL_DEDUP_QUERIES;
use crate::hash::{self, VERIFICATION_KEY, XetHash};
use crate::shard::{FileEntry, FileTerm, Shard, XorbChunkEntry, XorbEntry};
use crate::xorb::{AutoScheme, SerializedXorb, XorbBuilder, xorb_would_overflow};

/// Sessions expected below this size (one small xorb) do not take a pooled buffer.
const SMALL_SESSION: u64 = 1 << 20;

/// Inputs at least this large are hashed on two threads.
const PARALLEL_HASH_MIN_BYTES: usize = 1 << 20;

/// Where a stored chunk lives: a xorb of this session (by sequence number, its hash is
/// known once it is finished) or a xorb already in the CAS (found by global dedup).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum XorbRef {
    Session(u32),
    Known(XetHash),
}

/// Chunks of xorbs already in the CAS whose shard protects chunk hashes with an HMAC key.
#[derive(Debug, Default)]
struct KeyedIndex {
    key: XetHash,
    chunks: HashMap<XetHash, (XetHash, u32)>,
}

/// One upload session: one or more files, the xorbs holding their new chunks, one shard.
#[derive(Debug, Default)]
pub struct UploadSession {
    builder: XorbBuilder,
    /// Sequence number of the xorb in `builder` (session xorbs are numbered from 0).
    builder_seq: u32,
    /// Hashes of the finished session xorbs, by sequence number.
    finished_hashes: Vec<XetHash>,
    /// Finished xorbs not yet taken by the caller.
    completed: Vec<SerializedXorb>,
    /// Shard records of all finished xorbs.
    xorb_entries: Vec<XorbEntry>,
    /// Chunk hash → (xorb, chunk index) for every chunk stored this session and every chunk
    /// of known CAS xorbs (global dedup) with clear-text hashes.
    index: HashMap<XetHash, (XorbRef, u32)>,
    /// Known CAS xorbs whose chunk hashes are HMAC-keyed.
    keyed: Vec<KeyedIndex>,
    files: Vec<PendingFile>,
    /// Buffers for the next xorbs, shared with the caller and other sessions
    /// ([`UploadSession::with_buffers`]; a private pool otherwise).
    buffers: Arc<BufferPool>,
}

#[derive(Debug)]
struct PendingFile {
    file_hash: XetHash,
    size: u64,
    terms: Vec<PendingTerm>,
}

/// A term whose xorb may not be finished (hashed) yet.
#[derive(Debug, Clone, Copy)]
struct PendingTerm {
    xorb: XorbRef,
    chunk_start: u32,
    chunk_end: u32,
    unpacked_bytes: u64,
    verification: XetHash,
}

/// What a finished file contributed, known as soon as its last byte was ingested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSummary {
    /// Xet file hash (spec §3.4).
    pub file_hash: XetHash,
    /// Size in bytes.
    pub size: u64,
    /// `(chunk hash, size)` of every chunk of the file in order, repeats included (the
    /// input of the file hash; multipart completion composes these).
    pub chunks: Vec<(XetHash, u64)>,
}

/// Everything a finished session produced.
#[derive(Debug, Clone)]
pub struct SessionOutput {
    /// Xorbs finished since the last [`UploadSession::take_completed_xorbs`] (upload these
    /// before the shard).
    pub xorbs: Vec<SerializedXorb>,
    /// The files of the session, in the order they were started, with resolved terms.
    pub files: Vec<(FileEntry, u64)>,
    /// The session's shard: all files and all xorbs created in the session.
    pub shard: Shard,
}

impl UploadSession {
    /// An empty session.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty session serializing its xorbs into buffers taken from `buffers` (hand
    /// them back there once uploaded).
    /// `size_hint` is the expected number of bytes of the session (`None`: unknown): a
    /// session expected to fit in a small xorb leaves the pooled (large) buffers to others.
    pub fn with_buffers(buffers: Arc<BufferPool>, size_hint: Option<u64>) -> Self {
        let builder = match size_hint {
            Some(n) if n < SMALL_SESSION => XorbBuilder::default(),
            _ => XorbBuilder::with_buffer(buffers.take()),
        };
        Self {
            builder,
            buffers,
            ..Self::default()
        }
    }

    /// Starts a file. Feed its bytes with [`FileIngest::write`], then call
    /// [`FileIngest::finish`]. Files of one session are ingested one after the other.
    pub fn start_file(&mut self) -> FileIngest<'_> {
        FileIngest {
            session: self,
            chunker: Chunker::new(),
            carry: Vec::new(),
            chunks: Vec::new(),
            size: 0,
            terms: Vec::new(),
            open: None,
            added_to_current_xorb: false,
            scratch_bounds: Vec::new(),
            dedup_queries: Vec::new(),
            last_query_at: None,
        }
    }

    /// Xorbs completed so far, drained: upload them while more data arrives.
    pub fn take_completed_xorbs(&mut self) -> Vec<SerializedXorb> {
        std::mem::take(&mut self.completed)
    }

    /// Registers a xorb that already exists in the CAS (from a global-dedup shard, spec
    /// §6.4): later chunks with the same hash are referenced there instead of stored.
    /// `hmac_key` is the shard footer's `chunk_hash_hmac_key` when non-zero: the entries then
    /// hold `chunk_hash.hmac(key)`.
    pub fn add_known_xorb(&mut self, xorb: &XorbEntry, hmac_key: Option<XetHash>) {
        let key = hmac_key.filter(|k| *k != XetHash::ZERO);
        match key {
            None => {
                for (i, c) in xorb.chunks.iter().enumerate() {
                    self.index
                        .entry(c.hash)
                        .or_insert((XorbRef::Known(xorb.xorb_hash), i as u32));
                }
            }
            Some(key) => {
                let pos = match self.keyed.iter().position(|k| k.key == key) {
                    Some(p) => p,
                    None => {
                        self.keyed.push(KeyedIndex {
                            key,
                            chunks: HashMap::new(),
                        });
                        self.keyed.len() - 1
                    }
                };
                for (i, c) in xorb.chunks.iter().enumerate() {
                    self.keyed[pos]
                        .chunks
                        .entry(c.hash)
                        .or_insert((xorb.xorb_hash, i as u32));
                }
            }
        }
    }

    fn lookup(&self, h: &XetHash) -> Option<(XorbRef, u32)> {
        if let Some(&at) = self.index.get(h) {
            return Some(at);
        }
        self.keyed.iter().find_map(|k| {
            k.chunks
                .get(&h.hmac(&k.key))
                .map(|&(x, i)| (XorbRef::Known(x), i))
        })
    }

    /// Uncompressed bytes in the xorb being built.
    pub fn buffered_bytes(&self) -> u64 {
        self.builder.uncompressed_len()
    }

    /// Flushes the last xorb and returns the remaining xorbs, the files and the shard.
    pub fn finish(mut self) -> SessionOutput {
        self.flush_xorb(false);
        // An empty builder that was never flushed may hold a pooled buffer: it goes back.
        let idle = std::mem::take(&mut self.builder);
        self.buffers.give(idle.into_buffer());
        let mut files = Vec::with_capacity(self.files.len());
        for f in &self.files {
            let terms: Vec<FileTerm> = f
                .terms
                .iter()
                .map(|t| FileTerm {
                    xorb_hash: match t.xorb {
                        XorbRef::Session(seq) => self.finished_hashes[seq as usize],
                        XorbRef::Known(h) => h,
                    },
                    unpacked_bytes: t.unpacked_bytes as u32,
                    chunk_start: t.chunk_start,
                    chunk_end: t.chunk_end,
                })
                .collect();
            let verification = f.terms.iter().map(|t| t.verification).collect();
            files.push((
                FileEntry {
                    file_hash: f.file_hash,
                    terms,
                    verification,
                    sha256: None,
                },
                f.size,
            ));
        }
        let mut shard_files: Vec<FileEntry> = Vec::with_capacity(files.len());
        for (entry, _) in &files {
            // The same content uploaded twice in one session is listed once.
            if !shard_files.iter().any(|e| e.file_hash == entry.file_hash) {
                shard_files.push(entry.clone());
            }
        }
        SessionOutput {
            xorbs: std::mem::take(&mut self.completed),
            files,
            shard: Shard {
                files: shard_files,
                xorbs: std::mem::take(&mut self.xorb_entries),
                footer: None,
            },
        }
    }

    /// Hands out the xorb being built (if any); the next one is built in a pooled buffer
    /// when `more` chunks are coming, else in none.
    fn flush_xorb(&mut self, more: bool) {
        if self.builder.is_empty() {
            return;
        }
        let next = if more {
            XorbBuilder::with_buffer(self.buffers.take())
        } else {
            XorbBuilder::default()
        };
        let xorb = std::mem::replace(&mut self.builder, next).finish();
        self.xorb_entries.push(XorbEntry {
            xorb_hash: xorb.hash,
            chunks: xorb
                .chunks
                .iter()
                .map(|c| XorbChunkEntry {
                    hash: c.hash,
                    unpacked_start: c.unpacked_start as u32,
                    unpacked_len: c.uncompressed_len,
                    flags: 0,
                })
                .collect(),
            bytes_in_xorb: xorb.chunks.iter().map(|c| c.uncompressed_len).sum(),
            bytes_on_disk: 0,
        });
        debug_assert_eq!(self.finished_hashes.len(), self.builder_seq as usize);
        self.finished_hashes.push(xorb.hash);
        self.completed.push(xorb);
        self.builder_seq += 1;
    }
}

/// A file being ingested into an [`UploadSession`].
#[derive(Debug)]
pub struct FileIngest<'a> {
    session: &'a mut UploadSession,
    chunker: Chunker,
    /// Bytes of the unfinished chunk carried over from earlier writes.
    carry: Vec<u8>,
    /// (hash, size) of every chunk of the file, for the file hash.
    chunks: Vec<(XetHash, u64)>,
    size: u64,
    terms: Vec<PendingTerm>,
    open: Option<OpenTerm>,
    /// Whether this file already added a chunk to the xorb being built.
    added_to_current_xorb: bool,
    scratch_bounds: Vec<usize>,
    /// Chunk hashes worth a global dedup query, not yet taken.
    dedup_queries: Vec<XetHash>,
    /// Chunk index of the last query (spacing rule).
    last_query_at: Option<usize>,
}

#[derive(Debug)]
struct OpenTerm {
    xorb: XorbRef,
    chunk_start: u32,
    chunk_end: u32,
    unpacked_bytes: u64,
    verification: blake3::Hasher,
}

impl FileIngest<'_> {
    /// Feeds the next bytes of the file (any piece size, including empty).
    pub fn write(&mut self, mut data: &[u8]) {
        self.size += data.len() as u64;
        if !self.carry.is_empty() {
            // Complete the chunk started by earlier writes first.
            match self.chunker.next_boundary(data) {
                None => {
                    self.carry.extend_from_slice(data);
                    return;
                }
                Some(n) => {
                    self.carry.extend_from_slice(&data[..n]);
                    let chunk = std::mem::take(&mut self.carry);
                    let h = hash::chunk_hash(&chunk);
                    self.add_chunk(h, &chunk);
                    self.carry = chunk;
                    self.carry.clear();
                    data = &data[n..];
                }
            }
        }
        let mut bounds = std::mem::take(&mut self.scratch_bounds);
        bounds.clear();
        self.chunker.boundaries_into(data, &mut bounds);
        let whole_end = bounds.last().copied().unwrap_or(0);
        let hashes = hash_chunks(data, &bounds);
        self.add_batch(&data[..whole_end], &bounds, &hashes);
        self.carry.extend_from_slice(&data[whole_end..]);
        self.scratch_bounds = bounds;
    }

    /// Adds the whole chunks `data[..bounds[0]]`, `data[bounds[0]..bounds[1]]`, … with their
    /// hashes. The new chunks' schemes are planned first (the same decisions as adding them
    /// one by one), then compressed on two threads, then appended in order.
    fn add_batch(&mut self, data: &[u8], bounds: &[usize], hashes: &[XetHash]) {
        let ranges: Vec<(usize, usize)> = bounds
            .iter()
            .scan(0, |start, &end| {
                let r = (*start, end);
                *start = end;
                Some(r)
            })
            .collect();
        // Plan.
        let s = &*self.session;
        let mut policy = s.builder.policy();
        let (mut bytes, mut count) = (s.builder.uncompressed_len(), s.builder.num_chunks());
        let mut added = self.added_to_current_xorb;
        let mut first_in_batch = std::collections::HashSet::new();
        let mut jobs: Vec<(usize, CompressionScheme)> = Vec::new();
        for (i, (&(a, b), h)) in ranges.iter().zip(hashes).enumerate() {
            if s.lookup(h).is_some() || !first_in_batch.insert(*h) {
                continue;
            }
            if xorb_would_overflow(bytes, count, b - a) {
                policy = AutoScheme::default();
                (bytes, count, added) = (0, 0, false);
            }
            jobs.push((i, policy.next(&data[a..b], !added)));
            added = true;
            bytes += (b - a) as u64;
            count += 1;
        }
        // Compress.
        let (payloads, bufs) = compress_jobs(data, &ranges, &jobs);
        // Append.
        let mut next_job = jobs.iter().zip(payloads.iter()).peekable();
        for (i, (&(a, b), h)) in ranges.iter().zip(hashes).enumerate() {
            let store = match next_job.peek() {
                Some(&(&(j, _), &c)) if j == i => {
                    let payload = match c.scheme {
                        CompressionScheme::None => &data[a..b],
                        _ => &bufs[usize::from(c.thread)][c.start..c.end],
                    };
                    next_job.next();
                    Store::Compressed(c.scheme, payload)
                }
                _ => Store::Auto(&data[a..b]),
            };
            self.add_chunk_as(*h, &data[a..b], store);
        }
        self.session.builder.set_policy(policy);
    }

    /// Xorbs the session completed so far, drained (see
    /// [`UploadSession::take_completed_xorbs`]); callable while the file is being written.
    pub fn take_completed_xorbs(&mut self) -> Vec<SerializedXorb> {
        self.session.take_completed_xorbs()
    }

    /// Chunk hashes for which a global dedup query is worth making, as hf_xet chooses them
    /// (spec §6.4): the file's first chunk and chunks with `hash % 1024 == 0`, at most one per
    /// 256 chunks. Drained. Feed the answers to [`FileIngest::add_known_xorb`].
    pub fn take_dedup_queries(&mut self) -> Vec<XetHash> {
        std::mem::take(&mut self.dedup_queries)
    }

    /// The hash of the file's first chunk, if `prefix` (the file's first bytes, nothing
    /// written yet) completes it, or holds the whole file (`at_end`) and is not empty;
    /// `None` otherwise, and once anything was written. Nothing is stored: a caller can
    /// ask the CAS whether that chunk is known (global dedup) before writing `prefix`.
    pub fn first_chunk_hash(&self, prefix: &[u8], at_end: bool) -> Option<XetHash> {
        if self.size > 0 {
            return None;
        }
        match self.chunker.clone().next_boundary(prefix) {
            Some(n) => Some(hash::chunk_hash(&prefix[..n])),
            None if at_end && !prefix.is_empty() => Some(hash::chunk_hash(prefix)),
            None => None,
        }
    }

    /// See [`UploadSession::add_known_xorb`].
    pub fn add_known_xorb(&mut self, xorb: &XorbEntry, hmac_key: Option<XetHash>) {
        self.session.add_known_xorb(xorb, hmac_key);
    }

    /// Bytes fed so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Ends the file; its terms are resolved when the session finishes.
    pub fn finish(mut self) -> FileSummary {
        if self.chunker.finish().is_some() {
            let chunk = std::mem::take(&mut self.carry);
            let h = hash::chunk_hash(&chunk);
            self.add_chunk(h, &chunk);
        }
        self.close_term();
        let file_hash = hash::file_hash(&self.chunks);
        let summary = FileSummary {
            file_hash,
            size: self.size,
            chunks: std::mem::take(&mut self.chunks),
        };
        self.session.files.push(PendingFile {
            file_hash,
            size: self.size,
            terms: std::mem::take(&mut self.terms),
        });
        summary
    }

    fn add_chunk(&mut self, h: XetHash, data: &[u8]) {
        self.add_chunk_as(h, data, Store::Auto(data));
    }

    fn add_chunk_as(&mut self, h: XetHash, data: &[u8], store: Store<'_>) {
        let len = data.len() as u64;
        let n = self.chunks.len();
        let spaced = self
            .last_query_at
            .is_none_or(|at| n - at >= MIN_SPACING_BETWEEN_GLOBAL_DEDUP_QUERIES);
        if n == 0 || (h.is_global_dedup_eligible() && spaced) {
            self.dedup_queries.push(h);
            self.last_query_at = Some(n);
        }
        self.chunks.push((h, len));
        let (xorb, idx) = match self.session.lookup(&h) {
            Some(at) => at,
            None => {
                let s = &mut *self.session;
                if s.builder.would_overflow(data.len()) {
                    s.flush_xorb(true);
                    self.added_to_current_xorb = false;
                }
                let idx = s.builder.num_chunks() as u32;
                match store {
                    Store::Auto(d) => s.builder.add_chunk_auto(h, d, !self.added_to_current_xorb),
                    Store::Compressed(used, payload) => {
                        s.builder.add_compressed(h, data.len(), used, payload)
                    }
                }
                self.added_to_current_xorb = true;
                let at = (XorbRef::Session(s.builder_seq), idx);
                s.index.insert(h, at);
                at
            }
        };
        match &mut self.open {
            Some(t) if t.xorb == xorb && t.chunk_end == idx => {
                t.chunk_end += 1;
                t.unpacked_bytes += len;
                t.verification.update(h.as_bytes());
            }
            _ => {
                self.close_term();
                let mut verification = blake3::Hasher::new_keyed(&VERIFICATION_KEY);
                verification.update(h.as_bytes());
                self.open = Some(OpenTerm {
                    xorb,
                    chunk_start: idx,
                    chunk_end: idx + 1,
                    unpacked_bytes: len,
                    verification,
                });
            }
        }
    }

    fn close_term(&mut self) {
        if let Some(t) = self.open.take() {
            self.terms.push(PendingTerm {
                xorb: t.xorb,
                chunk_start: t.chunk_start,
                chunk_end: t.chunk_end,
                unpacked_bytes: t.unpacked_bytes,
                verification: XetHash::from_bytes(*t.verification.finalize().as_bytes()),
            });
        }
    }
}

/// How a new chunk reaches the xorb builder.
enum Store<'a> {
    /// Compress with the builder's auto policy.
    Auto(&'a [u8]),
    /// Already compressed (scheme used, payload).
    Compressed(CompressionScheme, &'a [u8]),
}

/// Compresses the planned chunks (`(chunk index, scheme)`), on two threads when there is
/// enough data. Returns, in job order, the scheme used and the payload's range in the
/// returned buffer of each thread (`(scheme, thread, start, end)`); a chunk stored raw has
/// no payload of its own: it is appended straight from the input (one copy, not two).
fn compress_jobs(
    data: &[u8],
    ranges: &[(usize, usize)],
    jobs: &[(usize, CompressionScheme)],
) -> (Vec<Compressed>, [Vec<u8>; 2]) {
    let run = |jobs: &[(usize, CompressionScheme)], thread: u8| {
        let mut buf = Vec::new();
        let out = jobs
            .iter()
            .map(|&(i, scheme)| {
                let (a, b) = ranges[i];
                let start = buf.len();
                if compress_if_smaller(scheme, &data[a..b], &mut buf) {
                    Compressed {
                        scheme,
                        thread,
                        start,
                        end: buf.len(),
                    }
                } else {
                    Compressed::RAW
                }
            })
            .collect::<Vec<_>>();
        (out, buf)
    };
    let total: usize = jobs.iter().map(|&(i, _)| ranges[i].1 - ranges[i].0).sum();
    if total < PARALLEL_HASH_MIN_BYTES || jobs.len() < 4 {
        let (out, buf) = run(jobs, 0);
        return (out, [buf, Vec::new()]);
    }
    let (left, right) = jobs.split_at(jobs.len() / 2);
    std::thread::scope(|s| {
        let other = s.spawn(|| run(right, 1));
        let (mut out, buf0) = run(left, 0);
        let (rest, buf1) = other.join().expect("compression thread panicked");
        out.extend(rest);
        (out, [buf0, buf1])
    })
}

/// Where [`compress_jobs`] put one chunk's payload.
#[derive(Debug, Clone, Copy)]
struct Compressed {
    scheme: CompressionScheme,
    thread: u8,
    start: usize,
    end: usize,
}

impl Compressed {
    /// Stored raw (no payload in the buffers).
    const RAW: Compressed = Compressed {
        scheme: CompressionScheme::None,
        thread: 0,
        start: 0,
        end: 0,
    };
}

/// Chunk hashes of `data[..bounds[0]]`, `data[bounds[0]..bounds[1]]`, …, on two threads when
/// there is enough data.
fn hash_chunks(data: &[u8], bounds: &[usize]) -> Vec<XetHash> {
    let ranges = |bs: &[usize], first_start: usize| {
        let mut start = first_start;
        bs.iter()
            .map(|&end| {
                let h = hash::chunk_hash(&data[start..end]);
                start = end;
                h
            })
            .collect::<Vec<_>>()
    };
    let total = bounds.last().copied().unwrap_or(0);
    if total < PARALLEL_HASH_MIN_BYTES || bounds.len() < 4 {
        return ranges(bounds, 0);
    }
    let mid = bounds.len() / 2;
    let (left, right) = bounds.split_at(mid);
    let right_start = left[mid - 1];
    std::thread::scope(|s| {
        let other = s.spawn(|| ranges(right, right_start));
        let mut out = ranges(left, 0);
        out.extend(other.join().expect("hashing thread panicked"));
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::verification_hash;
    use crate::xorb::{decode_chunk_records, verify_xorb};

    fn pseudo_random(label: &str, n: usize) -> Vec<u8> {
        let mut out = vec![0u8; n];
        blake3::Hasher::new()
            .update(label.as_bytes())
            .finalize_xof()
            .fill(&mut out);
        out
    }

    #[test]
    fn the_first_chunk_is_known_before_it_is_written() {
        let data = pseudo_random("first chunk", 300_000);
        let mut session = UploadSession::new();
        let mut file = session.start_file();
        // 1000 bytes complete no chunk, unless they are the whole file.
        assert_eq!(file.first_chunk_hash(&data[..1000], false), None);
        assert_eq!(
            file.first_chunk_hash(&data[..1000], true),
            Some(hash::chunk_hash(&data[..1000]))
        );
        assert_eq!(file.first_chunk_hash(&[], true), None);
        let first = file.first_chunk_hash(&data, false).expect("a whole chunk");
        file.write(&data);
        assert_eq!(file.first_chunk_hash(&data, false), None, "already written");
        assert_eq!(file.take_dedup_queries().first(), Some(&first));
        assert_eq!(file.finish().chunks[0].0, first);
    }

    #[test]
    fn sessions_reuse_pooled_buffers_and_small_ones_leave_them() {
        let pool = Arc::new(BufferPool::new(2));
        let ingest_one = |session: UploadSession, data: &[u8]| {
            let mut session = session;
            let mut file = session.start_file();
            file.write(data);
            file.finish();
            session.finish().xorbs
        };
        let data = pseudo_random("pool", 3 << 20);
        let first = ingest_one(UploadSession::with_buffers(pool.clone(), None), &data);
        assert_eq!(first.len(), 1);
        let reused_ptr = first[0].data.as_ptr();
        for x in first {
            pool.give(x.data);
        }
        assert_eq!(pool.len(), 1);
        // A small session leaves the pooled buffer alone.
        let small = UploadSession::with_buffers(pool.clone(), Some(10_000));
        assert_eq!(pool.len(), 1);
        let small_xorbs = ingest_one(small, &data[..10_000]);
        assert_ne!(small_xorbs[0].data.as_ptr(), reused_ptr);
        // A large (or unknown-size) one serializes into it (the largest), with the same
        // bytes as ever.
        pool.give(Vec::with_capacity(1 << 20));
        let second = UploadSession::with_buffers(pool.clone(), None);
        assert_eq!(pool.len(), 1);
        let other = pseudo_random("pool 2", 3 << 20);
        let xorbs = ingest_one(second, &other);
        assert_eq!(xorbs[0].data.as_ptr(), reused_ptr);
        assert_eq!(
            xorbs[0].data,
            ingest_one(UploadSession::new(), &other)[0].data
        );
        // The buffer the session did not need is still in the pool.
        assert_eq!(pool.len(), 1);
    }

    /// Rebuilds a file from its terms and the session's xorbs.
    fn reconstruct(entry: &FileEntry, xorbs: &[SerializedXorb]) -> Vec<u8> {
        let mut out = Vec::new();
        for t in &entry.terms {
            let x = xorbs.iter().find(|x| x.hash == t.xorb_hash).unwrap();
            let first = &x.chunks[t.chunk_start as usize];
            let last = &x.chunks[t.chunk_end as usize - 1];
            let mut decoded = Vec::new();
            let sizes = decode_chunk_records(
                &x.data[first.byte_start as usize..last.byte_end as usize],
                &mut decoded,
            )
            .unwrap();
            assert_eq!(sizes.len() as u32, t.chunk_end - t.chunk_start);
            assert_eq!(decoded.len() as u32, t.unpacked_bytes);
            out.extend_from_slice(&decoded);
        }
        out
    }

    fn ingest(
        files: &[&[u8]],
        piece: usize,
    ) -> (Vec<FileSummary>, Vec<SerializedXorb>, SessionOutput) {
        let mut session = UploadSession::new();
        let mut xorbs = Vec::new();
        let mut summaries = Vec::new();
        for data in files {
            let mut f = session.start_file();
            for p in data.chunks(piece.max(1)) {
                f.write(p);
            }
            summaries.push(f.finish());
            xorbs.extend(session.take_completed_xorbs());
        }
        let out = session.finish();
        xorbs.extend(out.xorbs.iter().cloned());
        (summaries, xorbs, out)
    }

    #[test]
    fn roundtrip_and_hashes_independent_of_pieces() {
        let data = pseudo_random("ingest/a", 700_000);
        let expected = crate::hash::file_hash(
            &crate::chunking::chunk_boundaries(&data)
                .iter()
                .scan(0, |s, &e| {
                    let r = (crate::hash::chunk_hash(&data[*s..e]), (e - *s) as u64);
                    *s = e;
                    Some(r)
                })
                .collect::<Vec<_>>(),
        );
        for piece in [1 << 30, 4103, 65_536, 1_000_001] {
            let (sums, xorbs, out) = ingest(&[&data], piece);
            assert_eq!(sums[0].file_hash, expected);
            assert_eq!(sums[0].size, data.len() as u64);
            assert_eq!(reconstruct(&out.files[0].0, &xorbs), data);
            for x in &xorbs {
                verify_xorb(&x.data, &x.hash).unwrap();
            }
        }
    }

    #[test]
    fn repeated_content_is_stored_once() {
        let a = pseudo_random("ingest/A", 300_000);
        let b = pseudo_random("ingest/B", 200_000);
        let data: Vec<u8> = [&a[..], &b, &a, &a].concat();
        let (_, xorbs, out) = ingest(&[&data], 1 << 20);
        assert_eq!(reconstruct(&out.files[0].0, &xorbs), data);
        let stored: u64 = xorbs
            .iter()
            .flat_map(|x| &x.chunks)
            .map(|c| u64::from(c.uncompressed_len))
            .sum();
        assert!(
            stored < data.len() as u64 * 3 / 4,
            "stored {stored} of {}",
            data.len()
        );
        // Verification hashes cover exactly each term's chunk hashes.
        let entry = &out.files[0].0;
        for (t, v) in entry.terms.iter().zip(&entry.verification) {
            let x = xorbs.iter().find(|x| x.hash == t.xorb_hash).unwrap();
            let hs: Vec<XetHash> = x.chunks[t.chunk_start as usize..t.chunk_end as usize]
                .iter()
                .map(|c| c.hash)
                .collect();
            assert_eq!(verification_hash(&hs), *v);
        }
    }

    #[test]
    fn files_share_xorbs_and_duplicates_are_listed_once() {
        let a = pseudo_random("ingest/f1", 50_000);
        let b = pseudo_random("ingest/f2", 9_000);
        let (sums, xorbs, out) = ingest(&[&a, &b, &a, &[]], 7777);
        assert_eq!(xorbs.len(), 1);
        assert_eq!(out.files.len(), 4);
        assert_eq!(out.shard.files.len(), 3);
        assert_eq!(sums[3].file_hash, XetHash::ZERO);
        assert!(out.files[3].0.terms.is_empty());
        assert_eq!(reconstruct(&out.files[2].0, &xorbs), a);
        assert_eq!(reconstruct(&out.files[1].0, &xorbs), b);
    }

    #[test]
    fn xorbs_are_cut_at_the_limits() {
        // 70 MiB of random data must need two xorbs, none over 64 MiB.
        let data = pseudo_random("ingest/big", 70 << 20);
        let mut session = UploadSession::new();
        let mut f = session.start_file();
        let mut taken = Vec::new();
        for p in data.chunks(8 << 20) {
            f.write(p);
        }
        f.finish();
        taken.extend(session.take_completed_xorbs());
        assert_eq!(
            taken.len(),
            1,
            "the first xorb is handed out before the session ends"
        );
        let out = session.finish();
        taken.extend(out.xorbs.iter().cloned());
        assert_eq!(taken.len(), 2);
        for x in &taken {
            let n: u64 = x.chunks.iter().map(|c| u64::from(c.uncompressed_len)).sum();
            assert!(n <= crate::constants::MAX_XORB_BYTES as u64);
        }
        assert_eq!(reconstruct(&out.files[0].0, &taken), data);
    }

    #[test]
    fn known_cas_xorbs_are_referenced_not_stored() {
        let data = pseudo_random("ingest/known", 900_000);
        let (_, first_xorbs, first) = ingest(&[&data], 1 << 20);
        let entry = first.shard.xorbs[0].clone();
        for key in [None, Some(crate::hash::chunk_hash(b"hmac key"))] {
            let mut known = entry.clone();
            if let Some(k) = key {
                for c in &mut known.chunks {
                    c.hash = c.hash.hmac(&k);
                }
            }
            let mut session = UploadSession::new();
            let mut f = session.start_file();
            f.add_known_xorb(&known, key);
            f.write(&data);
            let queries = f.take_dedup_queries();
            assert_eq!(
                queries.first(),
                Some(
                    &first.files[0]
                        .0
                        .terms
                        .first()
                        .map(|_| {
                            crate::hash::chunk_hash(
                                &data[..crate::chunking::chunk_boundaries(&data)[0]],
                            )
                        })
                        .unwrap()
                )
            );
            f.finish();
            let out = session.finish();
            assert!(out.xorbs.is_empty(), "nothing new to store");
            assert!(out.shard.xorbs.is_empty());
            let file = &out.files[0].0;
            assert!(file.terms.iter().all(|t| t.xorb_hash == entry.xorb_hash));
            assert_eq!(reconstruct(file, &first_xorbs), data);
            assert_eq!(file.verification, first.files[0].0.verification);
        }
    }

    #[test]
    fn parallel_batches_serialize_exactly_like_one_chunk_at_a_time() {
        // Compressible, non-repeating text over more than one xorb, so that a xorb is cut
        // inside a batch and schemes are planned across the cut.
        let words = [
            "alpha ", "beta ", "gamma ", "delta ", "epsilon ", "zeta ", "eta ", "theta ",
        ];
        let mut data = Vec::with_capacity(70 << 20);
        let mut x = 0x1234_5678_9abc_def1u64;
        let mut n = 0u64;
        while data.len() < 70 << 20 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            data.extend_from_slice(words[(x % 8) as usize].as_bytes());
            n += 1;
            if n % 16 == 0 {
                data.extend_from_slice(format!("{n}\n").as_bytes());
            }
        }
        let bounds = crate::chunking::chunk_boundaries(&data);
        let chunks: Vec<&[u8]> = bounds
            .iter()
            .scan(0, |s, &e| {
                let c = &data[*s..e];
                *s = e;
                Some(c)
            })
            .collect();
        let (_, xorbs, _) = ingest(&[&data], 8 << 20);
        assert!(xorbs.len() >= 2);
        let mut used = 0;
        for x in &xorbs {
            let n = x.chunks.len();
            let reference = crate::xorb::serialize_xorb(&chunks[used..used + n], &[0]);
            assert_eq!(reference.hash, x.hash);
            assert!(
                reference.data == x.data,
                "xorb bytes differ from the sequential serializer"
            );
            used += n;
        }
        assert_eq!(used, chunks.len());
    }
}
