//! Per-key ownership: every object key belongs to one shard (`bucket/key` hash → shard),
//! and the shard owns that key's state: the metadata cache entry, cached reconstructions,
//! single-flight fetches and the order of its writes.
//!
//! With [`KeyShards::start`] each shard also has its own pinned current-thread tokio
//! runtime, one per CPU: the core runs a key's calls there (`route`, through
//! [`crate::ObjectRef`]), so one core serves a key and its state is touched by that core
//! (the mutexes inside are then uncontended). Bulk
//! work does not stay there: a GET's term fetches, decoding and response pump run on the
//! gateway's shared multi-thread runtime, and the hashing and compression of new data on
//! the blocking pool, so one large transfer can use every core: pinned entirely to its
//! owner, a large GET ran fast or slow depending on whether the connection's core was the
//! owner's (the recorded GET runs are in `bench/results/`).
//! Without runtimes ([`KeyShards::inline`]), the state is partitioned the same way and
//! calls run where they are made; every call is correct from any thread either way.
//!
//! Write ordering: commits (register, copy, delete) of one key take that key's commit lock
//! in its shard, so they reach the Hub one at a time in the order they were made; the
//! key's metadata is invalidated when the lock is taken and when it is released (also on
//! error or cancellation). A commit that succeeded may instead publish the entry it wrote
//! ([`CommitGuard::publish`]): the node then knows the answer and the next HEAD/GET of the
//! key costs no Hub call. A metadata lookup caches its answer only if no write in the
//! shard invalidated anything while it was in flight (checked under the cache's lock), so
//! a reader racing a writer can never re-cache the old entry, from any thread.
//!
//! Single flights are per shard too: concurrent readers of one key share each term fetch;
//! readers of different keys whose content shares xorb ranges may fetch a range once per
//! shard (the chunk cache then serves it).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hugbucket_engine::XetHash;
use hugbucket_upstream::{Reconstruction, RemoteFile};
use tokio::runtime::Handle;
use tokio::sync::oneshot;

use crate::get::Flights;
use crate::ttl::TtlCache;

/// `(bucket, path)` of an object.
pub(crate) type PathKey = (String, String);

/// A paths-info answer about an object: its entry and its sidecar's, if any.
pub(crate) type Stat = (RemoteFile, Option<RemoteFile>);

/// The state one shard owns.
pub(crate) struct ShardState {
    /// paths-info answers by (bucket, path).
    pub metadata: TtlCache<PathKey, Stat>,
    /// Reconstructions by (file hash, first byte, last byte).
    pub reconstructions: TtlCache<(XetHash, u64, u64), Reconstruction>,
    /// One upstream fetch per reconstruction term at a time.
    pub flights: Arc<Flights>,
    /// Invalidations so far (see the module doc).
    writes: AtomicU64,
    /// Commit locks of keys being written right now.
    commits: Mutex<HashMap<PathKey, Arc<tokio::sync::Mutex<()>>>>,
    /// Calls run on this shard's runtime.
    pub calls: AtomicU64,
}

impl ShardState {
    fn new(metadata_ttl: Duration, reconstruction_ttl: Duration, shards: usize) -> Self {
        let shards = shards.max(1);
        ShardState {
            metadata: TtlCache::new(100_000 / shards, metadata_ttl),
            reconstructions: TtlCache::new(10_000 / shards, reconstruction_ttl),
            flights: Arc::new(Flights::new()),
            writes: AtomicU64::new(0),
            commits: Mutex::default(),
            calls: AtomicU64::new(0),
        }
    }

    /// The write epoch to pass to [`ShardState::cache_if_unchanged`].
    pub fn epoch(&self) -> u64 {
        self.writes.load(Ordering::Acquire)
    }

    /// Caches `file` unless a write invalidated anything in this shard since `epoch`. The
    /// check runs under the cache's lock, so it is ordered against every invalidation: one
    /// that bumped the epoch first makes it skip, one that comes later removes the entry.
    pub fn cache_if_unchanged(&self, epoch: u64, key: PathKey, file: Stat) {
        self.metadata
            .insert_if(key, file, || self.writes.load(Ordering::SeqCst) == epoch);
    }

    /// Forgets `key`'s cached metadata.
    pub fn invalidate(&self, key: &PathKey) {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.metadata.invalidate(key);
    }

    /// Waits until no other commit of `key` is in progress; the commit runs while the
    /// returned guard lives. The key's metadata is invalidated when the wait ends and
    /// again when the guard drops (success, error or cancellation alike), so a reader that
    /// raced the commit never keeps the old entry.
    pub async fn commit_lock(&self, key: &PathKey) -> CommitGuard<'_> {
        let lock = {
            let mut map = self.commits.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(key.clone()).or_default().clone()
        };
        // Declared before the wait, so dropped after the waiting future if the wait is
        // cancelled (locals drop in reverse order).
        let entry = LockRef {
            shard: self,
            key: key.clone(),
            lock: lock.clone(),
        };
        let guard = lock.lock_owned().await;
        self.invalidate(key);
        CommitGuard {
            _guard: guard,
            entry,
            publish: None,
        }
    }
}

/// One user's reference to a key's commit lock; the last user's drop removes the entry.
struct LockRef<'a> {
    shard: &'a ShardState,
    key: PathKey,
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl Drop for LockRef<'_> {
    fn drop(&mut self) {
        let mut map = self.shard.commits.lock().unwrap_or_else(|e| e.into_inner());
        // References: the map's and ours, plus one or two per other waiter or holder.
        if Arc::strong_count(&self.lock) == 2 {
            map.remove(&self.key);
        }
    }
}

/// Holds a key's commit lock (see [`ShardState::commit_lock`]).
pub(crate) struct CommitGuard<'a> {
    // Field order matters: the mutex guard is released before the entry is cleaned up.
    _guard: tokio::sync::OwnedMutexGuard<()>,
    entry: LockRef<'a>,
    /// What the key holds now, when the commit succeeded and says so.
    publish: Option<Stat>,
}

impl CommitGuard<'_> {
    /// Declares that the commit succeeded and the key now holds `stat`: when the guard
    /// drops, the key's metadata is set to it instead of just invalidated.
    pub fn publish(&mut self, stat: Stat) {
        self.publish = Some(stat);
    }
}

impl Drop for CommitGuard<'_> {
    fn drop(&mut self) {
        // Still under the key's commit lock: no other commit of the key runs, and the
        // invalidation's epoch bump keeps any reader that raced this commit from caching
        // what it saw before.
        self.entry.shard.invalidate(&self.entry.key);
        if let Some(file) = self.publish.take() {
            self.entry
                .shard
                .metadata
                .insert(self.entry.key.clone(), file);
        }
    }
}

/// Distinguishes the shard sets of the gateways in one process.
static SHARD_SETS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// On a shard runtime's thread: (its shard set, its index).
    static THIS_SHARD: std::cell::Cell<Option<(u64, usize)>> = const { std::cell::Cell::new(None) };
}

/// The shards: their state and, when started with runtimes, one pinned runtime each.
pub(crate) struct KeyShards {
    /// This shard set's number (see [`SHARD_SETS`]).
    set: u64,
    states: Vec<ShardState>,
    runtimes: Vec<Handle>,
    /// Dropping these stops the runtime threads.
    _stops: Vec<oneshot::Sender<()>>,
}

impl KeyShards {
    /// `n` shards of state and no runtimes of their own.
    pub fn inline(n: usize, metadata_ttl: Duration, reconstruction_ttl: Duration) -> Self {
        let n = n.max(1);
        KeyShards {
            set: SHARD_SETS.fetch_add(1, Ordering::Relaxed),
            states: (0..n)
                .map(|_| ShardState::new(metadata_ttl, reconstruction_ttl, n))
                .collect(),
            runtimes: Vec::new(),
            _stops: Vec::new(),
        }
    }

    /// One shard per CPU in `cpus`, each with a current-thread tokio runtime on a thread
    /// pinned to that CPU.
    pub fn start(
        cpus: &[usize],
        metadata_ttl: Duration,
        reconstruction_ttl: Duration,
    ) -> std::io::Result<Self> {
        let mut shards = Self::inline(cpus.len(), metadata_ttl, reconstruction_ttl);
        let set = shards.set;
        for (i, &cpu) in cpus.iter().enumerate() {
            let (handle_tx, handle_rx) = std::sync::mpsc::channel();
            let (stop_tx, stop_rx) = oneshot::channel::<()>();
            std::thread::Builder::new()
                .name(format!("hugbucket-key-{i}"))
                .spawn(move || {
                    crate::affinity::pin_to(cpu);
                    THIS_SHARD.set(Some((set, i)));
                    // Blocking-pool threads (a PUT's hashing and compression) get every
                    // core back instead of inheriting this thread's pin.
                    let rt = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .on_thread_start(crate::affinity::unpin)
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(e) => {
                            let _ = handle_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = handle_tx.send(Ok(rt.handle().clone()));
                    rt.block_on(async {
                        let _ = stop_rx.await;
                    });
                })?;
            let handle = handle_rx
                .recv()
                .map_err(|_| std::io::Error::other("key shard thread died at start"))??;
            shards.runtimes.push(handle);
            shards._stops.push(stop_tx);
        }
        Ok(shards)
    }

    /// Number of shards.
    pub fn len(&self) -> usize {
        self.states.len()
    }

    /// The shard owning `bucket/key`.
    pub fn owner(&self, bucket: &str, key: &str) -> usize {
        owner_shard(bucket, key, self.states.len())
    }

    /// Shard `i`'s state.
    pub fn state(&self, i: usize) -> &ShardState {
        &self.states[i]
    }

    /// Shard `i`'s runtime, if the shards have runtimes.
    pub fn runtime(&self, i: usize) -> Option<&Handle> {
        self.runtimes.get(i)
    }

    /// Whether the calling thread is shard `i`'s runtime thread.
    pub fn is_current(&self, i: usize) -> bool {
        THIS_SHARD.get() == Some((self.set, i))
    }

    /// All shard runtimes (empty without).
    pub fn runtimes(&self) -> &[Handle] {
        &self.runtimes
    }
}

/// Spawns `fut` on `handle` at once; the returned future yields its output and aborts the
/// task when dropped first (a caller that goes away stops the work it started).
pub fn spawn_abortable<F>(
    handle: &Handle,
    fut: F,
) -> impl Future<Output = Result<F::Output, tokio::task::JoinError>> + use<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    struct AbortOnDrop(tokio::task::AbortHandle);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let task = handle.spawn(fut);
    let abort = AbortOnDrop(task.abort_handle());
    async move {
        let out = task.await;
        drop(abort);
        out
    }
}

/// Index of the shard (0..shards) that owns `bucket/key`.
fn owner_shard(bucket: &str, key: &str, shards: usize) -> usize {
    let mut h = blake3::Hasher::new();
    h.update(bucket.as_bytes());
    h.update(&[0]);
    h.update(key.as_bytes());
    let v = u64::from_le_bytes(h.finalize().as_bytes()[..8].try_into().expect("8 bytes"));
    (v % shards.max(1) as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str) -> Stat {
        let f = RemoteFile {
            path: path.to_string(),
            size: 1,
            xet_hash: XetHash::default(),
            mtime: None,
            uploaded_at: None,
            content_type: None,
        };
        (f, None)
    }

    #[test]
    fn owner_is_stable_and_spreads() {
        let mut seen = [0usize; 4];
        for i in 0..400 {
            let k = format!("key-{i}");
            let o = owner_shard("b", &k, 4);
            assert_eq!(o, owner_shard("b", &k, 4));
            seen[o] += 1;
        }
        assert!(seen.iter().all(|&n| n > 50), "{seen:?}");
        assert_eq!(owner_shard("b", "k", 1), 0);
        assert_ne!(
            (0..64)
                .map(|i| owner_shard("a", &i.to_string(), 2))
                .collect::<Vec<_>>(),
            (0..64)
                .map(|i| owner_shard("b", &i.to_string(), 2))
                .collect::<Vec<_>>(),
        );
    }

    #[test]
    fn a_lookup_racing_a_write_is_not_cached() {
        let s = ShardState::new(Duration::from_secs(60), Duration::from_secs(60), 1);
        let key: PathKey = ("b".into(), "k".into());
        let before = s.epoch();
        s.invalidate(&key);
        s.cache_if_unchanged(before, key.clone(), file("k"));
        assert!(s.metadata.get(&key).is_none());
        let now = s.epoch();
        s.cache_if_unchanged(now, key.clone(), file("k"));
        assert!(s.metadata.get(&key).is_some());
    }

    #[tokio::test]
    async fn commits_of_one_key_run_one_at_a_time() {
        let s = Arc::new(ShardState::new(
            Duration::from_secs(1),
            Duration::from_secs(1),
            1,
        ));
        let key: PathKey = ("b".into(), "k".into());
        let g = s.commit_lock(&key).await;
        let (s2, k2) = (s.clone(), key.clone());
        let waiter = tokio::spawn(async move {
            let _g = s2.commit_lock(&k2).await;
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !waiter.is_finished(),
            "second commit ran while the first held the lock"
        );
        // Another key is not blocked.
        drop(s.commit_lock(&("b".into(), "other".into())).await);
        drop(g);
        waiter.await.expect("waiter");
        assert!(
            s.commits.lock().expect("map").is_empty(),
            "lock entries leak"
        );
    }

    #[tokio::test]
    async fn a_cancelled_waiter_leaves_no_lock_entry() {
        let s = ShardState::new(Duration::from_secs(1), Duration::from_secs(1), 1);
        let key: PathKey = ("b".into(), "k".into());
        let g = s.commit_lock(&key).await;
        // Waits behind `g`, then is dropped (cancelled) before it gets the lock.
        let waited = tokio::time::timeout(Duration::from_millis(20), s.commit_lock(&key)).await;
        assert!(waited.is_err());
        drop(g);
        assert!(
            s.commits.lock().expect("map").is_empty(),
            "lock entries leak"
        );
    }

    #[tokio::test]
    async fn a_commit_invalidates_when_it_starts_and_when_it_ends() {
        let s = ShardState::new(Duration::from_secs(60), Duration::from_secs(60), 1);
        let key: PathKey = ("b".into(), "k".into());
        s.metadata.insert(key.clone(), file("k"));
        let g = s.commit_lock(&key).await;
        assert!(
            s.metadata.get(&key).is_none(),
            "invalidated when the commit starts"
        );
        // A reader that looked up the old version during the commit caches it...
        s.metadata.insert(key.clone(), file("k"));
        // ...and the end of the commit (here: an error path, the guard just drops) removes it.
        drop(g);
        assert!(
            s.metadata.get(&key).is_none(),
            "invalidated when the commit ends"
        );
    }

    #[tokio::test]
    async fn a_published_commit_leaves_its_entry_cached() {
        let s = ShardState::new(Duration::from_secs(60), Duration::from_secs(60), 1);
        let key: PathKey = ("b".into(), "k".into());
        let before = s.epoch();
        let mut g = s.commit_lock(&key).await;
        g.publish(file("k"));
        drop(g);
        assert_eq!(
            s.metadata.get(&key).map(|f| f.0.path),
            Some("k".to_string())
        );
        // A reader that looked the key up before the commit does not overwrite it.
        let mut stale = file("k");
        stale.0.size = 99;
        s.cache_if_unchanged(before, key.clone(), stale);
        assert_eq!(s.metadata.get(&key).map(|f| f.0.size), Some(1));
    }

    #[test]
    fn started_shards_run_on_their_own_named_threads() {
        let shards = KeyShards::start(&[0, 0], Duration::from_secs(1), Duration::from_secs(1))
            .expect("start");
        assert_eq!(shards.runtimes().len(), 2);
        for i in 0..2 {
            let (tx, rx) = std::sync::mpsc::channel();
            shards.runtime(i).expect("runtime").spawn(async move {
                let _ = tx.send(std::thread::current().name().map(str::to_string));
            });
            let name = rx.recv().expect("answer");
            assert_eq!(name.as_deref(), Some(format!("hugbucket-key-{i}").as_str()));
        }
    }
}
