//! Collects every event the broker emits, for assertions on sequences.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use hookmq_broker::hooks::{Event, EventData, HookReceiver};

use super::PATIENCE;

/// Every event since the broker started, in emission order.
#[derive(Clone)]
pub struct EventLog {
    events: Arc<Mutex<Vec<Arc<Event>>>>,
}

impl EventLog {
    pub fn new(mut receiver: HookReceiver) -> Self {
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&events);
        tokio::spawn(async move {
            while let Some(event) = receiver.recv().await {
                sink.lock().expect("log lock").push(event);
            }
        });
        Self { events }
    }

    /// All events so far.
    pub fn all(&self) -> Vec<Arc<Event>> {
        self.events.lock().expect("log lock").clone()
    }

    /// Events of one client (as [`Event::client_id`] defines it).
    pub fn of(&self, client_id: &str) -> Vec<Arc<Event>> {
        self.all()
            .into_iter()
            .filter(|e| e.client_id() == client_id)
            .collect()
    }

    /// The names of one client's events, with the reason for drops and disconnects.
    pub fn names(&self, client_id: &str) -> Vec<String> {
        self.of(client_id).iter().map(|e| describe(e)).collect()
    }

    /// Waits until `done` holds for the log, failing after [`PATIENCE`].
    pub async fn wait_until(&self, what: &str, done: impl Fn(&[Arc<Event>]) -> bool) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if done(&self.all()) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}; events: {:#?}",
                self.all().iter().map(|e| describe(e)).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until `client_id` has an event described as `description`.
    pub async fn wait_for(&self, client_id: &str, description: &str) {
        let log = self.clone();
        self.wait_until(&format!("{description} of {client_id}"), |_| {
            log.names(client_id).iter().any(|d| d == description)
        })
        .await;
    }
}

/// `kind` or `kind(reason)` for dropped/disconnected, `kind(action:result)` for authz.
pub fn describe(event: &Event) -> String {
    let name = event.kind().name();
    match &event.data {
        EventData::ClientDisconnected { reason, .. }
        | EventData::MessageDropped { reason, .. }
        | EventData::DeliveryDropped { reason, .. } => format!("{name}({reason})"),
        EventData::CheckAuthzComplete { action, result, .. } => {
            format!("{name}({}:{})", action.as_str(), result.as_str())
        }
        EventData::ClientConnack { reason_code, .. }
        | EventData::CheckAuthnComplete { reason_code, .. } => format!("{name}({reason_code})"),
        _ => name.to_owned(),
    }
}
