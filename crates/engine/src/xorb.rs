//! Xorb serialization and parsing (spec §4).
//!
//! A xorb is a run of chunk records (8-byte [`ChunkHeader`] + payload), optionally followed
//! by a footer (`XorbObjectInfo`, §4.5) whose first bytes are `XETBLOB`. Clients upload the
//! chunk records only; the CAS stores them with a v1 footer.

use crate::compression::{self, CompressionScheme};
use crate::constants::{COMPRESSION_SCHEME_RETEST_INTERVAL, MAX_XORB_BYTES, MAX_XORB_CHUNKS};
use crate::error::{EngineError, Result};
use crate::hash::{XetHash, chunk_hash, xorb_hash};

/// Largest `uncompressed_length` a chunk header may declare.
pub const MAX_CHUNK_UNCOMPRESSED_LEN: u32 = 131_072;
/// Largest `compressed_length` a chunk header may declare.
pub const MAX_CHUNK_COMPRESSED_LEN: u32 = 262_144;

const FOOTER_IDENT: &[u8; 7] = b"XETBLOB";
const HASHES_IDENT: &[u8; 7] = b"XBLBHSH";
const BOUNDARIES_IDENT: &[u8; 7] = b"XBLBBND";

fn xerr(msg: impl Into<String>) -> EngineError {
    EngineError::InvalidXorb(msg.into())
}

fn u24(b: &[u8]) -> u32 {
    u32::from(b[0]) | (u32::from(b[1]) << 8) | (u32::from(b[2]) << 16)
}

/// 8-byte chunk record header (spec §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkHeader {
    /// Payload bytes after the header.
    pub compressed_len: u32,
    /// Compression scheme of the payload.
    pub scheme: CompressionScheme,
    /// Decoded size.
    pub uncompressed_len: u32,
}

impl ChunkHeader {
    /// Serialized size.
    pub const SIZE: usize = 8;

    /// Parses and validates a header from the first 8 bytes of `bytes` (version 0, known
    /// scheme, reader size limits).
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        if bytes.len() < Self::SIZE {
            return Err(xerr(format!(
                "truncated chunk header ({} bytes)",
                bytes.len()
            )));
        }
        if bytes[0] != 0 {
            return Err(xerr(format!(
                "unsupported chunk header version {}",
                bytes[0]
            )));
        }
        let compressed_len = u24(&bytes[1..4]);
        let scheme = CompressionScheme::try_from(bytes[4])?;
        let uncompressed_len = u24(&bytes[5..8]);
        if uncompressed_len > MAX_CHUNK_UNCOMPRESSED_LEN {
            return Err(xerr(format!(
                "chunk uncompressed length {uncompressed_len} exceeds {MAX_CHUNK_UNCOMPRESSED_LEN}"
            )));
        }
        if compressed_len > MAX_CHUNK_COMPRESSED_LEN {
            return Err(xerr(format!(
                "chunk compressed length {compressed_len} exceeds {MAX_CHUNK_COMPRESSED_LEN}"
            )));
        }
        Ok(Self {
            compressed_len,
            scheme,
            uncompressed_len,
        })
    }

    /// Appends the 8 header bytes. Lengths are written as u24 (callers keep them < 2^24).
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let c = self.compressed_len.to_le_bytes();
        let u = self.uncompressed_len.to_le_bytes();
        out.extend_from_slice(&[0, c[0], c[1], c[2], self.scheme as u8, u[0], u[1], u[2]]);
    }
}

/// Where one chunk sits in a serialized xorb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XorbChunk {
    /// Chunk hash.
    pub hash: XetHash,
    /// Decoded size.
    pub uncompressed_len: u32,
    /// Offset of the chunk header in the serialized xorb.
    pub byte_start: u32,
    /// Exclusive end of its payload.
    pub byte_end: u32,
    /// Cumulative uncompressed offset.
    pub unpacked_start: u64,
}

/// Incremental xorb serializer (upload form, no footer).
///
/// Chunks are appended either with an explicit scheme ([`XorbBuilder::add_chunk`]) or with
/// the "auto" policy of spec §4.3 ([`XorbBuilder::add_chunk_auto`]), for which the builder
/// keeps the current block's scheme. Callers must check [`XorbBuilder::would_overflow`]
/// before adding; the builder itself does not refuse chunks.
#[derive(Debug, Clone, Default)]
pub struct XorbBuilder {
    data: Vec<u8>,
    chunks: Vec<XorbChunk>,
    uncompressed: u64,
    policy: AutoScheme,
}

/// First allocation of a xorb builder's buffer (see [`XorbBuilder`]'s `reserve_for`).
const SMALL_XORB_RESERVE: usize = 1 << 20;

/// Whether a xorb holding `bytes` uncompressed bytes in `count` chunks must be cut before a
/// chunk of `len` bytes (spec §4.4: 64 MiB, 8192 chunks).
pub fn xorb_would_overflow(bytes: u64, count: usize, len: usize) -> bool {
    bytes + len as u64 > MAX_XORB_BYTES as u64 || count + 1 > MAX_XORB_CHUNKS
}

/// The "auto" compression policy of spec §4.3 as a state machine: a new block of
/// `COMPRESSION_SCHEME_RETEST_INTERVAL` chunks starts at a xorb's first chunk, at every
/// chunk with `file_start` (the first chunk a file contributes to the xorb) and after 32
/// chunks of the current block; the block's scheme is predicted from its first chunk.
/// A fresh value is the state at the start of a xorb.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AutoScheme {
    /// Chunks added to the current block (0 = no block open).
    block_pos: usize,
    block_scheme: Option<CompressionScheme>,
}

impl AutoScheme {
    /// The scheme of the next chunk `data` of the xorb; advances the state.
    pub fn next(&mut self, data: &[u8], file_start: bool) -> CompressionScheme {
        let scheme = match self.block_scheme {
            Some(s) if !file_start && self.block_pos < COMPRESSION_SCHEME_RETEST_INTERVAL => s,
            _ => {
                let s = if compression::predict_bg4(data) {
                    CompressionScheme::ByteGrouping4Lz4
                } else {
                    CompressionScheme::Lz4
                };
                self.block_scheme = Some(s);
                self.block_pos = 0;
                s
            }
        };
        self.block_pos += 1;
        scheme
    }
}

impl XorbBuilder {
    /// Empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one chunk (hash = chunk_hash(data)) compressed with `scheme` (fallback
    /// applied). Chunks are at most [`crate::constants::MAX_CHUNK_SIZE`] bytes.
    pub fn add_chunk(&mut self, hash: XetHash, data: &[u8], scheme: CompressionScheme) {
        // LZ4's worst case is slightly larger than its input before the raw fallback.
        self.reserve_for(ChunkHeader::SIZE + data.len() + data.len() / 255 + 64);
        let byte_start = self.data.len();
        self.data.extend_from_slice(&[0; ChunkHeader::SIZE]);
        let used = compression::compress_chunk(scheme, data, &mut self.data);
        let payload_len = self.data.len() - byte_start - ChunkHeader::SIZE;
        let mut header = Vec::with_capacity(ChunkHeader::SIZE);
        ChunkHeader {
            compressed_len: payload_len as u32,
            scheme: used,
            uncompressed_len: data.len() as u32,
        }
        .write_to(&mut header);
        self.data[byte_start..byte_start + ChunkHeader::SIZE].copy_from_slice(&header);
        self.chunks.push(XorbChunk {
            hash,
            uncompressed_len: data.len() as u32,
            byte_start: byte_start as u32,
            byte_end: self.data.len() as u32,
            unpacked_start: self.uncompressed,
        });
        self.uncompressed += data.len() as u64;
    }

    /// Appends one chunk with the "auto" policy (see [`AutoScheme`]).
    pub fn add_chunk_auto(&mut self, hash: XetHash, data: &[u8], file_start: bool) {
        let scheme = self.policy.next(data, file_start);
        self.add_chunk(hash, data, scheme);
    }

    /// Appends a chunk compressed by the caller: `payload` is what
    /// [`compression::compress_chunk`] wrote for it and `used` the scheme it returned.
    /// Lets callers compress chunks in parallel and append them in order.
    pub fn add_compressed(
        &mut self,
        hash: XetHash,
        uncompressed_len: usize,
        used: CompressionScheme,
        payload: &[u8],
    ) {
        self.reserve_for(ChunkHeader::SIZE + payload.len());
        let byte_start = self.data.len();
        ChunkHeader {
            compressed_len: payload.len() as u32,
            scheme: used,
            uncompressed_len: uncompressed_len as u32,
        }
        .write_to(&mut self.data);
        self.data.extend_from_slice(payload);
        self.chunks.push(XorbChunk {
            hash,
            uncompressed_len: uncompressed_len as u32,
            byte_start: byte_start as u32,
            byte_end: self.data.len() as u32,
            unpacked_start: self.uncompressed,
        });
        self.uncompressed += uncompressed_len as u64;
    }

    /// The auto policy's state (to plan the schemes of upcoming chunks).
    pub fn policy(&self) -> AutoScheme {
        self.policy
    }

    /// Replaces the auto policy's state (after chunks planned with [`XorbBuilder::policy`]
    /// were appended with [`XorbBuilder::add_compressed`]).
    pub fn set_policy(&mut self, policy: AutoScheme) {
        self.policy = policy;
    }

    /// Number of chunks.
    pub fn num_chunks(&self) -> usize {
        self.chunks.len()
    }

    /// Total uncompressed bytes.
    pub fn uncompressed_len(&self) -> u64 {
        self.uncompressed
    }

    /// Serialized bytes so far.
    pub fn serialized_len(&self) -> usize {
        self.data.len()
    }

    /// True when adding a chunk of `len` bytes would exceed MAX_XORB_BYTES / MAX_XORB_CHUNKS.
    pub fn would_overflow(&self, len: usize) -> bool {
        xorb_would_overflow(self.uncompressed, self.chunks.len(), len)
    }

    /// Positions of the chunks added so far (index = chunk index in this xorb).
    pub fn chunks(&self) -> &[XorbChunk] {
        &self.chunks
    }

    /// True when no chunk has been added.
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// An empty builder that serializes into `buf` (cleared; its capacity is reused, e.g.
    /// the buffer of a xorb already uploaded, so that the next one is not page-faulted in
    /// again).
    pub fn with_buffer(mut buf: Vec<u8>) -> Self {
        buf.clear();
        XorbBuilder {
            data: buf,
            ..Default::default()
        }
    }

    /// The builder's buffer, for reuse (its content is discarded).
    pub fn into_buffer(self) -> Vec<u8> {
        self.data
    }

    /// Makes room for `extra` more bytes. The buffer starts at [`SMALL_XORB_RESERVE`]
    /// (most xorbs of small objects fit) and past that jumps straight to the largest
    /// serialized xorb: growing by doubling would copy a big xorb's bytes about twice more
    /// and touch up to twice the memory. Pages never written are not resident.
    fn reserve_for(&mut self, extra: usize) {
        let need = self.data.len() + extra;
        if need > self.data.capacity() {
            let target = if need <= SMALL_XORB_RESERVE {
                SMALL_XORB_RESERVE
            } else {
                need.max(MAX_XORB_BYTES + MAX_XORB_CHUNKS * ChunkHeader::SIZE)
            };
            self.data.reserve_exact(target - self.data.len());
        }
    }

    /// Finishes the xorb (computes its hash).
    pub fn finish(self) -> SerializedXorb {
        let pairs: Vec<(XetHash, u64)> = self
            .chunks
            .iter()
            .map(|c| (c.hash, u64::from(c.uncompressed_len)))
            .collect();
        SerializedXorb {
            hash: xorb_hash(&pairs),
            data: self.data,
            chunks: self.chunks,
        }
    }
}

/// A serialized xorb (upload form: chunk records, no footer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerializedXorb {
    /// Xorb hash.
    pub hash: XetHash,
    /// Chunk records.
    pub data: Vec<u8>,
    /// Chunk positions.
    pub chunks: Vec<XorbChunk>,
}

impl SerializedXorb {
    /// Footer (spec §4.5, version 1) for this xorb, including the trailing info_length.
    pub fn footer(&self) -> Vec<u8> {
        write_footer_v1(&self.hash, &self.chunks)
    }

    /// data ++ footer (the storage form).
    pub fn with_footer(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data.len() + 96 + 40 * self.chunks.len());
        out.extend_from_slice(&self.data);
        out.extend_from_slice(&self.footer());
        out
    }
}

/// Writes a v1 footer (+ info_length) for chunks with the given positions.
pub fn write_footer_v1(hash: &XetHash, chunks: &[XorbChunk]) -> Vec<u8> {
    let n = chunks.len();
    let n32 = n as u32;
    let info_len = 92 + 40 * n;
    let mut out = Vec::with_capacity(info_len + 4);
    out.extend_from_slice(FOOTER_IDENT);
    out.push(1);
    out.extend_from_slice(hash.as_bytes());
    out.extend_from_slice(HASHES_IDENT);
    out.push(0);
    out.extend_from_slice(&n32.to_le_bytes());
    for c in chunks {
        out.extend_from_slice(c.hash.as_bytes());
    }
    out.extend_from_slice(BOUNDARIES_IDENT);
    out.push(1);
    out.extend_from_slice(&n32.to_le_bytes());
    for c in chunks {
        out.extend_from_slice(&c.byte_end.to_le_bytes());
    }
    for c in chunks {
        let end = c.unpacked_start + u64::from(c.uncompressed_len);
        out.extend_from_slice(&(end as u32).to_le_bytes());
    }
    let boundary_off = 40 + 8 * n32;
    let hashes_off = 12 + 32 * n32 + boundary_off;
    out.extend_from_slice(&n32.to_le_bytes());
    out.extend_from_slice(&hashes_off.to_le_bytes());
    out.extend_from_slice(&boundary_off.to_le_bytes());
    out.extend_from_slice(&[0u8; 16]);
    debug_assert_eq!(out.len(), info_len);
    out.extend_from_slice(&(info_len as u32).to_le_bytes());
    out
}

/// Serializes whole chunks with the "auto" policy of spec §4.3: blocks of 32 chunks starting
/// at each file boundary (indices into `chunks` where a new file's chunks begin; 0 implied).
pub fn serialize_xorb(chunks: &[&[u8]], file_starts: &[usize]) -> SerializedXorb {
    let mut b = XorbBuilder::new();
    for (i, data) in chunks.iter().enumerate() {
        let file_start = file_starts.contains(&i);
        b.add_chunk_auto(chunk_hash(data), data, file_start);
    }
    b.finish()
}

/// A parsed xorb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedXorb {
    /// Chunks (hashes from the footer, else `XetHash::ZERO` until verified).
    pub chunks: Vec<XorbChunk>,
    /// End of chunk records.
    pub data_len: usize,
    /// Footer if present.
    pub footer: Option<XorbFooter>,
}

/// Xorb footer contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XorbFooter {
    /// Xorb hash.
    pub xorb_hash: XetHash,
    /// Chunk hashes.
    pub chunk_hashes: Vec<XetHash>,
    /// End byte offset of each chunk record in the serialized xorb.
    pub boundaries: Vec<u32>,
    /// Cumulative uncompressed end offset of each chunk.
    pub unpacked_offsets: Vec<u32>,
}

/// Bounds-checked reader over a byte slice.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if self.remaining() < n {
            return Err(xerr(format!("truncated xorb footer ({what})")));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        let s = self.take(4, what)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn hash(&mut self, what: &str) -> Result<XetHash> {
        let s = self.take(32, what)?;
        let mut b = [0u8; 32];
        b.copy_from_slice(s);
        Ok(XetHash::from_bytes(b))
    }
    fn ident(&mut self, ident: &[u8; 7]) -> Result<()> {
        let s = self.take(7, "ident")?;
        if s != ident {
            return Err(xerr(format!(
                "expected footer ident {}",
                String::from_utf8_lossy(ident)
            )));
        }
        Ok(())
    }
    /// Reads a u32 count whose `item_size`-byte items must fit in the remaining bytes.
    fn count(&mut self, item_size: usize, what: &str) -> Result<usize> {
        let n = self.u32(what)? as usize;
        if n > MAX_XORB_CHUNKS || n.saturating_mul(item_size) > self.remaining() {
            return Err(xerr(format!("footer {what} {n} does not fit")));
        }
        Ok(n)
    }
    fn u32s(&mut self, n: usize, what: &str) -> Result<Vec<u32>> {
        let s = self.take(4 * n, what)?;
        Ok(s.chunks_exact(4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            .collect())
    }
    fn hashes(&mut self, n: usize, what: &str) -> Result<Vec<XetHash>> {
        let s = self.take(32 * n, what)?;
        Ok(s.chunks_exact(32)
            .map(|w| {
                let mut b = [0u8; 32];
                b.copy_from_slice(w);
                XetHash::from_bytes(b)
            })
            .collect())
    }
}

/// Parses a footer (`bytes` starts at `XETBLOB` and runs to the end of the xorb).
/// `chunks` are the records parsed before it (used for v0's unpacked offsets).
fn parse_footer(bytes: &[u8], chunks: &[XorbChunk]) -> Result<XorbFooter> {
    if bytes.len() < 4 {
        return Err(xerr("truncated xorb footer"));
    }
    let (body, len_bytes) = bytes.split_at(bytes.len() - 4);
    let info_len = u32::from_le_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
    if info_len as usize != body.len() {
        return Err(xerr(format!(
            "xorb footer info_length {info_len} does not match its {} bytes",
            body.len()
        )));
    }
    let mut r = Reader { buf: body, pos: 0 };
    r.ident(FOOTER_IDENT)?;
    let version = r.u8("version")?;
    let xorb_hash = r.hash("xorb hash")?;
    let footer = match version {
        1 => {
            r.ident(HASHES_IDENT)?;
            let hv = r.u8("hashes version")?;
            if hv != 0 {
                return Err(xerr(format!("unsupported footer hashes version {hv}")));
            }
            let n = r.count(32, "chunk count")?;
            let chunk_hashes = r.hashes(n, "chunk hashes")?;
            r.ident(BOUNDARIES_IDENT)?;
            let bv = r.u8("boundaries version")?;
            let n2 = r.count(if bv == 0 { 4 } else { 8 }, "boundary count")?;
            if n2 != n {
                return Err(xerr("footer chunk counts disagree"));
            }
            let boundaries = r.u32s(n, "boundaries")?;
            let unpacked_offsets = match bv {
                0 => cumulative_ends(chunks),
                1 => r.u32s(n, "unpacked offsets")?,
                other => {
                    return Err(xerr(format!(
                        "unsupported footer boundaries version {other}"
                    )));
                }
            };
            let n3 = r.u32("chunk count")? as usize;
            let hashes_off = r.u32("hashes offset")?;
            let boundary_off = r.u32("boundary offset")?;
            let n32 = n as u32;
            let expect_boundary = if bv == 0 { 40 + 4 * n32 } else { 40 + 8 * n32 };
            if n3 != n
                || boundary_off != expect_boundary
                || hashes_off != 12 + 32 * n32 + boundary_off
            {
                return Err(xerr("inconsistent xorb footer offsets"));
            }
            XorbFooter {
                xorb_hash,
                chunk_hashes,
                boundaries,
                unpacked_offsets,
            }
        }
        0 => {
            let n = r.count(36, "chunk count")?;
            let boundaries = r.u32s(n, "boundaries")?;
            let chunk_hashes = r.hashes(n, "chunk hashes")?;
            XorbFooter {
                xorb_hash,
                chunk_hashes,
                boundaries,
                unpacked_offsets: cumulative_ends(chunks),
            }
        }
        other => return Err(xerr(format!("unsupported xorb footer version {other}"))),
    };
    r.take(16, "buffer")?;
    if r.remaining() != 0 {
        return Err(xerr("trailing bytes in xorb footer"));
    }
    Ok(footer)
}

fn cumulative_ends(chunks: &[XorbChunk]) -> Vec<u32> {
    chunks
        .iter()
        .map(|c| (c.unpacked_start + u64::from(c.uncompressed_len)) as u32)
        .collect()
}

/// Parses chunk records from the start of `bytes` up to its end or a `XETBLOB` footer.
/// Returns the chunks and the end offset of the records.
fn parse_records(bytes: &[u8]) -> Result<(Vec<XorbChunk>, usize)> {
    let mut chunks = Vec::new();
    let mut pos = 0usize;
    let mut unpacked = 0u64;
    while pos < bytes.len() {
        let rest = &bytes[pos..];
        if rest.len() >= 7 && &rest[..7] == FOOTER_IDENT {
            break;
        }
        let h = ChunkHeader::parse(rest)?;
        let end = pos + ChunkHeader::SIZE + h.compressed_len as usize;
        if end > bytes.len() {
            return Err(xerr(format!(
                "chunk {} payload runs past the end of the xorb",
                chunks.len()
            )));
        }
        if chunks.len() >= MAX_XORB_CHUNKS {
            return Err(EngineError::LimitExceeded(format!(
                "xorb has more than {MAX_XORB_CHUNKS} chunks"
            )));
        }
        if unpacked + u64::from(h.uncompressed_len) > MAX_XORB_BYTES as u64 {
            return Err(EngineError::LimitExceeded(format!(
                "xorb holds more than {MAX_XORB_BYTES} uncompressed bytes"
            )));
        }
        if h.scheme == CompressionScheme::None && h.compressed_len != h.uncompressed_len {
            return Err(xerr(format!(
                "chunk {}: uncompressed record with differing lengths",
                chunks.len()
            )));
        }
        if end > u32::MAX as usize {
            return Err(EngineError::LimitExceeded("xorb larger than 4 GiB".into()));
        }
        chunks.push(XorbChunk {
            hash: XetHash::ZERO,
            uncompressed_len: h.uncompressed_len,
            byte_start: pos as u32,
            byte_end: end as u32,
            unpacked_start: unpacked,
        });
        unpacked += u64::from(h.uncompressed_len);
        pos = end;
    }
    Ok((chunks, pos))
}

/// Parses either form, validating every chunk header (and the footer when present).
/// Chunk hashes are taken from the footer when present, else left as XetHash::ZERO
/// (use `verify_xorb` to compute them).
pub fn parse_xorb(bytes: &[u8]) -> Result<ParsedXorb> {
    let (mut chunks, data_len) = parse_records(bytes)?;
    let footer = if data_len < bytes.len() {
        let f = parse_footer(&bytes[data_len..], &chunks)?;
        if f.chunk_hashes.len() != chunks.len() {
            return Err(xerr(format!(
                "footer lists {} chunks, xorb holds {}",
                f.chunk_hashes.len(),
                chunks.len()
            )));
        }
        for (i, c) in chunks.iter_mut().enumerate() {
            let unpacked_end = c.unpacked_start + u64::from(c.uncompressed_len);
            if f.boundaries[i] != c.byte_end || u64::from(f.unpacked_offsets[i]) != unpacked_end {
                return Err(xerr(format!(
                    "footer offsets of chunk {i} disagree with its record"
                )));
            }
            c.hash = f.chunk_hashes[i];
        }
        Some(f)
    } else {
        None
    };
    Ok(ParsedXorb {
        chunks,
        data_len,
        footer,
    })
}

/// Server-side check: decompresses every chunk, computes chunk hashes and the xorb hash and
/// compares with `expected`. Returns the parsed xorb with hashes filled in.
pub fn verify_xorb(bytes: &[u8], expected: &XetHash) -> Result<ParsedXorb> {
    let mut parsed = parse_xorb(bytes)?;
    if parsed.chunks.is_empty() {
        return Err(xerr("xorb holds no chunks"));
    }
    let mut buf = Vec::with_capacity(MAX_CHUNK_UNCOMPRESSED_LEN as usize);
    let mut pairs = Vec::with_capacity(parsed.chunks.len());
    for c in parsed.chunks.iter_mut() {
        let rec = &bytes[c.byte_start as usize..c.byte_end as usize];
        let h = ChunkHeader::parse(rec)?;
        let payload = &rec[ChunkHeader::SIZE..];
        let computed = if h.scheme == CompressionScheme::None {
            // Stored raw: hash the record in place instead of copying it out first.
            chunk_hash(compression::raw_payload(
                payload,
                h.uncompressed_len as usize,
            )?)
        } else {
            buf.clear();
            compression::decompress_chunk(
                h.scheme,
                payload,
                h.uncompressed_len as usize,
                &mut buf,
            )?;
            chunk_hash(&buf)
        };
        if parsed.footer.is_some() && computed != c.hash {
            return Err(EngineError::HashMismatch {
                what: "chunk hash in xorb footer",
                expected: c.hash.to_hex(),
                computed: computed.to_hex(),
            });
        }
        c.hash = computed;
        pairs.push((computed, u64::from(c.uncompressed_len)));
    }
    let computed = xorb_hash(&pairs);
    if let Some(f) = &parsed.footer
        && f.xorb_hash != computed
    {
        return Err(EngineError::HashMismatch {
            what: "xorb hash in xorb footer",
            expected: f.xorb_hash.to_hex(),
            computed: computed.to_hex(),
        });
    }
    if computed != *expected {
        return Err(EngineError::HashMismatch {
            what: "xorb hash",
            expected: expected.to_hex(),
            computed: computed.to_hex(),
        });
    }
    Ok(parsed)
}

/// Decodes a run of whole chunk records (e.g. a fetched byte range), appending the
/// uncompressed bytes to `out`; returns the uncompressed length of each chunk decoded.
///
/// Decoding stops at the end of `bytes` or at a `XETBLOB` footer. The run is subject to the
/// limits of one xorb (8192 chunks, 64 MiB uncompressed). On error `out` keeps its original
/// length.
pub fn decode_chunk_records(bytes: &[u8], out: &mut Vec<u8>) -> Result<Vec<u32>> {
    let start = out.len();
    let res = (|| {
        let (chunks, _) = parse_records(bytes)?;
        let mut lens = Vec::with_capacity(chunks.len());
        for c in &chunks {
            let rec = &bytes[c.byte_start as usize..c.byte_end as usize];
            let h = ChunkHeader::parse(rec)?;
            compression::decompress_chunk(
                h.scheme,
                &rec[ChunkHeader::SIZE..],
                h.uncompressed_len as usize,
                out,
            )?;
            lens.push(h.uncompressed_len);
        }
        Ok(lens)
    })();
    if res.is_err() {
        out.truncate(start);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_chunks() -> Vec<Vec<u8>> {
        vec![
            b"hello world, hello world, hello world, hello world".to_vec(),
            (0..5000u32)
                .flat_map(|i| (i as f32).to_le_bytes())
                .collect(),
            vec![0u8; 131_072],
            (0..777u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect(),
            Vec::new(),
        ]
    }

    #[test]
    fn header_roundtrip_and_limits() {
        let h = ChunkHeader {
            compressed_len: 0x01_0203,
            scheme: CompressionScheme::Lz4,
            uncompressed_len: 0x01_0000,
        };
        let mut b = Vec::new();
        h.write_to(&mut b);
        assert_eq!(b, [0, 3, 2, 1, 1, 0, 0, 1]);
        assert_eq!(ChunkHeader::parse(&b).unwrap(), h);
        assert!(ChunkHeader::parse(&b[..7]).is_err());
        let mut bad = b.clone();
        bad[0] = 1;
        assert!(ChunkHeader::parse(&bad).is_err());
        let mut bad = b.clone();
        bad[4] = 99;
        assert!(ChunkHeader::parse(&bad).is_err());
        // 131073 uncompressed
        let mut bad = b.clone();
        bad[5..8].copy_from_slice(&[1, 0, 2]);
        assert!(ChunkHeader::parse(&bad).is_err());
        // 262145 compressed
        let mut bad = b.clone();
        bad[1..4].copy_from_slice(&[1, 0, 4]);
        assert!(ChunkHeader::parse(&bad).is_err());
    }

    #[test]
    fn serialize_parse_verify_roundtrip() {
        let chunks = sample_chunks();
        let refs: Vec<&[u8]> = chunks.iter().map(|c| &c[..]).collect();
        let x = serialize_xorb(&refs, &[0, 2]);
        assert_eq!(x.chunks.len(), chunks.len());
        let p = parse_xorb(&x.data).unwrap();
        assert!(p.footer.is_none());
        assert_eq!(p.data_len, x.data.len());
        for (a, b) in p.chunks.iter().zip(&x.chunks) {
            assert_eq!(a.hash, XetHash::ZERO);
            assert_eq!((a.byte_start, a.byte_end), (b.byte_start, b.byte_end));
            assert_eq!(a.unpacked_start, b.unpacked_start);
        }
        let v = verify_xorb(&x.data, &x.hash).unwrap();
        assert_eq!(v.chunks, x.chunks);
        let full = x.with_footer();
        let p = parse_xorb(&full).unwrap();
        assert_eq!(p.chunks, x.chunks);
        assert_eq!(p.data_len, x.data.len());
        assert_eq!(p.footer.as_ref().unwrap().xorb_hash, x.hash);
        verify_xorb(&full, &x.hash).unwrap();
        assert!(matches!(
            verify_xorb(&x.data, &XetHash::ZERO),
            Err(EngineError::HashMismatch { .. })
        ));
        let mut out = Vec::new();
        let lens = decode_chunk_records(&full, &mut out).unwrap();
        assert_eq!(out, chunks.concat());
        assert_eq!(
            lens,
            chunks.iter().map(|c| c.len() as u32).collect::<Vec<_>>()
        );
        // A chunk in the middle decodes alone.
        let c = &x.chunks[2];
        let mut out = Vec::new();
        decode_chunk_records(
            &x.data[c.byte_start as usize..c.byte_end as usize],
            &mut out,
        )
        .unwrap();
        assert_eq!(out, chunks[2]);
        // Truncation anywhere inside a record is an error.
        let mut out = vec![1];
        assert!(decode_chunk_records(&x.data[..c.byte_end as usize - 1], &mut out).is_err());
        assert_eq!(out, vec![1]);
    }

    #[test]
    fn footer_tampering_detected() {
        let chunks = sample_chunks();
        let refs: Vec<&[u8]> = chunks.iter().map(|c| &c[..]).collect();
        let x = serialize_xorb(&refs, &[]);
        let full = x.with_footer();
        let flen = full.len() - x.data.len();
        for i in 0..flen {
            // The 16-byte buffer (bytes -20..-4) is not covered by any check.
            if (flen - 20..flen - 4).contains(&i) {
                continue;
            }
            let mut bad = full.clone();
            bad[x.data.len() + i] ^= 0x01;
            assert!(
                verify_xorb(&bad, &x.hash).is_err(),
                "footer byte {i} flipped went unnoticed"
            );
        }
    }

    #[test]
    fn legacy_v0_footer() {
        let chunks = sample_chunks();
        let refs: Vec<&[u8]> = chunks.iter().map(|c| &c[..]).collect();
        let x = serialize_xorb(&refs, &[]);
        let n = x.chunks.len();
        let mut f = Vec::new();
        f.extend_from_slice(b"XETBLOB");
        f.push(0);
        f.extend_from_slice(x.hash.as_bytes());
        f.extend_from_slice(&(n as u32).to_le_bytes());
        for c in &x.chunks {
            f.extend_from_slice(&c.byte_end.to_le_bytes());
        }
        for c in &x.chunks {
            f.extend_from_slice(c.hash.as_bytes());
        }
        f.extend_from_slice(&[0; 16]);
        let info = f.len() as u32;
        f.extend_from_slice(&info.to_le_bytes());
        let mut full = x.data.clone();
        full.extend_from_slice(&f);
        let p = verify_xorb(&full, &x.hash).unwrap();
        assert_eq!(p.chunks, x.chunks);
        let ft = p.footer.unwrap();
        assert_eq!(
            ft.unpacked_offsets.last().copied(),
            Some(x.chunks.iter().map(|c| c.uncompressed_len).sum())
        );
    }

    #[test]
    fn auto_policy_blocks() {
        // Block of 40 chunks: first is f32-like (BG4), later ones text; chunk 32 re-predicts.
        let f32s: Vec<u8> = (0..4096u32)
            .flat_map(|i| (i as f32 * 0.25).to_le_bytes())
            .collect();
        let text = b"lorem ipsum dolor sit amet ".repeat(200);
        let mut b = XorbBuilder::new();
        b.add_chunk_auto(chunk_hash(&f32s), &f32s, true);
        for _ in 1..32 {
            b.add_chunk_auto(chunk_hash(&text), &text, false);
        }
        b.add_chunk_auto(chunk_hash(&text), &text, false);
        let x = b.finish();
        let schemes: Vec<u8> = x
            .chunks
            .iter()
            .map(|c| x.data[c.byte_start as usize + 4])
            .collect();
        assert!(schemes[..32].iter().all(|&s| s == 2), "{schemes:?}");
        assert_eq!(schemes[32], 1);
        // A file start re-predicts immediately.
        let mut b = XorbBuilder::new();
        b.add_chunk_auto(chunk_hash(&f32s), &f32s, true);
        b.add_chunk_auto(chunk_hash(&text), &text, true);
        let x = b.finish();
        assert_eq!(x.data[x.chunks[1].byte_start as usize + 4], 1);
    }

    #[test]
    fn limits() {
        let mut b = XorbBuilder::new();
        assert!(!b.would_overflow(MAX_XORB_BYTES));
        assert!(b.would_overflow(MAX_XORB_BYTES + 1));
        b.add_chunk(chunk_hash(b"x"), b"x", CompressionScheme::None);
        assert!(b.would_overflow(MAX_XORB_BYTES));
        // 8193 empty records are rejected by the parser.
        let mut many = Vec::new();
        for _ in 0..=MAX_XORB_CHUNKS {
            ChunkHeader {
                compressed_len: 0,
                scheme: CompressionScheme::None,
                uncompressed_len: 0,
            }
            .write_to(&mut many);
        }
        assert!(matches!(
            parse_xorb(&many),
            Err(EngineError::LimitExceeded(_))
        ));
        assert!(parse_xorb(&many[..8 * MAX_XORB_CHUNKS]).is_ok());
    }
}
