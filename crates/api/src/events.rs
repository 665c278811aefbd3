//! `/webhook_events`: the catalogue of events a webhook can fire on, each with the fields of
//! its EMQX body and a sample, rendered by the same code that renders real requests (so the
//! list of fields cannot drift from what receivers get).

use axum::{Json, extract::State};
use hookmq_broker::hooks::EventKind;
use hookmq_webhooks::{
    render::emqx::{RenderContext, event_object},
    samples::sample,
    spec::PayloadEncoding,
};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{auth::Authenticated, error::ErrorBody, state::AppState};

/// `/webhook_events`.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

/// Whether an event is about a message or a client.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum EventClass {
    /// Message events (filtered by a webhook's topics).
    Message,
    /// Client and session events.
    Client,
    /// The broker's alarms.
    Alarm,
}

/// One event of the catalogue.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EventInfo {
    /// The name a webhook's `events` uses, e.g. `message.publish`.
    event: &'static str,
    /// A short English title.
    title: &'static str,
    /// When it fires.
    description: &'static str,
    /// `message` or `client`.
    kind: EventClass,
    /// The top-level fields of its body (usable as `${field}` in templates), sorted.
    fields: Vec<String>,
    /// A sample body.
    #[schema(value_type = Object)]
    sample: Map<String, Value>,
}

/// Title and description of each event.
pub(crate) const fn describe(kind: EventKind) -> (&'static str, &'static str) {
    match kind {
        EventKind::ClientConnected => (
            "Client connected",
            "A client connected and its session is attached, before CONNACK is sent.",
        ),
        EventKind::ClientConnack => (
            "Connection acknowledged",
            "CONNACK was sent to a client, accepting or refusing it (reason_code).",
        ),
        EventKind::ClientDisconnected => (
            "Client disconnected",
            "A client's connection closed, with EMQX's reason name (normal, kicked, ...).",
        ),
        EventKind::CheckAuthnComplete => (
            "Authentication complete",
            "A client's user name and password were checked (or it came in anonymously).",
        ),
        EventKind::CheckAuthzComplete => (
            "Authorization complete",
            "A PUBLISH or a SUBSCRIBE filter was allowed or denied.",
        ),
        EventKind::SessionSubscribed => (
            "Session subscribed",
            "A session added a subscription (one event per filter).",
        ),
        EventKind::SessionUnsubscribed => (
            "Session unsubscribed",
            "A session removed a subscription (one event per filter).",
        ),
        EventKind::MessagePublish => (
            "Message published",
            "A message was published (or a will sent), before it is routed.",
        ),
        EventKind::MessageDelivered => (
            "Message delivered",
            "A message was written to a subscriber.",
        ),
        EventKind::MessageAcked => (
            "Message acknowledged",
            "A subscriber acknowledged a QoS 1 or 2 message (PUBACK or PUBREC).",
        ),
        EventKind::MessageDropped => (
            "Message dropped",
            "A published message reached no subscriber, or was refused (reason).",
        ),
        EventKind::DeliveryDropped => (
            "Delivery dropped",
            "A message was not delivered to one subscriber: its queue was full, it expired, \
             it was too large... (reason).",
        ),
        EventKind::AlarmActivated => (
            "Alarm activated",
            "An alarm became active: high memory, a webhook's receiver down or its buffer \
             near its bound, a listener that cannot accept.",
        ),
        EventKind::AlarmDeactivated => ("Alarm deactivated", "An active alarm cleared."),
    }
}

/// Every event a webhook can fire on, with its body's fields and a sample body.
#[utoipa::path(get, path = "/webhook_events", tag = "webhooks",
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "The 14 events", body = Vec<EventInfo>),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
    ))]
async fn list(_: Authenticated, State(state): State<AppState>) -> Json<Vec<EventInfo>> {
    let node = state.engine.node();
    let context = RenderContext {
        node,
        rule_id: "my_webhook",
        payload_encoding: PayloadEncoding::Plain,
    };
    let events = EventKind::ALL
        .into_iter()
        .map(|kind| {
            let sample = event_object(&sample(kind, node), context);
            let mut fields: Vec<String> = sample.keys().cloned().collect();
            fields.sort();
            let (title, description) = describe(kind);
            EventInfo {
                event: kind.name(),
                title,
                description,
                kind: if kind.is_message_event() {
                    EventClass::Message
                } else if matches!(
                    kind,
                    EventKind::AlarmActivated | EventKind::AlarmDeactivated
                ) {
                    EventClass::Alarm
                } else {
                    EventClass::Client
                },
                fields,
                sample,
            }
        })
        .collect();
    Json(events)
}
