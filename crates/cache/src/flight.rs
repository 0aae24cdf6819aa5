//! Single-flight: at most one fetch per key in progress.
//!
//! [`SingleFlight::run`] for a key nobody is fetching starts the caller's fetch; calls for
//! the same key while it runs wait for that fetch and get a clone of its result. The fetch is
//! a [`futures_util::future::Shared`] polled by whoever is waiting, so it works on any
//! executor (tokio, glommio, a plain `block_on`) and survives the first caller going away: it
//! is only cancelled when every waiter has dropped its future. The map holds weak handles,
//! so a cancelled fetch leaves nothing behind and the next caller starts afresh.
//!
//! The map is split into shards by key hash; each shard owns the flights of its keys.
//!
//! How the gateway core uses it with the chunk cache, per reconstruction term:
//!
//! ```ignore
//! if let Some(bytes) = cache.get(&key) { return Ok(bytes) }           // fast path, no lock
//! flights.run(key, || async move {
//!     if let Some(bytes) = cache.get(&key) { return Ok(bytes) }       // filled meanwhile
//!     let (bytes, chunk_lens) = fetch_and_decode(&key).await?;        // one upstream GET
//!     cache.record_upstream_fetch(fetched_len);
//!     let _ = cache.put(&key, &chunk_lens, &bytes);                   // best effort
//!     Ok(bytes)
//! }).await                                                            // Result<Bytes, Arc<E>>
//! ```
//!
//! The value type must be `Clone` (use `Arc` for errors); it is not cached after the flight.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, MutexGuard};

use futures_util::future::{BoxFuture, FutureExt, Shared, WeakShared};

const FLIGHT_SHARDS: usize = 16;
/// Shard size at which abandoned flights are swept before an insert.
const SWEEP_AT: usize = 256;

type Flights<K, V> = HashMap<K, WeakShared<BoxFuture<'static, V>>>;

/// Deduplicates concurrent fetches of the same key. See the module docs.
pub struct SingleFlight<K, V> {
    shards: Box<[Mutex<Flights<K, V>>]>,
}

impl<K, V> Default for SingleFlight<K, V>
where
    K: Hash + Eq + Clone + Send + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V> SingleFlight<K, V>
where
    K: Hash + Eq + Clone + Send + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// An empty set of flights.
    pub fn new() -> Self {
        SingleFlight {
            shards: (0..FLIGHT_SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    fn shard(&self, key: &K) -> MutexGuard<'_, Flights<K, V>> {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        let i = (h.finish() as usize) % self.shards.len();
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `fetch` for `key` unless a fetch for `key` is already in flight, in which case
    /// waits for that one instead (and `fetch` is not called). Every caller gets the
    /// result of the one fetch that ran.
    pub async fn run<F, Fut>(&self, key: K, fetch: F) -> V
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V> + Send + 'static,
    {
        let shared = {
            let mut map = self.shard(&key);
            match map.get(&key).and_then(WeakShared::upgrade) {
                Some(shared) => shared,
                None => {
                    let shared: Shared<BoxFuture<'static, V>> = fetch().boxed().shared();
                    if let Some(weak) = shared.downgrade() {
                        if map.len() >= SWEEP_AT {
                            // Drop flights abandoned by all their waiters.
                            map.retain(|_, w| w.upgrade().is_some());
                        }
                        map.insert(key.clone(), weak);
                    }
                    shared
                }
            }
        };
        let handle = shared.clone();
        let value = shared.await;
        // Forget this flight (unless a newer one already replaced it).
        let mut map = self.shard(&key);
        let same = map
            .get(&key)
            .and_then(WeakShared::upgrade)
            .is_none_or(|current| current.ptr_eq(&handle));
        if same {
            map.remove(&key);
        }
        value
    }

    /// Number of keys with a fetch in flight (including abandoned ones not yet cleaned).
    pub fn in_flight(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .values()
                    .filter(|w| w.upgrade().is_some())
                    .count()
            })
            .sum()
    }
}
