//! Streaming ingest: a body stream in, xorbs uploaded to the CAS while it arrives.
//!
//! Three parts run at once: the body feed (async: body pieces into a bounded channel,
//! length checked), the [`worker`] (a blocking thread that owns the engine's upload
//! session: chunking, hashing, compression, serialization) and the event loop (async: it
//! starts each xorb's upload in the [`uploader`] as soon as the worker hands it out, and
//! asks the CAS the worker's global dedup queries). Channels of capacity 1–4 and one xorb
//! upload in flight (configurable) keep memory at about two or three xorbs whatever the
//! object size. PUT and multipart parts both ingest through [`ingest_and_upload`].

mod uploader;
mod worker;

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use hugbucket_engine::buffers::BufferPool;
use hugbucket_engine::ingest::{FileSummary, SessionOutput};
use hugbucket_upstream::CasClient;
use tokio::sync::mpsc;

use crate::error::{CoreError, Result};
use crate::types::ByteStream;
use uploader::XorbUploader;
use worker::{Event, IngestWorker, Known};

/// Body pieces are gathered into blocks of this size before the engine sees them: the
/// engine hashes and compresses a block on two threads, but a network frame (16–64 KiB)
/// alone is too small to split. A body whose pieces are at least this large (a front-end
/// that reads its socket in such blocks) is ingested without that extra copy.
pub const INGEST_BLOCK: usize = 4 << 20;

/// What an ingested stream produced: every xorb is already stored in the CAS.
#[derive(Debug)]
pub(crate) struct Ingested {
    /// The file's hash and size.
    pub summary: FileSummary,
    /// The session output (files with resolved terms, and the shard); its `xorbs` are
    /// already uploaded and emptied.
    pub output: SessionOutput,
}

/// Ingests `body` and uploads its xorbs with `cas`, at most `max_uploads` at a time.
/// `expected_len`, when given, must equal the number of bytes received. Nothing is
/// registered at the Hub here.
pub(crate) async fn ingest_and_upload(
    cas: &CasClient,
    body: ByteStream,
    expected_len: Option<u64>,
    max_uploads: usize,
    buffers: &Arc<BufferPool>,
) -> Result<Ingested> {
    let (data_tx, data_rx) = mpsc::channel::<Bytes>(4);
    let (event_tx, event_rx) = mpsc::channel::<Event>(1);
    let (answer_tx, answer_rx) = std::sync::mpsc::channel::<Known>();
    let worker = IngestWorker::new(event_tx, answer_rx, expected_len);
    let pool = buffers.clone();
    let worker = tokio::task::spawn_blocking(move || worker.run(data_rx, pool));
    let mut uploader = XorbUploader::new(cas.clone(), max_uploads, buffers.clone());

    // The first failure (body or upload) drops the other side; the worker then sees closed
    // channels and stops.
    let ((), done) = tokio::try_join!(
        feed(body, data_tx, expected_len),
        drive(event_rx, &mut uploader, cas, answer_tx)
    )?;
    worker
        .await
        .map_err(|e| CoreError::Internal(format!("ingest worker: {e}")))?;
    let (summary, mut output) = *done;
    // The session hands out its last xorbs at finish: upload them too.
    for x in std::mem::take(&mut output.xorbs) {
        uploader.push(x).await?;
    }
    uploader.finish().await?;
    Ok(Ingested { summary, output })
}

/// Sends the pieces of `body` to the worker, checking its length against `expected_len`.
/// Dropping `to_worker` at the end tells the worker to finish the file.
async fn feed(
    mut body: ByteStream,
    to_worker: mpsc::Sender<Bytes>,
    expected_len: Option<u64>,
) -> Result<()> {
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
        if to_worker.send(piece).await.is_err() {
            return Err(CoreError::Internal("ingest worker stopped".into()));
        }
    }
    match expected_len {
        Some(n) if received != n => Err(CoreError::IncompleteBody(format!(
            "body of {received} bytes, declared {n}"
        ))),
        _ => Ok(()),
    }
}

/// Handles the worker's events until it is done: xorbs are uploaded (taking the next
/// event only when the window has room), dedup queries asked in tasks of their own whose
/// answers go back to the worker.
async fn drive(
    mut events: mpsc::Receiver<Event>,
    uploader: &mut XorbUploader,
    cas: &CasClient,
    answers: std::sync::mpsc::Sender<Known>,
) -> Result<Box<(FileSummary, SessionOutput)>> {
    loop {
        tokio::select! {
            ev = events.recv(), if uploader.has_room() => match ev {
                Some(Event::Xorb(x)) => uploader.start(x),
                Some(Event::Query(h)) => {
                    let (cas, answers) = (cas.clone(), answers.clone());
                    tokio::spawn(async move {
                        let answer = cas.global_dedup_shard(&h).await;
                        let _ = answers.send(Known::from_dedup_answer(answer));
                    });
                }
                Some(Event::Done(done)) => return Ok(done),
                None => return Err(CoreError::Internal("ingest worker ended early".into())),
            },
            r = uploader.next_done(), if !uploader.is_idle() => r?,
        }
    }
}
