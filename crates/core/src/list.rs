//! ListObjects on top of the Hub tree API, with the prefix pushed down.
//!
//! With the `/` delimiter only the directory holding the prefix is listed (non-recursive
//! tree); without a delimiter, a recursive tree listing of the prefix. Pages of the Hub are
//! consumed in order and the listing stops as soon as one entry past `max_keys` is seen, or
//! when `max_keys` entries were emitted at the end of a Hub page that has a next one.
//! Folder markers are hidden but still produce their directory's common prefix; the
//! reserved `.hugbucket/` tree (sidecars) is never listed.
//!
//! Continuations resume the Hub listing where it stopped: the continuation token carries
//! the last key emitted and the Hub's resume point (the query of the `next` link, or of
//! the page being read when the S3 page ended inside it). So listing N keys in S3 pages of
//! P costs about N/1000 Hub tree calls plus at most one per S3 page, not one restart per
//! page (~N²/P/1000 calls). The token is untrusted input: its resume point is only used
//! when it keeps the listing's own bucket, prefix and mode ([`Pager::resume_at`]), and
//! every entry is still filtered by prefix and by the last key, so a forged token can move
//! the listing's position but never show anything else; a token whose point is refused
//! (or that carries none) restarts the Hub listing and skips to the last key.
//!
//! Continuations that carry only a key (ListObjects V1's marker, V2's `start-after`) find
//! the resume point in a node-local table keyed by the listing and that key, filled by the
//! pages this node served (for [`RESUME_TTL`]); without one the Hub listing restarts.
//!
//! [`Pager::resume_at`]: hugbucket_upstream::Pager::resume_at

use hugbucket_upstream::TreeEntry;

use crate::Gateway;
use crate::error::{CoreError, Result};
use crate::names::{is_folder_marker, is_hidden, path_to_key};
use crate::types::{ListPage, ListRequest, ObjectMeta};

/// How long a page's resume point is kept for continuations that carry only a key.
pub(crate) const RESUME_TTL: std::time::Duration = std::time::Duration::from_secs(600);

/// A listing and the key its page ended at: `(bucket, prefix, delimiter, last key)`.
pub(crate) type ResumeKey = (String, String, Option<String>, String);

/// Longest Hub resume point a token may carry (bytes).
const MAX_RESUME_LEN: usize = 16 * 1024;

/// Continuation tokens: the hex of the last key or common prefix returned, then, when the
/// Hub listing can be resumed, `.` and the hex of the Hub's resume point.
fn encode_token(last: &str, resume: Option<&str>) -> String {
    let mut s = hex(last);
    if let Some(r) = resume {
        s.push('.');
        s.push_str(&hex(r));
    }
    s
}

fn hex(text: &str) -> String {
    let mut s = String::with_capacity(text.len() * 2);
    for b in text.bytes() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// `(last key, Hub resume point)` of a token.
fn decode_token(token: &str) -> Result<(String, Option<String>)> {
    let (last, resume) = match token.split_once('.') {
        Some((l, r)) => (l, Some(r)),
        None => (token, None),
    };
    let last = unhex(last, 4 * crate::names::MAX_KEY_LEN)?;
    let resume = resume.map(|r| unhex(r, 2 * MAX_RESUME_LEN)).transpose()?;
    Ok((last, resume))
}

fn unhex(text: &str, max_len: usize) -> Result<String> {
    let bad = || CoreError::InvalidArgument("the continuation token is not valid".into());
    if text.len() % 2 != 0 || text.len() > max_len {
        return Err(bad());
    }
    let bytes = (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2).ok_or_else(bad)?, 16).map_err(|_| bad()))
        .collect::<Result<Vec<u8>>>()?;
    String::from_utf8(bytes).map_err(|_| bad())
}

impl Gateway {
    /// One page of a listing (ListObjectsV2 / V1 semantics; see [`ListRequest`]).
    pub async fn list_objects(&self, bucket: &str, req: ListRequest) -> Result<ListPage> {
        let (g, b) = (self.clone(), bucket.to_string());
        self.on_work(async move { g.list_page(&b, req).await })
            .await
    }

    async fn list_page(&self, bucket: &str, req: ListRequest) -> Result<ListPage> {
        let id = self.bucket_id(bucket).await?;
        let (after, resume) = match &req.continuation_token {
            Some(t) => {
                let (last, resume) = decode_token(t)?;
                (Some(last), resume)
            }
            None => (req.start_after.clone(), None),
        };
        let resume_key = |last: &str| -> ResumeKey {
            (
                bucket.to_string(),
                req.prefix.clone(),
                req.delimiter.clone(),
                last.to_string(),
            )
        };
        let resume = resume.or_else(|| {
            let last = after.as_deref()?;
            self.inner.list_resume.get(&resume_key(last))
        });
        let delim = req.delimiter.clone().filter(|d| !d.is_empty());
        let prefix = req.prefix.as_str();
        let mut page = ListPage::default();
        // Nothing below the reserved tree is an object.
        if req.max_keys == 0 || (is_hidden(prefix) && prefix.contains('/')) {
            return Ok(page);
        }
        let slash_mode = delim.as_deref() == Some("/");
        let mut pager = if slash_mode {
            let dir = prefix
                .rfind('/')
                .map(|i| &prefix[..i])
                .filter(|d| !d.is_empty());
            self.inner.hub.list_tree(&id, dir, Some(false))?
        } else {
            let p = Some(prefix).filter(|p| !p.is_empty());
            self.inner.hub.list_tree(&id, p, Some(true))?
        };
        if let Some(point) = &resume {
            // Refused: the listing restarts and skips to `after` (the token is a hint).
            let _ = pager.resume_at(point);
        }
        let mut count = 0usize;
        let mut last_emitted: Option<String> = None;
        let mut resume_next: Option<String> = None;
        'pages: loop {
            let Some(entries) = pager.next_page().await.map_err(Self::bucket_err(bucket))? else {
                break;
            };
            let mut named: Vec<(String, Option<ObjectMeta>)> = Vec::with_capacity(entries.len());
            for e in entries {
                match e {
                    TreeEntry::File(f) if is_hidden(&f.path) => {}
                    TreeEntry::File(f) => {
                        // An empty `dir/.hugbucket_keep` is a folder marker; a non-empty
                        // one is the object `dir/` (listed below like any other).
                        if is_folder_marker(&f.path) && f.size == 0 {
                            // Hidden, but its folder is a common prefix when grouping.
                            // (In `/` mode the folder shows up as a directory entry.)
                            if delim.is_some() && !slash_mode {
                                named.push((path_to_key(&f.path), None));
                            }
                            continue;
                        }
                        let key = path_to_key(&f.path);
                        let meta = self.meta_of(bucket, &key, &f);
                        named.push((key, Some(meta)));
                    }
                    TreeEntry::Directory(d) if is_hidden(&d.path) => {}
                    TreeEntry::Directory(d) => {
                        named.push((format!("{}/", d.path.trim_end_matches('/')), None));
                    }
                }
            }
            named.sort_by(|a, b| a.0.cmp(&b.0));
            for (name, meta) in named {
                if !name.starts_with(prefix) {
                    continue;
                }
                if let Some(a) = &after {
                    if name.as_str() <= a.as_str() {
                        continue;
                    }
                    if let Some(d) = &delim {
                        if a.ends_with(d.as_str()) && name.starts_with(a.as_str()) {
                            continue;
                        }
                    }
                }
                // Group under the delimiter.
                let grouped = match (&delim, &meta) {
                    (Some(_), None) if slash_mode => Some(name.clone()),
                    (Some(d), _) => match name[prefix.len()..].find(d.as_str()) {
                        Some(pos) => Some(name[..prefix.len() + pos + d.len()].to_string()),
                        None if meta.is_none() => continue,
                        None => None,
                    },
                    (None, None) => continue,
                    (None, Some(_)) => None,
                };
                let emitted = match grouped {
                    Some(cp) => {
                        if last_emitted.as_deref() == Some(cp.as_str())
                            || page.common_prefixes.last() == Some(&cp)
                        {
                            continue;
                        }
                        if count == req.max_keys {
                            page.is_truncated = true;
                            resume_next = pager.current_resume_point();
                            break 'pages;
                        }
                        page.common_prefixes.push(cp.clone());
                        cp
                    }
                    None => {
                        if count == req.max_keys {
                            page.is_truncated = true;
                            resume_next = pager.current_resume_point();
                            break 'pages;
                        }
                        page.objects.push(meta.expect("objects carry metadata"));
                        name
                    }
                };
                count += 1;
                last_emitted = Some(emitted);
            }
            // Full at the end of a Hub page: the next S3 page starts at the next Hub page
            // (it may turn out empty, which S3 clients accept), no extra call to peek.
            if count == req.max_keys && pager.has_next() {
                page.is_truncated = true;
                resume_next = pager.next_resume_point();
                break;
            }
        }
        if page.is_truncated {
            if let (Some(last), Some(point)) = (&last_emitted, &resume_next) {
                self.inner
                    .list_resume
                    .insert(resume_key(last), point.clone());
            }
            page.next_continuation_token = last_emitted
                .as_deref()
                .map(|last| encode_token(last, resume_next.as_deref()));
        }
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_roundtrip_and_reject_garbage() {
        for k in ["a", "dir/sub/", "ünï code + %", ""] {
            assert_eq!(
                decode_token(&encode_token(k, None)).unwrap(),
                (k.into(), None)
            );
            let r = "recursive=true&limit=1000&cursor=61";
            assert_eq!(
                decode_token(&encode_token(k, Some(r))).unwrap(),
                (k.into(), Some(r.into()))
            );
        }
        for bad in ["zz", "abc", "ff", "61.zz", "61.6", "61.62.63"] {
            assert!(decode_token(bad).is_err(), "{bad}");
        }
    }
}
