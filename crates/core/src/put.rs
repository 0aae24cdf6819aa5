//! Streaming ingest: a body stream in, xorbs uploaded to the CAS while it arrives.
//!
//! The CPU work (CDC, hashing, compression, serialization) runs on a blocking thread that
//! owns the engine's [`UploadSession`]; the async side feeds it body pieces over a bounded
//! channel and uploads each completed xorb as soon as it is handed out. Channels of
//! capacity 1–4 and one xorb upload in flight (configurable) keep memory at about two or
//! three xorbs whatever the object size.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use hugbucket_engine::XetHash;
use hugbucket_engine::buffers::BufferPool;
use hugbucket_engine::chunking::Chunker;
use hugbucket_engine::hash::chunk_hash;
use hugbucket_engine::ingest::{FileIngest, FileSummary, SessionOutput, UploadSession};
use hugbucket_engine::shard::{Shard, XorbEntry};
use hugbucket_engine::xorb::SerializedXorb;
use hugbucket_upstream::CasClient;
use tokio::sync::mpsc;

use crate::error::{CoreError, Result};
use crate::types::ByteStream;

/// Body pieces are gathered into blocks of this size before the engine sees them: the
/// engine hashes and compresses a block on two threads, but a network frame (16–64 KiB)
/// alone is too small to split. A body whose pieces are at least this large (a front-end
/// that reads its socket in such blocks) is ingested without that extra copy.
pub const INGEST_BLOCK: usize = 4 << 20;

/// Objects declared smaller than this are stored without waiting for the first chunk's
/// global dedup query (they are a single small chunk).
const NO_FIRST_QUERY_BELOW: u64 = 16 << 10;

/// How long the first chunk's global dedup query may hold the upload back.
const FIRST_QUERY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// An answer of the global dedup API: xorbs already in the CAS (possibly none).
struct Known {
    xorbs: Vec<XorbEntry>,
    hmac_key: Option<XetHash>,
}

impl Known {
    /// Parses a dedup answer; a missing, malformed or expired shard knows nothing.
    fn from_dedup_answer(answer: Option<Bytes>) -> Known {
        let nothing = Known {
            xorbs: Vec::new(),
            hmac_key: None,
        };
        let Some(bytes) = answer else {
            return nothing;
        };
        let Ok(shard) = Shard::parse(&bytes) else {
            return nothing;
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        match shard.footer {
            Some(f) if f.key_expiry < now => nothing,
            footer => Known {
                hmac_key: footer.map(|f| f.chunk_hash_hmac_key),
                xorbs: shard.xorbs,
            },
        }
    }

    fn apply(&self, file: &mut FileIngest<'_>) {
        for x in &self.xorbs {
            file.add_known_xorb(x, self.hmac_key);
        }
    }
}

/// What an ingested stream produced: every xorb is already stored in the CAS.
#[derive(Debug)]
pub(crate) struct Ingested {
    /// The file's hash and size.
    pub summary: FileSummary,
    /// The session output (files with resolved terms, and the shard); its `xorbs` are
    /// already uploaded and emptied.
    pub output: SessionOutput,
}

enum Event {
    Xorb(SerializedXorb),
    /// A chunk hash worth a global dedup query.
    Query(XetHash),
    Done(Box<(FileSummary, SessionOutput)>),
}

/// Ingests `body` and uploads its xorbs with `cas`. `expected_len`, when given, must equal
/// the number of bytes received. Nothing is registered at the Hub here.
pub(crate) async fn ingest_and_upload(
    cas: &CasClient,
    mut body: ByteStream,
    expected_len: Option<u64>,
    max_uploads: usize,
    buffers: &Arc<BufferPool>,
) -> Result<Ingested> {
    let (data_tx, mut data_rx) = mpsc::channel::<Bytes>(4);
    let (event_tx, mut event_rx) = mpsc::channel::<Event>(1);

    // Answers of global dedup queries, to the worker: xorbs already in the CAS.
    let (known_tx, known_rx) = std::sync::mpsc::channel::<Known>();
    // Xorbs are serialized into buffers from the gateway's pool; uploaded xorbs hand
    // their buffers back there.
    let session_buffers = buffers.clone();

    let worker = tokio::task::spawn_blocking(move || {
        let mut session = UploadSession::with_buffers(session_buffers, expected_len);
        let mut file = session.start_file();
        // The first chunk's query is answered before any chunk is stored (one round trip),
        // so that re-uploading existing content stores nothing; later queries are answered
        // asynchronously and help the chunks that follow them.
        // Objects below one chunk make no queries: the round trip costs more than sending
        // them again.
        let query = expected_len.is_none_or(|n| n >= NO_FIRST_QUERY_BELOW);
        let mut prefix: Option<Vec<u8>> = query.then(Vec::new);
        let mut block: Vec<u8> = Vec::new();
        let mut first_hash: Option<XetHash> = None;
        let first_query = |prefix: &[u8], at_eof: bool| -> Option<XetHash> {
            let mut chunker = Chunker::new();
            match chunker.next_boundary(prefix) {
                Some(n) => Some(chunk_hash(&prefix[..n])),
                None if at_eof && !prefix.is_empty() => Some(chunk_hash(prefix)),
                None => None,
            }
        };
        let wait_first =
            |h: XetHash, file: &mut hugbucket_engine::ingest::FileIngest<'_>| -> bool {
                if event_tx.blocking_send(Event::Query(h)).is_err() {
                    return false;
                }
                if let Ok(known) = known_rx.recv_timeout(FIRST_QUERY_TIMEOUT) {
                    known.apply(file);
                }
                true
            };
        loop {
            let piece = data_rx.blocking_recv();
            while let Ok(known) = known_rx.try_recv() {
                known.apply(&mut file);
            }
            match (&mut prefix, piece) {
                (Some(buf), Some(piece)) => {
                    buf.extend_from_slice(&piece);
                    if let Some(h) = first_query(buf, false) {
                        first_hash = Some(h);
                        if !wait_first(h, &mut file) {
                            return;
                        }
                        file.write(buf);
                        prefix = None;
                    }
                }
                (Some(buf), None) => {
                    if let Some(h) = first_query(buf, true) {
                        if !wait_first(h, &mut file) {
                            return;
                        }
                        file.write(buf);
                    }
                    break;
                }
                (None, Some(piece)) => {
                    if block.is_empty() && piece.len() >= INGEST_BLOCK {
                        file.write(&piece);
                    } else {
                        block.extend_from_slice(&piece);
                        if block.len() < INGEST_BLOCK {
                            continue;
                        }
                        file.write(&block);
                        block.clear();
                    }
                }
                (None, None) => {
                    file.write(&block);
                    break;
                }
            }
            // The first chunk was queried above already.
            for q in file
                .take_dedup_queries()
                .into_iter()
                .filter(|q| query && Some(*q) != first_hash)
            {
                if event_tx.blocking_send(Event::Query(q)).is_err() {
                    return;
                }
            }
            for x in file.take_completed_xorbs() {
                if event_tx.blocking_send(Event::Xorb(x)).is_err() {
                    return;
                }
            }
        }
        let summary = file.finish();
        let output = session.finish();
        let _ = event_tx.blocking_send(Event::Done(Box::new((summary, output))));
    });

    let feed = async move {
        let mut received = 0u64;
        while let Some(piece) = body.next().await {
            let piece = piece.map_err(|e| CoreError::IncompleteBody(e.to_string()))?;
            received += piece.len() as u64;
            if let Some(n) = expected_len {
                if received > n {
                    return Err(CoreError::IncompleteBody(format!(
                        "body longer than the declared {n} bytes"
                    )));
                }
            }
            if piece.is_empty() {
                continue;
            }
            if data_tx.send(piece).await.is_err() {
                return Err(CoreError::Internal("ingest worker stopped".into()));
            }
        }
        if let Some(n) = expected_len {
            if received != n {
                return Err(CoreError::IncompleteBody(format!(
                    "body of {received} bytes, declared {n}"
                )));
            }
        }
        Ok::<(), CoreError>(())
        // `data_tx` drops here: the worker finishes the file.
    };

    let upload = async {
        let mut in_flight = FuturesUnordered::new();
        let mut done = None;
        loop {
            tokio::select! {
                ev = event_rx.recv(), if done.is_none() && in_flight.len() < max_uploads.max(1) => {
                    match ev {
                        Some(Event::Xorb(x)) => {
                            let cas = cas.clone();
                            in_flight.push(async move {
                                let data = Bytes::from(x.data);
                                let r = cas.upload_xorb(&x.hash, data.clone()).await;
                                (r, data)
                            });
                        }
                        Some(Event::Query(h)) => {
                            let cas = cas.clone();
                            let tx = known_tx.clone();
                            tokio::spawn(async move {
                                let _ = tx.send(Known::from_dedup_answer(cas.global_dedup_shard(&h).await));
                            });
                        }
                        Some(Event::Done(d)) => done = Some(d),
                        None => return Err(CoreError::Internal("ingest worker ended early".into())),
                    }
                }
                Some((r, data)) = in_flight.next(), if !in_flight.is_empty() => {
                    r?;
                    give_back(buffers, data);
                }
                else => break,
            }
            if done.is_some() && in_flight.is_empty() {
                break;
            }
        }
        done.ok_or_else(|| CoreError::Internal("ingest produced no result".into()))
    };

    // The first failure (body or upload) drops the other side; the worker then sees closed
    // channels and stops.
    let ((), done) = tokio::try_join!(feed, upload)?;
    worker
        .await
        .map_err(|e| CoreError::Internal(format!("ingest worker: {e}")))?;
    let (summary, mut output) = *done;
    // The session hands out its last xorbs at finish: upload them too.
    let mut rest = FuturesUnordered::new();
    for x in std::mem::take(&mut output.xorbs) {
        let cas = cas.clone();
        let data = Bytes::from(x.data);
        let hash = x.hash;
        rest.push(async move {
            let r = cas.upload_xorb(&hash, data.clone()).await;
            (r, data)
        });
        if rest.len() >= max_uploads.max(1) {
            if let Some((r, data)) = rest.next().await {
                r?;
                give_back(buffers, data);
            }
        }
    }
    while let Some((r, data)) = rest.next().await {
        r?;
        give_back(buffers, data);
    }
    Ok(Ingested { summary, output })
}

/// Returns an uploaded xorb's buffer to the pool (when the client dropped its references,
/// as it does once the upload finished).
fn give_back(buffers: &BufferPool, data: Bytes) {
    if let Ok(buf) = data.try_into_mut() {
        buffers.give(buf.into());
    }
}
