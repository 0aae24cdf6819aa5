//! Fuzzes the xorb parsers: parse_xorb, verify_xorb and decode_chunk_records must return
//! Ok or Err on any input, never panic, and stay consistent with each other.
#![no_main]

use hugbucket_engine::XetHash;
use hugbucket_engine::xorb::{decode_chunk_records, parse_xorb, verify_xorb};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let parsed = parse_xorb(data);
    let mut out = Vec::new();
    let decoded = decode_chunk_records(data, &mut out);
    match &decoded {
        Ok(lens) => {
            let p = parsed.as_ref().ok();
            if let Some(p) = p {
                assert_eq!(lens.len(), p.chunks.len());
            }
            assert_eq!(
                out.len() as u64,
                lens.iter().map(|&l| u64::from(l)).sum::<u64>()
            );
        }
        Err(_) => assert!(out.is_empty()),
    }
    if let Ok(p) = &parsed {
        assert!(p.data_len <= data.len());
        // The hash of the (possibly) decoded chunks is what verify_xorb must accept.
        if let Ok(v) = verify_xorb(data, &XetHash::ZERO) {
            assert_eq!(v.chunks.len(), p.chunks.len());
        }
    }
});
