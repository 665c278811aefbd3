//! The state every connection shares: config, hooks, router, retained store, sessions,
//! authentication and counters; and the operations that span sessions (publishing, ending a
//! session, authorizing).

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Instant,
};

use hookmq_codec::{QoS, topic};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    auth::{Acl, Action, ClientIdentity, PasswordFile, Permission},
    config::{Config, NoMatch},
    hooks::{AuthzAction, AuthzResult, ClientInfo, EventData, EventKind, HookBatch, Hooks},
    message::{Message, MessageIdGenerator},
    persist::StateLog,
    router::{Retained, Route, Router},
    session::{
        SessionState,
        mailbox::{Delivery, Mailbox, Pushed, QueueLimits},
        registry::Registry,
    },
};

/// Broker-wide counters (all monotonic except the gauges noted).
#[derive(Debug, Default)]
pub struct Stats {
    /// Gauge: open network connections.
    pub connections: AtomicUsize,
    /// Connections accepted since start.
    pub connections_accepted: AtomicU64,
    /// Connections refused because `mqtt.max_connections` was reached.
    pub connections_refused: AtomicU64,
    /// CONNECTs answered with a failed CONNACK (bad credentials, not authorized, ...).
    pub connects_refused: AtomicU64,
    /// Connections closed for breaking the protocol (a bad CONNECT included).
    pub protocol_errors: AtomicU64,
    /// Connections refused at `mqtt.max_connections_per_address`.
    pub connections_refused_per_address: AtomicU64,
    /// Subscriptions refused at `mqtt.max_subscriptions` or `mqtt.max_topic_levels`.
    pub subscriptions_refused: AtomicU64,
    /// PUBLISH packets refused for a topic past `mqtt.max_topic_levels`.
    pub publishes_refused: AtomicU64,
    /// Times a connection's reading paused at `mqtt.max_publish_rate`.
    pub publish_rate_waits: AtomicU64,
    /// PUBLISH packets received from clients.
    pub messages_received: AtomicU64,
    /// PUBLISH packets sent to clients.
    pub messages_sent: AtomicU64,
    /// Messages that reached no subscriber.
    pub messages_dropped_no_subscribers: AtomicU64,
    /// Deliveries dropped (queue full, expired, too large, no-local, QoS 0 offline).
    pub deliveries_dropped: AtomicU64,
    /// Bytes read from clients.
    pub bytes_received: AtomicU64,
    /// Bytes written to clients.
    pub bytes_sent: AtomicU64,
}

/// What routing a message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Routed {
    /// Subscriptions it matched.
    pub(crate) matched: usize,
    /// Whether it went to the broker's journal (retained, or queued for a persistent
    /// session): an acknowledgement promising it is kept should wait for the disk.
    pub(crate) stored: bool,
    /// Whether it went to the other nodes of a cluster too (whose subscribers are not
    /// counted in `matched`).
    pub(crate) elsewhere: bool,
}

/// Loaded authentication and authorization sources, and the TLS listeners' certificates.
#[derive(Debug, Default)]
pub(crate) struct Access {
    pub(crate) passwords: Option<Arc<PasswordFile>>,
    pub(crate) acl: Option<Acl>,
    /// Read again on `SIGHUP` ([`crate::BrokerHandle::reload_certificates`]).
    pub(crate) certificates: Vec<Arc<crate::transport::tls::Certificates>>,
}

/// The shared core.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) hooks: Arc<Hooks>,
    pub(crate) router: Router,
    pub(crate) retained: Retained,
    pub(crate) registry: Registry,
    /// Sessions handed to another node whose subscriptions still collect here until that
    /// node has them in NATS (`session::transfer`), by client id. parking_lot: an insert or
    /// a removal per move, never held across `.await`.
    pub(crate) holding:
        parking_lot::Mutex<std::collections::HashMap<Arc<str>, crate::session::transfer::Holding>>,
    pub(crate) access: Access,
    /// The broker's journal (`[persistence]`), if on.
    pub(crate) persist: Option<Arc<StateLog>>,
    /// Cancelled once the listeners accept: recovered wills wait for it, so hooks attached
    /// in between see them.
    pub(crate) accepting: CancellationToken,
    /// Password checks running at once: each takes tens of ms and ~19 MiB, so a flood of
    /// CONNECTs queues here instead of exhausting memory and the blocking pool.
    pub(crate) password_checks: tokio::sync::Semaphore,
    pub(crate) ids: MessageIdGenerator,
    pub(crate) stats: Stats,
    /// The other nodes of a cluster, once one attaches.
    pub(crate) peers: std::sync::OnceLock<Arc<dyn crate::peers::Peers>>,
    /// Open connections by source address (used when `max_connections_per_address` is set).
    pub(crate) per_address: Arc<crate::limits::PerAddress>,
    /// Cancelled when the broker stops; connection tasks in their handshake watch it.
    pub(crate) shutdown: CancellationToken,
    /// Every connection and timer task, so shutdown can wait for them.
    pub(crate) tasks: TaskTracker,
    /// Active and past alarms.
    pub(crate) alarms: crate::alarms::Alarms,
    /// `[mqtt] client_attrs_init`, parsed: attribute names and their expressions.
    pub(crate) client_attrs: Vec<(Arc<str>, crate::client_attrs::Expression)>,
    session_ids: AtomicU64,
    connection_ids: AtomicU64,
}

impl Shared {
    pub(crate) fn new(config: Config, access: Access, persist: Option<Arc<StateLog>>) -> Self {
        let ids = MessageIdGenerator::new(&config.node.name);
        // Checked with the configuration: a rule that does not parse is not there.
        let client_attrs = config
            .mqtt
            .client_attrs_init
            .iter()
            .filter_map(|rule| {
                crate::client_attrs::check(rule)
                    .ok()
                    .map(|expression| (Arc::from(rule.set_as_attr.as_str()), expression))
            })
            .collect();
        Self {
            client_attrs,
            config,
            hooks: Arc::new(Hooks::default()),
            router: Router::default(),
            retained: Retained::new(persist.clone()),
            registry: Registry::default(),
            holding: parking_lot::Mutex::default(),
            access,
            persist,
            accepting: CancellationToken::new(),
            password_checks: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, std::num::NonZero::get),
            ),
            ids,
            stats: Stats::default(),
            per_address: Arc::default(),
            peers: std::sync::OnceLock::new(),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            alarms: crate::alarms::Alarms::default(),
            // From the clock, so a session's number is unique across restarts too (the
            // journal names sessions by it): a restart comes later than the last number
            // unless a process made more than one session per microsecond all its life.
            session_ids: AtomicU64::new(crate::message::now_micros().max(1)),
            connection_ids: AtomicU64::new(1),
        }
    }

    pub(crate) fn next_session_id(&self) -> u64 {
        self.session_ids.fetch_add(1, Ordering::Relaxed)
    }

    /// Makes later session numbers higher than `session_id` (a recovered session's).
    pub(crate) fn session_id_in_use(&self, session_id: u64) {
        self.session_ids
            .fetch_max(session_id.saturating_add(1), Ordering::Relaxed);
    }

    pub(crate) fn next_connection_id(&self) -> u64 {
        self.connection_ids.fetch_add(1, Ordering::Relaxed)
    }

    /// Routes a message to every matching subscription, storing it first if retained. Emits
    /// `message.publish`, then `delivery.dropped` per refused delivery and
    /// `message.dropped` (`no_subscribers`) if nothing matched. Events go into `events`, the
    /// publishing task's batch.
    pub(crate) fn publish(&self, message: Arc<Message>, events: &mut HookBatch) -> Routed {
        // EMQX stamps message.publish with the message's own time.
        events.emit_message(
            EventKind::MessagePublish,
            Some(message.received_at),
            &message,
            |message| EventData::MessagePublish {
                message: Arc::clone(message),
            },
        );
        let stored =
            message.retain && self.config.mqtt.retain_available && self.retained.store(&message);
        let peers = self.peers.get();
        // While a cluster can balance shared subscriptions (NATS queue groups), their
        // members here get this message through it like every node's; otherwise (no NATS,
        // or the forwarding queue full) here, and the message says so.
        let shared_here = match peers {
            None => true,
            Some(peers) => {
                let balanced = peers.balances_shared();
                !peers.forward(&message, !balanced) || !balanced
            }
        };
        let publisher = message.publisher.session_id;
        let (matched, delivered) = self.route_here(&message, publisher, shared_here, events);
        // In a cluster, subscribers elsewhere may take it: not known here, so not dropped.
        if matched == 0 && peers.is_none() {
            // As EMQX's counters, the broker's own `$SYS` messages are not counted as dropped
            // (the event still goes out).
            if !message.is_sys() {
                self.stats
                    .messages_dropped_no_subscribers
                    .fetch_add(1, Ordering::Relaxed);
            }
            events.emit_message(EventKind::MessageDropped, None, message, |message| {
                EventData::MessageDropped {
                    message,
                    reason: "no_subscribers",
                }
            });
        }
        Routed {
            matched,
            stored: stored || delivered,
            elsewhere: peers.is_some(),
        }
    }

    /// Delivers a message another node of the cluster published to this node's subscribers
    /// (its `message.publish` event, retained copy and forwarding were that node's).
    pub(crate) fn route_from_peer(&self, message: Arc<Message>, events: &mut HookBatch) {
        // No session here published it: 0 is no session's number, so no-local never applies.
        // Shared subscriptions get their copy through `route_shared_from_peer`.
        self.route_here(&message, 0, false, events);
    }

    /// Delivers a message NATS gave this node for `$share/{group}/{filter}` to one member
    /// here.
    pub(crate) fn route_shared_from_peer(
        &self,
        message: &Arc<Message>,
        group: &str,
        filter: &str,
        events: &mut HookBatch,
    ) {
        let mut delivered = None;
        self.router.route_shared(filter, group, |route| {
            if let Route::To(sub, _) = route {
                delivered = Some((Arc::clone(&sub.mailbox), sub.options, sub.subscription_id));
            }
        });
        let Some((mailbox, options, subscription_id)) = delivered else {
            return;
        };
        let delivery = Delivery {
            message: Arc::clone(message),
            qos: message.qos.min(options.qos),
            retain: message.retain && options.retain_as_published,
            subscription_ids: subscription_id.into(),
            stored: 0,
        };
        self.deliver(&mailbox, delivery, events);
    }

    /// Delivers `message` to the subscribers on this node; returns how many subscriptions
    /// matched and whether a delivery went to the broker's journal.
    fn route_here(
        &self,
        message: &Arc<Message>,
        publisher: u64,
        shared: bool,
        events: &mut HookBatch,
    ) -> (usize, bool) {
        let mut stored = false;
        let matched = self
            .router
            .route(&message.topic, publisher, shared, |route| match route {
                Route::NoLocal(sub) => {
                    self.stats
                        .deliveries_dropped
                        .fetch_add(1, Ordering::Relaxed);
                    events.emit_message(EventKind::DeliveryDropped, None, message, |message| {
                        EventData::DeliveryDropped {
                            client: sub.mailbox.client(),
                            message: Arc::clone(message),
                            reason: "no_local",
                        }
                    });
                }
                Route::To(sub, overlap) => {
                    let (qos, retain_as_published, subscription_ids) = match overlap {
                        None => (
                            sub.options.qos,
                            sub.options.retain_as_published,
                            sub.subscription_id.into(),
                        ),
                        Some(o) => (o.qos, o.retain_as_published, o.subscription_ids),
                    };
                    let delivery = Delivery {
                        message: Arc::clone(message),
                        qos: message.qos.min(qos),
                        retain: message.retain && retain_as_published,
                        subscription_ids,
                        stored: 0,
                    };
                    stored |= self.deliver(&sub.mailbox, delivery, events);
                }
            });
        (matched, stored)
    }

    /// Pushes one delivery into a mailbox, reporting what it displaced. Returns whether it
    /// went to the broker's journal too (QoS 1/2 to a persistent session).
    pub(crate) fn deliver(
        &self,
        mailbox: &crate::session::mailbox::Mailbox,
        delivery: Delivery,
        events: &mut HookBatch,
    ) -> bool {
        match mailbox.push(delivery) {
            Pushed::Queued { stored } => stored,
            Pushed::Dropped {
                victims,
                reason,
                subscriber,
                stored,
            } => {
                self.report_dropped(victims, reason, &subscriber, events);
                stored
            }
            Pushed::Closed => false,
        }
    }

    /// Counts deliveries a session's queue dropped and reports each as `delivery.dropped`.
    pub(crate) fn report_dropped(
        &self,
        victims: Vec<Delivery>,
        reason: &'static str,
        subscriber: &Arc<ClientInfo>,
        events: &mut HookBatch,
    ) {
        self.stats
            .deliveries_dropped
            .fetch_add(victims.len() as u64, Ordering::Relaxed);
        for victim in victims {
            events.emit_message(
                EventKind::DeliveryDropped,
                None,
                victim.message,
                |message| EventData::DeliveryDropped {
                    client: Arc::clone(subscriber),
                    message,
                    reason,
                },
            );
        }
    }

    /// A new session's queue, bounded as configured, for `client`.
    pub(crate) fn new_mailbox(&self, client: &Arc<ClientInfo>) -> Arc<Mailbox> {
        let config = &self.config.mqtt;
        Arc::new(Mailbox::new(
            QueueLimits {
                len: config.max_queue_len,
                bytes: config.max_queue_bytes,
            },
            config.queue_qos0,
            Arc::clone(client),
            self.persist.clone(),
        ))
    }

    /// Parks `state`, a session of `client` that has no connection, offline until its expiry
    /// (kept on disk if the journal is on); ends it if the client has another session here
    /// by now, or if it does not outlive its connection.
    pub(crate) fn park_offline(
        self: &Arc<Self>,
        client: &Arc<ClientInfo>,
        mut state: Box<SessionState>,
    ) {
        let expiry = state.expiry_interval;
        if expiry == 0 {
            self.end_session(&state);
            return;
        }
        if let Some(log) = &self.persist {
            state.stored.offline_since = Some(crate::message::now_ms());
            log.keep(&mut state, client, None);
        }
        let expires_at = (expiry != u32::MAX)
            .then(|| Instant::now() + std::time::Duration::from_secs(expiry.into()));
        let session_id = state.id;
        match self
            .registry
            .restore_if_absent(Arc::clone(client), state, expires_at)
        {
            Ok(()) => {
                if let Some(at) = expires_at {
                    self.schedule_expiry(Arc::clone(&client.client_id), session_id, at);
                }
            }
            Err(state) => self.end_session(&state),
        }
    }

    /// Ends a session: its subscriptions leave the router, its queue is discarded and the
    /// journal forgets it.
    pub(crate) fn end_session(&self, state: &SessionState) {
        for filter in state.subscriptions.keys() {
            if let Ok(parsed) = topic::parse_subscription(filter) {
                self.router
                    .unsubscribe(parsed.filter, parsed.group, state.id);
            }
        }
        state.mailbox.close();
        if let Some(log) = &self.persist {
            log.end_session(state);
        }
    }

    /// The journal, if `state` is a persistent session kept in it.
    pub(crate) fn journal_of(&self, state: &SessionState) -> Option<&StateLog> {
        self.persist.as_deref().filter(|_| state.stored.record != 0)
    }

    /// Decides whether `client` may `action` on `topic` (a name or filter; shared filters
    /// without their `$share/{group}/` prefix). Returns the result and its source (`file`,
    /// `default`, or `superuser` for a superuser, who may do anything, as in EMQX).
    pub(crate) fn authorize(
        &self,
        client: &ClientInfo,
        action: AuthzAction,
        topic: &str,
    ) -> (AuthzResult, &'static str) {
        if client.is_superuser {
            return (AuthzResult::Allow, "superuser");
        }
        if let Some(acl) = &self.access.acl {
            let who = ClientIdentity {
                client_id: &client.client_id,
                username: client.username.as_deref(),
                ip: client.peer.ip(),
            };
            let acl_action = match action {
                AuthzAction::Publish => Action::Publish,
                AuthzAction::Subscribe => Action::Subscribe,
            };
            match acl.check(&who, acl_action, topic) {
                Some(Permission::Allow) => return (AuthzResult::Allow, "file"),
                Some(Permission::Deny) => return (AuthzResult::Deny, "file"),
                None => {}
            }
        }
        match self.config.authz.no_match {
            NoMatch::Allow => (AuthzResult::Allow, "default"),
            NoMatch::Deny => (AuthzResult::Deny, "default"),
        }
    }

    /// Starts the timer that ends an offline session when it expires.
    pub(crate) fn schedule_expiry(
        self: &Arc<Self>,
        client_id: Arc<str>,
        session_id: u64,
        at: Instant,
    ) {
        let shared = Arc::clone(self);
        let shutdown = self.shutdown.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                () = tokio::time::sleep_until(at.into()) => {
                    if let Some(state) = shared.registry.take_expired(&client_id, session_id) {
                        shared.end_session(&state);
                    }
                }
                () = shutdown.cancelled() => {}
            }
        });
    }

    /// The highest QoS granted.
    pub(crate) fn max_qos(&self) -> QoS {
        QoS::from_u8(self.config.mqtt.max_qos).unwrap_or(QoS::ExactlyOnce)
    }
}
