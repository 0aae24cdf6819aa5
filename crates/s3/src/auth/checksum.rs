//! Flexible checksums (`x-amz-checksum-*`): CRC32, CRC32C, CRC64/NVME, SHA-1, SHA-256.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hugbucket_engine::crc64::Crc64Nvme;
use sha1::Digest as _;

/// A checksum algorithm S3 clients may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChecksumAlgorithm {
    /// CRC-32 (IEEE).
    Crc32,
    /// CRC-32C (Castagnoli).
    Crc32c,
    /// CRC-64/NVME.
    Crc64Nvme,
    /// SHA-1.
    Sha1,
    /// SHA-256.
    Sha256,
}

impl ChecksumAlgorithm {
    /// All algorithms.
    pub const ALL: [Self; 5] = [
        Self::Crc32,
        Self::Crc32c,
        Self::Crc64Nvme,
        Self::Sha1,
        Self::Sha256,
    ];

    /// The header (or trailer) name, e.g. `x-amz-checksum-crc32c`.
    pub fn header_name(self) -> &'static str {
        match self {
            Self::Crc32 => "x-amz-checksum-crc32",
            Self::Crc32c => "x-amz-checksum-crc32c",
            Self::Crc64Nvme => "x-amz-checksum-crc64nvme",
            Self::Sha1 => "x-amz-checksum-sha1",
            Self::Sha256 => "x-amz-checksum-sha256",
        }
    }

    /// Parses a header name (case-insensitive).
    pub fn from_header_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.header_name().eq_ignore_ascii_case(name.trim()))
    }

    /// Parses `x-amz-checksum-algorithm` / `x-amz-sdk-checksum-algorithm` values.
    pub fn from_algorithm_name(name: &str) -> Option<Self> {
        match name.trim().to_ascii_uppercase().as_str() {
            "CRC32" => Some(Self::Crc32),
            "CRC32C" => Some(Self::Crc32c),
            "CRC64NVME" => Some(Self::Crc64Nvme),
            "SHA1" => Some(Self::Sha1),
            "SHA256" => Some(Self::Sha256),
            _ => None,
        }
    }

    /// A fresh hasher.
    pub fn hasher(self) -> ChecksumHasher {
        match self {
            Self::Crc32 => ChecksumHasher::Crc32(crc32fast::Hasher::new()),
            Self::Crc32c => ChecksumHasher::Crc32c(0),
            Self::Crc64Nvme => ChecksumHasher::Crc64(Crc64Nvme::new()),
            Self::Sha1 => ChecksumHasher::Sha1(sha1::Sha1::new()),
            Self::Sha256 => ChecksumHasher::Sha256(sha2::Sha256::new()),
        }
    }
}

/// A running checksum.
#[derive(Clone)]
pub enum ChecksumHasher {
    /// CRC-32.
    Crc32(crc32fast::Hasher),
    /// CRC-32C (running value).
    Crc32c(u32),
    /// CRC-64/NVME.
    Crc64(Crc64Nvme),
    /// SHA-1.
    Sha1(sha1::Sha1),
    /// SHA-256.
    Sha256(sha2::Sha256),
}

impl std::fmt::Debug for ChecksumHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChecksumHasher")
    }
}

impl ChecksumHasher {
    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Self::Crc32(h) => h.update(data),
            Self::Crc32c(v) => *v = crc32c::crc32c_append(*v, data),
            Self::Crc64(h) => h.update(data),
            Self::Sha1(h) => h.update(data),
            Self::Sha256(h) => h.update(data),
        }
    }

    /// The raw digest bytes (CRCs big-endian, as S3 encodes them).
    pub fn finish(self) -> Vec<u8> {
        match self {
            Self::Crc32(h) => h.finalize().to_be_bytes().to_vec(),
            Self::Crc32c(v) => v.to_be_bytes().to_vec(),
            Self::Crc64(h) => h.finish().to_be_bytes().to_vec(),
            Self::Sha1(h) => h.finalize().to_vec(),
            Self::Sha256(h) => h.finalize().to_vec(),
        }
    }

    /// The base64 value as sent in `x-amz-checksum-*`.
    pub fn finish_base64(self) -> String {
        B64.encode(self.finish())
    }
}

/// Checksum of a whole buffer, base64.
pub fn checksum_base64(algo: ChecksumAlgorithm, data: &[u8]) -> String {
    let mut h = algo.hasher();
    h.update(data);
    h.finish_base64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // AWS's trailer example: 66560 bytes of 'a' have CRC32C sOO8/Q==.
        assert_eq!(
            checksum_base64(ChecksumAlgorithm::Crc32c, &vec![b'a'; 66560]),
            "sOO8/Q=="
        );
        // CRC-32 of "123456789" is 0xCBF43926.
        assert_eq!(
            checksum_base64(ChecksumAlgorithm::Crc32, b"123456789"),
            B64.encode(0xCBF4_3926u32.to_be_bytes())
        );
        assert_eq!(
            checksum_base64(ChecksumAlgorithm::Crc32c, b"123456789"),
            B64.encode(0xE306_9283u32.to_be_bytes())
        );
        // CRC-64/NVME check value.
        assert_eq!(
            checksum_base64(ChecksumAlgorithm::Crc64Nvme, b"123456789"),
            B64.encode(0xAE8B_1486_0A79_9888u64.to_be_bytes())
        );
        assert_eq!(
            checksum_base64(ChecksumAlgorithm::Sha1, b""),
            "2jmj7l5rSw0yVb/vlWAYkK/YBwk="
        );
        assert_eq!(
            ChecksumAlgorithm::from_header_name("X-Amz-Checksum-CRC64NVME"),
            Some(ChecksumAlgorithm::Crc64Nvme)
        );
        let mut h = ChecksumAlgorithm::Crc32c.hasher();
        h.update(b"1234");
        h.update(b"56789");
        assert_eq!(
            h.finish_base64(),
            checksum_base64(ChecksumAlgorithm::Crc32c, b"123456789")
        );
    }
}
