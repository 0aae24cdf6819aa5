//! [`DiskCache`]: the persistent [`ChunkCache`] (segments + index store).
//!
//! Layout of `CacheConfig::dir`: `segments/<id>.seg` (see `segment` for the record format)
//! and, when opened with [`DiskCache::open`], `index/` (a sled database).
//!
//! In memory, entries live in 64 shards (by xorb hash), each a `RwLock<HashMap>` from xorb
//! hash to that xorb's cached ranges. A get takes one shard's read lock for a map lookup,
//! releases it, stamps the entry's recency (an atomic store from a global logical clock) and
//! verifies the record straight from the mapped segment; the returned `Bytes` borrows the
//! mapping (no copy), keeping the segment alive even if it is evicted meanwhile.
//!
//! All writes (puts, removals, eviction, recency flushes and every index store mutation)
//! are serialized by one writer mutex, which gets never take (except to drop a corrupt
//! entry). Recency reaches the index store only on [`ChunkCache::flush`] and on drop.
//!
//! Eviction reclaims whole segments: while the live segment bytes exceed the capacity, the
//! segment whose most recently used entry is the oldest goes (its file is deleted, its
//! entries dropped). With one entry per segment this is exact LRU by bytes; with bigger
//! segments it is LRU at segment granularity.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::Bytes;
use hugbucket_engine::hash::XetHash;

use crate::ChunkCache;
use crate::config::CacheConfig;
use crate::error::{CacheError, Result};
use crate::index::{IndexOp, IndexStore, SledIndex};
use crate::key::ChunkRangeKey;
use crate::metrics::{CacheStats, Counters, ShardCounters};
use crate::mmap::MappedFile;
use crate::segment::{self, Segment};

const SHARDS: usize = 64;

/// Index value: version, segment id, offset, record length, last access, CRC-32 of the rest.
const VALUE_LEN: usize = 29;
const VALUE_VERSION: u8 = 1;

struct IndexValue {
    seg: u32,
    offset: u64,
    len: u32,
    last_access: u64,
}

impl IndexValue {
    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(VALUE_LEN);
        v.push(VALUE_VERSION);
        v.extend_from_slice(&self.seg.to_le_bytes());
        v.extend_from_slice(&self.offset.to_le_bytes());
        v.extend_from_slice(&self.len.to_le_bytes());
        v.extend_from_slice(&self.last_access.to_le_bytes());
        let crc = crc32fast::hash(&v);
        v.extend_from_slice(&crc.to_le_bytes());
        v
    }

    fn decode(v: &[u8]) -> Option<Self> {
        if v.len() != VALUE_LEN || v[0] != VALUE_VERSION {
            return None;
        }
        let crc = u32::from_le_bytes(v[25..29].try_into().ok()?);
        if crc32fast::hash(&v[..25]) != crc {
            return None;
        }
        Some(IndexValue {
            seg: u32::from_le_bytes(v[1..5].try_into().ok()?),
            offset: u64::from_le_bytes(v[5..13].try_into().ok()?),
            len: u32::from_le_bytes(v[13..17].try_into().ok()?),
            last_access: u64::from_le_bytes(v[17..25].try_into().ok()?),
        })
    }
}

/// One live entry.
struct Slot {
    key: ChunkRangeKey,
    seg: Arc<Segment>,
    offset: u64,
    len: u32,
    last_access: AtomicU64,
    /// The `last_access` last written to the index store.
    persisted: AtomicU64,
}

impl Slot {
    fn value(&self, last_access: u64) -> IndexValue {
        IndexValue {
            seg: self.seg.id,
            offset: self.offset,
            len: self.len,
            last_access,
        }
    }
}

type ShardMap = HashMap<XetHash, Vec<Arc<Slot>>>;

#[derive(Default)]
struct Shard {
    map: RwLock<ShardMap>,
    counters: ShardCounters,
}

impl Shard {
    fn read(&self) -> RwLockReadGuard<'_, ShardMap> {
        self.map.read().unwrap_or_else(|e| e.into_inner())
    }
    fn write(&self) -> RwLockWriteGuard<'_, ShardMap> {
        self.map.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// The best slot for `key` among one xorb's slots: the exact entry, else the smallest entry
/// covering it.
fn find(slots: &[Arc<Slot>], key: &ChunkRangeKey) -> Option<Arc<Slot>> {
    let mut best: Option<&Arc<Slot>> = None;
    for s in slots {
        if s.key == *key {
            return Some(s.clone());
        }
        if s.key.covers(key) && best.is_none_or(|b| s.key.num_chunks() < b.key.num_chunks()) {
            best = Some(s);
        }
    }
    best.cloned()
}

struct SegState {
    seg: Arc<Segment>,
    used: u64,
}

struct Writer {
    segments: BTreeMap<u32, SegState>,
    active: Option<u32>,
    next_id: u32,
    total: u64,
}

/// The persistent chunk cache. See the crate docs for the contract and the module source
/// for the design.
pub struct DiskCache {
    seg_dir: PathBuf,
    capacity: u64,
    segment_size: u64,
    index: Box<dyn IndexStore>,
    shards: Box<[Shard]>,
    clock: AtomicU64,
    counters: Counters,
    writer: Mutex<Writer>,
}

/// Hit bytes: a verified range of a mapped segment, kept alive by the slot it came from.
struct SlotBytes {
    slot: Arc<Slot>,
    start: usize,
    end: usize,
}

impl AsRef<[u8]> for SlotBytes {
    fn as_ref(&self) -> &[u8] {
        self.slot
            .seg
            .record(self.slot.offset, self.slot.len)
            .and_then(|r| r.get(self.start..self.end))
            .unwrap_or(&[])
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CacheError + '_ {
    move |e| CacheError::io(path, e)
}

impl DiskCache {
    /// Opens (or creates) the cache in `config.dir` with a sled index in `dir/index`. A
    /// sled database that sled reports as corrupt is deleted and recreated
    /// ([`SledIndex::open_or_reset`]): the cache then starts cold and its orphaned segments
    /// are removed. An I/O error (e.g. the directory is in use by another process) fails.
    pub fn open(config: CacheConfig) -> Result<Self> {
        config.validate()?;
        let index_dir = config.dir.join("index");
        fs::create_dir_all(&config.dir).map_err(io_err(&config.dir))?;
        let (index, _reset) = SledIndex::open_or_reset(&index_dir)?;
        Self::open_with_index(config, Box::new(index))
    }

    /// Opens (or creates) the cache in `config.dir` over an index store of the caller's
    /// choice. Index entries that do not decode or point outside their segment file are
    /// dropped (and counted as corrupt); segment files without live entries are deleted;
    /// segment tails past the last live entry (left by a crash) are truncated.
    pub fn open_with_index(config: CacheConfig, index: Box<dyn IndexStore>) -> Result<Self> {
        config.validate()?;
        let seg_dir = config.dir.join("segments");
        fs::create_dir_all(&seg_dir).map_err(io_err(&seg_dir))?;

        let mut files: BTreeMap<u32, u64> = BTreeMap::new();
        for entry in fs::read_dir(&seg_dir).map_err(io_err(&seg_dir))? {
            let entry = entry.map_err(io_err(&seg_dir))?;
            let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(Segment::parse_file_name)
            else {
                continue;
            };
            let len = entry.metadata().map_err(io_err(&entry.path()))?.len();
            files.insert(id, len);
        }

        let mut raw: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        index.scan(&mut |k, v| raw.push((k.to_vec(), v.to_vec())))?;
        let mut bad: Vec<IndexOp> = Vec::new();
        let mut per_seg: BTreeMap<u32, Vec<(ChunkRangeKey, IndexValue)>> = BTreeMap::new();
        for (k, v) in raw {
            let decoded = ChunkRangeKey::decode(&k).zip(IndexValue::decode(&v));
            let valid = decoded.filter(|(key, val)| {
                key.start < key.end
                    && files.get(&val.seg).is_some_and(|&flen| {
                        val.offset
                            .checked_add(u64::from(val.len))
                            .is_some_and(|end| end <= flen)
                    })
            });
            match valid {
                Some((key, val)) => per_seg.entry(val.seg).or_default().push((key, val)),
                None => bad.push(IndexOp::Remove(k)),
            }
        }

        let counters = Counters::default();
        counters.corrupt_dropped.store(bad.len() as u64, Relaxed);
        if !bad.is_empty() {
            index.apply_batch(bad)?;
        }

        let shards: Box<[Shard]> = (0..SHARDS).map(|_| Shard::default()).collect();
        let mut writer = Writer {
            segments: BTreeMap::new(),
            active: None,
            next_id: files.keys().next_back().map_or(0, |id| id + 1),
            total: 0,
        };
        let mut max_access = 0;
        let mut entries = 0u64;
        for (&id, &flen) in &files {
            let path = Segment::path_in(&seg_dir, id);
            let Some(list) = per_seg.remove(&id) else {
                fs::remove_file(&path).map_err(io_err(&path))?;
                continue;
            };
            let used = list
                .iter()
                .map(|(_, v)| v.offset + u64::from(v.len))
                .max()
                .unwrap_or(0);
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(io_err(&path))?;
            if flen > used {
                file.set_len(used).map_err(io_err(&path))?;
            }
            let map = MappedFile::map(&file, used as usize).map_err(io_err(&path))?;
            let seg = Arc::new(Segment {
                id,
                path,
                file,
                map,
                keys: Mutex::new(list.iter().map(|(k, _)| *k).collect()),
            });
            for (key, val) in list {
                max_access = max_access.max(val.last_access);
                let slot = Arc::new(Slot {
                    key,
                    seg: seg.clone(),
                    offset: val.offset,
                    len: val.len,
                    last_access: AtomicU64::new(val.last_access),
                    persisted: AtomicU64::new(val.last_access),
                });
                let shard = &shards[shard_of(&key.xorb)];
                shard.write().entry(key.xorb).or_default().push(slot);
                entries += 1;
            }
            writer.total += used;
            writer.segments.insert(id, SegState { seg, used });
        }
        counters.entries.store(entries, Relaxed);
        counters.disk_bytes.store(writer.total, Relaxed);
        counters
            .segments
            .store(writer.segments.len() as u64, Relaxed);

        let cache = DiskCache {
            seg_dir,
            capacity: config.capacity,
            segment_size: config.segment_size,
            index,
            shards,
            clock: AtomicU64::new(max_access + 1),
            counters,
            writer: Mutex::new(writer),
        };
        {
            let mut w = cache.lock_writer();
            cache.evict_locked(&mut w, None);
        }
        Ok(cache)
    }

    fn lock_writer(&self) -> MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn shard(&self, xorb: &XetHash) -> &Shard {
        &self.shards[shard_of(xorb)]
    }

    fn lookup(&self, key: &ChunkRangeKey) -> Option<Arc<Slot>> {
        let map = self.shard(&key.xorb).read();
        find(map.get(&key.xorb)?, key)
    }

    /// Removes `slot` from the live map if it is still there; returns whether it was.
    fn unlink_slot(&self, slot: &Arc<Slot>) -> bool {
        let mut map = self.shard(&slot.key.xorb).write();
        let Some(list) = map.get_mut(&slot.key.xorb) else {
            return false;
        };
        let Some(pos) = list.iter().position(|s| Arc::ptr_eq(s, slot)) else {
            return false;
        };
        list.swap_remove(pos);
        if list.is_empty() {
            map.remove(&slot.key.xorb);
        }
        self.counters.entries.fetch_sub(1, Relaxed);
        true
    }

    fn drop_corrupt(&self, slot: &Arc<Slot>) {
        let _w = self.lock_writer();
        if self.unlink_slot(slot) {
            self.counters.corrupt_dropped.fetch_add(1, Relaxed);
            // Best effort: a failed removal leaves an index entry that fails again later.
            let _ = self.index.remove(&slot.key.encode());
        }
    }

    /// Reclaims segments, least recently used first, until the live bytes fit the
    /// capacity. `protect` (the segment just written) is never chosen.
    fn evict_locked(&self, w: &mut Writer, protect: Option<u32>) {
        while w.total > self.capacity {
            let victim = w
                .segments
                .iter()
                .filter(|(id, _)| Some(**id) != protect)
                .map(|(id, st)| (self.segment_recency(&st.seg), *id))
                .min();
            let Some((_, id)) = victim else { break };
            self.reclaim_locked(w, id);
        }
    }

    /// Most recent access among a segment's live entries (0 when it has none).
    fn segment_recency(&self, seg: &Arc<Segment>) -> u64 {
        let keys = seg.keys.lock().unwrap_or_else(|e| e.into_inner());
        keys.iter()
            .filter_map(|key| {
                let map = self.shard(&key.xorb).read();
                map.get(&key.xorb)?
                    .iter()
                    .find(|s| s.key == *key && Arc::ptr_eq(&s.seg, seg))
                    .map(|s| s.last_access.load(Relaxed))
            })
            .max()
            .unwrap_or(0)
    }

    fn reclaim_locked(&self, w: &mut Writer, id: u32) {
        let Some(st) = w.segments.remove(&id) else {
            return;
        };
        if w.active == Some(id) {
            w.active = None;
        }
        let keys = std::mem::take(&mut *st.seg.keys.lock().unwrap_or_else(|e| e.into_inner()));
        let mut ops = Vec::new();
        for key in keys {
            let slot = {
                let map = self.shard(&key.xorb).read();
                map.get(&key.xorb).and_then(|l| {
                    l.iter()
                        .find(|s| s.key == key && Arc::ptr_eq(&s.seg, &st.seg))
                        .cloned()
                })
            };
            if let Some(slot) = slot {
                if self.unlink_slot(&slot) {
                    ops.push(IndexOp::Remove(key.encode().to_vec()));
                }
            }
        }
        self.counters.evictions.fetch_add(ops.len() as u64, Relaxed);
        self.counters.evicted_bytes.fetch_add(st.used, Relaxed);
        // Best effort: index entries left behind point at a missing file and are dropped at
        // the next open.
        let _ = self.index.apply_batch(ops);
        // Readers still holding hit bytes keep the mapping; the name goes now.
        let _ = fs::remove_file(&st.seg.path);
        w.total -= st.used;
        self.counters.disk_bytes.store(w.total, Relaxed);
        self.counters.segments.fetch_sub(1, Relaxed);
    }

    fn new_segment_locked(&self, w: &mut Writer, size: u64) -> Result<u32> {
        let id = w.next_id;
        let path = Segment::path_in(&self.seg_dir, id);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io_err(&path))?;
        // Mapped at full size while still empty: appends grow the file into the mapping.
        let map = MappedFile::map(&file, size as usize).map_err(io_err(&path))?;
        w.next_id += 1;
        let seg = Arc::new(Segment {
            id,
            path,
            file,
            map,
            keys: Mutex::new(Vec::new()),
        });
        w.segments.insert(id, SegState { seg, used: 0 });
        w.active = Some(id);
        self.counters.segments.fetch_add(1, Relaxed);
        Ok(id)
    }

    /// Writes the recency of every entry read since the last flush to the index store.
    fn persist_recency_locked(&self) -> Result<()> {
        let mut ops = Vec::new();
        let mut done = Vec::new();
        for shard in self.shards.iter() {
            for slot in shard.read().values().flatten() {
                let la = slot.last_access.load(Relaxed);
                if la != slot.persisted.load(Relaxed) {
                    ops.push(IndexOp::Insert(
                        slot.key.encode().to_vec(),
                        slot.value(la).encode(),
                    ));
                    done.push((slot.clone(), la));
                }
            }
        }
        if ops.is_empty() {
            return Ok(());
        }
        self.index.apply_batch(ops)?;
        for (slot, la) in done {
            slot.persisted.store(la, Relaxed);
        }
        Ok(())
    }

    /// A get, with the chunk lengths when `with_lens` (else an empty list).
    fn read_entry(&self, key: &ChunkRangeKey, with_lens: bool) -> Option<(Bytes, Vec<u32>)> {
        let shard = self.shard(&key.xorb);
        let Some(slot) = self.lookup(key) else {
            shard.counters.misses.fetch_add(1, Relaxed);
            return None;
        };
        slot.last_access
            .store(self.clock.fetch_add(1, Relaxed), Relaxed);
        let range = slot.seg.record(slot.offset, slot.len).and_then(|rec| {
            let data_off = segment::verify(rec, &slot.key)?;
            let lens = match with_lens {
                true => segment::chunk_lens(rec, &slot.key, key)?,
                false => Vec::new(),
            };
            if slot.key == *key {
                Some((data_off, rec.len(), lens))
            } else {
                let (from, len) = segment::sub_range(rec, &slot.key, key)?;
                Some((data_off + from, data_off + from + len, lens))
            }
        });
        let Some((start, end, lens)) = range else {
            self.drop_corrupt(&slot);
            shard.counters.misses.fetch_add(1, Relaxed);
            return None;
        };
        shard.counters.hits.fetch_add(1, Relaxed);
        shard
            .counters
            .bytes_served
            .fetch_add((end - start) as u64, Relaxed);
        Some((Bytes::from_owner(SlotBytes { slot, start, end }), lens))
    }

    fn validate_put(key: &ChunkRangeKey, lens: &[u32], data_len: usize) -> Result<()> {
        if key.start >= key.end {
            return Err(CacheError::InvalidEntry(format!("empty chunk range {key}")));
        }
        if lens.len() as u64 != u64::from(key.num_chunks()) {
            return Err(CacheError::InvalidEntry(format!(
                "{} chunk lengths for {key}",
                lens.len()
            )));
        }
        let sum: u64 = lens.iter().map(|&l| u64::from(l)).sum();
        if sum != data_len as u64 || sum > u64::from(u32::MAX) {
            return Err(CacheError::InvalidEntry(format!(
                "chunk lengths sum to {sum}, data is {data_len} bytes"
            )));
        }
        Ok(())
    }
}

fn shard_of(xorb: &XetHash) -> usize {
    (xorb.word(0) as usize) % SHARDS
}

/// Writes `header` then `pieces` at `offset`, in as few system calls as the kernel allows.
fn write_at(file: &File, offset: u64, header: &[u8], pieces: &[&[u8]]) -> io::Result<()> {
    let mut f = file;
    f.seek(SeekFrom::Start(offset))?;
    let mut bufs: Vec<io::IoSlice<'_>> = std::iter::once(header)
        .chain(pieces.iter().copied())
        .filter(|p| !p.is_empty())
        .map(io::IoSlice::new)
        .collect();
    let mut rest = &mut bufs[..];
    while !rest.is_empty() {
        let n = f.write_vectored(rest)?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        io::IoSlice::advance_slices(&mut rest, n);
    }
    Ok(())
}

impl ChunkCache for DiskCache {
    fn get(&self, key: &ChunkRangeKey) -> Option<Bytes> {
        self.read_entry(key, false).map(|(data, _)| data)
    }

    fn get_chunks(&self, key: &ChunkRangeKey) -> Option<(Bytes, Vec<u32>)> {
        self.read_entry(key, true)
    }

    fn contains(&self, key: &ChunkRangeKey) -> bool {
        self.lookup(key).is_some()
    }

    fn put_pieces(&self, key: &ChunkRangeKey, chunk_lens: &[u32], pieces: &[&[u8]]) -> Result<()> {
        let data_len: usize = pieces.iter().map(|p| p.len()).sum();
        Self::validate_put(key, chunk_lens, data_len)?;
        let rlen = segment::record_len(key.num_chunks(), data_len);
        if rlen > self.capacity || rlen > u64::from(u32::MAX) {
            return Err(CacheError::EntryTooLarge {
                len: rlen,
                capacity: self.capacity,
            });
        }
        let mut w = self.lock_writer();
        if self.lookup(key).is_some() {
            return Ok(());
        }
        let fits = |w: &Writer| {
            w.active
                .and_then(|id| w.segments.get(&id))
                .is_some_and(|st| st.used + rlen <= st.seg.map.bytes().len() as u64)
        };
        if !fits(&w) {
            self.new_segment_locked(&mut w, self.segment_size.max(rlen))?;
        }
        let id = w.active.unwrap_or_default();
        let Some(st) = w.segments.get_mut(&id) else {
            return Err(CacheError::Config("no active segment".into()));
        };
        let offset = st.used;
        let header = segment::encode_header(key, chunk_lens, pieces);
        write_at(&st.seg.file, offset, &header, pieces).map_err(io_err(&st.seg.path))?;
        let tick = self.clock.fetch_add(1, Relaxed);
        let slot = Arc::new(Slot {
            key: *key,
            seg: st.seg.clone(),
            offset,
            len: rlen as u32,
            last_access: AtomicU64::new(tick),
            persisted: AtomicU64::new(tick),
        });
        self.index
            .insert(&key.encode(), &slot.value(tick).encode())?;
        st.used += rlen;
        st.seg
            .keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(*key);
        w.total += rlen;
        self.shard(&key.xorb)
            .write()
            .entry(key.xorb)
            .or_default()
            .push(slot);
        self.counters.inserts.fetch_add(1, Relaxed);
        self.counters
            .bytes_inserted
            .fetch_add(data_len as u64, Relaxed);
        self.counters.entries.fetch_add(1, Relaxed);
        self.counters.disk_bytes.store(w.total, Relaxed);
        self.evict_locked(&mut w, Some(id));
        Ok(())
    }

    fn remove(&self, key: &ChunkRangeKey) -> Result<()> {
        let _w = self.lock_writer();
        // The entry stored under `key`, then every entry covering it, until a get misses.
        while let Some(slot) = self.lookup(key) {
            self.unlink_slot(&slot);
            self.index.remove(&slot.key.encode())?;
        }
        Ok(())
    }

    fn stats(&self) -> CacheStats {
        let mut s = CacheStats {
            capacity: self.capacity,
            ..CacheStats::default()
        };
        for shard in self.shards.iter() {
            s.hits += shard.counters.hits.load(Relaxed);
            s.misses += shard.counters.misses.load(Relaxed);
            s.bytes_served += shard.counters.bytes_served.load(Relaxed);
        }
        self.counters.fill(&mut s);
        s
    }

    fn record_upstream_fetch(&self, bytes: u64) {
        self.counters.upstream_fetches.fetch_add(1, Relaxed);
        self.counters.upstream_bytes.fetch_add(bytes, Relaxed);
    }

    fn flush(&self) -> Result<()> {
        let w = self.lock_writer();
        self.persist_recency_locked()?;
        self.index.flush()?;
        if let Some(st) = w.active.and_then(|id| w.segments.get(&id)) {
            st.seg.file.sync_data().map_err(io_err(&st.seg.path))?;
        }
        Ok(())
    }
}

impl Drop for DiskCache {
    fn drop(&mut self) {
        let _w = self.lock_writer();
        let _ = self.persist_recency_locked();
        let _ = self.index.flush();
    }
}
