//! The webhooks' alarms, raised through the broker's (see `hookmq_broker::alarms`):
//! - `action:http:<webhook>` while a webhook's receiver is down (its status
//!   `disconnected`), with EMQX's resource-down details and message; cleared, as EMQX's,
//!   without details, once it is reachable again, disabled or deleted; with several URLs,
//!   while none of them answers;
//! - `webhook_receiver_down:<webhook>:<field>` while one of a webhook's several URLs
//!   (`url`, `urls[0]`, ...) is `disconnected`, the others taking its events;
//! - `webhook_buffer_high:<webhook>` while its buffer holds 80% of its bound or more
//!   (`max_buffer_bytes` of journal for a disk buffer, `queue_capacity` events for a memory
//!   one), cleared below 60% (or when the webhook goes), as EMQX's CPU alarm.
//!
//! One watcher looks at every webhook each second: the states it reads change on the lanes,
//! and one place keeps what it raised, so every alarm it raises is also cleared.

use std::{collections::HashSet, sync::Arc, time::Duration};

use serde_json::json;

use super::Inner;
use crate::{health::State, spec::Buffer, webhook::Webhook};

/// How often the watcher looks.
const EVERY: Duration = Duration::from_secs(1);
/// Share of the bound at which the buffer alarm is raised.
const HIGH: f64 = 0.8;
/// Share of the bound under which it clears.
const LOW: f64 = 0.6;

fn down_alarm(name: &str) -> String {
    format!("action:http:{name}")
}

fn receiver_alarm(name: &str, field: &str) -> String {
    format!("webhook_receiver_down:{name}:{field}")
}

fn buffer_alarm(name: &str) -> String {
    format!("webhook_buffer_high:{name}")
}

/// How full a webhook's buffer is: used, bound, and what the bound is.
fn fill(webhook: &Webhook) -> Option<(u64, u64, &'static str)> {
    let spec = &webhook.spec;
    let metrics = webhook.metrics();
    match spec.buffer {
        Buffer::Disk => {
            let used = metrics.buffer.map_or(0, |b| b.disk_bytes);
            Some((used, spec.max_buffer_bytes, "max_buffer_bytes"))
        }
        Buffer::Memory => {
            let bound = u64::try_from(spec.queue_capacity).unwrap_or(u64::MAX);
            Some((metrics.queuing, bound, "queue_capacity"))
        }
        // The cluster's stream has its own bound, kept by NATS.
        Buffer::Cluster => None,
    }
}

/// Raises and clears the webhooks' alarms until the engine stops.
pub(super) async fn watch(inner: Arc<Inner>) {
    let mut raised: HashSet<String> = HashSet::new();
    let mut tick = tokio::time::interval(EVERY);
    loop {
        tokio::select! {
            () = inner.stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let mut now = HashSet::new();
        for webhook in inner.registry.webhooks.load().iter() {
            if webhook.spec.enable {
                look(&inner, webhook, &raised, &mut now);
            }
        }
        for gone in raised.difference(&now) {
            inner.broker.deactivate_alarm(gone, None);
        }
        raised = now;
    }
}

/// Raises or keeps the alarm of each of a webhook's several receivers that is down.
fn look_at_receivers(inner: &Inner, webhook: &Webhook, now: &mut HashSet<String>) {
    if webhook.receivers.len() == 1 {
        return;
    }
    let name = &webhook.spec.name;
    for ((field, _), receiver) in webhook
        .spec
        .receiver_urls()
        .iter()
        .zip(webhook.receivers.iter())
    {
        let health = receiver.health.snapshot();
        if health.state != State::Disconnected {
            continue;
        }
        let alarm = receiver_alarm(name, field);
        let error = health
            .last_error
            .unwrap_or_else(|| "Unknown reason".to_owned());
        inner.broker.activate_alarm(
            &alarm,
            // The field, not the URL: it may carry a token.
            json!({"webhook": name, "receiver": field, "reason": "receiver_down"}),
            format!("receiver {field} of webhook {name} down: {error}"),
        );
        now.insert(alarm);
    }
}

/// Raises or keeps the alarms `webhook` deserves now (into `now`), clearing the buffer
/// alarm under its low mark.
fn look(inner: &Inner, webhook: &Webhook, raised: &HashSet<String>, now: &mut HashSet<String>) {
    let name = &webhook.spec.name;
    look_at_receivers(inner, webhook, now);
    let health = webhook.receivers.status(true);
    let down = down_alarm(name);
    if health.state == State::Disconnected {
        let error = health
            .last_error
            .unwrap_or_else(|| "Unknown reason".to_owned());
        inner.broker.activate_alarm(
            &down,
            // Not the URL: it may carry a token, and alarms reach MQTT clients on $SYS.
            json!({"resource_id": down, "reason": "resource_down"}),
            format!("resource down: {error}"),
        );
        now.insert(down);
    }
    let Some((used, bound, what)) = fill(webhook) else {
        return;
    };
    let alarm = buffer_alarm(name);
    #[allow(clippy::cast_precision_loss)] // A share, shown with two decimals.
    let share = if bound == 0 {
        0.0
    } else {
        used as f64 / bound as f64
    };
    let usage = (share * 10_000.0).floor() / 100.0;
    let details = json!({
        "webhook": name, "used": used, "bound": bound, "bound_by": what, "usage": usage,
        "high_watermark": HIGH * 100.0, "low_watermark": LOW * 100.0,
    });
    let message = format!("buffer of webhook {name} at {usage:.2}% of {what}");
    if share >= HIGH {
        inner.broker.activate_alarm(&alarm, details, message);
        now.insert(alarm);
    } else if raised.contains(&alarm) {
        if share < LOW {
            inner
                .broker
                .deactivate_alarm(&alarm, Some((details, message)));
        } else {
            now.insert(alarm);
        }
    }
}
