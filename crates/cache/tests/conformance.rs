//! Conformance suite: every test runs once per index store (in-memory and sled), at the
//! level of the `IndexStore` trait and of the whole `DiskCache`.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hugbucket_cache::{
    CacheConfig, CacheError, ChunkCache, ChunkRangeKey, DiskCache, IndexOp, IndexStore,
    MemoryIndex, SledIndex,
};
use hugbucket_engine::hash::XetHash;

/// Opens index stores and caches over them for one implementation.
trait Backend {
    /// The raw index store of the cache in `dir` (the cache must be closed for sled).
    fn index(&self, dir: &Path) -> Box<dyn IndexStore>;
    fn open(&self, config: CacheConfig) -> DiskCache;
}

/// In-memory index, kept per directory so that reopening a cache finds the same index.
#[derive(Default)]
struct Mem(Mutex<HashMap<PathBuf, MemoryIndex>>);

impl Backend for Mem {
    fn index(&self, dir: &Path) -> Box<dyn IndexStore> {
        let mut map = self.0.lock().unwrap();
        Box::new(map.entry(dir.to_path_buf()).or_default().clone())
    }
    fn open(&self, config: CacheConfig) -> DiskCache {
        let index = self.index(&config.dir);
        DiskCache::open_with_index(config, index).unwrap()
    }
}

/// sled index in `dir/index`, the way `DiskCache::open` lays it out.
struct Sled;

impl Backend for Sled {
    fn index(&self, dir: &Path) -> Box<dyn IndexStore> {
        Box::new(SledIndex::open(&dir.join("index")).unwrap())
    }
    fn open(&self, config: CacheConfig) -> DiskCache {
        DiskCache::open(config).unwrap()
    }
}

fn xorb(n: u32) -> XetHash {
    XetHash::from_bytes(*blake3::hash(&n.to_le_bytes()).as_bytes())
}

/// Decoded bytes of chunk `i` of xorb `x`: deterministic, `len` bytes.
fn chunk(x: &XetHash, i: u32, len: u32) -> Vec<u8> {
    let mut out = vec![0u8; len as usize];
    let mut h = blake3::Hasher::new();
    h.update(x.as_bytes()).update(&i.to_le_bytes());
    h.finalize_xof().fill(&mut out);
    out
}

/// Chunk lengths and data of `key` when every chunk of its xorb is `chunk_len` bytes.
fn entry(key: &ChunkRangeKey, chunk_len: u32) -> (Vec<u32>, Vec<u8>) {
    let lens = vec![chunk_len; key.num_chunks() as usize];
    let data = (key.start..key.end)
        .flat_map(|i| chunk(&key.xorb, i, chunk_len))
        .collect();
    (lens, data)
}

fn put(cache: &DiskCache, key: &ChunkRangeKey, chunk_len: u32) {
    let (lens, data) = entry(key, chunk_len);
    cache.put(key, &lens, &data).unwrap();
}

/// A get must return exactly the expected bytes, or nothing.
fn get_checked(cache: &DiskCache, key: &ChunkRangeKey, chunk_len: u32) -> bool {
    match cache.get(key) {
        Some(bytes) => {
            assert_eq!(
                &bytes[..],
                &entry(key, chunk_len).1[..],
                "wrong bytes for {key}"
            );
            true
        }
        None => false,
    }
}

fn key(x: u32, start: u32, end: u32) -> ChunkRangeKey {
    ChunkRangeKey::new(xorb(x), start, end)
}

/// Bytes a record of `n` chunks of `chunk_len` takes (header 52 + 4 per chunk).
fn record_size(n: u32, chunk_len: u32) -> u64 {
    52 + 4 * u64::from(n) + u64::from(n) * u64::from(chunk_len)
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

fn segment_bytes(dir: &Path) -> u64 {
    segment_files(dir)
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .sum()
}

/// Flips one byte of a file at `offset` (through a plain write).
fn flip_byte(path: &Path, offset: u64) {
    let mut data = fs::read(path).unwrap();
    data[offset as usize] ^= 0xA5;
    let mut f = OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(&data[offset as usize..offset as usize + 1])
        .unwrap();
}

// ---------------------------------------------------------------- index store level

fn index_basic(b: &dyn Backend) {
    let dir = tempfile::tempdir().unwrap();
    let idx = b.index(dir.path());
    assert_eq!(idx.get(b"a").unwrap(), None);
    idx.insert(b"a", b"1").unwrap();
    idx.insert(b"b", b"2").unwrap();
    assert_eq!(idx.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
    idx.insert(b"a", b"3").unwrap();
    assert_eq!(idx.get(b"a").unwrap().as_deref(), Some(&b"3"[..]));
    idx.remove(b"a").unwrap();
    idx.remove(b"zz").unwrap();
    assert_eq!(idx.get(b"a").unwrap(), None);
    assert_eq!(idx.get(b"b").unwrap().as_deref(), Some(&b"2"[..]));
}

fn index_scan_is_sorted_and_complete(b: &dyn Backend) {
    let dir = tempfile::tempdir().unwrap();
    let idx = b.index(dir.path());
    let mut keys: Vec<Vec<u8>> = (0..200u32)
        .map(|i| key(i % 7, i, i + 1).encode().to_vec())
        .collect();
    for (i, k) in keys.iter().enumerate().rev() {
        idx.insert(k, &(i as u32).to_le_bytes()).unwrap();
    }
    idx.remove(&keys[10]).unwrap();
    let removed = keys.remove(10);
    let mut seen = Vec::new();
    idx.scan(&mut |k, v| seen.push((k.to_vec(), v.to_vec())))
        .unwrap();
    let mut want = keys.clone();
    want.sort();
    assert_eq!(
        seen.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
        want
    );
    assert!(!seen.iter().any(|(k, _)| *k == removed));
}

fn index_batch_applies_in_order(b: &dyn Backend) {
    let dir = tempfile::tempdir().unwrap();
    let idx = b.index(dir.path());
    idx.insert(b"gone", b"x").unwrap();
    idx.apply_batch(vec![
        IndexOp::Insert(b"k1".to_vec(), b"v1".to_vec()),
        IndexOp::Remove(b"k1".to_vec()),
        IndexOp::Remove(b"k2".to_vec()),
        IndexOp::Insert(b"k2".to_vec(), b"v2".to_vec()),
        IndexOp::Remove(b"gone".to_vec()),
    ])
    .unwrap();
    assert_eq!(idx.get(b"k1").unwrap(), None);
    assert_eq!(idx.get(b"k2").unwrap().as_deref(), Some(&b"v2"[..]));
    assert_eq!(idx.get(b"gone").unwrap(), None);
}

fn index_survives_reopen(b: &dyn Backend) {
    let dir = tempfile::tempdir().unwrap();
    {
        let idx = b.index(dir.path());
        idx.insert(b"k", b"v").unwrap();
        idx.flush().unwrap();
    }
    let idx = b.index(dir.path());
    assert_eq!(idx.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
}

// ---------------------------------------------------------------- cache level

fn cache_put_get(b: &dyn Backend) {
    let dir = tempfile::tempdir().unwrap();
    let cache = b.open(CacheConfig::new(dir.path(), 1 << 20));
    let big = key(1, 0, 8);
    let other = key(2, 3, 5);
    put(&cache, &big, 100);
    put(&cache, &other, 100);
    assert!(get_checked(&cache, &big, 100));
    assert!(get_checked(&cache, &other, 100));
    // Sub-ranges of a cached range hit; anything not covered misses.
    assert!(get_checked(&cache, &key(1, 2, 5), 100));
    assert!(get_checked(&cache, &key(1, 7, 8), 100));
    assert!(!get_checked(&cache, &key(1, 0, 9), 100));
    assert!(!get_checked(&cache, &key(2, 2, 4), 100));
    assert!(!get_checked(&cache, &key(3, 0, 8), 100));
    let s = cache.stats();
    assert_eq!((s.hits, s.misses), (4, 3));
    assert_eq!(s.bytes_served, 800 + 200 + 300 + 100);
    assert_eq!((s.inserts, s.bytes_inserted, s.entries), (2, 1000, 2));
    // A key already covered is not stored again.
    put(&cache, &key(1, 1, 3), 100);
    assert_eq!(cache.stats().inserts, 2);
    // Chunk lengths must describe the data.
    let e = cache.put(&key(4, 0, 2), &[1, 2], &[0; 4]);
    assert!(matches!(e, Err(CacheError::InvalidEntry(_))), "{e:?}");
    let e = cache.put(&key(4, 0, 2), &[4], &[0; 4]);
    assert!(matches!(e, Err(CacheError::InvalidEntry(_))), "{e:?}");
    let e = cache.put(&key(4, 2, 2), &[], &[]);
    assert!(matches!(e, Err(CacheError::InvalidEntry(_))), "{e:?}");
    assert!(!cache.contains(&key(4, 0, 2)));
    // Unequal chunk sizes: sub-range offsets come from the stored lengths.
    let k = key(5, 10, 13);
    let parts = [
        chunk(&k.xorb, 10, 7),
        chunk(&k.xorb, 11, 1000),
        chunk(&k.xorb, 12, 3),
    ];
    cache.put(&k, &[7, 1000, 3], &parts.concat()).unwrap();
    assert_eq!(&cache.get(&key(5, 11, 12)).unwrap()[..], &parts[1][..]);
    assert_eq!(
        &cache.get(&key(5, 11, 13)).unwrap()[..],
        &parts[1..].concat()[..]
    );
    // get_chunks returns the same bytes plus the lengths of exactly the chunks asked for.
    let (bytes, lens) = cache.get_chunks(&key(5, 11, 13)).unwrap();
    assert_eq!(
        (&bytes[..], &lens[..]),
        (&parts[1..].concat()[..], &[1000, 3][..])
    );
    let (bytes, lens) = cache.get_chunks(&k).unwrap();
    assert_eq!(
        (&bytes[..], &lens[..]),
        (&parts.concat()[..], &[7, 1000, 3][..])
    );
    assert!(cache.get_chunks(&key(5, 9, 11)).is_none());
    // The stats as exported on /metrics.
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(hugbucket_cache::CacheCollector(
        std::sync::Arc::new(cache),
    )));
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).unwrap();
    assert!(text.contains("hugbucket_cache_hits_total 8\n"), "{text}");
}

fn cache_remove(b: &dyn Backend) {
    let dir = tempfile::tempdir().unwrap();
    let cache = b.open(CacheConfig::new(dir.path(), 1 << 20));
    put(&cache, &key(1, 0, 2), 10);
    put(&cache, &key(2, 0, 2), 10);
    cache.remove(&key(1, 0, 2)).unwrap();
    cache.remove(&key(9, 0, 2)).unwrap();
    assert!(!get_checked(&cache, &key(1, 0, 2), 10));
    assert!(get_checked(&cache, &key(2, 0, 2), 10));
    drop(cache);
    let cache = b.open(CacheConfig::new(dir.path(), 1 << 20));
    assert!(!get_checked(&cache, &key(1, 0, 2), 10));
    assert!(get_checked(&cache, &key(2, 0, 2), 10));
    assert_eq!(cache.stats().entries, 1);
    // Removing a sub-range drops the entries covering it too, and only those.
    put(&cache, &key(3, 0, 8), 10);
    put(&cache, &key(3, 8, 16), 10);
    cache.remove(&key(3, 2, 4)).unwrap();
    assert!(!get_checked(&cache, &key(3, 2, 4), 10));
    assert!(!get_checked(&cache, &key(3, 0, 8), 10));
    assert!(get_checked(&cache, &key(3, 8, 16), 10));
}

/// One entry per segment (segment size below a record), room for three records.
fn lru_config(dir: &Path) -> CacheConfig {
    CacheConfig {
        dir: dir.to_path_buf(),
        capacity: 3 * record_size(4, 256),
        segment_size: 64,
    }
}

fn cache_eviction_is_lru_by_bytes(b: &dyn Backend) {
    let dir = tempfile::tempdir().unwrap();
    let cache = b.open(lru_config(dir.path()));
    let [a, bb, c, d, e] = [1, 2, 3, 4, 5].map(|x| key(x, 0, 4));
    for k in [a, bb, c] {
        put(&cache, &k, 256);
    }
    assert!(get_checked(&cache, &a, 256));
    put(&cache, &d, 256); // b is the least recently used
    assert!(!cache.contains(&bb));
    for k in [a, c, d] {
        assert!(cache.contains(&k), "{k}");
    }
    assert!(get_checked(&cache, &c, 256));
    put(&cache, &e, 256); // now a (read before d was put, c read after)
    assert!(!cache.contains(&a));
    for k in [c, d, e] {
        assert!(cache.contains(&k), "{k}");
    }
    let s = cache.stats();
    assert_eq!((s.evictions, s.entries, s.segments), (2, 3, 3));
    assert_eq!(s.disk_bytes, 3 * record_size(4, 256));
    assert_eq!(segment_bytes(dir.path()), s.disk_bytes);
}

fn cache_capacity_never_exceeded_by_more_than_one_segment(b: &dyn Backend) {
    let dir = tempfile::tempdir().unwrap();
    let config = CacheConfig {
        dir: dir.path().to_path_buf(),
        capacity: 64 << 10,
        segment_size: 8 << 10,
    };
    let bound = config.capacity + config.segment_size;
    let cache = b.open(config.clone());
    let mut keys = Vec::new();
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    for i in 0..300u32 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let n = 1 + (rng % 6) as u32;
        let k = key(1000 + i, 0, n);
        put(&cache, &k, 1000);
        keys.push(k);
        let s = cache.stats();
        assert!(s.disk_bytes <= bound, "{} > {bound}", s.disk_bytes);
        assert!(segment_bytes(dir.path()) <= bound);
        assert!(cache.contains(&k), "the entry just put is kept");
        if i % 7 == 0 {
            // Keep an old key hot; it must survive.
            assert!(get_checked(&cache, &keys[0], 1000));
        }
    }
    let s = cache.stats();
    assert!(s.evictions > 0);
    let live = keys.iter().filter(|k| cache.contains(k)).count() as u64;
    assert_eq!(live, s.entries);
    assert_eq!(segment_bytes(dir.path()), s.disk_bytes);
    // Reopening with a smaller capacity evicts down to it.
    drop(cache);
    let cache = b.open(CacheConfig {
        capacity: 16 << 10,
        ..config
    });
    assert!(cache.stats().disk_bytes <= (16 << 10) + (8 << 10));
    assert!(segment_bytes(dir.path()) <= (16 << 10) + (8 << 10));
    assert!(
        keys.iter()
            .all(|k| !cache.contains(k) || get_checked(&cache, k, 1000))
    );
}

fn cache_entry_sizes(b: &dyn Backend) {
    let dir = tempfile::tempdir().unwrap();
    let config = CacheConfig {
        dir: dir.path().to_path_buf(),
        capacity: 1 << 20,
        segment_size: 4 << 10,
    };
    let cache = b.open(config);
    // Larger than a segment: gets a segment of its own.
    put(&cache, &key(1, 0, 10), 2000);
    put(&cache, &key(2, 0, 1), 100);
    assert!(get_checked(&cache, &key(1, 0, 10), 2000));
    assert!(get_checked(&cache, &key(2, 0, 1), 100));
    assert_eq!(cache.stats().segments, 2);
    // Larger than the cache: refused.
    let (lens, data) = entry(&key(3, 0, 600), 2000);
    let e = cache.put(&key(3, 0, 600), &lens, &data);
    assert!(matches!(e, Err(CacheError::EntryTooLarge { .. })), "{e:?}");
    assert!(!cache.contains(&key(3, 0, 600)));
}

fn cache_restart_is_warm(b: &dyn Backend) {
    let dir = tempfile::tempdir().unwrap();
    let config = CacheConfig {
        dir: dir.path().to_path_buf(),
        capacity: 1 << 20,
        segment_size: 16 << 10,
    };
    let keys: Vec<_> = (0..40).map(|i| key(i, i, i + 1 + i % 4)).collect();
    {
        let cache = b.open(config.clone());
        for k in &keys {
            put(&cache, k, 700);
        }
    }
    let cache = b.open(config);
    for k in &keys {
        assert!(get_checked(&cache, k, 700), "{k} lost across restart");
    }
    let s = cache.stats();
    assert_eq!((s.entries, s.corrupt_dropped), (40, 0));
    // New puts after reopen go to new segments and coexist with the old ones.
    put(&cache, &key(99, 0, 3), 700);
    assert!(get_checked(&cache, &key(99, 0, 3), 700));
    assert!(get_checked(&cache, &keys[0], 700));
}

fn cache_recency_survives_restart(b: &dyn Backend) {
    let dir = tempfile::tempdir().unwrap();
    let [a, bb, c, d] = [1, 2, 3, 4].map(|x| key(x, 0, 4));
    {
        let cache = b.open(lru_config(dir.path()));
        for k in [a, bb, c] {
            put(&cache, &k, 256);
        }
        assert!(get_checked(&cache, &a, 256)); // recency only in memory until drop/flush
    }
    let cache = b.open(lru_config(dir.path()));
    put(&cache, &d, 256);
    assert!(cache.contains(&a), "a was read before the restart");
    assert!(!cache.contains(&bb));
}

/// Three entries in one segment; returns (keys, segment path, record offsets).
fn three_in_one_segment(b: &dyn Backend, dir: &Path) -> ([ChunkRangeKey; 3], PathBuf, [u64; 3]) {
    let keys = [key(1, 0, 2), key(2, 0, 3), key(3, 5, 6)];
    let cache = b.open(CacheConfig::new(dir, 1 << 20));
    for k in &keys {
        put(&cache, k, 500);
    }
    drop(cache);
    let files = segment_files(dir);
    assert_eq!(files.len(), 1);
    let o1 = record_size(2, 500);
    let o2 = o1 + record_size(3, 500);
    (keys, files[0].clone(), [0, o1, o2])
}

fn cache_corrupt_segment_is_a_miss(b: &dyn Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (keys, seg, offs) = three_in_one_segment(b, dir.path());
    flip_byte(&seg, offs[1] + 52 + 12 + 700); // inside the data of entry 2
    let cache = b.open(CacheConfig::new(dir.path(), 1 << 20));
    assert!(get_checked(&cache, &keys[0], 500));
    assert!(!get_checked(&cache, &keys[1], 500));
    assert!(
        !get_checked(&cache, &key(2, 1, 2), 500),
        "sub-range of a dropped entry"
    );
    assert!(get_checked(&cache, &keys[2], 500));
    let s = cache.stats();
    assert_eq!((s.corrupt_dropped, s.entries), (1, 2));
    // Corruption while open (a header byte this time) is caught on read too.
    flip_byte(&seg, offs[2] + 10);
    assert!(!get_checked(&cache, &keys[2], 500));
    assert_eq!(cache.stats().corrupt_dropped, 2);
    drop(cache);
    let cache = b.open(CacheConfig::new(dir.path(), 1 << 20));
    assert_eq!(cache.stats().entries, 1, "dropped entries stay dropped");
    assert!(get_checked(&cache, &keys[0], 500));
    assert!(!get_checked(&cache, &keys[1], 500));
}

fn cache_truncated_segment_is_a_miss(b: &dyn Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (keys, seg, offs) = three_in_one_segment(b, dir.path());
    let f = OpenOptions::new().write(true).open(&seg).unwrap();
    f.set_len(offs[2] + 100).unwrap(); // cuts entry 3
    drop(f);
    let cache = b.open(CacheConfig::new(dir.path(), 1 << 20));
    assert!(get_checked(&cache, &keys[0], 500));
    assert!(get_checked(&cache, &keys[1], 500));
    assert!(!get_checked(&cache, &keys[2], 500));
    assert_eq!(cache.stats().corrupt_dropped, 1);
    assert_eq!(
        fs::metadata(&seg).unwrap().len(),
        offs[2],
        "torn tail cut off"
    );
    drop(cache);
    // Truncated to nothing: all misses, the empty file is removed.
    OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(0)
        .unwrap();
    let cache = b.open(CacheConfig::new(dir.path(), 1 << 20));
    for k in &keys {
        assert!(!get_checked(&cache, k, 500));
    }
    assert_eq!(cache.stats().entries, 0);
    assert!(segment_files(dir.path()).is_empty());
    // And the cache works again.
    put(&cache, &keys[0], 500);
    assert!(get_checked(&cache, &keys[0], 500));
}

fn cache_corrupt_index_is_a_miss(b: &dyn Backend) {
    let dir = tempfile::tempdir().unwrap();
    let keys: Vec<_> = (0..6).map(|i| key(i, 0, 2)).collect();
    {
        let cache = b.open(CacheConfig::new(dir.path(), 1 << 20));
        for k in &keys {
            put(&cache, k, 300);
        }
    }
    {
        let idx = b.index(dir.path());
        let enc = |k: &ChunkRangeKey| k.encode().to_vec();
        // 0: garbage value.
        idx.insert(&enc(&keys[0]), b"not a value").unwrap();
        // 1: a well-formed value pointing at entry 2's record.
        let v2 = idx.get(&enc(&keys[2])).unwrap().unwrap();
        idx.insert(&enc(&keys[1]), &v2).unwrap();
        // 3: a value with one bit flipped.
        let mut v3 = idx.get(&enc(&keys[3])).unwrap().unwrap();
        v3[7] ^= 1;
        idx.insert(&enc(&keys[3]), &v3).unwrap();
        // A garbage key, and a key of a range never stored pointing at entry 4.
        idx.insert(b"junk", b"junk").unwrap();
        let v4 = idx.get(&enc(&keys[4])).unwrap().unwrap();
        idx.insert(&enc(&key(77, 0, 2)), &v4).unwrap();
        idx.flush().unwrap();
    }
    let cache = b.open(CacheConfig::new(dir.path(), 1 << 20));
    assert_eq!(cache.stats().corrupt_dropped, 3, "undecodable at open");
    assert!(!get_checked(&cache, &keys[0], 300));
    assert!(!get_checked(&cache, &keys[1], 300));
    assert!(get_checked(&cache, &keys[2], 300));
    assert!(!get_checked(&cache, &keys[3], 300));
    assert!(get_checked(&cache, &keys[4], 300));
    assert!(get_checked(&cache, &keys[5], 300));
    assert!(cache.get(&key(77, 0, 2)).is_none());
    assert_eq!(cache.stats().corrupt_dropped, 5);
}

fn cache_orphans_are_cleaned(b: &dyn Backend) {
    let dir = tempfile::tempdir().unwrap();
    {
        let cache = b.open(CacheConfig::new(dir.path(), 1 << 20));
        put(&cache, &key(1, 0, 1), 10);
    }
    let orphan = dir.path().join("segments").join("0000000999.seg");
    fs::write(&orphan, b"orphan data").unwrap();
    fs::write(dir.path().join("segments").join("README"), b"not ours").unwrap();
    let cache = b.open(CacheConfig::new(dir.path(), 1 << 20));
    assert!(!orphan.exists());
    assert!(dir.path().join("segments").join("README").exists());
    assert!(get_checked(&cache, &key(1, 0, 1), 10));
    // New segment ids do not collide with files seen at open.
    put(&cache, &key(2, 0, 1), 10);
    assert!(get_checked(&cache, &key(2, 0, 1), 10));
}

fn cache_concurrent_readers_and_writers(b: &dyn Backend) {
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(b.open(CacheConfig {
        dir: dir.path().to_path_buf(),
        capacity: 256 << 10,
        segment_size: 16 << 10,
    }));
    const KEYS: u32 = 400;
    let k = |i: u32| key(i, i % 3, i % 3 + 1 + i % 5);
    let writers_done = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 0..2u32 {
            let (cache, writers_done) = (cache.clone(), &writers_done);
            s.spawn(move || {
                for round in 0..3 {
                    for i in (0..KEYS).filter(|i| i % 2 == t) {
                        put(&cache, &k((i + round * 7) % KEYS), 900);
                    }
                }
                writers_done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            });
        }
        for t in 0..4u32 {
            let (cache, writers_done) = (cache.clone(), &writers_done);
            s.spawn(move || {
                // Read while the writers run (inserting and evicting), then one last pass.
                let mut n = 0u32;
                let mut last_pass = false;
                loop {
                    let i = (n.wrapping_mul(2_654_435_761) ^ t) % KEYS;
                    let want = k(if last_pass { n } else { i });
                    // Whole entry or its first chunk: both must be exact.
                    let sub = ChunkRangeKey::new(want.xorb, want.start, want.start + 1);
                    for q in [want, sub] {
                        get_checked(&cache, &q, 900);
                    }
                    n += 1;
                    if last_pass && n == KEYS {
                        break;
                    }
                    if !last_pass && writers_done.load(std::sync::atomic::Ordering::SeqCst) == 2 {
                        (last_pass, n) = (true, 0);
                    }
                }
            });
        }
    });
    let s = cache.stats();
    assert!(s.hits > 0 && s.evictions > 0, "{s:?}");
    assert_eq!(s.corrupt_dropped, 0);
    assert!(s.disk_bytes <= (256 << 10) + (16 << 10));
}

fn sled_file_corruption_never_gives_wrong_bytes(b: &dyn Backend) {
    let dir = tempfile::tempdir().unwrap();
    let keys: Vec<_> = (0..50).map(|i| key(i, 0, 3)).collect();
    {
        let cache = b.open(CacheConfig::new(dir.path(), 4 << 20));
        for k in &keys {
            put(&cache, k, 400);
        }
        cache.flush().unwrap();
    }
    // Scribble over every file of the index database.
    let mut stack = vec![dir.path().join("index")];
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            stack.extend(fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else {
            let len = fs::metadata(&p).unwrap().len();
            for off in (0..len).step_by(97) {
                flip_byte(&p, off);
            }
        }
    }
    let cache = b.open(CacheConfig::new(dir.path(), 4 << 20));
    for k in &keys {
        get_checked(&cache, k, 400);
    }
    put(&cache, &key(500, 0, 2), 400);
    assert!(get_checked(&cache, &key(500, 0, 2), 400));
}

macro_rules! conformance {
    ($name:ident, $backend:expr, [$($test:ident),* $(,)?]) => {
        mod $name {
            $(
                #[test]
                fn $test() {
                    super::$test(&$backend);
                }
            )*
        }
    };
}

macro_rules! both {
    ($($test:ident),* $(,)?) => {
        conformance!(memory, super::Mem::default(), [$($test),*]);
        conformance!(sled, super::Sled, [$($test),*]);
    };
}

both!(
    index_basic,
    index_scan_is_sorted_and_complete,
    index_batch_applies_in_order,
    index_survives_reopen,
    cache_put_get,
    cache_remove,
    cache_eviction_is_lru_by_bytes,
    cache_capacity_never_exceeded_by_more_than_one_segment,
    cache_entry_sizes,
    cache_restart_is_warm,
    cache_recency_survives_restart,
    cache_corrupt_segment_is_a_miss,
    cache_truncated_segment_is_a_miss,
    cache_corrupt_index_is_a_miss,
    cache_orphans_are_cleaned,
    cache_concurrent_readers_and_writers,
);

conformance!(
    sled_only,
    super::Sled,
    [sled_file_corruption_never_gives_wrong_bytes]
);

#[test]
fn a_second_open_of_a_live_directory_fails_and_deletes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = CacheConfig::new(dir.path(), 1 << 20);
    let first = DiskCache::open(config.clone()).unwrap();
    put(&first, &key(1, 0, 2), 100);
    first.flush().unwrap();
    assert!(
        DiskCache::open(config.clone()).is_err(),
        "sled holds a lock"
    );
    assert!(get_checked(&first, &key(1, 0, 2), 100));
    drop(first);
    let again = DiskCache::open(config).unwrap();
    assert!(get_checked(&again, &key(1, 0, 2), 100));
}
