//! What an attempt's answer means: success, a retry (exponential backoff with jitter,
//! honouring `Retry-After`, until the event is too old), or a failure.

use std::time::{Duration, SystemTime};

use hookmq_broker::{duration, hooks::Event, message::now_ms};
use http::{HeaderMap, StatusCode};

use crate::{
    client::{Answer, SendError},
    spec::WebhookSpec,
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
    /// Not worth retrying (other statuses, including redirects; TLS refusals; addresses the
    /// egress policy denies).
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
        Err(error @ (SendError::Tls(_) | SendError::Denied(_))) => Outcome::Fail {
            reason: error.to_string(),
            status: None,
        },
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

/// Whether an attempt reached the receiver: it answered with a status that is not worth
/// retrying (2xx, or a refusal). Connection errors, timeouts, TLS refusals, 408, 429 and
/// 5xx did not.
pub(crate) fn reached(result: &Result<Answer, SendError>) -> bool {
    match result {
        Ok(answer) => {
            matches!(classify(result), Outcome::Success | Outcome::Fail { .. })
                && !answer.status.is_server_error()
        }
        Err(_) => false,
    }
}

/// How an attempt ends for its event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Delivered: the receiver answered 2xx.
    Delivered,
    /// Try again after this long (the lane waits; the client's later events wait behind).
    Retry(Duration),
    /// Given up: a non-retryable answer, or a retryable one for an event past
    /// `retry_max_age` (or `max_retries`, when set).
    Failed {
        /// Why, with the last answer.
        reason: String,
        /// The last answer's status, if any.
        status: Option<u16>,
    },
}

/// Decides what follows attempt number `attempts` (1-based) of `event`, which got `result`:
/// retryable failures are retried with backoff until the event is older than
/// `retry_max_age` (its age counts from when it happened, across restarts).
pub(crate) fn verdict(
    spec: &WebhookSpec,
    event: &Event,
    attempts: u32,
    result: &Result<Answer, SendError>,
) -> Verdict {
    match classify(result) {
        Outcome::Success => Verdict::Delivered,
        Outcome::Fail { reason, status } => Verdict::Failed { reason, status },
        Outcome::Retry {
            reason,
            status,
            after,
        } => {
            let age = Duration::from_millis(now_ms().saturating_sub(event.timestamp));
            let left = spec.retry_max_age.saturating_sub(age);
            if spec.max_retries.is_some_and(|max| attempts > max) {
                Verdict::Failed {
                    reason: format!("{reason} (no retry left after {attempts} attempts)"),
                    status,
                }
            } else if left.is_zero() {
                Verdict::Failed {
                    reason: format!(
                        "{reason} (older than retry_max_age {} after {attempts} attempts)",
                        duration::format(spec.retry_max_age)
                    ),
                    status,
                }
            } else {
                // The last retry comes when the event reaches its age limit, not after it.
                let delay = backoff(spec.retry_backoff, spec.retry_max_backoff, attempts, after);
                Verdict::Retry(delay.min(left))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use hookmq_broker::hooks::EventKind;

    use super::*;
    use crate::samples::sample;

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

    #[test]
    fn retries_last_until_the_event_is_too_old() {
        let mut spec = WebhookSpec::new("w", "http://h/");
        spec.retry_backoff = Duration::from_secs(1);
        spec.retry_max_backoff = Duration::from_secs(60);
        spec.retry_max_age = Duration::from_secs(3600);
        let mut event = sample(EventKind::MessagePublish, "n");
        event.timestamp = now_ms();
        let unavailable = answer(503, None);
        assert!(matches!(
            verdict(&spec, &event, 40, &unavailable),
            Verdict::Retry(delay) if delay <= Duration::from_secs(72)
        ));
        // Ten seconds left: the next retry comes then, not after the usual backoff.
        event.timestamp = now_ms() - 3_590_000;
        assert!(matches!(
            verdict(&spec, &event, 40, &unavailable),
            Verdict::Retry(delay) if delay <= Duration::from_secs(10)
        ));
        event.timestamp = now_ms() - 3_600_000;
        match verdict(&spec, &event, 41, &unavailable) {
            Verdict::Failed { reason, status } => {
                assert_eq!(status, Some(503));
                assert!(reason.contains("older than retry_max_age 1h"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        // A count, when set, ends retries sooner.
        event.timestamp = now_ms();
        spec.max_retries = Some(2);
        assert!(matches!(
            verdict(&spec, &event, 2, &unavailable),
            Verdict::Retry(_)
        ));
        assert!(matches!(
            verdict(&spec, &event, 3, &unavailable),
            Verdict::Failed { .. }
        ));
        assert!(matches!(
            verdict(&spec, &event, 1, &answer(400, None)),
            Verdict::Failed {
                status: Some(400),
                ..
            }
        ));
        assert_eq!(
            verdict(&spec, &event, 1, &answer(204, None)),
            Verdict::Delivered
        );
    }
}
