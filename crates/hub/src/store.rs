//! Metadata storage: a small key-value trait ([`Kv`]) with a sled implementation (the real
//! one) and an in-memory one (unit tests), and the typed layer the hub uses ([`Meta`]).
//!
//! Trees and their records:
//! - `buckets`: `"{ns}/{name}"` -> [`BucketRecord`] (JSON). Files are keyed by the bucket's
//!   random `uid`, so a move only rewrites this tree.
//! - `files`: `uid (8 bytes BE) ++ path` -> [`FileRecord`] (JSON); sorted by path bytes.
//! - `recons`: file hash (32 raw bytes) -> [`Reconstruction`] (binary).
//! - `xorbs`: xorb hash -> [`XorbMeta`] (binary: chunk hashes, serialized byte ends and
//!   uncompressed lengths).
//! - `chunks`: chunk hash -> xorb hash ++ chunk index (u32 LE): the global-dedup index.
//!
//! Crash safety comes from write order: xorb data file (fsynced) -> `xorbs` -> `recons` ->
//! `files`, each step flushed before it is acknowledged.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use hugbucket_engine::XetHash;
use serde::{Deserialize, Serialize};

use crate::error::HubError;

/// The trees of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tree {
    /// Buckets by `ns/name`.
    Buckets,
    /// Files by bucket uid + path.
    Files,
    /// File reconstructions by file hash.
    Recons,
    /// Stored xorbs by xorb hash.
    Xorbs,
    /// Global dedup chunk index.
    Chunks,
}

impl Tree {
    const ALL: [Tree; 5] = [
        Tree::Buckets,
        Tree::Files,
        Tree::Recons,
        Tree::Xorbs,
        Tree::Chunks,
    ];
    fn name(self) -> &'static str {
        match self {
            Tree::Buckets => "buckets",
            Tree::Files => "files",
            Tree::Recons => "recons",
            Tree::Xorbs => "xorbs",
            Tree::Chunks => "chunks",
        }
    }
}

/// Result of store operations.
pub type KvResult<T> = Result<T, HubError>;

/// A key-value pair.
pub type KvPair = (Vec<u8>, Vec<u8>);

/// The metadata key-value store.
pub trait Kv: Send + Sync {
    /// Value of `key`.
    fn get(&self, tree: Tree, key: &[u8]) -> KvResult<Option<Vec<u8>>>;
    /// Inserts or replaces.
    fn insert(&self, tree: Tree, key: &[u8], value: &[u8]) -> KvResult<()>;
    /// Removes; true when the key existed.
    fn remove(&self, tree: Tree, key: &[u8]) -> KvResult<bool>;
    /// Up to `limit` pairs with keys `>= start` that begin with `prefix`, in key order.
    fn scan(&self, tree: Tree, prefix: &[u8], start: &[u8], limit: usize) -> KvResult<Vec<KvPair>>;
    /// Makes every previous write durable.
    fn flush(&self) -> KvResult<()>;
}

/// sled-backed store (the persistent one).
pub struct SledKv {
    trees: BTreeMap<Tree, sled::Tree>,
    db: sled::Db,
}

impl SledKv {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> KvResult<Self> {
        // A just-shut-down instance (a restart in the same process) may still hold the lock
        // briefly.
        let db = hugbucket_storage::open_sled(
            &sled::Config::new()
                .path(dir)
                .mode(sled::Mode::HighThroughput),
        )?;
        let mut trees = BTreeMap::new();
        for t in Tree::ALL {
            trees.insert(t, db.open_tree(t.name())?);
        }
        Ok(Self { trees, db })
    }
    fn tree(&self, t: Tree) -> &sled::Tree {
        &self.trees[&t]
    }
}

impl Kv for SledKv {
    fn get(&self, tree: Tree, key: &[u8]) -> KvResult<Option<Vec<u8>>> {
        Ok(self.tree(tree).get(key)?.map(|v| v.to_vec()))
    }
    fn insert(&self, tree: Tree, key: &[u8], value: &[u8]) -> KvResult<()> {
        self.tree(tree).insert(key, value)?;
        Ok(())
    }
    fn remove(&self, tree: Tree, key: &[u8]) -> KvResult<bool> {
        Ok(self.tree(tree).remove(key)?.is_some())
    }
    fn scan(&self, tree: Tree, prefix: &[u8], start: &[u8], limit: usize) -> KvResult<Vec<KvPair>> {
        let from = if start > prefix { start } else { prefix };
        let mut out = Vec::new();
        for item in self.tree(tree).range(from..) {
            let (k, v) = item?;
            if !k.starts_with(prefix) || out.len() >= limit {
                break;
            }
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }
    fn flush(&self) -> KvResult<()> {
        self.db.flush()?;
        Ok(())
    }
}

type MemTree = BTreeMap<Vec<u8>, Vec<u8>>;

/// In-memory store (tests).
#[derive(Default)]
pub struct MemKv {
    trees: Mutex<BTreeMap<Tree, MemTree>>,
}

impl MemKv {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Kv for MemKv {
    fn get(&self, tree: Tree, key: &[u8]) -> KvResult<Option<Vec<u8>>> {
        let g = self.trees.lock().map_err(|_| poisoned())?;
        Ok(g.get(&tree).and_then(|t| t.get(key).cloned()))
    }
    fn insert(&self, tree: Tree, key: &[u8], value: &[u8]) -> KvResult<()> {
        let mut g = self.trees.lock().map_err(|_| poisoned())?;
        g.entry(tree)
            .or_default()
            .insert(key.to_vec(), value.to_vec());
        Ok(())
    }
    fn remove(&self, tree: Tree, key: &[u8]) -> KvResult<bool> {
        let mut g = self.trees.lock().map_err(|_| poisoned())?;
        Ok(g.entry(tree).or_default().remove(key).is_some())
    }
    fn scan(&self, tree: Tree, prefix: &[u8], start: &[u8], limit: usize) -> KvResult<Vec<KvPair>> {
        let g = self.trees.lock().map_err(|_| poisoned())?;
        let from = if start > prefix { start } else { prefix };
        Ok(g.get(&tree)
            .map(|t| {
                t.range(from.to_vec()..)
                    .take_while(|(k, _)| k.starts_with(prefix))
                    .take(limit)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default())
    }
    fn flush(&self) -> KvResult<()> {
        Ok(())
    }
}

fn poisoned() -> HubError {
    HubError::Storage("store lock poisoned".into())
}

/// A bucket.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BucketRecord {
    /// Random id keying its files.
    pub uid: u64,
    /// Private flag.
    pub private: bool,
    /// Creation time, ms since the epoch.
    pub created_at_ms: u64,
}

/// A file in a bucket.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileRecord {
    /// Xet file hash.
    pub xet_hash: XetHash,
    /// Size in bytes.
    pub size: u64,
    /// Client-provided modification time, ms since the epoch.
    pub mtime_ms: u64,
    /// When it was added, ms since the epoch.
    pub uploaded_at_ms: u64,
    /// Content type given by the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
}

/// One term of a stored reconstruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Term {
    /// Xorb.
    pub xorb: XetHash,
    /// First chunk.
    pub chunk_start: u32,
    /// Exclusive end chunk.
    pub chunk_end: u32,
    /// Uncompressed bytes.
    pub unpacked: u32,
}

/// How to rebuild a file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reconstruction {
    /// File size.
    pub size: u64,
    /// Terms in file order.
    pub terms: Vec<Term>,
}

impl Reconstruction {
    const TERM: usize = 32 + 12;
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.terms.len() * Self::TERM);
        out.extend_from_slice(&self.size.to_le_bytes());
        for t in &self.terms {
            out.extend_from_slice(t.xorb.as_bytes());
            out.extend_from_slice(&t.chunk_start.to_le_bytes());
            out.extend_from_slice(&t.chunk_end.to_le_bytes());
            out.extend_from_slice(&t.unpacked.to_le_bytes());
        }
        out
    }
    fn decode(b: &[u8]) -> KvResult<Self> {
        if b.len() < 8 || (b.len() - 8) % Self::TERM != 0 {
            return Err(HubError::Storage("corrupt reconstruction record".into()));
        }
        let size = u64::from_le_bytes(b[..8].try_into().unwrap_or_default());
        let terms = b[8..]
            .chunks_exact(Self::TERM)
            .map(|r| Term {
                xorb: XetHash::from_slice(&r[..32]).unwrap_or(XetHash::ZERO),
                chunk_start: u32_at(r, 32),
                chunk_end: u32_at(r, 36),
                unpacked: u32_at(r, 40),
            })
            .collect();
        Ok(Self { size, terms })
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap_or_default())
}

/// One chunk of a stored xorb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkMeta {
    /// Chunk hash.
    pub hash: XetHash,
    /// Offset of its header in the serialized xorb.
    pub byte_start: u32,
    /// Exclusive end of its record.
    pub byte_end: u32,
    /// Uncompressed size.
    pub len: u32,
}

/// What we know about a stored xorb.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct XorbMeta {
    /// Chunks in order.
    pub chunks: Vec<ChunkMeta>,
}

impl XorbMeta {
    const CHUNK: usize = 32 + 8;
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.chunks.len() * Self::CHUNK);
        for c in &self.chunks {
            out.extend_from_slice(c.hash.as_bytes());
            out.extend_from_slice(&c.byte_end.to_le_bytes());
            out.extend_from_slice(&c.len.to_le_bytes());
        }
        out
    }
    fn decode(b: &[u8]) -> KvResult<Self> {
        if b.len() % Self::CHUNK != 0 {
            return Err(HubError::Storage("corrupt xorb record".into()));
        }
        let mut start = 0u32;
        let chunks = b
            .chunks_exact(Self::CHUNK)
            .map(|r| {
                let c = ChunkMeta {
                    hash: XetHash::from_slice(&r[..32]).unwrap_or(XetHash::ZERO),
                    byte_start: start,
                    byte_end: u32_at(r, 32),
                    len: u32_at(r, 36),
                };
                start = c.byte_end;
                c
            })
            .collect();
        Ok(Self { chunks })
    }
    /// End of the chunk records (= serialized size without footer).
    pub fn data_len(&self) -> u64 {
        self.chunks.last().map_or(0, |c| u64::from(c.byte_end))
    }
}

/// The typed metadata layer over a [`Kv`].
pub struct Meta {
    kv: Box<dyn Kv>,
}

impl Meta {
    /// Wraps a store.
    pub fn new(kv: Box<dyn Kv>) -> Self {
        Self { kv }
    }

    /// Makes every previous write durable.
    pub fn flush(&self) -> KvResult<()> {
        self.kv.flush()
    }

    // ---- buckets ----

    /// Bucket `id` (`ns/name`).
    pub fn bucket(&self, id: &str) -> KvResult<Option<BucketRecord>> {
        self.kv
            .get(Tree::Buckets, id.as_bytes())?
            .map(|v| decode_json(&v))
            .transpose()
    }
    /// Creates or replaces a bucket.
    pub fn put_bucket(&self, id: &str, rec: &BucketRecord) -> KvResult<()> {
        self.kv
            .insert(Tree::Buckets, id.as_bytes(), &encode_json(rec)?)
    }
    /// Removes a bucket record (not its files); true when it existed.
    pub fn remove_bucket(&self, id: &str) -> KvResult<bool> {
        self.kv.remove(Tree::Buckets, id.as_bytes())
    }
    /// Buckets whose id starts with `prefix`, from id `start` on.
    pub fn buckets(
        &self,
        prefix: &str,
        start: &str,
        limit: usize,
    ) -> KvResult<Vec<(String, BucketRecord)>> {
        self.kv
            .scan(Tree::Buckets, prefix.as_bytes(), start.as_bytes(), limit)?
            .into_iter()
            .map(|(k, v)| Ok((String::from_utf8_lossy(&k).into_owned(), decode_json(&v)?)))
            .collect()
    }

    // ---- files ----

    fn file_key(uid: u64, path: &str) -> Vec<u8> {
        let mut k = uid.to_be_bytes().to_vec();
        k.extend_from_slice(path.as_bytes());
        k
    }
    /// File `path` of bucket `uid`.
    pub fn file(&self, uid: u64, path: &str) -> KvResult<Option<FileRecord>> {
        self.kv
            .get(Tree::Files, &Self::file_key(uid, path))?
            .map(|v| decode_json(&v))
            .transpose()
    }
    /// Adds or replaces a file.
    pub fn put_file(&self, uid: u64, path: &str, rec: &FileRecord) -> KvResult<()> {
        self.kv
            .insert(Tree::Files, &Self::file_key(uid, path), &encode_json(rec)?)
    }
    /// Removes a file; true when it existed.
    pub fn remove_file(&self, uid: u64, path: &str) -> KvResult<bool> {
        self.kv.remove(Tree::Files, &Self::file_key(uid, path))
    }
    /// Files of bucket `uid` whose path starts with `prefix`, from path `start` on (raw bytes,
    /// so a cursor may point between valid paths).
    pub fn files(
        &self,
        uid: u64,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> KvResult<Vec<(String, FileRecord)>> {
        let mut p = uid.to_be_bytes().to_vec();
        p.extend_from_slice(prefix);
        let mut s = uid.to_be_bytes().to_vec();
        s.extend_from_slice(start);
        self.kv
            .scan(Tree::Files, &p, &s, limit)?
            .into_iter()
            .map(|(k, v)| {
                Ok((
                    String::from_utf8_lossy(&k[8..]).into_owned(),
                    decode_json(&v)?,
                ))
            })
            .collect()
    }

    // ---- CAS ----

    /// Reconstruction of `file`.
    pub fn recon(&self, file: &XetHash) -> KvResult<Option<Reconstruction>> {
        self.kv
            .get(Tree::Recons, file.as_bytes())?
            .map(|v| Reconstruction::decode(&v))
            .transpose()
    }
    /// Stores a reconstruction.
    pub fn put_recon(&self, file: &XetHash, r: &Reconstruction) -> KvResult<()> {
        self.kv.insert(Tree::Recons, file.as_bytes(), &r.encode())
    }
    /// Metadata of a stored xorb.
    pub fn xorb(&self, xorb: &XetHash) -> KvResult<Option<XorbMeta>> {
        self.kv
            .get(Tree::Xorbs, xorb.as_bytes())?
            .map(|v| XorbMeta::decode(&v))
            .transpose()
    }
    /// True when the xorb is stored.
    pub fn has_xorb(&self, xorb: &XetHash) -> KvResult<bool> {
        Ok(self.kv.get(Tree::Xorbs, xorb.as_bytes())?.is_some())
    }
    /// Records a stored xorb.
    pub fn put_xorb(&self, xorb: &XetHash, m: &XorbMeta) -> KvResult<()> {
        self.kv.insert(Tree::Xorbs, xorb.as_bytes(), &m.encode())
    }
    /// Indexes a chunk for global dedup.
    pub fn put_chunk(&self, chunk: &XetHash, xorb: &XetHash, index: u32) -> KvResult<()> {
        let mut v = xorb.as_bytes().to_vec();
        v.extend_from_slice(&index.to_le_bytes());
        self.kv.insert(Tree::Chunks, chunk.as_bytes(), &v)
    }
    /// Where an indexed chunk lives.
    pub fn chunk(&self, chunk: &XetHash) -> KvResult<Option<(XetHash, u32)>> {
        Ok(self
            .kv
            .get(Tree::Chunks, chunk.as_bytes())?
            .filter(|v| v.len() == 36)
            .and_then(|v| Some((XetHash::from_slice(&v[..32])?, u32_at(&v, 32)))))
    }
}

fn encode_json<T: Serialize>(v: &T) -> KvResult<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| HubError::Storage(e.to_string()))
}

fn decode_json<T: for<'de> Deserialize<'de>>(v: &[u8]) -> KvResult<T> {
    serde_json::from_slice(v).map_err(|e| HubError::Storage(format!("corrupt record: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_kv(kv: &dyn Kv) {
        kv.insert(Tree::Files, b"a/1", b"x").unwrap();
        kv.insert(Tree::Files, b"a/2", b"y").unwrap();
        kv.insert(Tree::Files, b"b/1", b"z").unwrap();
        kv.insert(Tree::Buckets, b"a/1", b"other tree").unwrap();
        assert_eq!(kv.get(Tree::Files, b"a/1").unwrap(), Some(b"x".to_vec()));
        let all = kv.scan(Tree::Files, b"a/", b"", 10).unwrap();
        assert_eq!(all.len(), 2);
        let from = kv.scan(Tree::Files, b"a/", b"a/2", 10).unwrap();
        assert_eq!(from, vec![(b"a/2".to_vec(), b"y".to_vec())]);
        assert_eq!(kv.scan(Tree::Files, b"", b"", 2).unwrap().len(), 2);
        assert!(kv.remove(Tree::Files, b"a/1").unwrap());
        assert!(!kv.remove(Tree::Files, b"a/1").unwrap());
        assert_eq!(kv.get(Tree::Files, b"a/1").unwrap(), None);
        kv.flush().unwrap();
    }

    #[test]
    fn mem_and_sled_agree() {
        check_kv(&MemKv::new());
        let dir = tempfile::tempdir().unwrap();
        check_kv(&SledKv::open(dir.path()).unwrap());
    }

    #[test]
    fn totals_cache_generations() {
        let c = TotalsCache::default();
        let (g0, v) = c.get(1);
        assert_eq!(v, None);
        c.put(1, g0, (10, 1));
        assert_eq!(c.get(1).1, Some((10, 1)));
        // A computation that started before a write must not be stored after it.
        let (g1, _) = c.get(1);
        c.invalidate(1);
        c.put(1, g1, (10, 1));
        assert_eq!(c.get(1).1, None);
        let (g2, _) = c.get(1);
        c.put(1, g2, (20, 2));
        assert_eq!(c.get(1).1, Some((20, 2)));
        assert_eq!(c.get(2).1, None);
    }

    #[test]
    fn records_roundtrip() {
        let meta = Meta::new(Box::new(MemKv::new()));
        let h = |b: u8| XetHash::from_bytes([b; 32]);
        let r = Reconstruction {
            size: 10,
            terms: vec![Term {
                xorb: h(1),
                chunk_start: 2,
                chunk_end: 5,
                unpacked: 10,
            }],
        };
        meta.put_recon(&h(9), &r).unwrap();
        assert_eq!(meta.recon(&h(9)).unwrap(), Some(r));
        let m = XorbMeta {
            chunks: vec![
                ChunkMeta {
                    hash: h(3),
                    byte_start: 0,
                    byte_end: 20,
                    len: 12,
                },
                ChunkMeta {
                    hash: h(4),
                    byte_start: 20,
                    byte_end: 50,
                    len: 30,
                },
            ],
        };
        meta.put_xorb(&h(1), &m).unwrap();
        assert_eq!(meta.xorb(&h(1)).unwrap(), Some(m));
        meta.put_chunk(&h(3), &h(1), 7).unwrap();
        assert_eq!(meta.chunk(&h(3)).unwrap(), Some((h(1), 7)));
        assert_eq!(meta.chunk(&h(4)).unwrap(), None);
    }
}

/// Cached `(total size, file count)` per bucket uid, recomputed lazily. Every write to a
/// bucket's files bumps its generation and drops the value; a recomputation started before
/// a write cannot store its (stale) result afterwards.
#[derive(Default)]
pub struct TotalsCache {
    inner: Mutex<std::collections::HashMap<u64, Totals>>,
}

/// (generation, cached (size, count)).
type Totals = (u64, Option<(u64, u64)>);

impl TotalsCache {
    /// The current generation and cached totals of `uid`.
    pub fn get(&self, uid: u64) -> (u64, Option<(u64, u64)>) {
        self.inner
            .lock()
            .map(|g| g.get(&uid).copied().unwrap_or((0, None)))
            .unwrap_or((0, None))
    }
    /// Stores totals computed at generation `generation` (ignored if a write happened since).
    pub fn put(&self, uid: u64, generation: u64, totals: (u64, u64)) {
        if let Ok(mut g) = self.inner.lock() {
            let e = g.entry(uid).or_insert((0, None));
            if e.0 == generation {
                e.1 = Some(totals);
            }
        }
    }
    /// Call after every change to the bucket's files.
    pub fn invalidate(&self, uid: u64) {
        if let Ok(mut g) = self.inner.lock() {
            let e = g.entry(uid).or_insert((0, None));
            e.0 += 1;
            e.1 = None;
        }
    }
}
