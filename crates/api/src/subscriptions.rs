//! `/subscriptions`: every subscription of connected and offline sessions, on every node of
//! the cluster (`cluster_list`; this node's alone without one).

use axum::{Json, extract::State};
use hookmq_broker::SubscriptionRow;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    auth::Authenticated,
    error::{ApiError, ErrorBody},
    json::QueryParams,
    paging::{Page, Paging},
    state::AppState,
};

/// `/subscriptions`.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

/// A subscription as the API shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct SubscriptionView {
    /// This node.
    node: String,
    /// The subscribing client.
    clientid: String,
    /// The topic filter, with `$share/{group}/` for shared subscriptions.
    topic: String,
    /// Maximum QoS granted.
    qos: u8,
    /// v5 no-local.
    no_local: bool,
    /// v5 retain-as-published.
    retain_as_published: bool,
    /// v5 retain handling: 0, 1 or 2.
    retain_handling: u8,
}

impl SubscriptionView {
    fn new(node: &str, row: SubscriptionRow) -> Self {
        Self {
            node: node.to_owned(),
            clientid: row.client_id.to_string(),
            topic: row.filter,
            qos: row.options.qos.as_u8(),
            no_local: row.options.no_local,
            retain_as_published: row.options.retain_as_published,
            retain_handling: row.options.retain_handling as u8,
        }
    }
}

/// `GET /subscriptions` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct SubscriptionQuery {
    /// Only this client's subscriptions.
    clientid: Option<String>,
    /// Only this exact topic filter (with `$share/{group}/` for shared ones).
    topic: Option<String>,
    /// Page number, from 1 (default 1).
    #[param(minimum = 1, maximum = 1_000_000)]
    page: Option<u64>,
    /// Items per page, 1 to 10000 (default 50; EMQX's bound).
    #[param(minimum = 1, maximum = 10_000)]
    limit: Option<u64>,
}

/// The question the nodes answer for a cluster-wide list.
const TOPIC: &str = "subscriptions";

/// What a listing is filtered on, as the nodes are asked.
#[derive(Debug, Serialize, Deserialize)]
struct SubscriptionFilter {
    clientid: Option<String>,
    topic: Option<String>,
}

/// This node's subscriptions matching `filter`, sorted by client id, then topic.
fn local_subscriptions(
    broker: &hookmq_broker::BrokerHandle,
    filter: &SubscriptionFilter,
) -> Vec<SubscriptionView> {
    let mut rows: Vec<SubscriptionRow> = broker
        .subscriptions()
        .into_iter()
        .filter(|r| {
            filter
                .clientid
                .as_deref()
                .is_none_or(|id| *r.client_id == *id)
                && filter.topic.as_deref().is_none_or(|t| r.filter == t)
        })
        .collect();
    rows.sort_by(|a, b| (&a.client_id, &a.filter).cmp(&(&b.client_id, &b.filter)));
    let node = broker.node_name();
    rows.into_iter()
        .map(|r| SubscriptionView::new(node, r))
        .collect()
}

/// Has this node answer the other nodes' subscription listings.
pub(crate) async fn answer_for_cluster(
    state: &AppState,
    cluster: &hookmq_cluster::ClusterHandle,
) -> Result<(), hookmq_cluster::ClusterError> {
    crate::cluster_list::answer(cluster, TOPIC, state.broker().clone(), local_subscriptions).await
}

/// Lists the subscriptions of every node, node by node (by name), each node's by client
/// id, then topic.
#[utoipa::path(get, path = "/subscriptions", tag = "clients",
    params(SubscriptionQuery),
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "One page of subscriptions", body = Page<SubscriptionView>),
        (status = 400, description = "Bad query parameter, named in field", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
    ))]
async fn list(
    _: Authenticated,
    State(state): State<AppState>,
    QueryParams(query): QueryParams<SubscriptionQuery>,
) -> Result<Json<Page<SubscriptionView>>, ApiError> {
    let paging = Paging::new(query.page, query.limit)?;
    let filter = SubscriptionFilter {
        clientid: query.clientid,
        topic: query.topic,
    };
    Ok(Json(
        crate::cluster_list::page_or_local(&state, TOPIC, &filter, paging, local_subscriptions)
            .await,
    ))
}
