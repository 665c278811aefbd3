//! Questions a layer above answers on every node, for what the cluster shows as one (the
//! API's client and subscription lists): every node answers `<prefix>.ask.<topic>`, and
//! one node `<prefix>.ask.<topic>.<node>`. Like `nodes`, nothing is kept: a node that does
//! not answer in time is left out of the answer.

use std::{sync::Arc, time::Duration};

use async_nats::{Client, HeaderMap, Subscriber};
use bytes::Bytes;
use futures_util::StreamExt as _;

use crate::{link::ORIGIN, subject};

/// How long asking every node waits for answers at most.
const GATHER: Duration = Duration::from_millis(300);
/// How long asking one node waits.
const ONE: Duration = Duration::from_secs(2);
/// Answers taken at most.
const MOST_NODES: usize = 1024;

/// What a layer above answers: the question's bytes in, the answer's bytes out. Called on
/// the task that reads the questions: keep it short.
pub type Answerer = Arc<dyn Fn(&[u8]) -> Vec<u8> + Send + Sync>;

/// The subject every node answers for `topic`.
pub(crate) fn everyone(prefix: &str, topic: &str) -> String {
    format!("{prefix}.ask.{topic}")
}

/// The subject only `node` answers for `topic`.
pub(crate) fn one(prefix: &str, topic: &str, node: &str) -> String {
    format!("{prefix}.ask.{topic}.{}", subject::token(node))
}

/// Answers what comes on `questions` with `answerer`, until the subscription ends (the
/// connection is drained when the node leaves).
pub(crate) async fn answer(
    client: Client,
    node: String,
    mut questions: Subscriber,
    answerer: Answerer,
) {
    while let Some(question) = questions.next().await {
        let Some(reply) = question.reply else {
            continue;
        };
        let answer = answerer(&question.payload);
        let mut headers = HeaderMap::new();
        headers.insert(ORIGIN, node.as_str());
        if let Err(error) = client
            .publish_with_headers(reply, headers, answer.into())
            .await
        {
            tracing::warn!(%error, "an answer to another node was not sent");
        }
    }
}

/// Every node's answer to `payload` on `subject`, by node name, sorted: those that come
/// within [`GATHER`]. The whole window is waited for, as a node that joined a moment ago
/// is known to no list yet.
pub(crate) async fn gather(
    client: &Client,
    subject: String,
    payload: Bytes,
) -> Vec<(String, Bytes)> {
    let inbox = client.new_inbox();
    let Ok(mut answers) = client.subscribe(inbox.clone()).await else {
        return Vec::new();
    };
    if client
        .publish_with_reply(subject, inbox, payload)
        .await
        .is_err()
    {
        return Vec::new();
    }
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + GATHER;
    while got.len() < MOST_NODES {
        let Ok(Some(answer)) = tokio::time::timeout_at(deadline, answers.next()).await else {
            break;
        };
        let Some(node) = answer.headers.as_ref().and_then(|h| h.get(ORIGIN)) else {
            continue;
        };
        got.push((node.as_str().to_owned(), answer.payload));
    }
    let _ = answers.unsubscribe().await;
    got.sort_by(|a, b| a.0.cmp(&b.0));
    got
}

/// `node`'s answer to `payload` on `subject`, if it comes within [`ONE`].
pub(crate) async fn ask_one(client: &Client, subject: String, payload: Bytes) -> Option<Bytes> {
    match tokio::time::timeout(ONE, client.request(subject, payload)).await {
        Ok(Ok(answer)) => Some(answer.payload),
        _ => None,
    }
}
