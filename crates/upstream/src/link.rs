//! `Link` response header parsing (RFC 8288, GitHub-style pagination).

use http::HeaderMap;

/// One link of a `Link` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkEntry {
    /// The URL between `<` and `>`, verbatim.
    pub url: String,
    /// The space-separated values of the `rel` parameter.
    pub rels: Vec<String>,
}

/// Parses one `Link` header value, which may hold several comma-separated links.
/// Commas inside `<...>` or inside quoted parameter values do not split links. Malformed
/// parts are skipped.
pub fn parse_link_value(value: &str) -> Vec<LinkEntry> {
    let mut out = Vec::new();
    let bytes = value.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        // Find the start of the next link.
        let Some(lt) = value[i..].find('<').map(|p| p + i) else {
            break;
        };
        let Some(gt) = value[lt + 1..].find('>').map(|p| p + lt + 1) else {
            break;
        };
        let url = value[lt + 1..gt].trim().to_string();
        // Parameters run until a comma outside quotes.
        let mut j = gt + 1;
        let mut in_quotes = false;
        while j < bytes.len() {
            match bytes[j] {
                b'"' => in_quotes = !in_quotes,
                b'\\' if in_quotes => j += 1,
                b',' if !in_quotes => break,
                _ => {}
            }
            j += 1;
        }
        let params = &value[gt + 1..j.min(bytes.len())];
        let mut rels = Vec::new();
        for param in split_params(params) {
            let Some((name, val)) = param.split_once('=') else {
                continue;
            };
            if name.trim().eq_ignore_ascii_case("rel") {
                let val = val.trim().trim_matches('"');
                rels.extend(val.split_ascii_whitespace().map(|s| s.to_ascii_lowercase()));
            }
        }
        out.push(LinkEntry { url, rels });
        i = j + 1;
    }
    out
}

/// Splits `; a=b; c="d;e"` into its parameters, honouring quotes.
fn split_params(params: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut in_quotes = false;
    let mut start = 0;
    let bytes = params.as_bytes();
    for (k, &b) in bytes.iter().enumerate() {
        match b {
            b'"' => in_quotes = !in_quotes,
            b';' if !in_quotes => {
                out.push(params[start..k].trim());
                start = k + 1;
            }
            _ => {}
        }
    }
    out.push(params[start..].trim());
    out.retain(|p| !p.is_empty());
    out
}

/// All links of all `Link` headers of a response.
pub fn parse_links(headers: &HeaderMap) -> Vec<LinkEntry> {
    headers
        .get_all(http::header::LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(parse_link_value)
        .collect()
}

/// The URL of the first link with relation `rel` (case-insensitive), verbatim.
pub fn find_rel(headers: &HeaderMap, rel: &str) -> Option<String> {
    parse_links(headers)
        .into_iter()
        .find(|l| l.rels.iter().any(|r| r.eq_ignore_ascii_case(rel)))
        .map(|l| l.url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn single_next_link() {
        let v = r#"<http://127.0.0.1:40769/api/buckets/u/b/tree?cursor=2>; rel="next""#;
        let links = parse_link_value(v);
        assert_eq!(
            links,
            vec![LinkEntry {
                url: "http://127.0.0.1:40769/api/buckets/u/b/tree?cursor=2".into(),
                rels: vec!["next".into()],
            }]
        );
    }

    #[test]
    fn several_links_commas_in_urls_and_quotes() {
        let v = r#"<https://h/x?a=1,2>; rel="prev"; title="a, b", <https://h/y?c=3>; rel=next , <https://h/z>; rel="xet-auth other""#;
        let links = parse_link_value(v);
        assert_eq!(links.len(), 3);
        assert_eq!(links[0].url, "https://h/x?a=1,2");
        assert_eq!(links[0].rels, vec!["prev"]);
        assert_eq!(links[1].url, "https://h/y?c=3");
        assert_eq!(links[1].rels, vec!["next"]);
        assert_eq!(links[2].rels, vec!["xet-auth", "other"]);
    }

    #[test]
    fn find_rel_over_multiple_header_lines() {
        let mut h = HeaderMap::new();
        h.append(
            http::header::LINK,
            HeaderValue::from_static(
                r#"<http://hub/api/buckets/u/b/xet-read-token>; rel="xet-auth""#,
            ),
        );
        h.append(
            http::header::LINK,
            HeaderValue::from_static(
                r#"<http://cas/v1/reconstructions/abc>; rel="xet-reconstruction-info""#,
            ),
        );
        assert_eq!(
            find_rel(&h, "xet-auth").as_deref(),
            Some("http://hub/api/buckets/u/b/xet-read-token")
        );
        assert_eq!(
            find_rel(&h, "XET-RECONSTRUCTION-INFO").as_deref(),
            Some("http://cas/v1/reconstructions/abc")
        );
        assert_eq!(find_rel(&h, "next"), None);
    }

    #[test]
    fn malformed_values_do_not_panic() {
        for v in [
            "",
            "<",
            ">",
            "<a",
            "no link",
            r#"<a>; rel="unterminated"#,
            ",,,",
            "<a>;;;",
        ] {
            let _ = parse_link_value(v);
        }
        assert!(parse_link_value("<a>").iter().all(|l| l.rels.is_empty()));
    }
}
