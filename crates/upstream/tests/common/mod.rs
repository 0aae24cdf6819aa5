//! Shared helpers of the integration tests: an in-process embedded hub, test data built
//! with the engine, and a download helper that uses only the upstream client.

#![allow(dead_code)]

use std::collections::HashMap;
use std::time::Duration;

use futures_util::StreamExt;
use hugbucket_engine::XetHash;
use hugbucket_engine::chunking::chunk_boundaries;
use hugbucket_engine::compression::CompressionScheme;
use hugbucket_engine::hash::{chunk_hash, file_hash, verification_hash};
use hugbucket_engine::shard::{FileEntry, FileTerm, Shard, XorbChunkEntry, XorbEntry};
use hugbucket_engine::xorb::{SerializedXorb, XorbBuilder, decode_chunk_records};
use hugbucket_upstream::{ByteRange, CasClient, HubClient, RetryConfig, UpstreamConfig};

pub const NAMESPACE: &str = "tester";

pub struct TestHub {
    pub hub: hugbucket_hub::RunningHub,
    pub _dir: tempfile::TempDir,
}

pub async fn start_hub() -> TestHub {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg =
        hugbucket_hub::HubConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().join("data"));
    cfg.namespace = NAMESPACE.into();
    cfg.tokens = vec!["hf_test_token".into()];
    let hub = hugbucket_hub::start(cfg).await.unwrap();
    TestHub { hub, _dir: dir }
}

pub fn fast_config() -> UpstreamConfig {
    UpstreamConfig {
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(20),
        request_timeout: Some(Duration::from_secs(60)),
        retry: RetryConfig {
            max_attempts: 4,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(50),
            total_budget: Duration::from_secs(10),
            ..RetryConfig::default()
        },
        ..UpstreamConfig::default()
    }
}

pub fn client(hub: &TestHub) -> HubClient {
    HubClient::new(
        &hub.hub.url(),
        Some(hub.hub.token().to_string()),
        fast_config(),
    )
    .unwrap()
}

/// Deterministic pseudo-random bytes (xorshift64*).
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Compressible text.
pub fn text_bytes(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut i = 0u64;
    while out.len() < len {
        out.extend_from_slice(format!("line {i}: hello bucket, the quick brown fox\n").as_bytes());
        i += 1;
    }
    out.truncate(len);
    out
}

/// Files packed into one xorb plus the shard that registers them.
pub struct Upload {
    pub xorb: SerializedXorb,
    pub shard: Shard,
    /// (file hash, content) per file, in input order.
    pub files: Vec<(XetHash, Vec<u8>)>,
    pub first_chunk_hashes: Vec<XetHash>,
}

/// Chunks every file, packs all chunks into one xorb (LZ4 requested; the engine falls back
/// to none for random data) and builds the upload shard.
pub fn build_upload(contents: &[Vec<u8>]) -> Upload {
    let mut builder = XorbBuilder::new();
    let mut file_chunks: Vec<Vec<(XetHash, u64)>> = Vec::new();
    for data in contents {
        let mut start = 0;
        let mut list = Vec::new();
        for end in chunk_boundaries(data) {
            let chunk = &data[start..end];
            let h = chunk_hash(chunk);
            builder.add_chunk(h, chunk, CompressionScheme::Lz4);
            list.push((h, chunk.len() as u64));
            start = end;
        }
        file_chunks.push(list);
    }
    let xorb = builder.finish();
    let mut files = Vec::new();
    let mut entries = Vec::new();
    let mut first_chunk_hashes = Vec::new();
    let mut index = 0u32;
    for (data, chunks) in contents.iter().zip(&file_chunks) {
        let fh = file_hash(chunks);
        let n = chunks.len() as u32;
        entries.push(FileEntry {
            file_hash: fh,
            terms: vec![FileTerm {
                xorb_hash: xorb.hash,
                unpacked_bytes: data.len() as u32,
                chunk_start: index,
                chunk_end: index + n,
            }],
            verification: vec![verification_hash(
                &chunks.iter().map(|c| c.0).collect::<Vec<_>>(),
            )],
            sha256: None,
        });
        first_chunk_hashes.push(chunks[0].0);
        files.push((fh, data.clone()));
        index += n;
    }
    let xorb_entry = XorbEntry {
        xorb_hash: xorb.hash,
        chunks: xorb
            .chunks
            .iter()
            .map(|c| XorbChunkEntry {
                hash: c.hash,
                unpacked_start: c.unpacked_start as u32,
                unpacked_len: c.uncompressed_len,
                flags: 0,
            })
            .collect(),
        bytes_in_xorb: xorb.chunks.iter().map(|c| c.uncompressed_len).sum(),
        bytes_on_disk: 0,
    };
    let shard = Shard {
        files: entries,
        xorbs: vec![xorb_entry],
        footer: None,
    };
    Upload {
        xorb,
        shard,
        files,
        first_chunk_hashes,
    }
}

/// (url, first byte, last byte) of a fetched range.
type FetchKey = (String, u64, u64);
/// (first chunk index, decoded bytes, decoded chunk lengths).
type Fetched = (u32, Vec<u8>, Vec<u32>);

/// Downloads `file` (or a range of it) with the upstream client only: reconstruction,
/// ranged fetches streamed, decode, drop the offset, truncate.
pub async fn download(cas: &CasClient, file: &XetHash, range: Option<ByteRange>) -> Vec<u8> {
    let recon = cas.reconstruction(file, range).await.unwrap();
    let mut fetched: HashMap<FetchKey, Fetched> = HashMap::new();
    let mut out = Vec::new();
    for term in &recon.terms {
        let entry = recon.fetch_for(term).expect("fetch entry").clone();
        let key = (entry.url.clone(), entry.bytes.start, entry.bytes.end);
        if !fetched.contains_key(&key) {
            let mut stream = cas.fetch_xorb_range(&entry.url, entry.bytes).await.unwrap();
            let mut raw = Vec::new();
            while let Some(piece) = stream.next().await {
                raw.extend_from_slice(&piece.unwrap());
            }
            assert_eq!(raw.len() as u64, entry.bytes.len());
            let mut decoded = Vec::new();
            let lens = decode_chunk_records(&raw, &mut decoded).unwrap();
            fetched.insert(key.clone(), (entry.chunk_start, decoded, lens));
        }
        let (first, decoded, lens) = &fetched[&key];
        let skip = (term.chunk_start - first) as usize;
        let take = (term.chunk_end - term.chunk_start) as usize;
        let begin: usize = lens[..skip].iter().map(|&l| l as usize).sum();
        let len: usize = lens[skip..skip + take].iter().map(|&l| l as usize).sum();
        assert_eq!(len as u64, term.unpacked_length);
        out.extend_from_slice(&decoded[begin..begin + len]);
    }
    let offset = recon.offset_into_first_range as usize;
    let mut out = out.split_off(offset.min(out.len()));
    if let Some(r) = range {
        out.truncate(r.len() as usize);
    }
    out
}
