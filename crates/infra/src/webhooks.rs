//! [`WebhookTransport`] over HTTP: one POST per attempt, signed by the domain.
//!
//! Outside `development` and `test` ([`Reach::PublicHttps`]) a delivery goes only to
//! HTTPS URLs whose addresses are public, checked when the name is resolved for the
//! connection itself: a name that resolves to a private address at delivery time
//! (DNS rebinding) is refused, and the address checked is the address connected to.
//! Redirects are not followed and proxies from the environment are not used, so
//! neither can lead a delivery elsewhere.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use domain::webhooks::{Attempt, Reach, WebhookTransport, is_public};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Longest wait for a receiver's answer, connection included.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Longest wait to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Resolves names to their public addresses only.
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = addrs.iter().copied().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() || public.len() != addrs.len() {
                // One private address among public ones is refused too: the client
                // would try them in turn.
                return Err(format!("{host} resolves to a non-public address").into());
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

/// Posts deliveries with one shared client.
pub struct HttpTransport {
    client: reqwest::Client,
    reach: Reach,
}

impl std::fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTransport").field("reach", &self.reach).finish_non_exhaustive()
    }
}

/// The client could not be built (TLS roots unavailable).
#[derive(Debug, thiserror::Error)]
#[error("webhook HTTP client: {0}")]
pub struct TransportError(#[source] reqwest::Error);

impl HttpTransport {
    /// A transport that reaches what `reach` allows.
    ///
    /// # Errors
    /// The client cannot be built.
    pub fn new(reach: Reach) -> Result<Self, TransportError> {
        let mut builder = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent("GymAPI-Webhooks/1");
        if reach == Reach::PublicHttps {
            builder = builder.dns_resolver(Arc::new(PublicOnly)).https_only(true);
        }
        Ok(Self { client: builder.build().map_err(TransportError)?, reach })
    }

    /// Why a URL may not be posted to now, before any connection: an address
    /// literal is not resolved, so it is checked here.
    fn refused(&self, url: &reqwest::Url) -> Option<String> {
        if self.reach == Reach::Anywhere {
            return None;
        }
        if url.scheme() != "https" {
            return Some("not https".into());
        }
        let Some(host) = url.host_str() else { return Some("no host".into()) };
        let ip = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().ok();
        ip.filter(|ip| !is_public(*ip)).map(|ip| format!("{ip} is not a public address"))
    }
}

#[async_trait]
impl WebhookTransport for HttpTransport {
    async fn post(&self, url: &str, body: &str, signature: &str, delivery: i64) -> Attempt {
        let failed = |error: String| Attempt::Failed { status: None, error };
        let Ok(parsed) = reqwest::Url::parse(url) else { return failed("the URL does not parse".into()) };
        if let Some(why) = self.refused(&parsed) {
            return failed(format!("refused: {why}"));
        }
        let sent = self
            .client
            .post(parsed)
            .header("Content-Type", "application/json")
            .header("X-GymAPI-Signature", signature)
            .header("X-GymAPI-Delivery", delivery.to_string())
            .body(body.to_owned())
            .send()
            .await;
        match sent {
            Ok(res) if res.status().is_success() => Attempt::Delivered { status: res.status().as_u16() },
            Ok(res) => Attempt::Failed { status: Some(res.status().as_u16()), error: format!("HTTP {}", res.status()) },
            Err(e) => failed(describe(&e)),
        }
    }
}

/// A few words on a failed request, with its causes (never the URL's secrets: a
/// URL cannot carry credentials, see `domain::webhooks::check_url`).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_redirect() {
        "redirected"
    } else {
        "request failed"
    };
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        causes.push(s.to_string());
        source = s.source();
    }
    match causes.last() {
        Some(root) => format!("{kind}: {root}"),
        None => kind.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn outside_development_private_and_plain_http_receivers_are_refused_before_connecting() {
        let t = HttpTransport::new(Reach::PublicHttps).expect("client");
        for url in ["https://127.0.0.1:1/x", "https://[::1]:1/", "https://169.254.169.254/", "http://93.184.216.34/"] {
            match t.post(url, "{}", "t=1,v1=0", 1).await {
                Attempt::Failed { status: None, error } => assert!(error.starts_with("refused"), "{url}: {error}"),
                other => panic!("{url}: {other:?}"),
            }
        }
        // A name that resolves to loopback is refused when it is resolved.
        match t.post("https://localhost:1/x", "{}", "t=1,v1=0", 1).await {
            Attempt::Failed { status: None, error } => assert!(error.contains("non-public"), "{error}"),
            other => panic!("{other:?}"),
        }
    }
}
