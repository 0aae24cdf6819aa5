//! Property tests: the parsers never panic on arbitrary or mutated input, and compression
//! round-trips.

use hugbucket_engine::compression::{CompressionScheme, compress_chunk, decompress_chunk};
use hugbucket_engine::hash::chunk_hash;
use hugbucket_engine::shard::{FileEntry, FileTerm, Shard, XorbChunkEntry, XorbEntry};
use hugbucket_engine::xorb::{
    XorbBuilder, decode_chunk_records, parse_xorb, serialize_xorb, verify_xorb,
};
use hugbucket_engine::{EngineError, XetHash};
use proptest::prelude::*;

fn scheme() -> impl Strategy<Value = CompressionScheme> {
    prop_oneof![
        Just(CompressionScheme::None),
        Just(CompressionScheme::Lz4),
        Just(CompressionScheme::ByteGrouping4Lz4),
    ]
}

/// Compressible-ish chunk data: runs of repeated bytes, small-alphabet text, or noise.
fn chunk_data() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..3000),
        proptest::collection::vec(0u8..4, 0..20_000),
        (any::<u8>(), 0usize..131_072).prop_map(|(b, n)| vec![b; n]),
        (0u32..30_000).prop_map(|n| (0..n)
            .flat_map(|i| (i as f32 * 0.5).to_le_bytes())
            .collect()),
    ]
}

fn sample_xorb(chunks: &[Vec<u8>]) -> Vec<u8> {
    let refs: Vec<&[u8]> = chunks.iter().map(|c| &c[..]).collect();
    serialize_xorb(&refs, &[0]).with_footer()
}

fn sample_shard(seed: u8) -> Vec<u8> {
    let h = |s: u8, i: u8| chunk_hash(&[seed, s, i]);
    let xorb = XorbEntry {
        xorb_hash: h(1, 0),
        chunks: (0..4)
            .map(|i| XorbChunkEntry {
                hash: h(2, i),
                unpacked_start: u32::from(i) * 10,
                unpacked_len: 10,
                flags: 0,
            })
            .collect(),
        bytes_in_xorb: 40,
        bytes_on_disk: 0,
    };
    let shard = Shard {
        files: vec![
            FileEntry {
                file_hash: h(3, 0),
                terms: vec![FileTerm {
                    xorb_hash: xorb.xorb_hash,
                    unpacked_bytes: 20,
                    chunk_start: 1,
                    chunk_end: 3,
                }],
                verification: vec![h(4, 0)],
                sha256: Some(h(5, 0)),
            },
            FileEntry {
                file_hash: XetHash::ZERO,
                terms: vec![],
                verification: vec![],
                sha256: None,
            },
        ],
        xorbs: vec![xorb],
        footer: None,
    };
    if seed % 2 == 0 {
        shard.to_upload_bytes()
    } else {
        shard.to_full_bytes(Some(h(6, 0)), 1, 2)
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Overwrite(usize, Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(i, b)| Mutation::Flip(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 1..16)
        )
            .prop_map(|(i, v)| Mutation::Insert(i, v)),
        (
            any::<usize>(),
            proptest::collection::vec(
                prop_oneof![Just(0u8), Just(0xFF), Just(0x7F), any::<u8>()],
                1..8
            )
        )
            .prop_map(|(i, v)| Mutation::Overwrite(i, v)),
    ]
}

fn apply(mut b: Vec<u8>, muts: &[Mutation]) -> Vec<u8> {
    for m in muts {
        if b.is_empty() {
            break;
        }
        match m {
            Mutation::Flip(i, x) => {
                let i = i % b.len();
                b[i] ^= x;
            }
            Mutation::Truncate(i) => b.truncate(i % b.len()),
            Mutation::Insert(i, v) => {
                let i = i % (b.len() + 1);
                b.splice(i..i, v.iter().copied());
            }
            Mutation::Overwrite(i, v) => {
                let i = i % b.len();
                for (k, x) in v.iter().enumerate() {
                    if let Some(s) = b.get_mut(i + k) {
                        *s = *x;
                    }
                }
            }
        }
    }
    b
}

fn exercise_xorb(bytes: &[u8]) {
    let _ = parse_xorb(bytes);
    let _ = verify_xorb(bytes, &XetHash::ZERO);
    let mut out = Vec::new();
    if decode_chunk_records(bytes, &mut out).is_err() {
        assert!(out.is_empty());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn compress_roundtrip(s in scheme(), data in chunk_data()) {
        let mut c = vec![0xEE];
        let used = compress_chunk(s, &data, &mut c);
        let payload = &c[1..];
        prop_assert!(payload.len() <= data.len());
        if used == CompressionScheme::None {
            prop_assert_eq!(payload, &data[..]);
        } else {
            prop_assert_eq!(used, s);
        }
        let mut d = vec![0xDD];
        decompress_chunk(used, payload, data.len(), &mut d).unwrap();
        prop_assert_eq!(&d[1..], &data[..]);
        // wrong sizes are errors, never panics, and leave the buffer alone
        for wrong in [data.len() + 1, data.len().saturating_sub(1), 0, 131_072] {
            if wrong != data.len() {
                let mut d = vec![0xDD];
                prop_assert!(decompress_chunk(used, payload, wrong, &mut d).is_err());
                prop_assert_eq!(d, vec![0xDD]);
            }
        }
    }

    #[test]
    fn decompress_arbitrary(s in scheme(), payload in proptest::collection::vec(any::<u8>(), 0..512),
                            len in 0usize..200_000) {
        let mut out = Vec::new();
        match decompress_chunk(s, &payload, len, &mut out) {
            Ok(()) => prop_assert_eq!(out.len(), len),
            Err(_) => prop_assert!(out.is_empty()),
        }
    }

    #[test]
    fn decompress_mutated(s in scheme(), data in chunk_data(), muts in proptest::collection::vec(mutation(), 1..4)) {
        let mut c = Vec::new();
        let used = compress_chunk(s, &data, &mut c);
        let bad = apply(c, &muts);
        let mut out = Vec::new();
        match decompress_chunk(used, &bad, data.len(), &mut out) {
            Ok(()) => prop_assert_eq!(out.len(), data.len()),
            Err(_) => prop_assert!(out.is_empty()),
        }
    }

    #[test]
    fn xorb_arbitrary(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        exercise_xorb(&bytes);
    }

    #[test]
    fn xorb_header_like(recs in proptest::collection::vec(
        (0u8..2, 0u32..300, 0u8..4, 0u32..140_000, proptest::collection::vec(any::<u8>(), 0..64)), 0..8)) {
        // Plausible headers with arbitrary payloads.
        let mut b = Vec::new();
        for (v, c, s, u, p) in recs {
            b.push(v);
            b.extend_from_slice(&c.to_le_bytes()[..3]);
            b.push(s);
            b.extend_from_slice(&u.to_le_bytes()[..3]);
            b.extend_from_slice(&p);
        }
        exercise_xorb(&b);
    }

    #[test]
    fn xorb_mutated(chunks in proptest::collection::vec(chunk_data(), 1..4),
                    muts in proptest::collection::vec(mutation(), 1..4)) {
        let good = sample_xorb(&chunks);
        let bad = apply(good.clone(), &muts);
        exercise_xorb(&bad);
        let refs: Vec<&[u8]> = chunks.iter().map(|c| &c[..]).collect();
        let hash = serialize_xorb(&refs, &[0]).hash;
        if let Ok(p) = verify_xorb(&bad, &hash) {
            // Only the nonce buffer / a compatible re-encoding can differ: the chunk data must
            // still decode to the original bytes.
            let mut out = Vec::new();
            decode_chunk_records(&bad[..p.data_len], &mut out).unwrap();
            prop_assert_eq!(out, chunks.concat());
        }
    }

    #[test]
    fn shard_arbitrary(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        let _ = Shard::parse(&bytes);
    }

    #[test]
    fn shard_with_valid_header(body in proptest::collection::vec(any::<u8>(), 0..1024), full in any::<bool>()) {
        let mut b = Shard::default().to_upload_bytes()[..48].to_vec();
        if full {
            b[40] = 200;
        }
        b.extend_from_slice(&body);
        let _ = Shard::parse(&b);
    }

    #[test]
    fn shard_mutated(seed in any::<u8>(), muts in proptest::collection::vec(mutation(), 1..4)) {
        let good = sample_shard(seed);
        let bad = apply(good, &muts);
        if let Ok(s) = Shard::parse(&bad) {
            // Whatever parsed re-serializes and parses again to the same records.
            let again = Shard::parse(&s.to_upload_bytes()).unwrap();
            prop_assert_eq!(again.xorbs, s.xorbs);
        }
    }

    #[test]
    fn builder_matches_serialize(chunks in proptest::collection::vec(chunk_data(), 1..40),
                                 starts in proptest::collection::vec(0usize..40, 0..4)) {
        let refs: Vec<&[u8]> = chunks.iter().map(|c| &c[..]).collect();
        let x = serialize_xorb(&refs, &starts);
        let mut b = XorbBuilder::new();
        for (i, c) in refs.iter().enumerate() {
            b.add_chunk_auto(chunk_hash(c), c, i == 0 || starts.contains(&i));
        }
        prop_assert_eq!(&b.finish(), &x);
        let p = verify_xorb(&x.with_footer(), &x.hash).unwrap();
        prop_assert_eq!(p.chunks, x.chunks);
    }
}

#[test]
fn huge_declared_size_is_rejected_without_allocating() {
    // A tiny payload cannot produce 4 GiB: rejected up front.
    let mut out = Vec::new();
    let r = decompress_chunk(
        CompressionScheme::Lz4,
        &[0x04, 0x22, 0x4D, 0x18],
        usize::MAX / 2,
        &mut out,
    );
    assert!(matches!(r, Err(EngineError::Decompression(_))));
    assert_eq!(out.capacity(), 0);
}
