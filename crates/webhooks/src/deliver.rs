//! Delivery: one worker per lane sends one request at a time, classifies the answer and
//! retries with exponential backoff and jitter, honouring `Retry-After`.

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use http::{HeaderMap, StatusCode};
use tokio_util::sync::CancellationToken;

use crate::{
    client::{Answer, LaneSender, SendError},
    metrics::failure,
    queue::{Queue, Queued},
    webhook::Webhook,
};

/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// Jitter applied to backoff delays: ±20%.
const JITTER: f64 = 0.2;

/// What to do after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: delivered.
    Success,
    /// Worth another attempt (connection error, timeout, 408, 429, 5xx), after at least
    /// `after` if the receiver said so.
    Retry {
        /// Why.
        reason: String,
        /// HTTP status, if any.
        status: Option<u16>,
        /// The receiver's `Retry-After`.
        after: Option<Duration>,
    },
    /// Not worth retrying (other statuses, including redirects).
    Fail {
        /// Why.
        reason: String,
        /// HTTP status.
        status: Option<u16>,
    },
}

/// Classifies one attempt's result.
#[must_use]
pub fn classify(result: &Result<Answer, SendError>) -> Outcome {
    match result {
        Err(error) => Outcome::Retry {
            reason: error.to_string(),
            status: None,
            after: None,
        },
        Ok(answer) if answer.status.is_success() => Outcome::Success,
        Ok(answer) => {
            let status = answer.status;
            let body = String::from_utf8_lossy(&answer.body_start);
            let reason = format!(
                "HTTP {status}{}{}",
                if body.is_empty() { "" } else { ": " },
                body.trim()
            );
            let retryable = status == StatusCode::REQUEST_TIMEOUT
                || status == StatusCode::TOO_MANY_REQUESTS
                || status.is_server_error();
            if retryable {
                Outcome::Retry {
                    reason,
                    status: Some(status.as_u16()),
                    after: retry_after(&answer.headers),
                }
            } else {
                Outcome::Fail {
                    reason,
                    status: Some(status.as_u16()),
                }
            }
        }
    }
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    let delay = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => httpdate::parse_http_date(value)
            .ok()?
            .duration_since(SystemTime::now())
            .unwrap_or_default(),
    };
    Some(delay.min(MAX_RETRY_AFTER))
}

/// The wait before retry number `retry` (1-based).
#[must_use]
pub fn backoff(initial: Duration, max: Duration, retry: u32, after: Option<Duration>) -> Duration {
    let exponential = initial
        .saturating_mul(
            1u32.checked_shl(retry.saturating_sub(1))
                .unwrap_or(u32::MAX),
        )
        .min(max);
    // checked: a jittered delay that does not fit a Duration falls back to the ceiling.
    let factor = 1.0 + JITTER * (rand::random::<f64>() * 2.0 - 1.0);
    let jittered = Duration::try_from_secs_f64(exponential.as_secs_f64() * factor).unwrap_or(max);
    match after {
        Some(after) => after.max(jittered.min(max)),
        None => jittered,
    }
}

/// Runs one lane until the webhook stops.
///
/// A busy lane keeps its connection; when it runs out of work it parks the connection among
/// the webhook's idle ones for whichever lane needs one next.
pub(crate) async fn run_lane(webhook: Arc<Webhook>, lane: usize, stop: CancellationToken) {
    let mut sender = webhook.client.lane();
    loop {
        // The busy path takes the next event without touching anything shared but the lane.
        let item = match webhook.queue.try_pop(lane) {
            Some(item) => Some(item),
            None => {
                sender.park();
                tokio::select! {
                    biased;
                    () = stop.cancelled() => return,
                    item = webhook.queue.pop(lane) => item,
                }
            }
        };
        let Some(mut item) = item else { return };
        webhook.metrics.start();
        let interrupted = deliver(&webhook, &mut sender, &mut item, &stop).await;
        webhook.metrics.finish();
        if interrupted {
            // Stopped mid-delivery (update, disable, shutdown): give the event back.
            webhook.queue.requeue_front(lane, item);
            return;
        }
    }
}

/// Delivers one event with its retries. Returns `true` if stopped before an outcome.
async fn deliver(
    webhook: &Webhook,
    sender: &mut LaneSender,
    item: &mut Queued,
    stop: &CancellationToken,
) -> bool {
    let event_name = item.event.kind().name();
    let request = match webhook.renderer.render(&item.event) {
        Ok(request) => request,
        Err(error) => {
            webhook
                .metrics
                .failed(failure(event_name, None, error.to_string(), 0));
            return false;
        }
    };
    let spec = &webhook.spec;
    // The delivery id is made when first needed (only signed requests carry it), here rather
    // than on the publish path, and travels with the event if it is requeued.
    let signing = webhook.signer.as_ref().map(|signer| {
        (
            signer,
            *item.id.get_or_insert_with(|| webhook.ids.next_id()),
        )
    });
    // Attempts made before this worker took the event (a requeue keeps them).
    let mut attempts = item.attempts;
    loop {
        attempts += 1;
        // Signed per attempt: the timestamp is the attempt's, the id the event's.
        let extra = signing.map_or_else(HeaderMap::new, |(signer, id)| {
            signer.headers(id, &request.body)
        });
        let started = Instant::now();
        let result = tokio::select! {
            biased;
            () = stop.cancelled() => return true,
            result = sender.send(&request, extra) => result,
        };
        if result.is_ok() {
            webhook.metrics.latency(started.elapsed());
        }
        match classify(&result) {
            Outcome::Success => {
                webhook.metrics.success();
                return false;
            }
            Outcome::Retry { after, .. } if attempts <= spec.max_retries => {
                webhook.metrics.retried();
                let delay = backoff(spec.retry_backoff, spec.retry_max_backoff, attempts, after);
                tokio::select! {
                    biased;
                    () = stop.cancelled() => return true,
                    () = tokio::time::sleep(delay) => {}
                }
            }
            Outcome::Retry { reason, status, .. } | Outcome::Fail { reason, status } => {
                tracing::debug!(webhook = %spec.name, event = event_name, %reason, "delivery failed");
                webhook
                    .metrics
                    .failed(failure(event_name, status, reason, attempts));
                return false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn answer(status: u16, retry_after: Option<&str>) -> Result<Answer, SendError> {
        let mut headers = HeaderMap::new();
        if let Some(value) = retry_after {
            headers.insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from_str(value).expect("value"),
            );
        }
        Ok(Answer {
            status: StatusCode::from_u16(status).expect("status"),
            headers,
            body_start: Bytes::new(),
        })
    }

    #[test]
    fn statuses() {
        assert_eq!(classify(&answer(200, None)), Outcome::Success);
        assert_eq!(classify(&answer(204, None)), Outcome::Success);
        for status in [408, 429, 500, 502, 503] {
            assert!(
                matches!(classify(&answer(status, None)), Outcome::Retry { .. }),
                "{status}"
            );
        }
        for status in [301, 400, 401, 404, 410] {
            assert!(
                matches!(classify(&answer(status, None)), Outcome::Fail { .. }),
                "{status}"
            );
        }
        assert!(matches!(
            classify(&Err(SendError::Timeout(Duration::from_secs(1)))),
            Outcome::Retry { .. }
        ));
        match classify(&answer(503, Some("7"))) {
            Outcome::Retry { after, .. } => assert_eq!(after, Some(Duration::from_secs(7))),
            other => panic!("{other:?}"),
        }
        let date = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(30));
        match classify(&answer(429, Some(&date))) {
            Outcome::Retry {
                after: Some(after), ..
            } => assert!(after <= Duration::from_secs(30) && after >= Duration::from_secs(28)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_and_a_ceiling() {
        let (initial, max) = (Duration::from_secs(1), Duration::from_secs(10));
        for (retry, base) in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 10.0)] {
            let delay = backoff(initial, max, retry, None).as_secs_f64();
            assert!(
                (base * 0.8..=base * 1.2).contains(&delay),
                "retry {retry}: {delay}"
            );
        }
        assert_eq!(
            backoff(initial, max, 1, Some(Duration::from_secs(120))),
            Duration::from_secs(120)
        );
    }
}
