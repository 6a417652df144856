//! The checks that need no network: scheme, credentials, refused host names and IP-literal hosts.
//! IP literals are judged here because they never reach the resolver (the connector uses them
//! as they are), so this is their only checkpoint.

use super::allow::{AllowList, normalize_host};
use super::error::{BlockedBy, GuardError};
use super::ip::blocked_reason;
use std::net::IpAddr;
use url::{Host, Url};

/// Host names refused by name (unless allow-listed), whatever DNS says about them: they always
/// mean "this machine" or the cloud metadata service.
const BLOCKED_NAMES: &[(&str, &str)] = &[
    ("localhost", "the local machine (localhost)"),
    (
        "metadata.google.internal",
        "cloud metadata endpoint metadata.google.internal",
    ),
    ("metadata", "cloud metadata endpoint (metadata)"),
];

/// Parses `raw` and applies every check that does not need DNS.
pub(crate) fn check_static(raw: &str, allow: &AllowList) -> Result<Url, GuardError> {
    let invalid = |reason: String| GuardError::InvalidUrl {
        url: raw.to_string(),
        reason,
    };
    let url = Url::parse(raw.trim()).map_err(|e| invalid(e.to_string()))?;
    match url.scheme() {
        "http" | "https" => {}
        other => {
            return Err(invalid(format!(
                "the scheme '{other}' is not allowed; only http and https are"
            )));
        }
    }
    // The `url` crate has already normalised numeric hosts (`127.1`, `2130706433`, `0x7f000001`,
    // `0177.0.0.1`) to the IPv4 address they denote, the same way the connector will read them.
    match url.host() {
        None => return Err(invalid("the URL has no host".into())),
        Some(Host::Domain(name)) => check_name(name, allow)?,
        Some(Host::Ipv4(ip)) => check_ip(&ip.to_string(), IpAddr::V4(ip), allow)?,
        Some(Host::Ipv6(ip)) => check_ip(&format!("[{ip}]"), IpAddr::V6(ip), allow)?,
    }
    // Checked after the host so `http://evil@127.0.0.1/` reports the real target. Credentials in
    // URLs leak into logs and confuse readers about the destination; use a header instead.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "credentials in the URL are not allowed; send an Authorization header instead".into(),
        ));
    }
    Ok(url)
}

/// Refuses a host name that always points inside, unless the operator allow-listed it.
pub(crate) fn check_name(name: &str, allow: &AllowList) -> Result<(), GuardError> {
    let name = normalize_host(name);
    if allow.allows_host(&name) {
        return Ok(());
    }
    let refused = BLOCKED_NAMES
        .iter()
        .find(|(blocked, _)| name == *blocked)
        .map(|(_, why)| *why)
        .or_else(|| {
            name.ends_with(".localhost")
                .then_some("the local machine (*.localhost)")
        });
    match refused {
        Some(why) => Err(GuardError::Blocked {
            host: name,
            address: None,
            reason: BlockedBy::Name(why),
        }),
        None => Ok(()),
    }
}

/// Refuses an address in a special-purpose range, unless the operator allow-listed it (by the
/// host as written in the URL, or by the address).
pub(crate) fn check_ip(host: &str, ip: IpAddr, allow: &AllowList) -> Result<(), GuardError> {
    if allow.allows_host(host) || allow.allows_ip(ip) {
        return Ok(());
    }
    match blocked_reason(ip) {
        Some(reason) => Err(GuardError::Blocked {
            host: host.to_string(),
            address: Some(ip),
            reason: BlockedBy::Address(reason),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(url: &str) -> Result<Url, GuardError> {
        check_static(url, &AllowList::default())
    }

    #[test]
    fn public_http_urls_pass() {
        for url in [
            "http://example.com/",
            "https://example.com:8443/path?q=1",
            "HTTPS://EXAMPLE.com",
            "http://8.8.8.8/",
            "http://[2606:4700:4700::1111]/",
        ] {
            assert!(check(url).is_ok(), "{url}");
        }
    }

    #[test]
    fn other_schemes_and_malformed_urls_are_invalid() {
        for url in [
            "file:///etc/passwd",
            "gopher://example.com/",
            "ftp://example.com/",
            "dict://example.com:11211/",
            "data:text/plain,hello",
            "javascript:alert(1)",
            "example.com",
            "http://",
            "",
        ] {
            let err = check(url).expect_err(url);
            assert_eq!(err.code(), "invalid_url", "{url}: {err}");
        }
    }

    #[test]
    fn numeric_host_spellings_are_normalised_before_the_check() {
        for url in [
            "http://127.1/",
            "http://2130706433/",
            "http://0177.0.0.1/",
            "http://0x7f000001/",
            "http://0x7f.0.0.1/",
        ] {
            let err = check(url).expect_err(url);
            assert!(
                matches!(&err, GuardError::Blocked { address: Some(ip), .. } if ip.to_string() == "127.0.0.1"),
                "{url}: {err}"
            );
        }
    }

    #[test]
    fn names_that_always_point_inside_are_refused() {
        for url in [
            "http://localhost/",
            "http://LOCALHOST./",
            "http://app.localhost/",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://metadata/",
        ] {
            let err = check(url).expect_err(url);
            assert_eq!(err.code(), "blocked_address", "{url}: {err}");
        }
        assert!(check("http://localhost.example.com/").is_ok());
    }

    #[test]
    fn userinfo_is_judged_by_the_real_host_then_refused() {
        let err = check("http://evil@127.0.0.1/").expect_err("blocked");
        assert_eq!(err.code(), "blocked_address");
        let err = check("http://127.0.0.1@example.com/").expect_err("credentials");
        assert_eq!(err.code(), "invalid_url");
        let err = check("https://user:pw@example.com/").expect_err("credentials");
        assert_eq!(err.code(), "invalid_url");
    }

    #[test]
    fn allow_list_overrides_address_and_name_rules() {
        let allow = AllowList::new(&["127.0.0.1".to_string(), "localhost".to_string()]);
        assert!(check_static("http://127.0.0.1:8080/", &allow).is_ok());
        assert!(check_static("http://127.1:8080/", &allow).is_ok());
        assert!(check_static("http://localhost/", &allow).is_ok());
        assert!(check_static("http://127.0.0.2/", &allow).is_err());
        assert!(check_static("http://[::1]/", &allow).is_err());
    }

    #[test]
    fn blocked_message_names_the_range_and_the_allow_list() {
        let err = check("http://169.254.169.254/latest/meta-data/").expect_err("blocked");
        let message = err.to_string();
        assert!(message.contains("169.254.169.254"), "{message}");
        assert!(message.contains("metadata"), "{message}");
        assert!(message.contains("allow-list"), "{message}");
    }
}
