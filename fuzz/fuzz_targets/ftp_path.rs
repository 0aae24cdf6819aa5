//! Fuzzes the FTP path normalisation (`hugbucket_ftp::path::Target::parse`) with arbitrary
//! bytes as a Unix path. Invariants: it never panics; a normalised path never escapes the
//! root: no bucket or key segment is empty, `.` or `..`, and no segment holds a `/`; the
//! display form parses back to the same target (normalisation is idempotent); a path
//! without `..` segments that is valid UTF-8 is always accepted; and the result equals a
//! straightforward reference normalisation (`.` and empty segments dropped, `..` pops one,
//! and at the root stays at the root).
#![no_main]

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use hugbucket_ftp::path::Target;
use libfuzzer_sys::fuzz_target;

fn check_segment(s: &str) {
    assert!(!s.is_empty() && s != "." && s != ".." && !s.contains('/'), "{s:?}");
}

fn reference(path: &str) -> Option<Vec<&str>> {
    let mut segs = Vec::new();
    for s in path.split('/') {
        match s {
            "" | "." => {}
            ".." => {
                segs.pop();
            }
            s => segs.push(s),
        }
    }
    Some(segs)
}

fuzz_target!(|data: &[u8]| {
    let path = Path::new(OsStr::from_bytes(data));
    let parsed = Target::parse(path);
    let text = std::str::from_utf8(data).ok();
    if let Some(t) = text {
        if !t.split('/').any(|s| s == "..") {
            assert!(parsed.is_ok(), "{t:?} was refused");
        }
        let expected = reference(t);
        match (&parsed, &expected) {
            (Ok(_), None) => panic!("{t:?} was accepted, the reference refuses it"),
            (Err(_), Some(_)) => panic!("{t:?} was refused"),
            _ => {}
        }
        if let (Ok(target), Some(segs)) = (&parsed, &expected) {
            let got: Vec<String> = match target {
                Target::Root => vec![],
                Target::Bucket(b) => vec![b.clone()],
                Target::Object { bucket, key } => {
                    let mut v = vec![bucket.clone()];
                    v.extend(key.split('/').map(str::to_string));
                    v
                }
            };
            assert_eq!(&got, segs, "{t:?}");
        }
    }
    let Ok(target) = parsed else {
        return;
    };
    match &target {
        Target::Root => {}
        Target::Bucket(b) => check_segment(b),
        Target::Object { bucket, key } => {
            check_segment(bucket);
            key.split('/').for_each(check_segment);
        }
    }
    let shown = target.display();
    assert!(shown.starts_with('/'));
    assert_eq!(Target::parse(Path::new(&shown)).ok(), Some(target));
});
