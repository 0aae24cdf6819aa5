//! Chunk compression schemes (spec §4.2, §4.3).
//!
//! * [`CompressionScheme::None`]: the payload is the raw chunk.
//! * [`CompressionScheme::Lz4`]: one LZ4 frame written by `lz4_flex::frame::FrameEncoder`
//!   with its default `FrameInfo` (byte-identical to hf_xet).
//! * [`CompressionScheme::ByteGrouping4Lz4`]: the chunk split into 4 byte lanes (lane k =
//!   bytes at positions ≡ k mod 4), lanes concatenated, then LZ4-framed as above.
//!
//! Compression applies the fallback rule: a payload that is not smaller than the chunk is
//! replaced by the raw chunk (scheme `None`).
//!
//! Decompression does not trust the payload: the LZ4 frame is parsed here (any valid frame:
//! independent or linked blocks, optional checksums, content size, skippable frames) and
//! every block is decoded straight into the caller's buffer, which is grown once to exactly
//! the declared uncompressed size. A payload decoding to more or fewer bytes is an error.

use std::io::Write;

use crate::error::{EngineError, Result};

/// Compression scheme of one chunk record (the byte at offset 4 of the chunk header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum CompressionScheme {
    /// Raw bytes.
    None = 0,
    /// One LZ4 frame.
    Lz4 = 1,
    /// Byte grouping into 4 lanes, then one LZ4 frame.
    ByteGrouping4Lz4 = 2,
}

impl TryFrom<u8> for CompressionScheme {
    type Error = EngineError;
    fn try_from(v: u8) -> Result<Self> {
        match v {
            0 => Ok(Self::None),
            1 => Ok(Self::Lz4),
            2 => Ok(Self::ByteGrouping4Lz4),
            other => Err(EngineError::InvalidXorb(format!(
                "unknown compression scheme {other}"
            ))),
        }
    }
}

impl From<CompressionScheme> for u8 {
    fn from(s: CompressionScheme) -> u8 {
        s as u8
    }
}

// ---------------------------------------------------------------------------------------
// BG4 predictor
// ---------------------------------------------------------------------------------------

/// Per-lane popcount histograms of `data` (lane = byte index mod 4, bin = popcount 0..=8).
pub fn bg4_histograms(data: &[u8]) -> [[u64; 9]; 4] {
    // Count per (lane, byte value) first: one increment per byte, no popcount in the hot
    // loop; then fold byte values into popcount bins.
    // The per-value counters are u32; inputs of 16 GiB and more take the plain u64 loop.
    if data.len() / 4 >= u32::MAX as usize {
        let mut hist = [[0u64; 9]; 4];
        for (i, &b) in data.iter().enumerate() {
            hist[i % 4][b.count_ones() as usize] += 1;
        }
        return hist;
    }
    let mut by_value = [[0u32; 256]; 4];
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        by_value[0][w[0] as usize] += 1;
        by_value[1][w[1] as usize] += 1;
        by_value[2][w[2] as usize] += 1;
        by_value[3][w[3] as usize] += 1;
    }
    for (lane, &b) in words.remainder().iter().enumerate() {
        by_value[lane][b as usize] += 1;
    }
    let mut hist = [[0u64; 9]; 4];
    for lane in 0..4 {
        for (v, &c) in by_value[lane].iter().enumerate() {
            hist[lane][(v as u8).count_ones() as usize] += u64::from(c);
        }
    }
    hist
}

/// Decision rule of the BG4 predictor on precomputed histograms (spec §4.3).
pub fn bg4_recommended(hist: &[[u64; 9]; 4]) -> bool {
    let mut base = [1u64; 9];
    let mut totals = [0u64; 4];
    for (lane, h) in hist.iter().enumerate() {
        for (j, &c) in h.iter().enumerate() {
            base[j] += c;
            totals[lane] += c;
        }
    }
    let base_total: u64 = totals.iter().sum();
    let mut max_kl = 0f64;
    for (lane, h) in hist.iter().enumerate() {
        let mut kl = 0f64;
        for j in 0..9 {
            let p = h[j] as f64 / totals[lane] as f64;
            let q = base[j] as f64 / base_total as f64;
            kl += p * (p / q).ln();
        }
        // f64::max ignores NaN: a lane with an empty bin (0 * ln 0 = NaN) does not count.
        max_kl = max_kl.max(kl);
    }
    max_kl > 0.02
}

/// BG4 predictor of spec §4.3 on one chunk: true = use ByteGrouping4Lz4, false = Lz4.
pub fn predict_bg4(chunk: &[u8]) -> bool {
    bg4_recommended(&bg4_histograms(chunk))
}

// ---------------------------------------------------------------------------------------
// Byte grouping
// ---------------------------------------------------------------------------------------

/// Lane sizes of a buffer of `n` bytes: lane k has n/4 + (1 if k < n%4).
fn lane_sizes(n: usize) -> [usize; 4] {
    let q = n / 4;
    let r = n % 4;
    [
        q + usize::from(r > 0),
        q + usize::from(r > 1),
        q + usize::from(r > 2),
        q,
    ]
}

/// Appends the byte-grouped form of `data` (lane 0, 1, 2, 3) to `out`.
pub fn bg4_split(data: &[u8], out: &mut Vec<u8>) {
    let n = data.len();
    let start = out.len();
    out.resize(start + n, 0);
    let dst = &mut out[start..];
    let sizes = lane_sizes(n);
    let (l0, rest) = dst.split_at_mut(sizes[0]);
    let (l1, rest) = rest.split_at_mut(sizes[1]);
    let (l2, l3) = rest.split_at_mut(sizes[2]);
    let q = n / 4;
    // 16 input bytes -> 4 bytes per lane; fixed-size arrays let LLVM use byte shuffles.
    let blocks = q / 4;
    for ((((src, a), b), c), d) in data[..16 * blocks]
        .chunks_exact(16)
        .zip(l0.chunks_exact_mut(4))
        .zip(l1.chunks_exact_mut(4))
        .zip(l2.chunks_exact_mut(4))
        .zip(l3.chunks_exact_mut(4))
    {
        let x: &[u8; 16] = src.try_into().unwrap_or(&[0; 16]);
        a.copy_from_slice(&[x[0], x[4], x[8], x[12]]);
        b.copy_from_slice(&[x[1], x[5], x[9], x[13]]);
        c.copy_from_slice(&[x[2], x[6], x[10], x[14]]);
        d.copy_from_slice(&[x[3], x[7], x[11], x[15]]);
    }
    for (i, w) in data[16 * blocks..4 * q].chunks_exact(4).enumerate() {
        let j = 4 * blocks + i;
        l0[j] = w[0];
        l1[j] = w[1];
        l2[j] = w[2];
        l3[j] = w[3];
    }
    let tail = &data[4 * q..];
    let lanes: [&mut [u8]; 3] = [l0, l1, l2];
    for (k, (&byte, lane)) in tail.iter().zip(lanes).enumerate() {
        debug_assert!(k < 3);
        lane[q] = byte;
    }
}

/// Inverse of [`bg4_split`]: appends the regrouped bytes of `grouped` to `out`.
pub fn bg4_regroup(grouped: &[u8], out: &mut Vec<u8>) {
    let n = grouped.len();
    let start = out.len();
    out.resize(start + n, 0);
    bg4_regroup_into(grouped, &mut out[start..]);
}

/// Regroups `grouped` into `dst` (same length).
fn bg4_regroup_into(grouped: &[u8], dst: &mut [u8]) {
    let n = grouped.len();
    debug_assert_eq!(n, dst.len());
    let sizes = lane_sizes(n);
    let (l0, rest) = grouped.split_at(sizes[0]);
    let (l1, rest) = rest.split_at(sizes[1]);
    let (l2, l3) = rest.split_at(sizes[2]);
    let q = n / 4;
    // 8 bytes of each lane -> 32 output bytes: a 4x8 byte transpose in two SWAR steps.
    let blocks = q / 8;
    for ((((w, a), b), c), d) in dst[..32 * blocks]
        .chunks_exact_mut(32)
        .zip(l0.chunks_exact(8))
        .zip(l1.chunks_exact(8))
        .zip(l2.chunks_exact(8))
        .zip(l3.chunks_exact(8))
    {
        let rd = |s: &[u8]| u64::from_le_bytes(s.try_into().unwrap_or([0; 8]));
        let (a, b, c, d) = (rd(a), rd(b), rd(c), rd(d));
        const M8: u64 = 0x00FF_00FF_00FF_00FF;
        const M16: u64 = 0x0000_FFFF_0000_FFFF;
        // byte pairs: ab_even = a0 b0 a2 b2 .., ab_odd = a1 b1 a3 b3 ..
        let ab_even = (a & M8) | ((b & M8) << 8);
        let ab_odd = ((a >> 8) & M8) | (b & !M8);
        let cd_even = (c & M8) | ((d & M8) << 8);
        let cd_odd = ((c >> 8) & M8) | (d & !M8);
        // 4-byte groups: words 0/4, 2/6, 1/5, 3/7
        let w04 = (ab_even & M16) | ((cd_even & M16) << 16);
        let w26 = ((ab_even >> 16) & M16) | (cd_even & !M16);
        let w15 = (ab_odd & M16) | ((cd_odd & M16) << 16);
        let w37 = ((ab_odd >> 16) & M16) | (cd_odd & !M16);
        let lo = |x: u64| (x as u32).to_le_bytes();
        let hi = |x: u64| ((x >> 32) as u32).to_le_bytes();
        let parts = [
            lo(w04),
            lo(w15),
            lo(w26),
            lo(w37),
            hi(w04),
            hi(w15),
            hi(w26),
            hi(w37),
        ];
        for (o, p) in w.chunks_exact_mut(4).zip(parts) {
            o.copy_from_slice(&p);
        }
    }
    for (i, w) in dst[32 * blocks..4 * q].chunks_exact_mut(4).enumerate() {
        let j = 8 * blocks + i;
        w.copy_from_slice(&[l0[j], l1[j], l2[j], l3[j]]);
    }
    let lanes: [&[u8]; 3] = [l0, l1, l2];
    for (slot, lane) in dst[4 * q..].iter_mut().zip(lanes) {
        *slot = lane[q];
    }
}

// ---------------------------------------------------------------------------------------
// Compression
// ---------------------------------------------------------------------------------------

/// Appends one LZ4 frame of `data` (lz4_flex default FrameInfo, one write) to `out`.
fn lz4_frame_encoder(data: &[u8], out: &mut Vec<u8>) {
    let mut enc = lz4_flex::frame::FrameEncoder::new(out);
    // Writing into a Vec cannot fail; lz4_flex only errors on I/O errors of the writer or a
    // content size mismatch (no content size is set).
    let res = enc
        .write_all(data)
        .map_err(drop)
        .and_then(|()| enc.finish().map(drop).map_err(drop));
    debug_assert!(res.is_ok());
}

/// Inputs up to this size are framed by [`lz4_frame_if_smaller`] itself: `FrameEncoder`'s
/// automatic block size (from the length of its first write) is then 64 KiB or 256 KiB,
/// so the frame holds exactly one block.
const ONE_BLOCK_MAX: usize = 256 * 1024;

/// Bytes a one-block frame adds to its block: header (magic, FLG, BD, header checksum),
/// block size word, end mark.
const ONE_BLOCK_FRAME_OVERHEAD: usize = 7 + 4 + 4;

/// Per-thread scratch of [`lz4_frame_if_smaller`]: the compressor's hash table (cleared by
/// every use, as a fresh `FrameEncoder`'s is), the block output and the byte-grouping buffer.
struct Lz4Scratch {
    table: lz4_flex::block::CompressTable,
    block: Vec<u8>,
    grouped: Vec<u8>,
}

thread_local! {
    static LZ4_SCRATCH: std::cell::RefCell<Lz4Scratch> = std::cell::RefCell::new(Lz4Scratch {
        table: lz4_flex::block::CompressTable::large(),
        block: Vec::new(),
        grouped: Vec::new(),
    });
}

/// Appends the LZ4 frame of `data` that `lz4_flex::frame::FrameEncoder` (default
/// `FrameInfo`, one write) produces, but only when it is smaller than `data`; returns
/// whether it was appended.
///
/// Up to [`ONE_BLOCK_MAX`] bytes the frame is built here from one call of the block
/// compressor, which is what the frame encoder runs for a frame's first block: a fresh
/// 32-bit-entry hash table, stream offset 0, no dictionary. An incompressible chunk (the
/// common case for random or encrypted data) then costs the compressor's scan and nothing
/// else: no encoder buffers, no frame copy of the raw bytes. Byte-identity with the frame
/// encoder is tested on inputs of every kind around the block-size boundaries.
fn lz4_frame_if_smaller(data: &[u8], out: &mut Vec<u8>, scratch: &mut Lz4Scratch) -> bool {
    if data.len() > ONE_BLOCK_MAX {
        return encoder_frame_if_smaller(data, out);
    }
    if data.len() <= ONE_BLOCK_FRAME_OVERHEAD {
        return false;
    }
    let max = lz4_flex::block::get_maximum_output_size(data.len());
    if scratch.block.len() < max {
        scratch.block.resize(max, 0);
    }
    let Ok(n) =
        lz4_flex::block::compress_into_with_table(data, &mut scratch.block, &mut scratch.table)
    else {
        // Unreachable (the output holds the worst case); the frame encoder decides then.
        return encoder_frame_if_smaller(data, out);
    };
    // The encoder stores a block raw unless it shrank (`n < len`); either way the frame is
    // kept only if smaller than the data.
    if n + ONE_BLOCK_FRAME_OVERHEAD >= data.len() {
        return false;
    }
    // Frame descriptor: FLG = version 01 + independent blocks; BD = block size code
    // (4 = 64 KiB, 5 = 256 KiB: the encoder's choice for a first write of this length).
    let flg = 0x60u8;
    let bd = if data.len() > 64 * 1024 { 0x50u8 } else { 0x40 };
    let hc = (xxh32(&[flg, bd], 0) >> 8) as u8;
    out.reserve(n + ONE_BLOCK_FRAME_OVERHEAD);
    out.extend_from_slice(&LZ4F_MAGIC.to_le_bytes());
    out.extend_from_slice(&[flg, bd, hc]);
    out.extend_from_slice(&(n as u32).to_le_bytes());
    out.extend_from_slice(&scratch.block[..n]);
    out.extend_from_slice(&0u32.to_le_bytes());
    true
}

/// [`lz4_frame_if_smaller`] through `FrameEncoder` itself (any length).
fn encoder_frame_if_smaller(data: &[u8], out: &mut Vec<u8>) -> bool {
    let start = out.len();
    lz4_frame_encoder(data, out);
    if out.len() - start >= data.len() {
        out.truncate(start);
        return false;
    }
    true
}

/// Appends the payload of `chunk` compressed with `scheme` to `out` only when it is smaller
/// than the chunk (the fallback rule); returns whether it was appended. `scheme` `None`
/// appends nothing.
pub fn compress_if_smaller(scheme: CompressionScheme, chunk: &[u8], out: &mut Vec<u8>) -> bool {
    LZ4_SCRATCH.with_borrow_mut(|scratch| match scheme {
        CompressionScheme::None => false,
        CompressionScheme::Lz4 => lz4_frame_if_smaller(chunk, out, scratch),
        CompressionScheme::ByteGrouping4Lz4 => {
            let mut grouped = std::mem::take(&mut scratch.grouped);
            grouped.clear();
            bg4_split(chunk, &mut grouped);
            let appended = lz4_frame_if_smaller(&grouped, out, scratch);
            scratch.grouped = grouped;
            appended
        }
    })
}

/// Appends the payload of `chunk` compressed with `scheme` to `out`, applying the fallback
/// rule (compressed >= raw -> stored raw). Returns the scheme actually written.
pub fn compress_chunk(
    scheme: CompressionScheme,
    chunk: &[u8],
    out: &mut Vec<u8>,
) -> CompressionScheme {
    if compress_if_smaller(scheme, chunk, out) {
        scheme
    } else {
        out.extend_from_slice(chunk);
        CompressionScheme::None
    }
}

// ---------------------------------------------------------------------------------------
// Decompression
// ---------------------------------------------------------------------------------------

const LZ4F_MAGIC: u32 = 0x184D_2204;
const LZ4F_SKIPPABLE: std::ops::RangeInclusive<u32> = 0x184D_2A50..=0x184D_2A5F;
const LZ4_WINDOW: usize = 64 * 1024;

fn derr(msg: impl Into<String>) -> EngineError {
    EngineError::Decompression(msg.into())
}

/// Little cursor over the payload.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if self.buf.len() - self.pos < n {
            return Err(derr(format!("truncated lz4 frame ({what})")));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        let s = self.take(4, what)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn at_end(&self) -> bool {
        self.pos == self.buf.len()
    }
}

/// Decodes a sequence of LZ4 frames from `payload` into `dst`, which must be filled exactly.
fn lz4_frames_decode_into(payload: &[u8], dst: &mut [u8]) -> Result<()> {
    let mut cur = Cursor {
        buf: payload,
        pos: 0,
    };
    let mut written = 0usize;
    let mut frames = 0usize;
    while !cur.at_end() {
        let magic = cur.u32("magic")?;
        if LZ4F_SKIPPABLE.contains(&magic) {
            let len = cur.u32("skippable frame size")? as usize;
            cur.take(len, "skippable frame")?;
            continue;
        }
        if magic != LZ4F_MAGIC {
            return Err(derr(format!("bad lz4 frame magic {magic:#010x}")));
        }
        frames += 1;
        written = decode_one_frame(&mut cur, dst, written)?;
    }
    if frames == 0 {
        return Err(derr("payload holds no lz4 frame"));
    }
    if written != dst.len() {
        return Err(derr(format!(
            "lz4 payload decodes to {written} bytes, header declares {}",
            dst.len()
        )));
    }
    Ok(())
}

/// Decodes one frame (after its magic) appending at `dst[written..]`; returns the new
/// written count.
fn decode_one_frame(cur: &mut Cursor<'_>, dst: &mut [u8], mut written: usize) -> Result<usize> {
    let desc_start = cur.pos;
    let flg = cur.take(1, "FLG")?[0];
    let bd = cur.take(1, "BD")?[0];
    if flg >> 6 != 0b01 {
        return Err(derr("unsupported lz4 frame version"));
    }
    if flg & 0b10 != 0 || bd & 0b1000_1111 != 0 {
        return Err(derr("reserved lz4 frame header bits set"));
    }
    let independent = flg & 0x20 != 0;
    let block_checksums = flg & 0x10 != 0;
    let has_content_size = flg & 0x08 != 0;
    let content_checksum = flg & 0x04 != 0;
    let has_dict_id = flg & 0x01 != 0;
    let max_block = match (bd >> 4) & 0x7 {
        4 => 64 * 1024,
        5 => 256 * 1024,
        6 => 1024 * 1024,
        7 => 4 * 1024 * 1024,
        other => return Err(derr(format!("invalid lz4 block size id {other}"))),
    };
    let mut content_size = None;
    if has_content_size {
        let s = cur.take(8, "content size")?;
        let mut b = [0u8; 8];
        b.copy_from_slice(s);
        content_size = Some(u64::from_le_bytes(b));
    }
    if has_dict_id {
        return Err(derr("lz4 frames with a dictionary id are not supported"));
    }
    let desc = &cur.buf[desc_start..cur.pos];
    let hc = cur.take(1, "header checksum")?[0];
    if ((xxh32(desc, 0) >> 8) & 0xFF) as u8 != hc {
        return Err(derr("lz4 frame header checksum mismatch"));
    }
    let frame_start = written;
    loop {
        let raw = cur.u32("block size")?;
        if raw == 0 {
            break;
        }
        let stored = raw & 0x8000_0000 != 0;
        let len = (raw & 0x7FFF_FFFF) as usize;
        if len > max_block {
            return Err(derr("lz4 block larger than the frame's block size"));
        }
        let block = cur.take(len, "block data")?;
        if block_checksums {
            let sum = cur.u32("block checksum")?;
            if xxh32(block, 0) != sum {
                return Err(derr("lz4 block checksum mismatch"));
            }
        }
        let room = dst.len() - written;
        if stored {
            if len > room {
                return Err(derr("lz4 payload decodes to more bytes than declared"));
            }
            dst[written..written + len].copy_from_slice(block);
            written += len;
        } else {
            let limit = room.min(max_block);
            let (prev, rest) = dst.split_at_mut(written);
            let out = &mut rest[..limit];
            let n = if independent || written == frame_start {
                lz4_flex::block::decompress_into(block, out)
            } else {
                let dict_from = written.saturating_sub(LZ4_WINDOW).max(frame_start);
                lz4_flex::block::decompress_into_with_dict(block, out, &prev[dict_from..])
            };
            let n = n.map_err(|e| {
                if limit < max_block
                    && matches!(e, lz4_flex::block::DecompressError::OutputTooSmall { .. })
                {
                    derr("lz4 payload decodes to more bytes than declared")
                } else {
                    derr(format!("bad lz4 block: {e}"))
                }
            })?;
            written += n;
        }
    }
    if content_checksum {
        let sum = cur.u32("content checksum")?;
        if xxh32(&dst[frame_start..written], 0) != sum {
            return Err(derr("lz4 content checksum mismatch"));
        }
    }
    if let Some(cs) = content_size
        && cs != (written - frame_start) as u64
    {
        return Err(derr("lz4 frame content size mismatch"));
    }
    Ok(written)
}

/// The payload of a chunk stored raw (scheme None), checked against its declared length.
pub fn raw_payload(payload: &[u8], uncompressed_len: usize) -> Result<&[u8]> {
    if payload.len() == uncompressed_len {
        Ok(payload)
    } else {
        Err(derr(format!(
            "raw payload is {} bytes, header declares {uncompressed_len}",
            payload.len()
        )))
    }
}

/// Appends exactly `uncompressed_len` decoded bytes to `out`, or errors (never panics,
/// never allocates more than `uncompressed_len` + small constant).
///
/// Allocation: `out` grows by exactly `uncompressed_len`; ByteGrouping4Lz4 additionally uses
/// one scratch buffer of `uncompressed_len` bytes (the grouped lanes). A declared size the
/// payload cannot possibly decode to (more than 255x its length) is rejected before any
/// allocation. On error `out` is restored to its original length.
pub fn decompress_chunk(
    scheme: CompressionScheme,
    payload: &[u8],
    uncompressed_len: usize,
    out: &mut Vec<u8>,
) -> Result<()> {
    let start = out.len();
    let res = match scheme {
        CompressionScheme::None => {
            raw_payload(payload, uncompressed_len).map(|p| out.extend_from_slice(p))
        }
        // LZ4 expands at most ~255x (each extra length byte adds 255 output bytes), so a
        // declared size beyond that is rejected before anything is allocated.
        _ if uncompressed_len / 255 > payload.len() => Err(derr(format!(
            "{} payload bytes cannot decode to {uncompressed_len} bytes",
            payload.len()
        ))),
        CompressionScheme::Lz4 => {
            out.resize(start + uncompressed_len, 0);
            lz4_frames_decode_into(payload, &mut out[start..])
        }
        CompressionScheme::ByteGrouping4Lz4 => {
            let mut grouped = vec![0u8; uncompressed_len];
            lz4_frames_decode_into(payload, &mut grouped).map(|()| {
                out.resize(start + uncompressed_len, 0);
                bg4_regroup_into(&grouped, &mut out[start..]);
            })
        }
    };
    if res.is_err() {
        out.truncate(start);
    }
    res
}

// ---------------------------------------------------------------------------------------
// xxHash32 (LZ4 frame checksums)
// ---------------------------------------------------------------------------------------

const P1: u32 = 2_654_435_761;
const P2: u32 = 2_246_822_519;
const P3: u32 = 3_266_489_917;
const P4: u32 = 668_265_263;
const P5: u32 = 374_761_393;

fn rd32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn round(acc: u32, lane: u32) -> u32 {
    acc.wrapping_add(lane.wrapping_mul(P2))
        .rotate_left(13)
        .wrapping_mul(P1)
}

/// xxHash32 of `data` with `seed`.
pub(crate) fn xxh32(data: &[u8], seed: u32) -> u32 {
    let len = data.len();
    let mut rest = data;
    let mut h = if len >= 16 {
        let mut v = [
            seed.wrapping_add(P1).wrapping_add(P2),
            seed.wrapping_add(P2),
            seed,
            seed.wrapping_sub(P1),
        ];
        let mut stripes = data.chunks_exact(16);
        for s in &mut stripes {
            for (i, acc) in v.iter_mut().enumerate() {
                *acc = round(*acc, rd32(&s[4 * i..]));
            }
        }
        rest = stripes.remainder();
        v[0].rotate_left(1)
            .wrapping_add(v[1].rotate_left(7))
            .wrapping_add(v[2].rotate_left(12))
            .wrapping_add(v[3].rotate_left(18))
    } else {
        seed.wrapping_add(P5)
    };
    h = h.wrapping_add(len as u32);
    let mut words = rest.chunks_exact(4);
    for w in &mut words {
        h = h
            .wrapping_add(rd32(w).wrapping_mul(P3))
            .rotate_left(17)
            .wrapping_mul(P4);
    }
    for &b in words.remainder() {
        h = h
            .wrapping_add(u32::from(b).wrapping_mul(P5))
            .rotate_left(11)
            .wrapping_mul(P1);
    }
    h ^= h >> 15;
    h = h.wrapping_mul(P2);
    h ^= h >> 13;
    h = h.wrapping_mul(P3);
    h ^= h >> 16;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg_bytes(n: usize, seed: u64) -> Vec<u8> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (s >> 56) as u8
            })
            .collect()
    }

    #[test]
    fn xxh32_known_values() {
        // Reference values of xxHash32 (seed 0).
        assert_eq!(xxh32(b"", 0), 0x02CC_5D05);
        assert_eq!(xxh32(b"a", 0), 0x550D_7456);
        assert_eq!(xxh32(b"abc", 0), 0x32D1_53FF);
        assert_eq!(
            xxh32(b"Nobody inspects the spammish repetition", 0),
            0xE229_3B2F
        );
    }

    /// The reference: lz4_flex's frame encoder plus the fallback rule; also the frame's
    /// length.
    fn reference(scheme: CompressionScheme, chunk: &[u8]) -> (CompressionScheme, Vec<u8>, usize) {
        let input = match scheme {
            CompressionScheme::None => return (scheme, chunk.to_vec(), 0),
            CompressionScheme::Lz4 => chunk.to_vec(),
            CompressionScheme::ByteGrouping4Lz4 => {
                let mut g = Vec::new();
                bg4_split(chunk, &mut g);
                g
            }
        };
        let mut out = Vec::new();
        lz4_frame_encoder(&input, &mut out);
        let frame = out.len();
        if out.len() >= chunk.len() {
            (CompressionScheme::None, chunk.to_vec(), frame)
        } else {
            (scheme, out, frame)
        }
    }

    #[test]
    fn frames_are_byte_identical_to_the_frame_encoder() {
        // Inputs of every compressibility: random, runs, text-like, random with repeats
        // spliced in at every density (frames just below and just above the raw size),
        // at lengths around the block-size boundaries and the frame overhead.
        let mut inputs: Vec<Vec<u8>> = Vec::new();
        let lens = [
            0, 1, 4, 12, 13, 14, 15, 16, 17, 20, 64, 1000, 8191, 65535, 65536, 65537, 100_000,
            131_072, 262_143, 262_144, 262_145, 300_000,
        ];
        for (k, &n) in lens.iter().enumerate() {
            let rand = lcg_bytes(n, k as u64);
            inputs.push(rand.clone());
            inputs.push(vec![7u8; n]);
            inputs.push(
                b"the quick brown fox jumps "
                    .iter()
                    .copied()
                    .cycle()
                    .take(n)
                    .collect(),
            );
            for density in [1usize, 2, 3, 5, 8, 13, 40, 200] {
                let mut v = rand.clone();
                let mut i = 0;
                while i + 12 < n {
                    if (i / 12) % density == 0 {
                        let src = i % 64;
                        v.copy_within(src..src + 12, i);
                    }
                    i += 12;
                }
                inputs.push(v);
            }
            // One repeat of `r` bytes in random data: around r = 20 the frame is as long
            // as the data, give or take a byte.
            if n >= 256 {
                for r in 4..48 {
                    let mut v = rand.clone();
                    v.copy_within(0..r, n / 2);
                    inputs.push(v);
                }
            }
        }
        let (mut equal, mut one_less) = (false, false);
        for input in &inputs {
            for scheme in [
                CompressionScheme::None,
                CompressionScheme::Lz4,
                CompressionScheme::ByteGrouping4Lz4,
            ] {
                let mut out = vec![0xAA];
                let used = compress_chunk(scheme, input, &mut out);
                let (want_scheme, want, frame) = reference(scheme, input);
                assert_eq!(used, want_scheme, "len {}", input.len());
                assert_eq!(&out[1..], &want[..], "len {} {scheme:?}", input.len());
                equal |= frame == input.len();
                one_less |= frame + 1 == input.len();
            }
        }
        // The fallback boundary was met from both sides.
        assert!(equal && one_less);
    }

    #[test]
    fn frame_header_matches_spec() {
        let mut out = Vec::new();
        let data = b"hello hello hello hello hello hello hello hello hello".repeat(10);
        assert_eq!(
            compress_chunk(CompressionScheme::Lz4, &data, &mut out),
            CompressionScheme::Lz4
        );
        assert_eq!(&out[..6], &[0x04, 0x22, 0x4D, 0x18, 0x60, 0x40]);
        assert_eq!(&out[out.len() - 4..], &[0, 0, 0, 0]);
        // Our HC computation agrees with lz4_flex's.
        assert_eq!(out[6], ((xxh32(&out[4..6], 0) >> 8) & 0xFF) as u8);
        let big = vec![7u8; 100_000];
        out.clear();
        compress_chunk(CompressionScheme::Lz4, &big, &mut out);
        assert_eq!(out[5], 0x50);
        assert_eq!(out[6], ((xxh32(&out[4..6], 0) >> 8) & 0xFF) as u8);
    }

    #[test]
    fn bg4_split_regroup_all_small_lengths() {
        for n in 0..300 {
            let data: Vec<u8> = (0..n).map(|i| (i * 7 + i / 256) as u8).collect();
            let mut g = Vec::new();
            bg4_split(&data, &mut g);
            // lane 0 first: bytes 0,4,8,...
            let expect: Vec<u8> = (0..4)
                .flat_map(|k| data.iter().skip(k).step_by(4).copied())
                .collect();
            assert_eq!(g, expect, "n={n}");
            let mut r = vec![0xAA];
            bg4_regroup(&g, &mut r);
            assert_eq!(&r[1..], &data[..]);
        }
    }

    #[test]
    fn roundtrip_all_schemes() {
        let text = b"The quick brown fox jumps over the lazy dog. ".repeat(2000);
        let floats: Vec<u8> = (0..20000u32)
            .flat_map(|i| (i as f32 * 0.5).to_le_bytes())
            .collect();
        let rand = lcg_bytes(70_001, 3);
        for data in [&text[..], &floats[..], &rand[..], &[][..], &[1u8][..]] {
            for scheme in [
                CompressionScheme::None,
                CompressionScheme::Lz4,
                CompressionScheme::ByteGrouping4Lz4,
            ] {
                let mut c = Vec::new();
                let used = compress_chunk(scheme, data, &mut c);
                assert!(c.len() <= data.len());
                if used == CompressionScheme::None {
                    assert_eq!(c, data);
                } else {
                    assert!(c.len() < data.len());
                }
                let mut d = vec![9u8];
                decompress_chunk(used, &c, data.len(), &mut d).unwrap();
                assert_eq!(&d[1..], data);
                // Wrong declared sizes fail and leave `out` untouched.
                let mut d = vec![9u8];
                assert!(decompress_chunk(used, &c, data.len() + 1, &mut d).is_err());
                assert_eq!(d, vec![9u8]);
                if !data.is_empty() {
                    assert!(decompress_chunk(used, &c, data.len() - 1, &mut d).is_err());
                    assert_eq!(d, vec![9u8]);
                }
            }
        }
        // random data falls back to None
        let mut c = Vec::new();
        assert_eq!(
            compress_chunk(CompressionScheme::Lz4, &rand, &mut c),
            CompressionScheme::None
        );
    }

    #[test]
    fn decoder_accepts_other_valid_frames() {
        use lz4_flex::frame::{BlockMode, BlockSize, FrameEncoder, FrameInfo};
        let data: Vec<u8> = b"abcdefgh0123456789"
            .iter()
            .cycle()
            .take(300_000)
            .enumerate()
            .map(|(i, &b)| b ^ ((i / 70_000) as u8))
            .collect();
        let info = FrameInfo::new()
            .block_size(BlockSize::Max64KB)
            .block_mode(BlockMode::Linked)
            .block_checksums(true)
            .content_checksum(true)
            .content_size(Some(data.len() as u64));
        let mut enc = FrameEncoder::with_frame_info(info, Vec::new());
        enc.write_all(&data).unwrap();
        let frame = enc.finish().unwrap();
        let mut out = Vec::new();
        decompress_chunk(CompressionScheme::Lz4, &frame, data.len(), &mut out).unwrap();
        assert_eq!(out, data);
        // corrupt the content checksum
        let mut bad = frame.clone();
        let n = bad.len();
        bad[n - 1] ^= 1;
        assert!(
            decompress_chunk(CompressionScheme::Lz4, &bad, data.len(), &mut Vec::new()).is_err()
        );
        // two concatenated frames plus a skippable frame
        let mut two = Vec::new();
        compress_chunk(CompressionScheme::Lz4, &data[..1000], &mut two);
        two.extend_from_slice(&0x184D_2A53u32.to_le_bytes());
        two.extend_from_slice(&3u32.to_le_bytes());
        two.extend_from_slice(b"xyz");
        compress_chunk(CompressionScheme::Lz4, &data[1000..2000], &mut two);
        let mut out = Vec::new();
        decompress_chunk(CompressionScheme::Lz4, &two, 2000, &mut out).unwrap();
        assert_eq!(out, &data[..2000]);
    }

    #[test]
    fn predictor_edge_cases() {
        // all-zero: every lane has empty bins -> NaN ignored -> LZ4
        assert!(!predict_bg4(&[0u8; 4096]));
        assert!(!predict_bg4(&[]));
        // f32 ramp selects BG4 (as in the vectors)
        let floats: Vec<u8> = (0..16384u32)
            .flat_map(|i| (i as f32 * 0.25).to_le_bytes())
            .collect();
        assert!(predict_bg4(&floats));
        assert!(!predict_bg4(&lcg_bytes(65536, 5)));
        // histogram folding agrees with the direct definition
        let data = lcg_bytes(1001, 9);
        let mut direct = [[0u64; 9]; 4];
        for (i, &b) in data.iter().enumerate() {
            direct[i % 4][b.count_ones() as usize] += 1;
        }
        assert_eq!(bg4_histograms(&data), direct);
    }

    #[test]
    fn unknown_scheme() {
        assert!(CompressionScheme::try_from(3).is_err());
        assert!(CompressionScheme::try_from(99).is_err());
        assert_eq!(
            CompressionScheme::try_from(2).unwrap(),
            CompressionScheme::ByteGrouping4Lz4
        );
    }
}
