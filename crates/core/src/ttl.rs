//! [`TtlCache`]: a small in-memory map whose entries expire, for Hub metadata (paths-info,
//! file metadata: short TTL, invalidated by our own writes) and reconstructions (TTL below
//! the expiry of their fetch URLs).

use std::borrow::Borrow;
use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

struct Entry<V> {
    value: V,
    expires: Instant,
    seq: u64,
}

struct Inner<K, V> {
    map: HashMap<K, Entry<V>>,
    /// (expiry, insertion sequence, key): the next entry to expire first.
    order: BTreeSet<(Instant, u64, K)>,
    seq: u64,
}

/// A capacity-bounded map with per-entry expiry. `get` never returns an expired value.
/// When full, an insert first drops expired entries, then the entry closest to expiry.
/// One mutex: meant for metadata lookups, not the data path.
pub struct TtlCache<K, V> {
    inner: Mutex<Inner<K, V>>,
    capacity: usize,
    ttl: Duration,
}

impl<K: Hash + Eq + Ord + Clone, V: Clone> TtlCache<K, V> {
    /// At most `capacity` entries (at least 1), each living `ttl` unless inserted with
    /// [`insert_with_ttl`](Self::insert_with_ttl).
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        TtlCache {
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                order: BTreeSet::new(),
                seq: 0,
            }),
            capacity: capacity.max(1),
            ttl,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<K, V>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The value for `key`, if present and not expired.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let now = Instant::now();
        let mut inner = self.lock();
        let e = inner.map.get(key)?;
        if e.expires > now {
            return Some(e.value.clone());
        }
        let (expires, seq) = (e.expires, e.seq);
        let (k, _) = inner.map.remove_entry(key)?;
        inner.order.remove(&(expires, seq, k));
        None
    }

    /// Inserts with the default TTL.
    pub fn insert(&self, key: K, value: V) {
        self.insert_with_ttl(key, value, self.ttl);
    }

    /// Inserts with the default TTL if `still_valid()`, which is evaluated under the map's
    /// lock: a concurrent [`invalidate`](Self::invalidate) that made it false before taking
    /// the lock wins, one that runs later removes the entry.
    pub fn insert_if(&self, key: K, value: V, still_valid: impl FnOnce() -> bool) {
        self.insert_inner(key, value, self.ttl, still_valid);
    }

    /// Inserts with its own TTL (e.g. the remaining validity of a fetch URL minus a margin).
    pub fn insert_with_ttl(&self, key: K, value: V, ttl: Duration) {
        self.insert_inner(key, value, ttl, || true);
    }

    fn insert_inner(&self, key: K, value: V, ttl: Duration, still_valid: impl FnOnce() -> bool) {
        let now = Instant::now();
        let Some(expires) = now.checked_add(ttl) else {
            return;
        };
        let mut inner = self.lock();
        if !still_valid() {
            return;
        }
        let inner = &mut *inner;
        if let Some(old) = inner.map.remove(&key) {
            inner.order.remove(&(old.expires, old.seq, key.clone()));
        }
        while inner.map.len() >= self.capacity {
            let Some(first) = inner.order.pop_first() else {
                break;
            };
            inner.map.remove(&first.2);
        }
        inner.seq += 1;
        let seq = inner.seq;
        inner.order.insert((expires, seq, key.clone()));
        inner.map.insert(
            key,
            Entry {
                value,
                expires,
                seq,
            },
        );
    }

    /// Removes `key` (after a write that changes what it describes).
    pub fn invalidate<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut inner = self.lock();
        if let Some((k, e)) = inner.map.remove_entry(key) {
            inner.order.remove(&(e.expires, e.seq, k));
        }
    }

    /// Entries held, expired ones not yet dropped included.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// Whether no entry is held.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_insert_invalidate() {
        let c: TtlCache<String, u32> = TtlCache::new(10, Duration::from_secs(600));
        c.insert("a/x".into(), 1);
        c.insert("a/y".into(), 2);
        c.insert("b/z".into(), 3);
        assert_eq!(c.get("a/x"), Some(1));
        c.insert("a/x".into(), 4);
        assert_eq!(c.get("a/x"), Some(4));
        assert_eq!(c.len(), 3);
        c.invalidate("b/z");
        assert_eq!(c.get("b/z"), None);
        c.invalidate("a/x");
        c.invalidate("a/y");
        assert!(c.is_empty());
        assert_eq!(c.get("a/y"), None);
    }

    #[test]
    fn insert_if_checks_under_the_lock() {
        let c: TtlCache<u32, u32> = TtlCache::new(4, Duration::from_secs(60));
        c.insert_if(1, 10, || false);
        assert_eq!(c.get(&1), None);
        c.insert_if(1, 11, || true);
        assert_eq!(c.get(&1), Some(11));
        // The predicate runs with the map locked: it cannot observe a half-done insert.
        c.insert_if(2, 20, || c.inner.try_lock().is_err());
        assert_eq!(c.get(&2), Some(20));
    }

    #[test]
    fn expired_entries_are_never_returned() {
        let c: TtlCache<u32, u32> = TtlCache::new(10, Duration::from_secs(600));
        c.insert_with_ttl(1, 1, Duration::ZERO);
        c.insert(2, 2);
        assert_eq!(c.get(&1), None);
        assert_eq!(c.get(&2), Some(2));
        assert_eq!(c.len(), 1, "the expired entry is dropped on get");
    }

    #[test]
    fn capacity_evicts_closest_to_expiry_first() {
        let c: TtlCache<u32, u32> = TtlCache::new(3, Duration::from_secs(600));
        c.insert_with_ttl(1, 1, Duration::from_secs(900));
        c.insert_with_ttl(2, 2, Duration::from_secs(100));
        c.insert_with_ttl(3, 3, Duration::from_secs(500));
        c.insert(4, 4);
        assert_eq!(c.len(), 3);
        assert_eq!(c.get(&2), None);
        assert_eq!(c.get(&1), Some(1));
        assert_eq!(c.get(&3), Some(3));
        assert_eq!(c.get(&4), Some(4));
    }
}
