//! Where a call runs: the core's own business, so that every public async call of the
//! core can be awaited from any executor (a glommio core, a tokio current-thread core,
//! the shared tokio runtime, a test).
//!
//! - A call about one object (an [`ObjectRef`](crate::ObjectRef) method) runs on the
//!   runtime of the key shard that owns the object: one spawn from wherever the caller
//!   is, none when it is already on that shard's thread. It counts as one of that
//!   shard's calls ([`Gateway::shard_calls`]).
//! - A bucket-wide call (listings, bucket operations, batch deletes), and an object call
//!   when the shards have no runtimes of their own, runs on the core's work runtime (the
//!   tokio runtime the gateway was built on): one spawn, none when the caller already
//!   runs on a multi-thread tokio runtime (the work runtime, or one like it).
//!
//! A call's task is aborted when its caller drops the call's future
//! ([`spawn_abortable`]).

use std::future::Future;

use tokio::runtime::{Handle, RuntimeFlavor};

use crate::error::{CoreError, Result};
use crate::{Gateway, spawn_abortable};

impl Gateway {
    /// Runs `call`, a call about an object owned by shard `owner`, on that shard's
    /// runtime (see the module doc).
    pub(crate) async fn on_shard<T, F>(&self, owner: usize, call: F) -> Result<T>
    where
        F: Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        let shards = &self.inner.shards;
        let Some(runtime) = shards.runtime(owner) else {
            return self.on_work(call).await;
        };
        shards
            .state(owner)
            .calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if shards.is_current(owner) {
            return call.await;
        }
        joined(spawn_abortable(runtime, call).await)
    }

    /// Runs `call` on the core's work runtime (see the module doc).
    pub(crate) async fn on_work<T, F>(&self, call: F) -> Result<T>
    where
        F: Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        let on_a_pool = Handle::try_current()
            .is_ok_and(|h| matches!(h.runtime_flavor(), RuntimeFlavor::MultiThread));
        match &self.inner.work {
            Some(work) if !on_a_pool => joined(spawn_abortable(work, call).await),
            _ => call.await,
        }
    }
}

/// The result of a spawned call: a task that panicked is an internal error, one whose
/// runtime is shutting down makes the core unavailable.
fn joined<T>(r: std::result::Result<Result<T>, tokio::task::JoinError>) -> Result<T> {
    match r {
        Ok(r) => r,
        Err(e) if e.is_panic() => Err(CoreError::Internal(format!("core task: {e}"))),
        Err(e) => Err(CoreError::Unavailable(format!("core task: {e}"))),
    }
}
