//! Single-flight: at most one fetch per key in progress.
//!
//! [`SingleFlight::run`] for a key nobody is fetching starts the caller's fetch; calls for
//! the same key while it runs wait for that fetch and get a clone of its result. The fetch is
//! a [`futures::future::Shared`] polled by whoever is waiting, so it works on any
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

use futures::future::{BoxFuture, FutureExt, Shared, WeakShared};

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
    #[cfg(test)]
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

#[cfg(test)]
mod tests {
    //! One fetch per key in flight, shared by every concurrent caller.

    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    use super::SingleFlight;
    use futures::channel::oneshot;
    use futures::executor::block_on;
    use futures::future::{FutureExt, join_all};

    /// A fetch that counts its runs and completes when `gate` fires.
    fn gated_fetch(
        runs: &Arc<AtomicUsize>,
        gate: futures::future::Shared<oneshot::Receiver<u32>>,
    ) -> impl FnOnce() -> futures::future::BoxFuture<'static, Result<u32, String>> + use<> {
        let runs = runs.clone();
        move || {
            runs.fetch_add(1, SeqCst);
            async move { gate.await.map_err(|_| "gate dropped".to_string()) }.boxed()
        }
    }

    /// Returns `Pending` once (waking itself), so that other futures of a join run first.
    async fn yield_once() {
        let mut yielded = false;
        futures::future::poll_fn(|cx| {
            if yielded {
                std::task::Poll::Ready(())
            } else {
                yielded = true;
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            }
        })
        .await
    }

    #[test]
    fn concurrent_callers_share_one_fetch() {
        let flights: SingleFlight<u64, Result<u32, String>> = SingleFlight::new();
        let runs = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = oneshot::channel();
        let gate = rx.shared();
        // 16 callers for the same key, then one for another key; all polled before the gate
        // opens, so the fetch of key 7 is in flight when the 15 others arrive.
        let mut calls: Vec<_> = (0..16)
            .map(|_| flights.run(7, gated_fetch(&runs, gate.clone())).boxed())
            .collect();
        calls.push(flights.run(8, gated_fetch(&runs, gate.clone())).boxed());
        let opener = async move {
            yield_once().await; // let every caller register first
            tx.send(42).unwrap();
            Ok(0)
        };
        calls.push(opener.boxed());
        let results = block_on(join_all(calls));
        assert_eq!(runs.load(SeqCst), 2, "one fetch for key 7, one for key 8");
        assert!(results[..17].iter().all(|r| *r == Ok(42)), "{results:?}");
        assert_eq!(flights.in_flight(), 0);
    }

    #[test]
    fn later_calls_fetch_again_and_errors_reach_every_waiter() {
        let flights: SingleFlight<&'static str, Result<u32, String>> = SingleFlight::new();
        let runs = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = oneshot::channel::<u32>();
        let gate = rx.shared();
        let a = flights.run("k", gated_fetch(&runs, gate.clone()));
        let b = flights.run("k", gated_fetch(&runs, gate.clone()));
        let fail = async move {
            yield_once().await; // both callers are waiting by now
            drop(tx); // the fetch fails
        };
        let (ra, rb, ()) = block_on(futures::future::join3(a, b, fail));
        assert_eq!(ra, Err("gate dropped".to_string()));
        assert_eq!(rb, ra);
        assert_eq!(runs.load(SeqCst), 1);
        // A flight is not a cache: the next call after completion runs a new fetch.
        let r = block_on(flights.run("k", || async { Ok(5) }));
        assert_eq!(r, Ok(5));
    }

    #[test]
    fn the_fetch_survives_its_first_caller_going_away() {
        let flights: SingleFlight<u8, Result<u32, String>> = SingleFlight::new();
        let runs = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = oneshot::channel();
        let gate = rx.shared();
        let mut first = flights.run(1, gated_fetch(&runs, gate.clone())).boxed();
        let second = flights.run(1, gated_fetch(&runs, gate.clone())).boxed();
        let mut second = second;
        // Poll the first caller once (it starts the fetch), the second (it joins), then drop
        // the first.
        assert!(block_on(async { futures::poll!(&mut first) }).is_pending());
        assert!(block_on(async { futures::poll!(&mut second) }).is_pending());
        drop(first);
        tx.send(9).unwrap();
        assert_eq!(block_on(second), Ok(9));
        assert_eq!(runs.load(SeqCst), 1);
    }

    #[test]
    fn an_abandoned_fetch_is_restarted_by_the_next_caller() {
        let flights: SingleFlight<u8, Result<u32, String>> = SingleFlight::new();
        let runs = Arc::new(AtomicUsize::new(0));
        let (_tx, rx) = oneshot::channel();
        let gate = rx.shared();
        let mut only = flights.run(1, gated_fetch(&runs, gate)).boxed();
        assert!(block_on(async { futures::poll!(&mut only) }).is_pending());
        drop(only); // every waiter gone: the fetch is cancelled
        assert_eq!(flights.in_flight(), 0);
        let r = block_on(flights.run(1, || async { Ok(3) }));
        assert_eq!(r, Ok(3));
    }

    #[test]
    fn works_across_threads() {
        let flights = Arc::new(SingleFlight::<u32, u64>::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = oneshot::channel::<u64>();
        let gate = rx.shared();
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (flights, runs, gate) = (flights.clone(), runs.clone(), gate.clone());
                std::thread::spawn(move || {
                    block_on(flights.run(1, move || {
                        runs.fetch_add(1, SeqCst);
                        async move { gate.await.unwrap_or(0) }
                    }))
                })
            })
            .collect();
        // Wait until the fetch has started, then give the others time to join it; joining late
        // is also correct (a finished flight is forgotten and a new one runs), so only the
        // values are asserted strictly.
        while runs.load(SeqCst) == 0 {
            std::thread::yield_now();
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        tx.send(77).unwrap();
        for h in handles {
            assert_eq!(h.join().unwrap(), 77);
        }
        assert!(runs.load(SeqCst) >= 1);
    }
}
