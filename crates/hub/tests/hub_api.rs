//! End-to-end tests of the embedded hub: started in-process on 127.0.0.1:0 with a temp data
//! dir and driven over HTTP. Uploads are built with the engine's own writers and hashes
//! (fixed-size chunks: the server does not re-chunk).

use std::time::Duration;

use hugbucket_engine::XetHash;
use hugbucket_engine::hash::{chunk_hash, file_hash, verification_hash};
use hugbucket_engine::shard::{FileEntry, FileTerm, Shard, XorbChunkEntry, XorbEntry};
use hugbucket_engine::xorb::{SerializedXorb, decode_chunk_records, serialize_xorb};
use hugbucket_hub::{HubConfig, RunningHub};
use reqwest::StatusCode;
use serde_json::{Value, json};

struct T {
    hub: Option<RunningHub>,
    dir: tempfile::TempDir,
    c: reqwest::Client,
    url: String,
    token: String,
}

async fn start_in(dir: tempfile::TempDir) -> T {
    let hub = hugbucket_hub::start(HubConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        dir.path().to_path_buf(),
    ))
    .await
    .unwrap();
    T {
        url: hub.url(),
        token: hub.token().to_string(),
        hub: Some(hub),
        dir,
        c: http_client(),
    }
}

/// A reqwest client (workspace builds unify reqwest's features with `rustls-no-provider`,
/// so the provider is installed first).
fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

async fn start() -> T {
    start_in(tempfile::tempdir().unwrap()).await
}

impl T {
    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.c
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
    }
    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.c
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
    }
    async fn json(&self, rb: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let r = rb.send().await.unwrap();
        let s = r.status();
        let v = r.json().await.unwrap_or(Value::Null);
        (s, v)
    }
    async fn create(&self, id: &str) {
        let (s, _) = self
            .json(self.post(&format!("/api/buckets/{id}")).json(&json!({})))
            .await;
        assert_eq!(s, 200, "create {id}");
    }
    /// (access token, casUrl)
    async fn xet_token(&self, id: &str, write: bool) -> (String, String) {
        let kind = if write { "write" } else { "read" };
        let r = self
            .get(&format!("/api/buckets/{id}/xet-{kind}-token"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let hdr_tok = r.headers()["x-xet-access-token"]
            .to_str()
            .unwrap()
            .to_string();
        let hdr_exp: u64 = r.headers()["x-xet-token-expiration"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["accessToken"], hdr_tok);
        assert_eq!(v["exp"], hdr_exp);
        assert_eq!(v["casUrl"], self.url);
        (hdr_tok, v["casUrl"].as_str().unwrap().to_string())
    }
    async fn upload_xorb(&self, tok: &str, hash: &XetHash, data: &[u8]) -> reqwest::Response {
        self.c
            .post(format!("{}/v1/xorbs/default/{}", self.url, hash.to_hex()))
            .bearer_auth(tok)
            .body(data.to_vec())
            .send()
            .await
            .unwrap()
    }
    async fn upload_shard(&self, tok: &str, bytes: Vec<u8>, v2: bool) -> (StatusCode, String) {
        let v = if v2 { "v2" } else { "v1" };
        let r = self
            .c
            .post(format!("{}/{v}/shards", self.url))
            .bearer_auth(tok)
            .body(bytes)
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    }
    async fn batch(&self, id: &str, lines: &[Value]) -> (StatusCode, Value) {
        let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
        self.json(
            self.post(&format!("/api/buckets/{id}/batch"))
                .header("content-type", "application/x-ndjson")
                .body(body),
        )
        .await
    }
    async fn stats(&self) -> Value {
        self.json(self.get("/api/_hugbucket/stats")).await.1
    }
    fn xorb_files(&self) -> usize {
        std::fs::read_dir(self.dir.path().join("xorbs"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".xorb")
            })
            .count()
    }
    async fn restart(mut self) -> T {
        self.hub.take().unwrap().shutdown().await;
        start_in(self.dir).await
    }
}

/// Deterministic pseudo-random bytes.
fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A file cut into fixed-size chunks, its xorb and its shard entry.
struct Upload {
    data: Vec<u8>,
    xorb: SerializedXorb,
    file: FileEntry,
    chunk_hashes: Vec<XetHash>,
}

fn make_upload(data: Vec<u8>, chunk: usize) -> Upload {
    let pieces: Vec<&[u8]> = data.chunks(chunk).collect();
    let xorb = serialize_xorb(&pieces, &[0]);
    let pairs: Vec<(XetHash, u64)> = pieces
        .iter()
        .map(|p| (chunk_hash(p), p.len() as u64))
        .collect();
    let chunk_hashes: Vec<XetHash> = pairs.iter().map(|p| p.0).collect();
    let file = FileEntry {
        file_hash: file_hash(&pairs),
        terms: vec![FileTerm {
            xorb_hash: xorb.hash,
            unpacked_bytes: data.len() as u32,
            chunk_start: 0,
            chunk_end: pieces.len() as u32,
        }],
        verification: vec![verification_hash(&chunk_hashes)],
        sha256: None,
    };
    Upload {
        data,
        xorb,
        file,
        chunk_hashes,
    }
}

fn xorb_entry(x: &SerializedXorb) -> XorbEntry {
    let mut start = 0u32;
    let chunks = x
        .chunks
        .iter()
        .map(|c| {
            let e = XorbChunkEntry {
                hash: c.hash,
                unpacked_start: start,
                unpacked_len: c.uncompressed_len,
                flags: 0,
            };
            start += c.uncompressed_len;
            e
        })
        .collect();
    XorbEntry {
        xorb_hash: x.hash,
        chunks,
        bytes_in_xorb: start,
        bytes_on_disk: 0,
    }
}

fn shard_of(files: Vec<FileEntry>, xorbs: &[&SerializedXorb]) -> Vec<u8> {
    Shard {
        files,
        xorbs: xorbs.iter().map(|x| xorb_entry(x)).collect(),
        footer: None,
    }
    .to_upload_bytes()
}

/// Uploads xorb + shard + addFile; returns the upload.
async fn put_file(t: &T, bucket: &str, path: &str, data: Vec<u8>) -> Upload {
    let u = make_upload(data, 16 * 1024);
    let (tok, _) = t.xet_token(bucket, true).await;
    let r = t.upload_xorb(&tok, &u.xorb.hash, &u.xorb.data).await;
    assert_eq!(r.status(), 200);
    let (s, body) = t
        .upload_shard(&tok, shard_of(vec![u.file.clone()], &[&u.xorb]), true)
        .await;
    assert_eq!(s, 200);
    assert!(body.trim_end().ends_with(r#"{"type":"result"}"#), "{body}");
    let (s, v) = t
        .batch(
            bucket,
            &[json!({"type": "addFile", "path": path, "xetHash": u.file.file_hash.to_hex(), "mtime": 1_732_570_000_123u64})],
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["failed"], json!([]));
    u
}

/// Downloads `range` (inclusive) of a file the way hf_xet does: v2 reconstruction, one
/// unauthenticated GET per byte range, decode, drop offset_into_first_range, truncate.
async fn download_via_cas(t: &T, tok: &str, file: &XetHash, range: (u64, u64)) -> Vec<u8> {
    let r =
        t.c.get(format!("{}/v2/reconstructions/{}", t.url, file.to_hex()))
            .bearer_auth(tok)
            .header("range", format!("bytes={}-{}", range.0, range.1))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let mut out = Vec::new();
    for term in v["terms"].as_array().unwrap() {
        let (ts, te) = (
            term["range"]["start"].as_u64().unwrap(),
            term["range"]["end"].as_u64().unwrap(),
        );
        let entries = v["xorbs"][term["hash"].as_str().unwrap()]
            .as_array()
            .unwrap();
        let (url, cr) = entries
            .iter()
            .flat_map(|e| {
                e["ranges"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(move |r| (e["url"].as_str().unwrap(), r))
            })
            .find(|(_, r)| {
                r["chunks"]["start"].as_u64().unwrap() <= ts
                    && te <= r["chunks"]["end"].as_u64().unwrap()
            })
            .expect("a fetch range covering the term");
        let resp =
            t.c.get(url)
                .header(
                    "range",
                    format!("bytes={}-{}", cr["bytes"]["start"], cr["bytes"]["end"]),
                )
                .send()
                .await
                .unwrap();
        assert_eq!(resp.status(), 206);
        let bytes = resp.bytes().await.unwrap();
        let mut decoded = Vec::new();
        let lens = decode_chunk_records(&bytes, &mut decoded).unwrap();
        let first = (ts - cr["chunks"]["start"].as_u64().unwrap()) as usize;
        let n = (te - ts) as usize;
        let skip: usize = lens[..first].iter().map(|l| *l as usize).sum();
        let take: usize = lens[first..first + n].iter().map(|l| *l as usize).sum();
        assert_eq!(take as u64, term["unpacked_length"].as_u64().unwrap());
        out.extend_from_slice(&decoded[skip..skip + take]);
    }
    let off = v["offset_into_first_range"].as_u64().unwrap() as usize;
    let want = (range.1 - range.0 + 1) as usize;
    out[off..off + want].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_token_auth() {
    let t = start().await;
    let r =
        t.c.get(format!("{}/api/whoami-v2", t.url))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["x-error-code"], "Unauthorized");
    assert!(r.headers().contains_key("x-error-message"));
    let r =
        t.c.get(format!("{}/api/whoami-v2", t.url))
            .bearer_auth("hf_wrong")
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["x-error-message"],
        "Invalid credentials in Authorization header"
    );
    let (s, v) = t.json(t.get("/api/whoami-v2")).await;
    assert_eq!(s, 200);
    assert_eq!(v["name"], "hugbucket");
    // Every Hub route needs it, including listings and stats.
    for p in [
        "/api/buckets/me",
        "/api/_hugbucket/stats",
        "/api/buckets/me/x/tree",
    ] {
        let r = t.c.get(format!("{}{p}", t.url)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{p}");
    }
    // The generated token persists in the data dir.
    let stored = std::fs::read_to_string(t.dir.path().join("hub_token")).unwrap();
    assert_eq!(stored.trim(), t.token);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bucket_lifecycle() {
    let t = start().await;
    let (s, v) = t
        .json(
            t.post("/api/buckets/me/alpha")
                .json(&json!({"visibility": "private"})),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["url"], format!("{}/buckets/hugbucket/alpha", t.url));
    let (s, v) = t
        .json(t.post("/api/buckets/hugbucket/alpha").json(&json!({})))
        .await;
    assert_eq!(s, 409);
    assert_eq!(v["url"], format!("{}/buckets/hugbucket/alpha", t.url));
    t.create("hugbucket/beta").await;
    t.create("hugbucket/gamma").await;
    t.create("other/delta").await;

    let (s, v) = t.json(t.get("/api/buckets/hugbucket/alpha")).await;
    assert_eq!(s, 200);
    assert_eq!(v["id"], "hugbucket/alpha");
    assert_eq!(v["private"], true);
    assert_eq!(v["size"], 0);
    assert_eq!(v["totalFiles"], 0);
    assert!(v["createdAt"].as_str().unwrap().ends_with('Z'));

    // List with Link pagination.
    let r = t.get("/api/buckets/me?limit=2").send().await.unwrap();
    let link = r.headers()["link"].to_str().unwrap().to_string();
    let page1: Vec<Value> = r.json().await.unwrap();
    assert_eq!(page1.len(), 2);
    let next = link
        .strip_prefix('<')
        .and_then(|l| l.split_once(">; rel=\"next\""))
        .unwrap()
        .0
        .to_string();
    let r = t.c.get(&next).bearer_auth(&t.token).send().await.unwrap();
    assert!(!r.headers().contains_key("link"));
    let page2: Vec<Value> = r.json().await.unwrap();
    let ids: Vec<&str> = page1
        .iter()
        .chain(&page2)
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["hugbucket/alpha", "hugbucket/beta", "hugbucket/gamma"]
    );
    let (_, v) = t.json(t.get("/api/buckets/me?search=ET")).await;
    assert_eq!(v.as_array().unwrap().len(), 1);

    // Settings.
    let r =
        t.c.put(format!("{}/api/buckets/hugbucket/alpha/settings", t.url))
            .bearer_auth(&t.token)
            .json(&json!({"private": false}))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        t.json(t.get("/api/buckets/hugbucket/alpha")).await.1["private"],
        false
    );

    // Move keeps files.
    put_file(&t, "hugbucket/alpha", "f.bin", random_bytes(1000, 1)).await;
    let (s, _) = t
        .json(t.post("/api/repos/move").json(
            &json!({"fromRepo": "hugbucket/alpha", "toRepo": "hugbucket/omega", "type": "bucket"}),
        ))
        .await;
    assert_eq!(s, 200);
    let r = t.get("/api/buckets/hugbucket/alpha").send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["x-error-code"], "RepoNotFound");
    let (_, v) = t.json(t.get("/api/buckets/hugbucket/omega")).await;
    assert_eq!(v["totalFiles"], 1);
    assert_eq!(v["size"], 1000);
    let (s, _) = t
        .json(t.post("/api/repos/move").json(
            &json!({"fromRepo": "hugbucket/beta", "toRepo": "hugbucket/omega", "type": "bucket"}),
        ))
        .await;
    assert_eq!(s, 409);

    // Delete.
    let del = |id: &str| {
        t.c.delete(format!("{}/api/buckets/{id}", t.url))
            .bearer_auth(&t.token)
            .send()
    };
    assert_eq!(del("hugbucket/omega").await.unwrap().status(), 200);
    let r = del("hugbucket/omega").await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["x-error-code"], "RepoNotFound");
    // Re-created under the same name it is empty.
    t.create("hugbucket/omega").await;
    assert_eq!(
        t.json(t.get("/api/buckets/hugbucket/omega")).await.1["totalFiles"],
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tree_paths_info_and_batch() {
    let t = start().await;
    t.create("me/b").await;
    t.create("me/src").await;
    let u = put_file(&t, "hugbucket/b", "a.txt", b"hello world".to_vec()).await;
    let h = u.file.file_hash.to_hex();
    let zero = XetHash::ZERO.to_hex();
    let ops: Vec<Value> = ["d/x.bin", "d/y.bin", "d/sub/z.bin", "d2/w.bin", "e.bin"]
        .iter()
        .map(|p| json!({"type": "addFile", "path": p, "xetHash": h, "mtime": 1_732_570_000_000u64}))
        .chain([json!({"type": "addFile", "path": "empty", "xetHash": zero, "mtime": 5})])
        .collect();
    let (s, v) = t.batch("hugbucket/b", &ops).await;
    assert_eq!((s, v["failed"].clone()), (StatusCode::OK, json!([])));

    let paths = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| {
                format!(
                    "{}:{}",
                    e["type"].as_str().unwrap(),
                    e["path"].as_str().unwrap()
                )
            })
            .collect()
    };
    let (_, v) = t.json(t.get("/api/buckets/hugbucket/b/tree")).await;
    assert_eq!(
        paths(&v),
        [
            "file:a.txt",
            "directory:d",
            "directory:d2",
            "file:e.bin",
            "file:empty"
        ]
    );
    let (_, v) = t
        .json(t.get("/api/buckets/hugbucket/b/tree/d?recursive=false"))
        .await;
    assert_eq!(
        paths(&v),
        ["directory:d/sub", "file:d/x.bin", "file:d/y.bin"]
    );
    let (_, v) = t
        .json(t.get("/api/buckets/hugbucket/b/tree/d?recursive=true"))
        .await;
    // Lexical prefix: d2/ matches "d" too; files only.
    assert_eq!(
        paths(&v),
        [
            "file:d/sub/z.bin",
            "file:d/x.bin",
            "file:d/y.bin",
            "file:d2/w.bin"
        ]
    );
    let (_, v) = t
        .json(t.get("/api/buckets/hugbucket/b/tree/d%2Fsub?recursive=true"))
        .await;
    assert_eq!(paths(&v), ["file:d/sub/z.bin"]);
    let (_, v) = t.json(t.get("/api/buckets/hugbucket/b/tree/e.bin")).await;
    assert_eq!(paths(&v), ["file:e.bin"]);
    let (_, v) = t
        .json(t.get("/api/buckets/hugbucket/b/tree/nope?recursive=true"))
        .await;
    assert_eq!(v, json!([]));
    let f = &t.json(t.get("/api/buckets/hugbucket/b/tree/e.bin")).await.1[0];
    assert_eq!(f["size"], 11);
    assert_eq!(f["xetHash"], h);
    assert_eq!(f["mtime"], "2024-11-25T21:26:40.000Z");

    // Pagination (recursive and not) by following Link.
    for (q, want) in [("recursive=true&limit=2", 7usize), ("limit=2", 5)] {
        let mut url = format!("{}/api/buckets/hugbucket/b/tree?{q}", t.url);
        let mut all = Vec::new();
        loop {
            let r = t.c.get(&url).bearer_auth(&t.token).send().await.unwrap();
            let link = r
                .headers()
                .get("link")
                .map(|l| l.to_str().unwrap().to_string());
            let page: Vec<Value> = r.json().await.unwrap();
            assert!(page.len() <= 2);
            all.extend(page);
            match link {
                Some(l) => url = l[1..l.find('>').unwrap()].to_string(),
                None => break,
            }
        }
        assert_eq!(all.len(), want, "{q}: {all:?}");
    }

    // paths-info: missing paths omitted.
    let (s, v) = t
        .json(
            t.post("/api/buckets/hugbucket/b/paths-info")
                .json(&json!({"paths": ["d/x.bin", "missing", "empty"]})),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(paths(&v), ["file:d/x.bin", "file:empty"]);
    assert_eq!(v[1]["size"], 0);

    let info = t.json(t.get("/api/buckets/hugbucket/b")).await.1;
    assert_eq!(
        (info["totalFiles"].clone(), info["size"].clone()),
        (json!(7), json!(66))
    );
    // copy (from another bucket), delete, idempotent delete, failures.
    put_file(&t, "hugbucket/src", "s.bin", random_bytes(5000, 9)).await;
    let src_hash = t
        .json(
            t.post("/api/buckets/hugbucket/src/paths-info")
                .json(&json!({"paths": ["s.bin"]})),
        )
        .await
        .1[0]["xetHash"]
        .clone();
    let (s, v) = t
        .batch(
            "hugbucket/b",
            &[
                json!({"type": "copyFile", "path": "copied.bin", "xetHash": src_hash, "mtime": 1, "sourceRepoType": "bucket", "sourceRepoId": "hugbucket/src"}),
                json!({"type": "deleteFile", "path": "e.bin"}),
                json!({"type": "deleteFile", "path": "never-existed"}),
                json!({"type": "addFile", "path": "bad.bin", "xetHash": "1".repeat(64), "mtime": 1}),
                json!({"type": "copyFile", "path": "c2", "xetHash": src_hash, "sourceRepoType": "bucket", "sourceRepoId": "hugbucket/nope"}),
            ],
        )
        .await;
    assert_eq!(s, 200);
    let failed: Vec<&str> = v["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["bad.bin", "c2"]);
    let (_, v) = t
        .json(
            t.post("/api/buckets/hugbucket/b/paths-info")
                .json(&json!({"paths": ["copied.bin", "e.bin", "bad.bin"]})),
        )
        .await;
    assert_eq!(paths(&v), ["file:copied.bin"]);
    assert_eq!(v[0]["size"], 5000);
    // Totals follow the batch (e.bin: 11 bytes out, copied.bin: 5000 in).
    let info = t.json(t.get("/api/buckets/hugbucket/b")).await.1;
    assert_eq!(
        (info["totalFiles"].clone(), info["size"].clone()),
        (json!(7), json!(5055))
    );
    // All failing -> 422 with a JSON body.
    let (s, v) = t
        .batch(
            "hugbucket/b",
            &[
                json!({"type": "addFile", "path": "x", "xetHash": "2".repeat(64)}),
                json!({"type": "bogus", "path": "y"}),
            ],
        )
        .await;
    assert_eq!(s, 422);
    assert_eq!(v["failed"].as_array().unwrap().len(), 2);
    // Deleting twice is fine (retried batches).
    let (s, v) = t
        .batch(
            "hugbucket/b",
            &[json!({"type": "deleteFile", "path": "e.bin"})],
        )
        .await;
    assert_eq!((s, v["failed"].clone()), (StatusCode::OK, json!([])));
    // Unknown bucket.
    let (s, _) = t
        .batch(
            "hugbucket/none",
            &[json!({"type": "deleteFile", "path": "e.bin"})],
        )
        .await;
    assert_eq!(s, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_download_and_resolve() {
    let t = start().await;
    t.create("me/data").await;
    let data = random_bytes(300_000, 3);
    let u = put_file(&t, "hugbucket/data", "dir/file.bin", data.clone()).await;
    assert_eq!(t.xorb_files(), 1);

    // HEAD resolve metadata.
    let r =
        t.c.head(format!(
            "{}/buckets/hugbucket/data/resolve/dir%2Ffile.bin",
            t.url
        ))
        .bearer_auth(&t.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["x-xet-hash"],
        u.file.file_hash.to_hex().as_str()
    );
    assert_eq!(r.headers()["x-linked-size"], "300000");
    assert_eq!(r.headers()["content-length"], "300000");
    assert_eq!(
        r.headers()["link"],
        format!(
            "<{}/api/buckets/hugbucket/data/xet-read-token>; rel=\"xet-auth\"",
            t.url
        )
        .as_str()
    );
    let r =
        t.c.head(format!("{}/buckets/hugbucket/data/resolve/nope", t.url))
            .bearer_auth(&t.token)
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["x-error-code"], "EntryNotFound");

    // GET resolve, whole and ranged.
    let whole = t
        .get("/buckets/hugbucket/data/resolve/dir/file.bin")
        .send()
        .await
        .unwrap();
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.bytes().await.unwrap().as_ref(), &data[..]);
    let r = t
        .get("/buckets/hugbucket/data/resolve/dir%2Ffile.bin")
        .header("range", "bytes=20000-150000")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 20000-150000/300000");
    assert_eq!(r.bytes().await.unwrap().as_ref(), &data[20000..=150000]);
    let r = t
        .get("/buckets/hugbucket/data/resolve/dir%2Ffile.bin")
        .header("range", "bytes=300000-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);

    // CAS download path, whole file and sub-ranges.
    let (rtok, _) = t.xet_token("hugbucket/data", false).await;
    let h = u.file.file_hash;
    assert_eq!(download_via_cas(&t, &rtok, &h, (0, 299_999)).await, data);
    for (a, b) in [
        (1, 1),
        (16_383, 16_384),
        (50_000, 299_999),
        (299_999, 299_999),
    ] {
        assert_eq!(
            download_via_cas(&t, &rtok, &h, (a, b)).await,
            &data[a as usize..=b as usize]
        );
    }
    let stats = t.stats().await;
    assert!(stats["xorb_range_fetches"].as_u64().unwrap() >= 5);
    assert_eq!(stats["xorb_uploads"], 1);
    assert_eq!(stats["shard_uploads"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconstruction_v1_v2_ranges() {
    let t = start().await;
    t.create("me/r").await;
    // Two xorbs, two terms: 10 chunks of 1000 bytes each.
    let a = make_upload(random_bytes(5000, 11), 1000);
    let b = make_upload(random_bytes(5000, 12), 1000);
    let pairs: Vec<(XetHash, u64)> = a
        .chunk_hashes
        .iter()
        .chain(&b.chunk_hashes)
        .map(|h| (*h, 1000))
        .collect();
    let file = FileEntry {
        file_hash: file_hash(&pairs),
        terms: vec![a.file.terms[0], b.file.terms[0]],
        verification: vec![a.file.verification[0], b.file.verification[0]],
        sha256: None,
    };
    let (tok, _) = t.xet_token("hugbucket/r", true).await;
    assert_eq!(
        t.upload_xorb(&tok, &a.xorb.hash, &a.xorb.data)
            .await
            .status(),
        200
    );
    assert_eq!(
        t.upload_xorb(&tok, &b.xorb.hash, &b.xorb.data)
            .await
            .status(),
        200
    );
    let (s, body) = t
        .upload_shard(
            &tok,
            shard_of(vec![file.clone()], &[&a.xorb, &b.xorb]),
            false,
        )
        .await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, r#"{"result":1}"#));
    // Same shard again: already registered.
    let (s, body) = t
        .upload_shard(&tok, shard_of(vec![file.clone()], &[]), false)
        .await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, r#"{"result":0}"#));

    let recon = |v: &str, range: Option<&str>| {
        let mut rb =
            t.c.get(format!(
                "{}/{v}/reconstructions/{}",
                t.url,
                file.file_hash.to_hex()
            ))
            .bearer_auth(&tok);
        if let Some(r) = range {
            rb = rb.header("range", r);
        }
        rb.send()
    };
    // Whole file, v1.
    let v: Value = recon("v1", None).await.unwrap().json().await.unwrap();
    assert_eq!(v["offset_into_first_range"], 0);
    assert_eq!(v["terms"].as_array().unwrap().len(), 2);
    assert_eq!(v["terms"][0]["hash"], a.xorb.hash.to_hex());
    assert_eq!(v["terms"][0]["unpacked_length"], 5000);
    assert_eq!(v["terms"][1]["range"], json!({"start": 0, "end": 5}));
    let fi = &v["fetch_info"][a.xorb.hash.to_hex()][0];
    assert_eq!(fi["range"], json!({"start": 0, "end": 5}));
    assert_eq!(fi["url_range"]["start"], 0);
    assert_eq!(fi["url_range"]["end"], a.xorb.data.len() as u64 - 1);

    // bytes=2500-7499: chunk 2.. of a (offset 500), chunks ..=2 of b.
    let v: Value = recon("v2", Some("bytes=2500-7499"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["offset_into_first_range"], 500);
    assert_eq!(v["terms"][0]["range"], json!({"start": 2, "end": 5}));
    assert_eq!(v["terms"][0]["unpacked_length"], 3000);
    assert_eq!(v["terms"][1]["range"], json!({"start": 0, "end": 3}));
    assert_eq!(v["terms"][1]["unpacked_length"], 3000);
    let xr = &v["xorbs"][a.xorb.hash.to_hex()][0]["ranges"][0];
    assert_eq!(xr["chunks"], json!({"start": 2, "end": 5}));
    assert_eq!(xr["bytes"]["start"], a.xorb.chunks[2].byte_start);
    assert_eq!(xr["bytes"]["end"], a.xorb.chunks[4].byte_end - 1);
    assert!(v.get("fetch_info").is_none());

    // Past the end: 416. Last byte: one chunk.
    assert_eq!(
        recon("v2", Some("bytes=10000-10005"))
            .await
            .unwrap()
            .status(),
        416
    );
    let v: Value = recon("v1", Some("bytes=9999-20000"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["terms"].as_array().unwrap().len(), 1);
    assert_eq!(v["terms"][0]["range"], json!({"start": 4, "end": 5}));
    assert_eq!(v["offset_into_first_range"], 999);
    // Unknown file: 404; read token works, no token 401.
    let r =
        t.c.get(format!("{}/v2/reconstructions/{}", t.url, "3".repeat(64)))
            .bearer_auth(&tok)
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 404);
    let r =
        t.c.get(format!(
            "{}/v2/reconstructions/{}",
            t.url,
            file.file_hash.to_hex()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let (rtok, _) = t.xet_token("hugbucket/r", false).await;
    let all = download_via_cas(&t, &rtok, &file.file_hash, (0, 9999)).await;
    assert_eq!(&all[..5000], &a.data[..]);
    assert_eq!(&all[5000..], &b.data[..]);
}

/// Payloads of a multipart/byteranges body.
fn multipart_parts<'a>(body: &'a [u8], boundary: &str) -> Vec<&'a [u8]> {
    let sep = format!("--{boundary}");
    let mut starts = Vec::new();
    let mut i = 0;
    while let Some(p) = body[i..]
        .windows(sep.len())
        .position(|w| w == sep.as_bytes())
    {
        starts.push(i + p);
        i += p + sep.len();
    }
    starts
        .windows(2)
        .map(|w| {
            let part = &body[w[0] + sep.len()..w[1]];
            let hdr_end = part.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
            // Each payload is followed by the CRLF that precedes the next delimiter.
            &part[hdr_end..part.len() - 2]
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_urls_ranges_and_signatures() {
    let t = start().await;
    t.create("me/f").await;
    let u = put_file(&t, "hugbucket/f", "x", random_bytes(100_000, 5)).await;
    let (tok, _) = t.xet_token("hugbucket/f", false).await;
    let v: Value =
        t.c.get(format!(
            "{}/v1/reconstructions/{}",
            t.url,
            u.file.file_hash.to_hex()
        ))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = v["fetch_info"][u.xorb.hash.to_hex()][0]["url"]
        .as_str()
        .unwrap()
        .to_string();
    let entry = &v["fetch_info"][u.xorb.hash.to_hex()][0];
    let (bs, be) = (
        entry["url_range"]["start"].as_u64().unwrap(),
        entry["url_range"]["end"].as_u64().unwrap(),
    );
    assert!(
        url.contains(&format!("X-Xet-Signed-Range={bs}-{be}")),
        "{url}"
    );
    let xd = &u.xorb.data;
    let stored_len = xd.len() + u.xorb.footer().len();
    let fetch = |url: String, range: Option<String>| {
        let rb = t.c.get(url);
        let rb = match range {
            Some(r) => rb.header("range", r),
            None => rb,
        };
        async move { rb.send().await.unwrap() }
    };
    // Exactly the signed range, no Authorization: 206 with those bytes.
    let r = fetch(url.clone(), Some(format!("bytes={bs}-{be}"))).await;
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.headers()["content-range"].to_str().unwrap(),
        format!("bytes {bs}-{be}/{stored_len}")
    );
    assert_eq!(
        r.bytes().await.unwrap().as_ref(),
        &xd[bs as usize..=be as usize]
    );
    // A narrower, wider, shifted or missing range is refused (403), as by the CAS for a
    // URL carrying X-Xet-Signed-Range.
    let refused_before = t.stats().await["fetch_range_refused"].as_u64().unwrap();
    for range in [
        Some(format!("bytes={}-{be}", bs + 10)),
        Some(format!("bytes={bs}-{}", be - 1)),
        Some(format!("bytes={bs}-{}", be + 1)),
        Some(format!("bytes={bs}-{be},{}-{}", be + 1, be + 2)),
        Some(format!("bytes={bs}-")),
        None,
    ] {
        let r = fetch(url.clone(), range.clone()).await;
        assert_eq!(r.status(), 403, "{range:?}");
        assert_eq!(r.headers()["x-error-code"], "Forbidden");
    }
    assert_eq!(
        t.stats().await["fetch_range_refused"].as_u64().unwrap() - refused_before,
        6
    );
    // A URL signed for several ranges serves all of them (multipart) or exactly one.
    let keys = hugbucket_hub::auth::Keys::load_or_create(t.dir.path()).unwrap();
    let hex = u.xorb.hash.to_hex();
    let exp = 4_000_000_000u64;
    let signed_url = |ranges: &str, exp: u64| {
        format!(
            "{}/fetch/xorbs/{hex}?X-Xet-Signed-Range={ranges}&Expires={exp}&Signature={}",
            t.url,
            keys.fetch_sig(&hex, ranges, exp)
        )
    };
    let multi = signed_url("0-9,1000-1019", exp);
    let r = fetch(multi.clone(), Some("bytes=0-9,1000-1019".into())).await;
    assert_eq!(r.status(), 206);
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    let boundary = ct
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap()
        .to_string();
    let body = r.bytes().await.unwrap();
    let parts = multipart_parts(&body, &boundary);
    assert_eq!(parts, vec![&xd[0..10], &xd[1000..1020]]);
    let r = fetch(multi.clone(), Some("bytes=1000-1019".into())).await;
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap().as_ref(), &xd[1000..1020]);
    let r = fetch(multi, Some("bytes=1000-1018".into())).await;
    assert_eq!(r.status(), 403);
    // Signed but unsatisfiable: 416.
    let far = signed_url("99999999-99999999", exp);
    let r = fetch(far, Some("bytes=99999999-99999999".into())).await;
    assert_eq!(r.status(), 416);
    // Tampered signature / expiry / hash / signed range: 403.
    let bad_sig = format!("{url}A");
    let bad_exp = url.replace("Expires=", "Expires=1");
    let other = url.replace(&hex, &"4".repeat(64));
    let wider_signed = url.replace(
        &format!("X-Xet-Signed-Range={bs}-{be}"),
        &format!("X-Xet-Signed-Range={bs}-{}", be + 1),
    );
    for bad in [bad_sig, bad_exp, other, wider_signed] {
        let r = fetch(bad.clone(), Some(format!("bytes={bs}-{be}"))).await;
        assert_eq!(r.status(), 403, "{bad}");
    }
    // Expired (validly signed, in the past).
    let expired_before = t.stats().await["fetch_expired"].as_u64().unwrap();
    let r = fetch(signed_url("0-9", 1_000_000), Some("bytes=0-9".into())).await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("expired"));
    assert_eq!(
        t.stats().await["fetch_expired"].as_u64().unwrap(),
        expired_before + 1
    );
}

/// `fetch_url_ttl` makes the hub's fetch URLs expire that soon (the `--fetch-url-ttl` test
/// mode): the URL works at once and is refused as expired after its lifetime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_url_ttl_expires_urls() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = HubConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().to_path_buf());
    cfg.fetch_url_ttl = Some(Duration::from_secs(1));
    let hub = hugbucket_hub::start(cfg).await.unwrap();
    let t = T {
        url: hub.url(),
        token: hub.token().to_string(),
        hub: Some(hub),
        dir,
        c: http_client(),
    };
    t.create("me/ttl").await;
    let u = put_file(&t, "hugbucket/ttl", "x", random_bytes(50_000, 11)).await;
    let (tok, _) = t.xet_token("hugbucket/ttl", false).await;
    let v: Value =
        t.c.get(format!(
            "{}/v2/reconstructions/{}",
            t.url,
            u.file.file_hash.to_hex()
        ))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entry = &v["xorbs"][u.xorb.hash.to_hex()][0];
    let url = entry["url"].as_str().unwrap().to_string();
    let range = &entry["ranges"][0]["bytes"];
    let header = format!("bytes={}-{}", range["start"], range["end"]);
    let get = || t.c.get(&url).header("range", &header).send();
    assert_eq!(get().await.unwrap().status(), 206);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = get().await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("expired"));
    assert_eq!(t.stats().await["fetch_expired"], 1);
}

/// Bucket visibility as on the Hub: created without `visibility` a bucket is public; a
/// private one exists only for tokens of its namespace (anonymous: 401, another user's
/// token: 404, both `RepoNotFound`), on every read route; a public one of another
/// namespace can be read but not written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_buckets_are_invisible_to_other_users() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = HubConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().to_path_buf());
    cfg.users = vec![("alice".into(), "hf_alice".into())];
    let hub = hugbucket_hub::start(cfg).await.unwrap();
    let t = T {
        url: hub.url(),
        token: hub.token().to_string(),
        hub: Some(hub),
        dir,
        c: http_client(),
    };
    t.create("me/open").await;
    let (s, _) = t
        .json(
            t.post("/api/buckets/hugbucket/closed")
                .json(&json!({"visibility": "private"})),
        )
        .await;
    assert_eq!(s, 200);
    put_file(&t, "hugbucket/closed", "f.bin", random_bytes(1000, 1)).await;
    put_file(&t, "hugbucket/open", "f.bin", random_bytes(1000, 2)).await;
    assert_eq!(
        t.json(t.get("/api/buckets/hugbucket/open")).await.1["private"],
        false
    );
    assert_eq!(
        t.json(t.get("/api/buckets/hugbucket/closed")).await.1["private"],
        true
    );
    let owner = Some(t.token.clone());
    let alice = Some("hf_alice".to_string());
    let read = |id: &str, route: &str, token: Option<String>| {
        let url = format!("{}{}", t.url, route.replace("{id}", id));
        let rb = if route.ends_with("paths-info") {
            t.c.post(url).json(&json!({"paths": ["f.bin"]}))
        } else if route.contains("/resolve/") {
            t.c.head(url)
        } else {
            t.c.get(url)
        };
        let rb = match token {
            Some(tok) => rb.bearer_auth(tok),
            None => rb,
        };
        async move { rb.send().await.unwrap() }
    };
    let routes = [
        "/api/buckets/{id}",
        "/api/buckets/{id}/tree",
        "/api/buckets/{id}/paths-info",
        "/api/buckets/{id}/xet-read-token",
        "/buckets/{id}/resolve/f.bin",
    ];
    for route in routes {
        // The owner reads both; anyone reads the public one.
        for id in ["hugbucket/open", "hugbucket/closed"] {
            let r = read(id, route, owner.clone()).await;
            assert!(
                r.status().is_success(),
                "{route} {id} owner: {}",
                r.status()
            );
        }
        for who in [None, alice.clone()] {
            let r = read("hugbucket/open", route, who.clone()).await;
            assert!(r.status().is_success(), "{route} {who:?}: {}", r.status());
        }
        let r = read("hugbucket/closed", route, None).await;
        assert_eq!(r.status(), 401, "{route} anonymous");
        assert_eq!(r.headers()["x-error-code"], "RepoNotFound", "{route}");
        let r = read("hugbucket/closed", route, alice.clone()).await;
        assert_eq!(r.status(), 404, "{route} alice");
        assert_eq!(r.headers()["x-error-code"], "RepoNotFound", "{route}");
    }
    // Another user cannot write a public bucket of ours, nor see private ones in listings.
    let r =
        t.c.post(format!("{}/api/buckets/hugbucket/open/batch", t.url))
            .bearer_auth("hf_alice")
            .body("{\"type\":\"deleteFile\",\"path\":\"f.bin\"}\n")
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 403);
    let listed: Value =
        t.c.get(format!("{}/api/buckets/hugbucket", t.url))
            .bearer_auth("hf_alice")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["hugbucket/open"]);
    // whoami answers the token's user.
    let me: Value =
        t.c.get(format!("{}/api/whoami-v2", t.url))
            .bearer_auth("hf_alice")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(me["name"], "alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xet_token_scopes_and_expiry() {
    let t = start().await;
    t.create("me/s").await;
    let u = make_upload(random_bytes(40_000, 6), 8192);
    let (rtok, _) = t.xet_token("hugbucket/s", false).await;
    // Read token cannot write.
    let r = t.upload_xorb(&rtok, &u.xorb.hash, &u.xorb.data).await;
    assert_eq!(r.status(), 403);
    let (s, _) = t
        .upload_shard(&rtok, shard_of(vec![u.file.clone()], &[&u.xorb]), true)
        .await;
    assert_eq!(s, 403);
    // Hub token is not a CAS token; none at all is 401.
    let r = t.upload_xorb(&t.token, &u.xorb.hash, &u.xorb.data).await;
    assert_eq!(r.status(), 401);
    // Expired write token (validly signed by this hub's key).
    let keys = hugbucket_hub::auth::Keys::load_or_create(t.dir.path()).unwrap();
    let expired = keys.issue_xet_token(hugbucket_hub::auth::Scope::Write, 1, 1_000);
    let r = t.upload_xorb(&expired, &u.xorb.hash, &u.xorb.data).await;
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("expired"));
    assert_eq!(t.xorb_files(), 0);
    // Token for a missing bucket: 404.
    let r = t
        .get("/api/buckets/hugbucket/none/xet-write-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Grants are not offered (client falls back to the direct path).
    let (wtok, _) = t.xet_token("hugbucket/s", true).await;
    let r =
        t.c.post(format!(
            "{}/v1/xorb-grants/default/{}",
            t.url,
            u.xorb.hash.to_hex()
        ))
        .bearer_auth(&wtok)
        .json(&json!({"length": 1, "checksum": {"algo": "crc64nvme", "value": "1"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Telemetry is accepted.
    let r =
        t.c.post(format!("{}/v1/telemetry", t.url))
            .json(&json!({"x": 1}))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_xorbs_are_rejected_and_not_stored() {
    let t = start().await;
    t.create("me/x").await;
    let (tok, _) = t.xet_token("hugbucket/x", true).await;
    let u = make_upload(random_bytes(50_000, 7), 10_000);
    // Corrupt payload byte (random data is stored raw): chunk hash changes -> xorb hash mismatch.
    let mut corrupt = u.xorb.data.clone();
    corrupt[100] ^= 0xFF;
    let r = t.upload_xorb(&tok, &u.xorb.hash, &corrupt).await;
    assert_eq!(r.status(), 400);
    assert!(r.headers().contains_key("x-error-code"));
    // Truncated record.
    let r = t
        .upload_xorb(&tok, &u.xorb.hash, &u.xorb.data[..u.xorb.data.len() - 3])
        .await;
    assert_eq!(r.status(), 400);
    // Garbage header.
    let r = t.upload_xorb(&tok, &u.xorb.hash, &[9u8; 64]).await;
    assert_eq!(r.status(), 400);
    // Valid xorb under another hash.
    let r = t
        .upload_xorb(&tok, &"5".repeat(64).parse().unwrap(), &u.xorb.data)
        .await;
    assert_eq!(r.status(), 400);
    // Empty body.
    let r = t.upload_xorb(&tok, &u.xorb.hash, &[]).await;
    assert_eq!(r.status(), 400);
    assert_eq!(t.xorb_files(), 0);
    // A shard pointing at it is refused: nothing was stored.
    let (s, body) = t
        .upload_shard(&tok, shard_of(vec![u.file.clone()], &[]), true)
        .await;
    assert_eq!(s, 200);
    assert!(
        body.contains(r#""type":"error""#) && body.contains("unknown xorb"),
        "{body}"
    );
    // Oversized upload: 413 from the declared length, before any body byte is sent (raw
    // socket: a client streaming the body could see the early close as a broken pipe).
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = t.hub.as_ref().unwrap().local_addr();
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "POST /v1/xorbs/default/{} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {tok}\r\nContent-Length: {}\r\n\r\n",
            u.xorb.hash.to_hex(),
            70 * 1024 * 1024
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 12];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"HTTP/1.1 413");
    }
    // The good one is accepted, twice (second: was_inserted false).
    let r = t.upload_xorb(&tok, &u.xorb.hash, &u.xorb.data).await;
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"was_inserted": true})
    );
    let r = t.upload_xorb(&tok, &u.xorb.hash, &u.xorb.data).await;
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"was_inserted": false})
    );
    assert_eq!(t.xorb_files(), 1);
    let stats = t.stats().await;
    assert_eq!(stats["xorb_uploads"], 1);
    assert!(stats["uploads_rejected"].as_u64().unwrap() >= 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_shards_are_rejected_and_not_stored() {
    let t = start().await;
    t.create("me/y").await;
    let (tok, _) = t.xet_token("hugbucket/y", true).await;
    let u = make_upload(random_bytes(64_000, 8), 16_000);
    assert_eq!(
        t.upload_xorb(&tok, &u.xorb.hash, &u.xorb.data)
            .await
            .status(),
        200
    );

    let mut wrong_verif = u.file.clone();
    wrong_verif.verification[0] = XetHash::from_bytes([1; 32]);
    let mut wrong_file_hash = u.file.clone();
    wrong_file_hash.file_hash = XetHash::from_bytes([2; 32]);
    let mut out_of_range = u.file.clone();
    out_of_range.terms[0].chunk_end = 9;
    let mut wrong_len = u.file.clone();
    wrong_len.terms[0].unpacked_bytes += 1;
    let mut unknown_xorb = u.file.clone();
    unknown_xorb.terms[0].xorb_hash = XetHash::from_bytes([3; 32]);
    let cases = [
        ("verification", wrong_verif),
        ("file hash", wrong_file_hash),
        ("outside xorb", out_of_range),
        ("claims", wrong_len),
        ("unknown xorb", unknown_xorb),
    ];
    for (what, f) in cases {
        let fh = f.file_hash;
        // v1: 400.
        let (s, body) = t
            .upload_shard(&tok, shard_of(vec![f.clone()], &[]), false)
            .await;
        assert_eq!(s, 400, "{what}: {body}");
        assert!(body.contains(what), "{what}: {body}");
        // v2: error frame.
        let (s, body) = t.upload_shard(&tok, shard_of(vec![f], &[]), true).await;
        assert_eq!(s, 200);
        assert!(
            body.contains(r#""type":"error""#) && body.contains(what),
            "{what}: {body}"
        );
        // Nothing registered: batch cannot reference it.
        let (s, _) = t
            .batch(
                "hugbucket/y",
                &[json!({"type": "addFile", "path": "p", "xetHash": fh.to_hex()})],
            )
            .await;
        assert_eq!(s, 422, "{what}");
    }
    // A bad file next to a good one: the whole shard is refused.
    let mut bad = u.file.clone();
    bad.file_hash = XetHash::from_bytes([4; 32]);
    let (s, _) = t
        .upload_shard(&tok, shard_of(vec![u.file.clone(), bad], &[]), false)
        .await;
    assert_eq!(s, 400);
    let r =
        t.c.get(format!(
            "{}/v1/reconstructions/{}",
            t.url,
            u.file.file_hash.to_hex()
        ))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Xorb section disagreeing with the stored xorb.
    let mut x = xorb_entry(&u.xorb);
    x.chunks[0].hash = XetHash::from_bytes([5; 32]);
    let bytes = Shard {
        files: vec![u.file.clone()],
        xorbs: vec![x],
        footer: None,
    }
    .to_upload_bytes();
    let (s, _) = t.upload_shard(&tok, bytes, false).await;
    assert_eq!(s, 400);
    // Malformed bytes.
    let (s, _) = t.upload_shard(&tok, vec![7u8; 100], false).await;
    assert_eq!(s, 400);
    // The correct shard works.
    let (s, _) = t
        .upload_shard(&tok, shard_of(vec![u.file.clone()], &[&u.xorb]), false)
        .await;
    assert_eq!(s, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_dedup_returns_full_shard() {
    let t = start().await;
    t.create("me/g").await;
    let u = put_file(&t, "hugbucket/g", "a", random_bytes(70_000, 21)).await;
    let (tok, _) = t.xet_token("hugbucket/g", true).await;
    // The first chunk of every registered file is indexed.
    let r =
        t.c.get(format!(
            "{}/v1/chunks/default/{}",
            t.url,
            u.chunk_hashes[0].to_hex()
        ))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let bytes = r.bytes().await.unwrap();
    let shard = Shard::parse(&bytes).unwrap();
    assert!(shard.footer.is_some());
    assert!(shard.files.is_empty());
    assert_eq!(shard.xorbs.len(), 1);
    let x = &shard.xorbs[0];
    assert_eq!(x.xorb_hash, u.xorb.hash);
    let hashes: Vec<XetHash> = x.chunks.iter().map(|c| c.hash).collect();
    assert_eq!(hashes, u.chunk_hashes);
    assert_eq!(x.bytes_in_xorb, 70_000);
    assert_eq!(x.chunks[1].unpacked_start, 16_384);
    // Unknown chunk (not indexed): 404.
    let r =
        t.c.get(format!(
            "{}/v1/chunks/default/{}",
            t.url,
            u.chunk_hashes[1].to_hex()
        ))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_serves_everything_acknowledged() {
    let t = start().await;
    t.create("me/keep").await;
    let data = random_bytes(200_000, 31);
    let u = put_file(&t, "hugbucket/keep", "k/file.bin", data.clone()).await;
    t.batch(
        "hugbucket/keep",
        &[json!({"type": "addFile", "path": "empty", "xetHash": XetHash::ZERO.to_hex()})],
    )
    .await;
    let token = t.token.clone();
    let t = t.restart().await;
    assert_eq!(t.token, token, "generated token persists");
    let (_, v) = t.json(t.get("/api/buckets/hugbucket/keep")).await;
    assert_eq!(v["totalFiles"], 2);
    let got = t
        .get("/buckets/hugbucket/keep/resolve/k%2Ffile.bin")
        .send()
        .await
        .unwrap();
    assert_eq!(got.bytes().await.unwrap().as_ref(), &data[..]);
    // Tokens signed before the restart still verify (same secret).
    let (tok, _) = t.xet_token("hugbucket/keep", false).await;
    assert_eq!(
        download_via_cas(&t, &tok, &u.file.file_hash, (0, 199_999)).await,
        data
    );
    let (wtok, _) = t.xet_token("hugbucket/keep", true).await;
    let r = t.upload_xorb(&wtok, &u.xorb.hash, &u.xorb.data).await;
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"was_inserted": false})
    );
    // Data is still in footer form on disk.
    let on_disk = std::fs::read(
        t.dir
            .path()
            .join("xorbs")
            .join(format!("{}.xorb", u.xorb.hash.to_hex())),
    )
    .unwrap();
    assert_eq!(on_disk, u.xorb.with_footer());
    t.hub.unwrap().shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_injection_hook() {
    let t = start().await;
    t.hub
        .as_ref()
        .unwrap()
        .faults()
        .push("whoami:503:1".parse().unwrap());
    let r = t.get("/api/whoami-v2").send().await.unwrap();
    assert_eq!(r.status(), 503);
    let r = t.get("/api/whoami-v2").send().await.unwrap();
    assert_eq!(r.status(), 200);
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(t.stats().await["requests"]["whoami"], 2);
}

/// Reads one HTTP/1.1 response (headers + Content-Length body) from a raw stream.
async fn read_response(s: &mut tokio::net::TcpStream) -> (u16, Vec<u8>) {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).await.unwrap();
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap();
    let status: u16 = head[9..12].parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.unwrap();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_stays_usable_after_an_early_rejection() {
    use tokio::io::AsyncWriteExt;
    let t = start().await;
    t.create("me/c").await;
    let (rtok, _) = t.xet_token("hugbucket/c", false).await;
    let addr = t.hub.as_ref().unwrap().local_addr();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    // Rejected before the handler reads the body (read token on an upload, unknown route,
    // missing Hub token): the unread body is drained, the connection is kept.
    let body = vec![7u8; 300_000];
    for (path, auth, want) in [
        (
            format!("/v1/xorbs/default/{}", "1".repeat(64)),
            rtok.as_str(),
            403u16,
        ),
        ("/v2/shards".to_string(), rtok.as_str(), 403),
        ("/no/such/route".to_string(), rtok.as_str(), 404),
        (
            "/api/buckets/hugbucket/c/batch".to_string(),
            "hf_wrong",
            401,
        ),
    ] {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {auth}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(&body).await.unwrap();
        let (status, _) = read_response(&mut s).await;
        assert_eq!(status, want, "{path}");
    }
    let head = format!(
        "GET /api/whoami-v2 HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\r\n",
        t.token
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let (status, body) = read_response(&mut s).await;
    assert_eq!(status, 200);
    assert!(String::from_utf8(body).unwrap().contains("hugbucket"));
}
