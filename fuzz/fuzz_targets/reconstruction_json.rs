//! Fuzzes the upstream client's JSON answer parsers: `reconstruction::parse_v1` and
//! `parse_v2` (file reconstructions, the answer that drives every download) and the Hub
//! listing parsers (`models::parse_tree_page`, `parse_paths_info`, `parse_bucket_page`).
//! Never panics; an accepted reconstruction satisfies what the download path relies on:
//! every term has a non-empty chunk range and a fetch entry that covers it, the offset
//! into the first range is inside the first term, and every fetch entry is non-empty.
#![no_main]

use hugbucket_upstream::Reconstruction;
use hugbucket_upstream::models::{parse_bucket_page, parse_paths_info, parse_tree_page};
use hugbucket_upstream::reconstruction::{parse_v1, parse_v2};
use libfuzzer_sys::fuzz_target;

fn check(r: &Reconstruction) {
    for t in &r.terms {
        assert!(t.chunk_end > t.chunk_start);
        let f = r.fetch_for(t).expect("a fetch entry for every term");
        assert!(f.chunk_start <= t.chunk_start && f.chunk_end >= t.chunk_end);
    }
    if let Some(first) = r.terms.first() {
        assert!(r.offset_into_first_range < first.unpacked_length);
    }
    for e in r.fetches.values().flatten() {
        assert!(e.chunk_end > e.chunk_start);
        assert!(e.bytes.len() >= 1);
    }
    let _ = r.unpacked_len();
}

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = parse_v1(data) {
        assert_eq!(r.api_version, 1);
        check(&r);
    }
    if let Ok(r) = parse_v2(data) {
        assert_eq!(r.api_version, 2);
        check(&r);
    }
    let _ = parse_tree_page(data);
    let _ = parse_paths_info(data);
    let _ = parse_bucket_page(data);
});
