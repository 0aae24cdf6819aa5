//! Xorb data files: `data_dir/xorbs/<hex>.xorb`, in footer form (chunk records ++ footer).
//! Written to a temp file, fsynced and renamed (and the directory fsynced) before the xorb
//! is recorded in the metadata store.
//!
//! On Linux the data goes to disk with `O_DIRECT`, straight from the block-aligned receive
//! buffer: a xorb is written once and read rarely, and copying it through the page cache
//! cost the hub more CPU than verifying it (`bench/results/`). The write starts before the
//! xorb is verified ([`XorbFiles::begin`] on one thread while the caller hashes on
//! another) and is only made visible after ([`XorbFiles::finish`]). Where the file system
//! refuses `O_DIRECT` (tmpfs), an ordinary buffered write is made at the finish.

use hugbucket_engine::XetHash;
use hugbucket_engine::buffers::BufferPool;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Receive buffers kept for the next uploads (about one per xorb upload in flight).
const SPARE_BUFFERS: usize = 2;

/// The xorb directory.
pub struct XorbFiles {
    dir: PathBuf,
    /// Buffers of xorbs already written, for the next uploads' bodies.
    spare: BufferPool,
}

/// A xorb file being written (a temp file, removed unless [`XorbFiles::finish`] succeeds).
pub struct XorbWriter {
    tmp: PathBuf,
    /// The `O_DIRECT` file and how many leading bytes of the data it holds already (whole
    /// blocks); `None` when `O_DIRECT` is not available or failed.
    direct: Option<(File, usize)>,
    done: bool,
}

impl Drop for XorbWriter {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
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
            spare: BufferPool::new(SPARE_BUFFERS),
        })
    }

    /// Path of a stored xorb.
    pub fn path(&self, hash: &XetHash) -> PathBuf {
        self.dir.join(format!("{}.xorb", hash.to_hex()))
    }

    /// A buffer for the next xorb body (empty; possibly with the capacity of an earlier
    /// one). Give it back through [`XorbFiles::give_back`].
    pub fn take_buffer(&self) -> Vec<u8> {
        self.spare.take()
    }

    /// Keeps `buf` for a later [`XorbFiles::take_buffer`] (the largest few are kept).
    pub fn give_back(&self, buf: Vec<u8>) {
        self.spare.give(buf);
    }

    /// Starts writing a xorb of which `data` is a prefix (the bytes written at the finish
    /// may end earlier and are followed by the footer). The whole blocks of `data` go to
    /// disk now when `data` starts on a [`XorbFiles::ALIGN`] boundary (see
    /// [`crate::request::read_body_aligned`]); any failure here only defers the write to
    /// [`XorbFiles::finish`].
    pub fn begin(&self, hash: &XetHash, data: &[u8]) -> XorbWriter {
        let tmp = self.dir.join(format!(
            "{}.{:016x}.tmp",
            hash.to_hex(),
            rand::random::<u64>()
        ));
        let direct = begin_direct(&tmp, data).ok();
        XorbWriter {
            tmp,
            direct,
            done: false,
        }
    }

    /// Durably stores `data ++ tail` as xorb `hash` (`data` starts with the bytes given to
    /// [`XorbFiles::begin`] up to its length); the xorb file exists under its name only
    /// once this returns `Ok`.
    pub fn finish(
        &self,
        mut w: XorbWriter,
        hash: &XetHash,
        data: &[u8],
        tail: &[u8],
    ) -> std::io::Result<()> {
        let f = match w.direct.take() {
            Some((f, written)) => match finish_direct(f, written, data, tail) {
                Ok(f) => f,
                Err(_) => buffered(&w.tmp, data, tail)?,
            },
            None => buffered(&w.tmp, data, tail)?,
        };
        f.sync_all()?;
        std::fs::rename(&w.tmp, self.path(hash))?;
        w.done = true;
        File::open(&self.dir)?.sync_all()
    }

    /// Opens a stored xorb for reading.
    pub fn open_xorb(&self, hash: &XetHash) -> std::io::Result<File> {
        File::open(self.path(hash))
    }
}

/// Block size for `O_DIRECT`: buffer address, file offset and length are multiples of it.
const DIRECT_ALIGN: usize = 4096;

impl XorbFiles {
    /// Alignment of a xorb body that [`XorbFiles::begin`] writes in place.
    pub const ALIGN: usize = DIRECT_ALIGN;
}

/// Creates `path` and writes `data ++ tail` to it with ordinary buffered writes.
fn buffered(path: &Path, data: &[u8], tail: &[u8]) -> std::io::Result<File> {
    let mut f = File::create(path)?;
    f.write_all(data)?;
    f.write_all(tail)?;
    Ok(f)
}

/// Creates `path` with `O_DIRECT` and writes the whole blocks of `data` from it in place
/// when it starts on a block boundary (nothing otherwise); returns the file and the
/// number of bytes written. Not fsynced.
#[cfg(target_os = "linux")]
fn begin_direct(path: &Path, data: &[u8]) -> std::io::Result<(File, usize)> {
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
    f.write_all(&data[..in_place])?;
    Ok((f, in_place))
}

#[cfg(not(target_os = "linux"))]
fn begin_direct(_path: &Path, _data: &[u8]) -> std::io::Result<(File, usize)> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}

/// Completes an `O_DIRECT` file that holds `written` leading bytes of an earlier,
/// possibly longer prefix of `data`: rewrites from the last block boundary at or before
/// the end of `data` (copied with `tail` into a small aligned buffer), then cuts the file
/// to `data.len() + tail.len()`. Not fsynced.
fn finish_direct(mut f: File, written: usize, data: &[u8], tail: &[u8]) -> std::io::Result<File> {
    use std::io::{Seek, SeekFrom};
    let from = written.min(data.len() / DIRECT_ALIGN * DIRECT_ALIGN);
    let rest = &data[from..];
    let rest_len = rest.len() + tail.len();
    if rest_len > 0 {
        let padded = rest_len.next_multiple_of(DIRECT_ALIGN);
        let mut buf = vec![0u8; padded + DIRECT_ALIGN];
        let at = buf.as_ptr().align_offset(DIRECT_ALIGN);
        let aligned = &mut buf[at..at + padded];
        aligned[..rest.len()].copy_from_slice(rest);
        aligned[rest.len()..rest_len].copy_from_slice(tail);
        f.seek(SeekFrom::Start(from as u64))?;
        f.write_all(aligned)?;
    }
    f.set_len((data.len() + tail.len()) as u64)?;
    Ok(f)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` bytes at a block-aligned offset of the returned buffer (as the receive path
    /// lays them out), plus that offset.
    fn aligned(n: usize, seed: u8) -> (Vec<u8>, usize) {
        let mut buf: Vec<u8> = Vec::with_capacity(n + DIRECT_ALIGN);
        let start = buf.as_ptr().align_offset(DIRECT_ALIGN);
        buf.resize(start, 0);
        buf.extend((0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)));
        (buf, start)
    }

    fn leftovers(files: &XorbFiles) -> Vec<String> {
        std::fs::read_dir(&files.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn finished_files_hold_data_then_tail_whatever_was_written_first() {
        // Cases: (bytes given to begin, bytes kept at the finish, aligned start?). The
        // finish may end before, inside or after the blocks written at the beginning.
        let cases = [
            (3 * DIRECT_ALIGN + 100, 3 * DIRECT_ALIGN + 100, true),
            (3 * DIRECT_ALIGN + 100, 2 * DIRECT_ALIGN + 7, true),
            (3 * DIRECT_ALIGN, 3 * DIRECT_ALIGN, true),
            (5 * DIRECT_ALIGN + 1, DIRECT_ALIGN - 1, true),
            (100, 90, true),
            (2 * DIRECT_ALIGN + 5, 2 * DIRECT_ALIGN + 3, false),
        ];
        let dir = tempfile::tempdir().unwrap();
        let files = XorbFiles::open(dir.path()).unwrap();
        for (i, &(given, kept, at_block)) in cases.iter().enumerate() {
            let (buf, start) = aligned(given + 1, i as u8);
            let start = if at_block { start } else { start + 1 };
            let body = &buf[start..start + given];
            let hash = XetHash::from_bytes([i as u8; 32]);
            let w = files.begin(&hash, body);
            let tail = vec![0xEE; 37 + i];
            files.finish(w, &hash, &body[..kept], &tail).unwrap();
            let stored = std::fs::read(files.path(&hash)).unwrap();
            let mut want = body[..kept].to_vec();
            want.extend_from_slice(&tail);
            assert_eq!(stored, want, "case {i}");
        }
        // Only the named xorb files remain.
        assert!(leftovers(&files).iter().all(|n| n.ends_with(".xorb")));
        assert_eq!(leftovers(&files).len(), cases.len());
    }

    #[test]
    fn an_unfinished_write_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let files = XorbFiles::open(dir.path()).unwrap();
        let (buf, start) = aligned(4 * DIRECT_ALIGN, 1);
        let hash = XetHash::from_bytes([9; 32]);
        let w = files.begin(&hash, &buf[start..]);
        assert_eq!(
            leftovers(&files).len(),
            1,
            "the temp file exists while writing"
        );
        drop(w);
        assert!(leftovers(&files).is_empty());
        assert!(!files.path(&hash).exists());
    }
}
