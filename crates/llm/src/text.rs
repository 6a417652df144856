//! Making provider-supplied text fit for error messages: short, single-line, tag-free, and
//! without our API key (some providers echo the key they were sent).

/// The longest provider message kept in an error.
pub(crate) const MAX_MESSAGE_CHARS: usize = 300;

/// Collapses whitespace, summarises HTML (error pages from proxies and load balancers) and
/// truncates to [`MAX_MESSAGE_CHARS`].
pub(crate) fn tidy(text: &str) -> String {
    let text = if looks_like_html(text) {
        html_summary(text)
    } else {
        text.to_string()
    };
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    truncate(&collapsed, MAX_MESSAGE_CHARS)
}

/// The longest text kept from an HTML page without a title: error pages put the gist first,
/// and the rest is navigation, footers and scripts.
const MAX_HTML_TEXT_CHARS: usize = 160;

fn looks_like_html(text: &str) -> bool {
    let start = text.trim_start();
    start.starts_with('<') || start.get(..512).unwrap_or(start).contains("<html")
}

/// What an HTML error page says, in a few words: its `<title>` when it has one (nginx,
/// Cloudflare and most gateways put the status there), otherwise its visible text without
/// scripts and styles, cut short.
fn html_summary(html: &str) -> String {
    if let Some(title) = element_text(html, "title").filter(|t| !t.trim().is_empty()) {
        return strip_tags(&title);
    }
    let mut visible = html.to_string();
    for element in ["script", "style", "head"] {
        visible = remove_elements(&visible, element);
    }
    let text = strip_tags(&visible);
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    truncate(&collapsed, MAX_HTML_TEXT_CHARS)
}

/// Byte offset of `needle` in `haystack`, ignoring ASCII case. Offsets are valid in
/// `haystack` because ASCII lowercasing keeps every byte's position.
fn find_ascii_ci(haystack: &str, needle: &str, from: usize) -> Option<usize> {
    let lower = haystack.get(from..)?.to_ascii_lowercase();
    lower.find(needle).map(|at| at + from)
}

/// The raw content of the first `<name ...>...</name>` element.
fn element_text(html: &str, name: &str) -> Option<String> {
    let open = find_ascii_ci(html, &format!("<{name}"), 0)?;
    let content_start = html.get(open..)?.find('>')? + open + 1;
    let close = find_ascii_ci(html, &format!("</{name}"), content_start)?;
    html.get(content_start..close).map(str::to_string)
}

/// Removes every `<name ...>...</name>` element, content included.
fn remove_elements(html: &str, name: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(open) = find_ascii_ci(rest, &format!("<{name}"), 0) {
        out.push_str(&rest[..open]);
        let close_tag = format!("</{name}");
        match find_ascii_ci(rest, &close_tag, open) {
            Some(close) => {
                let end = rest[close..]
                    .find('>')
                    .map_or(rest.len(), |at| close + at + 1);
                rest = &rest[end..];
            }
            // Unclosed: drop the remainder rather than show script text.
            None => return out,
        }
    }
    out.push_str(rest);
    out
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
        assert_eq!(tidy(page), "502 Bad Gateway");
        let untitled = "<html><body><h1>503</h1><p>Service   Unavailable</p></body></html>";
        assert_eq!(tidy(untitled), "503 Service Unavailable");
    }

    #[test]
    fn long_pages_become_short_messages() {
        let script = "var x = 1;".repeat(500);
        let page = format!(
            "<!DOCTYPE html><html><head><style>body{{color:red}}</style><script>{script}</script></head>\
             <body><div>Attention Required! Cloudflare blocked this request.</div>{}</body></html>",
            "<p>filler text</p>".repeat(200)
        );
        let message = tidy(&page);
        assert!(
            message.starts_with("Attention Required! Cloudflare"),
            "{message}"
        );
        assert!(!message.contains("var x"), "{message}");
        assert!(!message.contains('<'), "{message}");
        assert!(
            message.chars().count() <= MAX_HTML_TEXT_CHARS + 1,
            "{message}"
        );
        let titled = format!(
            "<html><head><title>Just a moment...</title><script>{script}</script></head></html>"
        );
        assert_eq!(tidy(&titled), "Just a moment...");
        // Non-ASCII text around tags keeps its boundaries.
        assert_eq!(tidy("<p>Überlastet – später</p>"), "Überlastet – später");
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
