//! `$SYS` topics, as EMQX publishes them (`[sys_topics]`). Under `$SYS/brokers/<node>/`:
//! every `sys_heartbeat_interval` `uptime` (ms) and `datetime` (RFC 3339); every
//! `sys_msg_interval` `version` and `sysdescr` (retained), the counts under `stats/` and
//! `metrics/`, and `$SYS/brokers` (the node's name, retained; not in a cluster, where
//! every node would overwrite the others'); and, as clients come and go,
//! `clients/<clientid>/connected`, `disconnected` (and, when asked for, `subscribed`,
//! `unsubscribed`) with EMQX's JSON. QoS 0, from the broker itself (client id `emqx_sys`),
//! through the one publish path, so they trigger `message.publish` events as EMQX's do (a
//! webhook skips them unless `ignore_sys_message` is off).

use std::{sync::Arc, time::Duration};

use hookmq_codec::{Properties, QoS};
use serde_json::{Map, Value, json};

use crate::{
    hooks::{ClientInfo, EventData, EventKind, EventMask, HookBatch},
    message::{Message, MessageParts, Publisher, now_ms},
    shared::Shared,
};

/// Client events waiting to become `$SYS` messages at most; past it they are dropped and
/// counted with the hooks' other dropped events (a flood of connects must not queue
/// without bound).
const EVENTS_QUEUED: usize = 4096;

/// Starts the `$SYS` publishers the configuration asks for; they end at shutdown.
pub(crate) fn start(shared: &Arc<Shared>) {
    let config = &shared.config.sys_topics;
    let started = now_ms();
    if !config.sys_heartbeat_interval.is_zero() {
        let shared = Arc::clone(shared);
        let every = config.sys_heartbeat_interval;
        tokio::spawn(every_interval(Arc::clone(&shared), every, move || {
            publish(
                &shared,
                "uptime",
                now_ms().saturating_sub(started).to_string(),
                false,
            );
            publish(&shared, "datetime", rfc3339(now_ms()), false);
        }));
    }
    if !config.sys_msg_interval.is_zero() {
        let shared = Arc::clone(shared);
        let every = config.sys_msg_interval;
        tokio::spawn(every_interval(Arc::clone(&shared), every, move || {
            publish_info(&shared);
        }));
    }
    let wanted = config.sys_event_messages;
    let mask = [
        (wanted.client_connected, EventKind::ClientConnected),
        (wanted.client_disconnected, EventKind::ClientDisconnected),
        (wanted.client_subscribed, EventKind::SessionSubscribed),
        (wanted.client_unsubscribed, EventKind::SessionUnsubscribed),
    ]
    .into_iter()
    .filter(|(on, _)| *on)
    .fold(EventMask::NONE, |mask, (_, kind)| mask.with(kind));
    if mask != EventMask::NONE {
        // A channel, not a sink: the messages are published off the sessions' tasks.
        let mut events = shared.hooks.subscribe(mask, EVENTS_QUEUED);
        let shared = Arc::clone(shared);
        tokio::spawn(async move {
            loop {
                let event = tokio::select! {
                    () = shared.shutdown.cancelled() => return,
                    event = events.recv() => event,
                };
                let Some(event) = event else { return };
                if let Some((client, what, payload)) = client_event(&event.data) {
                    let topic = format!("clients/{}/{what}", client.client_id);
                    publish(&shared, &topic, payload.to_string(), false);
                }
            }
        });
    }
}

/// Runs `publish` every `every` (the first time one interval after the start, as EMQX's
/// timers) until shutdown.
async fn every_interval(shared: Arc<Shared>, every: Duration, publish: impl Fn()) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shared.shutdown.cancelled() => return,
            _ = tick.tick() => publish(),
        }
    }
}

/// `version`, `sysdescr`, `$SYS/brokers`, and the counts under `stats/` and `metrics/`.
fn publish_info(shared: &Arc<Shared>) {
    publish(
        shared,
        "version",
        env!("CARGO_PKG_VERSION").to_owned(),
        true,
    );
    publish(shared, "sysdescr", SYSDESCR.to_owned(), true);
    if shared.peers.get().is_none() {
        publish_at(
            shared,
            "$SYS/brokers".to_owned(),
            shared.config.node.name.clone(),
            true,
        );
    }
    let stats = crate::BrokerHandle {
        shared: Arc::clone(shared),
    }
    .stats();
    let counts = [
        ("stats/connections/count", stats.connections as u64),
        ("stats/sessions/count", stats.sessions as u64),
        ("stats/subscriptions/count", stats.subscriptions as u64),
        ("stats/retained/count", stats.retained as u64),
        ("metrics/bytes/received", stats.bytes_received),
        ("metrics/bytes/sent", stats.bytes_sent),
        ("metrics/messages/received", stats.messages_received),
        ("metrics/messages/sent", stats.messages_sent),
        (
            "metrics/messages/dropped/no_subscribers",
            stats.messages_dropped_no_subscribers,
        ),
    ];
    for (topic, count) in counts {
        publish(shared, topic, count.to_string(), false);
    }
}

/// What `$SYS/brokers/<node>/sysdescr` says.
const SYSDESCR: &str = "hookmq: an MQTT broker whose webhooks deliver every event";

/// Publishes `payload` on `$SYS/brokers/<node>/<topic>`.
fn publish(shared: &Arc<Shared>, topic: &str, payload: String, retain: bool) {
    let full = format!("$SYS/brokers/{}/{topic}", shared.config.node.name);
    publish_at(shared, full, payload, retain);
}

/// Publishes an alarm's change on `$SYS/brokers/<node>/alarms/<change>` (`activate`,
/// `deactivate`), whatever `[sys_topics]` says, as EMQX does.
pub(crate) fn publish_alarm(shared: &Arc<Shared>, change: &str, payload: String) {
    publish(shared, &format!("alarms/{change}"), payload, false);
}

fn publish_at(shared: &Arc<Shared>, topic: String, payload: String, retain: bool) {
    let publisher = Arc::new(Publisher {
        // As EMQX names the sender of its $SYS messages, for receivers that look for it.
        client_id: Arc::from("emqx_sys"),
        username: None,
        peer: None,
        session_id: 0,
        protocol: None,
        client_attrs: None,
    });
    let parts = MessageParts {
        topic: topic.into(),
        payload: payload.into(),
        qos: QoS::AtMostOnce,
        retain,
        dup: false,
        properties: Properties::default(),
    };
    let message = Message::received(shared.ids.next_id(), parts, publisher);
    shared.publish(
        Arc::new(message),
        &mut HookBatch::new(Arc::clone(&shared.hooks)),
    );
}

/// The client, the topic's last level and the JSON of a client event, as EMQX writes them.
fn client_event(data: &EventData) -> Option<(&Arc<ClientInfo>, &'static str, Value)> {
    let now = now_ms();
    match data {
        EventData::ClientConnected { client } => {
            let mut payload = common(client, now);
            payload.insert("keepalive".into(), client.keep_alive.into());
            payload.insert("clean_start".into(), client.clean_start.into());
            payload.insert("expiry_interval".into(), client.expiry_interval.into());
            Some((client, "connected", Value::Object(payload)))
        }
        EventData::ClientDisconnected {
            client,
            reason,
            disconnected_at,
            ..
        } => {
            let mut payload = common(client, now);
            payload.insert("reason".into(), reason.to_string().into());
            payload.insert("disconnected_at".into(), (*disconnected_at).into());
            Some((client, "disconnected", Value::Object(payload)))
        }
        EventData::SessionSubscribed {
            client,
            filter,
            options,
            ..
        } => Some((
            client,
            "subscribed",
            json!({
                "clientid": &*client.client_id,
                "username": username(client),
                "protocol": "mqtt",
                "topic": &**filter,
                "subopts": {
                    "qos": options.qos as u8,
                    "nl": u8::from(options.no_local),
                    "rap": u8::from(options.retain_as_published),
                    "rh": options.retain_handling as u8,
                },
                "ts": now,
            }),
        )),
        EventData::SessionUnsubscribed { client, filter, .. } => Some((
            client,
            "unsubscribed",
            json!({
                "clientid": &*client.client_id,
                "username": username(client),
                "protocol": "mqtt",
                "topic": &**filter,
                "ts": now,
            }),
        )),
        _ => None,
    }
}

/// The fields every client event message has.
fn common(client: &ClientInfo, now: u64) -> Map<String, Value> {
    let mut payload = Map::new();
    payload.insert("clientid".into(), (*client.client_id).into());
    payload.insert("username".into(), username(client).into());
    payload.insert("ipaddress".into(), client.peer.ip().to_string().into());
    payload.insert("sockport".into(), client.local.port().into());
    payload.insert("protocol".into(), "mqtt".into());
    payload.insert("proto_name".into(), "MQTT".into());
    payload.insert("proto_ver".into(), client.protocol.level().into());
    payload.insert("connected_at".into(), client.connected_at.into());
    payload.insert("ts".into(), now.into());
    payload
}

/// The user name as EMQX writes a missing one: `undefined`.
fn username(client: &ClientInfo) -> &str {
    client.username.as_deref().unwrap_or("undefined")
}

/// `ms` (since the epoch) as an RFC 3339 UTC time with milliseconds.
#[must_use]
pub fn rfc3339(ms: u64) -> String {
    let (days, ms_of_day) = (ms / 86_400_000, ms % 86_400_000);
    let (year, month, day) = civil_from_days(days);
    let (h, m, s, milli) = (
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1000 % 60,
        ms_of_day % 1000,
    );
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{milli:03}Z")
}

/// The civil date (year, month, day) of `days` since 1970-01-01 (Howard Hinnant's
/// algorithm).
#[must_use]
pub fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(1_796_170_245_123), "2026-12-02T00:10:45.123Z");
    }
}
