//! [`WebhookSpec::validate`]: every field checked, the first one at fault named.

use hookmq_broker::duration;
use hookmq_codec::topic;

use super::{
    Buffer, MAX_BACKOFF, MAX_BATCH_EVENTS, MAX_BATCH_WAIT, MAX_RECEIVERS, MAX_RETRY_AGE,
    MAX_TIMEOUT, SpecError, UrlStrategy, WebhookSpec, valid_name,
};
use crate::render::UrlTemplate;

impl WebhookSpec {
    /// Checks every field; the parts that need parsing (URL, templates, secret) are checked
    /// again when the webhook is built, with the same field names.
    ///
    /// # Errors
    /// The first invalid field.
    pub fn validate(&self) -> Result<(), SpecError> {
        if !valid_name(&self.name) {
            return Err(SpecError::new(
                "name",
                "use letters, digits, - and _, starting with a letter or digit (at most 128)",
            ));
        }
        if self.description.len() > 4096 {
            return Err(SpecError::new("description", "at most 4096 bytes"));
        }
        if self.events.is_empty() {
            return Err(SpecError::new(
                "events",
                "select at least one event, or [\"*\"]",
            ));
        }
        self.event_kinds()?;
        for (i, filter) in self.topics.iter().enumerate() {
            if !topic::is_valid_filter(filter) {
                return Err(SpecError::new(
                    format!("topics[{i}]"),
                    format!("`{filter}` is not a valid topic filter"),
                ));
            }
        }
        if self.topics.is_empty() {
            return Err(SpecError::new(
                "topics",
                "give at least one topic filter, e.g. [\"#\"]",
            ));
        }
        for (name, value) in &self.headers {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(SpecError::new(
                    format!("headers.{name}"),
                    "not a valid header name",
                ));
            }
            if value.contains(['\r', '\n', '\0']) {
                return Err(SpecError::new(
                    format!("headers.{name}"),
                    "CR, LF and NUL are not allowed",
                ));
            }
        }
        let positive = |field: &str, value: usize| {
            if value == 0 {
                Err(SpecError::new(field, "must be at least 1"))
            } else {
                Ok(())
            }
        };
        positive("pool_size", self.pool_size)?;
        positive("max_inflight", self.max_inflight)?;
        positive("pipelining", self.pipelining)?;
        if self.pipelining > 1024 {
            return Err(SpecError::new("pipelining", "at most 1024"));
        }
        positive("queue_capacity", self.queue_capacity)?;
        if self.max_inflight > 1024 {
            return Err(SpecError::new("max_inflight", "at most 1024"));
        }
        for (field, value) in [
            ("connect_timeout", self.connect_timeout),
            ("request_timeout", self.request_timeout),
            ("retry_backoff", self.retry_backoff),
            ("retry_max_age", self.retry_max_age),
            ("health_check_interval", self.health_check_interval),
        ] {
            if value.is_zero() {
                return Err(SpecError::new(field, "must be longer than 0"));
            }
        }
        for (field, value, max) in [
            ("connect_timeout", self.connect_timeout, MAX_TIMEOUT),
            ("request_timeout", self.request_timeout, MAX_TIMEOUT),
            ("retry_backoff", self.retry_backoff, MAX_BACKOFF),
            ("retry_max_backoff", self.retry_max_backoff, MAX_BACKOFF),
            ("retry_max_age", self.retry_max_age, MAX_RETRY_AGE),
            (
                "health_check_interval",
                self.health_check_interval,
                MAX_TIMEOUT,
            ),
        ] {
            if value > max {
                return Err(SpecError::new(
                    field,
                    format!("at most {}", duration::format(max)),
                ));
            }
        }
        if self
            .request_ttl
            .is_some_and(|ttl| ttl.is_zero() || ttl > MAX_RETRY_AGE)
        {
            return Err(SpecError::new(
                "request_ttl",
                format!(
                    "longer than 0 and at most {}, or none",
                    duration::format(MAX_RETRY_AGE)
                ),
            ));
        }
        if self.retry_max_backoff < self.retry_backoff {
            return Err(SpecError::new(
                "retry_max_backoff",
                "must be at least retry_backoff",
            ));
        }
        if self.tls.certfile.is_some() != self.tls.keyfile.is_some() {
            return Err(SpecError::new(
                "tls.keyfile",
                "certfile and keyfile go together",
            ));
        }
        if self.sync_before_ack && self.buffer == Buffer::Memory {
            return Err(SpecError::new(
                "sync_before_ack",
                "needs buffer = \"disk\" or \"cluster\" (a memory buffer has nothing to wait for)",
            ));
        }
        let urls = self.receiver_templates()?;
        self.validate_batch(&urls)?;
        if let Some(secret) = &self.signing_secret {
            crate::sign::Signer::new(secret)?;
        }
        Ok(())
    }
}

impl WebhookSpec {
    /// Checks `batch`: one request carries many events, so what they would render apart
    /// (URL, headers) must be the same for all.
    fn validate_batch(&self, urls: &[UrlTemplate]) -> Result<(), SpecError> {
        let batch = &self.batch;
        if batch.max_events == 0 || batch.max_events > MAX_BATCH_EVENTS {
            return Err(SpecError::new(
                "batch.max_events",
                format!("from 1 to {MAX_BATCH_EVENTS}"),
            ));
        }
        if batch.max_wait > MAX_BATCH_WAIT {
            return Err(SpecError::new(
                "batch.max_wait",
                format!("at most {}", duration::format(MAX_BATCH_WAIT)),
            ));
        }
        if batch.max_events == 1 {
            return Ok(());
        }
        if self.request_ttl.is_some_and(|ttl| ttl <= batch.max_wait) {
            return Err(SpecError::new(
                "request_ttl",
                "must be longer than batch.max_wait (a filling batch would expire whole)",
            ));
        }
        if !self.method.has_body() {
            return Err(SpecError::new(
                "batch.max_events",
                "a batch is a body: use method post or put",
            ));
        }
        for (url, (field, _)) in urls.iter().zip(self.receiver_urls()) {
            if !url.is_static() {
                return Err(SpecError::new(
                    field,
                    "a batched webhook's URL cannot hold placeholders (one request carries many events)",
                ));
            }
        }
        for (name, value) in &self.headers {
            let templated = crate::render::template::Template::parse(
                value,
                false,
                crate::render::template::Escape::Raw,
            )
            .is_ok_and(|template| !template.is_static());
            if templated {
                return Err(SpecError::new(
                    format!("headers.{name}"),
                    "a batched webhook's headers cannot hold placeholders (one request carries many events)",
                ));
            }
        }
        Ok(())
    }

    /// Every receiver's URL with the field it is given in: `url`, then `urls[0]`, ...
    #[must_use]
    pub fn receiver_urls(&self) -> Vec<(String, &str)> {
        std::iter::once(("url".to_owned(), self.url.as_str()))
            .chain(
                self.urls
                    .iter()
                    .enumerate()
                    .map(|(i, url)| (format!("urls[{i}]"), url.as_str())),
            )
            .collect()
    }

    /// The receivers' URLs parsed, in order (`url` first): each valid, none repeated, at most
    /// [`MAX_RECEIVERS`], and, with `round_robin`, no more than the lanes that use them.
    ///
    /// # Errors
    /// The field of the first URL at fault.
    pub(crate) fn receiver_templates(&self) -> Result<Vec<UrlTemplate>, SpecError> {
        let urls = self.receiver_urls();
        if urls.len() > MAX_RECEIVERS {
            return Err(SpecError::new(
                "urls",
                format!("at most {} more receivers", MAX_RECEIVERS - 1),
            ));
        }
        let mut parsed = Vec::with_capacity(urls.len());
        for (i, (field, url)) in urls.iter().enumerate() {
            if let Some(first) = urls[..i].iter().position(|(_, other)| other == url) {
                return Err(SpecError::new(
                    field.as_str(),
                    format!("the same URL as {}", urls[first].0),
                ));
            }
            parsed.push(UrlTemplate::parse_field(url, field)?);
        }
        if self.url_strategy == UrlStrategy::RoundRobin && urls.len() > self.max_inflight {
            return Err(SpecError::new(
                "max_inflight",
                format!(
                    "round_robin gives each lane one of the {} URLs: max_inflight must be at \
                     least that many, or use url_strategy = \"failover\"",
                    urls.len()
                ),
            ));
        }
        Ok(parsed)
    }
}
