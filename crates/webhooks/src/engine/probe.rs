//! Trying a receiver before a webhook is saved: a sample request (`probe`, the dashboard's
//! Test button) or a connection only (`reach`, as EMQX's connector check).

use std::time::Instant;

use hookmq_broker::hooks::EventKind;
use serde::Serialize;

use super::{EngineError, WebhookEngine};
use crate::{
    client::{Answer, HttpClient, RESPONSE_KEPT, SendError},
    render::Renderer,
    samples,
    sign::{Signer, delivery_headers},
    spec::{SpecError, WebhookSpec},
};

/// What a test request found.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ProbeResult {
    /// Whether the receiver answered 2xx.
    pub success: bool,
    /// The status code, if it answered.
    pub status: Option<u16>,
    /// Time to the answer, ms.
    pub latency_ms: u64,
    /// The start of the response body.
    pub body: String,
    /// What went wrong, if anything.
    pub error: Option<String>,
}

impl WebhookEngine {
    /// Whether `spec`'s receivers accept a connection (no request is sent; an `https`
    /// connection is not negotiated), as EMQX's connector check: `Err` says why the first
    /// that does not, naming its field when there are several.
    ///
    /// # Errors
    /// [`EngineError::Invalid`] for a spec that does not validate or a URL the egress rules
    /// deny.
    pub async fn reach(&self, spec: &WebhookSpec) -> Result<Result<(), String>, EngineError> {
        spec.validate()?;
        self.check_egress(spec).await?;
        let renderer = Renderer::new(spec, &self.inner.node)?;
        let client = HttpClient::new(spec, &self.inner.egress)?;
        let fields = spec.receiver_urls();
        for (receiver, (field, _)) in fields.iter().enumerate() {
            let origin = renderer
                .origin(receiver)
                .map_err(|e| SpecError::new(field.as_str(), e.to_string()))?;
            if let Err(error) = client.reach(&origin).await {
                return Ok(Err(named(&fields, field, &error.to_string())));
            }
        }
        Ok(Ok(()))
    }

    /// Sends one sample `message.publish` request as `spec` would (no retries) to each of
    /// its receivers and reports the first answer that is not 2xx (its error naming the
    /// URL's field when there are several), else the first receiver's. The spec need not be
    /// saved.
    ///
    /// # Errors
    /// [`EngineError::Invalid`] when the spec cannot be built.
    pub async fn probe(&self, spec: &WebhookSpec) -> Result<ProbeResult, EngineError> {
        spec.validate()?;
        self.check_egress(spec).await?;
        let renderer = Renderer::new(spec, &self.inner.node)?;
        let client = HttpClient::new(spec, &self.inner.egress)?;
        let signer = spec
            .signing_secret
            .as_deref()
            .map(Signer::new)
            .transpose()?;
        let event = samples::sample(EventKind::MessagePublish, &self.inner.node);
        let fields = spec.receiver_urls();
        let mut first = None;
        for (receiver, (field, _)) in fields.iter().enumerate() {
            let request = renderer
                .render(&event, receiver)
                .map_err(|e| SpecError::new(field.as_str(), e.to_string()))?;
            let extra = delivery_headers(
                signer.as_ref(),
                self.inner.registry.ids.next_id(),
                &request.body,
            );
            let started = Instant::now();
            let result = client.lane().send(&request, extra).await;
            let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            let mut found = result_of(result, latency_ms);
            if !found.success {
                found.error = found.error.map(|e| named(&fields, field, &e));
                return Ok(found);
            }
            first.get_or_insert(found);
        }
        first.ok_or_else(|| SpecError::new("url", "no receiver").into())
    }
}

/// `error` of the receiver in `field`, named when there are several.
fn named(fields: &[(String, &str)], field: &str, error: &str) -> String {
    if fields.len() > 1 {
        format!("{field}: {error}")
    } else {
        error.to_owned()
    }
}

/// What one test request found.
fn result_of(result: Result<Answer, SendError>, latency_ms: u64) -> ProbeResult {
    match result {
        Ok(answer) => {
            let mut body = String::from_utf8_lossy(&answer.body_start).into_owned();
            body.truncate(RESPONSE_KEPT);
            ProbeResult {
                success: answer.status.is_success(),
                status: Some(answer.status.as_u16()),
                latency_ms,
                body,
                error: (!answer.status.is_success()).then(|| format!("HTTP {}", answer.status)),
            }
        }
        Err(error) => ProbeResult {
            success: false,
            status: None,
            latency_ms,
            body: String::new(),
            error: Some(error.to_string()),
        },
    }
}
