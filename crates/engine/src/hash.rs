//! The Xet hash type and every keyed BLAKE3 construction of the protocol (spec §1, §3).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::EngineError;

/// BLAKE3 key for chunk hashes (spec §3.1 `DATA_KEY`).
pub const DATA_KEY: [u8; 32] = [
    102, 151, 245, 119, 91, 149, 80, 222, 49, 53, 203, 172, 165, 151, 24, 28, 157, 228, 33, 16,
    155, 235, 43, 88, 180, 208, 176, 75, 147, 173, 242, 41,
];

/// BLAKE3 key for Merkle internal nodes (spec §3.1).
pub const INTERNAL_NODE_KEY: [u8; 32] = [
    1, 126, 197, 199, 165, 71, 41, 150, 253, 148, 102, 102, 180, 138, 2, 230, 93, 221, 83, 111, 55,
    199, 109, 210, 248, 99, 82, 230, 74, 83, 113, 63,
];

/// BLAKE3 key for term verification ("range") hashes (spec §3.1).
pub const VERIFICATION_KEY: [u8; 32] = [
    127, 24, 87, 214, 206, 86, 237, 102, 18, 127, 249, 19, 231, 165, 195, 243, 164, 205, 38, 213,
    181, 219, 73, 230, 65, 36, 152, 127, 40, 251, 148, 195,
];

/// A 32-byte Xet hash.
///
/// Stored as the raw 32 bytes as they appear on the wire. Its string form is the Xet hex
/// encoding: each 8-byte group read as a little-endian `u64`, printed as 16 lowercase hex
/// digits. Ordering compares the four little-endian words in turn, which equals the
/// lexicographic order of the hex strings.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct XetHash([u8; 32]);

impl XetHash {
    /// The all-zero hash (empty Merkle tree, empty file).
    pub const ZERO: XetHash = XetHash([0; 32]);

    /// Wraps 32 raw bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        XetHash(bytes)
    }

    /// Reads a hash from the first 32 bytes of `bytes`; `None` when shorter.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes
            .get(..32)
            .map(|b| XetHash(b.try_into().expect("32 bytes")))
    }

    /// The raw 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The four little-endian words.
    pub fn words(&self) -> [u64; 4] {
        std::array::from_fn(|i| self.word(i))
    }

    /// Word `i` (0..4), bytes `8i..8i+8` read little-endian.
    pub fn word(&self, i: usize) -> u64 {
        u64::from_le_bytes(self.0[i * 8..i * 8 + 8].try_into().expect("8 bytes"))
    }

    /// The truncated hash used by shard lookup tables (word 0).
    pub fn truncated(&self) -> u64 {
        self.word(0)
    }

    /// `hash % n` as the protocol defines it (word 3 modulo n).
    pub fn modulo(&self, n: u64) -> u64 {
        self.word(3) % n
    }

    /// Whether this chunk hash is eligible for a global dedup query (spec §3.7).
    pub fn is_global_dedup_eligible(&self) -> bool {
        self.modulo(crate::constants::GLOBAL_DEDUP_CHUNK_MODULUS) == 0
    }

    /// The Xet hex string (64 lowercase hex digits).
    pub fn to_hex(&self) -> String {
        let mut out = [0u8; 64];
        self.write_hex(&mut out);
        String::from_utf8(out.to_vec()).expect("hex is ascii")
    }

    /// Writes the Xet hex form into `out`.
    pub fn write_hex(&self, out: &mut [u8; 64]) {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        for group in 0..4 {
            for j in 0..8 {
                // Byte order inside each group is reversed.
                let b = self.0[group * 8 + 7 - j];
                out[group * 16 + 2 * j] = DIGITS[(b >> 4) as usize];
                out[group * 16 + 2 * j + 1] = DIGITS[(b & 15) as usize];
            }
        }
    }

    /// Parses a Xet hex string (64 hex digits, any case).
    pub fn from_hex(s: &str) -> Result<Self, EngineError> {
        let bad = || EngineError::InvalidHashString(truncate_for_error(s));
        let s = s.as_bytes();
        if s.len() != 64 {
            return Err(bad());
        }
        let mut bytes = [0u8; 32];
        for group in 0..4 {
            for j in 0..8 {
                let hi = hex_val(s[group * 16 + 2 * j]).ok_or_else(bad)?;
                let lo = hex_val(s[group * 16 + 2 * j + 1]).ok_or_else(bad)?;
                bytes[group * 8 + 7 - j] = (hi << 4) | lo;
            }
        }
        Ok(XetHash(bytes))
    }

    /// Builds the shard form of a standard SHA-256 digest (spec §3.6): each 8-byte group
    /// reversed, so that the Xet hex string equals the ordinary SHA-256 hex.
    pub fn from_sha256_digest(digest: &[u8; 32]) -> Self {
        let mut bytes = *digest;
        for group in bytes.chunks_exact_mut(8) {
            group.reverse();
        }
        XetHash(bytes)
    }

    /// `blake3_keyed(key, self)` — how global-dedup shards protect chunk hashes (spec §3.7).
    pub fn hmac(&self, key: &XetHash) -> XetHash {
        XetHash(*blake3::keyed_hash(&key.0, &self.0).as_bytes())
    }
}

fn truncate_for_error(s: &str) -> String {
    s.chars().take(80).collect()
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl Ord for XetHash {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.words().cmp(&other.words())
    }
}

impl PartialOrd for XetHash {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for XetHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = [0u8; 64];
        self.write_hex(&mut out);
        f.write_str(std::str::from_utf8(&out).expect("hex is ascii"))
    }
}

impl fmt::Debug for XetHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "XetHash({self})")
    }
}

impl FromStr for XetHash {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        XetHash::from_hex(s)
    }
}

impl Serialize for XetHash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut out = [0u8; 64];
        self.write_hex(&mut out);
        serializer.serialize_str(std::str::from_utf8(&out).expect("hex is ascii"))
    }
}

impl<'de> Deserialize<'de> for XetHash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        XetHash::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

/// Chunk hash: `blake3_keyed(DATA_KEY, chunk)` (spec §2.4).
pub fn chunk_hash(chunk: &[u8]) -> XetHash {
    XetHash(*blake3::keyed_hash(&DATA_KEY, chunk).as_bytes())
}

/// How many leading members of `rest` form the next Merkle group (spec §3.2 `next_merge_cut`).
fn next_merge_cut(rest: &[(XetHash, u64)]) -> usize {
    if rest.len() <= 2 {
        return rest.len();
    }
    let end = rest.len().min(9);
    (2..end)
        .find(|&i| rest[i].0.modulo(4) == 0)
        .map_or(end, |i| i + 1)
}

/// Hash of one Merkle group: keyed BLAKE3 over `"{hex} : {size}\n"` lines.
fn merge_group(group: &[(XetHash, u64)]) -> (XetHash, u64) {
    let mut hasher = blake3::Hasher::new_keyed(&INTERNAL_NODE_KEY);
    let mut line = [0u8; 64 + 3 + 20 + 1];
    let mut total = 0u64;
    for (hash, size) in group {
        let mut hex = [0u8; 64];
        hash.write_hex(&mut hex);
        line[..64].copy_from_slice(&hex);
        line[64..67].copy_from_slice(b" : ");
        let mut n = 67;
        let mut digits = [0u8; 20];
        let mut d = 0;
        let mut v = *size;
        loop {
            digits[d] = b'0' + (v % 10) as u8;
            d += 1;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        for k in (0..d).rev() {
            line[n] = digits[k];
            n += 1;
        }
        line[n] = b'\n';
        hasher.update(&line[..=n]);
        total += size;
    }
    (XetHash(*hasher.finalize().as_bytes()), total)
}

/// Aggregated Merkle hash of `(hash, size)` pairs (spec §3.2). This is the xorb hash of a
/// xorb's chunks; the empty list gives [`XetHash::ZERO`].
pub fn aggregated_hash(nodes: &[(XetHash, u64)]) -> XetHash {
    match nodes.len() {
        0 => return XetHash::ZERO,
        1 => return nodes[0].0,
        _ => {}
    }
    let mut level: Vec<(XetHash, u64)> = Vec::with_capacity(nodes.len() / 2 + 1);
    let mut rest = nodes;
    while !rest.is_empty() {
        let cut = next_merge_cut(rest);
        level.push(merge_group(&rest[..cut]));
        rest = &rest[cut..];
    }
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len() / 2 + 1);
        let mut rest = &level[..];
        while !rest.is_empty() {
            let cut = next_merge_cut(rest);
            next.push(merge_group(&rest[..cut]));
            rest = &rest[cut..];
        }
        level = next;
    }
    level[0].0
}

/// Xorb hash of a xorb's chunks: the aggregated hash (spec §3.3).
pub fn xorb_hash(chunks: &[(XetHash, u64)]) -> XetHash {
    aggregated_hash(chunks)
}

/// File hash with an explicit salt (spec §3.4); an empty chunk list gives [`XetHash::ZERO`].
pub fn file_hash_with_salt(chunks: &[(XetHash, u64)], salt: &[u8; 32]) -> XetHash {
    if chunks.is_empty() {
        return XetHash::ZERO;
    }
    let root = aggregated_hash(chunks);
    XetHash(*blake3::keyed_hash(salt, root.as_bytes()).as_bytes())
}

/// File hash of all of a file's chunks in file order (spec §3.4).
pub fn file_hash(chunks: &[(XetHash, u64)]) -> XetHash {
    file_hash_with_salt(chunks, &[0; 32])
}

/// Term verification hash over the raw chunk hashes of a term (spec §3.5).
pub fn verification_hash(chunk_hashes: &[XetHash]) -> XetHash {
    let mut hasher = blake3::Hasher::new_keyed(&VERIFICATION_KEY);
    for h in chunk_hashes {
        hasher.update(h.as_bytes());
    }
    XetHash(*hasher.finalize().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_encoding_matches_spec_example() {
        let bytes: [u8; 32] = std::array::from_fn(|i| i as u8);
        let h = XetHash::from_bytes(bytes);
        assert_eq!(
            h.to_hex(),
            "07060504030201000f0e0d0c0b0a090817161514131211101f1e1d1c1b1a1918"
        );
        assert_eq!(XetHash::from_hex(&h.to_hex()).unwrap(), h);
        assert_eq!(XetHash::from_hex(&h.to_hex().to_uppercase()).unwrap(), h);
        assert_eq!(h.to_string(), h.to_hex());
    }

    #[test]
    fn invalid_hex_is_a_typed_error() {
        for s in [
            "",
            "00",
            &"g".repeat(64),
            &"0".repeat(63),
            &"0".repeat(65),
            &"é".repeat(32),
        ] {
            assert!(matches!(
                XetHash::from_hex(s),
                Err(EngineError::InvalidHashString(_))
            ));
        }
    }

    #[test]
    fn serde_roundtrip_as_hex_string() {
        let h = chunk_hash(b"abc");
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(json, format!("\"{h}\""));
        let back: XetHash = serde_json::from_str(&json).unwrap();
        assert_eq!(back, h);
        assert!(serde_json::from_str::<XetHash>("\"zz\"").is_err());
    }

    #[test]
    fn ordering_equals_hex_order() {
        let mut hashes: Vec<XetHash> = (0u32..200).map(|i| chunk_hash(&i.to_le_bytes())).collect();
        let mut by_hex = hashes.clone();
        hashes.sort();
        by_hex.sort_by_key(|h| h.to_hex());
        assert_eq!(hashes, by_hex);
    }

    #[test]
    fn sha256_shard_byte_order() {
        // Spec §3.6: sha256 e9b0c031f0493d3f… is stored as bytes 3f3d49f031c0b0e9…
        let mut digest = [0u8; 32];
        digest[..8].copy_from_slice(&[0xe9, 0xb0, 0xc0, 0x31, 0xf0, 0x49, 0x3d, 0x3f]);
        let h = XetHash::from_sha256_digest(&digest);
        assert_eq!(
            &h.as_bytes()[..8],
            &[0x3f, 0x3d, 0x49, 0xf0, 0x31, 0xc0, 0xb0, 0xe9]
        );
        assert!(h.to_hex().starts_with("e9b0c031f0493d3f"));
    }

    #[test]
    fn empty_and_single() {
        assert_eq!(aggregated_hash(&[]), XetHash::ZERO);
        assert_eq!(file_hash(&[]), XetHash::ZERO);
        let h = chunk_hash(b"x");
        assert_eq!(aggregated_hash(&[(h, 1)]), h);
    }
}
