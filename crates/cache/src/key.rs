//! Cache keys: a xorb hash and a chunk index range.

use std::fmt;

use hugbucket_engine::hash::XetHash;

/// Identifies the decoded bytes of chunks `[start, end)` of one xorb: what one reconstruction
/// term (or one fetch-info entry) covers (spec §6.5).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkRangeKey {
    /// The xorb.
    pub xorb: XetHash,
    /// First chunk index.
    pub start: u32,
    /// One past the last chunk index.
    pub end: u32,
}

impl ChunkRangeKey {
    /// Length of the encoded form used as the index key.
    pub const ENCODED_LEN: usize = 40;

    /// Builds a key; `start < end` is checked by `put`, not here.
    pub const fn new(xorb: XetHash, start: u32, end: u32) -> Self {
        ChunkRangeKey { xorb, start, end }
    }

    /// Number of chunks covered (0 when `end <= start`).
    pub fn num_chunks(&self) -> u32 {
        self.end.saturating_sub(self.start)
    }

    /// Whether `self` covers every chunk of `other` (same xorb, `self` ⊇ `other`).
    pub fn covers(&self, other: &ChunkRangeKey) -> bool {
        self.xorb == other.xorb && self.start <= other.start && other.end <= self.end
    }

    /// Index key form: the 32 raw hash bytes, then `start` and `end` big-endian, so that
    /// the keys of one xorb are contiguous and ordered by range.
    pub fn encode(&self) -> [u8; Self::ENCODED_LEN] {
        let mut out = [0u8; Self::ENCODED_LEN];
        out[..32].copy_from_slice(self.xorb.as_bytes());
        out[32..36].copy_from_slice(&self.start.to_be_bytes());
        out[36..40].copy_from_slice(&self.end.to_be_bytes());
        out
    }

    /// Inverse of [`encode`](Self::encode); `None` for anything else.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != Self::ENCODED_LEN {
            return None;
        }
        let xorb = XetHash::from_slice(&bytes[..32])?;
        let start = u32::from_be_bytes(bytes[32..36].try_into().ok()?);
        let end = u32::from_be_bytes(bytes[36..40].try_into().ok()?);
        Some(ChunkRangeKey { xorb, start, end })
    }
}

impl fmt::Debug for ChunkRangeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}..{})", self.xorb, self.start, self.end)
    }
}

impl fmt::Display for ChunkRangeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_roundtrip_and_order() {
        let h = XetHash::from_bytes([7; 32]);
        let a = ChunkRangeKey::new(h, 1, 5);
        let b = ChunkRangeKey::new(h, 2, 3);
        assert_eq!(ChunkRangeKey::decode(&a.encode()), Some(a));
        assert!(a.encode() < b.encode());
        assert!(a.covers(&b));
        assert!(!b.covers(&a));
        assert_eq!(ChunkRangeKey::decode(&a.encode()[..39]), None);
    }
}
