//! xet-core's own reference cases for the aggregated (xorb) hash and salted file hash.

use hugbucket_engine::XetHash;
use hugbucket_engine::hash::{aggregated_hash, file_hash_with_salt};

#[test]
fn merkle_reference_cases() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/vectors/merkle_reference.json"
    );
    let text = std::fs::read_to_string(path).expect("tests/vectors/merkle_reference.json");
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cases = doc["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 18);
    for (i, case) in cases.iter().enumerate() {
        let nodes: Vec<(XetHash, u64)> = case["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                let arr = n.as_array().unwrap();
                (
                    arr[0].as_str().unwrap().parse().unwrap(),
                    arr[1].as_u64().unwrap(),
                )
            })
            .collect();
        let xorb: XetHash = case["xorb_hash"].as_str().unwrap().parse().unwrap();
        assert_eq!(aggregated_hash(&nodes), xorb, "case {i} xorb hash");
        let salted = case["salted_file_hashes"].as_array().unwrap();
        assert!(!salted.is_empty());
        for sf in salted {
            let salt: XetHash = sf["salt"].as_str().unwrap().parse().unwrap();
            let file: XetHash = sf["file_hash"].as_str().unwrap().parse().unwrap();
            assert_eq!(
                file_hash_with_salt(&nodes, salt.as_bytes()),
                file,
                "case {i} file hash"
            );
        }
    }
}
