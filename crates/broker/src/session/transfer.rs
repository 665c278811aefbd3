//! A session moving between the nodes of a cluster: the node that holds it (connected or
//! offline) hands it over as bytes ([`hand_over`]) and ends it there; the node the client
//! connected to builds it again ([`rebuild`]) and goes on with it as with a session resumed
//! here: its subscriptions, its queued QoS 1/2 messages, the messages in flight (sent again
//! with DUP), the PUBRELs it owes and the QoS 2 packet ids awaiting PUBREL.
//!
//! Until the new node's subscriptions are in NATS, messages for the session still come
//! here: the old node keeps the subscriptions a moment ([`Holding`]), collecting what they
//! match, and gives it over when the new node asks ([`release`]), which puts it in front
//! of what it queued itself, leaving out what it has already ([`add_held`]).

use std::sync::Arc;

use hookmq_codec::{QoS, topic};
use serde::{Deserialize, Serialize};

use super::{
    SessionState, SubscriptionRecord,
    inflight::Stage,
    mailbox::{Delivery, Mailbox, SubscriptionIds},
};
use crate::{
    hooks::ClientInfo, message::Message, persist::record::SubscriptionEntry, router::Subscriber,
    shared::Shared,
};

/// The format written now: this byte, then [`Transfer`] in postcard.
const FORMAT: u8 = 1;
/// Bytes a handed-over session takes at most (NATS's default message limit is 1 MiB): past
/// it, the oldest queued messages are left out (counted in the log).
const MOST_BYTES: usize = 900 * 1024;

/// How long a moved session's subscriptions collect here at most, if the new node never
/// asks for what they collected (it died meanwhile).
const HOLD: std::time::Duration = std::time::Duration::from_secs(10);

/// A moved session's subscriptions, still here, and what they collected.
#[derive(Debug)]
pub(crate) struct Holding {
    session_id: u64,
    filters: Vec<String>,
    mailbox: Arc<Mailbox>,
}

/// A session as it travels.
#[derive(Debug, Serialize, Deserialize)]
struct Transfer {
    expiry_interval: u32,
    subscriptions: Vec<SubscriptionEntry>,
    /// Oldest first.
    queued: Vec<Moving>,
    /// In the order they were first sent: packet id, the message (none past PUBREC), stage.
    in_flight: Vec<(u16, Option<Moving>, u8)>,
    awaiting_release: Vec<u16>,
}

/// One message on its way to the client.
#[derive(Debug, Serialize, Deserialize)]
struct Moving {
    message: Arc<Message>,
    qos: QoS,
    retain: bool,
    subscription_ids: Vec<u32>,
}

impl Moving {
    fn of(delivery: &Delivery) -> Self {
        Self {
            message: Arc::clone(&delivery.message),
            qos: delivery.qos,
            retain: delivery.retain,
            subscription_ids: delivery.subscription_ids.as_slice().to_vec(),
        }
    }

    fn into_delivery(self) -> Delivery {
        Delivery {
            message: self.message,
            qos: self.qos,
            retain: self.retain,
            subscription_ids: SubscriptionIds::from_slice(&self.subscription_ids),
            stored: 0,
        }
    }
}

const fn stage_code(stage: Stage) -> u8 {
    match stage {
        Stage::AwaitingPubAck => 0,
        Stage::AwaitingPubRec => 1,
        Stage::AwaitingPubComp => 2,
    }
}

const fn stage_of(code: u8) -> Option<Stage> {
    match code {
        0 => Some(Stage::AwaitingPubAck),
        1 => Some(Stage::AwaitingPubRec),
        2 => Some(Stage::AwaitingPubComp),
        _ => None,
    }
}

/// Ends `state` here and returns it as bytes for another node; its subscriptions collect
/// here until [`release`] (or [`HOLD`]).
pub(crate) fn hand_over(shared: &Arc<Shared>, mut state: Box<SessionState>) -> Vec<u8> {
    if let Some(will) = state.pending_will.take() {
        will.abort();
    }
    hold(shared, &state);
    let queued: Vec<Moving> = state.mailbox.close().iter().map(Moving::of).collect();
    let in_flight = state
        .outbound
        .in_order()
        .into_iter()
        .map(|(id, entry)| {
            (
                id,
                entry.delivery.as_ref().map(Moving::of),
                stage_code(entry.stage),
            )
        })
        .collect();
    let mut transfer = Transfer {
        expiry_interval: state.expiry_interval,
        subscriptions: state
            .subscriptions
            .iter()
            .map(|(filter, record)| SubscriptionEntry {
                filter: filter.clone(),
                options: record.options,
                subscription_id: record.subscription_id,
            })
            .collect(),
        queued,
        in_flight,
        awaiting_release: state.awaiting_release.keys().copied().collect(),
    };
    // Its subscriptions were given to the holding mailbox; the session ends on disk.
    if let Some(log) = &shared.persist {
        log.end_session(&state);
    }
    let mut bytes = encode(&transfer);
    let mut left_out = 0;
    while bytes.len() > MOST_BYTES && !transfer.queued.is_empty() {
        let cut = transfer.queued.len().div_ceil(4);
        transfer.queued.drain(..cut);
        left_out += cut;
        bytes = encode(&transfer);
    }
    if left_out > 0 {
        tracing::warn!(
            messages = left_out,
            "a session handed to another node was too large: its oldest queued messages were left out"
        );
    }
    bytes
}

/// Points the subscriptions of `state` at a mailbox of their own (before its mailbox closes,
/// so no message falls between the two) and keeps them until [`release`] or [`HOLD`].
fn hold(shared: &Arc<Shared>, state: &SessionState) {
    let client = state.mailbox.client();
    let mailbox = shared.new_mailbox(&client);
    let _ = mailbox.set_offline(false);
    for (filter, record) in &state.subscriptions {
        if let Ok(parsed) = topic::parse_subscription(filter) {
            shared.router.subscribe(
                parsed.filter,
                parsed.group,
                Subscriber {
                    session_id: state.id,
                    mailbox: Arc::clone(&mailbox),
                    options: record.options,
                    subscription_id: record.subscription_id,
                },
            );
        }
    }
    let holding = Holding {
        session_id: state.id,
        filters: state
            .subscriptions
            .keys()
            .map(ToString::to_string)
            .collect(),
        mailbox,
    };
    let client_id: Arc<str> = client.client_id.clone();
    // Bound first, so the lock is not held while the earlier holding ends.
    let earlier = shared
        .holding
        .lock()
        .insert(Arc::clone(&client_id), holding);
    if let Some(earlier) = earlier {
        let lost = unhold(shared, earlier).len();
        if lost > 0 {
            tracing::warn!(client = %client_id, messages = lost, "a session moved again before the node it moved to collected what was held for it");
        }
    }
    let (shared, session_id) = (Arc::clone(shared), state.id);
    tokio::spawn(async move {
        tokio::time::sleep(HOLD).await;
        let mut holding = shared.holding.lock();
        let Some(held) = holding.remove(&client_id) else {
            return;
        };
        if held.session_id != session_id {
            holding.insert(client_id, held);
            return;
        }
        drop(holding);
        let lost = unhold(&shared, held).len();
        if lost > 0 {
            tracing::warn!(client = %client_id, messages = lost, "messages held for a session that moved were never collected");
        }
    });
}

/// Ends a holding: its subscriptions leave the router; returns what it collected.
fn unhold(shared: &Shared, holding: Holding) -> Vec<Delivery> {
    for filter in &holding.filters {
        if let Ok(parsed) = topic::parse_subscription(filter) {
            shared
                .router
                .unsubscribe(parsed.filter, parsed.group, holding.session_id);
        }
    }
    holding.mailbox.close()
}

/// What was held for `client_id`'s moved session, as bytes for the node it moved to
/// ([`add_held`]), ending the holding; `None` if nothing is held for it.
pub(crate) fn release(shared: &Shared, client_id: &str) -> Option<Vec<u8>> {
    let holding = shared.holding.lock().remove(client_id)?;
    let mut held: Vec<Moving> = unhold(shared, holding).iter().map(Moving::of).collect();
    let mut bytes = postcard::to_extend(&held, vec![FORMAT]).unwrap_or_default();
    while bytes.len() > MOST_BYTES && !held.is_empty() {
        let cut = held.len().div_ceil(4);
        held.drain(..cut);
        tracing::warn!(
            client = client_id,
            messages = cut,
            "messages held for a moved session were too many to send: the oldest were left out"
        );
        bytes = postcard::to_extend(&held, vec![FORMAT]).unwrap_or_default();
    }
    Some(bytes)
}

/// Puts what the old node held ([`release`]) after the messages that came with the session
/// and before what was queued here since, leaving out the messages it has already. Returns
/// how many were added.
pub(crate) fn add_held(state: &SessionState, bytes: &[u8]) -> usize {
    let Some((&FORMAT, rest)) = bytes.split_first() else {
        return 0;
    };
    match postcard::from_bytes::<Vec<Moving>>(rest) {
        Ok(held) => state.mailbox.insert_unseen(
            state.moved_in,
            held.into_iter().map(Moving::into_delivery).collect(),
        ),
        Err(error) => {
            tracing::warn!(%error, "messages held for a moved session do not read");
            0
        }
    }
}

fn encode(transfer: &Transfer) -> Vec<u8> {
    postcard::to_extend(transfer, vec![FORMAT]).unwrap_or_default()
}

/// Builds a session handed over by another node for `client`: its subscriptions in the
/// router, its messages queued and in flight. `None` if the bytes do not read.
pub(crate) fn rebuild(
    shared: &Arc<Shared>,
    client: &Arc<ClientInfo>,
    bytes: &[u8],
) -> Option<Box<SessionState>> {
    let Some((&FORMAT, rest)) = bytes.split_first() else {
        tracing::warn!(client = %client.client_id, "a session from another node in an unknown format: starting afresh");
        return None;
    };
    let transfer: Transfer = match postcard::from_bytes(rest) {
        Ok(transfer) => transfer,
        Err(error) => {
            tracing::warn!(client = %client.client_id, %error, "a session from another node does not read: starting afresh");
            return None;
        }
    };
    let session_id = client.session_id;
    let mailbox = shared.new_mailbox(client);
    let mut state = Box::new(SessionState::new(session_id, Arc::clone(&mailbox)));
    state.expiry_interval = transfer.expiry_interval;
    state.moved_in = transfer.queued.len();
    for moving in transfer.queued {
        mailbox.restore(moving.into_delivery());
    }
    for (packet_id, moving, stage) in transfer.in_flight {
        if let Some(stage) = stage_of(stage) {
            let delivery = moving.map(Moving::into_delivery);
            state.outbound.restore(packet_id, delivery, stage, 0);
        }
    }
    state.awaiting_release = transfer
        .awaiting_release
        .into_iter()
        .map(|packet_id| (packet_id, 0))
        .collect();
    for entry in transfer.subscriptions {
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
    Some(state)
}
