//! Graceful shutdown of the FTP front-end.
//!
//! Once draining, every new transfer is refused (`451`, the client may retry elsewhere or
//! later) and the accept loop waits until the transfers already running have ended, so a
//! SIGTERM never cuts a `RETR` or `STOR` short (the caller bounds the wait with
//! `--shutdown-timeout`). A transfer counts from the storage call that starts it to the
//! end of its data; the transfer's final reply (`226`) is sent by libunftp just after.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};

use tokio::sync::Notify;

use crate::error::{FtpError, Result};

/// Transfers in flight, and whether new ones are still accepted.
#[derive(Debug, Default)]
pub(crate) struct Drain {
    draining: AtomicBool,
    in_flight: AtomicUsize,
    idle: Notify,
}

/// One transfer in flight; ends when dropped.
#[derive(Debug)]
pub(crate) struct TransferGuard(Arc<Drain>);

impl Drop for TransferGuard {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Drain {
    /// Starts a transfer, or refuses it when the server is shutting down. (Counted before
    /// the check, so [`Drain::start`] followed by [`Drain::idle`] never misses one.)
    pub(crate) fn begin(self: &Arc<Self>) -> Result<TransferGuard> {
        self.in_flight.fetch_add(1, SeqCst);
        let guard = TransferGuard(self.clone());
        if self.draining.load(SeqCst) {
            return Err(FtpError::ShuttingDown);
        }
        Ok(guard)
    }

    /// Refuses every transfer from now on.
    pub(crate) fn start(&self) {
        self.draining.store(true, SeqCst);
    }

    /// Transfers running now.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(SeqCst)
    }

    /// Resolves once no transfer is running.
    pub(crate) async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.in_flight() == 0 {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn draining_refuses_new_transfers_and_waits_for_running_ones() {
        let d = Arc::new(Drain::default());
        let running = d.begin().unwrap();
        d.start();
        assert!(matches!(d.begin(), Err(FtpError::ShuttingDown)));
        assert_eq!(d.in_flight(), 1, "a refused transfer is not counted");
        let waiter = tokio::spawn({
            let d = d.clone();
            async move { d.idle().await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "idle while a transfer runs");
        drop(running);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("idle after the last transfer")
            .unwrap();
    }
}
