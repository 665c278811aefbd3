//! The link between this node and the others: the forwarding queue and its publisher, the
//! interest task (a NATS subscription per filter with subscribers here) and the receivers.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use async_nats::{Client, HeaderMap, Subscriber};
use bytes::Bytes;
use futures_util::StreamExt as _;
use hookmq_broker::{
    BrokerHandle,
    hooks::Durable,
    message::{Message, MessageId},
    peers::Peers,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::{ClusterConfig, ClusterError, confirm::Confirmations, retained, subject};

/// The header naming the node a message (or an answer) comes from (its own subscriptions
/// hear it too).
pub(crate) const ORIGIN: &str = "hookmq-node";
/// The header of a message whose origin gave it to its own shared subscriptions' members
/// already (NATS was not balancing them): no node's members take it again.
const SHARED_DONE: &str = "hookmq-shared-done";
/// The format of a forwarded message: this byte, then the message in postcard.
const FORMAT: u8 = 1;
/// Message ids remembered to deliver a message once however many of this node's filters
/// it matched (NATS delivers it once per matching subscription).
const RECENT_IDS: usize = 65_536;
/// How long a refused NATS subscription waits before it is tried again.
const RETRY: Duration = Duration::from_secs(1);
/// How long joining waits for a node of the same name to answer.
const NAME_CHECK: Duration = Duration::from_millis(500);

/// This node's side of the cluster.
#[derive(Debug)]
pub(crate) struct Link {
    /// Bounded: the publish path never waits on NATS (see `ClusterConfig::forward_queue`).
    queue: mpsc::Sender<(Arc<Message>, bool)>,
    /// Retained messages for the cluster's bucket, when NATS has JetStream; bounded like
    /// `queue`.
    retained: Option<mpsc::Sender<Arc<Message>>>,
    /// Client ids that connected here, for the other nodes (bounded like `queue`; full:
    /// counted in `dropped`, and that client may stay connected elsewhere too).
    connections: mpsc::Sender<Arc<str>>,
    dropped: AtomicU64,
    client: Client,
    /// Sessions asked of and handed to the other nodes.
    sessions: Arc<crate::sessions::Sessions>,
    /// What NATS has confirmed of the forwarding queue.
    confirmations: Arc<Confirmations>,
}

impl Peers for Link {
    fn forward(&self, message: &Arc<Message>, shared_here: bool) -> bool {
        if let (true, Some(retained)) = (message.retain, &self.retained)
            && retained.try_send(Arc::clone(message)).is_err()
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        let queued = self.confirmations.queue(|| {
            self.queue
                .try_send((Arc::clone(message), shared_here))
                .is_ok()
        });
        if !queued {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        queued
    }

    fn connected(&self, client_id: &str) {
        if self.connections.try_send(client_id.into()).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn balances_shared(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    fn forwarded(&self) -> Option<Durable> {
        // Without NATS nothing could confirm them: the node goes on serving its own clients,
        // and the messages go when NATS is back, if the node lives.
        if self.client.connection_state() != async_nats::connection::State::Connected {
            return None;
        }
        self.confirmations.wait()
    }

    fn fetch_session<'a>(&'a self, client_id: &'a str) -> hookmq_broker::peers::SessionFetch<'a> {
        Box::pin(self.sessions.fetch(client_id))
    }

    fn settle_session<'a>(&'a self, client_id: &'a str) -> hookmq_broker::peers::SessionFetch<'a> {
        Box::pin(self.sessions.settle(client_id))
    }

    fn keeps<'a>(
        &'a self,
        node: &'a str,
        client_id: &'a str,
    ) -> hookmq_broker::peers::Answer<'a, bool> {
        Box::pin(self.sessions.keeps(node, client_id))
    }
}

impl Link {
    /// Checks the node name, then starts the publisher, the interest task and the name
    /// responder, and attaches the link to `broker`.
    pub(crate) async fn start(
        config: &ClusterConfig,
        node: &str,
        (client, losses): (Client, Arc<crate::confirm::Losses>),
        broker: BrokerHandle,
        stop: CancellationToken,
    ) -> Result<Arc<Self>, ClusterError> {
        let prefix = config.subject_prefix.clone();
        let names = format!("{prefix}.node.{}", subject::token(node));
        let answer =
            tokio::time::timeout(NAME_CHECK, client.request(names.clone(), Bytes::new())).await;
        if let Ok(Ok(_)) = answer {
            return Err(ClusterError::NameTaken(node.to_owned()));
        }
        let responder = client
            .subscribe(names)
            .await
            .map_err(|e| ClusterError::Nats(e.to_string()))?;
        tokio::spawn(answer_name_checks(client.clone(), responder, stop.clone()));
        let (queue, forwarded) = mpsc::channel(config.forward_queue.max(1));
        let retained = match retained::bucket(client.clone(), &prefix, config.replicas).await {
            Ok(bucket) => {
                let (sender, receiver) = mpsc::channel(config.forward_queue.max(1));
                tokio::spawn(retained::publish(
                    bucket.clone(),
                    node.to_owned(),
                    receiver,
                    stop.clone(),
                ));
                tokio::spawn(retained::mirror(bucket, broker.clone(), stop.clone()));
                Some(sender)
            }
            Err(error) => {
                tracing::warn!(%error, "NATS without JetStream: retained messages stay on the node that received them");
                None
            }
        };
        let (connections, connected) = mpsc::channel(config.forward_queue.max(1));
        let takeovers = client
            .subscribe(format!("{prefix}.client"))
            .await
            .map_err(|e| ClusterError::Nats(e.to_string()))?;
        tokio::spawn(take_over(
            client.clone(),
            prefix.clone(),
            node.to_owned(),
            connected,
            takeovers,
            broker.clone(),
            stop.clone(),
        ));
        // How many interest changes are in NATS: moving sessions wait on it.
        let (applied, interest_applied) = tokio::sync::watch::channel(0);
        let sessions = crate::sessions::Sessions::start(
            client.clone(),
            &prefix,
            node,
            (broker.clone(), interest_applied),
            stop.clone(),
        )
        .await
        .map_err(|e| ClusterError::Nats(e.to_string()))?;
        let link = Arc::new(Self {
            queue,
            retained,
            connections,
            dropped: AtomicU64::new(0),
            client: client.clone(),
            sessions,
            confirmations: Arc::new(Confirmations::new(config.forward_confirm_timeout, losses)),
        });
        let confirmer = Arc::clone(&link.confirmations);
        let confirms = crate::confirm::subject(&prefix, node);
        let (confirm_client, confirm_stop) = (client.clone(), stop.clone());
        tokio::spawn(async move {
            confirmer
                .confirm(confirm_client, confirms, confirm_stop)
                .await;
        });
        tokio::spawn(publish_forwarded(
            client.clone(),
            prefix.clone(),
            node.to_owned(),
            forwarded,
            Arc::clone(&link),
            stop.clone(),
        ));
        let receiver = Arc::new(Receiver {
            node: node.to_owned(),
            broker: broker.clone(),
            recent: parking_lot::Mutex::new(Recent::default()),
        });
        tokio::spawn(follow_interest(
            client,
            (prefix, node.to_owned()),
            receiver,
            (broker.clone(), applied),
            stop,
        ));
        broker.attach_peers(Arc::clone(&link) as Arc<dyn Peers>);
        Ok(link)
    }

    /// Messages not forwarded because the queue was full.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Acknowledgements that went before NATS confirmed their messages.
    pub(crate) fn unconfirmed(&self) -> u64 {
        self.confirmations.unconfirmed()
    }
}

/// The next message of `subscription`; `None` once it ends or `stop` is cancelled.
pub(crate) async fn next_until(
    subscription: &mut Subscriber,
    stop: &CancellationToken,
) -> Option<async_nats::Message> {
    tokio::select! {
        () = stop.cancelled() => None,
        message = subscription.next() => message,
    }
}

/// Answers other nodes asking whether this node's name is taken.
async fn answer_name_checks(client: Client, mut requests: Subscriber, stop: CancellationToken) {
    while let Some(request) = crate::link::next_until(&mut requests, &stop).await {
        if let Some(reply) = request.reply {
            let _ = client.publish(reply, Bytes::from_static(b"taken")).await;
        }
    }
}

/// Publishes what the broker forwards, on the subject of each message's topic, and counts
/// each message taken (sent or given up) for the confirmations.
async fn publish_forwarded(
    client: Client,
    prefix: String,
    node: String,
    mut forwarded: mpsc::Receiver<(Arc<Message>, bool)>,
    link: Arc<Link>,
    stop: CancellationToken,
) {
    loop {
        let next = tokio::select! {
            () = stop.cancelled() => return,
            next = forwarded.recv() => next,
        };
        let Some((message, shared_here)) = next else {
            return;
        };
        publish_one(&client, (&prefix, &node), &message, shared_here, &link).await;
        link.confirmations.sent();
    }
}

/// Publishes one forwarded message; one NATS cannot take is counted with the queue's drops.
async fn publish_one(
    client: &Client,
    (prefix, node): (&str, &str),
    message: &Message,
    shared_here: bool,
    link: &Link,
) {
    let mut payload = vec![FORMAT];
    match postcard::to_extend(message, payload) {
        Ok(encoded) => payload = encoded,
        Err(error) => {
            tracing::warn!(%error, topic = %message.topic, "message not forwarded: cannot encode it");
            return;
        }
    }
    let mut headers = HeaderMap::new();
    headers.insert(ORIGIN, node);
    if shared_here {
        headers.insert(SHARED_DONE, "1");
    }
    let subject = subject::of_topic(prefix, &message.topic);
    if let Err(error) = client
        .publish_with_headers(subject, headers, payload.into())
        .await
    {
        // Too large for NATS (its max_payload), or the connection closed: counted and
        // summarised with the queue's drops.
        link.dropped.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(%error, topic = %message.topic, "message not forwarded");
    }
}

/// One connection per client id, cluster-wide: tells the other nodes of each client that
/// connects here, and ends the connection here of each client that connected elsewhere.
async fn take_over(
    client: Client,
    prefix: String,
    node: String,
    mut connected: mpsc::Receiver<Arc<str>>,
    mut elsewhere: Subscriber,
    broker: BrokerHandle,
    stop: CancellationToken,
) {
    let subject = format!("{prefix}.client");
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            here = connected.recv() => {
                let Some(client_id) = here else { return };
                let mut headers = HeaderMap::new();
                headers.insert(ORIGIN, node.as_str());
                let payload = Bytes::copy_from_slice(client_id.as_bytes());
                if let Err(error) = client.publish_with_headers(subject.clone(), headers, payload).await {
                    tracing::debug!(%error, "connection not told to the cluster");
                }
            }
            notice = elsewhere.next() => {
                let Some(notice) = notice else { return };
                let from_here = notice
                    .headers
                    .as_ref()
                    .and_then(|headers| headers.get(ORIGIN))
                    .is_some_and(|origin| origin.as_str() == node);
                if let (false, Ok(client_id)) = (from_here, std::str::from_utf8(&notice.payload))
                    && broker.taken_over_elsewhere(client_id)
                {
                    tracing::debug!(client = client_id, "connected to another node: taken over");
                }
            }
        }
    }
}

/// What receives the other nodes' messages.
#[derive(Debug)]
struct Receiver {
    node: String,
    broker: BrokerHandle,
    /// A short lock per received message.
    recent: parking_lot::Mutex<Recent>,
}

/// What a NATS subscription of this node stands for.
#[derive(Debug, Clone)]
enum Wanted {
    /// The direct subscribers of a filter.
    Direct,
    /// The members of `$share/{group}/{filter}` here (a NATS queue group across nodes).
    Shared { group: String, filter: String },
}

impl Receiver {
    /// Delivers one message from NATS to this node's subscribers, once.
    fn receive(&self, message: &async_nats::Message, wanted: &Wanted) {
        let from_here = message
            .headers
            .as_ref()
            .and_then(|headers| headers.get(ORIGIN))
            .is_some_and(|origin| origin.as_str() == self.node);
        // This node's own messages reach its direct subscribers without NATS, but its
        // shared subscriptions' members through the queue group like anyone's.
        if from_here && matches!(wanted, Wanted::Direct) {
            return;
        }
        let shared_done = message
            .headers
            .as_ref()
            .is_some_and(|headers| headers.get(SHARED_DONE).is_some());
        if shared_done && matches!(wanted, Wanted::Shared { .. }) {
            return;
        }
        let Some((&FORMAT, encoded)) = message.payload.split_first() else {
            tracing::debug!(subject = %message.subject, "not a hookmq message: ignored");
            return;
        };
        let decoded: Message = match postcard::from_bytes(encoded) {
            Ok(decoded) => decoded,
            Err(error) => {
                tracing::debug!(%error, "undecodable message from a peer: ignored");
                return;
            }
        };
        match wanted {
            Wanted::Direct => {
                if !self.recent.lock().seen(decoded.id) {
                    self.broker.route_from_peer(decoded);
                }
            }
            Wanted::Shared { group, filter } => {
                self.broker.route_shared_from_peer(decoded, group, filter);
            }
        }
    }
}

/// Subscribes to the subjects of the filters with subscribers here, and unsubscribes when
/// they have none.
async fn follow_interest(
    client: Client,
    (prefix, node): (String, String),
    receiver: Arc<Receiver>,
    (broker, applied): (BrokerHandle, tokio::sync::watch::Sender<u64>),
    stop: CancellationToken,
) {
    let mut subscribed: HashMap<String, CancellationToken> = HashMap::new();
    // Subscriptions NATS refused, tried again every second (one pending change per key).
    let mut retry: HashMap<String, bool> = HashMap::new();
    let confirms = crate::confirm::subject(&prefix, &node);
    loop {
        let (changes, upto) = tokio::select! {
            () = stop.cancelled() => return,
            (changes, upto) = broker.interest_changes() => (changes, Some(upto)),
            () = tokio::time::sleep(RETRY), if !retry.is_empty() => (std::mem::take(&mut retry), None),
        };
        for (key, present) in changes {
            match (present, subscribed.contains_key(&key)) {
                (true, false) => match subscribe(&client, &prefix, &key, &receiver, &stop).await {
                    Some(done) => {
                        subscribed.insert(key, done);
                    }
                    None => {
                        retry.insert(key, true);
                    }
                },
                (false, true) => {
                    if let Some(done) = subscribed.remove(&key) {
                        done.cancel();
                    }
                }
                (false, false) => {
                    retry.remove(&key);
                }
                (true, true) => {}
            }
        }
        // The server has the subscriptions once it answers a round trip sent after them.
        if let Some(upto) = upto
            && retry.is_empty()
            && crate::confirm::reached(&client, confirms.clone()).await
        {
            applied.send_replace(upto);
        }
    }
}

/// Subscribes to the subjects of an interest key; `None` (nothing left subscribed) if
/// NATS refused one of them.
async fn subscribe(
    client: &Client,
    prefix: &str,
    key: &str,
    receiver: &Arc<Receiver>,
    stop: &CancellationToken,
) -> Option<CancellationToken> {
    let done = stop.child_token();
    let (wanted, topics, queue) = wanted(prefix, key);
    for name in subject::of_filter(prefix, &topics) {
        let subscribed = match &queue {
            None => client.subscribe(name.clone()).await,
            Some(queue) => client.queue_subscribe(name.clone(), queue.clone()).await,
        };
        match subscribed {
            Ok(subscriber) => {
                tokio::spawn(receive(
                    subscriber,
                    Arc::clone(receiver),
                    wanted.clone(),
                    done.clone(),
                ));
            }
            Err(error) => {
                tracing::warn!(%error, %key, subject = %name, "cluster subscription failed: trying again");
                done.cancel();
                return None;
            }
        }
    }
    Some(done)
}

/// What an interest key (a filter, or `$share/{group}/{filter}`) subscribes to: the kind,
/// the topic filter, and the queue group for a shared one.
fn wanted(prefix: &str, key: &str) -> (Wanted, String, Option<String>) {
    match key
        .strip_prefix("$share/")
        .and_then(|rest| rest.split_once('/'))
    {
        Some((group, filter)) => (
            Wanted::Shared {
                group: group.to_owned(),
                filter: filter.to_owned(),
            },
            filter.to_owned(),
            Some(subject::queue_group(prefix, group, filter)),
        ),
        None => (Wanted::Direct, key.to_owned(), None),
    }
}

/// Delivers what one subscription hears until its filter has no subscriber here.
async fn receive(
    mut subscriber: Subscriber,
    receiver: Arc<Receiver>,
    wanted: Wanted,
    done: CancellationToken,
) {
    loop {
        tokio::select! {
            () = done.cancelled() => {
                let _ = subscriber.unsubscribe().await;
                return;
            }
            message = subscriber.next() => match message {
                Some(message) => receiver.receive(&message, &wanted),
                None => return,
            },
        }
    }
}

/// The ids of the messages delivered lately, oldest first out (at most [`RECENT_IDS`]).
#[derive(Debug, Default)]
struct Recent {
    ids: HashSet<MessageId>,
    order: VecDeque<MessageId>,
}

impl Recent {
    /// Whether `id` was seen lately; remembers it.
    fn seen(&mut self, id: MessageId) -> bool {
        if !self.ids.insert(id) {
            return true;
        }
        self.order.push_back(id);
        if self.order.len() > RECENT_IDS
            && let Some(oldest) = self.order.pop_front()
        {
            self.ids.remove(&oldest);
        }
        false
    }
}
