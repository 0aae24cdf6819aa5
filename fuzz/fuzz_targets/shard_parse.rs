//! Fuzzes Shard::parse: never panics; whatever parses re-serializes to a shard that parses.
#![no_main]

use hugbucket_engine::shard::Shard;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(shard) = Shard::parse(data) {
        let up = shard.to_upload_bytes();
        let again = Shard::parse(&up).expect("re-serialized upload form parses");
        // Sorting and de-duplication can only shrink or reorder the records.
        assert!(again.files.len() <= shard.files.len());
        assert!(again.xorbs.len() <= shard.xorbs.len());
        assert_eq!(Shard::parse(&again.to_upload_bytes()).as_ref(), Ok(&again));
        let full = shard.to_full_bytes(None, 0, u64::MAX);
        Shard::parse(&full).expect("re-serialized full form parses");
    }
});
