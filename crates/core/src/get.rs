//! Streaming reconstruction: a file (or a byte range of it) out of ranged xorb fetches.
//!
//! One task per reconstruction term fetches the term's xorb byte range as a stream, decodes
//! chunk records as they arrive and sends the decoded chunks through a small bounded
//! channel. The output stream drains the terms in file order while later terms are already
//! being fetched, up to `window` terms and [`PREFETCH_BYTES`] of them (at least one), so
//! first bytes flow before the whole object is fetched, the hub's latency hides behind the
//! transfer whether terms are small or xorb-sized, and memory stays bounded (terms in
//! flight × channel capacity × one chunk; fetches that fill the cache write to the cache's
//! file-backed segments).
//!
//! Presigned fetch URLs expire, and v2 URLs are signed for their exact byte range. When a
//! term's fetch is refused (401/403: expired) or breaks mid-body, the term's remaining
//! chunks are re-queried (a reconstruction of just the file bytes not yet decoded, which
//! comes with fresh URLs) and the fetch continues from there: the client of the GET sees one
//! uninterrupted body. Each term may do this [`MAX_URL_REFRESHES`] times in a row without
//! progress and [`MAX_TERM_REFRESHES`] times in all.
//!
//! Every decoded chunk's size is checked against its header and every term's size against
//! the reconstruction. When the whole object is read, the hash of every chunk served is
//! recomputed from the bytes served, whether they came from the CAS or from the chunk
//! cache, and the file hash compared with the object's. The last piece is held back until
//! that check passed: a mismatch ends the stream with an error instead of its last piece,
//! so a client never receives a complete-looking wrong object (the response is aborted
//! short of its Content-Length), the object's cache entries are dropped and the mismatch is
//! counted. A piece of a verified read that arrives without hashes for all its bytes fails
//! the read the same way: verification is never switched off midway.
//!
//! Ranged reads have no reference to check against (the reconstruction API carries no chunk
//! hashes): they rely on the cache's per-record CRC and on the chunk size checks above.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Buf, Bytes, BytesMut};
use futures::{Stream, StreamExt};
use hugbucket_cache::{ChunkCache, ChunkRangeKey};
use hugbucket_engine::XetHash;
use hugbucket_engine::compression::decompress_chunk;
use hugbucket_engine::hash::{chunk_hash, file_hash};
use hugbucket_engine::xorb::ChunkHeader;
use hugbucket_upstream::{
    CasClient, FetchEntry, Reconstruction, ReconstructionTerm, UpstreamError, XorbRangeStream,
};
use tokio::sync::mpsc;

use crate::error::{CoreError, Result};
use crate::flight::SingleFlight;

/// Bytes of terms (decoded size) fetched ahead of the reader, at most.
const PREFETCH_BYTES: u64 = 256 << 20;

/// Decoded chunks per term channel.
const TERM_CHANNEL: usize = 8;

/// Re-queries of one term's URLs in a row without a decoded chunk in between.
const MAX_URL_REFRESHES: u32 = 5;

/// Re-queries of one term's URLs in all (a server that keeps cutting bodies short ends the
/// GET with an error instead of being asked forever).
const MAX_TERM_REFRESHES: u32 = 10;

/// Chunks per cache entry: terms are cached in groups aligned to multiples of this chunk
/// index, so that differently trimmed terms of the same xorb share entries.
const CACHE_GROUP: u32 = 32;

/// One fetch per term at a time across all readers (it fills the cache; readers then hash
/// what they serve themselves).
pub(crate) type Flights = SingleFlight<ChunkRangeKey, Result<(), Arc<str>>>;

/// What a GET needs besides the reconstruction: the CAS, and the chunk cache if enabled.
#[derive(Clone)]
pub(crate) struct ReadCtx {
    pub cas: CasClient,
    /// The file being read (to re-query its reconstruction for fresh fetch URLs).
    pub file: XetHash,
    pub cache: Option<Arc<dyn ChunkCache>>,
    pub flights: Arc<Flights>,
    /// Where term fetch tasks run.
    pub runtime: tokio::runtime::Handle,
    /// Whole reads whose file hash did not match (shown on `/metrics`).
    pub hash_mismatches: Arc<AtomicU64>,
}

/// The aligned cache groups covering chunks `[start, end)` of a xorb.
fn cache_groups(xorb: XetHash, start: u32, end: u32) -> Vec<ChunkRangeKey> {
    let mut out = Vec::new();
    let mut s = start;
    while s < end {
        let e = ((s / CACHE_GROUP + 1) * CACHE_GROUP).min(end);
        out.push(ChunkRangeKey::new(xorb, s, e));
        s = e;
    }
    out
}

/// One cache group's bytes and, when the read is verified, its chunk lengths.
type CachedGroup = (Bytes, Vec<u32>);

/// The whole term from the cache, or `None` if any group is missing. With `lens`, each
/// group comes with its chunk lengths (to hash what is served).
fn cached_term(
    cache: &dyn ChunkCache,
    term: &ReconstructionTerm,
    lens: bool,
) -> Option<Vec<CachedGroup>> {
    cache_groups(term.xorb_hash, term.chunk_start, term.chunk_end)
        .iter()
        .map(|k| match lens {
            true => cache.get_chunks(k),
            false => cache.get(k).map(|b| (b, Vec::new())),
        })
        .collect()
}

/// Decoded bytes and, on a verified read, the hash and length of each chunk they hold.
type Piece = Result<(Bytes, Arc<[(XetHash, u64)]>)>;

/// Builds the body stream of `len` bytes of the file from byte `start` on, out of `recon`
/// (the reconstruction of that range: its first term begins `offset_into_first_range`
/// bytes before `start`). Must be called on the core's tokio runtime.
/// `verify_hash`: when the whole file is read, the file hash it must have.
pub(crate) fn reconstruct_stream(
    ctx: ReadCtx,
    recon: Reconstruction,
    start: u64,
    len: u64,
    window: usize,
    verify_hash: Option<XetHash>,
) -> ReconstructStream {
    ReconstructStream {
        runtime: ctx.runtime.clone(),
        ctx,
        skip: recon.offset_into_first_range,
        next_term_pos: start.saturating_sub(recon.offset_into_first_range),
        remaining: len,
        terms: recon.terms.clone().into_iter().collect(),
        recon,
        running: VecDeque::new(),
        window: window.max(1),
        verify: verify_hash.map(|h| (h, Vec::new())),
        held: None,
        failed: false,
    }
}

/// The GET body stream (see the module doc).
pub(crate) struct ReconstructStream {
    /// Fetch tasks run here even when the stream is polled from another executor.
    runtime: tokio::runtime::Handle,
    ctx: ReadCtx,
    recon: Reconstruction,
    terms: VecDeque<ReconstructionTerm>,
    /// Terms being fetched, in file order, with their decoded sizes.
    running: VecDeque<(mpsc::Receiver<Piece>, u64)>,
    window: usize,
    skip: u64,
    /// File offset of the first byte of the next term to launch.
    next_term_pos: u64,
    remaining: u64,
    verify: Option<(XetHash, Vec<(XetHash, u64)>)>,
    /// The last piece of a verified read, sent once the file hash matched.
    held: Option<Bytes>,
    failed: bool,
}

impl ReconstructStream {
    fn launch(&mut self) {
        loop {
            let ahead: u64 = self.running.iter().map(|(_, n)| n).sum();
            let room = self.running.len() < self.window && ahead < PREFETCH_BYTES;
            if !(self.running.is_empty() || room) {
                break;
            }
            let Some(term) = self.terms.pop_front() else {
                break;
            };
            let size = term.unpacked_length;
            let (tx, rx) = mpsc::channel(TERM_CHANNEL);
            let entry = self.recon.fetch_for(&term).cloned();
            let ctx = self.ctx.clone();
            let hash_chunks = self.verify.is_some();
            let term = PlacedTerm {
                term,
                pos: self.next_term_pos,
            };
            self.next_term_pos = self.next_term_pos.saturating_add(term.term.unpacked_length);
            self.runtime.spawn(async move {
                if let Err(e) = serve_term(&ctx, term, entry, hash_chunks, &tx).await {
                    let _ = tx.send(Err(e)).await;
                }
            });
            self.running.push_back((rx, size));
        }
    }
}

/// Sends one term's chunks to `tx`: from the cache when every group of it is there, else
/// after one upstream fetch shared by all concurrent readers of the same term. The shared
/// fetch only fills the cache (it never waits on a reader, so readers of terms that share a
/// range cannot deadlock on each other's channels); every reader then serves the cache.
async fn serve_term(
    ctx: &ReadCtx,
    placed: PlacedTerm,
    entry: Option<FetchEntry>,
    hash_chunks: bool,
    tx: &mpsc::Sender<Piece>,
) -> Result<()> {
    let term = placed.term;
    let entry = entry.ok_or_else(|| {
        CoreError::Integrity(format!("no fetch entry for xorb {}", term.xorb_hash))
    })?;
    let Some(cache) = &ctx.cache else {
        return fetch_term(ctx, None, &placed, &entry, hash_chunks, Some(tx))
            .await
            .map(|_| ());
    };
    if let Some(groups) = cached_term(cache.as_ref(), &term, hash_chunks) {
        return send_cached(groups, hash_chunks, tx).await;
    }
    let key = ChunkRangeKey::new(term.xorb_hash, term.chunk_start, term.chunk_end);
    ctx.flights
        .run(key, || {
            let (ctx, cache, entry) = (ctx.clone(), cache.clone(), entry.clone());
            async move {
                fetch_term(&ctx, Some(cache.as_ref()), &placed, &entry, false, None)
                    .await
                    .map(|_| ())
                    .map_err(|e| Arc::<str>::from(e.to_string()))
            }
        })
        .await
        .map_err(|e| CoreError::Integrity(e.to_string()))?;
    match cached_term(cache.as_ref(), &term, hash_chunks) {
        Some(groups) => send_cached(groups, hash_chunks, tx).await,
        // Not cached (too big for the cache, or already evicted): stream it ourselves.
        None => fetch_term(ctx, None, &placed, &entry, hash_chunks, Some(tx))
            .await
            .map(|_| ()),
    }
}

/// Sends cached groups, each with the hashes of its chunks recomputed from the bytes sent
/// when `hash_chunks` (one group at a time, so hashing overlaps the sending).
async fn send_cached(
    groups: Vec<CachedGroup>,
    hash_chunks: bool,
    tx: &mpsc::Sender<Piece>,
) -> Result<()> {
    for (data, lens) in groups {
        let hashes: Arc<[(XetHash, u64)]> = match hash_chunks {
            true => chunk_hashes(&data, &lens)?.into(),
            false => Arc::from(Vec::new()),
        };
        if tx.send(Ok((data, hashes))).await.is_err() {
            break;
        }
    }
    Ok(())
}

/// The hash and length of each chunk of `data`, whose chunk lengths are `lens`.
fn chunk_hashes(data: &[u8], lens: &[u32]) -> Result<Vec<(XetHash, u64)>> {
    let mut out = Vec::with_capacity(lens.len());
    let mut rest = data;
    for &len in lens {
        let Some((chunk, tail)) = rest.split_at_checked(len as usize) else {
            return Err(CoreError::Integrity(
                "cached chunk lengths exceed the data".into(),
            ));
        };
        out.push((chunk_hash(chunk), u64::from(len)));
        rest = tail;
    }
    if !rest.is_empty() {
        return Err(CoreError::Integrity(
            "cached chunk lengths short of the data".into(),
        ));
    }
    Ok(out)
}

/// A term and the file offset of its first byte.
#[derive(Clone, Copy)]
struct PlacedTerm {
    term: ReconstructionTerm,
    pos: u64,
}

/// True for a fetch failure that fresh URLs may cure: a refused (expired) URL, or a transfer
/// that broke (the client does not resume a range-signed URL with a narrower range).
fn needs_fresh_url(e: &UpstreamError) -> bool {
    matches!(e, UpstreamError::FetchUrlExpired(_)) || e.is_retryable()
}

/// Whether a term may re-query its URLs once more.
fn may_refresh(in_a_row: u32, total: u32) -> bool {
    in_a_row < MAX_URL_REFRESHES && total < MAX_TERM_REFRESHES
}

/// A fetch entry with fresh URLs for chunks `[next_chunk, term.chunk_end)` of `placed`'s
/// xorb, from a reconstruction of the term's file bytes from `done_bytes` on.
async fn refresh_entry(
    ctx: &ReadCtx,
    placed: &PlacedTerm,
    next_chunk: u32,
    done_bytes: u64,
) -> Result<FetchEntry> {
    let term = &placed.term;
    let start = placed.pos + done_bytes;
    let end = placed.pos + term.unpacked_length - 1;
    let recon = ctx
        .cas
        .reconstruction(
            &ctx.file,
            Some(hugbucket_upstream::ByteRange { start, end }),
        )
        .await?;
    let rest = ReconstructionTerm {
        chunk_start: next_chunk,
        ..*term
    };
    recon.fetch_for(&rest).cloned().ok_or_else(|| {
        CoreError::Integrity(format!(
            "re-queried reconstruction has no fetch entry for xorb {} chunks {}..{}",
            term.xorb_hash, next_chunk, term.chunk_end
        ))
    })
}

/// Fetches a term's xorb range and decodes it chunk by chunk, into `tx` when given (each
/// chunk with its hash when `hash_chunks`) and into the cache in aligned groups when given.
/// An expired URL or a broken transfer is continued from the next undecoded chunk with a
/// freshly queried URL (see the module doc). Returns the chunk hashes (when `hash_chunks`).
async fn fetch_term(
    ctx: &ReadCtx,
    cache: Option<&dyn ChunkCache>,
    placed: &PlacedTerm,
    entry: &FetchEntry,
    hash_chunks: bool,
    tx: Option<&mpsc::Sender<Piece>>,
) -> Result<Vec<(XetHash, u64)>> {
    let term = &placed.term;
    let mut hashes = Vec::new();
    let mut entry = entry.clone();
    // The cache group being assembled: first chunk index, chunk lengths, decoded chunks.
    let mut group: (u32, Vec<u32>, Vec<Bytes>) = (term.chunk_start, Vec::new(), Vec::new());
    // Next chunk to decode and send, and the chunk the next record of the stream holds.
    let mut next_chunk = term.chunk_start;
    let mut produced = 0u64;
    // Refreshes in a row without progress, and in all.
    let (mut refreshes, mut total_refreshes) = (0u32, 0u32);
    'fetch: while next_chunk < term.chunk_end {
        let mut stream: XorbRangeStream =
            match ctx.cas.fetch_xorb_range(&entry.url, entry.bytes).await {
                Ok(s) => s,
                Err(e) if needs_fresh_url(&e) && may_refresh(refreshes, total_refreshes) => {
                    refreshes += 1;
                    total_refreshes += 1;
                    entry = refresh_entry(ctx, placed, next_chunk, produced).await?;
                    continue 'fetch;
                }
                Err(e) => return Err(e.into()),
            };
        if let Some(c) = cache {
            c.record_upstream_fetch(entry.bytes.len());
        }
        let mut record_chunk = entry.chunk_start;
        let mut records = Records::default();
        while next_chunk < term.chunk_end {
            // Decode every whole record received so far.
            while next_chunk < term.chunk_end {
                let Some((header, rec)) = records.next()? else {
                    break;
                };
                let chunk_index = record_chunk;
                record_chunk += 1;
                if chunk_index < next_chunk {
                    continue;
                }
                let data = decode_record(header, rec)?;
                produced += data.len() as u64;
                next_chunk = chunk_index + 1;
                refreshes = 0;
                if let Some(c) = cache {
                    group.1.push(data.len() as u32);
                    group.2.push(data.clone());
                    if next_chunk % CACHE_GROUP == 0 || next_chunk == term.chunk_end {
                        let key = ChunkRangeKey::new(term.xorb_hash, group.0, next_chunk);
                        let pieces: Vec<&[u8]> = group.2.iter().map(|b| b.as_ref()).collect();
                        // Best effort: a failed put is a later miss.
                        let _ = c.put_pieces(&key, &group.1, &pieces);
                        group = (next_chunk, Vec::new(), Vec::new());
                    }
                }
                let h: Arc<[(XetHash, u64)]> = if hash_chunks {
                    let pair = (chunk_hash(&data), data.len() as u64);
                    hashes.push(pair);
                    Arc::from(vec![pair])
                } else {
                    Arc::from(Vec::new())
                };
                if let Some(tx) = tx {
                    if tx.send(Ok((data, h))).await.is_err() {
                        return Ok(hashes); // the reader went away
                    }
                }
            }
            if next_chunk >= term.chunk_end {
                break;
            }
            match stream.next().await {
                Some(Ok(piece)) => records.push(piece),
                Some(Err(e)) if needs_fresh_url(&e) && may_refresh(refreshes, total_refreshes) => {
                    refreshes += 1;
                    total_refreshes += 1;
                    entry = refresh_entry(ctx, placed, next_chunk, produced).await?;
                    continue 'fetch;
                }
                Some(Err(e)) => return Err(e.into()),
                None => {
                    return Err(CoreError::Integrity(format!(
                        "xorb {} range ended before chunk {next_chunk} of {}..{}",
                        term.xorb_hash, term.chunk_start, term.chunk_end
                    )));
                }
            }
        }
    }
    if produced != term.unpacked_length {
        return Err(CoreError::Integrity(format!(
            "term of xorb {} decoded to {produced} bytes, expected {}",
            term.xorb_hash, term.unpacked_length
        )));
    }
    Ok(hashes)
}

/// Splits the pieces of a fetched xorb range into whole chunk records. A record inside one
/// piece is a slice of it (no copy); only a record that straddles pieces is assembled.
#[derive(Default)]
struct Records {
    /// The beginning of a record whose end has not arrived yet.
    partial: BytesMut,
    /// What is left of the last piece pushed.
    piece: Bytes,
}

impl Records {
    /// Adds the next piece of the range (call once [`Records::next`] answered `None`).
    fn push(&mut self, piece: Bytes) {
        debug_assert!(self.piece.is_empty());
        self.piece = piece;
    }

    /// The next whole record (its header and payload), or `None` when the bytes pushed so
    /// far end inside a record.
    fn next(&mut self) -> Result<Option<(ChunkHeader, Bytes)>> {
        if self.partial.is_empty() {
            if self.piece.len() >= ChunkHeader::SIZE {
                let header = ChunkHeader::parse(&self.piece[..ChunkHeader::SIZE])?;
                let record = ChunkHeader::SIZE + header.compressed_len as usize;
                if self.piece.len() >= record {
                    let mut rec = self.piece.split_to(record);
                    rec.advance(ChunkHeader::SIZE);
                    return Ok(Some((header, rec)));
                }
            }
            self.partial
                .extend_from_slice(&std::mem::take(&mut self.piece));
            return Ok(None);
        }
        if self.partial.len() < ChunkHeader::SIZE {
            self.take_into_partial(ChunkHeader::SIZE);
            if self.partial.len() < ChunkHeader::SIZE {
                return Ok(None);
            }
        }
        let header = ChunkHeader::parse(&self.partial[..ChunkHeader::SIZE])?;
        let record = ChunkHeader::SIZE + header.compressed_len as usize;
        self.take_into_partial(record);
        if self.partial.len() < record {
            return Ok(None);
        }
        let mut rec = std::mem::take(&mut self.partial).freeze();
        rec.advance(ChunkHeader::SIZE);
        Ok(Some((header, rec)))
    }

    /// Moves bytes of the piece into the partial record until it holds `len` bytes.
    fn take_into_partial(&mut self, len: usize) {
        let n = len.saturating_sub(self.partial.len()).min(self.piece.len());
        self.partial.reserve(len.saturating_sub(self.partial.len()));
        self.partial.extend_from_slice(&self.piece.split_to(n));
    }
}

/// The uncompressed bytes of one chunk record's payload (a stored chunk is its payload).
fn decode_record(header: ChunkHeader, rec: Bytes) -> Result<Bytes> {
    let ulen = header.uncompressed_len as usize;
    if header.scheme == hugbucket_engine::compression::CompressionScheme::None {
        if rec.len() != ulen {
            return Err(CoreError::Integrity(
                "stored chunk of the wrong size".into(),
            ));
        }
        return Ok(rec);
    }
    let mut decoded = Vec::with_capacity(ulen);
    decompress_chunk(header.scheme, &rec, ulen, &mut decoded)?;
    Ok(Bytes::from(decoded))
}

impl Stream for ReconstructStream {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.failed {
                return Poll::Ready(None);
            }
            this.launch();
            let Some((front, _)) = this.running.front_mut() else {
                // All terms drained.
                if let Some((expected, chunks)) = this.verify.take() {
                    let got = file_hash(&chunks);
                    if got != expected {
                        this.failed = true;
                        this.ctx.hash_mismatches.fetch_add(1, Ordering::Relaxed);
                        // Never serve these bytes again from the cache either.
                        if let Some(cache) = &this.ctx.cache {
                            for t in &this.recon.terms {
                                for k in cache_groups(t.xorb_hash, t.chunk_start, t.chunk_end) {
                                    let _ = cache.remove(&k);
                                }
                            }
                        }
                        return Poll::Ready(Some(Err(std::io::Error::other(format!(
                            "file hash mismatch: expected {expected}, read {got}"
                        )))));
                    }
                }
                if let Some(last) = this.held.take() {
                    return Poll::Ready(Some(Ok(last)));
                }
                if this.remaining > 0 {
                    this.failed = true;
                    return Poll::Ready(Some(Err(std::io::Error::other(format!(
                        "reconstruction ended {} bytes short",
                        this.remaining
                    )))));
                }
                return Poll::Ready(None);
            };
            match front.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    this.running.pop_front();
                }
                Poll::Ready(Some(Err(e))) => {
                    this.failed = true;
                    return Poll::Ready(Some(Err(std::io::Error::other(e.to_string()))));
                }
                Poll::Ready(Some(Ok((mut data, h)))) => {
                    if let Some((_, chunks)) = this.verify.as_mut() {
                        // Each piece of a verified read carries the hashes of exactly its bytes.
                        let hashed: u64 = h.iter().map(|(_, n)| *n).sum();
                        if hashed != data.len() as u64 {
                            this.failed = true;
                            return Poll::Ready(Some(Err(std::io::Error::other(format!(
                                "{} bytes arrived with hashes for {hashed}",
                                data.len()
                            )))));
                        }
                        chunks.extend(h.iter().copied());
                    }
                    if this.skip > 0 {
                        let n = this.skip.min(data.len() as u64);
                        data.advance(n as usize);
                        this.skip -= n;
                    }
                    let take = this.remaining.min(data.len() as u64) as usize;
                    data.truncate(take);
                    this.remaining -= take as u64;
                    if this.remaining == 0 && this.verify.is_none() {
                        // Range read complete: stop fetching what lies beyond it.
                        this.running.clear();
                        this.terms.clear();
                    }
                    if !data.is_empty() {
                        if this.remaining == 0 && this.verify.is_some() {
                            // The last piece waits for the file hash check.
                            this.held = Some(data);
                            continue;
                        }
                        return Poll::Ready(Some(Ok(data)));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hugbucket_engine::compression::CompressionScheme;

    /// Stored records of `sizes` bytes each (byte `i` of record `r` is `r + i`).
    fn records(sizes: &[usize]) -> (Vec<u8>, Vec<Vec<u8>>) {
        let mut wire = Vec::new();
        let mut payloads = Vec::new();
        for (r, &n) in sizes.iter().enumerate() {
            let payload: Vec<u8> = (0..n).map(|i| (r + i) as u8).collect();
            let header = ChunkHeader {
                compressed_len: n as u32,
                scheme: CompressionScheme::None,
                uncompressed_len: n as u32,
            };
            header.write_to(&mut wire);
            wire.extend_from_slice(&payload);
            payloads.push(payload);
        }
        (wire, payloads)
    }

    /// Every record comes out whole and in order whatever the piece boundaries, and one
    /// that lies inside a single piece is a slice of that piece, not a copy.
    #[test]
    fn records_are_reassembled_across_any_piece_boundaries() {
        let (wire, payloads) = records(&[1, 5000, 3, 70_000, 8, 1]);
        for piece_len in [1, 2, 7, 8, 9, 100, 4096, 65_536, wire.len()] {
            let mut got = Vec::new();
            let mut r = Records::default();
            for piece in wire.chunks(piece_len) {
                let piece = Bytes::copy_from_slice(piece);
                let range = piece.as_ptr_range();
                r.push(piece);
                while let Some((header, rec)) = r.next().unwrap() {
                    assert_eq!(header.compressed_len as usize, rec.len());
                    let inside =
                        range.contains(&rec.as_ptr()) && rec.as_ptr_range().end <= range.end;
                    got.push((rec.to_vec(), inside));
                }
            }
            let bytes: Vec<Vec<u8>> = got.iter().map(|(b, _)| b.clone()).collect();
            assert_eq!(bytes, payloads, "piece length {piece_len}");
            if piece_len == wire.len() {
                assert!(
                    got.iter().all(|(_, inside)| *inside),
                    "one piece: no copies"
                );
            }
        }
    }

    #[test]
    fn a_bad_record_header_is_an_error() {
        let mut r = Records::default();
        r.push(Bytes::from_static(&[9, 0, 0, 0, 0, 0, 0, 0, 1]));
        assert!(r.next().is_err());
    }
}
