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
use std::sync::Mutex;

use hugbucket_engine::XetHash;

/// The xorb directory.
pub struct XorbFiles {
    dir: PathBuf,
    /// The buffer of a xorb already written (the largest seen since it was last taken),
    /// for the next upload's body: a fresh 64 MiB buffer per xorb is page-faulted in again
    /// every time.
    spare: Mutex<Option<Vec<u8>>>,
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
        Ok(Self {
            dir,
            spare: Mutex::new(None),
        })
    }

    /// Path of a stored xorb.
    pub fn path(&self, hash: &XetHash) -> PathBuf {
        self.dir.join(format!("{}.xorb", hash.to_hex()))
    }

    /// A buffer for the next xorb body (empty; possibly with the capacity of an earlier
    /// one). Give it back through [`XorbFiles::write`].
    pub fn take_buffer(&self) -> Vec<u8> {
        self.spare
            .lock()
            .ok()
            .and_then(|mut s| s.take())
            .unwrap_or_default()
    }

    /// Durably stores `buf[start..] ++ tail` as xorb `hash`; `buf` is kept for
    /// [`XorbFiles::take_buffer`] afterwards. With `buf[start..]` on a
    /// [`XorbFiles::ALIGN`] boundary (see [`crate::body::read_body_aligned`]) the data is
    /// written to disk from it in place.
    pub fn write(
        &self,
        hash: &XetHash,
        mut buf: Vec<u8>,
        start: usize,
        tail: &[u8],
    ) -> std::io::Result<()> {
        let tmp = self.dir.join(format!(
            "{}.{:016x}.tmp",
            hash.to_hex(),
            rand::random::<u64>()
        ));
        let data = buf.get(start..).unwrap_or_default();
        let res = (|| {
            let f = match write_direct(&tmp, data, tail) {
                Ok(f) => f,
                Err(_) => {
                    let mut f = File::create(&tmp)?;
                    f.write_all(data)?;
                    f.write_all(tail)?;
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
        buf.clear();
        if let Ok(mut spare) = self.spare.lock()
            && spare.as_ref().is_none_or(|s| s.capacity() < buf.capacity())
        {
            *spare = Some(buf);
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

impl XorbFiles {
    /// Alignment of a xorb body that [`XorbFiles::write`] writes in place.
    pub const ALIGN: usize = DIRECT_ALIGN;
}

/// Writes `data ++ tail` to a new file at `path` with `O_DIRECT`, then cuts it to the
/// exact length. Not fsynced. When `data` starts on a block boundary, its whole blocks are
/// written from it in place and only the last partial block and `tail` are copied (into a
/// small aligned buffer); otherwise everything is copied. Any error (including a file
/// system without `O_DIRECT`) leaves the caller to fall back to a buffered write over the
/// same path.
#[cfg(target_os = "linux")]
fn write_direct(path: &Path, data: &[u8], tail: &[u8]) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)?;
    let in_place = if data.as_ptr().align_offset(DIRECT_ALIGN) == 0 {
        data.len() / DIRECT_ALIGN * DIRECT_ALIGN
    } else {
        0
    };
    if in_place > 0 {
        f.write_all(&data[..in_place])?;
    }
    let rest = &data[in_place..];
    let rest_len = rest.len() + tail.len();
    if rest_len > 0 {
        let padded = rest_len.next_multiple_of(DIRECT_ALIGN);
        let mut buf = vec![0u8; padded + DIRECT_ALIGN];
        let at = buf.as_ptr().align_offset(DIRECT_ALIGN);
        let aligned = &mut buf[at..at + padded];
        aligned[..rest.len()].copy_from_slice(rest);
        aligned[rest.len()..rest_len].copy_from_slice(tail);
        f.write_all(aligned)?;
    }
    f.set_len((data.len() + tail.len()) as u64)?;
    Ok(f)
}

#[cfg(not(target_os = "linux"))]
fn write_direct(_path: &Path, _data: &[u8], _tail: &[u8]) -> std::io::Result<File> {
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
