//! Making provider-supplied text fit for error messages: short, single-line, tag-free, and
//! without our API key (some providers echo the key they were sent).

/// The longest provider message kept in an error.
pub(crate) const MAX_MESSAGE_CHARS: usize = 300;

/// Collapses whitespace, strips HTML tags (error pages from proxies and load balancers) and
/// truncates to [`MAX_MESSAGE_CHARS`].
pub(crate) fn tidy(text: &str) -> String {
    let text = if text.trim_start().starts_with('<') {
        strip_tags(text)
    } else {
        text.to_string()
    };
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    truncate(&collapsed, MAX_MESSAGE_CHARS)
}

/// Cuts at a character boundary and marks the cut.
pub(crate) fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// Replaces every occurrence of the secret. Runs on the final message, so nothing composed
/// earlier can leak it.
pub(crate) fn redact(text: &str, secret: Option<&str>) -> String {
    match secret {
        Some(secret) if !secret.is_empty() => text.replace(secret, "[redacted]"),
        _ => text.to_string(),
    }
}

fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' if in_tag => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tidies_html_pages() {
        let page = "<html>\n<head><title>502 Bad Gateway</title></head>\n<body><h1>502 Bad Gateway</h1><hr>nginx</body></html>";
        assert_eq!(tidy(page), "502 Bad Gateway 502 Bad Gateway nginx");
    }

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "hé…");
        assert_eq!(truncate("hi", 2), "hi");
        let long = "é".repeat(1000);
        assert_eq!(tidy(&long).chars().count(), MAX_MESSAGE_CHARS + 1);
    }

    #[test]
    fn redacts_the_secret() {
        assert_eq!(
            redact("key sk-1 bad sk-1", Some("sk-1")),
            "key [redacted] bad [redacted]"
        );
        assert_eq!(redact("text", Some("")), "text");
        assert_eq!(redact("text", None), "text");
    }
}
