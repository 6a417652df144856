//! Cross-origin request protection for cookie-authenticated endpoints, without tokens.
//!
//! Modelled on Go 1.25's `http.CrossOriginProtection`: browsers tell us where a request comes
//! from (`Sec-Fetch-Site`, or `Origin` in browsers from before 2023), and a state-changing
//! request from another site is refused. Requests with neither header are not from a browser
//! (curl, API clients with bearer keys) and cannot carry a victim's cookies, so they pass.
//!
//! `host` is the request's `Host` header (`:authority` in HTTP/2). Behind a proxy that rewrites
//! it, list the public origin in `trusted_origins`.

/// Why a request was refused. The message is for the person (or operator) who sees it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrfRejection {
    /// `Sec-Fetch-Site` says another site sent the request.
    #[error(
        "This request was sent by another website (Sec-Fetch-Site: {sec_fetch_site}) and was refused to protect your account. Open this site directly and try again. If that website is yours, add its origin to the trusted origins."
    )]
    CrossSite { sec_fetch_site: String },
    /// No `Sec-Fetch-Site`, and `Origin` does not match `Host`.
    #[error(
        "This request came from {origin}, which is not this site ({host}), and was refused to protect your account. Open this site directly and try again. If the server sits behind a proxy that changes the Host header, add the public origin to the trusted origins."
    )]
    OriginMismatch { origin: String, host: String },
    /// No `Sec-Fetch-Site`, and `Origin: null` (sandboxed frames, `file:` pages, redirects
    /// across sites): nothing says where the request came from.
    #[error(
        "This request came from a page without an origin (a sandboxed frame or a local file) and was refused to protect your account. Open this site directly and try again."
    )]
    NullOrigin,
}

impl CsrfRejection {
    /// Stable identifier of the variant; never changes once published.
    pub fn code(&self) -> &'static str {
        match self {
            Self::CrossSite { .. } => "cross_site_request",
            Self::OriginMismatch { .. } => "origin_mismatch",
            Self::NullOrigin => "null_origin",
        }
    }
}

/// Decides whether a cookie-authenticated request may proceed.
///
/// - `GET`, `HEAD`, `OPTIONS` pass: they must not change state, so a forged one does no harm.
///   Methods are case-sensitive (RFC 9110), so `get` is checked like any unsafe method.
/// - `Sec-Fetch-Site: same-origin` or `none` (typed URL, bookmark) passes; any other value
///   passes only for a trusted `Origin`.
/// - Without `Sec-Fetch-Site`, `Origin`'s `host[:port]` must equal `Host` (the scheme is not
///   compared: `Host` has none; HSTS covers http→https); otherwise only a trusted `Origin`
///   passes. `Origin: null` is refused here (it names no site to compare).
/// - Neither header: not a browser, passes.
///
/// `trusted_origins` are exact `scheme://host[:port]` strings (compared ASCII
/// case-insensitively, as hosts are).
pub fn check(
    method: &str,
    sec_fetch_site: Option<&str>,
    origin: Option<&str>,
    host: Option<&str>,
    trusted_origins: &[String],
) -> Result<(), CsrfRejection> {
    if matches!(method, "GET" | "HEAD" | "OPTIONS") {
        return Ok(());
    }
    // An empty header value is treated as absent, as Go's `Header.Get` does.
    let sec_fetch_site = sec_fetch_site.filter(|v| !v.is_empty());
    let origin = origin.filter(|v| !v.is_empty());

    // "null" is what every opaque origin serializes to, so it can never identify a trusted one.
    let trusted = origin
        .is_some_and(|o| o != "null" && trusted_origins.iter().any(|t| t.eq_ignore_ascii_case(o)));

    if let Some(site) = sec_fetch_site {
        return match site {
            "same-origin" | "none" => Ok(()),
            _ if trusted => Ok(()),
            _ => Err(CsrfRejection::CrossSite {
                sec_fetch_site: site.to_owned(),
            }),
        };
    }

    let Some(origin) = origin else {
        return Ok(());
    };
    // Checked only here, not before `Sec-Fetch-Site`: a same-origin POST from a page with
    // `Referrer-Policy: no-referrer` carries `Origin: null`, and the browser's
    // `Sec-Fetch-Site: same-origin` is the better witness for it.
    if origin == "null" {
        return Err(CsrfRejection::NullOrigin);
    }
    let host = host.unwrap_or("");
    let same_host =
        origin_authority(origin).is_some_and(|authority| authority.eq_ignore_ascii_case(host));
    if same_host || trusted {
        return Ok(());
    }
    Err(CsrfRejection::OriginMismatch {
        origin: origin.to_owned(),
        host: host.to_owned(),
    })
}

/// The `host[:port]` of a serialized origin (`scheme://host[:port]`). Anything after the
/// `://` is returned as is: a value with a path or userinfo then simply never equals a `Host`
/// header, so it needs no separate validation.
fn origin_authority(origin: &str) -> Option<&str> {
    origin
        .split_once("://")
        .map(|(_, authority)| authority)
        .filter(|authority| !authority.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: Option<&str> = Some("agentry.example.com");

    fn trusted() -> Vec<String> {
        vec!["https://admin.example.com".to_owned()]
    }

    /// (name, method, Sec-Fetch-Site, Origin, Host, expected code or None for pass)
    type Case = (
        &'static str,
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
        Option<&'static str>,
        Option<&'static str>,
    );

    #[rustfmt::skip] // One case per line reads as a table; rustfmt would spread each over 8.
    const CASES: &[Case] = &[
        // Safe methods pass whatever the headers say.
        ("GET cross-site", "GET", Some("cross-site"), Some("https://evil.test"), HOST, None),
        ("HEAD cross-site", "HEAD", Some("cross-site"), Some("https://evil.test"), HOST, None),
        ("OPTIONS cross-site", "OPTIONS", Some("cross-site"), None, HOST, None),
        ("GET null origin", "GET", None, Some("null"), HOST, None),
        // Methods are case-sensitive: lowercase "get" is not the safe method.
        ("lowercase get", "get", Some("cross-site"), None, HOST, Some("cross_site_request")),
        // Sec-Fetch-Site present.
        ("POST same-origin", "POST", Some("same-origin"), Some("https://agentry.example.com"), HOST, None),
        ("POST none", "POST", Some("none"), None, HOST, None),
        ("POST same-origin, foreign Origin", "POST", Some("same-origin"), Some("https://evil.test"), HOST, None),
        ("POST cross-site", "POST", Some("cross-site"), Some("https://evil.test"), HOST, Some("cross_site_request")),
        ("DELETE same-site", "DELETE", Some("same-site"), Some("https://other.example.com"), HOST, Some("cross_site_request")),
        ("PUT cross-site no Origin", "PUT", Some("cross-site"), None, HOST, Some("cross_site_request")),
        ("PATCH unknown value", "PATCH", Some("bogus"), None, HOST, Some("cross_site_request")),
        ("values are case-sensitive", "POST", Some("Same-Origin"), None, HOST, Some("cross_site_request")),
        ("cross-site from trusted origin", "POST", Some("cross-site"), Some("https://admin.example.com"), HOST, None),
        ("same-site from trusted origin", "POST", Some("same-site"), Some("https://admin.example.com"), HOST, None),
        ("trusted match ignores case", "POST", Some("cross-site"), Some("HTTPS://Admin.Example.com"), HOST, None),
        ("trusted needs exact origin", "POST", Some("cross-site"), Some("https://admin.example.com:8443"), HOST, Some("cross_site_request")),
        ("empty Sec-Fetch-Site is absent", "POST", Some(""), Some("https://evil.test"), HOST, Some("origin_mismatch")),
        // No Sec-Fetch-Site: Origin vs Host.
        ("Origin matches Host", "POST", None, Some("https://agentry.example.com"), HOST, None),
        ("scheme is ignored", "POST", None, Some("http://agentry.example.com"), HOST, None),
        ("host compare ignores case", "POST", None, Some("https://Agentry.Example.COM"), HOST, None),
        ("Origin with port matches Host with port", "POST", None, Some("http://localhost:8080"), Some("localhost:8080"), None),
        ("port differs", "POST", None, Some("http://localhost:8081"), Some("localhost:8080"), Some("origin_mismatch")),
        ("default port not implied", "POST", None, Some("https://agentry.example.com:443"), HOST, Some("origin_mismatch")),
        ("foreign Origin", "POST", None, Some("https://evil.test"), HOST, Some("origin_mismatch")),
        ("suffix is not a match", "POST", None, Some("https://evil.agentry.example.com"), HOST, Some("origin_mismatch")),
        ("Origin with path is malformed", "POST", None, Some("https://agentry.example.com/x"), HOST, Some("origin_mismatch")),
        ("Origin with userinfo is malformed", "POST", None, Some("https://u@agentry.example.com"), HOST, Some("origin_mismatch")),
        ("Origin without scheme is malformed", "POST", None, Some("agentry.example.com"), HOST, Some("origin_mismatch")),
        ("Origin without host is malformed", "POST", None, Some("https://"), Some(""), Some("origin_mismatch")),
        ("Origin but no Host", "POST", None, Some("https://agentry.example.com"), None, Some("origin_mismatch")),
        ("foreign but trusted Origin", "POST", None, Some("https://admin.example.com"), HOST, None),
        ("null Origin", "POST", None, Some("null"), HOST, Some("null_origin")),
        ("null Origin with cross-site", "POST", Some("cross-site"), Some("null"), HOST, Some("cross_site_request")),
        ("null Origin with same-origin (no-referrer page)", "POST", Some("same-origin"), Some("null"), HOST, None),
        // Neither header: not a browser.
        ("no headers", "POST", None, None, HOST, None),
        ("no headers, no Host", "DELETE", None, None, None, None),
        ("empty Origin is absent", "POST", None, Some(""), HOST, None),
    ];

    #[test]
    fn table() {
        let trusted = trusted();
        for &(name, method, site, origin, host, expected) in CASES {
            let got = check(method, site, origin, host, &trusted);
            assert_eq!(
                got.as_ref().err().map(CsrfRejection::code),
                expected,
                "{name}: {got:?}"
            );
        }
    }

    #[test]
    fn null_origin_is_refused_even_if_listed_as_trusted() {
        let trusted = vec!["null".to_owned()];
        assert_eq!(
            check("POST", None, Some("null"), HOST, &trusted),
            Err(CsrfRejection::NullOrigin)
        );
        assert_eq!(
            check("POST", Some("cross-site"), Some("null"), HOST, &trusted),
            Err(CsrfRejection::CrossSite {
                sec_fetch_site: "cross-site".into()
            })
        );
    }

    #[test]
    fn rejections_say_what_happened_and_what_to_do() {
        let err = check("POST", Some("cross-site"), None, HOST, &[]).unwrap_err();
        assert_eq!(
            err,
            CsrfRejection::CrossSite {
                sec_fetch_site: "cross-site".into()
            }
        );
        let msg = err.to_string();
        assert!(msg.contains("another website"), "{msg}");
        assert!(msg.contains("trusted origins"), "{msg}");

        let err = check("POST", None, Some("https://evil.test"), HOST, &[]).unwrap_err();
        assert_eq!(
            err,
            CsrfRejection::OriginMismatch {
                origin: "https://evil.test".into(),
                host: "agentry.example.com".into()
            }
        );
        let msg = err.to_string();
        assert!(msg.contains("https://evil.test"), "{msg}");
        assert!(msg.contains("agentry.example.com"), "{msg}");
        assert!(msg.contains("proxy"), "{msg}");

        let msg = CsrfRejection::NullOrigin.to_string();
        assert!(msg.contains("Open this site directly"), "{msg}");
    }
}
