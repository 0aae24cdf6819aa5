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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_segment_size() {
        assert_eq!(CacheConfig::new("/x", 100 << 30).segment_size, 64 << 20);
        assert_eq!(CacheConfig::new("/x", 64 << 20).segment_size, 8 << 20);
        assert_eq!(CacheConfig::new("/x", 1 << 20).segment_size, 1 << 20);
        assert!(CacheConfig::new("/x", 0).validate().is_err());
    }
}
