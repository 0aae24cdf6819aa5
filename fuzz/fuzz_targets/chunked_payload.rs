//! Fuzzes the aws-chunked decoder (`ChunkedDecoder`) with arbitrary bytes split at arbitrary
//! points. Byte 0 picks the mode (signed chain, checksum trailer, declared length), byte 1
//! the split seed.
//!
//! * Raw mode: the rest of the input is the body. Never panics; after a clean `finish` the
//!   decoded slices add up to `decoded_len()` and to the declared length if one was set.
//! * Round-trip mode: the rest is a payload encoded with `chunked::encode` (same chain and
//!   trailer); decoding it must give the payload back exactly, whatever the splits. Then one
//!   byte of the encoded body is flipped: the decoder must not return the payload unchanged
//!   with a clean end (a flipped data byte breaks the signature or the checksum).
#![no_main]

use bytes::Bytes;
use hugbucket_s3::auth::ChecksumAlgorithm;
use hugbucket_s3::auth::chunked::{ChunkedConfig, ChunkedDecoder, encode};
use hugbucket_s3::auth::sigv4::{ChunkSigner, signing_key};
use libfuzzer_sys::fuzz_target;

const SEED_SIG: &str = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";

fn signer() -> ChunkSigner {
    let key = signing_key("secret", "20130524", "us-east-1", "s3");
    ChunkSigner::new(
        key,
        "20130524T000000Z",
        "20130524/us-east-1/s3/aws4_request",
        SEED_SIG,
    )
}

/// Feeds `body` in pieces whose sizes come from `seed`; returns the decoded bytes.
fn decode(cfg: ChunkedConfig, body: &[u8], seed: u8) -> Result<Vec<u8>, hugbucket_s3::S3Error> {
    let mut d = ChunkedDecoder::new(cfg);
    let mut out = Vec::new();
    let mut rest = body;
    let mut s = u32::from(seed) | 1;
    while !rest.is_empty() {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        let n = (s as usize % 97 + 1).min(rest.len());
        let (piece, tail) = rest.split_at(n);
        d.push(Bytes::copy_from_slice(piece), &mut out)?;
        rest = tail;
    }
    d.finish()?;
    let data: Vec<u8> = out.concat();
    assert_eq!(data.len() as u64, d.decoded_len());
    Ok(data)
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (mode, seed, rest) = (data[0], data[1], &data[2..]);
    let signed = mode & 1 != 0;
    let trailer = match (mode >> 1) % 4 {
        0 => None,
        1 => Some(ChecksumAlgorithm::Crc32),
        2 => Some(ChecksumAlgorithm::Crc64Nvme),
        _ => Some(ChecksumAlgorithm::Sha256),
    };
    let declare = mode & 8 != 0;
    let round_trip = mode & 16 != 0;
    let cfg = |len: Option<u64>| ChunkedConfig {
        signer: signed.then(signer),
        trailer,
        signed_trailer: signed && trailer.is_some(),
        decoded_length: len,
    };
    if !round_trip {
        let declared = declare.then(|| u64::from(seed) * 3);
        if let Ok(out) = decode(cfg(declared), rest, seed) {
            if let Some(n) = declared {
                assert_eq!(out.len() as u64, n);
            }
        }
        return;
    }
    let chunk = usize::from(seed % 64) + 1;
    let body = encode(rest, chunk, signed.then(signer), trailer);
    let len = declare.then_some(rest.len() as u64);
    let out = decode(cfg(len), &body, seed).expect("an encoded body decodes");
    assert_eq!(out, rest);
    // Corrupt one data byte (inside a chunk): must not decode cleanly to the same payload.
    if !rest.is_empty() && (signed || trailer.is_some()) {
        let i = usize::from(seed) % rest.len();
        let chunk_index = i / chunk;
        let header_len = |c: usize| {
            let n = rest.len().saturating_sub(c * chunk).min(chunk);
            format!("{n:x}").len() + if signed { 17 + 64 } else { 0 } + 2
        };
        // Offset of byte i in the encoded body.
        let mut off = 0;
        for c in 0..chunk_index {
            off += header_len(c) + chunk + 2;
        }
        off += header_len(chunk_index) + i % chunk;
        let mut bad = body.clone();
        assert_eq!(bad[off], rest[i]);
        bad[off] ^= 0x55;
        assert!(
            decode(cfg(len), &bad, seed).is_err(),
            "a corrupted data byte went unnoticed"
        );
    }
});
