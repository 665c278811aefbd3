//! Sessions: what outlives a connection (subscriptions, the queue, messages in flight) and the
//! registry that hands a session from one connection to the next.
//!
//! A session is owned by exactly one place at a time: by its connection task while the client
//! is connected (plain fields, no locks), or by the [`registry`] while it waits offline. Only
//! its [`mailbox::Mailbox`] is shared, with the router.

pub(crate) mod inflight;
pub(crate) mod mailbox;
pub(crate) mod registry;
pub(crate) mod transfer;

use std::{collections::HashMap, sync::Arc};

use crate::connection::PendingWill;

use hookmq_codec::{ByteString, SubscriptionOptions};
use tokio::task::AbortHandle;

use self::{inflight::Inflight, mailbox::Mailbox};

/// One subscription as the session remembers it (the router holds the routing copy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SubscriptionRecord {
    pub(crate) options: SubscriptionOptions,
    pub(crate) subscription_id: Option<u32>,
}

/// The state of one session.
#[derive(Debug)]
pub(crate) struct SessionState {
    /// Unique number of this session on this node.
    pub(crate) id: u64,
    /// Messages waiting to be sent.
    pub(crate) mailbox: Arc<Mailbox>,
    /// Subscriptions by the filter the client wrote (`$share/g/f` included).
    pub(crate) subscriptions: HashMap<ByteString, SubscriptionRecord>,
    /// QoS 1/2 messages sent to the client and not yet acknowledged.
    pub(crate) outbound: Inflight,
    /// Packet ids of QoS 2 messages received and routed, waiting for PUBREL, with the
    /// sequence number of the record that keeps each (0: none).
    pub(crate) awaiting_release: HashMap<u16, u64>,
    /// Session expiry interval in seconds (0: ends with the connection).
    pub(crate) expiry_interval: u32,
    /// A will waiting for its delay; cancelled if the client comes back in time.
    pub(crate) pending_will: Option<AbortHandle>,
    /// What the broker's journal keeps of a persistent session.
    pub(crate) stored: Stored,
    /// Deliveries at the head of the queue that came with the session from another node
    /// (`transfer::rebuild`): what that node held meanwhile goes after them.
    pub(crate) moved_in: usize,
}

/// A persistent session's place in the broker's journal (see `persist`).
#[derive(Debug, Default)]
pub(crate) struct Stored {
    /// Sequence number of the session's record; 0 while it has none (not persistent).
    pub(crate) record: u64,
    /// When it lost its connection (ms since the epoch); `None` while connected.
    pub(crate) offline_since: Option<u64>,
    /// The will waiting for its delay, kept to write it in the record again.
    pub(crate) will: Option<Box<PendingWill>>,
}

impl SessionState {
    pub(crate) fn new(id: u64, mailbox: Arc<Mailbox>) -> Self {
        Self {
            id,
            mailbox,
            subscriptions: HashMap::new(),
            outbound: Inflight::default(),
            awaiting_release: HashMap::new(),
            expiry_interval: 0,
            pending_will: None,
            stored: Stored::default(),
            moved_in: 0,
        }
    }
}
