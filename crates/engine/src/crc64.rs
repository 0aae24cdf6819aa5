//! CRC-64/NVME (used by xorb upload grants).
//!
//! Parameters: width 64, polynomial `0xAD93D23594C93659`, reflected input and output,
//! init and xorout all ones; `check("123456789") = 0xAE8B14860A799888`.
//!
//! Table driven, slicing-by-16: sixteen 256-entry tables built at compile time let the loop
//! consume 16 bytes per step with independent table lookups.

/// The polynomial in normal (MSB-first) notation.
pub const POLY: u64 = 0xAD93_D235_94C9_3659;

/// The polynomial bit-reversed, as used by the reflected (LSB-first) algorithm.
const POLY_REFLECTED: u64 = POLY.reverse_bits();

/// Bytes consumed per step of the sliced loop.
const SLICES: usize = 16;

const fn build_tables() -> [[u64; 256]; SLICES] {
    let mut tables = [[0u64; 256]; SLICES];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u64;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ POLY_REFLECTED
            } else {
                crc >> 1
            };
            bit += 1;
        }
        tables[0][i] = crc;
        i += 1;
    }
    let mut t = 1;
    while t < SLICES {
        let mut i = 0;
        while i < 256 {
            let prev = tables[t - 1][i];
            tables[t][i] = (prev >> 8) ^ tables[0][(prev & 0xff) as usize];
            i += 1;
        }
        t += 1;
    }
    tables
}

/// `TABLES[k][b]`: the CRC register contribution of byte `b` followed by `k` zero bytes.
static TABLES: [[u64; 256]; SLICES] = build_tables();

/// Advances the raw (not inverted) register over `data`.
fn update_raw(mut crc: u64, data: &[u8]) -> u64 {
    let t = &TABLES;
    let mut blocks = data.chunks_exact(SLICES);
    for block in &mut blocks {
        let lo = u64::from_le_bytes(block[..8].try_into().expect("8 bytes")) ^ crc;
        let hi = &block[8..];
        crc = t[15][(lo & 0xff) as usize]
            ^ t[14][((lo >> 8) & 0xff) as usize]
            ^ t[13][((lo >> 16) & 0xff) as usize]
            ^ t[12][((lo >> 24) & 0xff) as usize]
            ^ t[11][((lo >> 32) & 0xff) as usize]
            ^ t[10][((lo >> 40) & 0xff) as usize]
            ^ t[9][((lo >> 48) & 0xff) as usize]
            ^ t[8][(lo >> 56) as usize]
            ^ t[7][hi[0] as usize]
            ^ t[6][hi[1] as usize]
            ^ t[5][hi[2] as usize]
            ^ t[4][hi[3] as usize]
            ^ t[3][hi[4] as usize]
            ^ t[2][hi[5] as usize]
            ^ t[1][hi[6] as usize]
            ^ t[0][hi[7] as usize];
    }
    for &b in blocks.remainder() {
        crc = (crc >> 8) ^ t[0][((crc ^ b as u64) & 0xff) as usize];
    }
    crc
}

/// CRC-64/NVME of `data`.
pub fn crc64_nvme(data: &[u8]) -> u64 {
    let mut c = Crc64Nvme::new();
    c.update(data);
    c.finish()
}

/// Streaming CRC-64/NVME: feeding the data in any pieces gives [`crc64_nvme`] of the whole.
#[derive(Debug, Clone, Copy)]
pub struct Crc64Nvme {
    /// The register (init all ones, not yet xored out).
    state: u64,
}

impl Default for Crc64Nvme {
    fn default() -> Self {
        Self::new()
    }
}

impl Crc64Nvme {
    /// A CRC over no bytes yet.
    pub fn new() -> Self {
        Crc64Nvme { state: u64::MAX }
    }

    /// Feeds more bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.state = update_raw(self.state, data);
    }

    /// The CRC of everything fed so far (does not consume or reset the state).
    pub fn finish(&self) -> u64 {
        self.state ^ u64::MAX
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bit-at-a-time definition, independent of the tables.
    fn crc_bitwise(data: &[u8]) -> u64 {
        let mut crc = u64::MAX;
        for &b in data {
            crc ^= b as u64;
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0x9A6C_9329_AC4B_C9B5
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn check_value() {
        assert_eq!(crc64_nvme(b"123456789"), 0xAE8B_1486_0A79_9888);
        assert_eq!(crc_bitwise(b"123456789"), 0xAE8B_1486_0A79_9888);
        assert_eq!(POLY_REFLECTED, 0x9A6C_9329_AC4B_C9B5);
    }

    #[test]
    fn empty_is_zero() {
        // init all ones, xorout all ones, nothing fed.
        assert_eq!(crc64_nvme(&[]), 0);
    }

    #[test]
    fn matches_bitwise_on_all_lengths_and_alignments() {
        let mut data = vec![0u8; 300];
        blake3::Hasher::new()
            .update(b"crc64/unit")
            .finalize_xof()
            .fill(&mut data);
        for start in 0..17 {
            for end in start..data.len() {
                assert_eq!(
                    crc64_nvme(&data[start..end]),
                    crc_bitwise(&data[start..end]),
                    "{start}..{end}"
                );
            }
        }
    }

    #[test]
    fn streaming_equals_one_shot() {
        let mut data = vec![0u8; 100_003];
        blake3::Hasher::new()
            .update(b"crc64/stream")
            .finalize_xof()
            .fill(&mut data);
        let whole = crc64_nvme(&data);
        assert_eq!(whole, crc_bitwise(&data));
        for piece in [1usize, 7, 16, 4103, 65536] {
            let mut c = Crc64Nvme::new();
            for part in data.chunks(piece) {
                c.update(part);
            }
            assert_eq!(c.finish(), whole, "piece {piece}");
            // finish does not disturb the state
            assert_eq!(c.finish(), whole);
        }
    }
}
