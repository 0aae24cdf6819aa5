//! Fuzzes every XML request-body parser of the S3 front-end (`xml::parse_complete_multipart`,
//! `xml::parse_delete`, `xml::parse_create_bucket`) with arbitrary bytes. Never panics;
//! whatever parses respects the documented limits (1..=10 000 parts numbered 1..=10 000,
//! 1..=1 000 keys).
//!
//! Oracle: keys taken from the input (split at NUL), written with `xml::escape` into a
//! `Delete` document, parse back to exactly the same keys.
#![no_main]

use hugbucket_s3::xml::{
    MAX_DELETE_KEYS, MAX_PARTS, escape, parse_complete_multipart, parse_create_bucket,
    parse_delete,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(parts) = parse_complete_multipart(data) {
        assert!(!parts.is_empty() && parts.len() <= MAX_PARTS);
        assert!(
            parts
                .iter()
                .all(|p| (1..=MAX_PARTS as u32).contains(&p.part_number))
        );
    }
    if let Ok(d) = parse_delete(data) {
        assert!(!d.keys.is_empty() && d.keys.len() <= MAX_DELETE_KEYS);
    }
    if let Ok(Some(loc)) = parse_create_bucket(data) {
        assert!(!loc.is_empty() && loc.trim() == loc);
    }

    // Round trip of keys through escape + parse_delete. XML 1.0 cannot carry most control
    // characters even as references, and parsers may normalise CR, so keys are limited to
    // characters an S3 client can send in XML.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let keys: Vec<&str> = text
        .split('\0')
        .filter(|k| !k.is_empty())
        .take(MAX_DELETE_KEYS)
        .collect();
    if keys.is_empty()
        || keys
            .iter()
            .any(|k| k.chars().any(|c| (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}'))
    {
        return;
    }
    let mut doc = String::from(r#"<?xml version="1.0" encoding="UTF-8"?><Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Quiet>true</Quiet>"#);
    for k in &keys {
        doc.push_str("<Object><Key>");
        doc.push_str(&escape(k));
        doc.push_str("</Key></Object>");
    }
    doc.push_str("</Delete>");
    let parsed = parse_delete(doc.as_bytes()).expect("an escaped Delete document parses");
    assert!(parsed.quiet);
    assert_eq!(parsed.keys, keys);
});
