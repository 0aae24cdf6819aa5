//! The whole upload pipeline against hf_xet's own single-file upload sessions: the same
//! terms, verification hashes, xorb bytes and shard bytes, whatever the write piece size.

mod common;

use common::{as_usize, generate, hash, load_vectors, vectors_dir};
use hugbucket_engine::ingest::UploadSession;
use sha2::{Digest, Sha256};

#[test]
fn single_file_sessions_match_hf_xet_byte_for_byte() {
    let doc = load_vectors();
    let inputs = doc["inputs"].as_object().unwrap();
    assert!(inputs.len() >= 10);
    for (name, input) in inputs {
        let data = generate(&input["recipe"]);
        let session_vec = &input["single_file_upload_session"];
        for piece in [8 << 20, 4103] {
            let mut session = UploadSession::new();
            let mut file = session.start_file();
            for p in data.chunks(piece) {
                file.write(p);
            }
            let summary = file.finish();
            assert_eq!(
                summary.file_hash,
                hash(&input["file_hash"]),
                "{name}: file hash"
            );
            let out = session.finish();
            let (entry, size) = &out.files[0];
            assert_eq!(*size, data.len() as u64);

            let terms = session_vec["terms"].as_array().unwrap();
            assert_eq!(entry.terms.len(), terms.len(), "{name}: term count");
            for (i, (t, want)) in entry.terms.iter().zip(terms).enumerate() {
                assert_eq!(t.xorb_hash, hash(&want["xorb_hash"]), "{name} term {i}");
                assert_eq!(
                    t.chunk_start as usize,
                    as_usize(&want["chunk_start"]),
                    "{name} term {i}"
                );
                assert_eq!(
                    t.chunk_end as usize,
                    as_usize(&want["chunk_end"]),
                    "{name} term {i}"
                );
                assert_eq!(
                    t.unpacked_bytes as usize,
                    as_usize(&want["unpacked_bytes"]),
                    "{name} term {i}"
                );
                assert_eq!(
                    entry.verification[i],
                    hash(&want["verification_hash"]),
                    "{name} term {i}"
                );
            }

            match session_vec.get("xorb") {
                Some(xorb) => {
                    assert_eq!(out.xorbs.len(), 1, "{name}: one xorb");
                    let x = &out.xorbs[0];
                    assert_eq!(x.hash, hash(&xorb["xorb_hash"]), "{name}: xorb hash");
                    let no_footer = &xorb["serialized_no_footer"];
                    assert_eq!(
                        x.data.len(),
                        as_usize(&no_footer["len"]),
                        "{name}: xorb length"
                    );
                    assert_eq!(
                        hex::encode(Sha256::digest(&x.data)),
                        no_footer["sha256"].as_str().unwrap(),
                        "{name}: xorb bytes"
                    );
                    let with_footer = &xorb["serialized_with_footer"];
                    assert_eq!(
                        hex::encode(Sha256::digest(x.with_footer())),
                        with_footer["sha256"].as_str().unwrap(),
                        "{name}: xorb bytes with footer"
                    );
                }
                None => assert!(out.xorbs.is_empty(), "{name}: no xorb"),
            }

            let shard = out.shard.to_upload_bytes();
            let stored =
                std::fs::read(vectors_dir().join(session_vec["shard_file"].as_str().unwrap()))
                    .unwrap();
            assert_eq!(shard.len(), stored.len(), "{name}: shard length");
            assert!(shard == stored, "{name}: shard bytes differ");
        }
    }
}
