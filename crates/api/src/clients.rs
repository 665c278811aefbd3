//! `/clients`: the clients with a session (connected, or offline waiting for their session
//! to expire) on every node of the cluster (`cluster_list`; this node's alone without
//! one), one client, and kicking one.

use std::collections::HashMap;

use axum::{Json, extract::State, http::StatusCode};
use hookmq_broker::{ClientSummary, SubscriptionRow};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    auth::Authenticated,
    error::{ApiError, ErrorBody},
    json::{PathParams, QueryParams},
    paging::{Page, Paging},
    state::AppState,
};

/// `/clients` and `/clients/{clientid}`.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(show, kick))
}

/// A client as the API shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct ClientView {
    /// The node the session is on.
    node: String,
    /// Client identifier.
    clientid: String,
    /// User name, null when the client sent none.
    username: Option<String>,
    /// Whether it is connected now (false: its session waits offline).
    connected: bool,
    /// The client's address, `ip:port`.
    peername: String,
    /// The broker's address of the connection, `ip:port`.
    sockname: String,
    /// `MQTT` (or `MQIsdp` for 3.1).
    proto_name: String,
    /// Protocol level: 3, 4 or 5.
    proto_ver: u8,
    /// Keep-alive in force, seconds.
    keepalive: u16,
    /// Clean start (v5) / clean session (v3).
    clean_start: bool,
    /// Session expiry interval, seconds.
    expiry_interval: u32,
    /// When its latest connection was accepted, ms since the epoch.
    connected_at: u64,
    /// Its subscriptions.
    subscriptions_cnt: usize,
    /// Its user is a superuser (the password file's `:superuser`).
    #[serde(default)]
    is_superuser: bool,
    /// Its attributes from `[mqtt] client_attrs_init`.
    #[serde(default)]
    client_attrs: std::collections::BTreeMap<String, String>,
    /// The mountpoint of the listener it came through, null without one.
    #[serde(default)]
    mountpoint: Option<String>,
}

impl ClientView {
    fn new(node: &str, summary: &ClientSummary, subscriptions_cnt: usize) -> Self {
        let info = &summary.info;
        Self {
            node: node.to_owned(),
            clientid: info.client_id.to_string(),
            username: info.username.as_deref().map(str::to_owned),
            connected: summary.connected,
            peername: info.peer.to_string(),
            sockname: info.local.to_string(),
            proto_name: info.protocol.protocol_name().to_owned(),
            proto_ver: info.protocol.level(),
            keepalive: info.keep_alive,
            clean_start: info.clean_start,
            expiry_interval: info.expiry_interval,
            connected_at: info.connected_at,
            subscriptions_cnt,
            is_superuser: info.is_superuser,
            client_attrs: info
                .client_attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            mountpoint: info.mountpoint.as_deref().map(str::to_owned),
        }
    }
}

/// Connection states to filter on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ConnState {
    /// Connected now.
    Connected,
    /// Offline session.
    Disconnected,
}

/// `GET /clients` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ClientQuery {
    /// Only the client with this id.
    clientid: Option<String>,
    /// Only client ids containing this text (case-insensitive).
    like_clientid: Option<String>,
    /// Only user names containing this text (case-insensitive).
    like_username: Option<String>,
    /// Only clients in this state: `connected` or `disconnected`.
    #[param(inline)]
    conn_state: Option<ConnState>,
    /// Page number, from 1 (default 1).
    #[param(minimum = 1, maximum = 1_000_000)]
    page: Option<u64>,
    /// Items per page, 1 to 10000 (default 50; EMQX's bound).
    #[param(minimum = 1, maximum = 10_000)]
    limit: Option<u64>,
}

fn contains_ignoring_case(haystack: &str, needle: &str) -> bool {
    haystack.to_lowercase().contains(&needle.to_lowercase())
}

/// Subscriptions per client id.
fn subscription_counts(rows: &[SubscriptionRow]) -> HashMap<&str, usize> {
    let mut counts = HashMap::new();
    for row in rows {
        *counts.entry(&*row.client_id).or_insert(0) += 1;
    }
    counts
}

/// The question the nodes answer for a cluster-wide list.
const TOPIC: &str = "clients";

/// What a listing is filtered on, as the nodes are asked.
#[derive(Debug, Serialize, Deserialize)]
struct ClientFilter {
    clientid: Option<String>,
    like_clientid: Option<String>,
    like_username: Option<String>,
    conn_state: Option<ConnState>,
}

/// This node's clients matching `filter`, sorted by client id.
fn local_clients(broker: &hookmq_broker::BrokerHandle, filter: &ClientFilter) -> Vec<ClientView> {
    let rows = broker.subscriptions();
    let counts = subscription_counts(&rows);
    let mut clients: Vec<ClientSummary> = broker
        .clients()
        .into_iter()
        .filter(|c| {
            filter
                .clientid
                .as_deref()
                .is_none_or(|id| *c.info.client_id == *id)
                && filter
                    .like_clientid
                    .as_deref()
                    .is_none_or(|like| contains_ignoring_case(&c.info.client_id, like))
                && filter.like_username.as_deref().is_none_or(|like| {
                    c.info
                        .username
                        .as_deref()
                        .is_some_and(|name| contains_ignoring_case(name, like))
                })
                && filter
                    .conn_state
                    .is_none_or(|s| (s == ConnState::Connected) == c.connected)
        })
        .collect();
    clients.sort_by(|a, b| a.info.client_id.cmp(&b.info.client_id));
    let node = broker.node_name();
    clients
        .iter()
        .map(|c| {
            let count = counts.get(&*c.info.client_id).copied().unwrap_or(0);
            ClientView::new(node, c, count)
        })
        .collect()
}

/// Has this node answer the other nodes' client listings and kicks.
pub(crate) async fn answer_for_cluster(
    state: &AppState,
    cluster: &hookmq_cluster::ClusterHandle,
) -> Result<(), hookmq_cluster::ClusterError> {
    let kicker = state.broker().clone();
    crate::cluster_list::answer(cluster, TOPIC, kicker.clone(), local_clients).await?;
    let kick: hookmq_cluster::ask::Answerer = std::sync::Arc::new(move |question: &[u8]| {
        let kicked = std::str::from_utf8(question).is_ok_and(|id| kicker.kick(id));
        if kicked {
            b"kicked".to_vec()
        } else {
            Vec::new()
        }
    });
    cluster.answer(KICK, kick).await
}

/// Lists the clients of every node, node by node (by name), each node's by client id.
#[utoipa::path(get, path = "/clients", tag = "clients",
    params(ClientQuery),
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "One page of clients", body = Page<ClientView>),
        (status = 400, description = "Bad query parameter, named in field", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
    ))]
async fn list(
    _: Authenticated,
    State(state): State<AppState>,
    QueryParams(query): QueryParams<ClientQuery>,
) -> Result<Json<Page<ClientView>>, ApiError> {
    let paging = Paging::new(query.page, query.limit)?;
    let filter = ClientFilter {
        clientid: query.clientid,
        like_clientid: query.like_clientid,
        like_username: query.like_username,
        conn_state: query.conn_state,
    };
    Ok(Json(
        crate::cluster_list::page_or_local(&state, TOPIC, &filter, paging, local_clients).await,
    ))
}

/// One client.
#[utoipa::path(get, path = "/clients/{clientid}", tag = "clients",
    params(("clientid" = String, Path, description = "Client id (percent-encoded)")),
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "The client", body = ClientView),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No session for that client id", body = ErrorBody),
    ))]
async fn show(
    _: Authenticated,
    State(state): State<AppState>,
    PathParams(clientid): PathParams<String>,
) -> Result<Json<ClientView>, ApiError> {
    let filter = ClientFilter {
        clientid: Some(clientid.clone()),
        like_clientid: None,
        like_username: None,
        conn_state: None,
    };
    // Here first: no question to the other nodes for a client of this one.
    let found = match local_clients(state.broker(), &filter).pop() {
        Some(view) => Some(view),
        None => {
            crate::cluster_list::page_or_local(&state, TOPIC, &filter, Paging::one(), local_clients)
                .await
                .data
                .pop()
        }
    };
    found
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("client {clientid}")))
}

/// The question the nodes answer to kick a client there.
const KICK: &str = "kick";

/// Disconnects a connected client (reason `kicked`), on whichever node it is connected. A
/// persistent session stays, offline.
#[utoipa::path(delete, path = "/clients/{clientid}", tag = "clients",
    params(("clientid" = String, Path, description = "Client id (percent-encoded)")),
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 204, description = "Kicked"),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "Not connected", body = ErrorBody),
    ))]
async fn kick(
    auth: Authenticated,
    State(state): State<AppState>,
    PathParams(clientid): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    let kicked = state.broker().kick(&clientid)
        || match &state.cluster {
            Some(cluster) => cluster
                .ask_everyone(KICK, clientid.clone().into_bytes())
                .await
                .iter()
                .any(|(_, answer)| answer.as_ref() == b"kicked"),
            None => false,
        };
    if kicked {
        tracing::info!(clientid, by = auth.principal, "client kicked");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("connected client {clientid}")))
    }
}
