//! Local durable storage below the hub, the cache and the core: how HugBucket opens its
//! sled databases. It is a crate of its own so that the embedded hub can share it without
//! depending on the gateway's cache (the hub depends only on the engine and this crate).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use std::time::{Duration, Instant};

/// How long an open waits for the database lock held by a just-dropped instance (sled's
/// background thread releases it shortly after the drop).
const LOCK_WAIT: Duration = Duration::from_secs(3);

/// Opens a sled database, retrying while another instance still holds its file lock (a
/// restart in the same process, or a previous process still exiting). A lock held for
/// longer than 3 s is an error. Every sled database of HugBucket is opened through this.
pub fn open_sled(config: &sled::Config) -> sled::Result<sled::Db> {
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match config.open() {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reopens_once_the_previous_instance_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let config = sled::Config::new().path(dir.path());
        let db = open_sled(&config).unwrap();
        db.insert(b"k", b"v").unwrap();
        db.flush().unwrap();
        // Drop on another thread while the reopen below is already waiting for the lock.
        let dropper = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            drop(db);
        });
        let again = open_sled(&config).unwrap();
        dropper.join().unwrap();
        assert_eq!(again.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
    }
}
