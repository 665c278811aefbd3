//! Sessions moving between nodes: a client that wants its session kept and connects to a
//! node without one asks the cluster (`<prefix>.session`, the client id); the node that has
//! it (connected or offline) ends it there and answers with it
//! (`BrokerHandle::hand_over_session`), the others answer that they have none. The asking
//! node stops at the session, or once every other node it knows of (by name: a node it
//! does not know of yet may answer too) has said none, or after [`ASK_WAIT`]. A node with
//! the session may take a moment (a connected client's connection hands it over), and
//! ends its session when it answers: the asking node waits for it rather than for a count.

use std::{collections::HashSet, sync::Arc, time::Duration};

use async_nats::{Client, HeaderMap, Subscriber};
use bytes::Bytes;
use futures_util::StreamExt as _;
use hookmq_broker::BrokerHandle;
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use crate::nodes;

/// The header naming the node that asks (it hears its own question too).
const ORIGIN: &str = "hookmq-node";
/// How long asking waits for the nodes' answers at most (a node it knows of that died
/// meanwhile never answers).
const ASK_WAIT: Duration = Duration::from_secs(2);
/// How often the number of nodes is asked again.
const COUNT_EVERY: Duration = Duration::from_secs(2);

/// This node's side of moving sessions.
#[derive(Debug)]
pub(crate) struct Sessions {
    client: Client,
    subject: String,
    node: String,
    /// The other nodes that answered the last `nodes` question. parking_lot: replaced
    /// every [`COUNT_EVERY`], cloned per question, never held across `.await`.
    nodes: Mutex<HashSet<String>>,
}

impl Sessions {
    /// Starts answering the other nodes' questions and counting the nodes.
    pub(crate) async fn start(
        client: Client,
        prefix: &str,
        node: &str,
        broker: BrokerHandle,
        stop: CancellationToken,
    ) -> Result<Arc<Self>, async_nats::SubscribeError> {
        let subject = format!("{prefix}.session");
        let questions = client.subscribe(subject.clone()).await?;
        let sessions = Arc::new(Self {
            client,
            subject,
            node: node.to_owned(),
            nodes: Mutex::new(HashSet::new()),
        });
        tokio::spawn(answer(
            Arc::clone(&sessions),
            questions,
            broker,
            stop.clone(),
        ));
        tokio::spawn(count(
            Arc::clone(&sessions),
            format!("{prefix}.nodes"),
            stop,
        ));
        Ok(sessions)
    }

    /// The session of `client_id` from the node that has it, if one does.
    pub(crate) async fn fetch(&self, client_id: &str) -> Option<Vec<u8>> {
        let mut waiting_for = self.nodes.lock().clone();
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

/// Answers the other nodes: the session asked for if this node has it, else empty.
async fn answer(
    sessions: Arc<Sessions>,
    mut questions: Subscriber,
    broker: BrokerHandle,
    stop: CancellationToken,
) {
    loop {
        let question = tokio::select! {
            () = stop.cancelled() => return,
            question = questions.next() => question,
        };
        let Some(question) = question else { return };
        let from_here = question
            .headers
            .as_ref()
            .and_then(|headers| headers.get(ORIGIN))
            .is_some_and(|origin| origin.as_str() == sessions.node);
        let (false, Some(reply), Ok(client_id)) = (
            from_here,
            question.reply,
            String::from_utf8(question.payload.to_vec()),
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
            let session = broker.hand_over_session(&client_id).await;
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

/// Keeps [`Sessions::nodes`] up to date.
async fn count(sessions: Arc<Sessions>, subject: String, stop: CancellationToken) {
    loop {
        let answered = tokio::select! {
            () = stop.cancelled() => return,
            nodes = nodes::gather(&sessions.client, subject.clone()) => nodes,
        };
        // None at all: NATS away; the last known set stays.
        if !answered.is_empty() {
            *sessions.nodes.lock() = answered
                .into_iter()
                .map(|info| info.node)
                .filter(|node| *node != sessions.node)
                .collect();
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(COUNT_EVERY) => {}
        }
    }
}
