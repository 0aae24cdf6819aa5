//! Group commit of part entries: every part acknowledged through this node is registered
//! by a shared `/batch` call, and one bucket gets at most one such call per `interval`.
//!
//! A part waits for the batch that carries its entry (so an acknowledged part is listed by
//! every node), but parts that arrive while a batch is in flight or inside the interval
//! share the next one: a 10 GiB upload in 8 MiB parts costs at most one `/api/` call per
//! interval while it runs, not one per part. The queueing is the upstream crate's
//! ([`PacedCommits`], the coalescer of its own commits, paced); this module turns its
//! answer into the core's errors.

use std::sync::Arc;
use std::time::Duration;

use hugbucket_upstream::{BatchOp, BucketId, HubClient, PacedCommits};

use crate::error::{CoreError, Result, UpstreamFailure};

/// Per-bucket coalescing of part-record `addFile` operations.
#[derive(Debug)]
pub(crate) struct Coalescer {
    commits: PacedCommits,
}

impl Coalescer {
    pub(crate) fn new(interval: Duration) -> Arc<Self> {
        Arc::new(Coalescer {
            commits: PacedCommits::new(interval),
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
        let failed = self
            .commits
            .commit(hub, id, vec![op])
            .await
            .map_err(|e| CoreError::Upstream(UpstreamFailure::from(&e)))?;
        match failed.first() {
            Some(f) => Err(CoreError::Internal(format!(
                "hub refused part record {}: {}",
                f.path, f.error
            ))),
            None => Ok(()),
        }
    }
}
