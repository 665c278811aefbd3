//! Lists that span the cluster (clients, subscriptions): every node counts its matches for
//! the filter, then the nodes holding the page's items hand them over, in node-name order
//! and each node's own order within it (as EMQX pages a cluster query node by node). Two
//! questions over NATS, whatever the page: one to every node, one per node in the page.

use std::sync::Arc;

use hookmq_broker::BrokerHandle;
use hookmq_cluster::{ClusterError, ClusterHandle, ask::Answerer};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::{
    paging::{Page, Paging},
    state::AppState,
};

/// What a node is asked: its matches for `filter`, from `offset`, at most `limit`.
#[derive(Debug, Serialize, Deserialize)]
struct Question<F> {
    filter: F,
    offset: u64,
    limit: u64,
}

/// What a node answers: how many match there, and the items asked for.
#[derive(Debug, Serialize, Deserialize)]
struct Answer<T> {
    count: u64,
    data: Vec<T>,
}

/// This node's matches for a filter, in order.
pub(crate) type Local<F, T> = fn(&BrokerHandle, &F) -> Vec<T>;

/// Has this node answer the questions on `topic` with `local`.
pub(crate) async fn answer<F, T>(
    cluster: &ClusterHandle,
    topic: &str,
    broker: BrokerHandle,
    local: Local<F, T>,
) -> Result<(), ClusterError>
where
    F: DeserializeOwned + 'static,
    T: Serialize + 'static,
{
    let answerer: Answerer = Arc::new(move |bytes: &[u8]| {
        let Ok(question) = serde_json::from_slice::<Question<F>>(bytes) else {
            return Vec::new();
        };
        let items = local(&broker, &question.filter);
        let count = items.len() as u64;
        let skip = usize::try_from(question.offset).unwrap_or(usize::MAX);
        let take = usize::try_from(question.limit).unwrap_or(usize::MAX);
        let data: Vec<T> = items.into_iter().skip(skip).take(take).collect();
        serde_json::to_vec(&Answer { count, data }).unwrap_or_default()
    });
    cluster.answer(topic, answerer).await
}

/// One page of the list on `topic`: the cluster's when this node is in one and NATS
/// answers, else this node's own (`local`).
pub(crate) async fn page_or_local<F, T>(
    state: &AppState,
    topic: &str,
    filter: &F,
    paging: Paging,
    local: Local<F, T>,
) -> Page<T>
where
    F: Serialize,
    T: DeserializeOwned,
{
    if let Some(cluster) = &state.cluster
        && let Some(page) = page(cluster, topic, filter, paging).await
    {
        return page;
    }
    paging.apply(local(state.broker(), filter))
}

/// One page of the cluster-wide list on `topic`; `None` when no node answered.
async fn page<F, T>(
    cluster: &ClusterHandle,
    topic: &str,
    filter: &F,
    paging: Paging,
) -> Option<Page<T>>
where
    F: Serialize,
    T: DeserializeOwned,
{
    let question = |offset: u64, limit: u64| {
        serde_json::to_vec(&Question {
            filter,
            offset,
            limit,
        })
        .unwrap_or_default()
    };
    let counts: Vec<(String, u64)> = cluster
        .ask_everyone(topic, question(0, 0))
        .await
        .into_iter()
        .filter_map(|(node, bytes)| {
            serde_json::from_slice::<Answer<serde::de::IgnoredAny>>(&bytes)
                .ok()
                .map(|answer| (node, answer.count))
        })
        .collect();
    if counts.is_empty() {
        return None;
    }
    let (skip, take) = paging.window();
    let mut data: Vec<T> = Vec::new();
    let mut start = 0u64;
    for (node, count) in &counts {
        let end = start.saturating_add(*count);
        let wanted = take.saturating_sub(data.len() as u64);
        if wanted > 0 && end > skip && start < skip.saturating_add(take) {
            let offset = skip.saturating_sub(start);
            if let Some(bytes) = cluster
                .ask_node(node, topic, question(offset, wanted))
                .await
                && let Ok(answer) = serde_json::from_slice::<Answer<T>>(&bytes)
            {
                data.extend(answer.data);
            }
        }
        start = end;
    }
    let total = counts.iter().map(|(_, count)| count).sum();
    Some(paging.page_of(data, total))
}
