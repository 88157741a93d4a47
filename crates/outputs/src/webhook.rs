//! HTTP webhook: each alert and incident is POSTed as one JSON object (the run's format) with
//! `Content-Type: application/json`. A connection error, a timeout, 408, 429 or a 5xx answer is
//! retried with exponential backoff (250 ms doubling, at most 8 s between attempts) up to the
//! configured number of attempts; any other answer outside 2xx gives the item up at once (the
//! receiver will not take it). http:// only: proctor is built without a TLS client stack, so a
//! remote receiver sits behind a local forwarder (e.g. the OpenTelemetry collector or a proxy).

use crate::queue::{Counters, Deliver};
use crate::{render, AlertFormat, Item, Source};
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

/// An `http://HOST[:PORT]/PATH` URL, or why not (https: no TLS client in this build).
pub(crate) fn check_http_url(s: &str) -> Result<(), String> {
    {
        if s.starts_with("https://") {
            return Err("https is not supported (no TLS client in this build); use http:// to a local forwarder".into());
        }
        let rest = s
            .strip_prefix("http://")
            .ok_or_else(|| "expected http://HOST[:PORT]/PATH".to_string())?;
        let host = rest.split(['/', '?']).next().unwrap_or_default();
        if host.is_empty() {
            return Err("no host".into());
        }
        Ok(())
    }
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
    ) -> Self {
        let agent = agent(&source.version);
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
pub(crate) fn agent(version: &str) -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(TIMEOUT)
        .user_agent(&format!("proctor/{version}"))
        .redirects(0)
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
        let e = "https://h/x".parse::<WebhookTarget>().unwrap_err();
        assert!(e.contains("https"), "{e}");
        assert!("ftp://h".parse::<WebhookTarget>().is_err());
        assert!("http:///x".parse::<WebhookTarget>().is_err());
    }
}
