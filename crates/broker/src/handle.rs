//! [`BrokerHandle`]: how the API and the webhooks reach the broker (queries, commands and the
//! event hook), never its internals.

use std::sync::{Arc, atomic::Ordering};

use crate::{
    hooks::{EventMask, HookAttachment, HookReceiver, HookSink, Hooks},
    router::SubscriptionRow,
    session::registry::{ClientSummary, Control},
    shared::Shared,
};

/// A cheap, cloneable handle on a running broker.
#[derive(Debug, Clone)]
pub struct BrokerHandle {
    pub(crate) shared: Arc<Shared>,
}

/// A snapshot of the broker's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatsSnapshot {
    /// Open connections.
    pub connections: usize,
    /// Sessions (connected or waiting offline).
    pub sessions: usize,
    /// Subscriptions.
    pub subscriptions: usize,
    /// Retained topics.
    pub retained: usize,
    /// Connections accepted since start.
    pub connections_accepted: u64,
    /// Connections refused at the limit.
    pub connections_refused: u64,
    /// CONNECTs answered with a failed CONNACK.
    pub connects_refused: u64,
    /// Connections closed for breaking the protocol.
    pub protocol_errors: u64,
    /// Connections refused at the per-address limit.
    pub connections_refused_per_address: u64,
    /// Subscriptions refused (quota, topic levels).
    pub subscriptions_refused: u64,
    /// PUBLISH packets refused (topic levels).
    pub publishes_refused: u64,
    /// Times a connection's reading paused at the publish rate limit.
    pub publish_rate_waits: u64,
    /// PUBLISH packets received.
    pub messages_received: u64,
    /// PUBLISH packets sent.
    pub messages_sent: u64,
    /// Messages that matched no subscriber.
    pub messages_dropped_no_subscribers: u64,
    /// Deliveries dropped.
    pub deliveries_dropped: u64,
    /// Bytes received.
    pub bytes_received: u64,
    /// Bytes sent.
    pub bytes_sent: u64,
    /// Events no hook listener could take.
    pub hook_events_dropped: u64,
    /// Records the persistence journal wrote (retained messages, session records, queued
    /// QoS 1/2 messages; not those acknowledged before their group was written).
    pub persistence_records_written: u64,
    /// Groups of records the persistence journal could not write (a full or failing disk).
    pub persistence_write_errors: u64,
}

/// How long handing a connected client's session over waits for its connection (less
/// than the asking node waits for the answer, `cluster::sessions`).
const TAKEOVER_WAIT: std::time::Duration = std::time::Duration::from_millis(1500);
/// How long handing over waits for a connection that is ending anyway to leave its session.
const ENDING_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

impl BrokerHandle {
    /// This node's name.
    #[must_use]
    pub fn node_name(&self) -> &str {
        &self.shared.config.node.name
    }

    /// The event hook.
    #[must_use]
    pub fn hooks(&self) -> &Arc<Hooks> {
        &self.shared.hooks
    }

    /// Activates alarm `name` (see [`crate::alarms`]); `false` when it already is active.
    pub fn activate_alarm(&self, name: &str, details: serde_json::Value, message: String) -> bool {
        self.shared.activate_alarm(name, details, message)
    }

    /// Deactivates alarm `name`, with the details and message of now (none: EMQX's
    /// `"no_details"` and the name); `false` when it is not active.
    pub fn deactivate_alarm(&self, name: &str, now: Option<(serde_json::Value, String)>) -> bool {
        self.shared.deactivate_alarm(name, now)
    }

    /// The active alarms (`true`) or the past ones (`false`), oldest first.
    #[must_use]
    pub fn alarms(&self, active: bool) -> Vec<crate::alarms::Alarm> {
        self.shared.alarms.list(&self.shared.config.alarm, active)
    }

    /// Forgets the past alarms.
    pub fn clear_alarm_history(&self) {
        self.shared.alarms.clear_history();
    }

    /// Listens to the events in `mask` with a channel of `capacity`.
    #[must_use]
    pub fn subscribe_events(&self, mask: EventMask, capacity: usize) -> HookReceiver {
        self.shared.hooks.subscribe(mask, capacity)
    }

    /// Calls `sink` inline, on the emitting session's task, for every event in `mask`, until
    /// the returned attachment is dropped. See [`HookSink`] for what a sink may do.
    #[must_use]
    pub fn attach_sink(&self, mask: EventMask, sink: Arc<dyn HookSink>) -> HookAttachment {
        self.shared.hooks.attach(mask, sink)
    }

    /// Every session's client.
    #[must_use]
    pub fn clients(&self) -> Vec<ClientSummary> {
        self.shared.registry.clients()
    }

    /// One client.
    #[must_use]
    pub fn client(&self, client_id: &str) -> Option<ClientSummary> {
        self.shared.registry.client(client_id)
    }

    /// Disconnects a connected client (reason `kicked`). Returns whether it was connected.
    #[must_use]
    pub fn kick(&self, client_id: &str) -> bool {
        match self.shared.registry.control(client_id) {
            Some(control) => {
                // A request already there ends the connection just as well.
                let _ = control.try_send(Control::Kick);
                true
            }
            None => false,
        }
    }

    /// Ends the connection of `client_id` here because it connected to another node of the
    /// cluster (reason `takenover`), and its session here, connected or offline: the client
    /// goes on with the session it has there (an offline one left here would queue copies
    /// of what it gets there, and its delayed will would fire though the client is alive).
    /// Returns whether it was connected here.
    pub fn taken_over_elsewhere(&self, client_id: &str) -> bool {
        // A session handed from here has reached its new node.
        crate::session::transfer::kept(&self.shared, client_id);
        if let Some(control) = self.shared.registry.control(client_id) {
            let _ = control.try_send(Control::Elsewhere);
            return true;
        }
        if let Some(mut state) = self.shared.registry.take_offline(client_id) {
            if let Some(will) = state.pending_will.take() {
                will.abort();
            }
            self.shared.end_session(&state);
        }
        false
    }

    /// Hands `client_id`'s session to another node of the cluster, where the client has
    /// just connected: ends its connection here, if any (DISCONNECT 0x8E, reason
    /// `takenover`), and its session here, and returns the session as bytes for
    /// `Peers::fetch_session` on the node `to`. `None` if it has no session here. A session
    /// handed from here before to a node that lost it is handed over again.
    pub async fn hand_over_session(&self, client_id: &str, to: &str) -> Option<Vec<u8>> {
        let shared = &self.shared;
        crate::session::transfer::take_back_if_lost(shared, client_id).await;
        let state = match shared.registry.online(client_id) {
            Some((control, connection_id)) => {
                let (reply, answer) = tokio::sync::oneshot::channel();
                let asked = control.try_send(Control::Takeover {
                    discard: false,
                    reply,
                });
                if asked.is_ok() {
                    self.taken_over(client_id, connection_id, answer).await?
                } else {
                    // The connection is ending already (the node stops, or the client was
                    // kicked): its session goes offline in a moment.
                    self.offline_soon(client_id).await?
                }
            }
            None => shared.registry.take_offline(client_id)?,
        };
        Some(crate::session::transfer::hand_over(shared, state, to))
    }

    /// The session a connection asked to hand it over answers with; or, if that connection
    /// was ending already (it took its last request before ours, which it never reads), the
    /// session it leaves offline. At most [`TAKEOVER_WAIT`].
    async fn taken_over(
        &self,
        client_id: &str,
        connection_id: u64,
        mut answer: tokio::sync::oneshot::Receiver<Box<crate::session::SessionState>>,
    ) -> Option<Box<crate::session::SessionState>> {
        let deadline = tokio::time::Instant::now() + TAKEOVER_WAIT;
        loop {
            match answer.try_recv() {
                Ok(state) => {
                    self.shared
                        .registry
                        .forget_connection(client_id, connection_id);
                    return Some(state);
                }
                Err(tokio::sync::oneshot::error::TryRecvError::Closed) => {
                    return self.offline_soon(client_id).await;
                }
                Err(tokio::sync::oneshot::error::TryRecvError::Empty) => {}
            }
            if self.shared.registry.online(client_id).is_none() {
                return self.shared.registry.take_offline(client_id);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// Takes `client_id`'s session once its ending connection has left it offline, waiting
    /// [`ENDING_WAIT`] at most.
    async fn offline_soon(&self, client_id: &str) -> Option<Box<crate::session::SessionState>> {
        let deadline = tokio::time::Instant::now() + ENDING_WAIT;
        loop {
            if self.shared.registry.online(client_id).is_none() {
                return self.shared.registry.take_offline(client_id);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Whether `client_id` has a session here (connected, offline, or connecting).
    #[must_use]
    pub fn has_session(&self, client_id: &str) -> bool {
        self.shared.registry.client(client_id).is_some()
    }

    /// Every subscription.
    #[must_use]
    pub fn subscriptions(&self) -> Vec<SubscriptionRow> {
        self.shared.router.list()
    }

    /// Joins a cluster: this node's publishes go to `peers` from now on, and the filters
    /// with subscribers here are recorded for [`BrokerHandle::interest_changes`] (starting
    /// with every one there is). Only the first call counts.
    pub fn attach_peers(&self, peers: Arc<dyn crate::peers::Peers>) {
        if self.shared.peers.set(peers).is_ok() {
            self.shared.router.enable_interest();
        }
    }

    /// The filters that gained their first (`true`) or lost their last (`false`) direct
    /// subscriber here since the last call, and the `$share/{group}/{filter}` that gained
    /// their first or lost their last member, waiting until there is one. For the cluster
    /// link, which subscribes to what the other nodes publish on them.
    /// Also returns the number of changes recorded up to them ([`Self::interest_recorded`]).
    pub async fn interest_changes(&self) -> (std::collections::HashMap<String, bool>, u64) {
        self.shared.router.interest.next().await
    }

    /// Interest changes recorded so far: once the link has applied this many, every
    /// subscription made here before the call is in the cluster.
    #[must_use]
    pub fn interest_recorded(&self) -> u64 {
        self.shared.router.interest.recorded()
    }

    /// What the subscriptions of `client_id`'s session, handed to another node, collected
    /// here since, as bytes for that node; ends the holding. `None` if none is held.
    #[must_use]
    pub fn release_session(&self, client_id: &str) -> Option<Vec<u8>> {
        crate::session::transfer::release(&self.shared, client_id)
    }

    /// Delivers a message another node published to one member of the shared subscription
    /// `$share/{group}/{filter}` here (NATS chose this node among the group's).
    pub fn route_shared_from_peer(
        &self,
        mut message: crate::message::Message,
        group: &str,
        filter: &str,
    ) {
        message.restore_expiry();
        let mut events = crate::hooks::HookBatch::new(Arc::clone(&self.shared.hooks));
        self.shared
            .route_shared_from_peer(&Arc::new(message), group, filter, &mut events);
    }

    /// Keeps another node's retained message here, for subscribers that come later (an
    /// empty payload clears the topic). Not forwarded, not reported as an event.
    pub fn retain_from_peer(&self, mut message: crate::message::Message) {
        if !self.shared.config.mqtt.retain_available {
            return;
        }
        if self.shared.retained.holds(&message.topic, message.id) {
            return;
        }
        message.restore_expiry();
        self.shared.retained.store(&Arc::new(message));
    }

    /// Clears `topic`'s retained message here, as another node did.
    pub fn clear_retained_from_peer(&self, topic: &str) {
        self.shared.retained.clear(topic);
    }

    /// Delivers a message another node published to the subscribers here.
    pub fn route_from_peer(&self, mut message: crate::message::Message) {
        // Its expiry travels as its receive time and interval: on this node's clock now.
        message.restore_expiry();
        let mut events = crate::hooks::HookBatch::new(Arc::clone(&self.shared.hooks));
        self.shared.route_from_peer(Arc::new(message), &mut events);
    }

    /// Reads the TLS listeners' certificate and key files again (on `SIGHUP`): new
    /// handshakes use them, open connections keep theirs. A listener whose files do not
    /// load keeps the pair it has. Returns how many listeners were reloaded.
    ///
    /// # Errors
    /// The first listener whose files did not load, after trying every listener.
    pub fn reload_certificates(&self) -> Result<usize, crate::error::BrokerError> {
        let mut reloaded = 0;
        let mut first_error = None;
        for certificates in &self.shared.access.certificates {
            match certificates.reload() {
                Ok(()) => {
                    reloaded += 1;
                    tracing::info!(
                        listener = certificates.listener(),
                        "TLS certificate reloaded"
                    );
                }
                Err(error) => {
                    tracing::error!(%error, "TLS certificate not reloaded: the old one stays");
                    first_error.get_or_insert(error);
                }
            }
        }
        first_error.map_or(Ok(reloaded), Err)
    }

    /// The counters now.
    #[must_use]
    pub fn stats(&self) -> StatsSnapshot {
        let s = &self.shared.stats;
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        StatsSnapshot {
            connections: s.connections.load(Ordering::Relaxed),
            sessions: self.shared.registry.len(),
            subscriptions: self.shared.router.len(),
            retained: self.shared.retained.len(),
            connections_accepted: load(&s.connections_accepted),
            connections_refused: load(&s.connections_refused),
            connects_refused: load(&s.connects_refused),
            protocol_errors: load(&s.protocol_errors),
            connections_refused_per_address: load(&s.connections_refused_per_address),
            subscriptions_refused: load(&s.subscriptions_refused),
            publishes_refused: load(&s.publishes_refused),
            publish_rate_waits: load(&s.publish_rate_waits),
            messages_received: load(&s.messages_received),
            messages_sent: load(&s.messages_sent),
            messages_dropped_no_subscribers: load(&s.messages_dropped_no_subscribers),
            deliveries_dropped: load(&s.deliveries_dropped),
            bytes_received: load(&s.bytes_received),
            bytes_sent: load(&s.bytes_sent),
            hook_events_dropped: self.shared.hooks.dropped(),
            persistence_records_written: self
                .shared
                .persist
                .as_ref()
                .map_or(0, |log| log.records_written()),
            persistence_write_errors: self
                .shared
                .persist
                .as_ref()
                .map_or(0, |log| log.write_errors()),
        }
    }
}
