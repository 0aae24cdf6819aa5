//! Streaming ingest: a body stream in, xorbs uploaded to the CAS while it arrives.
//!
//! The CPU work (CDC, hashing, compression, serialization) runs on a blocking thread that
//! owns the engine's [`UploadSession`]; the async side feeds it body pieces over a bounded
//! channel and uploads each completed xorb as soon as it is handed out. Channels of
//! capacity 1–4 and one xorb upload in flight (configurable) keep memory at about two or
//! three xorbs whatever the object size.

use bytes::Bytes;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use hugbucket_engine::ingest::{FileSummary, SessionOutput, UploadSession};
use hugbucket_engine::xorb::SerializedXorb;
use hugbucket_upstream::CasClient;
use tokio::sync::mpsc;

use crate::error::{CoreError, Result};
use crate::types::ByteStream;

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
    Done(Box<(FileSummary, SessionOutput)>),
}

/// Ingests `body` and uploads its xorbs with `cas`. `expected_len`, when given, must equal
/// the number of bytes received. Nothing is registered at the Hub here.
pub(crate) async fn ingest_and_upload(
    cas: &CasClient,
    mut body: ByteStream,
    expected_len: Option<u64>,
    max_uploads: usize,
) -> Result<Ingested> {
    let (data_tx, mut data_rx) = mpsc::channel::<Bytes>(4);
    let (event_tx, mut event_rx) = mpsc::channel::<Event>(1);

    let worker = tokio::task::spawn_blocking(move || {
        let mut session = UploadSession::new();
        let mut file = session.start_file();
        while let Some(piece) = data_rx.blocking_recv() {
            file.write(&piece);
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
                                cas.upload_xorb(&x.hash, data).await
                            });
                        }
                        Some(Event::Done(d)) => done = Some(d),
                        None => return Err(CoreError::Internal("ingest worker ended early".into())),
                    }
                }
                Some(r) = in_flight.next(), if !in_flight.is_empty() => { r?; }
                else => break,
            }
            if done.is_some() && in_flight.is_empty() {
                break;
            }
        }
        done.ok_or_else(|| CoreError::Internal("ingest produced no result".into()))
    };

    // Upload failures and body failures both abort; the worker then sees closed channels.
    let (fed, uploaded) = tokio::join!(feed, upload);
    fed?;
    let done = uploaded?;
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
        rest.push(async move { cas.upload_xorb(&hash, data).await });
        if rest.len() >= max_uploads.max(1) {
            if let Some(r) = rest.next().await {
                r?;
            }
        }
    }
    while let Some(r) = rest.next().await {
        r?;
    }
    Ok(Ingested { summary, output })
}
