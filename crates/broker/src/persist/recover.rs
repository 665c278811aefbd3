//! Start-up: the live records of the broker's journal back into the retained store, the
//! router and the registry. A session whose expiry passed while hookmq was down ends here
//! (its will, if it had one, is published); records of a session that is not live are
//! garbage and acknowledged.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use hookmq_codec::topic;

use super::{
    StateLog,
    record::{DeliveryRecord, Record, SessionRecord},
};
use crate::{
    connection::{PendingWill, publish_will_after},
    message::{Message, Publisher, now_ms},
    router::Subscriber,
    session::{
        SessionState, SubscriptionRecord,
        inflight::Stage,
        mailbox::{Delivery, SubscriptionIds},
    },
    shared::Shared,
};

/// What was recovered, for the start-up log.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Recovered {
    /// Sessions parked offline again.
    pub(crate) sessions: usize,
    /// Sessions whose expiry passed while hookmq was down.
    pub(crate) expired: usize,
    /// QoS 1/2 messages queued or in flight for them.
    pub(crate) messages: usize,
    /// Retained messages.
    pub(crate) retained: usize,
}

/// The live records of one session.
#[derive(Default)]
struct SessionParts {
    deliveries: Vec<(u64, DeliveryRecord)>,
    released: Vec<(u64, u16)>,
    awaiting_release: Vec<(u64, u16)>,
}

/// Rebuilds the broker's state from `records` (oldest first).
pub(crate) fn restore(
    shared: &Arc<Shared>,
    log: &StateLog,
    records: Vec<(u64, Record)>,
) -> Recovered {
    let mut recovered = Recovered::default();
    let mut garbage = Vec::new();
    let mut sessions: HashMap<u64, (u64, Box<SessionRecord>)> = HashMap::new();
    let mut retained: HashMap<hookmq_codec::ByteString, (u64, Arc<Message>)> = HashMap::new();
    let mut parts: HashMap<u64, SessionParts> = HashMap::new();
    let mut sent: HashMap<u64, (u64, u16)> = HashMap::new();
    let mut crashed_at = 0;
    for (seq, record) in records {
        match record {
            Record::Session(session) => {
                // Newer wins: an older one left live by a torn group is garbage.
                if let Some((old, _)) = sessions.insert(session.session_id, (seq, session)) {
                    garbage.push(old);
                }
            }
            Record::Retained(message) => {
                if let Some((old, _)) = retained.insert(message.topic.clone(), (seq, message)) {
                    garbage.push(old);
                }
            }
            Record::Delivery(delivery) => parts
                .entry(delivery.session_id)
                .or_default()
                .deliveries
                .push((seq, delivery)),
            Record::Sent {
                delivery,
                packet_id,
            } => {
                sent.insert(delivery, (seq, packet_id));
            }
            Record::Released {
                session_id,
                packet_id,
            } => parts
                .entry(session_id)
                .or_default()
                .released
                .push((seq, packet_id)),
            Record::AwaitingRelease {
                session_id,
                packet_id,
            } => parts
                .entry(session_id)
                .or_default()
                .awaiting_release
                .push((seq, packet_id)),
            Record::Clock(at) => {
                crashed_at = crashed_at.max(at);
                garbage.push(seq);
            }
        }
    }
    for (seq, message) in retained.into_values() {
        let mut message = Arc::unwrap_or_clone(message);
        message.restore_expiry();
        if message.is_expired(Instant::now()) {
            garbage.push(seq);
        } else {
            shared.retained.restore(Arc::new(message), seq);
            recovered.retained += 1;
        }
    }
    let now = now_ms();
    // A session connected at a crash lost its connection about when the writer last
    // noted the time; after a stop every session was written offline.
    let crashed_at = if crashed_at == 0 { now } else { crashed_at };
    // Newest first: of two sessions of one client id (a crash between one's start and the
    // other's end), the newer one is the client's.
    let mut sessions: Vec<(u64, Box<SessionRecord>)> = sessions.into_values().collect();
    sessions.sort_unstable_by_key(|(seq, _)| std::cmp::Reverse(*seq));
    let mut clients = std::collections::HashSet::new();
    for (seq, session) in sessions {
        let own = parts.remove(&session.session_id).unwrap_or_default();
        if !clients.insert(Arc::clone(&session.client.client_id)) {
            garbage.push(seq);
            garbage.extend(seqs_of(&own, &sent));
            continue;
        }
        shared.session_id_in_use(session.session_id);
        match restore_session(shared, seq, *session, own, &mut sent, crashed_at, now) {
            Some(messages) => {
                recovered.sessions += 1;
                recovered.messages += messages;
            }
            None => recovered.expired += 1,
        }
    }
    // Records of sessions that are not live.
    for own in parts.into_values() {
        garbage.extend(seqs_of(&own, &sent));
    }
    garbage.extend(sent.into_values().map(|(seq, _)| seq));
    log.acknowledge(garbage);
    recovered
}

/// Every record of `parts`, with the packet ids recorded for its deliveries.
fn seqs_of(parts: &SessionParts, sent: &HashMap<u64, (u64, u16)>) -> Vec<u64> {
    let mut seqs = Vec::new();
    for (seq, _) in &parts.deliveries {
        seqs.push(*seq);
        seqs.extend(sent.get(seq).map(|(s, _)| *s));
    }
    seqs.extend(parts.released.iter().map(|(seq, _)| *seq));
    seqs.extend(parts.awaiting_release.iter().map(|(seq, _)| *seq));
    seqs
}

/// Parks one session offline again, or ends it if it expired while hookmq was down.
/// Returns the messages it holds, or `None` if it expired.
#[allow(clippy::too_many_arguments)] // the recovery's state, passed apart
fn restore_session(
    shared: &Arc<Shared>,
    seq: u64,
    record: SessionRecord,
    parts: SessionParts,
    sent: &mut HashMap<u64, (u64, u16)>,
    crashed_at: u64,
    now: u64,
) -> Option<usize> {
    let SessionRecord {
        session_id,
        client,
        expiry_interval,
        subscriptions,
        disconnected_at,
        will,
    } = record;
    let offline_since = disconnected_at.unwrap_or(crashed_at);
    let expires_at_ms = (expiry_interval != u32::MAX)
        .then(|| offline_since.saturating_add(u64::from(expiry_interval) * 1000));
    // A will due before the session ends (or when it ends) goes out when due.
    let will = will.map(|w| {
        let due = w
            .due_at
            .unwrap_or_else(|| offline_since + u64::from(w.delay.min(expiry_interval)) * 1000);
        (
            PendingWill {
                will: w.will,
                delay: w.delay,
            },
            due,
        )
    });
    let mailbox = shared.new_mailbox(&client);
    mailbox.set_durable(true);
    let _ = mailbox.set_offline(false);
    let mut state = Box::new(SessionState::new(session_id, Arc::clone(&mailbox)));
    state.expiry_interval = expiry_interval;
    state.stored.record = seq;
    state.stored.offline_since = Some(offline_since);
    let mut messages = 0;
    for (delivery_seq, delivery) in parts.deliveries {
        let DeliveryRecord {
            message,
            qos,
            retain,
            subscription_ids,
            ..
        } = delivery;
        let mut message = Arc::unwrap_or_clone(message);
        message.restore_expiry();
        let delivery = Delivery {
            message: Arc::new(message),
            qos,
            retain,
            subscription_ids: SubscriptionIds::from_slice(&subscription_ids),
            stored: delivery_seq,
        };
        messages += 1;
        match sent.remove(&delivery_seq) {
            Some((sent_seq, packet_id)) => {
                let stage = if delivery.qos == hookmq_codec::QoS::ExactlyOnce {
                    Stage::AwaitingPubRec
                } else {
                    Stage::AwaitingPubAck
                };
                state
                    .outbound
                    .restore(packet_id, Some(delivery), stage, sent_seq);
            }
            None => mailbox.restore(delivery),
        }
    }
    for (released_seq, packet_id) in parts.released {
        state
            .outbound
            .restore(packet_id, None, Stage::AwaitingPubComp, released_seq);
    }
    state.awaiting_release = parts
        .awaiting_release
        .into_iter()
        .map(|(seq, packet_id)| (packet_id, seq))
        .collect();
    for entry in subscriptions {
        let Ok(parsed) = topic::parse_subscription(&entry.filter) else {
            continue;
        };
        shared.router.subscribe(
            parsed.filter,
            parsed.group,
            Subscriber {
                session_id,
                mailbox: Arc::clone(&mailbox),
                options: entry.options,
                subscription_id: entry.subscription_id,
            },
        );
        state.subscriptions.insert(
            entry.filter.clone(),
            SubscriptionRecord {
                options: entry.options,
                subscription_id: entry.subscription_id,
            },
        );
    }
    let publisher = Arc::new(Publisher {
        client_id: Arc::clone(&client.client_id),
        username: client.username.clone(),
        peer: Some(client.peer),
        session_id,
        protocol: Some(client.protocol),
        client_attrs: None,
    });
    if expires_at_ms.is_some_and(|at| at <= now) {
        // Ended while hookmq was down: its will was due by then.
        if let Some((pending, _)) = will {
            schedule_will(
                shared,
                pending,
                &publisher,
                now,
                now,
                &client.client_id,
                session_id,
            );
        }
        shared.end_session(&state);
        return None;
    }
    if let Some((pending, due)) = will {
        state.stored.will = Some(Box::new(pending.clone()));
        let handle = schedule_will(
            shared,
            pending,
            &publisher,
            due,
            now,
            &client.client_id,
            session_id,
        );
        state.pending_will = Some(handle);
    }
    let expires_at = expires_at_ms.map(|at| Instant::now() + Duration::from_millis(at - now));
    shared
        .registry
        .restore(Arc::clone(&client), state, expires_at);
    if let Some(at) = expires_at {
        shared.schedule_expiry(Arc::clone(&client.client_id), session_id, at);
    }
    Some(messages)
}

/// Starts the timer of a recovered will: it runs once the listeners accept (so hooks see the
/// will's events), at `due` (ms since the epoch).
fn schedule_will(
    shared: &Arc<Shared>,
    pending: PendingWill,
    publisher: &Arc<Publisher>,
    due: u64,
    now: u64,
    client_id: &Arc<str>,
    session_id: u64,
) -> tokio::task::AbortHandle {
    let message = Arc::new(pending.into_message(shared.ids.next_id(), Arc::clone(publisher)));
    let delay = Duration::from_millis(due.saturating_sub(now));
    let (shared, client_id) = (Arc::clone(shared), Arc::clone(client_id));
    let task = shared.tasks.spawn({
        let shared = Arc::clone(&shared);
        async move {
            shared.accepting.cancelled().await;
            publish_will_after(
                Arc::clone(&shared),
                message,
                delay,
                client_id,
                session_id,
                true,
            )
            .await;
        }
    });
    task.abort_handle()
}
