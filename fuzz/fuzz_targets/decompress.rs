//! Fuzzes decompress_chunk: the first byte picks the scheme, the next three the declared
//! size (<= 128 KiB + a bit, as chunk headers allow), the rest is the payload. Never panics;
//! on success exactly the declared size is produced, on error `out` is untouched. Also checks
//! that compressing the payload bytes round-trips.
#![no_main]

use hugbucket_engine::compression::{CompressionScheme, compress_chunk, decompress_chunk};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let scheme = match data[0] % 3 {
        0 => CompressionScheme::None,
        1 => CompressionScheme::Lz4,
        _ => CompressionScheme::ByteGrouping4Lz4,
    };
    let len =
        (usize::from(data[1]) | usize::from(data[2]) << 8 | usize::from(data[3]) << 16) % 140_000;
    let payload = &data[4..];
    let mut out = vec![7u8];
    match decompress_chunk(scheme, payload, len, &mut out) {
        Ok(()) => assert_eq!(out.len(), 1 + len),
        Err(_) => assert_eq!(out, [7u8]),
    }
    let mut c = Vec::new();
    let used = compress_chunk(scheme, payload, &mut c);
    let mut d = Vec::new();
    decompress_chunk(used, &c, payload.len(), &mut d).expect("round trip");
    assert_eq!(d, payload);
});
