//! HTTP webhook: each alert and incident is POSTed as one JSON object (the run's format) with
//! `Content-Type: application/json`. A connection error, a timeout, 408, 429 or a 5xx answer is
//! retried with exponential backoff (250 ms doubling, at most 8 s between attempts) up to the
//! configured number of attempts; any other answer outside 2xx gives the item up at once (the
//! receiver will not take it). https:// receivers are verified against the system's CA store
//! plus the operator's `ca_file`; there is no option to skip verification.

use crate::queue::{Counters, Deliver};
use crate::{render, AlertFormat, Item, Source};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(5);
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// A checked webhook URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookTarget(pub String);

impl std::str::FromStr for WebhookTarget {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        check_http_url(s)?;
        Ok(WebhookTarget(s.to_string()))
    }
}

/// An `http://` or `https://HOST[:PORT]/PATH` URL, or why not.
pub(crate) fn check_http_url(s: &str) -> Result<(), String> {
    let rest = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"))
        .ok_or_else(|| "expected http(s)://HOST[:PORT]/PATH".to_string())?;
    let host = rest.split(['/', '?']).next().unwrap_or_default();
    if host.is_empty() {
        return Err("no host".into());
    }
    Ok(())
}

/// Whether `url` needs a TLS client.
pub(crate) fn is_https(url: &str) -> bool {
    url.starts_with("https://")
}

/// The PEM certificates of a CA file (at least one), or why not.
pub fn read_ca_file(p: &Path) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let bad = |e: rustls_pki_types::pem::Error| format!("{}: {e}", p.display());
    let certs = CertificateDer::pem_file_iter(p)
        .map_err(bad)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad)?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate in it", p.display()));
    }
    Ok(certs)
}

/// The TLS client configuration of https receivers: the system's CA store (read once, at
/// start) plus every PEM certificate in `ca_file` (a private CA of the operator's collector).
/// A `ca_file` that cannot be read or holds no usable certificate is an error, never ignored.
pub(crate) fn tls_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    // A system certificate that does not parse is skipped, as other TLS clients do.
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if let Some(p) = ca_file {
        let (added, _) = roots.add_parsable_certificates(read_ca_file(p)?);
        if added == 0 {
            return Err(format!("{}: no usable PEM certificate in it", p.display()));
        }
    }
    if roots.is_empty() {
        return Err(
            "no trusted CA certificate: the system store is empty and no CA file was given".into(),
        );
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

pub(crate) struct Webhook {
    target: WebhookTarget,
    attempts: u32,
    format: AlertFormat,
    source: Arc<Source>,
    agent: ureq::Agent,
}

impl Webhook {
    pub fn new(
        target: WebhookTarget,
        attempts: u32,
        format: AlertFormat,
        source: Arc<Source>,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Self {
        let agent = agent(&source.version, tls);
        Webhook {
            target,
            attempts,
            format,
            source,
            agent,
        }
    }
}

/// Whether a failed attempt is worth repeating.
fn transient(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::Status(code, _) => *code == 408 || *code == 429 || *code >= 500,
        ureq::Error::Transport(_) => true,
    }
}

impl Deliver<Item> for Webhook {
    fn deliver(&mut self, item: &Item, counters: &Counters) -> Result<(), String> {
        let body = render(item, self.format, &self.source, false).to_string();
        post(
            &self.agent,
            &self.target.0,
            "application/json",
            body.as_bytes(),
            self.attempts,
            counters,
        )
    }
}

/// POST `body` to `url`, retrying transient failures with exponential backoff (the policy in
/// this module's documentation; shared with the OTLP output).
pub(crate) fn post(
    agent: &ureq::Agent,
    url: &str,
    content_type: &str,
    body: &[u8],
    attempts: u32,
    counters: &Counters,
) -> Result<(), String> {
    let mut backoff = FIRST_BACKOFF;
    let mut attempt = 1;
    loop {
        let r = agent
            .post(url)
            .set("Content-Type", content_type)
            .send_bytes(body);
        match r {
            Ok(_) => return Ok(()),
            Err(e) if !transient(&e) || attempt >= attempts || !counters.pause(backoff) => {
                return Err(format!("{url}: {e} (attempt {attempt})"));
            }
            Err(_) => {
                attempt += 1;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// The HTTP client of the webhook and OTLP outputs: bounded time per request, no redirects
/// (a receiver answering with one is misconfigured; following it could send alerts somewhere
/// unintended).
pub(crate) fn agent(version: &str, tls: Option<Arc<rustls::ClientConfig>>) -> ureq::Agent {
    let b = ureq::AgentBuilder::new()
        .timeout(TIMEOUT)
        .user_agent(&format!("proctor/{version}"))
        .redirects(0);
    match tls {
        Some(tls) => b.tls_config(tls),
        None => b,
    }
    .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        assert!("http://127.0.0.1:8080/hook"
            .parse::<WebhookTarget>()
            .is_ok());
        assert!("http://h".parse::<WebhookTarget>().is_ok());
        assert!("https://h/x".parse::<WebhookTarget>().is_ok());
        assert!("https://".parse::<WebhookTarget>().is_err());
        assert!("ftp://h".parse::<WebhookTarget>().is_err());
        assert!("http:///x".parse::<WebhookTarget>().is_err());
    }
}
