//! The blocking side of an ingest: one thread owns the engine's [`UploadSession`], takes
//! body pieces from a channel, and hands out completed xorbs and global dedup queries.
//!
//! The file's first chunk is special: its dedup query is answered before anything is
//! stored (one round trip), so that uploading content the CAS already has stores nothing.
//! Until the first chunk is complete the body is held back in `prefix`. Later queries are
//! answered asynchronously and help the chunks that follow them.

use std::sync::Arc;
use std::sync::mpsc as std_mpsc;

use bytes::{Bytes, BytesMut};
use hugbucket_engine::XetHash;
use hugbucket_engine::buffers::BufferPool;
use hugbucket_engine::ingest::{FileIngest, FileSummary, SessionOutput, UploadSession};
use hugbucket_engine::shard::{Shard, XorbEntry};
use hugbucket_engine::xorb::SerializedXorb;
use tokio::sync::mpsc;

use super::INGEST_BLOCK;

/// Objects declared smaller than this make no global dedup queries: they are a single
/// small chunk, and the round trip costs more than sending them again.
const NO_QUERIES_BELOW: u64 = 16 << 10;

/// How long the first chunk's global dedup query may hold the upload back.
const FIRST_QUERY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What the worker hands to the async side.
pub(super) enum Event {
    /// A completed xorb, to upload.
    Xorb(SerializedXorb),
    /// A chunk hash worth a global dedup query; answer with a [`Known`].
    Query(XetHash),
    /// The file's summary and the session's output (its last xorbs not yet uploaded).
    Done(Box<(FileSummary, SessionOutput)>),
}

/// An answer of the global dedup API: xorbs already in the CAS (possibly none).
pub(super) struct Known {
    xorbs: Vec<XorbEntry>,
    hmac_key: Option<XetHash>,
}

impl Known {
    /// Parses a dedup answer; a missing, malformed or expired shard knows nothing.
    pub(super) fn from_dedup_answer(answer: Option<Bytes>) -> Known {
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
        let now = crate::names::now_millis() / 1000;
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

/// The async side went away (it failed or was dropped): the worker stops.
struct Stopped;

/// The ingest worker; [`IngestWorker::run`] runs on a blocking thread.
pub(super) struct IngestWorker {
    events: mpsc::Sender<Event>,
    answers: std_mpsc::Receiver<Known>,
    expected_len: Option<u64>,
    /// Whether global dedup queries are made at all.
    queries: bool,
    /// The body's first bytes, held back while the first chunk is incomplete.
    prefix: Option<Vec<u8>>,
    /// Small pieces gathered into blocks of [`INGEST_BLOCK`] bytes.
    block: BytesMut,
    /// The first chunk's hash, once queried.
    first_hash: Option<XetHash>,
}

impl IngestWorker {
    /// A worker for a body of `expected_len` bytes (if known) that sends its events to
    /// `events` and takes dedup answers from `answers`.
    pub(super) fn new(
        events: mpsc::Sender<Event>,
        answers: std_mpsc::Receiver<Known>,
        expected_len: Option<u64>,
    ) -> Self {
        let queries = expected_len.is_none_or(|n| n >= NO_QUERIES_BELOW);
        IngestWorker {
            events,
            answers,
            expected_len,
            queries,
            prefix: queries.then(Vec::new),
            block: BytesMut::new(),
            first_hash: None,
        }
    }

    /// Ingests the pieces of `body` until it closes, then sends [`Event::Done`]. Xorbs
    /// are serialized into buffers from `buffers`.
    pub(super) fn run(mut self, mut body: mpsc::Receiver<Bytes>, buffers: Arc<BufferPool>) {
        let mut session = UploadSession::with_buffers(buffers, self.expected_len);
        let mut file = session.start_file();
        if self.ingest(&mut file, &mut body).is_err() {
            return;
        }
        let summary = file.finish();
        let output = session.finish();
        let _ = self
            .events
            .blocking_send(Event::Done(Box::new((summary, output))));
    }

    fn ingest(
        &mut self,
        file: &mut FileIngest<'_>,
        body: &mut mpsc::Receiver<Bytes>,
    ) -> Result<(), Stopped> {
        while let Some(piece) = body.blocking_recv() {
            self.apply_answers(file);
            self.write(file, piece)?;
            self.hand_out(file)?;
        }
        self.apply_answers(file);
        self.write_rest(file)
    }

    /// Known xorbs from the answers that arrived so far.
    fn apply_answers(&self, file: &mut FileIngest<'_>) {
        while let Ok(known) = self.answers.try_recv() {
            known.apply(file);
        }
    }

    /// Feeds one body piece: to the first chunk's prefix, into the current block, or
    /// (a piece of a whole block or more, with no block open) straight to the engine.
    fn write(&mut self, file: &mut FileIngest<'_>, piece: Bytes) -> Result<(), Stopped> {
        if let Some(prefix) = &mut self.prefix {
            prefix.extend_from_slice(&piece);
            if let Some(h) = file.first_chunk_hash(prefix, false) {
                self.first_hash = Some(h);
                self.ask_first(file, h)?;
                if let Some(prefix) = self.prefix.take() {
                    file.write(&prefix);
                }
            }
        } else if self.block.is_empty() && piece.len() >= INGEST_BLOCK {
            file.write(&piece);
        } else {
            self.block.extend_from_slice(&piece);
            if self.block.len() >= INGEST_BLOCK {
                file.write(&self.block);
                self.block.clear();
            }
        }
        Ok(())
    }

    /// At the end of the body: the held-back prefix (after its query) or the last block.
    fn write_rest(&mut self, file: &mut FileIngest<'_>) -> Result<(), Stopped> {
        match self.prefix.take() {
            Some(prefix) => {
                if let Some(h) = file.first_chunk_hash(&prefix, true) {
                    self.ask_first(file, h)?;
                    file.write(&prefix);
                }
            }
            None => file.write(&self.block),
        }
        Ok(())
    }

    /// Queries the first chunk and waits (bounded) for the answer.
    fn ask_first(&self, file: &mut FileIngest<'_>, h: XetHash) -> Result<(), Stopped> {
        self.send(Event::Query(h))?;
        if let Ok(known) = self.answers.recv_timeout(FIRST_QUERY_TIMEOUT) {
            known.apply(file);
        }
        Ok(())
    }

    /// Sends the engine's new dedup queries (but the first chunk's, already asked) and
    /// completed xorbs.
    fn hand_out(&self, file: &mut FileIngest<'_>) -> Result<(), Stopped> {
        for q in file.take_dedup_queries() {
            if self.queries && Some(q) != self.first_hash {
                self.send(Event::Query(q))?;
            }
        }
        for x in file.take_completed_xorbs() {
            self.send(Event::Xorb(x))?;
        }
        Ok(())
    }

    fn send(&self, event: Event) -> Result<(), Stopped> {
        self.events.blocking_send(event).map_err(|_| Stopped)
    }
}
