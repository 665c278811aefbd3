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
//!
//! Handing over is two-step: the old node keeps what it handed over (and what it collected)
//! until the new node says the client is connected there, which it does once the session
//! is on its disk ([`kept`]). If that node dies first, the session is not lost: asked for
//! again, or after [`HOLD`], the old node finds out that the node it went to does not have
//! it and builds it here again, offline ([`take_back_if_lost`]).

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

/// How long a handed-over session is kept here at most without the new node saying it
/// has it; then that node is asked, and the session taken back if it has not.
const HOLD: std::time::Duration = std::time::Duration::from_secs(10);

/// A session handed to another node, kept here until that node says it has it.
#[derive(Debug)]
pub(crate) struct Holding {
    /// This hand-over's number, unlike any other's here (a session taken back and handed
    /// over again keeps its session id).
    handover: u64,
    session_id: u64,
    /// The node it went to.
    to: String,
    client: Arc<ClientInfo>,
    /// The session as it was handed over.
    handed: Vec<u8>,
    collected: Collected,
}

/// What a handed-over session's subscriptions collect here.
#[derive(Debug)]
enum Collected {
    /// Still collecting: the subscriptions are in the router, pointed at this mailbox.
    Collecting {
        filters: Vec<String>,
        mailbox: Arc<Mailbox>,
    },
    /// Given to the new node ([`release`]); kept until it says it has the session.
    Released(Vec<Delivery>),
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

/// Ends `state` here and returns it as bytes for the node `to`; its subscriptions collect
/// here until [`release`], and what was handed over is kept until [`kept`] (or [`HOLD`]).
pub(crate) fn hand_over(shared: &Arc<Shared>, mut state: Box<SessionState>, to: &str) -> Vec<u8> {
    if let Some(will) = state.pending_will.take() {
        will.abort();
    }
    let collecting = hold(shared, &state);
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
    keep_handed(
        shared,
        Holding {
            handover: shared.next_connection_id(),
            session_id: state.id,
            to: to.to_owned(),
            client: state.mailbox.client(),
            handed: bytes.clone(),
            collected: collecting,
        },
    );
    bytes
}

/// Points the subscriptions of `state` at a mailbox of their own (before its mailbox closes,
/// so no message falls between the two).
fn hold(shared: &Arc<Shared>, state: &SessionState) -> Collected {
    let mailbox = shared.new_mailbox(&state.mailbox.client());
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
    Collected::Collecting {
        filters: state
            .subscriptions
            .keys()
            .map(ToString::to_string)
            .collect(),
        mailbox,
    }
}

/// Keeps `holding` until [`kept`] or [`HOLD`], when the node it went to is asked.
fn keep_handed(shared: &Arc<Shared>, holding: Holding) {
    let client_id: Arc<str> = Arc::clone(&holding.client.client_id);
    let handover = holding.handover;
    // Bound first, so the lock is not held while the earlier holding ends.
    let earlier = shared
        .holding
        .lock()
        .insert(Arc::clone(&client_id), holding);
    if let Some(earlier) = earlier {
        let lost = collected(shared, earlier.session_id, earlier.collected).len();
        if lost > 0 {
            tracing::warn!(client = %client_id, messages = lost, "a session moved again before the node it moved to collected what was held for it");
        }
    }
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        tokio::time::sleep(HOLD).await;
        let still = shared
            .holding
            .lock()
            .get(&client_id)
            .is_some_and(|held| held.handover == handover);
        if still && !take_back_if_lost(&shared, &client_id).await {
            forget(&shared, &client_id, Some(handover));
        }
    });
}

/// Ends the collecting of `session_id`'s holding, if it still collects: its subscriptions
/// leave the router; returns what it collected (or what was released).
fn collected(shared: &Shared, session_id: u64, collected: Collected) -> Vec<Delivery> {
    if let Collected::Collecting { filters, .. } = &collected {
        for filter in filters {
            if let Ok(parsed) = topic::parse_subscription(filter) {
                shared
                    .router
                    .unsubscribe(parsed.filter, parsed.group, session_id);
            }
        }
    }
    collected.into_deliveries()
}

impl Collected {
    /// What was collected, the collecting ended (its subscriptions stay in the router).
    fn into_deliveries(self) -> Vec<Delivery> {
        match self {
            Self::Collecting { mailbox, .. } => mailbox.close(),
            Self::Released(deliveries) => deliveries,
        }
    }
}

/// What was held for `client_id`'s moved session, as bytes for the node it moved to
/// ([`add_held`]), ending the collecting (the session stays kept here until [`kept`]);
/// `None` if nothing is held for it.
pub(crate) fn release(shared: &Shared, client_id: &str) -> Option<Vec<u8>> {
    // Swapped in place: the holding stays in the map for whoever looks meanwhile.
    let (handover, session_id, collecting) = {
        let mut holdings = shared.holding.lock();
        let holding = holdings.get_mut(client_id)?;
        let collecting = match &holding.collected {
            Collected::Collecting { .. } => {
                std::mem::replace(&mut holding.collected, Collected::Released(Vec::new()))
            }
            Collected::Released(deliveries) => Collected::Released(deliveries.clone()),
        };
        (holding.handover, holding.session_id, collecting)
    };
    let deliveries = collected(shared, session_id, collecting);
    let mut held: Vec<Moving> = deliveries.iter().map(Moving::of).collect();
    if let Some(holding) = shared.holding.lock().get_mut(client_id)
        && holding.handover == handover
    {
        holding.collected = Collected::Released(deliveries);
    }
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

/// The client of a session handed over from here is connected elsewhere: the session
/// stays with it there, and what this node kept of it goes.
pub(crate) fn kept(shared: &Shared, client_id: &str) {
    forget(shared, client_id, None);
}

/// Forgets what is kept of `client_id`'s handed-over session (only if it is hand-over
/// `handover`, when given).
fn forget(shared: &Shared, client_id: &str, handover: Option<u64>) {
    let holding = {
        let mut holdings = shared.holding.lock();
        match holdings.get(client_id) {
            Some(held) if handover.is_none_or(|number| number == held.handover) => {
                holdings.remove(client_id)
            }
            _ => None,
        }
    };
    let Some(holding) = holding else {
        return;
    };
    if let Collected::Collecting { .. } = holding.collected {
        let lost = collected(shared, holding.session_id, holding.collected).len();
        if lost > 0 {
            tracing::warn!(client = %client_id, messages = lost, "messages held for a session that moved were never collected");
        }
    }
}

/// If `client_id`'s session was handed from here to a node that has not said it has it,
/// asks that node; if it has not (it died before), builds the session here again, offline,
/// with what was collected for it. Returns whether it did.
pub(crate) async fn take_back_if_lost(shared: &Arc<Shared>, client_id: &str) -> bool {
    let Some((to, handover)) = shared
        .holding
        .lock()
        .get(client_id)
        .map(|held| (held.to.clone(), held.handover))
    else {
        return false;
    };
    let kept_there = match shared.peers.get() {
        Some(peers) => peers.keeps(&to, client_id).await,
        None => false,
    };
    if kept_there {
        return false;
    }
    // Under the holdings lock until the session is parked: whoever looks for it next (a
    // CONNECT, another node's question, the timer) finds it offline, not half taken back.
    let mut holdings = shared.holding.lock();
    let holding = match holdings.get(client_id) {
        Some(held) if held.handover == handover => holdings.remove(client_id),
        _ => None,
    };
    let Some(holding) = holding else {
        return false;
    };
    let session_id = holding.session_id;
    // Built under its number here, so its subscriptions take the holding's place.
    let client = if holding.client.session_id == session_id {
        Arc::clone(&holding.client)
    } else {
        Arc::new(ClientInfo {
            session_id,
            ..(*holding.client).clone()
        })
    };
    let Some(state) = rebuild(shared, &client, &holding.handed) else {
        drop(holdings);
        collected(shared, session_id, holding.collected);
        return false;
    };
    // Its subscriptions are this session's again (same number): only the collecting ends.
    let held = holding.collected.into_deliveries();
    let added = state.mailbox.insert_unseen(state.moved_in, held);
    // Kept, as recovery keeps a session: nothing it holds is dropped for the offline bound.
    let _ = state.mailbox.set_offline(false);
    shared.park_offline(&client, state);
    drop(holdings);
    tracing::warn!(client = %client_id, node = %to, messages = added, "a session handed to a node that does not have it is kept here again");
    true
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
