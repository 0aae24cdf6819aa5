//! The Xet CAS API (spec §6): xorb and shard uploads with full verification, global dedup
//! queries, reconstructions and signed xorb fetch URLs; plus file reassembly for resolve GETs.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use hugbucket_engine::XetHash;
use hugbucket_engine::buffers::BufferPool;
use hugbucket_engine::constants::{MAX_XORB_BYTES, MAX_XORB_CHUNKS};
use hugbucket_engine::hash::{file_hash, verification_hash};
use hugbucket_engine::shard::{Shard, XorbChunkEntry, XorbEntry};
use hugbucket_engine::xorb::{XorbChunk, decode_chunk_records, verify_xorb, write_footer_v1};
use serde_json::{Map, Value, json};

use crate::Hub;
use crate::auth::{Scope, XetClaims, bearer};
use crate::body::{ChannelBody, ReqBody, RespBody, STREAM_PIECE, full, json_response};
use crate::ctx::base_url;
use crate::error::HubError;
use crate::request::{ByteRange, parse_range, read_body, read_body_aligned};
use crate::stats::Stats;
use crate::store::{ChunkMeta, Reconstruction, Term, XorbMeta};
use crate::util::{Query, now_ms, now_secs};
use crate::xorbfiles::{XorbFiles, read_exact_at};

/// Largest accepted xorb upload (64 MiB of chunk data + headers and an optional footer).
pub const MAX_XORB_UPLOAD: u64 = MAX_XORB_BYTES as u64 + 2 * 1024 * 1024;
/// Largest accepted shard upload.
pub const MAX_SHARD_UPLOAD: u64 = 128 * 1024 * 1024;
/// Compressed bytes decoded at once when reassembling a file.
const DECODE_GROUP: u32 = 1024 * 1024;
/// Lifetime of a global-dedup shard's key (`shard_key_expiry`), seconds.
const DEDUP_SHARD_TTL: u64 = 7 * 24 * 3600;

fn require_xet(hub: &Hub, headers: &HeaderMap, scope: Scope) -> Result<XetClaims, HubError> {
    let tok = bearer(headers)
        .ok_or_else(|| HubError::Unauthorized("a xet access token is required".into()))?;
    let claims = hub.keys.verify_xet_token(tok, now_secs())?;
    if scope == Scope::Write && claims.scope != Scope::Write {
        return Err(HubError::Forbidden(
            "this xet token is read-only; uploads need a write token".into(),
        ));
    }
    Ok(claims)
}

fn parse_hash(s: &str) -> Result<XetHash, HubError> {
    XetHash::from_hex(s).map_err(|e| HubError::BadRequest(e.to_string()))
}

fn check_prefix(prefix: &str) -> Result<(), HubError> {
    if prefix == "default" || prefix == "default-merkledb" {
        Ok(())
    } else {
        Err(HubError::NotFound(format!("unknown key prefix {prefix:?}")))
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, HubError> + Send + 'static,
) -> Result<T, HubError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| HubError::Storage(format!("worker failed: {e}")))?
}

/// Upload grants are not offered: a 404 sends hf_xet to the direct upload path.
pub(crate) fn xorb_grant(
    hub: &Hub,
    req: &Request<ReqBody>,
) -> Result<Response<RespBody>, HubError> {
    require_xet(hub, req.headers(), Scope::Write)?;
    Err(HubError::NotFound(
        "xorb upload grants are not offered; use POST /v1/xorbs".into(),
    ))
}

pub(crate) async fn xorb_upload(
    hub: &Arc<Hub>,
    prefix: &str,
    hash: &str,
    req: Request<ReqBody>,
) -> Result<Response<RespBody>, HubError> {
    require_xet(hub, req.headers(), Scope::Write)?;
    check_prefix(prefix)?;
    let hash = parse_hash(hash)?;
    let (parts, body) = req.into_parts();
    let buf = hub.xorbs.take_buffer();
    let body =
        read_body_aligned(&parts.headers, body, MAX_XORB_UPLOAD, buf, XorbFiles::ALIGN).await?;
    if hub.meta.has_xorb(&hash)? {
        hub.xorbs.give_back(body.0);
        Stats::add(&hub.stats.xorb_uploads_existing, 1);
        return Ok(json_response(
            StatusCode::OK,
            &json!({"was_inserted": false}),
        ));
    }
    let h = hub.clone();
    let res = blocking(move || store_xorb(&h, hash, body)).await;
    if matches!(res, Err(HubError::Invalid(_) | HubError::BadRequest(_))) {
        Stats::add(&hub.stats.uploads_rejected, 1);
    }
    let stored = res?;
    Stats::add(&hub.stats.xorb_uploads, 1);
    Stats::add(&hub.stats.xorb_upload_bytes, stored);
    Ok(json_response(
        StatusCode::OK,
        &json!({"was_inserted": true}),
    ))
}

/// Verifies and durably stores one xorb (`body.0[body.1..]`); returns its serialized size.
/// The receive buffer goes back to the pool whatever the outcome.
fn store_xorb(hub: &Hub, hash: XetHash, body: (Vec<u8>, usize)) -> Result<u64, HubError> {
    let (buf, start) = body;
    let res = verify_and_store(hub, hash, &buf[start..]);
    hub.xorbs.give_back(buf);
    res
}

/// [`store_xorb`] on the body's bytes: the bulk is written to a temp file while it is
/// verified (two threads); the file is named, and the xorb recorded, only if it verifies.
fn verify_and_store(hub: &Hub, hash: XetHash, body: &[u8]) -> Result<u64, HubError> {
    let (writer, parsed) = std::thread::scope(|s| {
        let writer = s.spawn(|| hub.xorbs.begin(&hash, body));
        let parsed = verify_xorb(body, &hash);
        (writer.join(), parsed)
    });
    let writer = writer.map_err(|_| std::io::Error::other("the xorb writer thread panicked"))?;
    let parsed = parsed?;
    if parsed.chunks.is_empty() {
        return Err(HubError::BadRequest("empty xorb".into()));
    }
    if parsed.chunks.len() > MAX_XORB_CHUNKS {
        return Err(HubError::BadRequest(format!(
            "xorb has {} chunks (max {MAX_XORB_CHUNKS})",
            parsed.chunks.len()
        )));
    }
    let data_len = parsed.data_len;
    let chunks: Vec<XorbChunk> = parsed.chunks;
    let meta = XorbMeta {
        chunks: chunks
            .iter()
            .map(|c| ChunkMeta {
                hash: c.hash,
                byte_start: c.byte_start,
                byte_end: c.byte_end,
                len: c.uncompressed_len,
            })
            .collect(),
    };
    let footer = write_footer_v1(&hash, &chunks);
    // Data first (fsynced + renamed), then the metadata that makes it count.
    hub.xorbs
        .finish(writer, &hash, &body[..data_len], &footer)?;
    hub.meta.put_xorb(&hash, &meta)?;
    for (i, c) in meta.chunks.iter().enumerate() {
        if c.hash.is_global_dedup_eligible() {
            hub.meta.put_chunk(&c.hash, &hash, i as u32)?;
        }
    }
    hub.meta.flush()?;
    Ok(data_len as u64)
}

pub(crate) async fn shard_upload(
    hub: &Arc<Hub>,
    req: Request<ReqBody>,
    v2: bool,
) -> Result<Response<RespBody>, HubError> {
    require_xet(hub, req.headers(), Scope::Write)?;
    let (parts, body) = req.into_parts();
    let body = read_body(&parts.headers, body, MAX_SHARD_UPLOAD).await?;
    let h = hub.clone();
    let res = blocking(move || register_shard(&h, &body)).await;
    match res {
        Ok((new, total)) => {
            Stats::add(&hub.stats.shard_uploads, 1);
            Stats::add(&hub.stats.shard_files_registered, new);
            if v2 {
                let frames = format!(
                    "{}\n{}\n{}\n",
                    json!({"type": "validating", "verified": total, "total": total}),
                    json!({"type": "committing", "stage": "syncing"}),
                    json!({"type": "result"}),
                );
                Ok(ndjson(frames))
            } else {
                Ok(json_response(
                    StatusCode::OK,
                    &json!({"result": if new > 0 { 1 } else { 0 }}),
                ))
            }
        }
        Err(e @ (HubError::Invalid(_) | HubError::BadRequest(_))) => {
            Stats::add(&hub.stats.uploads_rejected, 1);
            tracing::info!(error = %e, "shard rejected");
            if v2 {
                // v2 reports failures in the stream (HTTP status already 200).
                Ok(ndjson(format!(
                    "{}\n",
                    json!({"type": "error", "message": e.to_string(), "retryable": false})
                )))
            } else {
                Err(e)
            }
        }
        Err(e) => Err(e),
    }
}

fn ndjson(s: String) -> Response<RespBody> {
    let mut resp = Response::new(full(s));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    resp
}

/// Verifies every file entry of a shard against stored xorbs, then registers the new files.
/// Returns (files newly registered, files in the shard). Nothing is written on failure.
fn register_shard(hub: &Hub, bytes: &[u8]) -> Result<(u64, u64), HubError> {
    let shard = Shard::parse(bytes)?;
    let mut metas: HashMap<XetHash, Arc<XorbMeta>> = HashMap::new();
    let mut load = |h: &XetHash| -> Result<Arc<XorbMeta>, HubError> {
        if let Some(m) = metas.get(h) {
            return Ok(m.clone());
        }
        let m = Arc::new(hub.meta.xorb(h)?.ok_or_else(|| {
            HubError::BadRequest(format!(
                "shard references unknown xorb {h} (upload the xorb first)"
            ))
        })?);
        metas.insert(*h, m.clone());
        Ok(m)
    };
    // The xorb section lists the session's new xorbs: all must be stored, and agree.
    for x in &shard.xorbs {
        let m = load(&x.xorb_hash)?;
        let same = x.chunks.len() == m.chunks.len()
            && x.chunks
                .iter()
                .zip(&m.chunks)
                .all(|(a, b)| a.hash == b.hash && a.unpacked_len == b.len);
        if !same {
            return Err(HubError::BadRequest(format!(
                "shard's xorb entry {} does not match the stored xorb",
                x.xorb_hash
            )));
        }
    }
    let mut recons = Vec::with_capacity(shard.files.len());
    for f in &shard.files {
        if f.terms.is_empty() {
            if f.file_hash != XetHash::ZERO {
                return Err(HubError::BadRequest(format!(
                    "file {} has no terms but is not the empty file",
                    f.file_hash
                )));
            }
            continue;
        }
        if f.verification.len() != f.terms.len() {
            return Err(HubError::BadRequest(format!(
                "file {}: {} verification entries for {} terms",
                f.file_hash,
                f.verification.len(),
                f.terms.len()
            )));
        }
        let mut chunks: Vec<(XetHash, u64)> = Vec::new();
        let mut terms = Vec::with_capacity(f.terms.len());
        let mut size = 0u64;
        for (t, v) in f.terms.iter().zip(&f.verification) {
            let m = load(&t.xorb_hash)?;
            let (s, e) = (t.chunk_start as usize, t.chunk_end as usize);
            if s >= e || e > m.chunks.len() {
                return Err(HubError::BadRequest(format!(
                    "file {}: chunk range [{s}, {e}) outside xorb {} ({} chunks)",
                    f.file_hash,
                    t.xorb_hash,
                    m.chunks.len()
                )));
            }
            let range = &m.chunks[s..e];
            let unpacked: u64 = range.iter().map(|c| u64::from(c.len)).sum();
            if unpacked != u64::from(t.unpacked_bytes) {
                return Err(HubError::BadRequest(format!(
                    "file {}: term of xorb {} claims {} bytes, chunks hold {unpacked}",
                    f.file_hash, t.xorb_hash, t.unpacked_bytes
                )));
            }
            let hashes: Vec<XetHash> = range.iter().map(|c| c.hash).collect();
            let computed = verification_hash(&hashes);
            if computed != *v {
                return Err(hugbucket_engine::EngineError::HashMismatch {
                    what: "verification hash",
                    expected: v.to_hex(),
                    computed: computed.to_hex(),
                }
                .into());
            }
            chunks.extend(range.iter().map(|c| (c.hash, u64::from(c.len))));
            size += unpacked;
            terms.push(Term {
                xorb: t.xorb_hash,
                chunk_start: t.chunk_start,
                chunk_end: t.chunk_end,
                unpacked: t.unpacked_bytes,
            });
        }
        let computed = file_hash(&chunks);
        if computed != f.file_hash {
            return Err(hugbucket_engine::EngineError::HashMismatch {
                what: "file hash",
                expected: f.file_hash.to_hex(),
                computed: computed.to_hex(),
            }
            .into());
        }
        let first = (terms[0].xorb, terms[0].chunk_start, chunks[0].0);
        recons.push((f.file_hash, Reconstruction { size, terms }, first));
    }
    // All verified: register (reconstructions before anything may point at them).
    let mut new = 0u64;
    for (h, r, (xorb, idx, chunk)) in &recons {
        if hub.meta.recon(h)?.is_none() {
            hub.meta.put_recon(h, r)?;
            new += 1;
        }
        if hub.meta.chunk(chunk)?.is_none() {
            hub.meta.put_chunk(chunk, xorb, *idx)?;
        }
    }
    hub.meta.flush()?;
    Ok((new, shard.files.len() as u64))
}

pub(crate) async fn dedup_query(
    hub: &Arc<Hub>,
    prefix: &str,
    hash: &str,
    req: &Request<ReqBody>,
) -> Result<Response<RespBody>, HubError> {
    require_xet(hub, req.headers(), Scope::Read)?;
    check_prefix(prefix)?;
    let chunk = parse_hash(hash)?;
    let Some((xorb, _idx)) = hub.meta.chunk(&chunk)? else {
        Stats::add(&hub.stats.dedup_misses, 1);
        return Err(HubError::NotFound(format!("chunk {chunk} is not known")));
    };
    let m = hub
        .meta
        .xorb(&xorb)?
        .ok_or_else(|| HubError::Storage(format!("indexed xorb {xorb} missing")))?;
    let bytes = dedup_shard(&xorb, &m, now_secs());
    Stats::add(&hub.stats.dedup_hits, 1);
    let mut resp = Response::new(full(bytes));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    Ok(resp)
}

/// A complete shard (lookup tables + footer, chunk hashes in clear) describing one xorb.
pub(crate) fn dedup_shard(xorb: &XetHash, m: &XorbMeta, now: u64) -> Vec<u8> {
    let mut start = 0u32;
    let chunks = m
        .chunks
        .iter()
        .map(|c| {
            let e = XorbChunkEntry {
                hash: c.hash,
                unpacked_start: start,
                unpacked_len: c.len,
                flags: if c.hash.is_global_dedup_eligible() {
                    0x8000_0000
                } else {
                    0
                },
            };
            start = start.saturating_add(c.len);
            e
        })
        .collect();
    let shard = Shard {
        files: Vec::new(),
        xorbs: vec![XorbEntry {
            xorb_hash: *xorb,
            chunks,
            bytes_in_xorb: start,
            bytes_on_disk: u32::try_from(m.data_len()).unwrap_or(u32::MAX),
        }],
        footer: None,
    };
    shard.to_full_bytes(None, now, now + DEDUP_SHARD_TTL)
}

/// One term of a planned (possibly trimmed) reconstruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PlannedTerm {
    pub xorb: XetHash,
    pub chunk_start: u32,
    pub chunk_end: u32,
    pub unpacked: u64,
}

/// Terms covering an inclusive byte range of a file, trimmed to whole chunks.
pub(crate) struct Plan {
    /// Bytes to drop from the start of the first term.
    pub offset: u64,
    pub terms: Vec<PlannedTerm>,
    pub metas: HashMap<XetHash, Arc<XorbMeta>>,
}

/// Plans the reconstruction of bytes `start..=end` (both within the file).
pub(crate) fn plan(
    hub: &Hub,
    recon: &Reconstruction,
    start: u64,
    end: u64,
) -> Result<Plan, HubError> {
    let mut metas: HashMap<XetHash, Arc<XorbMeta>> = HashMap::new();
    let mut terms = Vec::new();
    let mut offset = 0u64;
    let mut pos = 0u64;
    for t in &recon.terms {
        let tend = pos + u64::from(t.unpacked);
        if tend <= start {
            pos = tend;
            continue;
        }
        if pos > end {
            break;
        }
        let m = match metas.get(&t.xorb) {
            Some(m) => m.clone(),
            None => {
                let m = Arc::new(
                    hub.meta
                        .xorb(&t.xorb)?
                        .ok_or_else(|| HubError::Storage(format!("xorb {} missing", t.xorb)))?,
                );
                metas.insert(t.xorb, m.clone());
                m
            }
        };
        if t.chunk_start >= t.chunk_end || t.chunk_end as usize > m.chunks.len() {
            return Err(HubError::Storage(format!(
                "corrupt term for xorb {}",
                t.xorb
            )));
        }
        // Trim to the chunks overlapping [start, end].
        let (mut cs, mut ce) = (None, t.chunk_start);
        let mut first_pos = 0u64;
        let mut unpacked = 0u64;
        let mut cpos = pos;
        for i in t.chunk_start..t.chunk_end {
            let len = u64::from(m.chunks[i as usize].len);
            if cpos + len > start && cpos <= end {
                if cs.is_none() {
                    cs = Some(i);
                    first_pos = cpos;
                }
                ce = i + 1;
                unpacked += len;
            }
            cpos += len;
            if cpos > end {
                break;
            }
        }
        if let Some(cs) = cs {
            if terms.is_empty() {
                offset = start.saturating_sub(first_pos);
            }
            terms.push(PlannedTerm {
                xorb: t.xorb,
                chunk_start: cs,
                chunk_end: ce,
                unpacked,
            });
        }
        pos = tend;
    }
    Ok(Plan {
        offset,
        terms,
        metas,
    })
}

/// Merged chunk ranges needed per xorb, with their serialized byte ranges (inclusive end).
fn fetch_ranges(plan: &Plan) -> BTreeMap<XetHash, Vec<(u32, u32, u64, u64)>> {
    let mut by_xorb: BTreeMap<XetHash, Vec<(u32, u32)>> = BTreeMap::new();
    for t in &plan.terms {
        by_xorb
            .entry(t.xorb)
            .or_default()
            .push((t.chunk_start, t.chunk_end));
    }
    by_xorb
        .into_iter()
        .map(|(x, mut rs)| {
            rs.sort_unstable();
            let mut merged: Vec<(u32, u32)> = Vec::new();
            for (s, e) in rs {
                match merged.last_mut() {
                    Some(last) if s <= last.1 => last.1 = last.1.max(e),
                    _ => merged.push((s, e)),
                }
            }
            let m = &plan.metas[&x];
            let out = merged
                .into_iter()
                .map(|(s, e)| {
                    let bs = u64::from(m.chunks[s as usize].byte_start);
                    let be = u64::from(m.chunks[e as usize - 1].byte_end) - 1;
                    (s, e, bs, be)
                })
                .collect();
            (x, out)
        })
        .collect()
}

/// A fetch URL for byte ranges `ranges` (inclusive) of a xorb, signed for exactly those
/// ranges (`X-Xet-Signed-Range`) and valid until `exp` (unix seconds).
fn fetch_url(hub: &Hub, base: &str, xorb: &XetHash, ranges: &[(u64, u64)], exp: u64) -> String {
    let hex = xorb.to_hex();
    let signed = ranges
        .iter()
        .map(|(s, e)| format!("{s}-{e}"))
        .collect::<Vec<_>>()
        .join(",");
    let sig = hub.keys.fetch_sig(&hex, &signed, exp);
    format!("{base}/fetch/xorbs/{hex}?X-Xet-Signed-Range={signed}&Expires={exp}&Signature={sig}")
}

/// Expiry (unix seconds, rounded up) of fetch URLs issued now.
fn fetch_url_expiry(hub: &Hub) -> u64 {
    (now_ms() + hub.fetch_url_ttl_ms).div_ceil(1000)
}

/// Checks that the `Range` header asks for exactly what the URL was signed for: all of the
/// signed ranges, or exactly one of them (hf_xet splits multi-range entries into
/// single-range requests unless multi-range fetching is enabled). 403 otherwise: a
/// narrower, wider or missing range is refused, as the real CAS does.
fn check_signed_range(headers: &http::HeaderMap, signed: &str) -> Result<(), HubError> {
    let refuse =
        |why: &str| HubError::Forbidden(format!("{why}; this URL is signed for bytes={signed}"));
    let asked = headers
        .get(http::header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("bytes="))
        .ok_or_else(|| refuse("a Range header is required"))?;
    let asked: Vec<&str> = asked.split(',').map(str::trim).collect();
    let signed_list: Vec<&str> = signed.split(',').collect();
    let one_of = asked.len() == 1 && signed_list.contains(&asked[0]);
    if asked == signed_list || one_of {
        Ok(())
    } else {
        Err(refuse("Range does not match the signed range"))
    }
}

pub(crate) async fn reconstruction(
    hub: &Arc<Hub>,
    hash: &str,
    req: &Request<ReqBody>,
    v2: bool,
) -> Result<Response<RespBody>, HubError> {
    require_xet(hub, req.headers(), Scope::Read)?;
    let file = parse_hash(hash)?;
    let recon = if file == XetHash::ZERO {
        Reconstruction::default()
    } else {
        hub.meta
            .recon(&file)?
            .ok_or_else(|| HubError::NotFound(format!("file {file} is not known")))?
    };
    let size = recon.size;
    let range = match parse_range(req.headers(), size)?.as_deref() {
        None => None,
        Some([r]) => Some(*r),
        Some(_) => {
            return Err(HubError::BadRequest(
                "reconstructions take a single range".into(),
            ));
        }
    };
    let plan = match range {
        Some(ByteRange { start, end }) => plan(hub, &recon, start, end)?,
        None if size == 0 => Plan {
            offset: 0,
            terms: Vec::new(),
            metas: HashMap::new(),
        },
        None => plan(hub, &recon, 0, size - 1)?,
    };
    let base = base_url(hub, req.headers());
    let exp = fetch_url_expiry(hub);
    let terms: Vec<Value> = plan
        .terms
        .iter()
        .map(|t| {
            json!({
                "hash": t.xorb.to_hex(),
                "unpacked_length": t.unpacked,
                "range": {"start": t.chunk_start, "end": t.chunk_end},
            })
        })
        .collect();
    let mut fetch = Map::new();
    for (x, ranges) in fetch_ranges(&plan) {
        let v = if v2 {
            // One URL for all ranges of the xorb, signed for that exact set.
            let bytes: Vec<(u64, u64)> = ranges.iter().map(|r| (r.2, r.3)).collect();
            json!([{
                "url": fetch_url(hub, &base, &x, &bytes, exp),
                "ranges": ranges.iter().map(|(s, e, bs, be)| json!({
                    "chunks": {"start": s, "end": e},
                    "bytes": {"start": bs, "end": be},
                })).collect::<Vec<_>>(),
            }])
        } else {
            Value::Array(
                ranges
                    .iter()
                    .map(|(s, e, bs, be)| {
                        json!({
                            "range": {"start": s, "end": e},
                            "url": fetch_url(hub, &base, &x, &[(*bs, *be)], exp),
                            "url_range": {"start": bs, "end": be},
                        })
                    })
                    .collect(),
            )
        };
        fetch.insert(x.to_hex(), v);
    }
    let key = if v2 { "xorbs" } else { "fetch_info" };
    let body = json!({
        "offset_into_first_range": plan.offset,
        "terms": terms,
        key: Value::Object(fetch),
    });
    Stats::add(&hub.stats.reconstructions, 1);
    Ok(json_response(StatusCode::OK, &body))
}

/// One piece of a streamed response.
enum Part {
    Lit(Bytes),
    File { offset: u64, len: u64 },
}

/// Streams literal parts and file ranges from a blocking reader.
/// Read pieces are lent from `pool` and come back when the response has sent them, so a
/// fetch reuses warm memory instead of faulting in fresh pages for every piece.
fn stream_parts(file: File, pool: Arc<BufferPool>, parts: Vec<Part>) -> ChannelBody {
    let total = parts
        .iter()
        .map(|p| match p {
            Part::Lit(b) => b.len() as u64,
            Part::File { len, .. } => *len,
        })
        .sum();
    let (tx, body) = ChannelBody::new(total);
    tokio::task::spawn_blocking(move || {
        for p in parts {
            match p {
                Part::Lit(b) => {
                    if tx.blocking_send(Ok(b)).is_err() {
                        return;
                    }
                }
                Part::File { mut offset, len } => {
                    let end = offset + len;
                    while offset < end {
                        let n = (end - offset).min(STREAM_PIECE as u64) as usize;
                        let mut buf = pool.take();
                        buf.resize(n, 0);
                        let r = read_exact_at(&file, &mut buf, offset)
                            .map(|()| Bytes::from_owner(BufferPool::lend(&pool, buf)));
                        let failed = r.is_err();
                        if tx.blocking_send(r).is_err() || failed {
                            return;
                        }
                        offset += n as u64;
                    }
                }
            }
        }
    });
    body
}

pub(crate) async fn fetch(
    hub: &Arc<Hub>,
    hash: &str,
    req: &Request<ReqBody>,
) -> Result<Response<RespBody>, HubError> {
    let q = Query::parse(req.uri().query())?;
    let exp: u64 = q
        .get("Expires")
        .and_then(|e| e.parse().ok())
        .ok_or_else(|| HubError::Forbidden("fetch URL without expiry".into()))?;
    let sig = q
        .get("Signature")
        .ok_or_else(|| HubError::Forbidden("fetch URL without signature".into()))?;
    let signed = q
        .get("X-Xet-Signed-Range")
        .ok_or_else(|| HubError::Forbidden("fetch URL without signed range".into()))?;
    if let Err(e) = hub.keys.verify_fetch(hash, signed, exp, sig, now_secs()) {
        if matches!(&e, HubError::Forbidden(m) if m.contains("expired")) {
            Stats::add(&hub.stats.fetch_expired, 1);
        }
        return Err(e);
    }
    if let Err(e) = check_signed_range(req.headers(), signed) {
        Stats::add(&hub.stats.fetch_range_refused, 1);
        return Err(e);
    }
    let xorb = parse_hash(hash)?;
    let h = hub.clone();
    let file = blocking(move || {
        h.xorbs.open_xorb(&xorb).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                HubError::NotFound(format!("xorb {xorb}"))
            } else {
                e.into()
            }
        })
    })
    .await?;
    let size = file.metadata()?.len();
    let ranges = parse_range(req.headers(), size)?;
    let head = req.method() == http::Method::HEAD;
    let mut resp;
    match ranges.as_deref() {
        None => {
            if head {
                resp = Response::new(crate::body::empty());
                resp.headers_mut()
                    .insert(http::header::CONTENT_LENGTH, HeaderValue::from(size));
            } else {
                resp = Response::new(RespBody::new(stream_parts(
                    file,
                    hub.read_pieces.clone(),
                    vec![Part::File {
                        offset: 0,
                        len: size,
                    }],
                )));
                Stats::add(&hub.stats.xorb_range_fetches, 1);
                Stats::add(&hub.stats.xorb_range_bytes, size);
            }
        }
        Some([r]) => {
            resp = Response::new(if head {
                crate::body::empty()
            } else {
                RespBody::new(stream_parts(
                    file,
                    hub.read_pieces.clone(),
                    vec![Part::File {
                        offset: r.start,
                        len: r.len(),
                    }],
                ))
            });
            *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {}-{}/{size}", r.start, r.end)) {
                resp.headers_mut().insert(http::header::CONTENT_RANGE, v);
            }
            if !head {
                Stats::add(&hub.stats.xorb_range_fetches, 1);
                Stats::add(&hub.stats.xorb_range_bytes, r.len());
            }
        }
        Some(rs) => {
            let boundary = format!("hugbucket{:016x}", rand::random::<u64>());
            let mut parts = Vec::with_capacity(rs.len() * 2 + 1);
            let mut payload = 0u64;
            for r in rs {
                parts.push(Part::Lit(Bytes::from(format!(
                    "\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes {}-{}/{size}\r\n\r\n",
                    r.start, r.end
                ))));
                parts.push(Part::File {
                    offset: r.start,
                    len: r.len(),
                });
                payload += r.len();
            }
            parts.push(Part::Lit(Bytes::from(format!("\r\n--{boundary}--\r\n"))));
            resp = Response::new(RespBody::new(stream_parts(
                file,
                hub.read_pieces.clone(),
                parts,
            )));
            *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
            if let Ok(v) =
                HeaderValue::from_str(&format!("multipart/byteranges; boundary={boundary}"))
            {
                resp.headers_mut().insert(http::header::CONTENT_TYPE, v);
            }
            Stats::add(&hub.stats.multirange_fetches, 1);
            Stats::add(&hub.stats.xorb_range_fetches, rs.len() as u64);
            Stats::add(&hub.stats.xorb_range_bytes, payload);
        }
    }
    resp.headers_mut().insert(
        http::header::ACCEPT_RANGES,
        HeaderValue::from_static("bytes"),
    );
    if !resp.headers().contains_key(http::header::CONTENT_TYPE) {
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
    }
    Ok(resp)
}

/// Streams the decoded bytes of a plan: `len` bytes after skipping `plan.offset`.
pub(crate) fn stream_decoded(hub: Arc<Hub>, plan: Plan, len: u64) -> RespBody {
    let (tx, body) = ChannelBody::new(len);
    tokio::task::spawn_blocking(move || {
        let res = (|| -> std::io::Result<()> {
            let mut skip = plan.offset;
            let mut left = len;
            let mut buf = Vec::new();
            let mut out = Vec::new();
            for t in &plan.terms {
                if left == 0 {
                    break;
                }
                let m = &plan.metas[&t.xorb];
                let file = hub.xorbs.open_xorb(&t.xorb)?;
                let mut i = t.chunk_start as usize;
                let end = t.chunk_end as usize;
                while i < end && left > 0 {
                    let gs = m.chunks[i].byte_start;
                    let mut j = i + 1;
                    while j < end && m.chunks[j].byte_end - gs <= DECODE_GROUP {
                        j += 1;
                    }
                    let ge = m.chunks[j - 1].byte_end;
                    buf.resize((ge - gs) as usize, 0);
                    read_exact_at(&file, &mut buf, u64::from(gs))?;
                    out.clear();
                    decode_chunk_records(&buf, &mut out)
                        .map_err(|e| std::io::Error::other(format!("xorb {}: {e}", t.xorb)))?;
                    let mut data = &out[..];
                    if skip > 0 {
                        let s = (skip as usize).min(data.len());
                        data = &data[s..];
                        skip -= s as u64;
                    }
                    let take = (data.len() as u64).min(left) as usize;
                    if take > 0 {
                        if tx
                            .blocking_send(Ok(Bytes::copy_from_slice(&data[..take])))
                            .is_err()
                        {
                            return Ok(());
                        }
                        left -= take as u64;
                    }
                    i = j;
                }
            }
            if left > 0 {
                return Err(std::io::Error::other(
                    "reconstruction shorter than the file",
                ));
            }
            Ok(())
        })();
        if let Err(e) = res {
            tracing::warn!(error = %e, "streaming file failed");
            let _ = tx.blocking_send(Err(e));
        }
    });
    RespBody::new(body)
}

pub(crate) async fn telemetry(req: Request<ReqBody>) -> Result<Response<RespBody>, HubError> {
    let (parts, body) = req.into_parts();
    let _ = read_body(&parts.headers, body, 4 * 1024 * 1024).await?;
    Ok(json_response(StatusCode::OK, &json!({})))
}
