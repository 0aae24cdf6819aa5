//! Shard (MDB) writer and reader (spec §5).
//!
//! Two forms exist:
//! * the **upload form** (what clients POST): header with `footer_size = 0`, file-info
//!   section + bookend, xorb-info section + bookend, nothing after;
//! * the **full form** (what the CAS stores and returns for global dedup): the same followed
//!   by the file, xorb and chunk lookup tables and a 200-byte v1 footer.
//!
//! [`Shard::parse`] reads both with strict bounds checks: every count is checked against the
//! bytes that remain before anything is allocated for it.

use crate::error::{EngineError, Result};
use crate::hash::XetHash;

/// The 32-byte tag at the start of every shard.
pub const SHARD_HEADER_TAG: [u8; 32] = [
    72, 70, 82, 101, 112, 111, 77, 101, 116, 97, 68, 97, 116, 97, 0, 85, 105, 103, 69, 106, 123,
    129, 87, 131, 165, 189, 217, 92, 205, 209, 74, 169,
];
/// Shard header version.
pub const SHARD_HEADER_VERSION: u64 = 2;
/// Shard header size.
pub const SHARD_HEADER_SIZE: usize = 48;
/// Shard footer size (version 1).
pub const SHARD_FOOTER_SIZE: usize = 200;
/// Shard footer version.
pub const SHARD_FOOTER_VERSION: u64 = 1;
/// Size of every file-info / xorb-info record.
pub const RECORD_SIZE: usize = 48;
/// File flag: verification entries follow the term entries.
pub const FILE_FLAG_WITH_VERIFICATION: u32 = 0x8000_0000;
/// File flag: one metadata-ext record (SHA-256) follows.
pub const FILE_FLAG_WITH_METADATA_EXT: u32 = 0x4000_0000;
/// Xorb chunk flag: the chunk is a global-dedup candidate.
pub const CHUNK_FLAG_GLOBAL_DEDUP: u32 = 0x8000_0000;

fn serr(msg: impl Into<String>) -> EngineError {
    EngineError::InvalidShard(msg.into())
}

/// One file-reconstruction term.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileTerm {
    /// Xorb holding the chunks.
    pub xorb_hash: XetHash,
    /// Uncompressed size of the term.
    pub unpacked_bytes: u32,
    /// First chunk index.
    pub chunk_start: u32,
    /// Exclusive end chunk index.
    pub chunk_end: u32,
}

/// One file in the file-info section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// File hash.
    pub file_hash: XetHash,
    /// Terms, in file order.
    pub terms: Vec<FileTerm>,
    /// Verification hashes, one per term (flag bit 31 set when non-empty or terms empty).
    /// When non-empty but shorter than `terms`, missing entries are written as zero.
    pub verification: Vec<XetHash>,
    /// SHA-256 in shard byte order (`XetHash::from_sha256_digest`).
    pub sha256: Option<XetHash>,
}

impl FileEntry {
    /// The `file_flags` this entry is written with.
    pub fn flags(&self) -> u32 {
        let mut f = 0;
        if self.has_verification() {
            f |= FILE_FLAG_WITH_VERIFICATION;
        }
        if self.sha256.is_some() {
            f |= FILE_FLAG_WITH_METADATA_EXT;
        }
        f
    }

    fn has_verification(&self) -> bool {
        !self.verification.is_empty() || self.terms.is_empty()
    }

    /// Number of 48-byte records this entry occupies.
    pub fn num_records(&self) -> usize {
        1 + self.terms.len()
            + if self.has_verification() {
                self.terms.len()
            } else {
                0
            }
            + usize::from(self.sha256.is_some())
    }

    /// Total uncompressed size (sum of the terms).
    pub fn size(&self) -> u64 {
        self.terms.iter().map(|t| u64::from(t.unpacked_bytes)).sum()
    }
}

/// One chunk of a xorb entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XorbChunkEntry {
    /// Chunk hash (or its HMAC when the shard footer carries a key).
    pub hash: XetHash,
    /// Cumulative uncompressed offset of the chunk in the xorb.
    pub unpacked_start: u32,
    /// Uncompressed size.
    pub unpacked_len: u32,
    /// Flags (bit 31 = global-dedup candidate).
    pub flags: u32,
}

/// One xorb in the xorb-info section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XorbEntry {
    /// Xorb hash.
    pub xorb_hash: XetHash,
    /// Chunks in xorb order.
    pub chunks: Vec<XorbChunkEntry>,
    /// Total uncompressed bytes.
    pub bytes_in_xorb: u32,
    /// Serialized bytes (written as 0 by clients).
    pub bytes_on_disk: u32,
}

/// Shard footer (§5.5, version 1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShardFooter {
    /// Footer version (1).
    pub version: u64,
    /// Offset of the file-info section.
    pub file_info_offset: u64,
    /// Offset of the xorb-info section.
    pub xorb_info_offset: u64,
    /// Offset of the file lookup table.
    pub file_lookup_offset: u64,
    /// Entries of the file lookup table.
    pub file_lookup_num_entry: u64,
    /// Offset of the xorb lookup table.
    pub xorb_lookup_offset: u64,
    /// Entries of the xorb lookup table.
    pub xorb_lookup_num_entry: u64,
    /// Offset of the chunk lookup table.
    pub chunk_lookup_offset: u64,
    /// Entries of the chunk lookup table.
    pub chunk_lookup_num_entry: u64,
    /// HMAC key of the chunk hashes (zero = none).
    pub chunk_hash_hmac_key: XetHash,
    /// Creation time (unix seconds).
    pub creation_timestamp: u64,
    /// Unix seconds after which the shard is not trusted for dedup.
    pub key_expiry: u64,
    /// Sum of the xorbs' `bytes_on_disk`.
    pub stored_bytes_on_disk: u64,
    /// Sum of the files' sizes.
    pub materialized_bytes: u64,
    /// Sum of the xorbs' `bytes_in_xorb`.
    pub stored_bytes: u64,
    /// Offset of the footer itself.
    pub footer_offset: u64,
}

impl ShardFooter {
    /// Serialized size.
    pub const SIZE: usize = SHARD_FOOTER_SIZE;

    /// Appends the 200 footer bytes.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        for v in [
            self.version,
            self.file_info_offset,
            self.xorb_info_offset,
            self.file_lookup_offset,
            self.file_lookup_num_entry,
            self.xorb_lookup_offset,
            self.xorb_lookup_num_entry,
            self.chunk_lookup_offset,
            self.chunk_lookup_num_entry,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(self.chunk_hash_hmac_key.as_bytes());
        out.extend_from_slice(&self.creation_timestamp.to_le_bytes());
        out.extend_from_slice(&self.key_expiry.to_le_bytes());
        out.extend_from_slice(&[0u8; 48]);
        for v in [
            self.stored_bytes_on_disk,
            self.materialized_bytes,
            self.stored_bytes,
            self.footer_offset,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }

    /// Parses 200 footer bytes (no consistency checks beyond the version).
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        if bytes.len() != Self::SIZE {
            return Err(serr(format!("shard footer must be {} bytes", Self::SIZE)));
        }
        let u = |i: usize| read_u64(bytes, i);
        let f = ShardFooter {
            version: u(0),
            file_info_offset: u(8),
            xorb_info_offset: u(16),
            file_lookup_offset: u(24),
            file_lookup_num_entry: u(32),
            xorb_lookup_offset: u(40),
            xorb_lookup_num_entry: u(48),
            chunk_lookup_offset: u(56),
            chunk_lookup_num_entry: u(64),
            chunk_hash_hmac_key: read_hash(bytes, 72),
            creation_timestamp: u(104),
            key_expiry: u(112),
            stored_bytes_on_disk: u(168),
            materialized_bytes: u(176),
            stored_bytes: u(184),
            footer_offset: u(192),
        };
        if f.version != SHARD_FOOTER_VERSION {
            return Err(serr(format!(
                "unsupported shard footer version {}",
                f.version
            )));
        }
        Ok(f)
    }
}

/// A shard.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Shard {
    /// Files.
    pub files: Vec<FileEntry>,
    /// Xorbs.
    pub xorbs: Vec<XorbEntry>,
    /// Footer (full form only).
    pub footer: Option<ShardFooter>,
}

fn read_u32(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

fn read_u64(b: &[u8], i: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[i..i + 8]);
    u64::from_le_bytes(a)
}

fn read_hash(b: &[u8], i: usize) -> XetHash {
    let mut a = [0u8; 32];
    a.copy_from_slice(&b[i..i + 32]);
    XetHash::from_bytes(a)
}

fn push_record(out: &mut Vec<u8>, hash: &XetHash, words: [u32; 4]) {
    out.extend_from_slice(hash.as_bytes());
    for w in words {
        out.extend_from_slice(&w.to_le_bytes());
    }
}

fn push_bookend(out: &mut Vec<u8>) {
    out.extend_from_slice(&[0xFF; 32]);
    out.extend_from_slice(&[0; 16]);
}

fn is_bookend(rec: &[u8]) -> bool {
    rec[..32].iter().all(|&b| b == 0xFF)
}

/// Items sorted by hash with duplicates (same hash) removed, keeping the first.
fn sorted_unique<T>(items: &[T], key: impl Fn(&T) -> XetHash) -> Vec<&T> {
    let mut v: Vec<&T> = items.iter().collect();
    v.sort_by_key(|t| key(t));
    v.dedup_by_key(|t| key(t));
    v
}

/// Record offsets of the written sections (relative to the shard start).
struct Layout {
    xorb_info_offset: usize,
    /// Record index (within the file section) of each written file header.
    file_records: Vec<(XetHash, u32)>,
    /// Record index (within the xorb section) of each written xorb header.
    xorb_records: Vec<(XetHash, u32)>,
}

impl Shard {
    fn write_sections(
        &self,
        out: &mut Vec<u8>,
        footer_size: u64,
        hmac_key: Option<&XetHash>,
    ) -> Layout {
        out.extend_from_slice(&SHARD_HEADER_TAG);
        out.extend_from_slice(&SHARD_HEADER_VERSION.to_le_bytes());
        out.extend_from_slice(&footer_size.to_le_bytes());

        let mut file_records = Vec::new();
        let mut rec = 0u32;
        for f in sorted_unique(&self.files, |f| f.file_hash) {
            file_records.push((f.file_hash, rec));
            rec += f.num_records() as u32;
            push_record(out, &f.file_hash, [f.flags(), f.terms.len() as u32, 0, 0]);
            for t in &f.terms {
                push_record(
                    out,
                    &t.xorb_hash,
                    [0, t.unpacked_bytes, t.chunk_start, t.chunk_end],
                );
            }
            if f.has_verification() {
                for i in 0..f.terms.len() {
                    let v = f.verification.get(i).copied().unwrap_or(XetHash::ZERO);
                    push_record(out, &v, [0; 4]);
                }
            }
            if let Some(sha) = &f.sha256 {
                push_record(out, sha, [0; 4]);
            }
        }
        push_bookend(out);

        let xorb_info_offset = out.len();
        let mut xorb_records = Vec::new();
        let mut rec = 0u32;
        for x in sorted_unique(&self.xorbs, |x| x.xorb_hash) {
            xorb_records.push((x.xorb_hash, rec));
            rec += 1 + x.chunks.len() as u32;
            push_record(
                out,
                &x.xorb_hash,
                [0, x.chunks.len() as u32, x.bytes_in_xorb, x.bytes_on_disk],
            );
            for c in &x.chunks {
                let h = match hmac_key {
                    Some(k) => c.hash.hmac(k),
                    None => c.hash,
                };
                push_record(out, &h, [c.unpacked_start, c.unpacked_len, c.flags, 0]);
            }
        }
        push_bookend(out);
        Layout {
            xorb_info_offset,
            file_records,
            xorb_records,
        }
    }

    /// Upload form (§5.6): sorted files and xorbs, header footer_size 0, no lookup tables.
    /// Files (xorbs) with the same hash are written once (the first one).
    pub fn to_upload_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_sections(&mut out, 0, None);
        out
    }

    /// Full form with lookup tables and a v1 footer (what the CAS returns for global dedup).
    /// With `hmac_key` (and it is not zero), chunk entries hold `chunk_hash.hmac(key)` and the
    /// footer carries the key.
    pub fn to_full_bytes(
        &self,
        hmac_key: Option<XetHash>,
        creation_timestamp: u64,
        key_expiry: u64,
    ) -> Vec<u8> {
        let key = hmac_key.filter(|k| *k != XetHash::ZERO);
        let mut out = Vec::new();
        let layout = self.write_sections(&mut out, SHARD_FOOTER_SIZE as u64, key.as_ref());

        let file_lookup_offset = out.len();
        let mut ft: Vec<(u64, u32)> = layout
            .file_records
            .iter()
            .map(|(h, r)| (h.truncated(), *r))
            .collect();
        ft.sort_by_key(|e| e.0);
        for (k, r) in &ft {
            out.extend_from_slice(&k.to_le_bytes());
            out.extend_from_slice(&r.to_le_bytes());
        }

        let xorb_lookup_offset = out.len();
        let mut xt: Vec<(u64, u32)> = layout
            .xorb_records
            .iter()
            .map(|(h, r)| (h.truncated(), *r))
            .collect();
        xt.sort_by_key(|e| e.0);
        for (k, r) in &xt {
            out.extend_from_slice(&k.to_le_bytes());
            out.extend_from_slice(&r.to_le_bytes());
        }

        let chunk_lookup_offset = out.len();
        let xorbs = sorted_unique(&self.xorbs, |x| x.xorb_hash);
        let mut ct: Vec<(u64, u32, u32)> = Vec::new();
        for (x, (_, rec)) in xorbs.iter().zip(&layout.xorb_records) {
            for (i, c) in x.chunks.iter().enumerate() {
                let h = match &key {
                    Some(k) => c.hash.hmac(k),
                    None => c.hash,
                };
                ct.push((h.truncated(), *rec, i as u32));
            }
        }
        ct.sort_by_key(|e| e.0);
        for (k, r, i) in &ct {
            out.extend_from_slice(&k.to_le_bytes());
            out.extend_from_slice(&r.to_le_bytes());
            out.extend_from_slice(&i.to_le_bytes());
        }

        let footer_offset = out.len();
        let footer = ShardFooter {
            version: SHARD_FOOTER_VERSION,
            file_info_offset: SHARD_HEADER_SIZE as u64,
            xorb_info_offset: layout.xorb_info_offset as u64,
            file_lookup_offset: file_lookup_offset as u64,
            file_lookup_num_entry: ft.len() as u64,
            xorb_lookup_offset: xorb_lookup_offset as u64,
            xorb_lookup_num_entry: xt.len() as u64,
            chunk_lookup_offset: chunk_lookup_offset as u64,
            chunk_lookup_num_entry: ct.len() as u64,
            chunk_hash_hmac_key: key.unwrap_or(XetHash::ZERO),
            creation_timestamp,
            key_expiry,
            stored_bytes_on_disk: xorbs.iter().map(|x| u64::from(x.bytes_on_disk)).sum(),
            materialized_bytes: sorted_unique(&self.files, |f| f.file_hash)
                .iter()
                .map(|f| f.size())
                .sum(),
            stored_bytes: xorbs.iter().map(|x| u64::from(x.bytes_in_xorb)).sum(),
            footer_offset: footer_offset as u64,
        };
        footer.write_to(&mut out);
        out
    }

    /// Parses either form.
    pub fn parse(bytes: &[u8]) -> Result<Shard> {
        if bytes.len() < SHARD_HEADER_SIZE {
            return Err(serr("shorter than the shard header"));
        }
        if bytes[..32] != SHARD_HEADER_TAG {
            return Err(serr("bad shard header tag"));
        }
        let version = read_u64(bytes, 32);
        if version != SHARD_HEADER_VERSION {
            return Err(serr(format!("unsupported shard header version {version}")));
        }
        let footer_size = read_u64(bytes, 40);
        let body_end = match footer_size {
            0 => bytes.len(),
            200 => {
                if bytes.len() < SHARD_HEADER_SIZE + SHARD_FOOTER_SIZE {
                    return Err(serr("shard too short for its footer"));
                }
                bytes.len() - SHARD_FOOTER_SIZE
            }
            other => return Err(serr(format!("unsupported shard footer size {other}"))),
        };

        let mut r = RecordReader {
            buf: &bytes[..body_end],
            pos: SHARD_HEADER_SIZE,
        };
        let mut files = Vec::new();
        let mut file_records = Vec::new();
        let mut rec_index = 0u64;
        loop {
            let rec = r.record("file section")?;
            if is_bookend(rec) {
                break;
            }
            let file_hash = read_hash(rec, 0);
            let flags = read_u32(rec, 32);
            let n = read_u32(rec, 36) as usize;
            let with_ver = flags & FILE_FLAG_WITH_VERIFICATION != 0;
            let with_ext = flags & FILE_FLAG_WITH_METADATA_EXT != 0;
            let needed = n
                .checked_mul(if with_ver { 2 } else { 1 })
                .and_then(|v| v.checked_add(usize::from(with_ext)))
                .ok_or_else(|| serr("file entry count overflows"))?;
            if needed > r.remaining_records() {
                return Err(serr(format!(
                    "file entry declares {n} terms, more than the shard holds"
                )));
            }
            let mut terms = Vec::with_capacity(n);
            for _ in 0..n {
                let t = r.record("file terms")?;
                terms.push(FileTerm {
                    xorb_hash: read_hash(t, 0),
                    unpacked_bytes: read_u32(t, 36),
                    chunk_start: read_u32(t, 40),
                    chunk_end: read_u32(t, 44),
                });
            }
            let mut verification = Vec::new();
            if with_ver {
                verification.reserve_exact(n);
                for _ in 0..n {
                    verification.push(read_hash(r.record("verification")?, 0));
                }
            }
            let sha256 = if with_ext {
                Some(read_hash(r.record("metadata ext")?, 0))
            } else {
                None
            };
            file_records.push((file_hash, rec_index));
            rec_index += 1 + needed as u64;
            files.push(FileEntry {
                file_hash,
                terms,
                verification,
                sha256,
            });
        }

        let xorb_info_offset = r.pos;
        let mut xorbs = Vec::new();
        let mut xorb_records = Vec::new();
        let mut rec_index = 0u64;
        loop {
            let rec = r.record("xorb section")?;
            if is_bookend(rec) {
                break;
            }
            let n = read_u32(rec, 36) as usize;
            if n > r.remaining_records() {
                return Err(serr(format!(
                    "xorb entry declares {n} chunks, more than the shard holds"
                )));
            }
            let mut chunks = Vec::with_capacity(n);
            for _ in 0..n {
                let c = r.record("xorb chunks")?;
                chunks.push(XorbChunkEntry {
                    hash: read_hash(c, 0),
                    unpacked_start: read_u32(c, 32),
                    unpacked_len: read_u32(c, 36),
                    flags: read_u32(c, 40),
                });
            }
            xorb_records.push((read_hash(rec, 0), rec_index, n));
            rec_index += 1 + n as u64;
            xorbs.push(XorbEntry {
                xorb_hash: read_hash(rec, 0),
                chunks,
                bytes_in_xorb: read_u32(rec, 40),
                bytes_on_disk: read_u32(rec, 44),
            });
        }
        let sections_end = r.pos;

        let footer = if footer_size == 0 {
            if sections_end != bytes.len() {
                return Err(serr(
                    "trailing bytes after the xorb section of an upload-form shard",
                ));
            }
            None
        } else {
            let f = ShardFooter::parse(&bytes[body_end..])?;
            check_full_form(
                bytes,
                &f,
                xorb_info_offset,
                sections_end,
                &file_records,
                &xorb_records,
            )?;
            Some(f)
        };
        Ok(Shard {
            files,
            xorbs,
            footer,
        })
    }
}

/// Validates the lookup tables and footer offsets of a full-form shard.
fn check_full_form(
    bytes: &[u8],
    f: &ShardFooter,
    xorb_info_offset: usize,
    sections_end: usize,
    file_records: &[(XetHash, u64)],
    xorb_records: &[(XetHash, u64, usize)],
) -> Result<()> {
    let footer_offset = (bytes.len() - SHARD_FOOTER_SIZE) as u64;
    if f.footer_offset != footer_offset
        || f.file_info_offset != SHARD_HEADER_SIZE as u64
        || f.xorb_info_offset != xorb_info_offset as u64
        || f.file_lookup_offset != sections_end as u64
    {
        return Err(serr("shard footer offsets do not match the sections"));
    }
    let table = |off: u64, n: u64, size: u64, next: u64, what: &str| -> Result<()> {
        let end = n
            .checked_mul(size)
            .and_then(|l| l.checked_add(off))
            .ok_or_else(|| serr(format!("{what} lookup table size overflows")))?;
        if end != next {
            return Err(serr(format!("{what} lookup table does not fit its place")));
        }
        Ok(())
    };
    table(
        f.file_lookup_offset,
        f.file_lookup_num_entry,
        12,
        f.xorb_lookup_offset,
        "file",
    )?;
    table(
        f.xorb_lookup_offset,
        f.xorb_lookup_num_entry,
        12,
        f.chunk_lookup_offset,
        "xorb",
    )?;
    table(
        f.chunk_lookup_offset,
        f.chunk_lookup_num_entry,
        16,
        footer_offset,
        "chunk",
    )?;

    // File and xorb tables: every entry points at a header record whose hash has the key.
    let check12 = |off: u64,
                   n: u64,
                   recs: &mut dyn Iterator<Item = (XetHash, u64)>,
                   what: &str|
     -> Result<()> {
        let recs: std::collections::HashMap<u64, XetHash> = recs.map(|(h, i)| (i, h)).collect();
        let mut prev = 0u64;
        for e in 0..n as usize {
            let p = off as usize + 12 * e;
            let key = read_u64(bytes, p);
            let idx = u64::from(read_u32(bytes, p + 8));
            if key < prev {
                return Err(serr(format!("{what} lookup table not sorted")));
            }
            prev = key;
            match recs.get(&idx) {
                Some(h) if h.truncated() == key => {}
                _ => return Err(serr(format!("{what} lookup entry {e} points nowhere"))),
            }
        }
        Ok(())
    };
    check12(
        f.file_lookup_offset,
        f.file_lookup_num_entry,
        &mut file_records.iter().copied(),
        "file",
    )?;
    check12(
        f.xorb_lookup_offset,
        f.xorb_lookup_num_entry,
        &mut xorb_records.iter().map(|&(h, i, _)| (h, i)),
        "xorb",
    )?;
    let xorb_sizes: std::collections::HashMap<u64, usize> =
        xorb_records.iter().map(|&(_, i, n)| (i, n)).collect();
    let mut prev = 0u64;
    for e in 0..f.chunk_lookup_num_entry as usize {
        let p = f.chunk_lookup_offset as usize + 16 * e;
        let key = read_u64(bytes, p);
        let xi = u64::from(read_u32(bytes, p + 8));
        let ci = read_u32(bytes, p + 12) as usize;
        if key < prev {
            return Err(serr("chunk lookup table not sorted"));
        }
        prev = key;
        match xorb_sizes.get(&xi) {
            Some(&n) if ci < n => {
                let rec = xorb_info_offset + RECORD_SIZE * (xi as usize + 1 + ci);
                if read_hash(bytes, rec).truncated() != key {
                    return Err(serr(format!("chunk lookup entry {e} key mismatch")));
                }
            }
            _ => return Err(serr(format!("chunk lookup entry {e} points nowhere"))),
        }
    }
    Ok(())
}

/// Reads 48-byte records with bounds checks.
struct RecordReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> RecordReader<'a> {
    fn record(&mut self, what: &str) -> Result<&'a [u8]> {
        if self.buf.len() - self.pos < RECORD_SIZE {
            return Err(serr(format!("truncated shard ({what})")));
        }
        let s = &self.buf[self.pos..self.pos + RECORD_SIZE];
        self.pos += RECORD_SIZE;
        Ok(s)
    }
    fn remaining_records(&self) -> usize {
        (self.buf.len() - self.pos) / RECORD_SIZE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::chunk_hash;

    fn h(s: &str) -> XetHash {
        chunk_hash(s.as_bytes())
    }

    fn sample() -> Shard {
        let x1 = XorbEntry {
            xorb_hash: h("x1"),
            chunks: (0..5)
                .map(|i| XorbChunkEntry {
                    hash: h(&format!("c{i}")),
                    unpacked_start: i * 100,
                    unpacked_len: 100,
                    flags: if i == 2 { CHUNK_FLAG_GLOBAL_DEDUP } else { 0 },
                })
                .collect(),
            bytes_in_xorb: 500,
            bytes_on_disk: 0,
        };
        let x2 = XorbEntry {
            xorb_hash: h("x2"),
            chunks: vec![XorbChunkEntry {
                hash: h("d0"),
                unpacked_start: 0,
                unpacked_len: 7,
                flags: 0,
            }],
            bytes_in_xorb: 7,
            bytes_on_disk: 15,
        };
        let t = |x: &XorbEntry, a: u32, b: u32| FileTerm {
            xorb_hash: x.xorb_hash,
            unpacked_bytes: (b - a) * 100,
            chunk_start: a,
            chunk_end: b,
        };
        let files = vec![
            FileEntry {
                file_hash: h("f1"),
                terms: vec![t(&x1, 0, 3), t(&x1, 1, 2)],
                verification: vec![h("v1"), h("v2")],
                sha256: None,
            },
            FileEntry {
                file_hash: h("f2"),
                terms: vec![t(&x2, 0, 1)],
                verification: vec![h("v3")],
                sha256: Some(h("sha")),
            },
            FileEntry {
                file_hash: XetHash::ZERO,
                terms: vec![],
                verification: vec![],
                sha256: None,
            },
            FileEntry {
                file_hash: h("f3"),
                terms: vec![t(&x1, 3, 5)],
                verification: vec![],
                sha256: None,
            },
        ];
        Shard {
            files,
            xorbs: vec![x2, x1],
            footer: None,
        }
    }

    fn sorted(mut s: Shard) -> Shard {
        s.files.sort_by_key(|f| f.file_hash);
        s.xorbs.sort_by_key(|x| x.xorb_hash);
        s.footer = None;
        s
    }

    #[test]
    fn upload_roundtrip() {
        let s = sample();
        let b = s.to_upload_bytes();
        // files: 5 + 4 + 1 + 2, bookend, xorbs: 6 + 2, bookend
        let records = 12 + 1 + 8 + 1;
        assert_eq!(b.len(), 48 + 48 * records);
        assert_eq!(read_u64(&b, 40), 0);
        let p = Shard::parse(&b).unwrap();
        assert_eq!(p, sorted(s));
        // every strict prefix fails
        for cut in [0, 47, 48, 95, b.len() - 48, b.len() - 1] {
            assert!(Shard::parse(&b[..cut]).is_err(), "cut {cut}");
        }
        // trailing garbage fails
        let mut t = b.clone();
        t.push(0);
        assert!(Shard::parse(&t).is_err());
    }

    #[test]
    fn full_roundtrip_with_and_without_hmac() {
        let s = sample();
        for key in [None, Some(h("key"))] {
            let b = s.to_full_bytes(key, 1234, u64::MAX);
            let p = Shard::parse(&b).unwrap();
            let f = p.footer.clone().unwrap();
            assert_eq!(f.footer_offset as usize, b.len() - 200);
            assert_eq!(f.creation_timestamp, 1234);
            assert_eq!(f.key_expiry, u64::MAX);
            assert_eq!(f.file_lookup_num_entry, 4);
            assert_eq!(f.xorb_lookup_num_entry, 2);
            assert_eq!(f.chunk_lookup_num_entry, 6);
            assert_eq!(f.stored_bytes, 507);
            assert_eq!(f.stored_bytes_on_disk, 15);
            assert_eq!(f.materialized_bytes, 300 + 100 + 100 + 200);
            assert_eq!(f.chunk_hash_hmac_key, key.unwrap_or(XetHash::ZERO));
            let mut expect = sorted(s.clone());
            if let Some(k) = &key {
                for x in &mut expect.xorbs {
                    for c in &mut x.chunks {
                        c.hash = c.hash.hmac(k);
                    }
                }
            }
            let mut got = p.clone();
            got.footer = None;
            assert_eq!(got, expect);
            // Upload bytes are the prefix of the full form (except footer_size).
            let up = s.to_upload_bytes();
            if key.is_none() {
                assert_eq!(&b[48..up.len()], &up[48..]);
            }
            // Corrupting any lookup table byte is detected (keys or indices).
            for pos in f.file_lookup_offset as usize..f.footer_offset as usize {
                let mut bad = b.clone();
                bad[pos] ^= 0x80;
                assert!(Shard::parse(&bad).is_err(), "byte {pos}");
            }
        }
    }

    #[test]
    fn huge_counts_are_errors() {
        let mut b = sample().to_upload_bytes();
        // first file header's num_entries -> u32::MAX
        b[48 + 36..48 + 40].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(Shard::parse(&b).is_err());
        let mut b = Shard::default().to_full_bytes(None, 0, 0);
        let n = b.len();
        // chunk table count -> huge
        b[n - 200 + 64..n - 200 + 72].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(Shard::parse(&b).is_err());
    }

    #[test]
    fn duplicates_written_once() {
        let mut s = sample();
        s.files.push(s.files[0].clone());
        s.xorbs.push(s.xorbs[0].clone());
        assert_eq!(s.to_upload_bytes(), sample().to_upload_bytes());
    }
}
