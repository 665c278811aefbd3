//! A session moving between the nodes of a cluster: the node that holds it (connected or
//! offline) hands it over as bytes ([`hand_over`]) and ends it there; the node the client
//! connected to builds it again ([`rebuild`]) and goes on with it as with a session resumed
//! here: its subscriptions, its queued QoS 1/2 messages, the messages in flight (sent again
//! with DUP), the PUBRELs it owes and the QoS 2 packet ids awaiting PUBREL.

use std::sync::Arc;

use hookmq_codec::{QoS, topic};
use serde::{Deserialize, Serialize};

use super::{
    SessionState, SubscriptionRecord,
    inflight::Stage,
    mailbox::{Delivery, SubscriptionIds},
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

/// Ends `state` here and returns it as bytes for another node.
pub(crate) fn hand_over(shared: &Arc<Shared>, mut state: Box<SessionState>) -> Vec<u8> {
    if let Some(will) = state.pending_will.take() {
        will.abort();
    }
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
    shared.end_session(&state);
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
