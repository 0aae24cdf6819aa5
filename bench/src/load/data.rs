//! Object contents: a deterministic function of (seed, key), generated on the fly and
//! checked on the fly, so neither side ever holds a whole object.
//!
//! Object bytes are the BLAKE3 XOF of `seed (8 bytes LE) || key` under the derive-key
//! context `"hugbucket-bench object data v1"`; the object size comes from
//! [`SizeSpec::size_for`](super::spec::SizeSpec::size_for). Any byte range can be produced
//! by seeking the XOF, which multipart uses for its parts.

use bytes::Bytes;

/// Size of the pieces bodies are generated and verified in.
pub const PIECE: usize = 256 * 1024;

fn xof(seed: u64, key: &str) -> blake3::OutputReader {
    blake3::Hasher::new_derive_key("hugbucket-bench object data v1")
        .update(&seed.to_le_bytes())
        .update(key.as_bytes())
        .finalize_xof()
}

/// Bytes `offset .. offset + len` of object `key` (only for small ranges: it allocates `len`).
pub fn object_bytes(seed: u64, key: &str, offset: u64, len: usize) -> Bytes {
    let mut r = xof(seed, key);
    r.set_position(offset);
    let mut b = vec![0u8; len];
    r.fill(&mut b);
    Bytes::from(b)
}

/// Bytes `offset .. offset + len` of object `key` as pieces of at most [`PIECE`] bytes,
/// each generated when the iterator is advanced.
pub struct ObjectPieces {
    reader: blake3::OutputReader,
    left: u64,
}

impl ObjectPieces {
    /// The range `offset .. offset + len` of object `key` under `seed`.
    pub fn new(seed: u64, key: &str, offset: u64, len: u64) -> Self {
        let mut reader = xof(seed, key);
        reader.set_position(offset);
        Self { reader, left: len }
    }
}

impl Iterator for ObjectPieces {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        if self.left == 0 {
            return None;
        }
        let n = self.left.min(PIECE as u64) as usize;
        let mut b = vec![0u8; n];
        self.reader.fill(&mut b);
        self.left -= n as u64;
        Some(Bytes::from(b))
    }
}

/// Checks received bytes against the expected object as they arrive.
pub struct Verifier {
    reader: blake3::OutputReader,
    expected_len: u64,
    pos: u64,
    buf: Vec<u8>,
    mismatch_at: Option<u64>,
}

impl Verifier {
    /// Expects object `key` of `expected_len` bytes.
    pub fn new(seed: u64, key: &str, expected_len: u64) -> Self {
        Self {
            reader: xof(seed, key),
            expected_len,
            pos: 0,
            buf: Vec::new(),
            mismatch_at: None,
        }
    }

    /// Feeds the next received bytes.
    pub fn update(&mut self, mut data: &[u8]) {
        if self.mismatch_at.is_some() {
            self.pos += data.len() as u64;
            return;
        }
        while !data.is_empty() {
            if self.pos >= self.expected_len {
                // More than expected: finish() reports the length.
                self.pos += data.len() as u64;
                return;
            }
            let n = data
                .len()
                .min(PIECE)
                .min((self.expected_len - self.pos) as usize);
            self.buf.resize(n, 0);
            self.reader.fill(&mut self.buf);
            if self.buf[..] != data[..n] {
                let i = self.buf.iter().zip(data).position(|(a, b)| a != b);
                self.mismatch_at = Some(self.pos + i.unwrap_or(0) as u64);
                self.pos += data.len() as u64;
                return;
            }
            self.pos += n as u64;
            data = &data[n..];
        }
    }

    /// `Ok` when every byte and the length matched; otherwise what differed.
    pub fn finish(&self) -> Result<(), String> {
        if let Some(at) = self.mismatch_at {
            return Err(format!(
                "content mismatch at byte {at} (of {} received)",
                self.pos
            ));
        }
        if self.pos != self.expected_len {
            return Err(format!(
                "length mismatch: received {} bytes, expected {}",
                self.pos, self.expected_len
            ));
        }
        Ok(())
    }
}

/// SplitMix64: a cheap, well-mixed hash of a counter (picks mix operations and keys).
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(seed: u64, key: &str, off: u64, len: u64) -> Vec<u8> {
        let pieces: Vec<Bytes> = ObjectPieces::new(seed, key, off, len).collect();
        assert!(pieces.iter().all(|p| !p.is_empty() && p.len() <= PIECE));
        pieces.concat()
    }

    #[test]
    fn stream_pieces_match_seeked_ranges() {
        let len = 3 * PIECE as u64 + 17;
        let whole = collect(1, "a/b", 0, len);
        assert_eq!(whole.len() as u64, len);
        assert_eq!(&whole[..], &object_bytes(1, "a/b", 0, len as usize)[..]);
        // A part starting mid-object is the same bytes as the slice of the whole.
        let part = collect(1, "a/b", PIECE as u64 + 5, 1000);
        assert_eq!(&part[..], &whole[PIECE + 5..PIECE + 1005]);
        // Different seed or key: different bytes.
        assert_ne!(collect(2, "a/b", 0, 64), whole[..64]);
        assert_ne!(collect(1, "a/c", 0, 64), whole[..64]);
    }

    #[test]
    fn verifier_accepts_the_object_in_any_split_and_rejects_changes() {
        let len = PIECE as u64 * 2 + 3;
        let data = object_bytes(9, "k", 0, len as usize);
        for split in [1usize, 7, 4096, PIECE + 1, len as usize] {
            let mut v = Verifier::new(9, "k", len);
            for c in data.chunks(split) {
                v.update(c);
            }
            assert_eq!(v.finish(), Ok(()), "split {split}");
        }
        let mut bad = data.to_vec();
        bad[PIECE + 10] ^= 1;
        let mut v = Verifier::new(9, "k", len);
        v.update(&bad);
        let e = v.finish().unwrap_err();
        assert!(e.contains(&format!("byte {}", PIECE + 10)), "{e}");
        // Short and long bodies.
        let mut v = Verifier::new(9, "k", len);
        v.update(&data[..100]);
        assert!(v.finish().unwrap_err().contains("length mismatch"));
        let mut v = Verifier::new(9, "k", 100);
        v.update(&data[..101]);
        assert!(v.finish().unwrap_err().contains("length mismatch"));
        // Another seed's bytes fail.
        let mut v = Verifier::new(10, "k", len);
        v.update(&data);
        assert!(v.finish().is_err());
    }
}
