//! Shared helpers for the vector tests: locating `tests/vectors` and regenerating inputs.

#![allow(dead_code)]

use std::path::PathBuf;

use hugbucket_engine::XetHash;
use serde_json::Value;

/// `tests/vectors` of the repository (see its README: what hf_xet produced, and how).
pub fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors")
}

/// `xet_vectors.json`, parsed.
pub fn load_vectors() -> Value {
    let path = vectors_dir().join("xet_vectors.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("valid JSON")
}

/// A JSON unsigned integer as usize.
pub fn as_usize(v: &Value) -> usize {
    usize::try_from(v.as_u64().expect("unsigned integer")).expect("fits usize")
}

/// A JSON Xet hex string as a hash.
pub fn hash(v: &Value) -> XetHash {
    XetHash::from_hex(v.as_str().expect("hash string")).expect("valid hash")
}

/// Builds an input from its recipe (vectors/README.md "Input generator").
pub fn generate(recipe: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    for seg in recipe.as_array().expect("recipe is a list") {
        match seg["kind"].as_str().expect("kind") {
            "blake3_xof" => {
                let n = as_usize(&seg["length"]);
                let label = seg["label"].as_str().expect("label");
                let start = out.len();
                out.resize(start + n, 0);
                blake3::Hasher::new()
                    .update(label.as_bytes())
                    .finalize_xof()
                    .fill(&mut out[start..]);
            }
            "zeros" => out.resize(out.len() + as_usize(&seg["length"]), 0),
            "f32_ramp" => {
                for i in 0..as_usize(&seg["count"]) {
                    out.extend_from_slice(&(i as f32 * 0.25).to_le_bytes());
                }
            }
            other => panic!("unknown recipe kind {other}"),
        }
    }
    out
}
