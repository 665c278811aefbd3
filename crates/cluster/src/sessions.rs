//! Sessions moving between nodes: a client that wants its session kept and connects to a
//! node without one asks the cluster (`<prefix>.session`, the client id); the node that has
//! it (connected or offline) ends it there and answers with it
//! (`BrokerHandle::hand_over_session`), the others answer that they have none. The asking
//! node stops at the session, or once every other node it knows of (by name: a node it
//! does not know of yet may answer too) has said none, or after [`ASK_WAIT`]. A node with
//! the session may take a moment (a connected client's connection hands it over), and
//! ends its session when it answers: the asking node waits for it rather than for a count.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use async_nats::{Client, HeaderMap, Subscriber};
use bytes::Bytes;
use futures_util::StreamExt as _;
use hookmq_broker::BrokerHandle;
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::{link::ORIGIN, nodes};

/// How long asking waits for the nodes' answers at most (a node it knows of that died
/// meanwhile never answers).
const ASK_WAIT: Duration = Duration::from_secs(2);
/// How long a node that said it joined counts as known without answering a count.
const JOINED_KEPT: Duration = Duration::from_secs(5);
/// How often the number of nodes is asked again.
const COUNT_EVERY: Duration = Duration::from_secs(2);

/// How long the old node goes on collecting for a moved session after the new node asks
/// for what it collected: messages NATS delivered here before the new node's subscriptions
/// took effect may still be on their way through this node's receivers.
const RELEASE_GRACE: Duration = Duration::from_millis(100);
/// How long settling a moved session waits for this node's subscriptions to reach NATS,
/// then for the old node's answer.
const SETTLE_WAIT: Duration = Duration::from_secs(2);
/// How long asking a node whether it has a session waits for its answer.
const KEEPS_WAIT: Duration = Duration::from_secs(1);

/// This node's side of moving sessions.
#[derive(Debug)]
pub(crate) struct Sessions {
    client: Client,
    subject: String,
    prefix: String,
    node: String,
    broker: BrokerHandle,
    /// How many of the broker's interest changes are in NATS.
    interest_applied: watch::Receiver<u64>,
    /// The node each session fetched here came from, until it is settled. parking_lot: an
    /// insert and a removal per move.
    holders: Mutex<HashMap<String, String>>,
    /// The other nodes that answered the last `nodes` question. parking_lot: replaced
    /// every [`COUNT_EVERY`], cloned per question, never held across `.await`.
    /// `None` until the first count answered.
    nodes: Mutex<Option<HashSet<String>>>,
    /// Nodes that said they joined, and when: kept through the counts of the next
    /// [`JOINED_KEPT`] (a count asked just before a node answers counts would drop it).
    joined: Mutex<HashMap<String, tokio::time::Instant>>,
}

impl Sessions {
    /// Starts answering the other nodes' questions and counting the nodes.
    pub(crate) async fn start(
        client: Client,
        prefix: &str,
        node: &str,
        (broker, interest_applied): (BrokerHandle, watch::Receiver<u64>),
        stop: CancellationToken,
    ) -> Result<Arc<Self>, async_nats::SubscribeError> {
        let subject = format!("{prefix}.session");
        let questions = client.subscribe(subject.clone()).await?;
        let releases = client.subscribe(release_subject(prefix, node)).await?;
        let keeps = client.subscribe(keeps_subject(prefix, node)).await?;
        let joined = client.subscribe(format!("{prefix}.joined")).await?;
        let present = client.subscribe(format!("{prefix}.present")).await?;
        let sessions = Arc::new(Self {
            client,
            subject,
            prefix: prefix.to_owned(),
            node: node.to_owned(),
            broker: broker.clone(),
            interest_applied,
            holders: Mutex::new(HashMap::new()),
            nodes: Mutex::new(None),
            joined: Mutex::new(HashMap::new()),
        });
        tokio::spawn(answer(
            Arc::clone(&sessions),
            questions,
            broker.clone(),
            stop.clone(),
        ));
        tokio::spawn(release(
            sessions.client.clone(),
            releases,
            broker.clone(),
            stop.clone(),
        ));
        tokio::spawn(answer_keeps(
            sessions.client.clone(),
            keeps,
            broker,
            stop.clone(),
        ));
        tokio::spawn(hear_joins(Arc::clone(&sessions), joined, stop.clone()));
        tokio::spawn(hear_joins(Arc::clone(&sessions), present, stop.clone()));
        tokio::spawn(count(Arc::clone(&sessions), stop));
        // The others know of this node before their next count.
        if let Err(error) = sessions
            .client
            .publish(format!("{prefix}.joined"), Bytes::from(node.to_owned()))
            .await
        {
            tracing::debug!(%error, "joining not told to the other nodes");
        }
        Ok(sessions)
    }

    /// The session of `client_id` from the node that has it, if one does.
    pub(crate) async fn fetch(&self, client_id: &str) -> Option<Vec<u8>> {
        let known = self.nodes.lock().clone();
        // Not counted yet (this node just joined): count now.
        let mut waiting_for = match known {
            Some(known) => known,
            None => self.count_now().await,
        };
        if waiting_for.is_empty() {
            return None;
        }
        let inbox = self.client.new_inbox();
        let mut answers = self.client.subscribe(inbox.clone()).await.ok()?;
        let mut headers = HeaderMap::new();
        headers.insert(ORIGIN, self.node.as_str());
        let question = Bytes::copy_from_slice(client_id.as_bytes());
        self.client
            .publish_with_reply_and_headers(self.subject.clone(), inbox, headers, question)
            .await
            .ok()?;
        let deadline = tokio::time::Instant::now() + ASK_WAIT;
        let found = loop {
            let Ok(Some(answer)) = tokio::time::timeout_at(deadline, answers.next()).await else {
                break None;
            };
            if !answer.payload.is_empty() {
                if let Some(node) = answer.headers.as_ref().and_then(|h| h.get(ORIGIN)) {
                    self.holders
                        .lock()
                        .insert(client_id.to_owned(), node.as_str().to_owned());
                }
                break Some(answer.payload.to_vec());
            }
            if let Some(node) = answer.headers.as_ref().and_then(|h| h.get(ORIGIN)) {
                waiting_for.remove(node.as_str());
            }
            if waiting_for.is_empty() {
                break None;
            }
        };
        let _ = answers.unsubscribe().await;
        found
    }
}

impl Sessions {
    /// Asks who is in the cluster now; keeps and returns the other nodes (none answering at
    /// all, NATS away: the last known set stays, and none is returned).
    async fn count_now(&self) -> HashSet<String> {
        let answered = nodes::gather(&self.client, format!("{}.nodes", self.prefix)).await;
        if answered.is_empty() {
            return HashSet::new();
        }
        let mut others: HashSet<String> = answered
            .into_iter()
            .map(|info| info.node)
            .filter(|node| *node != self.node)
            .collect();
        let mut joined = self.joined.lock();
        joined.retain(|_, at| at.elapsed() < JOINED_KEPT);
        others.extend(joined.keys().cloned());
        drop(joined);
        *self.nodes.lock() = Some(others.clone());
        others
    }

    /// Once a session fetched here is rebuilt: waits until this node's subscriptions are in
    /// NATS, then asks the node it came from for what its subscriptions collected since
    /// (ending that), at most [`SETTLE_WAIT`] each.
    pub(crate) async fn settle(&self, client_id: &str) -> Option<Vec<u8>> {
        let holder = self.holders.lock().remove(client_id)?;
        let target = self.broker.interest_recorded();
        let mut applied = self.interest_applied.clone();
        let reached = tokio::time::timeout(SETTLE_WAIT, applied.wait_for(|n| *n >= target))
            .await
            .is_ok_and(|seen| seen.is_ok());
        if !reached {
            tracing::warn!(
                client = client_id,
                "a moved session's subscriptions took long to reach NATS"
            );
        }
        let question = Bytes::copy_from_slice(client_id.as_bytes());
        let subject = release_subject(&self.prefix, &holder);
        match tokio::time::timeout(SETTLE_WAIT, self.client.request(subject, question)).await {
            Ok(Ok(answer)) if !answer.payload.is_empty() => Some(answer.payload.to_vec()),
            Ok(Ok(_)) => None,
            _ => {
                tracing::warn!(client = client_id, node = %holder, "what the old node held for a moved session did not come");
                None
            }
        }
    }
}

impl Sessions {
    /// Whether `node` has a session of `client_id`: `false` when it says so or no such node
    /// is there (NATS answers that nobody listens), `true` when it says so or is unsure.
    pub(crate) async fn keeps(&self, node: &str, client_id: &str) -> bool {
        let subject = keeps_subject(&self.prefix, node);
        let question = Bytes::copy_from_slice(client_id.as_bytes());
        match tokio::time::timeout(KEEPS_WAIT, self.client.request(subject, question)).await {
            Ok(Ok(answer)) => answer.payload.as_ref() != b"0",
            Ok(Err(error)) => error.kind() != async_nats::client::RequestErrorKind::NoResponders,
            Err(_) => true,
        }
    }
}

/// A question about a client: where to answer, and the client id it carries (`None`
/// without a reply subject or a UTF-8 client id).
fn client_question(question: async_nats::Message) -> Option<(async_nats::Subject, String)> {
    let reply = question.reply?;
    let client_id = String::from_utf8(question.payload.to_vec()).ok()?;
    Some((reply, client_id))
}

/// The subject `node` answers whether it has a session on.
fn keeps_subject(prefix: &str, node: &str) -> String {
    format!("{prefix}.keeps.{}", crate::subject::token(node))
}

/// Answers whether this node has a session of the client id asked for (`1` or `0`).
async fn answer_keeps(
    client: Client,
    mut questions: Subscriber,
    broker: BrokerHandle,
    stop: CancellationToken,
) {
    while let Some(question) = crate::link::next_until(&mut questions, &stop).await {
        let Some((reply, client_id)) = client_question(question) else {
            continue;
        };
        let answer = if broker.has_session(&client_id) {
            "1"
        } else {
            "0"
        };
        if let Err(error) = client
            .publish(reply, Bytes::from_static(answer.as_bytes()))
            .await
        {
            tracing::debug!(%error, "whether a session is here was not told");
        }
    }
}

/// The subject `node` answers release questions on.
fn release_subject(prefix: &str, node: &str) -> String {
    format!("{prefix}.release.{}", crate::subject::token(node))
}

/// Answers the nodes that took a session from here: what its subscriptions collected since.
async fn release(
    client: Client,
    mut questions: Subscriber,
    broker: BrokerHandle,
    stop: CancellationToken,
) {
    while let Some(question) = crate::link::next_until(&mut questions, &stop).await {
        let Some((reply, client_id)) = client_question(question) else {
            continue;
        };
        let (client, broker) = (client.clone(), broker.clone());
        tokio::spawn(async move {
            tokio::time::sleep(RELEASE_GRACE).await;
            let held = broker.release_session(&client_id).unwrap_or_default();
            if let Err(error) = client.publish(reply, held.into()).await {
                tracing::warn!(client = %client_id, %error, "what was held for a moved session was not sent");
            }
        });
    }
}

/// Answers the other nodes: the session asked for if this node has it, else empty.
async fn answer(
    sessions: Arc<Sessions>,
    mut questions: Subscriber,
    broker: BrokerHandle,
    stop: CancellationToken,
) {
    while let Some(question) = crate::link::next_until(&mut questions, &stop).await {
        let origin = question
            .headers
            .as_ref()
            .and_then(|headers| headers.get(ORIGIN))
            .map(|origin| origin.as_str().to_owned());
        let (Some(asker), Some((reply, client_id))) = (
            origin.filter(|origin| *origin != sessions.node),
            client_question(question),
        ) else {
            continue;
        };
        let (client, broker, node) = (
            sessions.client.clone(),
            broker.clone(),
            sessions.node.clone(),
        );
        // A connected client's connection takes a moment to hand its session over: the
        // other questions do not wait for it.
        tokio::spawn(async move {
            let session = broker.hand_over_session(&client_id, &asker).await;
            if session.is_some() {
                tracing::info!(client = %client_id, "session handed to another node");
            }
            let payload = session.map_or_else(Bytes::new, Bytes::from);
            let mut headers = HeaderMap::new();
            headers.insert(ORIGIN, node.as_str());
            if let Err(error) = client.publish_with_headers(reply, headers, payload).await {
                tracing::warn!(client = %client_id, %error, "a session asked for was not sent");
            }
        });
    }
}

/// Adds the nodes that say they joined (`<prefix>.joined`), or that they are here
/// (`<prefix>.present`, every node's answer to a join), to [`Sessions::nodes`] between two
/// counts: a node that just joined knows of the others though its first count missed one.
async fn hear_joins(sessions: Arc<Sessions>, mut joined: Subscriber, stop: CancellationToken) {
    while let Some(notice) = crate::link::next_until(&mut joined, &stop).await {
        if let Ok(node) = std::str::from_utf8(&notice.payload)
            && node != sessions.node
        {
            if notice.subject.as_str() == format!("{}.joined", sessions.prefix)
                && let Err(error) = sessions
                    .client
                    .publish(
                        format!("{}.present", sessions.prefix),
                        Bytes::from(sessions.node.clone()),
                    )
                    .await
            {
                tracing::debug!(%error, "presence not told to a node that joined");
            }
            sessions
                .joined
                .lock()
                .insert(node.to_owned(), tokio::time::Instant::now());
            sessions
                .nodes
                .lock()
                .get_or_insert_with(HashSet::new)
                .insert(node.to_owned());
        }
    }
}

/// Keeps [`Sessions::nodes`] up to date.
async fn count(sessions: Arc<Sessions>, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = sessions.count_now() => {}
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(COUNT_EVERY) => {}
        }
    }
}
