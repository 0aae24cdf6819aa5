//! Xorb data files: `data_dir/xorbs/<hex>.xorb`, in footer form (chunk records ++ footer).
//! Written to a temp file, fsynced and renamed (and the directory fsynced) before the xorb
//! is recorded in the metadata store.
//!
//! On Linux the data goes to disk with `O_DIRECT` (from one block-aligned buffer, then the
//! file is cut to its exact length): a xorb is written once and read rarely, and copying it
//! through the page cache cost the hub more CPU than verifying it (`bench/results/`). Where
//! the file system refuses `O_DIRECT` (tmpfs), the ordinary buffered write is used.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use hugbucket_engine::XetHash;

/// The xorb directory.
pub struct XorbFiles {
    dir: PathBuf,
}

impl XorbFiles {
    /// Opens (creating) `data_dir/xorbs`, removing temp files left by a crash.
    pub fn open(data_dir: &Path) -> std::io::Result<Self> {
        let dir = data_dir.join("xorbs");
        std::fs::create_dir_all(&dir)?;
        for e in std::fs::read_dir(&dir)? {
            let e = e?;
            if e.file_name().to_string_lossy().ends_with(".tmp") {
                let _ = std::fs::remove_file(e.path());
            }
        }
        Ok(Self { dir })
    }

    /// Path of a stored xorb.
    pub fn path(&self, hash: &XetHash) -> PathBuf {
        self.dir.join(format!("{}.xorb", hash.to_hex()))
    }

    /// Durably stores `parts` (concatenated) as xorb `hash`.
    pub fn write(&self, hash: &XetHash, parts: &[&[u8]]) -> std::io::Result<()> {
        let tmp = self.dir.join(format!(
            "{}.{:016x}.tmp",
            hash.to_hex(),
            rand::random::<u64>()
        ));
        let res = (|| {
            let f = match write_direct(&tmp, parts) {
                Ok(f) => f,
                Err(_) => {
                    let mut f = File::create(&tmp)?;
                    for p in parts {
                        f.write_all(p)?;
                    }
                    f
                }
            };
            f.sync_all()?;
            std::fs::rename(&tmp, self.path(hash))?;
            File::open(&self.dir)?.sync_all()
        })();
        if res.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        res
    }

    /// Opens a stored xorb for reading.
    pub fn open_xorb(&self, hash: &XetHash) -> std::io::Result<File> {
        File::open(self.path(hash))
    }
}

/// Block size for `O_DIRECT`: buffer address, file offset and length are multiples of it.
const DIRECT_ALIGN: usize = 4096;

/// Writes `parts` to a new file at `path` with `O_DIRECT`, then cuts it to the exact
/// length. Not fsynced. Any error (including a file system without `O_DIRECT`) leaves the
/// caller to fall back to a buffered write over the same path.
#[cfg(target_os = "linux")]
fn write_direct(path: &Path, parts: &[&[u8]]) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let padded = len.next_multiple_of(DIRECT_ALIGN);
    let mut buf = vec![0u8; padded + DIRECT_ALIGN];
    let start = buf.as_ptr().align_offset(DIRECT_ALIGN);
    let aligned = &mut buf[start..start + padded];
    let mut at = 0;
    for p in parts {
        aligned[at..at + p.len()].copy_from_slice(p);
        at += p.len();
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)?;
    f.write_all(aligned)?;
    f.set_len(len as u64)?;
    Ok(f)
}

#[cfg(not(target_os = "linux"))]
fn write_direct(_path: &Path, _parts: &[&[u8]]) -> std::io::Result<File> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}

/// Reads exactly `buf.len()` bytes at `offset`.
pub fn read_exact_at(f: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        f.read_exact_at(buf, offset)
    }
    #[cfg(not(unix))]
    {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = f;
        f.seek(SeekFrom::Start(offset))?;
        f.read_exact(buf)
    }
}
