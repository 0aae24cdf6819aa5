//! Streaming reconstruction: a file (or a byte range of it) out of ranged xorb fetches.
//!
//! One task per reconstruction term fetches the term's xorb byte range as a stream, decodes
//! chunk records as they arrive and sends the decoded chunks through a small bounded
//! channel. The output stream drains the terms in file order while up to `window` later
//! terms are already being fetched, so first bytes flow before the whole object is fetched
//! and memory stays bounded (window × channel capacity × one chunk).
//!
//! Every decoded chunk's size is checked against its header and every term's size against
//! the reconstruction. When the whole object is read, the chunk hashes are recomputed and
//! the file hash compared with the object's: a mismatch ends the stream with an error
//! instead of its last piece, so a client never receives a complete-looking wrong object.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use futures::{Stream, StreamExt};
use hugbucket_engine::XetHash;
use hugbucket_engine::compression::decompress_chunk;
use hugbucket_engine::hash::{chunk_hash, file_hash};
use hugbucket_engine::xorb::ChunkHeader;
use hugbucket_upstream::{CasClient, Reconstruction, ReconstructionTerm};
use tokio::sync::mpsc;

use crate::error::{CoreError, Result};

/// Decoded chunks per term channel.
const TERM_CHANNEL: usize = 8;

/// A decoded chunk and its hash (when verification is on).
type Piece = Result<(Bytes, Option<XetHash>)>;

/// Builds the body stream of `len` bytes starting `offset_into_first_range` bytes into the
/// first term. Must be called on the core's tokio runtime.
/// `verify_hash`: when the whole file is read, the file hash it must have.
pub(crate) fn reconstruct_stream(
    cas: CasClient,
    recon: Reconstruction,
    len: u64,
    window: usize,
    verify_hash: Option<XetHash>,
) -> ReconstructStream {
    ReconstructStream {
        runtime: tokio::runtime::Handle::current(),
        cas,
        skip: recon.offset_into_first_range,
        remaining: len,
        terms: recon.terms.clone().into_iter().collect(),
        recon,
        running: VecDeque::new(),
        window: window.max(1),
        verify: verify_hash.map(|h| (h, Vec::new())),
        failed: false,
    }
}

/// The GET body stream (see the module doc).
pub(crate) struct ReconstructStream {
    /// Fetch tasks run here even when the stream is polled from another executor.
    runtime: tokio::runtime::Handle,
    cas: CasClient,
    recon: Reconstruction,
    terms: VecDeque<ReconstructionTerm>,
    running: VecDeque<mpsc::Receiver<Piece>>,
    window: usize,
    skip: u64,
    remaining: u64,
    verify: Option<(XetHash, Vec<(XetHash, u64)>)>,
    failed: bool,
}

impl ReconstructStream {
    fn launch(&mut self) {
        while self.running.len() < self.window {
            let Some(term) = self.terms.pop_front() else {
                break;
            };
            let (tx, rx) = mpsc::channel(TERM_CHANNEL);
            let entry = self.recon.fetch_for(&term).cloned();
            let cas = self.cas.clone();
            let hash_chunks = self.verify.is_some();
            self.runtime.spawn(async move {
                let result = match entry {
                    Some(entry) => fetch_term(&cas, &term, &entry, hash_chunks, &tx).await,
                    None => Err(CoreError::Integrity(format!(
                        "no fetch entry for xorb {}",
                        term.xorb_hash
                    ))),
                };
                if let Err(e) = result {
                    let _ = tx.send(Err(e)).await;
                }
            });
            self.running.push_back(rx);
        }
    }
}

async fn fetch_term(
    cas: &CasClient,
    term: &ReconstructionTerm,
    entry: &hugbucket_upstream::FetchEntry,
    hash_chunks: bool,
    tx: &mpsc::Sender<Piece>,
) -> Result<()> {
    let mut stream = cas.fetch_xorb_range(&entry.url, entry.bytes).await?;
    let skip_chunks = term.chunk_start - entry.chunk_start;
    let want_chunks = term.chunk_end - term.chunk_start;
    let mut buf = BytesMut::new();
    let mut index = 0u32;
    let mut produced = 0u64;
    let mut decoded = Vec::new();
    while index < skip_chunks + want_chunks {
        // Parse as many whole records as the buffer holds.
        loop {
            if index >= skip_chunks + want_chunks || buf.len() < ChunkHeader::SIZE {
                break;
            }
            let header = ChunkHeader::parse(&buf[..ChunkHeader::SIZE])?;
            let record = ChunkHeader::SIZE + header.compressed_len as usize;
            if buf.len() < record {
                break;
            }
            let mut rec = buf.split_to(record);
            if index >= skip_chunks {
                rec.advance(ChunkHeader::SIZE);
                let ulen = header.uncompressed_len as usize;
                let data =
                    if header.scheme == hugbucket_engine::compression::CompressionScheme::None {
                        if rec.len() != ulen {
                            return Err(CoreError::Integrity(
                                "stored chunk of the wrong size".into(),
                            ));
                        }
                        rec.freeze()
                    } else {
                        decoded.clear();
                        decompress_chunk(header.scheme, &rec, ulen, &mut decoded)?;
                        Bytes::copy_from_slice(&decoded)
                    };
                produced += data.len() as u64;
                let h = hash_chunks.then(|| chunk_hash(&data));
                if tx.send(Ok((data, h))).await.is_err() {
                    return Ok(()); // the reader went away
                }
            }
            index += 1;
        }
        if index >= skip_chunks + want_chunks {
            break;
        }
        match stream.next().await {
            Some(piece) => buf.extend_from_slice(&piece?),
            None => {
                return Err(CoreError::Integrity(format!(
                    "xorb {} range ended after {index} of {} chunks",
                    term.xorb_hash,
                    skip_chunks + want_chunks
                )));
            }
        }
    }
    if produced != term.unpacked_length {
        return Err(CoreError::Integrity(format!(
            "term of xorb {} decoded to {produced} bytes, expected {}",
            term.xorb_hash, term.unpacked_length
        )));
    }
    Ok(())
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
            let Some(front) = this.running.front_mut() else {
                // All terms drained.
                if let Some((expected, chunks)) = this.verify.take() {
                    let got = file_hash(&chunks);
                    if got != expected {
                        this.failed = true;
                        return Poll::Ready(Some(Err(std::io::Error::other(format!(
                            "file hash mismatch: expected {expected}, read {got}"
                        )))));
                    }
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
                    if let (Some((_, chunks)), Some(h)) = (this.verify.as_mut(), h) {
                        chunks.push((h, data.len() as u64));
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
                        return Poll::Ready(Some(Ok(data)));
                    }
                }
            }
        }
    }
}
