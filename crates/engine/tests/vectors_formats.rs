//! Xorb and shard formats against the real-implementation vectors in
//! `tests/vectors/` (inputs regenerated from their recipes; chunk boundaries taken from
//! the JSON so that these tests do not depend on the chunker).

mod common;

use common::{generate, vectors_dir};

use hugbucket_engine::compression::CompressionScheme;
use hugbucket_engine::hash::{chunk_hash, verification_hash, xorb_hash};
use hugbucket_engine::shard::{FileEntry, FileTerm, Shard, XorbChunkEntry, XorbEntry};
use hugbucket_engine::xorb::{
    ChunkHeader, XorbBuilder, decode_chunk_records, parse_xorb, serialize_xorb, verify_xorb,
};
use hugbucket_engine::{EngineError, XetHash};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn read_vector_file(rel: &str) -> Vec<u8> {
    std::fs::read(vectors_dir().join(rel)).unwrap()
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

fn xh(v: &Value) -> XetHash {
    common::hash(v)
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap()
}

struct Input {
    name: String,
    spec: Value,
    data: Vec<u8>,
}

impl Input {
    fn chunk(&self, i: usize) -> &[u8] {
        let c = &self.spec["chunks"][i];
        let off = u(&c["offset"]) as usize;
        &self.data[off..off + u(&c["length"]) as usize]
    }
    fn chunk_hash(&self, i: usize) -> XetHash {
        xh(&self.spec["chunks"][i]["hash"])
    }
    fn session(&self) -> &Value {
        &self.spec["single_file_upload_session"]
    }
    /// Indices (into the file's chunk list) of the xorb's chunks.
    fn xorb_chunk_indices(&self) -> Vec<usize> {
        self.session()["xorb"]["chunks_as_file_chunk_indices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| u(v) as usize)
            .collect()
    }
}

fn inputs() -> Vec<Input> {
    let j = common::load_vectors();
    j["inputs"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, spec)| {
            let data = generate(&spec["recipe"]);
            assert_eq!(data.len() as u64, u(&spec["size"]), "{name}");
            assert_eq!(
                sha256_hex(&data),
                spec["sha256"].as_str().unwrap(),
                "{name}"
            );
            Input {
                name: name.clone(),
                spec: spec.clone(),
                data,
            }
        })
        .collect()
}

#[test]
fn xorbs_serialize_byte_identical() {
    let mut checked_files = 0;
    let mut checked = 0;
    for inp in inputs() {
        let Some(x) = inp.session().get("xorb") else {
            continue;
        };
        let idx = inp.xorb_chunk_indices();
        assert_eq!(idx.len() as u64, u(&x["num_chunks"]));
        let chunks: Vec<&[u8]> = idx.iter().map(|&i| inp.chunk(i)).collect();
        for (k, &i) in idx.iter().enumerate() {
            assert_eq!(chunk_hash(chunks[k]), inp.chunk_hash(i), "{}", inp.name);
        }
        let ser = serialize_xorb(&chunks, &[0]);
        assert_eq!(ser.hash, xh(&x["xorb_hash"]), "{}", inp.name);

        // Same bytes when fed one chunk at a time with the builder's auto policy.
        let mut b = XorbBuilder::new();
        for (k, c) in chunks.iter().enumerate() {
            b.add_chunk_auto(chunk_hash(c), c, k == 0);
        }
        assert_eq!(b.num_chunks(), chunks.len());
        assert_eq!(b.uncompressed_len(), u(&x["num_bytes_in_xorb"]));
        assert_eq!(b.serialized_len(), ser.data.len());
        assert_eq!(b.finish(), ser, "{}", inp.name);

        let nf = &x["serialized_no_footer"];
        assert_eq!(ser.data.len() as u64, u(&nf["len"]), "{}", inp.name);
        assert_eq!(
            sha256_hex(&ser.data),
            nf["sha256"].as_str().unwrap(),
            "{}",
            inp.name
        );
        let full = ser.with_footer();
        let wf = &x["serialized_with_footer"];
        assert_eq!(full.len() as u64, u(&wf["len"]), "{}", inp.name);
        assert_eq!(u(&wf["footer_start"]) as usize, ser.data.len());
        assert_eq!(
            sha256_hex(&full),
            wf["sha256"].as_str().unwrap(),
            "{}",
            inp.name
        );
        assert_eq!(ser.footer().len(), full.len() - ser.data.len());

        let headers = x["chunk_headers"].as_array().unwrap();
        assert_eq!(headers.len(), ser.chunks.len());
        let mut unpacked = 0u64;
        for (k, (h, c)) in headers.iter().zip(&ser.chunks).enumerate() {
            let parsed = ChunkHeader::parse(&ser.data[c.byte_start as usize..]).unwrap();
            assert_eq!(
                u(&h["header_offset"]),
                u64::from(c.byte_start),
                "{} #{k}",
                inp.name
            );
            assert_eq!(u(&h["scheme"]), parsed.scheme as u64, "{} #{k}", inp.name);
            assert_eq!(u(&h["compressed_len"]), u64::from(parsed.compressed_len));
            assert_eq!(
                u(&h["uncompressed_len"]),
                u64::from(parsed.uncompressed_len)
            );
            assert_eq!(c.byte_end - c.byte_start, 8 + parsed.compressed_len);
            assert_eq!(c.unpacked_start, unpacked);
            unpacked += u64::from(c.uncompressed_len);
        }

        if let Some(files) = x.get("files") {
            let files = files.as_array().unwrap();
            let stored = read_vector_file(files[0].as_str().unwrap());
            let stored_full = read_vector_file(files[1].as_str().unwrap());
            assert_eq!(stored, ser.data, "{}", inp.name);
            assert_eq!(stored_full, full, "{}", inp.name);
            checked_files += 1;
        }
        checked += 1;
    }
    assert_eq!(checked, 9);
    assert_eq!(checked_files, 6);
}

#[test]
fn bg4_vector_selects_bg4_for_whole_block() {
    let inp = inputs()
        .into_iter()
        .find(|i| i.name == "f32ramp_256KiB")
        .unwrap();
    let headers = inp.session()["xorb"]["chunk_headers"].as_array().unwrap();
    assert!(headers.iter().all(|h| u(&h["scheme"]) == 2));
    assert!(hugbucket_engine::compression::predict_bg4(inp.chunk(0)));
}

#[test]
fn stored_xorbs_parse_and_verify() {
    for inp in inputs() {
        let Some(x) = inp.session().get("xorb") else {
            continue;
        };
        let Some(files) = x.get("files") else {
            continue;
        };
        let files = files.as_array().unwrap();
        let idx = inp.xorb_chunk_indices();
        let expected_hash = xh(&x["xorb_hash"]);
        let headers = x["chunk_headers"].as_array().unwrap();
        let mut expected_data = Vec::new();
        for &i in &idx {
            expected_data.extend_from_slice(inp.chunk(i));
        }
        for (fi, f) in files.iter().enumerate() {
            let bytes = read_vector_file(f.as_str().unwrap());
            let with_footer = fi == 1;
            let p = parse_xorb(&bytes).unwrap();
            assert_eq!(p.footer.is_some(), with_footer);
            assert_eq!(p.chunks.len(), idx.len());
            assert_eq!(
                p.data_len as u64,
                u(&x["serialized_no_footer"]["len"]),
                "{}",
                inp.name
            );
            for (k, c) in p.chunks.iter().enumerate() {
                assert_eq!(u64::from(c.byte_start), u(&headers[k]["header_offset"]));
                let expect = if with_footer {
                    inp.chunk_hash(idx[k])
                } else {
                    XetHash::ZERO
                };
                assert_eq!(c.hash, expect);
            }
            if let Some(footer) = &p.footer {
                assert_eq!(footer.xorb_hash, expected_hash);
            }
            let v = verify_xorb(&bytes, &expected_hash).unwrap();
            for (k, c) in v.chunks.iter().enumerate() {
                assert_eq!(c.hash, inp.chunk_hash(idx[k]), "{}", inp.name);
            }
            let pairs: Vec<_> = v
                .chunks
                .iter()
                .map(|c| (c.hash, u64::from(c.uncompressed_len)))
                .collect();
            assert_eq!(xorb_hash(&pairs), expected_hash);
            assert!(matches!(
                verify_xorb(&bytes, &XetHash::ZERO),
                Err(EngineError::HashMismatch { .. })
            ));
            let mut out = Vec::new();
            let lens = decode_chunk_records(&bytes, &mut out).unwrap();
            assert_eq!(lens.len(), idx.len());
            assert_eq!(out, expected_data, "{}", inp.name);
            // Each record alone decodes to its chunk.
            for (k, c) in v.chunks.iter().enumerate() {
                let mut one = Vec::new();
                decode_chunk_records(&bytes[c.byte_start as usize..c.byte_end as usize], &mut one)
                    .unwrap();
                assert_eq!(one, inp.chunk(idx[k]));
            }
        }
    }
}

#[test]
fn scheme_of_random_data_is_none() {
    let inp = inputs()
        .into_iter()
        .find(|i| i.name == "rand_8193")
        .unwrap();
    let bytes = read_vector_file("xorbs/rand_8193.xorb");
    let h = ChunkHeader::parse(&bytes).unwrap();
    assert_eq!(h.scheme, CompressionScheme::None);
    assert_eq!(&bytes[8..], inp.chunk(0));
}

/// The shard an input's single-file session uploaded, rebuilt from the JSON.
fn shard_from_json(inp: &Input) -> Shard {
    let s = inp.session();
    let terms_json = s["terms"].as_array().unwrap();
    let terms: Vec<FileTerm> = terms_json
        .iter()
        .map(|t| FileTerm {
            xorb_hash: xh(&t["xorb_hash"]),
            unpacked_bytes: u(&t["unpacked_bytes"]) as u32,
            chunk_start: u(&t["chunk_start"]) as u32,
            chunk_end: u(&t["chunk_end"]) as u32,
        })
        .collect();
    let verification: Vec<XetHash> = terms_json
        .iter()
        .map(|t| xh(&t["verification_hash"]))
        .collect();
    let mut xorbs = Vec::new();
    if let Some(x) = s.get("xorb") {
        let mut start = 0u32;
        let chunks = inp
            .xorb_chunk_indices()
            .into_iter()
            .map(|i| {
                let len = u(&inp.spec["chunks"][i]["length"]) as u32;
                let e = XorbChunkEntry {
                    hash: inp.chunk_hash(i),
                    unpacked_start: start,
                    unpacked_len: len,
                    flags: 0,
                };
                start += len;
                e
            })
            .collect::<Vec<_>>();
        assert_eq!(u64::from(start), u(&x["num_bytes_in_xorb"]));
        // Verification hashes are the keyed hash of the term's chunk hashes.
        for (t, v) in terms.iter().zip(&verification) {
            let hs: Vec<XetHash> = chunks[t.chunk_start as usize..t.chunk_end as usize]
                .iter()
                .map(|c| c.hash)
                .collect();
            assert_eq!(verification_hash(&hs), *v, "{}", inp.name);
        }
        xorbs.push(XorbEntry {
            xorb_hash: xh(&x["xorb_hash"]),
            chunks,
            bytes_in_xorb: u(&x["num_bytes_in_xorb"]) as u32,
            bytes_on_disk: 0,
        });
    }
    Shard {
        files: vec![FileEntry {
            file_hash: xh(&inp.spec["file_hash"]),
            terms,
            verification,
            sha256: None,
        }],
        xorbs,
        footer: None,
    }
}

#[test]
fn single_file_shards_byte_identical() {
    let mut n = 0;
    for inp in inputs() {
        let s = inp.session();
        let stored = read_vector_file(s["shard_file"].as_str().unwrap());
        assert_eq!(stored.len() as u64, u(&s["shard_len"]));
        assert_eq!(sha256_hex(&stored), s["shard_sha256"].as_str().unwrap());
        let shard = shard_from_json(&inp);
        assert_eq!(
            format!("{:#010x}", shard.files[0].flags()),
            s["file_flags"].as_str().unwrap()
        );
        let bytes = shard.to_upload_bytes();
        assert_eq!(bytes, stored, "{}", inp.name);
        let parsed = Shard::parse(&stored).unwrap();
        assert_eq!(parsed, shard, "{}", inp.name);
        check_full_form(&parsed);
        n += 1;
    }
    assert_eq!(n, 10);
}

#[test]
fn multi_file_shard_byte_identical() {
    let j = common::load_vectors();
    let m = &j["multi_file_session"];
    let stored = read_vector_file(m["shard_file"].as_str().unwrap());
    assert_eq!(stored.len() as u64, u(&m["shard_len"]));
    assert_eq!(sha256_hex(&stored), m["shard_sha256"].as_str().unwrap());
    let parsed = Shard::parse(&stored).unwrap();

    // The xorb's chunk order depends on thread timing, so its chunk list comes from the shard.
    let xj = &m["xorb"];
    assert_eq!(parsed.xorbs.len(), 1);
    let xorb = parsed.xorbs[0].clone();
    assert_eq!(xorb.xorb_hash, xh(&xj["xorb_hash"]));
    assert_eq!(xorb.chunks.len() as u64, u(&xj["num_chunks"]));
    assert_eq!(u64::from(xorb.bytes_in_xorb), u(&xj["num_bytes_in_xorb"]));
    let pairs: Vec<_> = xorb
        .chunks
        .iter()
        .map(|c| (c.hash, u64::from(c.unpacked_len)))
        .collect();
    assert_eq!(xorb_hash(&pairs), xorb.xorb_hash);
    let mut start = 0;
    for c in &xorb.chunks {
        assert_eq!(c.unpacked_start, start);
        start += c.unpacked_len;
    }

    let files: Vec<FileEntry> = m["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let terms: Vec<FileTerm> = f["terms"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| FileTerm {
                    xorb_hash: xorb.xorb_hash,
                    unpacked_bytes: u(&t["unpacked_bytes"]) as u32,
                    chunk_start: u(&t["chunk_start"]) as u32,
                    chunk_end: u(&t["chunk_end"]) as u32,
                })
                .collect();
            let verification = terms
                .iter()
                .map(|t| {
                    let hs: Vec<XetHash> = xorb.chunks
                        [t.chunk_start as usize..t.chunk_end as usize]
                        .iter()
                        .map(|c| c.hash)
                        .collect();
                    verification_hash(&hs)
                })
                .collect();
            let mut digest = [0u8; 32];
            hex::decode_to_slice(f["sha256_standard_hex"].as_str().unwrap(), &mut digest).unwrap();
            let sha = XetHash::from_sha256_digest(&digest);
            let raw = hex::decode(f["sha256_raw_bytes_in_shard_hex"].as_str().unwrap()).unwrap();
            assert_eq!(sha.as_bytes()[..], raw[..]);
            let e = FileEntry {
                file_hash: xh(&f["file_hash"]),
                terms,
                verification,
                sha256: Some(sha),
            };
            assert_eq!(format!("{:#010x}", e.flags()), f["flags"].as_str().unwrap());
            e
        })
        .collect();
    // JSON lists files sorted already; feed them reversed to exercise sorting.
    let shard = Shard {
        files: files.iter().rev().cloned().collect(),
        xorbs: vec![xorb.clone()],
        footer: None,
    };
    assert_eq!(shard.to_upload_bytes(), stored);
    let expect = Shard {
        files,
        xorbs: vec![xorb],
        footer: None,
    };
    assert_eq!(parsed, expect);
    check_full_form(&parsed);
}

fn rd_u64(b: &[u8], i: usize) -> u64 {
    u64::from_le_bytes(b[i..i + 8].try_into().unwrap())
}
fn rd_u32(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes(b[i..i + 4].try_into().unwrap())
}

/// Full form → parse → same records; lookup tables checked independently of the parser.
fn check_full_form(shard: &Shard) {
    let key = XetHash::from_hex(&"ab".repeat(32)).unwrap();
    for hmac in [None, Some(key)] {
        let full = shard.to_full_bytes(hmac, 1_700_000_000, u64::MAX);
        let p = Shard::parse(&full).unwrap();
        let f = p.footer.clone().unwrap();
        assert_eq!(rd_u64(&full, 40), 200);
        assert_eq!(f.version, 1);
        assert_eq!(f.creation_timestamp, 1_700_000_000);
        assert_eq!(f.key_expiry, u64::MAX);
        assert_eq!(f.chunk_hash_hmac_key, hmac.unwrap_or(XetHash::ZERO));
        assert_eq!(f.footer_offset as usize, full.len() - 200);
        // The upload form is the prefix up to the lookup tables (footer_size aside).
        let up = shard.to_upload_bytes();
        assert_eq!(f.file_lookup_offset as usize, up.len());
        if hmac.is_none() {
            assert_eq!(full[48..up.len()], up[48..]);
        }
        let mut expect = shard.clone();
        if let Some(k) = &hmac {
            for x in &mut expect.xorbs {
                for c in &mut x.chunks {
                    c.hash = c.hash.hmac(k);
                }
            }
        }
        let mut got = p.clone();
        got.footer = None;
        assert_eq!(got, expect);

        // file table: one entry per file, pointing at its header record
        assert_eq!(f.file_lookup_num_entry as usize, shard.files.len());
        let mut rec = 0u32;
        let mut expected_ft = Vec::new();
        for fe in &shard.files {
            expected_ft.push((fe.file_hash.truncated(), rec));
            rec += fe.num_records() as u32;
        }
        expected_ft.sort_by_key(|e| e.0);
        for (e, (k, r)) in expected_ft.iter().enumerate() {
            let p = f.file_lookup_offset as usize + 12 * e;
            assert_eq!((rd_u64(&full, p), rd_u32(&full, p + 8)), (*k, *r));
            let at = 48 + 48 * *r as usize;
            assert_eq!(&full[at..at + 8], &k.to_le_bytes());
        }
        // xorb + chunk tables
        assert_eq!(f.xorb_lookup_num_entry as usize, shard.xorbs.len());
        let total_chunks: usize = shard.xorbs.iter().map(|x| x.chunks.len()).sum();
        assert_eq!(f.chunk_lookup_num_entry as usize, total_chunks);
        let mut keys = Vec::new();
        for e in 0..total_chunks {
            let p = f.chunk_lookup_offset as usize + 16 * e;
            let (k, xi, ci) = (
                rd_u64(&full, p),
                rd_u32(&full, p + 8),
                rd_u32(&full, p + 12),
            );
            let at = f.xorb_info_offset as usize + 48 * (xi as usize + 1 + ci as usize);
            assert_eq!(rd_u64(&full, at), k);
            keys.push(k);
        }
        assert!(keys.windows(2).all(|w| w[0] <= w[1]), "chunk table sorted");
        for e in 0..shard.xorbs.len() {
            let p = f.xorb_lookup_offset as usize + 12 * e;
            let at = f.xorb_info_offset as usize + 48 * rd_u32(&full, p + 8) as usize;
            assert_eq!(rd_u64(&full, at), rd_u64(&full, p));
        }
        assert_eq!(
            f.stored_bytes,
            shard
                .xorbs
                .iter()
                .map(|x| u64::from(x.bytes_in_xorb))
                .sum::<u64>()
        );
        assert_eq!(
            f.materialized_bytes,
            shard.files.iter().map(|x| x.size()).sum::<u64>()
        );
    }
}
