//! S3 XML: response documents (with the S3 namespace) and bounded request-body parsers.

use std::time::SystemTime;

use quick_xml::Reader;
use quick_xml::events::Event;

use crate::dates::iso8601;
use crate::error::{S3Error, S3ErrorCode};
pub use crate::xml_writer::{S3_NS, XmlWriter, escape};

/// Largest accepted `CompleteMultipartUpload` body.
pub const MAX_COMPLETE_BODY: usize = 2 << 20;
/// Largest accepted `Delete` (DeleteObjects) body.
pub const MAX_DELETE_BODY: usize = 2 << 20;
/// Largest accepted `CreateBucketConfiguration` body.
pub const MAX_CREATE_BUCKET_BODY: usize = 64 << 10;
/// Most keys in one DeleteObjects request (as S3).
pub const MAX_DELETE_KEYS: usize = 1000;
/// Most parts in one multipart upload (as S3).
pub const MAX_PARTS: usize = 10_000;

// ---------------------------------------------------------------------------------------
// Response documents
// ---------------------------------------------------------------------------------------

/// The bucket owner shown in listings.
#[derive(Debug, Clone)]
pub struct Owner {
    /// Canonical id.
    pub id: String,
    /// Display name.
    pub display_name: String,
}

fn owner(w: &mut XmlWriter, tag: &'static str, o: &Owner) {
    w.open(tag)
        .elem("ID", &o.id)
        .elem("DisplayName", &o.display_name)
        .close();
}

/// `ListAllMyBucketsResult`.
pub fn list_buckets(owner_: &Owner, buckets: &[(String, SystemTime)]) -> String {
    list_buckets_page(owner_, buckets, None, None)
}

/// `ListAllMyBucketsResult` of one page: `next` is the continuation token of the next
/// page, `prefix` the echoed `prefix` parameter.
pub fn list_buckets_page(
    owner_: &Owner,
    buckets: &[(String, SystemTime)],
    next: Option<&str>,
    prefix: Option<&str>,
) -> String {
    let mut w = XmlWriter::new("ListAllMyBucketsResult");
    owner(&mut w, "Owner", owner_);
    w.open("Buckets");
    for (name, created) in buckets {
        w.open("Bucket")
            .elem("Name", name)
            .elem("CreationDate", &iso8601(*created))
            .close();
    }
    w.close();
    if let Some(t) = next {
        w.elem("ContinuationToken", t);
    }
    if let Some(p) = prefix {
        w.elem("Prefix", p);
    }
    w.finish()
}

/// One object row of a listing.
#[derive(Debug, Clone)]
pub struct ObjectEntry {
    /// Key.
    pub key: String,
    /// Last modification.
    pub last_modified: SystemTime,
    /// Quoted ETag.
    pub etag: String,
    /// Size in bytes.
    pub size: u64,
}

/// Parameters echoed in ListObjects (V1 and V2) answers.
#[derive(Debug, Clone, Default)]
pub struct ListEcho {
    /// Bucket.
    pub bucket: String,
    /// Prefix.
    pub prefix: String,
    /// Delimiter.
    pub delimiter: Option<String>,
    /// max-keys.
    pub max_keys: usize,
    /// `encoding-type=url` was asked: keys, prefixes, delimiter, markers are URL-encoded.
    pub encoding_url: bool,
    /// V1 `marker` / V2 `start-after`.
    pub marker: Option<String>,
    /// V2 continuation-token.
    pub continuation_token: Option<String>,
    /// V2 fetch-owner.
    pub fetch_owner: bool,
}

/// One listing page.
#[derive(Debug, Clone, Default)]
pub struct ListPage {
    /// Objects.
    pub objects: Vec<ObjectEntry>,
    /// Common prefixes.
    pub common_prefixes: Vec<String>,
    /// More results exist.
    pub is_truncated: bool,
    /// V2 next token / V1 next marker.
    pub next: Option<String>,
}

/// URL-encoding for `encoding-type=url` (S3 encodes like a query value; `/` kept).
pub fn url_encode_key(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, crate::encoding::KEY_ENCODE_SET).to_string()
}

fn enc(echo: &ListEcho, s: &str) -> String {
    if echo.encoding_url {
        url_encode_key(s)
    } else {
        s.to_string()
    }
}

fn list_common(w: &mut XmlWriter, echo: &ListEcho, page: &ListPage, owner_: Option<&Owner>) {
    for o in &page.objects {
        w.open("Contents");
        w.elem("Key", &enc(echo, &o.key));
        w.elem("LastModified", &iso8601(o.last_modified));
        w.elem("ETag", &o.etag);
        w.elem("Size", &o.size.to_string());
        if let Some(ow) = owner_ {
            owner(w, "Owner", ow);
        }
        w.elem("StorageClass", "STANDARD");
        w.close();
    }
    for p in &page.common_prefixes {
        w.open("CommonPrefixes")
            .elem("Prefix", &enc(echo, p))
            .close();
    }
    if echo.encoding_url {
        w.elem("EncodingType", "url");
    }
}

/// `ListBucketResult` for ListObjects V1.
pub fn list_objects_v1(echo: &ListEcho, page: &ListPage, owner_: &Owner) -> String {
    let mut w = XmlWriter::new("ListBucketResult");
    w.elem("Name", &echo.bucket);
    w.elem("Prefix", &enc(echo, &echo.prefix));
    w.elem("Marker", &enc(echo, echo.marker.as_deref().unwrap_or("")));
    if let (true, Some(n)) = (page.is_truncated, &page.next) {
        w.elem("NextMarker", &enc(echo, n));
    }
    w.elem("MaxKeys", &echo.max_keys.to_string());
    if let Some(d) = &echo.delimiter {
        w.elem("Delimiter", &enc(echo, d));
    }
    w.elem("IsTruncated", bool_str(page.is_truncated));
    list_common(&mut w, echo, page, Some(owner_));
    w.finish()
}

/// `ListBucketResult` for ListObjectsV2.
pub fn list_objects_v2(echo: &ListEcho, page: &ListPage, owner_: &Owner) -> String {
    let mut w = XmlWriter::new("ListBucketResult");
    w.elem("Name", &echo.bucket);
    w.elem("Prefix", &enc(echo, &echo.prefix));
    if let Some(s) = &echo.marker {
        w.elem("StartAfter", &enc(echo, s));
    }
    if let Some(t) = &echo.continuation_token {
        w.elem("ContinuationToken", t);
    }
    if let (true, Some(n)) = (page.is_truncated, &page.next) {
        w.elem("NextContinuationToken", n);
    }
    w.elem(
        "KeyCount",
        &(page.objects.len() + page.common_prefixes.len()).to_string(),
    );
    w.elem("MaxKeys", &echo.max_keys.to_string());
    if let Some(d) = &echo.delimiter {
        w.elem("Delimiter", &enc(echo, d));
    }
    w.elem("IsTruncated", bool_str(page.is_truncated));
    list_common(&mut w, echo, page, echo.fetch_owner.then_some(owner_));
    w.finish()
}

fn bool_str(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

/// `CopyObjectResult` (CopyObject) or `CopyPartResult` (UploadPartCopy).
pub fn copy_result(part: bool, etag: &str, last_modified: SystemTime) -> String {
    let mut w = XmlWriter::new(if part {
        "CopyPartResult"
    } else {
        "CopyObjectResult"
    });
    w.elem("LastModified", &iso8601(last_modified))
        .elem("ETag", etag);
    w.finish()
}

/// `InitiateMultipartUploadResult`.
pub fn initiate_multipart(bucket: &str, key: &str, upload_id: &str) -> String {
    let mut w = XmlWriter::new("InitiateMultipartUploadResult");
    w.elem("Bucket", bucket)
        .elem("Key", key)
        .elem("UploadId", upload_id);
    w.finish()
}

/// `CompleteMultipartUploadResult`.
pub fn complete_multipart(location: &str, bucket: &str, key: &str, etag: &str) -> String {
    let mut w = XmlWriter::new("CompleteMultipartUploadResult");
    w.elem("Location", location)
        .elem("Bucket", bucket)
        .elem("Key", key)
        .elem("ETag", etag);
    w.finish()
}

/// One in-progress upload of `ListMultipartUploadsResult`.
#[derive(Debug, Clone)]
pub struct UploadEntry {
    /// Key.
    pub key: String,
    /// Upload id.
    pub upload_id: String,
    /// Initiation time.
    pub initiated: SystemTime,
}

/// `ListMultipartUploadsResult`.
pub fn list_multipart_uploads(
    bucket: &str,
    prefix: &str,
    max_uploads: usize,
    uploads: &[UploadEntry],
    owner_: &Owner,
) -> String {
    let mut w = XmlWriter::new("ListMultipartUploadsResult");
    w.elem("Bucket", bucket)
        .elem("KeyMarker", "")
        .elem("UploadIdMarker", "");
    w.elem("NextKeyMarker", "").elem("NextUploadIdMarker", "");
    w.elem("Prefix", prefix)
        .elem("MaxUploads", &max_uploads.to_string());
    w.elem("IsTruncated", "false");
    for u in uploads {
        w.open("Upload")
            .elem("Key", &u.key)
            .elem("UploadId", &u.upload_id);
        owner(&mut w, "Initiator", owner_);
        owner(&mut w, "Owner", owner_);
        w.elem("StorageClass", "STANDARD")
            .elem("Initiated", &iso8601(u.initiated))
            .close();
    }
    w.finish()
}

/// One part of `ListPartsResult`.
#[derive(Debug, Clone)]
pub struct PartEntry {
    /// Part number.
    pub part_number: u32,
    /// Quoted ETag.
    pub etag: String,
    /// Size.
    pub size: u64,
    /// Upload time.
    pub last_modified: SystemTime,
}

/// `ListPartsResult`.
pub fn list_parts(
    bucket: &str,
    key: &str,
    upload_id: &str,
    max_parts: usize,
    parts: &[PartEntry],
    owner_: &Owner,
) -> String {
    let mut w = XmlWriter::new("ListPartsResult");
    w.elem("Bucket", bucket)
        .elem("Key", key)
        .elem("UploadId", upload_id);
    owner(&mut w, "Initiator", owner_);
    owner(&mut w, "Owner", owner_);
    w.elem("StorageClass", "STANDARD")
        .elem("PartNumberMarker", "0");
    let next = parts.last().map(|p| p.part_number).unwrap_or(0);
    w.elem("NextPartNumberMarker", &next.to_string());
    w.elem("MaxParts", &max_parts.to_string())
        .elem("IsTruncated", "false");
    for p in parts {
        w.open("Part")
            .elem("PartNumber", &p.part_number.to_string())
            .elem("LastModified", &iso8601(p.last_modified))
            .elem("ETag", &p.etag)
            .elem("Size", &p.size.to_string())
            .close();
    }
    w.finish()
}

/// `DeleteResult`: deleted keys (omitted in quiet mode) and per-key errors.
pub fn delete_result(quiet: bool, deleted: &[String], errors: &[(String, S3Error)]) -> String {
    let mut w = XmlWriter::new("DeleteResult");
    if !quiet {
        for k in deleted {
            w.open("Deleted").elem("Key", k).close();
        }
    }
    for (k, e) in errors {
        w.open("Error")
            .elem("Key", k)
            .elem("Code", e.code().as_str())
            .elem("Message", e.message())
            .close();
    }
    w.finish()
}

/// `LocationConstraint` (empty for us-east-1, as S3).
pub fn location_constraint(region: &str) -> String {
    let mut w = XmlWriter::new("LocationConstraint");
    if region != "us-east-1" {
        w.text(region);
    }
    w.finish()
}

/// `VersioningConfiguration` of an unversioned bucket (empty element).
pub fn versioning_unversioned() -> String {
    XmlWriter::new("VersioningConfiguration").finish()
}

// ---------------------------------------------------------------------------------------
// Request bodies
// ---------------------------------------------------------------------------------------

/// An element of a parsed request document (namespace prefixes stripped).
#[derive(Debug, Default, Clone)]
struct Node {
    name: String,
    text: String,
    children: Vec<Node>,
}

impl Node {
    fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }
    fn children<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }
}

const MAX_DEPTH: usize = 8;

fn malformed(msg: &'static str) -> S3Error {
    S3Error::with_message(S3ErrorCode::MalformedXML, msg)
}

/// Parses a small document into a tree, bounded in size, depth and node count.
fn parse_tree(body: &[u8], max_len: usize, max_nodes: usize) -> Result<Node, S3Error> {
    if body.len() > max_len {
        return Err(malformed(
            "The XML you provided was larger than the maximum allowed size.",
        ));
    }
    let mut reader = Reader::from_reader(body);
    reader.config_mut().trim_text(false);
    let mut stack: Vec<Node> = Vec::new();
    let mut root: Option<Node> = None;
    let mut nodes = 0usize;
    let mut buf = Vec::new();
    loop {
        let ev = reader
            .read_event_into(&mut buf)
            .map_err(|_| malformed("invalid XML"))?;
        match ev {
            Event::Start(e) => {
                if root.is_some() {
                    return Err(malformed("content after the root element"));
                }
                nodes += 1;
                if stack.len() >= MAX_DEPTH || nodes > max_nodes {
                    return Err(malformed("XML too deep or too large"));
                }
                let name = local_name(e.name().as_ref())?;
                stack.push(Node {
                    name,
                    ..Node::default()
                });
            }
            Event::Empty(e) => {
                if root.is_some() {
                    return Err(malformed("content after the root element"));
                }
                nodes += 1;
                if nodes > max_nodes {
                    return Err(malformed("XML too large"));
                }
                let node = Node {
                    name: local_name(e.name().as_ref())?,
                    ..Node::default()
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => root = Some(node),
                }
            }
            Event::End(_) => {
                let node = stack.pop().ok_or_else(|| malformed("unbalanced XML"))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => root = Some(node),
                }
            }
            Event::Text(t) => {
                let s = t.unescape().map_err(|_| malformed("invalid XML text"))?;
                match stack.last_mut() {
                    Some(n) => n.text.push_str(&s),
                    None if s.trim().is_empty() => {}
                    None => return Err(malformed("text outside the root element")),
                }
            }
            Event::CData(t) => {
                let s = std::str::from_utf8(&t).map_err(|_| malformed("invalid UTF-8"))?;
                match stack.last_mut() {
                    Some(n) => n.text.push_str(s),
                    None => return Err(malformed("text outside the root element")),
                }
            }
            Event::Eof => break,
            Event::DocType(_) => return Err(malformed("DTDs are not allowed")),
            _ => {}
        }
        buf.clear();
    }
    if !stack.is_empty() {
        return Err(malformed("unexpected end of XML"));
    }
    root.ok_or_else(|| malformed("empty XML document"))
}

fn local_name(raw: &[u8]) -> Result<String, S3Error> {
    let s = std::str::from_utf8(raw).map_err(|_| malformed("invalid UTF-8"))?;
    Ok(s.rsplit(':').next().unwrap_or(s).to_string())
}

/// A `<Part>` of CompleteMultipartUpload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedPart {
    /// Part number (1..=10000).
    pub part_number: u32,
    /// The ETag as sent (quotes kept).
    pub etag: String,
}

/// Parses a `CompleteMultipartUpload` body. Part order is checked by the caller
/// (InvalidPartOrder comes from the core).
pub fn parse_complete_multipart(body: &[u8]) -> Result<Vec<CompletedPart>, S3Error> {
    let root = parse_tree(body, MAX_COMPLETE_BODY, MAX_PARTS * 8 + 16)?;
    if root.name != "CompleteMultipartUpload" {
        return Err(malformed("expected CompleteMultipartUpload"));
    }
    let mut parts = Vec::new();
    for p in root.children("Part") {
        let n = p
            .child("PartNumber")
            .ok_or_else(|| malformed("Part without PartNumber"))?;
        let part_number: u32 = n
            .text
            .trim()
            .parse()
            .map_err(|_| malformed("bad PartNumber"))?;
        if !(1..=MAX_PARTS as u32).contains(&part_number) {
            return Err(S3Error::with_message(
                S3ErrorCode::InvalidArgument,
                "Part number must be an integer between 1 and 10000, inclusive",
            ));
        }
        let etag = p
            .child("ETag")
            .ok_or_else(|| malformed("Part without ETag"))?
            .text
            .trim()
            .to_string();
        parts.push(CompletedPart { part_number, etag });
    }
    if parts.is_empty() {
        return Err(malformed("CompleteMultipartUpload without parts"));
    }
    if parts.len() > MAX_PARTS {
        return Err(malformed("too many parts"));
    }
    Ok(parts)
}

/// A parsed DeleteObjects request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteRequest {
    /// Quiet mode: only errors are reported.
    pub quiet: bool,
    /// Keys to delete.
    pub keys: Vec<String>,
}

/// Parses a `Delete` body (at most 1000 keys).
pub fn parse_delete(body: &[u8]) -> Result<DeleteRequest, S3Error> {
    let root = parse_tree(body, MAX_DELETE_BODY, MAX_DELETE_KEYS * 4 + 16)?;
    if root.name != "Delete" {
        return Err(malformed("expected Delete"));
    }
    let quiet = match root
        .child("Quiet")
        .map(|q| q.text.trim().to_ascii_lowercase())
    {
        None => false,
        Some(q) if q == "true" => true,
        Some(q) if q == "false" => false,
        Some(_) => return Err(malformed("bad Quiet")),
    };
    let mut keys = Vec::new();
    for o in root.children("Object") {
        let k = o
            .child("Key")
            .ok_or_else(|| malformed("Object without Key"))?;
        keys.push(k.text.clone());
    }
    if keys.is_empty() || keys.len() > MAX_DELETE_KEYS {
        return Err(malformed("Delete needs 1 to 1000 objects"));
    }
    Ok(DeleteRequest { quiet, keys })
}

/// Parses an optional `CreateBucketConfiguration`; returns the LocationConstraint if any.
pub fn parse_create_bucket(body: &[u8]) -> Result<Option<String>, S3Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let root = parse_tree(body, MAX_CREATE_BUCKET_BODY, 64)?;
    if root.name != "CreateBucketConfiguration" {
        return Err(malformed("expected CreateBucketConfiguration"));
    }
    Ok(root
        .child("LocationConstraint")
        .map(|l| l.text.trim().to_string())
        .filter(|s| !s.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_parse() {
        let b = br#"<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
            <Part><ETag>"a&quot;b"</ETag><PartNumber>1</PartNumber></Part>
            <Part><PartNumber>2</PartNumber><ETag>"c"</ETag><ChecksumCRC32>x</ChecksumCRC32></Part>
          </CompleteMultipartUpload>"#;
        let p = parse_complete_multipart(b).unwrap();
        assert_eq!(
            p,
            vec![
                CompletedPart {
                    part_number: 1,
                    etag: "\"a\"b\"".into()
                },
                CompletedPart {
                    part_number: 2,
                    etag: "\"c\"".into()
                }
            ]
        );
        assert_eq!(
            parse_complete_multipart(b"<CompleteMultipartUpload/>")
                .unwrap_err()
                .code(),
            S3ErrorCode::MalformedXML
        );
        assert_eq!(
            parse_complete_multipart(b"<CompleteMultipartUpload><Part><PartNumber>0</PartNumber><ETag>x</ETag></Part></CompleteMultipartUpload>")
                .unwrap_err()
                .code(),
            S3ErrorCode::InvalidArgument
        );
        assert!(parse_complete_multipart(b"<CompleteMultipartUpload><Part>").is_err());
        assert!(parse_complete_multipart(&vec![b' '; MAX_COMPLETE_BODY + 1]).is_err());
    }

    #[test]
    fn delete_parse() {
        let b = b"<Delete><Quiet>true</Quiet><Object><Key>a b/&lt;c</Key></Object><Object><Key>d</Key><VersionId>null</VersionId></Object></Delete>";
        let d = parse_delete(b).unwrap();
        assert!(d.quiet);
        assert_eq!(d.keys, vec!["a b/<c".to_string(), "d".to_string()]);
        let mut many = String::from("<Delete>");
        for i in 0..1001 {
            many.push_str(&format!("<Object><Key>{i}</Key></Object>"));
        }
        many.push_str("</Delete>");
        assert!(parse_delete(many.as_bytes()).is_err());
        assert!(parse_delete(b"<!DOCTYPE x [<!ENTITY a \"b\">]><Delete/>").is_err());
    }

    #[test]
    fn create_bucket_parse() {
        assert_eq!(parse_create_bucket(b"").unwrap(), None);
        assert_eq!(
            parse_create_bucket(b"<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><LocationConstraint>eu-west-1</LocationConstraint></CreateBucketConfiguration>").unwrap(),
            Some("eu-west-1".into())
        );
        assert!(parse_create_bucket(b"<Other/>").is_err());
    }

    #[test]
    fn documents() {
        let owner_ = Owner {
            id: "id".into(),
            display_name: "me".into(),
        };
        let x = list_buckets(&owner_, &[("b1".into(), SystemTime::UNIX_EPOCH)]);
        assert!(x.contains(&format!("<ListAllMyBucketsResult xmlns=\"{S3_NS}\">")));
        assert!(x.contains(
            "<Bucket><Name>b1</Name><CreationDate>1970-01-01T00:00:00.000Z</CreationDate></Bucket>"
        ));
        let echo = ListEcho {
            bucket: "b".into(),
            prefix: "a b".into(),
            max_keys: 1000,
            encoding_url: true,
            ..Default::default()
        };
        let page = ListPage {
            objects: vec![ObjectEntry {
                key: "a b/c+d%é".into(),
                last_modified: SystemTime::UNIX_EPOCH,
                etag: "\"e\"".into(),
                size: 3,
            }],
            common_prefixes: vec!["a b/x/".into()],
            is_truncated: true,
            next: Some("tok".into()),
        };
        let x = list_objects_v2(&echo, &page, &owner_);
        assert!(x.contains("<Key>a%20b/c%2Bd%25%C3%A9</Key>"), "{x}");
        assert!(x.contains("<Prefix>a%20b</Prefix>"));
        assert!(x.contains("<KeyCount>2</KeyCount>"));
        assert!(x.contains("<NextContinuationToken>tok</NextContinuationToken>"));
        assert!(x.contains("<EncodingType>url</EncodingType>"));
        assert!(x.contains("<ETag>&quot;e&quot;</ETag>"));
        assert!(!x.contains("<Owner>"));
        let x = list_objects_v1(&echo, &page, &owner_);
        assert!(x.contains("<NextMarker>tok</NextMarker>") && x.contains("<Owner>"));
        let x = delete_result(
            true,
            &["a".into()],
            &[("b".into(), S3Error::new(S3ErrorCode::AccessDenied))],
        );
        assert!(
            !x.contains("<Deleted>") && x.contains("<Error><Key>b</Key><Code>AccessDenied</Code>")
        );
        assert!(location_constraint("us-east-1").ends_with("<LocationConstraint xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"></LocationConstraint>"));
        assert!(versioning_unversioned().contains("<VersioningConfiguration"));
        assert!(escape("a\u{1}b").contains("&#x1;"));
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = parse_complete_multipart(&data);
            let _ = parse_delete(&data);
            let _ = parse_create_bucket(&data);
        }
        #[test]
        fn parsers_never_panic_on_xmlish(s in "(<[A-Za-z:]{0,6}>|</[A-Za-z:]{0,6}>|<[A-Za-z]{0,4}/>|[a-z0-9 &;\"]{0,5}|<!\\[CDATA\\[x\\]\\]>)*") {
            let _ = parse_complete_multipart(s.as_bytes());
            let _ = parse_delete(s.as_bytes());
            let _ = parse_create_bucket(s.as_bytes());
        }
    }
}
