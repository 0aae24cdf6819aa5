//! The index store: where the cache persists which entries exist and where they live.
//!
//! The cache keeps its working index in memory (sharded maps, see `disk`); the store is the
//! durable copy, read in full once at open and written on puts, removals, evictions and
//! lazy recency flushes. Keeping it behind [`IndexStore`] lets the engine be swapped (sled
//! 0.34 is in maintenance mode): an implementation only needs ordered byte keys.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use hugbucket_storage::open_sled;

use crate::error::{CacheError, Result};

/// One write in an [`IndexStore::apply_batch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IndexOp {
    /// Insert or overwrite.
    Insert(Vec<u8>, Vec<u8>),
    /// Remove (no error when absent).
    Remove(Vec<u8>),
}

/// A small ordered key-value store.
///
/// Contract (checked by the conformance suite in `tests/conformance.rs`):
/// - `get` returns the value of the last `insert` of that key not followed by a `remove`;
/// - `scan` visits every live key exactly once, in ascending byte order;
/// - `apply_batch` applies its operations in order (atomically where the engine can);
/// - after `flush` returns, everything written before it survives a process crash;
///   without `flush`, recent writes may be lost but the store stays readable;
/// - values it returns may still be garbage after external corruption: callers validate.
pub trait IndexStore: Send + Sync {
    /// The value stored under `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Stores `value` under `key`, replacing any previous value.
    fn insert(&self, key: &[u8], value: &[u8]) -> Result<()>;
    /// Removes `key`; no error when absent.
    fn remove(&self, key: &[u8]) -> Result<()>;
    /// Applies several writes in order.
    fn apply_batch(&self, ops: Vec<IndexOp>) -> Result<()>;
    /// Calls `visit` for every entry in ascending key order.
    fn scan(&self, visit: &mut dyn FnMut(&[u8], &[u8])) -> Result<()>;
    /// Makes every previous write durable.
    fn flush(&self) -> Result<()>;
}

/// In-memory [`IndexStore`]: a `BTreeMap` behind a lock.
///
/// Clones share the same map, which lets tests "restart" a cache over the same index.
#[derive(Clone, Default, Debug)]
pub struct MemoryIndex {
    map: Arc<RwLock<BTreeMap<Vec<u8>, Vec<u8>>>>,
}

impl MemoryIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<Vec<u8>, Vec<u8>>> {
        self.map.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<Vec<u8>, Vec<u8>>> {
        self.map.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl IndexStore for MemoryIndex {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.read().get(key).cloned())
    }

    fn insert(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.write().insert(key.to_vec(), value.to_vec());
        Ok(())
    }

    fn remove(&self, key: &[u8]) -> Result<()> {
        self.write().remove(key);
        Ok(())
    }

    fn apply_batch(&self, ops: Vec<IndexOp>) -> Result<()> {
        let mut map = self.write();
        for op in ops {
            match op {
                IndexOp::Insert(k, v) => {
                    map.insert(k, v);
                }
                IndexOp::Remove(k) => {
                    map.remove(&k);
                }
            }
        }
        Ok(())
    }

    fn scan(&self, visit: &mut dyn FnMut(&[u8], &[u8])) -> Result<()> {
        for (k, v) in self.read().iter() {
            visit(k, v);
        }
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }
}

/// [`IndexStore`] on sled 0.34 (one tree, the default one).
#[derive(Clone, Debug)]
pub struct SledIndex {
    db: sled::Db,
}

/// sled's page cache; the index holds ~70 bytes per entry, so this is plenty.
const SLED_CACHE_BYTES: u64 = 32 << 20;
/// sled's background flush period: bounds what an unclean shutdown loses.
const SLED_FLUSH_MS: u64 = 500;

fn sled_err(e: sled::Error) -> CacheError {
    CacheError::Index(Box::new(e))
}

impl SledIndex {
    /// Opens (or creates) a sled database in directory `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let db = open_sled(&Self::config(path)).map_err(sled_err)?;
        Ok(SledIndex { db })
    }

    fn config(path: &Path) -> sled::Config {
        sled::Config::new()
            .path(path)
            .cache_capacity(SLED_CACHE_BYTES)
            .flush_every_ms(Some(SLED_FLUSH_MS))
    }

    /// Like [`open`](Self::open), but a database that sled reports as corrupt (or that
    /// trips one of its internal checks) is deleted and created anew; the second value
    /// says whether that happened. I/O errors (permissions, another process holding the
    /// lock) are returned as they are: the directory is left alone.
    pub fn open_or_reset(path: &Path) -> Result<(Self, bool)> {
        match open_sled(&Self::config(path)) {
            Ok(db) => Ok((SledIndex { db }, false)),
            Err(sled::Error::Io(e)) => Err(CacheError::io(path, e)),
            Err(_) => {
                std::fs::remove_dir_all(path).map_err(|e| CacheError::io(path, e))?;
                Ok((Self::open(path)?, true))
            }
        }
    }
}

impl IndexStore for SledIndex {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get(key).map_err(sled_err)?.map(|v| v.to_vec()))
    }

    fn insert(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.db.insert(key, value).map_err(sled_err)?;
        Ok(())
    }

    fn remove(&self, key: &[u8]) -> Result<()> {
        self.db.remove(key).map_err(sled_err)?;
        Ok(())
    }

    fn apply_batch(&self, ops: Vec<IndexOp>) -> Result<()> {
        let mut batch = sled::Batch::default();
        for op in ops {
            match op {
                IndexOp::Insert(k, v) => batch.insert(k, v),
                IndexOp::Remove(k) => batch.remove(k),
            }
        }
        self.db.apply_batch(batch).map_err(sled_err)
    }

    fn scan(&self, visit: &mut dyn FnMut(&[u8], &[u8])) -> Result<()> {
        for item in self.db.iter() {
            let (k, v) = item.map_err(sled_err)?;
            visit(&k, &v);
        }
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        self.db.flush().map_err(sled_err)?;
        Ok(())
    }
}

impl<T: IndexStore + ?Sized> IndexStore for Arc<T> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        (**self).get(key)
    }
    fn insert(&self, key: &[u8], value: &[u8]) -> Result<()> {
        (**self).insert(key, value)
    }
    fn remove(&self, key: &[u8]) -> Result<()> {
        (**self).remove(key)
    }
    fn apply_batch(&self, ops: Vec<IndexOp>) -> Result<()> {
        (**self).apply_batch(ops)
    }
    fn scan(&self, visit: &mut dyn FnMut(&[u8], &[u8])) -> Result<()> {
        (**self).scan(visit)
    }
    fn flush(&self) -> Result<()> {
        (**self).flush()
    }
}
