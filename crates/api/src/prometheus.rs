//! `GET /prometheus/stats`: the broker's and every webhook's metrics in Prometheus' text
//! exposition format (0.0.4), without authentication like EMQX's, for scrapers.
//!
//! Written by hand: a few dozen series read from snapshots the API already has, so a metrics
//! registry would only copy them.

use std::{fmt::Write as _, sync::atomic::Ordering};

use axum::{
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};
use hookmq_webhooks::WebhookStatus;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::state::AppState;

/// The content type of the text format.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `/prometheus/stats`.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(stats))
}

/// Escapes a label value (`\`, `"` and newlines).
fn escape(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', r#"\""#)
        .replace('\n', r"\n")
}

/// A text exposition being written.
struct Exposition(String);

impl Exposition {
    /// `# HELP` and `# TYPE` lines of a family.
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    /// One sample; `labels` are `(name, unescaped value)`.
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{label}=\"{}\"", escape(value));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    /// A family with one unlabelled sample.
    fn single(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    /// A family with one sample per webhook.
    fn per_webhook(
        &mut self,
        webhooks: &[WebhookStatus],
        name: &str,
        kind: &str,
        help: &str,
        value: impl Fn(&WebhookStatus) -> u64,
    ) {
        self.family(name, kind, help);
        for w in webhooks {
            self.sample(name, &[("webhook", &w.spec.name)], value(w));
        }
    }
}

fn seconds(ms: u64) -> String {
    // Exact decimal of ms / 1000, e.g. 2500 → 2.5.
    let (whole, rest) = (ms / 1000, ms % 1000);
    if rest == 0 {
        whole.to_string()
    } else {
        format!("{whole}.{rest:03}")
            .trim_end_matches('0')
            .to_owned()
    }
}

/// Renders every series.
pub(crate) fn render(state: &AppState) -> String {
    let broker = state.broker();
    let s = broker.stats();
    let mut out = Exposition(String::with_capacity(8192));
    let gauges: [(&str, &str, usize); 4] = [
        (
            "hookmq_connections",
            "Open MQTT connections.",
            s.connections,
        ),
        (
            "hookmq_sessions",
            "Sessions, connected or offline.",
            s.sessions,
        ),
        ("hookmq_subscriptions", "Subscriptions.", s.subscriptions),
        ("hookmq_retained", "Retained messages.", s.retained),
    ];
    for (name, help, value) in gauges {
        out.single(name, "gauge", help, value);
    }
    let counters: [(&str, &str, u64); 15] = [
        (
            "hookmq_connections_accepted_total",
            "Connections accepted.",
            s.connections_accepted,
        ),
        (
            "hookmq_connections_refused_total",
            "Connections refused at the limit.",
            s.connections_refused,
        ),
        (
            "hookmq_connects_refused_total",
            "CONNECTs answered with a failed CONNACK.",
            s.connects_refused,
        ),
        (
            "hookmq_protocol_errors_total",
            "Connections closed for breaking the MQTT protocol.",
            s.protocol_errors,
        ),
        (
            "hookmq_connections_refused_per_address_total",
            "Connections refused at the per-address limit.",
            s.connections_refused_per_address,
        ),
        (
            "hookmq_subscriptions_refused_total",
            "Subscriptions refused (quota, topic levels).",
            s.subscriptions_refused,
        ),
        (
            "hookmq_publishes_refused_total",
            "PUBLISH packets refused (topic levels).",
            s.publishes_refused,
        ),
        (
            "hookmq_publish_rate_waits_total",
            "Times a connection's reading paused at the publish rate limit.",
            s.publish_rate_waits,
        ),
        (
            "hookmq_messages_received_total",
            "PUBLISH packets received.",
            s.messages_received,
        ),
        (
            "hookmq_messages_sent_total",
            "PUBLISH packets sent.",
            s.messages_sent,
        ),
        (
            "hookmq_messages_dropped_total",
            "Messages that matched no subscriber.",
            s.messages_dropped_no_subscribers,
        ),
        (
            "hookmq_deliveries_dropped_total",
            "Deliveries dropped.",
            s.deliveries_dropped,
        ),
        (
            "hookmq_bytes_received_total",
            "Bytes received.",
            s.bytes_received,
        ),
        ("hookmq_bytes_sent_total", "Bytes sent.", s.bytes_sent),
        (
            "hookmq_hook_events_dropped_total",
            "Events the webhooks' hook could not take.",
            s.hook_events_dropped,
        ),
    ];
    for (name, help, value) in counters {
        out.single(name, "counter", help, value);
    }
    let throttle = &state.throttle;
    let logins = [
        (
            "hookmq_login_failures_total",
            "Failed log-ins: dashboard passwords and API key secrets.",
            &throttle.failures,
        ),
        (
            "hookmq_login_throttled_total",
            "Log-in attempts answered 429 during a lock-out.",
            &throttle.throttled,
        ),
        (
            "hookmq_login_records_forgotten_total",
            "Lock-out records dropped early because 10,000 subjects were followed.",
            &throttle.forgotten,
        ),
    ];
    for (name, help, value) in logins {
        out.single(name, "counter", help, value.load(Ordering::Relaxed));
    }
    if let Some(cluster) = &state.cluster {
        out.single(
            "hookmq_cluster_forward_dropped_total",
            "counter",
            "Messages not forwarded to the other nodes: the forwarding queue was full.",
            cluster.forward_dropped(),
        );
        out.single(
            "hookmq_cluster_receive_dropped_total",
            "counter",
            "Messages from other nodes dropped: this node could not keep up (NATS slow consumer).",
            cluster.receive_dropped(),
        );
        out.single(
            "hookmq_cluster_forward_unconfirmed_total",
            "counter",
            "QoS 1/2 acknowledgements sent before NATS confirmed their messages.",
            cluster.forward_unconfirmed(),
        );
    }
    out.single(
        "hookmq_uptime_seconds",
        "gauge",
        "Seconds since the node started.",
        state.started.elapsed().as_secs(),
    );
    let webhooks = state.engine.list();
    out.single(
        "hookmq_webhooks",
        "gauge",
        "Webhooks defined.",
        webhooks.len(),
    );
    webhook_series(&mut out, &webhooks);
    out.0
}

/// Reads one value of a webhook's status.
type Reader = fn(&WebhookStatus) -> u64;

fn webhook_series(out: &mut Exposition, webhooks: &[WebhookStatus]) {
    out.per_webhook(
        webhooks,
        "hookmq_webhook_enabled",
        "gauge",
        "1 if the webhook delivers.",
        |w| u64::from(w.spec.enable),
    );
    let counters: [(&str, &str, Reader); 5] = [
        (
            "hookmq_webhook_matched_total",
            "Events the trigger selected.",
            |w| w.metrics.matched,
        ),
        (
            "hookmq_webhook_success_total",
            "Deliveries answered 2xx.",
            |w| w.metrics.success,
        ),
        ("hookmq_webhook_failed_total", "Deliveries given up.", |w| {
            w.metrics.failed
        }),
        ("hookmq_webhook_retried_total", "Retries made.", |w| {
            w.metrics.retried
        }),
        (
            "hookmq_webhook_late_reply_total",
            "Events answered after request_ttl (neither delivered nor failed).",
            |w| w.metrics.late_reply,
        ),
    ];
    for (name, help, value) in counters {
        out.per_webhook(webhooks, name, "counter", help, value);
    }
    let name = "hookmq_webhook_dropped_total";
    out.family(
        name,
        "counter",
        "Events dropped without delivery, by reason.",
    );
    for w in webhooks {
        let m = &w.metrics;
        let other = m
            .dropped
            .saturating_sub(m.dropped_queue_full + m.dropped_expired);
        for (reason, value) in [
            ("queue_full", m.dropped_queue_full),
            ("expired", m.dropped_expired),
            ("other", other),
        ] {
            out.sample(
                name,
                &[("webhook", &w.spec.name), ("reason", reason)],
                value,
            );
        }
    }
    out.per_webhook(
        webhooks,
        "hookmq_webhook_queuing",
        "gauge",
        "Events waiting in the queue.",
        |w| w.metrics.queuing,
    );
    out.per_webhook(
        webhooks,
        "hookmq_webhook_inflight",
        "gauge",
        "Deliveries under way.",
        |w| w.metrics.inflight,
    );
    receiver_series(out, webhooks);
    let name = "hookmq_webhook_latency_seconds";
    out.family(name, "histogram", "Request latency (to the answer).");
    let bucket = format!("{name}_bucket");
    for w in webhooks {
        let latency = &w.metrics.latency;
        let mut cumulative = 0;
        for (i, count) in latency.buckets.iter().enumerate() {
            cumulative += count;
            let le = latency
                .bounds_ms
                .get(i)
                .map_or_else(|| "+Inf".to_owned(), |ms| seconds(*ms));
            out.sample(
                &bucket,
                &[("webhook", &w.spec.name), ("le", &le)],
                cumulative,
            );
        }
        if latency.buckets.is_empty() {
            out.sample(&bucket, &[("webhook", &w.spec.name), ("le", "+Inf")], 0);
        }
        // The histogram keeps the mean; sum = mean × count (to the millisecond).
        #[allow(clippy::cast_precision_loss)]
        let sum = latency.mean_ms * latency.count as f64 / 1000.0;
        out.sample(&format!("{name}_sum"), &[("webhook", &w.spec.name)], sum);
        out.sample(
            &format!("{name}_count"),
            &[("webhook", &w.spec.name)],
            latency.count,
        );
    }
}

/// Each receiver of each webhook (`url`, `urls[0]`, ...), labelled by its field: the URL
/// itself may carry a token.
fn receiver_series(out: &mut Exposition, webhooks: &[WebhookStatus]) {
    type ReceiverReader = fn(&hookmq_webhooks::ReceiverStatus) -> u64;
    let series: [(&str, &str, &str, ReceiverReader); 4] = [
        (
            "hookmq_webhook_receiver_up",
            "gauge",
            "1 if the receiver answers (connected).",
            |r| u64::from(r.status.state == hookmq_webhooks::health::State::Connected),
        ),
        (
            "hookmq_webhook_receiver_requests_total",
            "counter",
            "Requests to the receiver settled since the node started.",
            |r| r.requests,
        ),
        (
            "hookmq_webhook_receiver_failed_requests_total",
            "counter",
            "Requests to the receiver not answered 2xx since the node started.",
            |r| r.failed_requests,
        ),
        (
            "hookmq_webhook_receiver_delivered_total",
            "counter",
            "Events the receiver took (answered 2xx) since the node started.",
            |r| r.delivered,
        ),
    ];
    for (name, kind, help, value) in series {
        out.family(name, kind, help);
        for w in webhooks {
            let fields = w.spec.receiver_urls();
            for ((field, _), receiver) in fields.iter().zip(&w.receivers) {
                out.sample(
                    name,
                    &[("webhook", &w.spec.name), ("receiver", field)],
                    value(receiver),
                );
            }
        }
    }
}

/// Prometheus text metrics of the broker and every webhook (no authentication).
#[utoipa::path(get, path = "/prometheus/stats", tag = "monitoring",
    responses(
        (status = 200, description = "Text exposition format 0.0.4", content_type = "text/plain", body = String),
    ))]
async fn stats(State(state): State<AppState>) -> Response {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], render(&state)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_exact_decimals() {
        assert_eq!(seconds(1), "0.001");
        assert_eq!(seconds(250), "0.25");
        assert_eq!(seconds(2500), "2.5");
        assert_eq!(seconds(30_000), "30");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), r#"a\"b\\c\nd"#);
    }
}
