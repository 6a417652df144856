//! [`GuardedHttpClient`]: outbound HTTP to user-chosen URLs with the SSRF rules enforced on every
//! hop. Static checks (scheme, names, IP literals) run before each request; host names are
//! resolved and checked by [`GuardedResolver`] inside the connector, which then connects to
//! exactly those addresses. Redirects are followed here, by hand, so each hop is re-checked.

use super::GuardConfig;
use super::allow::AllowList;
use super::error::GuardError;
use super::policy::check_static;
use super::resolver::{GuardedResolver, Lookup, system_lookup};
use reqwest::header::{self, HeaderMap};
use reqwest::{Method, StatusCode};
use std::net::SocketAddr;
use std::sync::Arc;
use url::{Host, Url};

/// One outbound request.
#[derive(Debug, Clone)]
pub struct GuardedRequest {
    pub method: Method,
    pub url: String,
    pub headers: HeaderMap,
    pub body: Option<Vec<u8>>,
}

impl GuardedRequest {
    pub fn get(url: impl Into<String>) -> Self {
        Self {
            method: Method::GET,
            url: url.into(),
            headers: HeaderMap::new(),
            body: None,
        }
    }

    pub fn post(url: impl Into<String>, body: impl Into<Vec<u8>>) -> Self {
        Self {
            method: Method::POST,
            url: url.into(),
            headers: HeaderMap::new(),
            body: Some(body.into()),
        }
    }
}

/// The final response, after redirects, with its body read up to the configured cap.
#[derive(Debug, Clone)]
pub struct GuardedResponse {
    pub status: u16,
    pub headers: HeaderMap,
    /// At most `max_response_bytes` bytes.
    pub body: Vec<u8>,
    /// The server sent more than `max_response_bytes`; the rest was not read.
    pub truncated: bool,
    /// The URL that produced this response (differs from the request's after redirects).
    pub url: Url,
    /// The address actually connected to, when known.
    pub remote_addr: Option<SocketAddr>,
}

/// The one way Agentry makes outbound requests to URLs chosen by users or models.
#[derive(Clone)]
pub struct GuardedHttpClient {
    http: reqwest::Client,
    allow: Arc<AllowList>,
    resolver: GuardedResolver,
    config: GuardConfig,
}

impl std::fmt::Debug for GuardedHttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedHttpClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl GuardedHttpClient {
    pub fn new(config: GuardConfig) -> Result<Self, GuardError> {
        Self::with_lookup(config, system_lookup())
    }

    /// Like [`new`](Self::new) with a substitute DNS lookup, so tests can make any name resolve
    /// to any address. The lookup's answers are checked exactly like real DNS answers.
    pub(crate) fn with_lookup(config: GuardConfig, lookup: Lookup) -> Result<Self, GuardError> {
        let allow = Arc::new(AllowList::new(&config.allow_hosts));
        let resolver = GuardedResolver::new(allow.clone(), lookup);
        let http = reqwest::Client::builder()
            // A proxy would resolve and connect to the target itself, out of our resolver's
            // reach; environment proxy variables must not switch the guard off.
            .no_proxy()
            // Every hop is re-checked, so redirects are followed by `send`, not by reqwest.
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(resolver.clone()))
            .connect_timeout(config.timeout)
            .user_agent(concat!("agentry/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| GuardError::Client(error_chain(&e)))?;
        Ok(Self {
            http,
            allow,
            resolver,
            config,
        })
    }

    pub fn config(&self) -> &GuardConfig {
        &self.config
    }

    /// The checking DNS resolver, for other clients that must obey the same rules (the model
    /// providers' streaming client): every resolved address is checked before connecting.
    pub fn dns_resolver(&self) -> Arc<dyn reqwest::dns::Resolve> {
        Arc::new(self.resolver.clone())
    }

    /// Checks a URL without touching the network: scheme, credentials, refused host names and
    /// IP-literal hosts. Host names that need DNS are only fully judged by
    /// [`check_url_resolved`](Self::check_url_resolved) or when a request is sent.
    pub fn check_url(&self, url: &str) -> Result<Url, GuardError> {
        check_static(url, &self.allow)
    }

    /// [`check_url`](Self::check_url) plus a DNS lookup whose every address is checked. Useful to
    /// validate a configured URL (e.g. a provider base URL) up front; a request still re-checks,
    /// because DNS answers can change.
    pub async fn check_url_resolved(&self, url: &str) -> Result<Url, GuardError> {
        let parsed = self.check_url(url)?;
        if let Some(Host::Domain(name)) = parsed.host() {
            self.resolver.resolve_checked(name).await?;
        }
        Ok(parsed)
    }

    /// Sends `request`, following up to `max_redirects` redirects, within `timeout` overall, and
    /// reads at most `max_response_bytes` of the final body.
    pub async fn send(&self, request: GuardedRequest) -> Result<GuardedResponse, GuardError> {
        tokio::time::timeout(self.config.timeout, self.send_following_redirects(request))
            .await
            .map_err(|_| GuardError::Timeout(self.config.timeout))?
    }

    async fn send_following_redirects(
        &self,
        request: GuardedRequest,
    ) -> Result<GuardedResponse, GuardError> {
        let GuardedRequest {
            mut method,
            url,
            mut headers,
            mut body,
        } = request;
        let mut url = self.check_url(&url)?;
        let mut redirects = 0;
        loop {
            let mut builder = self
                .http
                .request(method.clone(), url.clone())
                .headers(headers.clone());
            if let Some(bytes) = &body {
                builder = builder.body(bytes.clone());
            }
            let mut response = builder.send().await.map_err(|e| self.request_error(e))?;
            let status = response.status();

            if let Some(next) = redirect_target(&url, status, response.headers())? {
                if redirects >= self.config.max_redirects {
                    return Err(GuardError::TooManyRedirects {
                        max: self.config.max_redirects,
                        url: next.to_string(),
                    });
                }
                redirects += 1;
                let next = self.check_url(next.as_str())?;
                if changes_to_get(status, &method) {
                    method = Method::GET;
                    body = None;
                    headers.remove(header::CONTENT_TYPE);
                    headers.remove(header::CONTENT_LENGTH);
                }
                if next.origin() != url.origin() {
                    // Credentials meant for one origin must not be replayed to another.
                    for name in [
                        header::AUTHORIZATION,
                        header::COOKIE,
                        header::PROXY_AUTHORIZATION,
                    ] {
                        headers.remove(name);
                    }
                }
                tracing::debug!(from = %url, to = %next, status = status.as_u16(), "following redirect");
                url = next;
                continue;
            }

            let remote_addr = response.remote_addr();
            let response_headers = response.headers().clone();
            let (bytes, truncated) = self.read_capped(&mut response).await?;
            return Ok(GuardedResponse {
                status: status.as_u16(),
                headers: response_headers,
                body: bytes,
                truncated,
                url,
                remote_addr,
            });
        }
    }

    /// Reads the body until it ends or the cap is reached; past the cap nothing more is read.
    async fn read_capped(
        &self,
        response: &mut reqwest::Response,
    ) -> Result<(Vec<u8>, bool), GuardError> {
        let cap = self.config.max_response_bytes;
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.request_error(e))? {
            let room = cap.saturating_sub(body.len());
            if chunk.len() > room {
                body.extend_from_slice(&chunk[..room]);
                return Ok((body, true));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((body, false))
    }

    fn request_error(&self, error: reqwest::Error) -> GuardError {
        // A refusal by our resolver reaches us wrapped in reqwest and hyper errors; dig it out so
        // the caller sees `blocked_address` rather than a generic connection failure.
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
        while let Some(current) = source {
            if let Some(guard) = current.downcast_ref::<GuardError>() {
                return guard.clone();
            }
            source = current.source();
        }
        if error.is_timeout() {
            return GuardError::Timeout(self.config.timeout);
        }
        GuardError::Request(error_chain(&error))
    }
}

/// The next URL if this response is a redirect we follow, resolved against the current URL.
fn redirect_target(
    current: &Url,
    status: StatusCode,
    headers: &HeaderMap,
) -> Result<Option<Url>, GuardError> {
    if !matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308) {
        return Ok(None);
    }
    let Some(location) = headers.get(header::LOCATION) else {
        // A redirect status without a Location is just a response.
        return Ok(None);
    };
    let invalid = |reason: String| GuardError::InvalidUrl {
        url: String::from_utf8_lossy(location.as_bytes()).into_owned(),
        reason,
    };
    let location = location
        .to_str()
        .map_err(|_| invalid("the redirect Location is not valid text".into()))?;
    current
        .join(location)
        .map(Some)
        .map_err(|e| invalid(format!("bad redirect Location: {e}")))
}

/// Browsers and reqwest turn POST into GET on 301/302, and everything but HEAD into GET on 303;
/// 307/308 keep method and body.
fn changes_to_get(status: StatusCode, method: &Method) -> bool {
    match status.as_u16() {
        301 | 302 => *method == Method::POST,
        303 => *method != Method::HEAD,
        _ => false,
    }
}

/// `error: cause: cause…`, skipping causes already contained in the text so far.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
