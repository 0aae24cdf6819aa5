//! `hugbucket hash FILE...`: prints `<xet file hash>  <path>` per file, like `b3sum`.
//!
//! Each file is streamed in 256 KiB blocks through a three-stage pipeline of plain threads:
//! the calling thread reads blocks, a second thread runs the content-defined chunker over
//! them, a third computes the chunk hashes (and, at the end, the Merkle file hash). Blocks
//! are recycled through a small fixed pool, so memory stays bounded (about 4 MiB plus 40
//! bytes per chunk) whatever the file size. Errors are reported per file on stderr; the
//! exit code is 1 when any file failed.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread;

use hugbucket_engine::XetHash;
use hugbucket_engine::chunking::{ChunkHashStream, Chunker};
use hugbucket_engine::hash::file_hash;

/// Arguments of `hugbucket hash`.
#[derive(Debug, clap::Args)]
pub struct HashArgs {
    /// Files to hash; `-` reads standard input.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// Size of one read block. Small blocks keep the data cache-hot between the reader, the
/// chunker and the hasher, which made 256 KiB blocks faster than 8 MiB ones (numbers in
/// `bench/results/`).
const BLOCK_SIZE: usize = 256 << 10;
/// Blocks in flight between the stages (4 MiB in all).
const POOL_BLOCKS: usize = 16;

/// Runs `hugbucket hash`.
pub fn run(args: HashArgs) -> ExitCode {
    let mut failed = false;
    let stdout = io::stdout();
    for path in &args.files {
        let result = if path.as_os_str() == "-" {
            hash_reader(io::stdin().lock())
        } else {
            File::open(path).and_then(hash_reader)
        };
        match result {
            Ok(hash) => {
                let mut out = stdout.lock();
                if writeln!(out, "{hash}  {}", path.display())
                    .and_then(|()| out.flush())
                    .is_err()
                {
                    // stdout is gone (e.g. a closed pipe): nothing more can be reported.
                    return ExitCode::FAILURE;
                }
            }
            Err(e) => {
                eprintln!("hugbucket hash: {}: {e}", display_name(path));
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn display_name(path: &Path) -> String {
    if path.as_os_str() == "-" {
        "<stdin>".to_owned()
    } else {
        path.display().to_string()
    }
}

/// One filled block travelling down the pipeline.
struct Block {
    /// `BLOCK_SIZE` bytes once allocated (never shrunk, so never re-zeroed).
    buf: Vec<u8>,
    /// Bytes of `buf` holding data.
    len: usize,
    /// Chunk ends inside `buf` (filled in by the chunker stage).
    cuts: Vec<usize>,
}

/// The Xet file hash of everything `reader` yields.
pub fn hash_reader<R: Read>(mut reader: R) -> io::Result<XetHash> {
    let (free_tx, free_rx) = sync_channel::<Block>(POOL_BLOCKS);
    for _ in 0..POOL_BLOCKS {
        free_tx
            .send(Block {
                buf: Vec::new(),
                len: 0,
                cuts: Vec::new(),
            })
            .expect("the pool channel has room for the whole pool");
    }
    let (read_tx, read_rx) = sync_channel::<Block>(POOL_BLOCKS);
    let (cut_tx, cut_rx) = sync_channel::<Block>(POOL_BLOCKS);

    thread::scope(|s| {
        s.spawn(move || chunk_stage(read_rx, cut_tx));
        let hasher = s.spawn(move || hash_stage(cut_rx, free_tx));
        // Reader stage (this thread). Dropping `read_tx` (on EOF or error) ends the others.
        let read_result = read_stage(&mut reader, &free_rx, read_tx);
        let hash = hasher.join().expect("hash stage does not panic");
        read_result.map(|()| hash)
    })
}

fn read_stage<R: Read>(
    reader: &mut R,
    free: &Receiver<Block>,
    out: SyncSender<Block>,
) -> io::Result<()> {
    loop {
        let Ok(mut block) = free.recv() else {
            return Ok(());
        };
        if block.buf.len() != BLOCK_SIZE {
            block.buf = vec![0; BLOCK_SIZE];
        }
        let n = read_full(reader, &mut block.buf)?;
        block.len = n;
        if n > 0 && out.send(block).is_err() {
            return Ok(());
        }
        if n < BLOCK_SIZE {
            return Ok(());
        }
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full<R: Read>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn chunk_stage(input: Receiver<Block>, out: SyncSender<Block>) {
    let mut chunker = Chunker::new();
    for mut block in input {
        block.cuts.clear();
        chunker.boundaries_into(&block.buf[..block.len], &mut block.cuts);
        if out.send(block).is_err() {
            return;
        }
    }
    // The unfinished chunk at EOF is the last chunk; the hash stage closes it itself.
}

fn hash_stage(input: Receiver<Block>, free: SyncSender<Block>) -> XetHash {
    let mut stream = ChunkHashStream::new();
    for block in input {
        stream.update(&block.buf[..block.len], &block.cuts);
        // The reader may already have stopped; then the block is simply dropped.
        let _ = free.send(block);
    }
    file_hash(&stream.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hugbucket_engine::chunking::file_hash_of;

    fn data(n: usize) -> Vec<u8> {
        let mut b = vec![0u8; n];
        fill_pseudo_random(&mut b);
        b
    }

    fn fill_pseudo_random(b: &mut [u8]) {
        // Deterministic pseudo-random bytes without a blake3 dependency in this crate:
        // hash-chain through the engine's chunk hash.
        let mut seed = hugbucket_engine::hash::chunk_hash(b"hashcmd tests");
        for part in b.chunks_mut(32) {
            part.copy_from_slice(&seed.as_bytes()[..part.len()]);
            seed = hugbucket_engine::hash::chunk_hash(seed.as_bytes());
        }
    }

    /// A reader returning short, uneven reads.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.step = self.step % 9973 + 1777;
            let n = self.step.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn pipeline_equals_engine_file_hash() {
        for n in [
            0,
            1,
            8192,
            100_000,
            BLOCK_SIZE,
            BLOCK_SIZE + 1,
            2 * BLOCK_SIZE + 123_457,
            3 << 20,
        ] {
            let d = data(n);
            let expected = file_hash_of(&d);
            assert_eq!(hash_reader(&d[..]).unwrap(), expected, "{n} bytes");
            let trickle = Trickle { data: &d, step: 0 };
            assert_eq!(
                hash_reader(trickle).unwrap(),
                expected,
                "{n} bytes, short reads"
            );
        }
        assert_eq!(hash_reader(&[][..]).unwrap(), XetHash::ZERO);
    }

    #[test]
    fn read_error_is_reported() {
        struct Failing(usize);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::other("boom"));
                }
                let n = buf.len().min(self.0);
                buf[..n].fill(7);
                self.0 -= n;
                Ok(n)
            }
        }
        let err = hash_reader(Failing(3 * BLOCK_SIZE + 5)).unwrap_err();
        assert_eq!(err.to_string(), "boom");
        assert!(hash_reader(Failing(0)).is_err());
    }

    #[test]
    fn vector_file_hashes() {
        // zeros_1MiB from tests/vectors/xet_vectors.json.
        let zeros = vec![0u8; 1 << 20];
        assert_eq!(
            hash_reader(&zeros[..]).unwrap().to_hex(),
            vector_file_hash("zeros_1MiB")
        );
    }

    fn vector_file_hash(name: &str) -> String {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/vectors/xet_vectors.json"
        );
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        v["inputs"][name]["file_hash"].as_str().unwrap().to_owned()
    }
}
