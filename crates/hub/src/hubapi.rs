//! The Hub bucket API (spec §7, emulation notes §3).

use std::sync::Arc;

use http::{HeaderValue, Request, Response, StatusCode};
use hugbucket_engine::XetHash;
use serde_json::{Value, json};

use crate::Hub;
use crate::auth::Scope;
use crate::body::{ReqBody, RespBody, empty, json_response};
use crate::cas;
use crate::ctx::Ctx;
use crate::error::HubError;
use crate::request::{parse_range, read_body};
use crate::stats::Stats;
use crate::store::{BucketRecord, FileRecord};
use crate::util::{Query, decode, encode_path, encode_query, iso8601, now_ms, now_secs};

const SMALL_BODY: u64 = 1024 * 1024;
const BATCH_BODY: u64 = 64 * 1024 * 1024;
const DEFAULT_PAGE: usize = 1000;
const MAX_PAGE: usize = 10_000;

pub(crate) fn whoami(hub: &Hub, ctx: &Ctx) -> Result<Response<RespBody>, HubError> {
    let name = ctx
        .caller
        .as_ref()
        .map_or(hub.namespace.as_str(), |c| c.name(hub));
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "type": "user",
            "id": name,
            "name": name,
            "fullname": name,
            "email": null,
            "emailVerified": false,
            "canPay": false,
            "isPro": false,
            "orgs": [],
            "auth": {"type": "access_token", "accessToken": {"displayName": "hugbucket", "role": "write"}},
        }),
    ))
}

/// Validates a namespace or bucket name.
fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 96
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && !s.starts_with('.')
        && !s.contains("..")
}

/// `ns/name` from raw path segments (`me` = our namespace).
fn bucket_id(hub: &Hub, ns: &str, name: &str) -> Result<String, HubError> {
    let ns = decode(ns)?;
    let ns = if ns == "me" {
        hub.namespace.clone()
    } else {
        ns
    };
    let name = decode(name)?;
    if !valid_name(&ns) || !valid_name(&name) {
        return Err(HubError::BadRequest(format!(
            "invalid bucket id {ns:?}/{name:?}"
        )));
    }
    Ok(format!("{ns}/{name}"))
}

/// What a request does to a bucket.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
}

/// True when the caller of `ctx` owns the namespace of bucket `id`.
fn owns(hub: &Hub, ctx: &Ctx, id: &str) -> bool {
    let ns = id.split_once('/').map_or(id, |(ns, _)| ns);
    ctx.caller.as_ref().is_some_and(|c| c.owns(hub, ns))
}

/// Bucket `id` as the caller may see it, as the Hub answers: a private bucket of another
/// namespace does not exist for the caller (anonymous: 401, another user: 404, both
/// `RepoNotFound`); a public one of another namespace is readable, not writable (403).
fn open_bucket(hub: &Hub, ctx: &Ctx, id: &str, access: Access) -> Result<BucketRecord, HubError> {
    let owner = owns(hub, ctx, id);
    match hub.meta.bucket(id)? {
        Some(b) if owner || (!b.private && access == Access::Read) => Ok(b),
        Some(b) if !b.private => Err(HubError::Forbidden(format!(
            "you don't have write access to bucket {id}"
        ))),
        _ if ctx.caller.is_none() => Err(HubError::BucketNotFoundAnonymous(id.to_string())),
        _ => Err(HubError::BucketNotFound(id.to_string())),
    }
}

fn file_json(path: &str, f: &FileRecord) -> Value {
    let mut v = json!({
        "type": "file",
        "path": path,
        "size": f.size,
        "xetHash": f.xet_hash.to_hex(),
        "mtime": iso8601(f.mtime_ms),
        "uploadedAt": iso8601(f.uploaded_at_ms),
    });
    if let Some(ct) = &f.content_type {
        v["contentType"] = Value::String(ct.clone());
    }
    v
}

/// `(total size, file count)` of a bucket (cached; a scan of its files when stale).
fn bucket_totals(hub: &Hub, uid: u64) -> Result<(u64, u64), HubError> {
    let (generation, cached) = hub.totals.get(uid);
    if let Some(t) = cached {
        return Ok(t);
    }
    let (mut size, mut count) = (0u64, 0u64);
    let mut start = Vec::new();
    loop {
        let page = hub.meta.files(uid, b"", &start, 10_000)?;
        for (_, f) in &page {
            size += f.size;
            count += 1;
        }
        match page.last() {
            Some((p, _)) if page.len() == 10_000 => {
                start = p.as_bytes().to_vec();
                start.push(0);
            }
            _ => break,
        }
    }
    hub.totals.put(uid, generation, (size, count));
    Ok((size, count))
}

fn bucket_json(hub: &Hub, id: &str, b: &BucketRecord) -> Result<Value, HubError> {
    let (size, count) = bucket_totals(hub, b.uid)?;
    let name = id.split_once('/').map_or(id, |(_, n)| n);
    Ok(json!({
        "_id": format!("{:016x}", b.uid),
        "id": id,
        "name": name,
        "type": "bucket",
        "private": b.private,
        "createdAt": iso8601(b.created_at_ms),
        "updatedAt": iso8601(b.created_at_ms),
        "size": size,
        "totalFiles": count,
    }))
}

async fn flush(hub: &Arc<Hub>) -> Result<(), HubError> {
    let h = hub.clone();
    tokio::task::spawn_blocking(move || h.meta.flush())
        .await
        .map_err(|e| HubError::Storage(e.to_string()))?
}

/// The JSON body of `req` (at most `limit` bytes; an empty body is `{}`).
async fn json_body(req: Request<ReqBody>, limit: u64) -> Result<Value, HubError> {
    let (parts, body) = req.into_parts();
    let body = read_body(&parts.headers, body, limit).await?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(&body)
        .map_err(|e| HubError::BadRequest(format!("invalid JSON body: {e}")))
}

pub(crate) async fn create_bucket(
    hub: &Arc<Hub>,
    ctx: &Ctx,
    ns: &str,
    name: &str,
    req: Request<ReqBody>,
) -> Result<Response<RespBody>, HubError> {
    let id = bucket_id(hub, ns, name)?;
    if !owns(hub, ctx, &id) {
        return Err(HubError::Forbidden(format!(
            "you cannot create buckets in the namespace of {id}"
        )));
    }
    let body = json_body(req, SMALL_BODY).await?;
    let url = format!("{}/buckets/{id}", ctx.base);
    if hub.meta.bucket(&id)?.is_some() {
        return Err(HubError::BucketExists { id, url });
    }
    let private = body
        .get("private")
        .and_then(Value::as_bool)
        .or_else(|| {
            body.get("visibility")
                .and_then(Value::as_str)
                .map(|v| v == "private")
        })
        .unwrap_or(false);
    let rec = BucketRecord {
        uid: rand::random(),
        private,
        created_at_ms: now_ms(),
    };
    hub.meta.put_bucket(&id, &rec)?;
    flush(hub).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"url": url, "id": id, "name": id.split_once('/').map_or("", |x| x.1)}),
    ))
}

pub(crate) fn bucket_info(
    hub: &Hub,
    ctx: &Ctx,
    ns: &str,
    name: &str,
) -> Result<Response<RespBody>, HubError> {
    let id = bucket_id(hub, ns, name)?;
    let b = open_bucket(hub, ctx, &id, Access::Read)?;
    Ok(json_response(StatusCode::OK, &bucket_json(hub, &id, &b)?))
}

/// A 200 JSON page of a listing, with `Link: <next>; rel="next"` when another page follows.
fn json_page(page: &impl serde::Serialize, next: Option<String>) -> Response<RespBody> {
    let mut resp = json_response(StatusCode::OK, page);
    let link = next.and_then(|url| HeaderValue::from_str(&format!("<{url}>; rel=\"next\"")).ok());
    if let Some(v) = link {
        resp.headers_mut().insert(http::header::LINK, v);
    }
    resp
}

pub(crate) fn list_buckets(
    hub: &Hub,
    ctx: &Ctx,
    ns: &str,
    req: &Request<ReqBody>,
) -> Result<Response<RespBody>, HubError> {
    let ns_dec = decode(ns)?;
    if ns_dec == "me" && ctx.caller.is_none() {
        return Err(HubError::Unauthorized(
            "listing `me` needs a Hub token".into(),
        ));
    }
    let ns_dec = if ns_dec == "me" {
        hub.namespace.clone()
    } else {
        ns_dec
    };
    if !valid_name(&ns_dec) {
        return Err(HubError::BadRequest(format!(
            "invalid namespace {ns_dec:?}"
        )));
    }
    let q = Query::parse(req.uri().query())?;
    let limit = q.limit("limit", DEFAULT_PAGE, MAX_PAGE)?;
    let search = q.get("search").unwrap_or("").to_ascii_lowercase();
    let prefix = format!("{ns_dec}/");
    let mut start = match q.get("cursor") {
        Some(c) => String::from_utf8(
            hex::decode(c).map_err(|_| HubError::BadRequest("invalid cursor".into()))?,
        )
        .map_err(|_| HubError::BadRequest("invalid cursor".into()))?,
        None => String::new(),
    };
    let mut out = Vec::new();
    let mut next = None;
    'outer: loop {
        let page = hub.meta.buckets(&prefix, &start, 1000)?;
        for (id, b) in &page {
            if out.len() == limit {
                next = Some(id.clone());
                break 'outer;
            }
            let name = &id[prefix.len()..];
            let visible = !b.private || owns(hub, ctx, id);
            if visible && (search.is_empty() || name.to_ascii_lowercase().contains(&search)) {
                out.push(bucket_json(hub, id, b)?);
            }
        }
        match page.last() {
            Some((id, _)) if page.len() == 1000 => start = format!("{id}\0"),
            _ => break,
        }
    }
    let next = next.map(|n| {
        let mut url = format!(
            "{}/api/buckets/{}?limit={limit}&cursor={}",
            ctx.base,
            encode_query(ns),
            hex::encode(n.as_bytes())
        );
        if !search.is_empty() {
            url.push_str(&format!("&search={}", encode_query(&search)));
        }
        url
    });
    Ok(json_page(&out, next))
}

pub(crate) async fn delete_bucket(
    hub: &Arc<Hub>,
    ctx: &Ctx,
    ns: &str,
    name: &str,
) -> Result<Response<RespBody>, HubError> {
    let id = bucket_id(hub, ns, name)?;
    let b = open_bucket(hub, ctx, &id, Access::Write)?;
    hub.meta.remove_bucket(&id)?;
    flush(hub).await?;
    // Files are keyed by the bucket's uid; once the bucket record is gone they are
    // unreachable, so removing them can be best effort.
    loop {
        let page = hub.meta.files(b.uid, b"", b"", 10_000)?;
        if page.is_empty() {
            break;
        }
        for (p, _) in &page {
            hub.meta.remove_file(b.uid, p)?;
        }
    }
    hub.totals.invalidate(b.uid);
    flush(hub).await?;
    Ok(json_response(StatusCode::OK, &json!({})))
}

pub(crate) async fn bucket_settings(
    hub: &Arc<Hub>,
    ctx: &Ctx,
    ns: &str,
    name: &str,
    req: Request<ReqBody>,
) -> Result<Response<RespBody>, HubError> {
    let id = bucket_id(hub, ns, name)?;
    let body = json_body(req, SMALL_BODY).await?;
    let mut b = open_bucket(hub, ctx, &id, Access::Write)?;
    if let Some(p) = body.get("private").and_then(Value::as_bool).or_else(|| {
        body.get("visibility")
            .and_then(Value::as_str)
            .map(|v| v == "private")
    }) {
        b.private = p;
    }
    hub.meta.put_bucket(&id, &b)?;
    flush(hub).await?;
    Ok(json_response(StatusCode::OK, &json!({})))
}

pub(crate) async fn move_bucket(
    hub: &Arc<Hub>,
    ctx: &Ctx,
    req: Request<ReqBody>,
) -> Result<Response<RespBody>, HubError> {
    let body = json_body(req, SMALL_BODY).await?;
    let field = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .ok_or_else(|| HubError::BadRequest(format!("missing {k}")))
    };
    let kind = body.get("type").and_then(Value::as_str).unwrap_or("model");
    if kind != "bucket" {
        return Err(HubError::BadRequest(format!(
            "only buckets can be moved here (type {kind:?})"
        )));
    }
    let split = |s: &str| -> Result<String, HubError> {
        let (ns, name) = s
            .split_once('/')
            .ok_or_else(|| HubError::BadRequest(format!("invalid bucket id {s:?}")))?;
        bucket_id(hub, ns, name)
    };
    let from = split(field("fromRepo")?)?;
    let to = split(field("toRepo")?)?;
    let b = open_bucket(hub, ctx, &from, Access::Write)?;
    if !owns(hub, ctx, &to) {
        return Err(HubError::Forbidden(format!(
            "you cannot move a bucket into the namespace of {to}"
        )));
    }
    if from == to {
        return Ok(json_response(StatusCode::OK, &json!({})));
    }
    if hub.meta.bucket(&to)?.is_some() {
        return Err(HubError::BucketExists {
            url: format!("{}/buckets/{to}", ctx.base),
            id: to,
        });
    }
    // New name first: a crash in between leaves two names for the bucket, never none.
    hub.meta.put_bucket(&to, &b)?;
    flush(hub).await?;
    hub.meta.remove_bucket(&from)?;
    flush(hub).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"url": format!("{}/buckets/{to}", ctx.base)}),
    ))
}

/// Resume position of a listing, as hex of the raw key bytes.
fn cursor_start(q: &Query) -> Result<Vec<u8>, HubError> {
    match q.get("cursor") {
        Some(c) => hex::decode(c).map_err(|_| HubError::BadRequest("invalid cursor".into())),
        None => Ok(Vec::new()),
    }
}

pub(crate) fn tree(
    hub: &Hub,
    ctx: &Ctx,
    segs: &[&str],
    req: &Request<ReqBody>,
) -> Result<Response<RespBody>, HubError> {
    let id = bucket_id(hub, segs[2], segs[3])?;
    let b = open_bucket(hub, ctx, &id, Access::Read)?;
    let raw_prefix = segs[5..].join("/");
    let prefix = decode(&raw_prefix)?;
    let q = Query::parse(req.uri().query())?;
    let recursive = q.flag("recursive").unwrap_or(false);
    let limit = q.limit("limit", DEFAULT_PAGE, MAX_PAGE)?;
    let start = cursor_start(&q)?;
    let first_page = q.get("cursor").is_none();

    let mut out: Vec<Value> = Vec::new();
    let mut next: Option<Vec<u8>> = None;
    if recursive {
        // Files whose path starts with the prefix, lexically.
        let page = hub
            .meta
            .files(b.uid, prefix.as_bytes(), &start, limit + 1)?;
        for (i, (p, f)) in page.iter().enumerate() {
            if i == limit {
                next = Some(p.as_bytes().to_vec());
                break;
            }
            out.push(file_json(p, f));
        }
    } else {
        // Entries directly under the directory `prefix` (plus the file `prefix` itself).
        let dir = if prefix.is_empty() || prefix.ends_with('/') {
            prefix.clone()
        } else {
            format!("{prefix}/")
        };
        if first_page
            && !prefix.is_empty()
            && !prefix.ends_with('/')
            && let Some(f) = hub.meta.file(b.uid, &prefix)?
        {
            out.push(file_json(&prefix, &f));
        }
        let mut pos = if start.is_empty() {
            dir.as_bytes().to_vec()
        } else {
            start
        };
        'scan: loop {
            let page = hub.meta.files(b.uid, dir.as_bytes(), &pos, 1000)?;
            if page.is_empty() {
                break;
            }
            let mut jumped = false;
            for (p, f) in &page {
                if out.len() == limit {
                    next = Some(p.as_bytes().to_vec());
                    break 'scan;
                }
                let rest = &p[dir.len()..];
                match rest.find('/') {
                    Some(i) => {
                        // A sub-directory: report it once, with the newest upload time found
                        // on this page, then skip all its keys ("name/" + 1 = "name0").
                        let d = format!("{dir}{}", &rest[..i]);
                        out.push(json!({
                            "type": "directory",
                            "path": d,
                            "uploadedAt": iso8601(f.uploaded_at_ms),
                        }));
                        let mut skip = d.into_bytes();
                        skip.push(b'/' + 1);
                        pos = skip;
                        jumped = true;
                        break;
                    }
                    None => {
                        out.push(file_json(p, f));
                        let mut after = p.as_bytes().to_vec();
                        after.push(0);
                        pos = after;
                    }
                }
            }
            if !jumped && page.len() < 1000 {
                break;
            }
        }
    }
    let next = next.map(|n| {
        let prefix_part = if raw_prefix.is_empty() {
            String::new()
        } else {
            format!("/{}", encode_query(&prefix))
        };
        format!(
            "{}/api/buckets/{id}/tree{prefix_part}?recursive={recursive}&limit={limit}&cursor={}",
            ctx.base,
            hex::encode(n)
        )
    });
    Ok(json_page(&out, next))
}

pub(crate) async fn paths_info(
    hub: &Arc<Hub>,
    ctx: &Ctx,
    ns: &str,
    name: &str,
    req: Request<ReqBody>,
) -> Result<Response<RespBody>, HubError> {
    let id = bucket_id(hub, ns, name)?;
    let b = open_bucket(hub, ctx, &id, Access::Read)?;
    let body = json_body(req, BATCH_BODY).await?;
    let paths = body
        .get("paths")
        .and_then(Value::as_array)
        .ok_or_else(|| HubError::BadRequest("body must be {\"paths\": [...]}".into()))?;
    if paths.len() > MAX_PAGE {
        return Err(HubError::BadRequest(format!(
            "at most {MAX_PAGE} paths per call"
        )));
    }
    let mut out = Vec::new();
    for p in paths {
        let p = p
            .as_str()
            .ok_or_else(|| HubError::BadRequest("paths must be strings".into()))?;
        if let Some(f) = hub.meta.file(b.uid, p)? {
            out.push(file_json(p, &f));
        }
    }
    Ok(json_response(StatusCode::OK, &out))
}

/// Paths are opaque keys (S3 gateways store keys like `a//b` or `dir/`): only empty,
/// absolute, NUL-containing or over-long paths are refused.
fn check_path(p: &str) -> Result<(), String> {
    if p.is_empty() || p.len() > 4096 {
        return Err("invalid path length".into());
    }
    if p.starts_with('/') || p.contains('\0') {
        return Err("invalid path".into());
    }
    Ok(())
}

/// Size of the content with file hash `h`, if the CAS knows it.
fn known_size(hub: &Hub, h: &XetHash) -> Result<Option<u64>, HubError> {
    if *h == XetHash::ZERO {
        return Ok(Some(0));
    }
    Ok(hub.meta.recon(h)?.map(|r| r.size))
}

fn mtime_of(op: &Value) -> u64 {
    op.get("mtime")
        .and_then(|m| m.as_u64().or_else(|| m.as_f64().map(|f| f.max(0.0) as u64)))
        .unwrap_or_else(now_ms)
}

/// Applies one batch operation; `Err(message)` is a per-operation failure.
///
/// As on the Hub: a `copyFile` names its source (`sourceRepoType` `bucket`,
/// `sourceRepoId`), which must be readable by the caller and hold a file with that
/// `xetHash`. A `deleteFile` of a path that does not exist succeeds, or fails with
/// "not found" under `--strict-deletes` (the Hub's answer there is not documented; clients
/// must accept both).
fn apply_op(hub: &Hub, ctx: &Ctx, uid: u64, op: &Value) -> Result<(), String> {
    let s = |k: &str| op.get(k).and_then(Value::as_str);
    let path = s("path").ok_or("missing path")?;
    check_path(path)?;
    let store_err = |e: HubError| e.to_string();
    match s("type").unwrap_or("") {
        "addFile" | "copyFile" => {
            let is_copy = s("type") == Some("copyFile");
            let hash = XetHash::from_hex(s("xetHash").ok_or("missing xetHash")?)
                .map_err(|e| e.to_string())?;
            let mut content_type = s("contentType").map(str::to_string);
            if is_copy {
                let kind = s("sourceRepoType").unwrap_or("bucket");
                if kind != "bucket" {
                    return Err(format!("copy from {kind} repositories is not supported"));
                }
                let src = s("sourceRepoId").ok_or("missing sourceRepoId")?;
                let source_type = copy_source_holds(hub, ctx, src, &hash)?;
                content_type = content_type.or(source_type);
            }
            let size = known_size(hub, &hash).map_err(store_err)?.ok_or_else(|| {
                format!("xetHash {hash} is not known to the CAS (upload its shard first)")
            })?;
            let rec = FileRecord {
                xet_hash: hash,
                size,
                mtime_ms: mtime_of(op),
                uploaded_at_ms: now_ms(),
                content_type,
            };
            hub.meta.put_file(uid, path, &rec).map_err(store_err)?;
            if is_copy {
                Stats::add(&hub.stats.copy_ops, 1);
            }
            Ok(())
        }
        "deleteFile" => match hub.meta.remove_file(uid, path) {
            Ok(true) => Ok(()),
            Ok(false) if hub.strict_deletes => Err(format!("file {path} not found")),
            Ok(false) => Ok(()),
            Err(e) => Err(store_err(e)),
        },
        other => Err(format!("unknown operation type {other:?}")),
    }
}

/// Checks the source of a `copyFile`: bucket `src` exists for the caller and one of its
/// files has content `hash`. Returns that file's content type.
fn copy_source_holds(
    hub: &Hub,
    ctx: &Ctx,
    src: &str,
    hash: &XetHash,
) -> Result<Option<String>, String> {
    let (ns, name) = src
        .split_once('/')
        .ok_or_else(|| format!("invalid sourceRepoId {src:?}"))?;
    let id = bucket_id(hub, ns, name).map_err(|e| e.to_string())?;
    let b = open_bucket(hub, ctx, &id, Access::Read)
        .map_err(|_| format!("source bucket {id} not found"))?;
    let mut start = Vec::new();
    loop {
        let page = hub
            .meta
            .files(b.uid, b"", &start, 10_000)
            .map_err(|e| e.to_string())?;
        if let Some((_, f)) = page.iter().find(|(_, f)| f.xet_hash == *hash) {
            return Ok(f.content_type.clone());
        }
        match page.last() {
            Some((p, _)) if page.len() == 10_000 => {
                start = p.as_bytes().to_vec();
                start.push(0);
            }
            _ => {
                return Err(format!(
                    "source bucket {id} has no file with xetHash {hash}"
                ));
            }
        }
    }
}

pub(crate) async fn batch(
    hub: &Arc<Hub>,
    ctx: &Ctx,
    ns: &str,
    name: &str,
    req: Request<ReqBody>,
) -> Result<Response<RespBody>, HubError> {
    let id = bucket_id(hub, ns, name)?;
    let b = open_bucket(hub, ctx, &id, Access::Write)?;
    let (parts, body) = req.into_parts();
    let body = read_body(&parts.headers, body, BATCH_BODY).await?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| HubError::BadRequest("batch body is not UTF-8".into()))?;
    Stats::add(&hub.stats.batch_calls, 1);
    let mut failed = Vec::new();
    let mut total = 0u64;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        total += 1;
        let op: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                failed.push(json!({"path": "", "error": format!("invalid JSON line: {e}")}));
                continue;
            }
        };
        if let Err(e) = apply_op(hub, ctx, b.uid, &op) {
            let path = op.get("path").and_then(Value::as_str).unwrap_or("");
            failed.push(json!({"path": path, "error": e}));
        }
    }
    let ok = total - failed.len() as u64;
    hub.totals.invalidate(b.uid);
    Stats::add(&hub.stats.batch_ops, ok);
    flush(hub).await?;
    let status = if total > 0 && ok == 0 {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok(json_response(
        status,
        &json!({"success": ok, "failed": failed}),
    ))
}

pub(crate) fn xet_token(
    hub: &Hub,
    ctx: &Ctx,
    ns: &str,
    name: &str,
    scope: Scope,
) -> Result<Response<RespBody>, HubError> {
    let id = bucket_id(hub, ns, name)?;
    let access = match scope {
        Scope::Read => Access::Read,
        Scope::Write => Access::Write,
    };
    let b = open_bucket(hub, ctx, &id, access)?;
    let exp = now_secs() + hub.token_ttl;
    let token = hub.keys.issue_xet_token(scope, b.uid, exp);
    let mut resp = json_response(
        StatusCode::OK,
        &json!({"accessToken": token, "exp": exp, "casUrl": ctx.base}),
    );
    let h = resp.headers_mut();
    for (k, v) in [
        ("x-xet-cas-url", ctx.base.clone()),
        ("x-xet-access-token", token),
        ("x-xet-token-expiration", exp.to_string()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    }
    Ok(resp)
}

pub(crate) async fn resolve(
    hub: &Arc<Hub>,
    ctx: &Ctx,
    segs: &[&str],
    req: &Request<ReqBody>,
    head: bool,
) -> Result<Response<RespBody>, HubError> {
    let id = bucket_id(hub, segs[1], segs[2])?;
    let b = open_bucket(hub, ctx, &id, Access::Read)?;
    let path = decode(&segs[4..].join("/"))?;
    let f = hub
        .meta
        .file(b.uid, &path)?
        .ok_or_else(|| HubError::EntryNotFound(format!("{id}/{path}")))?;
    let size = f.size;
    let headers = [
        ("x-xet-hash", f.xet_hash.to_hex()),
        ("x-linked-size", size.to_string()),
        ("etag", format!("\"{}\"", f.xet_hash.to_hex())),
        ("accept-ranges", "bytes".to_string()),
        (
            "link",
            format!(
                "<{}/api/buckets/{id}/xet-read-token>; rel=\"xet-auth\"",
                ctx.base
            ),
        ),
        ("x-repo-commit", "0".repeat(40)),
        (
            "content-type",
            f.content_type
                .clone()
                .unwrap_or_else(|| "application/octet-stream".into()),
        ),
        (
            "content-disposition",
            format!(
                "inline; filename*=UTF-8''{}",
                encode_path(path.rsplit('/').next().unwrap_or(&path))
            ),
        ),
    ];
    let set = |resp: &mut Response<RespBody>| {
        for (k, v) in &headers {
            if let Ok(v) = HeaderValue::from_str(v) {
                resp.headers_mut().insert(*k, v);
            }
        }
    };
    if head {
        let mut resp = Response::new(empty());
        set(&mut resp);
        resp.headers_mut()
            .insert(http::header::CONTENT_LENGTH, HeaderValue::from(size));
        return Ok(resp);
    }
    let ranges = parse_range(req.headers(), size)?;
    let (range, partial) = match ranges.as_deref() {
        Some([r]) => (Some(*r), true),
        // No Range, or several: the whole file (a server may ignore multi-range).
        _ => (None, false),
    };
    if size == 0 {
        let mut resp = Response::new(empty());
        set(&mut resp);
        return Ok(resp);
    }
    let (start, end) = range.map_or((0, size - 1), |r| (r.start, r.end));
    let recon = if f.xet_hash == XetHash::ZERO {
        Default::default()
    } else {
        hub.meta
            .recon(&f.xet_hash)?
            .ok_or_else(|| HubError::Storage(format!("no reconstruction for {}", f.xet_hash)))?
    };
    let plan = cas::plan(hub, &recon, start, end)?;
    let len = end - start + 1;
    Stats::add(&hub.stats.resolve_bytes, len);
    let mut resp = Response::new(cas::stream_decoded(hub.clone(), plan, len));
    set(&mut resp);
    if partial {
        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{size}")) {
            resp.headers_mut().insert(http::header::CONTENT_RANGE, v);
        }
    }
    Ok(resp)
}
