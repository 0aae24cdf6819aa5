//! Segment files and the on-disk entry record.
//!
//! A segment is an append-only file `segments/<id>.seg` holding entry records back to
//! back. Each record is self-describing and checksummed (all integers little-endian):
//!
//! ```text
//! offset  size  field
//! 0       4     magic "HBC1"
//! 4       4     CRC-32 (IEEE) of every byte after this field, up to the end of the record
//! 8       32    xorb hash (raw bytes)
//! 40      4     chunk start
//! 44      4     chunk end (exclusive)
//! 48      4     data length D
//! 52      4*n   uncompressed length of each chunk, n = end - start (they sum to D)
//! 52+4n   D     data: the decoded bytes of the chunks, in order
//! ```
//!
//! The index points at a record by (segment id, offset, record length); a read checks the
//! magic, that the key in the record is the key looked up, the lengths and the CRC before
//! it returns any byte, so a stale or corrupt index entry or a damaged segment is a miss.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::key::ChunkRangeKey;
use crate::mmap::MappedFile;

pub(crate) const MAGIC: [u8; 4] = *b"HBC1";
pub(crate) const FIXED_HEADER: usize = 52;

/// Bytes a record takes for an entry of `n` chunks and `data_len` data bytes.
pub(crate) fn record_len(n: u32, data_len: usize) -> u64 {
    FIXED_HEADER as u64 + 4 * u64::from(n) + data_len as u64
}

/// Encodes the header (everything before the data) of a record, CRC included.
pub(crate) fn encode_header(key: &ChunkRangeKey, lens: &[u32], pieces: &[&[u8]]) -> Vec<u8> {
    let len: usize = pieces.iter().map(|p| p.len()).sum();
    let mut h = Vec::with_capacity(FIXED_HEADER + 4 * lens.len());
    h.extend_from_slice(&MAGIC);
    h.extend_from_slice(&[0; 4]);
    h.extend_from_slice(key.xorb.as_bytes());
    h.extend_from_slice(&key.start.to_le_bytes());
    h.extend_from_slice(&key.end.to_le_bytes());
    h.extend_from_slice(&(len as u32).to_le_bytes());
    for l in lens {
        h.extend_from_slice(&l.to_le_bytes());
    }
    let mut crc = crc32fast::Hasher::new();
    crc.update(&h[8..]);
    for p in pieces {
        crc.update(p);
    }
    let sum = crc.finalize();
    h[4..8].copy_from_slice(&sum.to_le_bytes());
    h
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Checks `record` (exactly the bytes the index points at) against `key`; returns the offset
/// of the data within the record. `None` on any mismatch.
pub(crate) fn verify(record: &[u8], key: &ChunkRangeKey) -> Option<usize> {
    if record.get(..4)? != MAGIC {
        return None;
    }
    let crc = le32(record, 4)?;
    if record.get(8..40)? != key.xorb.as_bytes()
        || le32(record, 40)? != key.start
        || le32(record, 44)? != key.end
    {
        return None;
    }
    let n = key.num_chunks() as usize;
    let data_len = le32(record, 48)? as usize;
    let data_off = FIXED_HEADER + 4 * n;
    if n == 0 || record.len() != data_off.checked_add(data_len)? {
        return None;
    }
    let mut sum: u64 = 0;
    for i in 0..n {
        sum += u64::from(le32(record, FIXED_HEADER + 4 * i)?);
    }
    if sum != data_len as u64 || crc32fast::hash(&record[8..]) != crc {
        return None;
    }
    Some(data_off)
}

/// Byte range, within the data of a verified record of entry `entry`, of chunks
/// `[want.start, want.end)` (which `entry` covers).
pub(crate) fn sub_range(
    record: &[u8],
    entry: &ChunkRangeKey,
    want: &ChunkRangeKey,
) -> Option<(usize, usize)> {
    let mut from = 0usize;
    let mut len = 0usize;
    for idx in entry.start..want.end {
        let l = le32(record, FIXED_HEADER + 4 * (idx - entry.start) as usize)? as usize;
        if idx < want.start {
            from += l;
        } else {
            len += l;
        }
    }
    Some((from, len))
}

/// Lengths of chunks `[want.start, want.end)` within a verified record of entry `entry`
/// (which covers `want`).
pub(crate) fn chunk_lens(
    record: &[u8],
    entry: &ChunkRangeKey,
    want: &ChunkRangeKey,
) -> Option<Vec<u32>> {
    (want.start..want.end)
        .map(|idx| le32(record, FIXED_HEADER + 4 * (idx - entry.start) as usize))
        .collect()
}

/// One open segment file.
pub(crate) struct Segment {
    pub(crate) id: u32,
    pub(crate) path: PathBuf,
    /// Write handle (only the active segment is written).
    pub(crate) file: File,
    pub(crate) map: MappedFile,
    /// Keys of the records written to (or found at open in) this segment. Some may have
    /// been removed since; eviction checks each against the live map.
    pub(crate) keys: Mutex<Vec<ChunkRangeKey>>,
}

impl Segment {
    pub(crate) fn file_name(id: u32) -> String {
        format!("{id:010}.seg")
    }

    pub(crate) fn parse_file_name(name: &str) -> Option<u32> {
        let stem = name.strip_suffix(".seg")?;
        if stem.len() != 10 || !stem.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        stem.parse().ok()
    }

    pub(crate) fn path_in(dir: &Path, id: u32) -> PathBuf {
        dir.join(Self::file_name(id))
    }

    /// Record bytes at `[offset, offset + len)`, or `None` when out of the mapping.
    pub(crate) fn record(&self, offset: u64, len: u32) -> Option<&[u8]> {
        let start = usize::try_from(offset).ok()?;
        self.map
            .bytes()
            .get(start..start.checked_add(len as usize)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hugbucket_engine::hash::XetHash;

    fn record(key: &ChunkRangeKey, lens: &[u32], data: &[u8]) -> Vec<u8> {
        let mut r = encode_header(key, lens, &[data]);
        r.extend_from_slice(data);
        r
    }

    #[test]
    fn verify_accepts_only_the_exact_record() {
        let key = ChunkRangeKey::new(XetHash::from_bytes([1; 32]), 3, 6);
        let data: Vec<u8> = (0..60u8).collect();
        let lens = [10, 20, 30];
        let r = record(&key, &lens, &data);
        assert_eq!(r.len() as u64, record_len(3, data.len()));
        let off = verify(&r, &key).unwrap();
        assert_eq!(&r[off..], &data[..]);
        // Sub-range: chunks 4..6 are bytes 10..60.
        let want = ChunkRangeKey::new(key.xorb, 4, 6);
        assert_eq!(sub_range(&r, &key, &want), Some((10, 50)));
        assert_eq!(chunk_lens(&r, &key, &want), Some(vec![20, 30]));
        assert_eq!(chunk_lens(&r, &key, &key), Some(lens.to_vec()));
        // Every single-byte flip is caught.
        for i in 0..r.len() {
            let mut bad = r.clone();
            bad[i] ^= 0x40;
            assert_eq!(verify(&bad, &key), None, "flip at {i}");
        }
        // Truncation, another key.
        assert_eq!(verify(&r[..r.len() - 1], &key), None);
        assert_eq!(verify(&r, &ChunkRangeKey::new(key.xorb, 3, 5)), None);
        assert_eq!(verify(&[], &key), None);
    }

    #[test]
    fn file_names_roundtrip() {
        assert_eq!(Segment::parse_file_name(&Segment::file_name(42)), Some(42));
        assert_eq!(Segment::parse_file_name("42.seg"), None);
        assert_eq!(Segment::parse_file_name("00000000x1.seg"), None);
    }
}
