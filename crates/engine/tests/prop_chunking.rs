//! Property tests: chunk boundaries and the file hash do not depend on how the input is
//! split, and the fast chunker equals the byte-at-a-time definition of spec §2.3.

use hugbucket_engine::chunking::{Chunker, FileHasher, GEAR_TABLE, chunk_boundaries};
use hugbucket_engine::constants::{CHUNK_SKIP, GEAR_MASK, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE};
use hugbucket_engine::hash::{chunk_hash, file_hash};
use proptest::prelude::*;

/// The definition, one byte at a time (spec §2.3 pseudocode).
fn reference_boundaries(data: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < data.len() {
        let mut h = 0u64;
        let mut i = start + CHUNK_SKIP;
        let limit = data.len().min(start + MAX_CHUNK_SIZE);
        let mut end = limit;
        while i < limit {
            h = (h << 1).wrapping_add(GEAR_TABLE[data[i] as usize]);
            i += 1;
            if h & GEAR_MASK == 0 && i - start >= MIN_CHUNK_SIZE {
                end = i;
                break;
            }
        }
        out.push(end);
        start = end;
    }
    out
}

/// Pseudo-random input: BLAKE3 XOF of a seed; `low_entropy` masks bytes to 2 bits in
/// stretches so that matches (and minimum-size rejections) are frequent.
fn input(seed: u64, len: usize, low_entropy: bool) -> Vec<u8> {
    let mut data = vec![0u8; len];
    blake3::Hasher::new()
        .update(b"prop_chunking")
        .update(&seed.to_le_bytes())
        .finalize_xof()
        .fill(&mut data);
    if low_entropy {
        for (i, b) in data.iter_mut().enumerate() {
            if (i / 3001) % 3 != 0 {
                *b &= 3;
            }
        }
    }
    data
}

/// Splits `data` at the given cut fractions (sorted, deduplicated).
fn pieces(data: &[u8], cuts: &[u32]) -> Vec<std::ops::Range<usize>> {
    let mut points: Vec<usize> = cuts
        .iter()
        .map(|&c| (c as u64 * data.len() as u64 / u32::MAX as u64) as usize)
        .collect();
    points.push(0);
    points.push(data.len());
    points.sort_unstable();
    points.dedup();
    points.windows(2).map(|w| w[0]..w[1]).collect()
}

fn streamed_boundaries(data: &[u8], ranges: &[std::ops::Range<usize>]) -> Vec<usize> {
    let mut chunker = Chunker::new();
    let mut out = Vec::new();
    for r in ranges {
        let mut pos = r.start;
        while let Some(n) = chunker.next_boundary(&data[pos..r.end]) {
            prop_assert_helper(n >= 1 && pos + n <= r.end);
            pos += n;
            out.push(pos);
        }
    }
    if chunker.finish().is_some() {
        out.push(data.len());
    }
    out
}

fn prop_assert_helper(ok: bool) {
    assert!(ok, "next_boundary returned an out-of-range length");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn boundaries_independent_of_split(
        seed in any::<u64>(),
        len in 0usize..600 * 1024,
        low_entropy in any::<bool>(),
        cuts in prop::collection::vec(any::<u32>(), 0..40),
    ) {
        let data = input(seed, len, low_entropy);
        let expected = reference_boundaries(&data);
        prop_assert_eq!(&chunk_boundaries(&data), &expected);
        let ranges = pieces(&data, &cuts);
        prop_assert_eq!(&streamed_boundaries(&data, &ranges), &expected);
        for w in expected.windows(2) {
            let len = w[1] - w[0];
            prop_assert!(len <= MAX_CHUNK_SIZE);
        }
        for (i, &end) in expected.iter().enumerate() {
            let start = if i == 0 { 0 } else { expected[i - 1] };
            if end != data.len() {
                prop_assert!(end - start >= MIN_CHUNK_SIZE);
            }
        }
    }

    #[test]
    fn file_hash_independent_of_split(
        seed in any::<u64>(),
        len in 0usize..600 * 1024,
        low_entropy in any::<bool>(),
        cuts in prop::collection::vec(any::<u32>(), 0..40),
    ) {
        let data = input(seed, len, low_entropy);
        let mut start = 0;
        let mut pairs = Vec::new();
        for end in reference_boundaries(&data) {
            pairs.push((chunk_hash(&data[start..end]), (end - start) as u64));
            start = end;
        }
        let expected = file_hash(&pairs);
        let mut fh = FileHasher::new();
        for r in pieces(&data, &cuts) {
            fh.update(&data[r]);
        }
        prop_assert_eq!(fh.size(), data.len() as u64);
        prop_assert_eq!(fh.finish(), expected);
    }
}

#[test]
fn long_low_entropy_input_has_many_chunks() {
    // Makes sure the property inputs do exercise several chunks and early matches.
    let data = input(7, 600 * 1024, true);
    let b = reference_boundaries(&data);
    assert!(b.len() >= 5, "{} chunks", b.len());
    assert_eq!(chunk_boundaries(&data), b);
}
