//! Group commit of part entries: every part acknowledged through this node is registered
//! by a shared `/batch` call, and one bucket gets at most one such call per `interval`.
//!
//! A part waits for the batch that carries its entry (so an acknowledged part is listed by
//! every node), but parts that arrive while a batch is in flight or inside the interval
//! share the next one: a 10 GiB upload in 8 MiB parts costs at most one `/api/` call per
//! interval while it runs, not one per part.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hugbucket_upstream::{BatchOp, BucketId, HubClient};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::error::{CoreError, Result, UpstreamFailure};

type Waiter = (BatchOp, oneshot::Sender<Result<()>>);

/// Pending entries and flush state of one bucket.
#[derive(Default)]
struct Queue {
    pending: Vec<Waiter>,
    /// A task is flushing (or waiting for the interval to pass): new entries join it.
    flushing: bool,
    last_flush: Option<Instant>,
}

/// Per-bucket coalescing of `addFile` operations.
pub(crate) struct Coalescer {
    interval: Duration,
    queues: Mutex<HashMap<String, Queue>>,
}

impl std::fmt::Debug for Coalescer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coalescer")
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl Coalescer {
    pub(crate) fn new(interval: Duration) -> Arc<Self> {
        Arc::new(Coalescer {
            interval,
            queues: Mutex::new(HashMap::new()),
        })
    }

    /// Registers `op` in `id` with the next shared batch; returns that batch's verdict on
    /// `op` once it answered.
    pub(crate) async fn submit(
        self: &Arc<Self>,
        hub: &HubClient,
        id: &BucketId,
        op: BatchOp,
    ) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        let start_flusher = {
            let mut queues = self.queues.lock().expect("coalescer lock");
            let q = queues.entry(id.to_string()).or_default();
            q.pending.push((op, tx));
            !std::mem::replace(&mut q.flushing, true)
        };
        if start_flusher {
            // A task of its own: the batch goes out even if this request is dropped.
            let this = self.clone();
            let (hub, id) = (hub.clone(), id.clone());
            tokio::spawn(async move { this.flush_loop(&hub, &id).await });
        }
        rx.await
            .unwrap_or_else(|_| Err(CoreError::Internal("part record batch dropped".into())))
    }

    /// Sends the bucket's pending entries in batches, one per interval, until none is left.
    async fn flush_loop(&self, hub: &HubClient, id: &BucketId) {
        let key = id.to_string();
        loop {
            let due = {
                let queues = self.queues.lock().expect("coalescer lock");
                queues
                    .get(&key)
                    .and_then(|q| q.last_flush)
                    .map(|t| t + self.interval)
            };
            if let Some(due) = due {
                tokio::time::sleep_until(due).await;
            }
            let batch = {
                let mut queues = self.queues.lock().expect("coalescer lock");
                let q = queues.entry(key.clone()).or_default();
                if q.pending.is_empty() {
                    q.flushing = false;
                    return;
                }
                q.last_flush = Some(Instant::now());
                std::mem::take(&mut q.pending)
            };
            let (ops, waiters): (Vec<BatchOp>, Vec<_>) = batch.into_iter().unzip();
            let outcome = hub.batch(id, &ops).await;
            for (op, tx) in ops.iter().zip(waiters) {
                let verdict = match &outcome {
                    // One failure, classified once, answers every waiter.
                    Err(e) => Err(CoreError::Upstream(UpstreamFailure::from(e))),
                    Ok(o) => match o
                        .failed
                        .iter()
                        .find(|f| Some(f.path.as_str()) == added_path(op))
                    {
                        Some(f) => Err(CoreError::Internal(format!(
                            "hub refused part record {}: {}",
                            f.path, f.error
                        ))),
                        None => Ok(()),
                    },
                };
                let _ = tx.send(verdict);
            }
        }
    }
}

fn added_path(op: &BatchOp) -> Option<&str> {
    match op {
        BatchOp::AddFile { path, .. } => Some(path),
        _ => None,
    }
}
