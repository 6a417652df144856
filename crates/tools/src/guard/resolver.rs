//! The DNS resolver the guarded client connects through. It looks the host up once, refuses the
//! whole answer if ANY address is refused, and hands exactly the checked addresses to the
//! connector. There is no second lookup between check and connect, so DNS rebinding cannot slip
//! a private address in.

use super::allow::{AllowList, normalize_host};
use super::error::GuardError;
use super::policy::{check_ip, check_name};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

type LookupFuture = Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send>>;

/// Turns a host name into addresses. The system resolver in production; tests substitute a
/// fixed table so they can make a name resolve to anything.
pub(crate) type Lookup = Arc<dyn Fn(String) -> LookupFuture + Send + Sync>;

pub(crate) fn system_lookup() -> Lookup {
    Arc::new(|host: String| {
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((host.as_str(), 0)).await?;
            Ok(addrs.map(|a| a.ip()).collect())
        })
    })
}

#[derive(Clone)]
pub(crate) struct GuardedResolver {
    allow: Arc<AllowList>,
    lookup: Lookup,
}

impl GuardedResolver {
    pub(crate) fn new(allow: Arc<AllowList>, lookup: Lookup) -> Self {
        Self { allow, lookup }
    }

    /// Resolves `host` and checks every address it got.
    pub(crate) async fn resolve_checked(&self, host: &str) -> Result<Vec<IpAddr>, GuardError> {
        let host = normalize_host(host);
        check_name(&host, &self.allow)?;
        let addresses = (self.lookup)(host.clone())
            .await
            .map_err(|e| GuardError::Resolve {
                host: host.clone(),
                message: e.to_string(),
            })?;
        if addresses.is_empty() {
            return Err(GuardError::Resolve {
                host,
                message: "no addresses found".into(),
            });
        }
        for ip in &addresses {
            check_ip(&host, *ip, &self.allow)?;
        }
        Ok(addresses)
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let resolver = self.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addresses = resolver.resolve_checked(&host).await?;
            // Port 0 means "the URL's port" to the connector.
            let addrs: Addrs = Box::new(addresses.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(answer: Vec<&'static str>) -> Lookup {
        Arc::new(move |_host: String| {
            let ips = answer.iter().filter_map(|s| s.parse().ok()).collect();
            Box::pin(async move { Ok(ips) })
        })
    }

    #[tokio::test]
    async fn refuses_if_any_address_is_refused() {
        let resolver = GuardedResolver::new(
            Arc::new(AllowList::default()),
            fixed(vec!["93.184.216.34", "10.0.0.1"]),
        );
        let err = resolver
            .resolve_checked("mixed.example")
            .await
            .expect_err("one private address");
        assert_eq!(err.code(), "blocked_address");
        assert!(err.to_string().contains("10.0.0.1"), "{err}");
    }

    #[tokio::test]
    async fn public_answers_pass_unchanged() {
        let resolver = GuardedResolver::new(
            Arc::new(AllowList::default()),
            fixed(vec!["93.184.216.34", "2606:2800:220:1::1"]),
        );
        let got = resolver
            .resolve_checked("example.com")
            .await
            .expect("public");
        assert_eq!(got.len(), 2);
    }

    #[tokio::test]
    async fn allow_listed_names_may_resolve_privately() {
        let allow = AllowList::new(&["api.internal".to_string()]);
        let resolver = GuardedResolver::new(Arc::new(allow), fixed(vec!["10.0.0.7"]));
        assert!(resolver.resolve_checked("API.internal.").await.is_ok());
        assert!(resolver.resolve_checked("other.internal").await.is_err());
    }

    #[tokio::test]
    async fn empty_answers_and_lookup_failures_are_resolve_errors() {
        let resolver = GuardedResolver::new(Arc::new(AllowList::default()), fixed(vec![]));
        let err = resolver
            .resolve_checked("nothing.example")
            .await
            .expect_err("empty");
        assert!(matches!(err, GuardError::Resolve { .. }), "{err}");
    }

    #[tokio::test]
    async fn refused_names_are_not_even_looked_up() {
        let lookup: Lookup = Arc::new(|host: String| {
            Box::pin(async move { Err(io::Error::other(format!("looked up {host}"))) })
        });
        let resolver = GuardedResolver::new(Arc::new(AllowList::default()), lookup);
        let err = resolver
            .resolve_checked("metadata.google.internal")
            .await
            .expect_err("refused by name");
        assert_eq!(err.code(), "blocked_address");
    }
}
