//! Cache configuration (`--cache-dir`, `--cache-size`).

use std::path::PathBuf;

use crate::error::{CacheError, Result};

/// Default segment file size.
pub const DEFAULT_SEGMENT_SIZE: u64 = 64 << 20;
/// Smallest segment size [`CacheConfig::new`] picks for small caches.
pub const MIN_AUTO_SEGMENT_SIZE: u64 = 1 << 20;

/// Where and how big the persistent cache is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    /// Directory owned by the cache (`segments/` and `index/` are created inside).
    pub dir: PathBuf,
    /// Bytes of segment files the cache keeps; exceeded by at most one segment.
    pub capacity: u64,
    /// Target size of a segment file, the unit of reclamation. An entry larger than this
    /// gets a segment of its own.
    pub segment_size: u64,
}

impl CacheConfig {
    /// A config with the segment size derived from the capacity: 64 MiB, or capacity / 8
    /// (at least 1 MiB) for caches under 512 MiB, so that eviction stays fine-grained.
    pub fn new(dir: impl Into<PathBuf>, capacity: u64) -> Self {
        let segment_size = (capacity / 8).clamp(MIN_AUTO_SEGMENT_SIZE, DEFAULT_SEGMENT_SIZE);
        CacheConfig {
            dir: dir.into(),
            capacity,
            segment_size,
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.capacity == 0 {
            return Err(CacheError::Config("capacity must be > 0".into()));
        }
        if self.segment_size == 0 || self.segment_size > u64::from(u32::MAX) {
            return Err(CacheError::Config(format!(
                "segment size {} must be in 1..=4 GiB",
                self.segment_size
            )));
        }
        Ok(())
    }
}

/// Parses a byte size as given to `--cache-size`: a plain number of bytes, or a number
/// followed by `K`, `M`, `G`, `T` (powers of 1024, optionally written `KiB`, `KB`, …;
/// case-insensitive). Fractions such as `1.5G` are accepted.
pub fn parse_byte_size(s: &str) -> Result<u64> {
    let bad = || CacheError::Config(format!("invalid byte size {s:?}"));
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(bad()),
    };
    if num.is_empty() {
        return Err(bad());
    }
    if let Ok(n) = num.parse::<u64>() {
        return n.checked_mul(1u64 << shift).ok_or_else(bad);
    }
    let f: f64 = num.parse().map_err(|_| bad())?;
    let v = f * (1u64 << shift) as f64;
    if !v.is_finite() || v < 0.0 || v >= u64::MAX as f64 {
        return Err(bad());
    }
    Ok(v as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes() {
        assert_eq!(parse_byte_size("123").unwrap(), 123);
        assert_eq!(parse_byte_size("4k").unwrap(), 4096);
        assert_eq!(parse_byte_size("10GiB").unwrap(), 10 << 30);
        assert_eq!(parse_byte_size(" 2 MB ").unwrap(), 2 << 20);
        assert_eq!(parse_byte_size("1.5G").unwrap(), 3 << 29);
        for bad in ["", "G", "12X", "-1", "1.2.3M", "99999999999T"] {
            assert!(parse_byte_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn auto_segment_size() {
        assert_eq!(CacheConfig::new("/x", 100 << 30).segment_size, 64 << 20);
        assert_eq!(CacheConfig::new("/x", 64 << 20).segment_size, 8 << 20);
        assert_eq!(CacheConfig::new("/x", 1 << 20).segment_size, 1 << 20);
        assert!(CacheConfig::new("/x", 0).validate().is_err());
    }
}
