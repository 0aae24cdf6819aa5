//! Local durable state of the gateway (multipart uploads and parts, multipart ETags),
//! behind a small trait so the storage engine (sled today) can be swapped.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use crate::error::{CoreError, Result};

/// A small ordered key-value store with named trees.
///
/// Contract: a `put`/`delete` that returned `Ok` survives a crash of the process (it is
/// flushed before returning); `scan_prefix` returns entries in ascending key order.
pub trait StateStore: Send + Sync + std::fmt::Debug + 'static {
    /// Value of `key` in `tree`.
    fn get(&self, tree: &str, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Sets `key` durably.
    fn put(&self, tree: &str, key: &[u8], value: &[u8]) -> Result<()>;
    /// Removes `key` durably (absent keys are fine).
    fn delete(&self, tree: &str, key: &[u8]) -> Result<()>;
    /// All entries whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, tree: &str, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;
}

/// [`StateStore`] on sled.
#[derive(Debug)]
pub struct SledState {
    db: sled::Db,
}

impl SledState {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| CoreError::Internal(format!("{}: {e}", dir.display())))?;
        // A just-dropped instance's background thread may still hold the lock briefly.
        let db = hugbucket_storage::open_sled(&sled::Config::new().path(dir))?;
        Ok(SledState { db })
    }
}

impl StateStore for SledState {
    fn get(&self, tree: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.open_tree(tree)?.get(key)?.map(|v| v.to_vec()))
    }
    fn put(&self, tree: &str, key: &[u8], value: &[u8]) -> Result<()> {
        let t = self.db.open_tree(tree)?;
        t.insert(key, value)?;
        t.flush()?;
        Ok(())
    }
    fn delete(&self, tree: &str, key: &[u8]) -> Result<()> {
        let t = self.db.open_tree(tree)?;
        t.remove(key)?;
        t.flush()?;
        Ok(())
    }
    fn scan_prefix(&self, tree: &str, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let t = self.db.open_tree(tree)?;
        t.scan_prefix(prefix)
            .map(|r| {
                r.map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .map_err(CoreError::from)
            })
            .collect()
    }
}

/// One ordered tree of [`MemoryState`].
type MemoryTree = BTreeMap<Vec<u8>, Vec<u8>>;

/// In-memory [`StateStore`] (tests; nothing survives the process).
#[derive(Debug, Default)]
pub struct MemoryState {
    trees: Mutex<BTreeMap<String, MemoryTree>>,
}

impl StateStore for MemoryState {
    fn get(&self, tree: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let trees = self.trees.lock().expect("state lock");
        Ok(trees.get(tree).and_then(|t| t.get(key).cloned()))
    }
    fn put(&self, tree: &str, key: &[u8], value: &[u8]) -> Result<()> {
        let mut trees = self.trees.lock().expect("state lock");
        trees
            .entry(tree.to_string())
            .or_default()
            .insert(key.to_vec(), value.to_vec());
        Ok(())
    }
    fn delete(&self, tree: &str, key: &[u8]) -> Result<()> {
        let mut trees = self.trees.lock().expect("state lock");
        if let Some(t) = trees.get_mut(tree) {
            t.remove(key);
        }
        Ok(())
    }
    fn scan_prefix(&self, tree: &str, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let trees = self.trees.lock().expect("state lock");
        Ok(trees
            .get(tree)
            .map(|t| {
                t.range(prefix.to_vec()..)
                    .take_while(|(k, _)| k.starts_with(prefix))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conformance(s: &dyn StateStore) {
        assert_eq!(s.get("t", b"a").unwrap(), None);
        s.put("t", b"a/2", b"two").unwrap();
        s.put("t", b"a/1", b"one").unwrap();
        s.put("t", b"b/1", b"other").unwrap();
        s.put("u", b"a/1", b"other tree").unwrap();
        assert_eq!(s.get("t", b"a/1").unwrap().as_deref(), Some(&b"one"[..]));
        let scan = s.scan_prefix("t", b"a/").unwrap();
        assert_eq!(
            scan,
            vec![
                (b"a/1".to_vec(), b"one".to_vec()),
                (b"a/2".to_vec(), b"two".to_vec())
            ]
        );
        s.delete("t", b"a/1").unwrap();
        s.delete("t", b"missing").unwrap();
        assert_eq!(s.scan_prefix("t", b"a/").unwrap().len(), 1);
        s.put("t", b"a/2", b"replaced").unwrap();
        assert_eq!(
            s.get("t", b"a/2").unwrap().as_deref(),
            Some(&b"replaced"[..])
        );
    }

    #[test]
    fn memory_state_conforms() {
        conformance(&MemoryState::default());
    }

    #[test]
    fn sled_state_conforms_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = SledState::open(dir.path()).unwrap();
            conformance(&s);
        }
        let s = SledState::open(dir.path()).unwrap();
        assert_eq!(
            s.get("t", b"a/2").unwrap().as_deref(),
            Some(&b"replaced"[..])
        );
    }
}
