//! ListObjects on top of the Hub tree API, with the prefix pushed down.
//!
//! With the `/` delimiter only the directory holding the prefix is listed (non-recursive
//! tree); without a delimiter, a recursive tree listing of the prefix. Pages of the Hub are
//! consumed in order and the listing stops as soon as one entry past `max_keys` is seen, so
//! a page of a huge bucket costs about one page of Hub listing plus the entries skipped
//! before the continuation point. Folder markers are hidden but still produce their
//! directory's common prefix; the reserved `.hugbucket/` tree (sidecars) is never listed.

use hugbucket_upstream::TreeEntry;

use crate::Gateway;
use crate::error::{CoreError, Result};
use crate::names::{is_folder_marker, is_hidden, path_to_key};
use crate::types::{ListPage, ListRequest, ObjectMeta};

/// Continuation tokens are the hex of the last key or common prefix returned.
fn encode_token(last: &str) -> String {
    let mut s = String::with_capacity(last.len() * 2);
    for b in last.bytes() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn decode_token(token: &str) -> Result<String> {
    let bad = || CoreError::InvalidArgument("the continuation token is not valid".into());
    if token.len() % 2 != 0 || token.len() > 4 * crate::names::MAX_KEY_LEN {
        return Err(bad());
    }
    let bytes = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(token.get(i..i + 2).ok_or_else(bad)?, 16).map_err(|_| bad()))
        .collect::<Result<Vec<u8>>>()?;
    String::from_utf8(bytes).map_err(|_| bad())
}

impl Gateway {
    /// One page of a listing (ListObjectsV2 / V1 semantics; see [`ListRequest`]).
    pub async fn list_objects(&self, bucket: &str, req: ListRequest) -> Result<ListPage> {
        let id = self.bucket_id(bucket).await?;
        let after = match &req.continuation_token {
            Some(t) => Some(decode_token(t)?),
            None => req.start_after.clone(),
        };
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
        let mut count = 0usize;
        let mut last_emitted: Option<String> = None;
        'pages: while let Some(entries) =
            pager.next_page().await.map_err(Self::bucket_err(bucket))?
        {
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
                            break 'pages;
                        }
                        page.common_prefixes.push(cp.clone());
                        cp
                    }
                    None => {
                        if count == req.max_keys {
                            page.is_truncated = true;
                            break 'pages;
                        }
                        page.objects.push(meta.expect("objects carry metadata"));
                        name
                    }
                };
                count += 1;
                last_emitted = Some(emitted);
            }
        }
        if page.is_truncated {
            page.next_continuation_token = last_emitted.as_deref().map(encode_token);
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
            assert_eq!(decode_token(&encode_token(k)).unwrap(), k);
        }
        for bad in ["zz", "abc", "ff"] {
            assert!(decode_token(bad).is_err(), "{bad}");
        }
    }
}
