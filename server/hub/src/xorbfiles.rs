//! Xorb data files: `data_dir/xorbs/<hex>.xorb`, in footer form (chunk records ++ footer).
//! Written to a temp file, fsynced and renamed (and the directory fsynced) before the xorb
//! is recorded in the metadata store.

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
            let mut f = File::create(&tmp)?;
            for p in parts {
                f.write_all(p)?;
            }
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
