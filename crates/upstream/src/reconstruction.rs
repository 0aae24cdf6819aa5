//! File reconstruction answers (spec §6.5), v1 and v2 normalized into one type.

use std::collections::HashMap;

use hugbucket_engine::XetHash;
use serde::Deserialize;

use crate::error::{Result, UpstreamError};
use crate::transport::parse_json;

/// An inclusive byte range `start..=end` (HTTP `Range: bytes=start-end`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// Last byte (inclusive).
    pub end: u64,
}

impl ByteRange {
    /// `start..=end`; errors when `end < start`, or when the range is all of `0..=u64::MAX`
    /// (its length, 2^64, does not fit a `u64`).
    pub fn new(start: u64, end: u64) -> Result<Self> {
        if end < start {
            return Err(UpstreamError::InvalidArgument(format!(
                "byte range end {end} before start {start}"
            )));
        }
        if start == 0 && end == u64::MAX {
            return Err(UpstreamError::InvalidArgument(
                "byte range 0..=2^64-1 is too long".into(),
            ));
        }
        Ok(ByteRange { start, end })
    }

    /// `len` bytes from `start`; errors when `len == 0` or the end overflows.
    pub fn from_len(start: u64, len: u64) -> Result<Self> {
        let end = len
            .checked_sub(1)
            .and_then(|l| start.checked_add(l))
            .ok_or_else(|| {
                UpstreamError::InvalidArgument(format!("empty or overflowing range at {start}"))
            })?;
        Ok(ByteRange { start, end })
    }

    /// Number of bytes (saturating: never panics, even for a hand-built inverted or
    /// full-width range).
    pub fn len(&self) -> u64 {
        self.end.saturating_sub(self.start).saturating_add(1)
    }

    /// Always false (a range holds at least one byte).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The `Range` header value `bytes=start-end`.
    pub fn header_value(&self) -> String {
        format!("bytes={}-{}", self.start, self.end)
    }
}

/// One term of a reconstruction: chunks `[chunk_start, chunk_end)` of a xorb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconstructionTerm {
    /// The xorb.
    pub xorb_hash: XetHash,
    /// Uncompressed size of the whole chunks of the term.
    pub unpacked_length: u64,
    /// First chunk index.
    pub chunk_start: u32,
    /// End chunk index (exclusive).
    pub chunk_end: u32,
}

/// Where to fetch a run of chunk records of a xorb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchEntry {
    /// Presigned URL; fetch without Authorization.
    pub url: String,
    /// First chunk index covered.
    pub chunk_start: u32,
    /// End chunk index (exclusive).
    pub chunk_end: u32,
    /// Byte range in the stored xorb (inclusive), covering whole chunk records starting at
    /// chunk `chunk_start`.
    pub bytes: ByteRange,
}

impl FetchEntry {
    /// True when this entry's chunks contain the term's chunks.
    pub fn covers(&self, term: &ReconstructionTerm) -> bool {
        self.chunk_start <= term.chunk_start && term.chunk_end <= self.chunk_end
    }
}

/// A reconstruction, whichever API version answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconstruction {
    /// Bytes to drop from the start of the first term.
    pub offset_into_first_range: u64,
    /// Terms in file order; the last may extend past the requested end.
    pub terms: Vec<ReconstructionTerm>,
    /// Fetch entries per xorb.
    pub fetches: HashMap<XetHash, Vec<FetchEntry>>,
    /// 1 or 2: which API answered.
    pub api_version: u8,
}

impl Reconstruction {
    /// The fetch entry whose chunk range contains `term`'s.
    pub fn fetch_for(&self, term: &ReconstructionTerm) -> Option<&FetchEntry> {
        self.fetches
            .get(&term.xorb_hash)?
            .iter()
            .find(|e| e.covers(term))
    }

    /// Total uncompressed bytes of all terms (before dropping the offset / truncating).
    pub fn unpacked_len(&self) -> u64 {
        self.terms
            .iter()
            .fold(0u64, |n, t| n.saturating_add(t.unpacked_length))
    }

    fn validate(self, op: &'static str) -> Result<Self> {
        for t in &self.terms {
            if t.chunk_end <= t.chunk_start {
                return Err(UpstreamError::decode(op, "term with an empty chunk range"));
            }
            if self.fetch_for(t).is_none() {
                return Err(UpstreamError::decode(
                    op,
                    format!(
                        "no fetch entry for xorb {} chunks {}..{}",
                        t.xorb_hash, t.chunk_start, t.chunk_end
                    ),
                ));
            }
        }
        if self
            .terms
            .iter()
            .try_fold(0u64, |n, t| n.checked_add(t.unpacked_length))
            .is_none()
        {
            return Err(UpstreamError::decode(
                op,
                "terms add up to more than 2^64 bytes",
            ));
        }
        if let Some(first) = self.terms.first() {
            if self.offset_into_first_range >= first.unpacked_length {
                return Err(UpstreamError::decode(
                    op,
                    "offset_into_first_range beyond the first term",
                ));
            }
        }
        for e in self.fetches.values().flatten() {
            if e.chunk_end <= e.chunk_start {
                return Err(UpstreamError::decode(
                    op,
                    "fetch entry with an empty chunk range",
                ));
            }
        }
        Ok(self)
    }
}

#[derive(Deserialize)]
struct RawRange {
    start: u64,
    end: u64,
}

#[derive(Deserialize)]
struct RawTerm {
    hash: String,
    unpacked_length: u64,
    range: RawRange,
}

#[derive(Deserialize)]
struct RawV1Fetch {
    range: RawRange,
    url: String,
    url_range: RawRange,
}

#[derive(Deserialize)]
struct RawV1 {
    #[serde(default)]
    offset_into_first_range: u64,
    terms: Vec<RawTerm>,
    #[serde(default)]
    fetch_info: HashMap<String, Vec<RawV1Fetch>>,
}

#[derive(Deserialize)]
struct RawV2Range {
    chunks: RawRange,
    bytes: RawRange,
}

#[derive(Deserialize)]
struct RawV2Fetch {
    url: String,
    ranges: Vec<RawV2Range>,
}

#[derive(Deserialize)]
struct RawV2 {
    #[serde(default)]
    offset_into_first_range: u64,
    terms: Vec<RawTerm>,
    #[serde(default)]
    xorbs: HashMap<String, Vec<RawV2Fetch>>,
}

fn hash(op: &'static str, s: &str) -> Result<XetHash> {
    XetHash::from_hex(s).map_err(|e| UpstreamError::decode(op, e))
}

fn chunk_idx(op: &'static str, v: u64) -> Result<u32> {
    u32::try_from(v).map_err(|_| UpstreamError::decode(op, "chunk index out of range"))
}

fn terms(op: &'static str, raw: Vec<RawTerm>) -> Result<Vec<ReconstructionTerm>> {
    raw.into_iter()
        .map(|t| {
            Ok(ReconstructionTerm {
                xorb_hash: hash(op, &t.hash)?,
                unpacked_length: t.unpacked_length,
                chunk_start: chunk_idx(op, t.range.start)?,
                chunk_end: chunk_idx(op, t.range.end)?,
            })
        })
        .collect()
}

fn byte_range(op: &'static str, r: &RawRange) -> Result<ByteRange> {
    ByteRange::new(r.start, r.end).map_err(|_| UpstreamError::decode(op, "inverted byte range"))
}

/// One fetch entry of an answer, either version: its URL, chunk range and byte range.
type RawEntry = (String, RawRange, RawRange);

/// Builds and validates a [`Reconstruction`] from an answer's fields, whichever version
/// carried them.
fn assemble(
    op: &'static str,
    api_version: u8,
    offset_into_first_range: u64,
    raw_terms: Vec<RawTerm>,
    raw_fetches: impl ExactSizeIterator<Item = (String, Vec<RawEntry>)>,
) -> Result<Reconstruction> {
    let mut fetches = HashMap::with_capacity(raw_fetches.len());
    for (h, entries) in raw_fetches {
        let list = entries
            .into_iter()
            .map(|(url, chunks, bytes)| {
                Ok(FetchEntry {
                    url,
                    chunk_start: chunk_idx(op, chunks.start)?,
                    chunk_end: chunk_idx(op, chunks.end)?,
                    bytes: byte_range(op, &bytes)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        fetches.insert(hash(op, &h)?, list);
    }
    Reconstruction {
        offset_into_first_range,
        terms: terms(op, raw_terms)?,
        fetches,
        api_version,
    }
    .validate(op)
}

/// Parses a `/v1/reconstructions` answer.
pub fn parse_v1(body: &[u8]) -> Result<Reconstruction> {
    const OP: &str = "reconstruction v1";
    let raw: RawV1 = parse_json(OP, body)?;
    let fetches = raw.fetch_info.into_iter().map(|(h, entries)| {
        let entries = entries.into_iter().map(|e| (e.url, e.range, e.url_range));
        (h, entries.collect())
    });
    assemble(OP, 1, raw.offset_into_first_range, raw.terms, fetches)
}

/// Parses a `/v2/reconstructions` answer (multi-range entries are split into one
/// [`FetchEntry`] per range with the same URL, as hf_xet does by default).
pub fn parse_v2(body: &[u8]) -> Result<Reconstruction> {
    const OP: &str = "reconstruction v2";
    let raw: RawV2 = parse_json(OP, body)?;
    let fetches = raw.xorbs.into_iter().map(|(h, entries)| {
        let entries = entries.into_iter().flat_map(|e| {
            let url = e.url;
            e.ranges
                .into_iter()
                .map(move |r| (url.clone(), r.chunks, r.bytes))
        });
        (h, entries.collect())
    });
    assemble(OP, 2, raw.offset_into_first_range, raw.terms, fetches)
}

#[cfg(test)]
mod tests {
    use super::*;

    const X: &str = "2fb4ece40b03724f48e0ef6cb8d871f47430b8e00ab3833f7b987625d674ca2c";

    #[test]
    fn v2_recorded_answer() {
        let body = format!(
            r#"{{"offset_into_first_range": 0, "terms": [{{"hash": "{X}", "unpacked_length": 3158073, "range": {{"start": 54, "end": 106}}}}], "xorbs": {{"{X}": [{{"url": "http://127.0.0.1:42971/xorbs/default/{X}?X-Xet-Signed-Range=1&Expires=1795651997&Signature=16746fada001c87c", "ranges": [{{"chunks": {{"start": 54, "end": 106}}, "bytes": {{"start": 3158602, "end": 6317090}}}}]}}]}}}}"#
        );
        let r = parse_v2(body.as_bytes()).unwrap();
        assert_eq!(r.api_version, 2);
        assert_eq!(r.terms.len(), 1);
        let t = r.terms[0];
        assert_eq!(
            (t.chunk_start, t.chunk_end, t.unpacked_length),
            (54, 106, 3158073)
        );
        let f = r.fetch_for(&t).unwrap();
        assert_eq!(f.bytes, ByteRange::new(3158602, 6317090).unwrap());
        assert_eq!(f.bytes.len(), 3158489);
        assert!(f.url.contains("Signature=16746fada001c87c"));
    }

    #[test]
    fn v1_and_v2_normalize_identically() {
        let v1 = format!(
            r#"{{"offset_into_first_range": 5, "terms": [{{"hash": "{X}", "unpacked_length": 100, "range": {{"start": 0, "end": 2}}}}, {{"hash": "{X}", "unpacked_length": 50, "range": {{"start": 3, "end": 4}}}}], "fetch_info": {{"{X}": [{{"range": {{"start": 0, "end": 2}}, "url": "u", "url_range": {{"start": 0, "end": 99}}}}, {{"range": {{"start": 3, "end": 4}}, "url": "u", "url_range": {{"start": 150, "end": 199}}}}]}}}}"#
        );
        let v2 = format!(
            r#"{{"offset_into_first_range": 5, "terms": [{{"hash": "{X}", "unpacked_length": 100, "range": {{"start": 0, "end": 2}}}}, {{"hash": "{X}", "unpacked_length": 50, "range": {{"start": 3, "end": 4}}}}], "xorbs": {{"{X}": [{{"url": "u", "ranges": [{{"chunks": {{"start": 0, "end": 2}}, "bytes": {{"start": 0, "end": 99}}}}, {{"chunks": {{"start": 3, "end": 4}}, "bytes": {{"start": 150, "end": 199}}}}]}}]}}}}"#
        );
        let mut a = parse_v1(v1.as_bytes()).unwrap();
        let b = parse_v2(v2.as_bytes()).unwrap();
        assert_eq!(a.api_version, 1);
        a.api_version = 2;
        assert_eq!(a, b);
        assert_eq!(b.unpacked_len(), 150);
        assert_eq!(b.fetch_for(&b.terms[1]).unwrap().bytes.start, 150);
    }

    #[test]
    fn invalid_answers_are_decode_errors() {
        // A term without a covering fetch entry.
        let body = format!(
            r#"{{"offset_into_first_range": 0, "terms": [{{"hash": "{X}", "unpacked_length": 1, "range": {{"start": 0, "end": 3}}}}], "xorbs": {{"{X}": [{{"url": "u", "ranges": [{{"chunks": {{"start": 0, "end": 2}}, "bytes": {{"start": 0, "end": 9}}}}]}}]}}}}"#
        );
        assert!(matches!(
            parse_v2(body.as_bytes()),
            Err(UpstreamError::Decode { .. })
        ));
        // Inverted byte range.
        let body = format!(
            r#"{{"terms": [{{"hash": "{X}", "unpacked_length": 1, "range": {{"start": 0, "end": 1}}}}], "fetch_info": {{"{X}": [{{"range": {{"start": 0, "end": 1}}, "url": "u", "url_range": {{"start": 9, "end": 1}}}}]}}}}"#
        );
        assert!(parse_v1(body.as_bytes()).is_err());
        // Offset beyond the first term.
        let body = format!(
            r#"{{"offset_into_first_range": 10, "terms": [{{"hash": "{X}", "unpacked_length": 10, "range": {{"start": 0, "end": 1}}}}], "fetch_info": {{"{X}": [{{"range": {{"start": 0, "end": 1}}, "url": "u", "url_range": {{"start": 0, "end": 1}}}}]}}}}"#
        );
        assert!(parse_v1(body.as_bytes()).is_err());
        assert!(parse_v1(b"[]").is_err());
        assert!(
            parse_v2(
                br#"{"terms":[{"hash":"zz","unpacked_length":1,"range":{"start":0,"end":1}}]}"#
            )
            .is_err()
        );
        // Empty reconstruction is fine.
        let r = parse_v2(br#"{"offset_into_first_range":0,"terms":[],"xorbs":{}}"#).unwrap();
        assert!(r.terms.is_empty());
    }

    #[test]
    fn byte_ranges() {
        assert_eq!(
            ByteRange::from_len(10, 5).unwrap(),
            ByteRange::new(10, 14).unwrap()
        );
        assert!(ByteRange::from_len(10, 0).is_err());
        assert!(ByteRange::from_len(u64::MAX, 2).is_err());
        assert!(ByteRange::new(5, 4).is_err());
        assert_eq!(ByteRange::new(0, 0).unwrap().header_value(), "bytes=0-0");
        assert_eq!(ByteRange::new(0, 0).unwrap().len(), 1);
    }

    /// Regression (found by fuzz/fuzz_targets/reconstruction_json.rs): a full-width byte
    /// range and terms whose lengths overflow a u64 made `ByteRange::len` and
    /// `unpacked_len` overflow (a panic in debug builds, a wrong length in release).
    #[test]
    fn extreme_lengths_are_refused() {
        let max = u64::MAX;
        let full = format!(
            r#"{{"terms": [{{"hash": "{X}", "unpacked_length": 5, "range": {{"start": 0, "end": 2}}}}], "xorbs": {{"{X}": [{{"url": "u", "ranges": [{{"chunks": {{"start": 0, "end": 2}}, "bytes": {{"start": 0, "end": {max}}}}}]}}]}}}}"#
        );
        assert!(parse_v2(full.as_bytes()).is_err());
        let huge = format!(
            r#"{{"terms": [{{"hash": "{X}", "unpacked_length": {max}, "range": {{"start": 0, "end": 1}}}}, {{"hash": "{X}", "unpacked_length": 5, "range": {{"start": 0, "end": 1}}}}], "xorbs": {{"{X}": [{{"url": "u", "ranges": [{{"chunks": {{"start": 0, "end": 2}}, "bytes": {{"start": 0, "end": 9}}}}]}}]}}}}"#
        );
        assert!(parse_v2(huge.as_bytes()).is_err());
        // The largest representable range is still fine.
        let ok = ByteRange::new(1, max).unwrap();
        assert_eq!(ok.len(), max);
        assert!(ByteRange::new(0, max).is_err());
        let hand_built = ByteRange { start: 0, end: max };
        assert_eq!(hand_built.len(), max);
    }
}
