//! `/alarms`: the active alarms (or the past ones) of every node of the cluster
//! (`cluster_list`; this node's alone without one), as EMQX's `/alarms`; clearing the past
//! ones asks every node to (as EMQX's); deactivating one by hand acts on this node, as
//! EMQX's `force_deactivate`.

use axum::{Json, extract::State, http::StatusCode};
use hookmq_broker::{BrokerHandle, alarms::Alarm, sys::rfc3339};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    auth::Authenticated,
    error::{ApiError, ErrorBody},
    json::{JsonBody, QueryParams},
    paging::{Page, Paging},
    state::AppState,
};

/// `/alarms` and `/alarms/force_deactivate`.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, clear))
        .routes(routes!(force_deactivate))
}

/// An alarm as EMQX's API shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct AlarmView {
    /// The node it is on.
    node: String,
    /// Its name, e.g. `high_system_memory_usage`, `action:http:<webhook>`.
    name: String,
    /// For people.
    message: String,
    /// What it is about.
    #[schema(value_type = Object)]
    details: Value,
    /// How long it was (or has been) active, in ms.
    duration: u64,
    /// When it was activated (RFC 3339).
    activate_at: String,
    /// When it was deactivated (RFC 3339; past alarms only).
    #[serde(skip_serializing_if = "Option::is_none")]
    deactivate_at: Option<String>,
}

impl AlarmView {
    fn new(node: &str, alarm: Alarm) -> Self {
        let now = hookmq_broker::message::now_micros();
        let until = alarm.deactivate_at.unwrap_or(now);
        Self {
            node: node.to_owned(),
            name: alarm.name,
            message: alarm.message,
            details: alarm.details,
            duration: until.saturating_sub(alarm.activate_at) / 1000,
            activate_at: rfc3339(alarm.activate_at / 1000),
            deactivate_at: alarm.deactivate_at.map(|at| rfc3339(at / 1000)),
        }
    }
}

/// `GET /alarms` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AlarmQuery {
    /// `true` (the default, as EMQX's code): the active alarms; `false`: the past ones.
    activated: Option<bool>,
    /// Page number, from 1 (default 1).
    #[param(minimum = 1, maximum = 1_000_000)]
    page: Option<u64>,
    /// Items per page, 1 to 10000 (default 50; EMQX's bound).
    #[param(minimum = 1, maximum = 10_000)]
    limit: Option<u64>,
}

/// The question the nodes answer for a cluster-wide list.
const TOPIC: &str = "alarms";
/// The question that has every node forget its past alarms.
const CLEAR: &str = "alarms_clear";

fn local_alarms(broker: &BrokerHandle, active: &bool) -> Vec<AlarmView> {
    let node = broker.node_name().to_owned();
    broker
        .alarms(*active)
        .into_iter()
        .map(|alarm| AlarmView::new(&node, alarm))
        .collect()
}

/// Has this node answer the cluster's alarm listings.
pub(crate) async fn answer_for_cluster(
    state: &AppState,
    cluster: &hookmq_cluster::ClusterHandle,
) -> Result<(), hookmq_cluster::ClusterError> {
    crate::cluster_list::answer(cluster, TOPIC, state.broker().clone(), local_alarms).await?;
    let broker = state.broker().clone();
    let clear: hookmq_cluster::ask::Answerer = std::sync::Arc::new(move |_: &[u8]| {
        broker.clear_alarm_history();
        b"ok".to_vec()
    });
    cluster.answer(CLEAR, clear).await
}

/// The active alarms (or, with `activated=false`, the past ones) of every node, node by
/// node, each node's oldest first.
#[utoipa::path(get, path = "/alarms", tag = "alarms",
    params(AlarmQuery),
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "One page of alarms", body = Page<AlarmView>),
        (status = 400, description = "Bad query parameter, named in field", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
    ))]
async fn list(
    _: Authenticated,
    State(state): State<AppState>,
    QueryParams(query): QueryParams<AlarmQuery>,
) -> Result<Json<Page<AlarmView>>, ApiError> {
    let paging = Paging::new(query.page, query.limit)?;
    let active = query.activated.unwrap_or(true);
    Ok(Json(
        crate::cluster_list::page_or_local(&state, TOPIC, &active, paging, local_alarms).await,
    ))
}

/// Forgets the past alarms of every node (the active ones stay).
#[utoipa::path(delete, path = "/alarms", tag = "alarms",
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 204, description = "Forgotten"),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
    ))]
async fn clear(_: Authenticated, State(state): State<AppState>) -> StatusCode {
    state.broker().clear_alarm_history();
    if let Some(cluster) = &state.cluster {
        cluster.ask_everyone(CLEAR, Vec::new()).await;
    }
    StatusCode::NO_CONTENT
}

/// `POST /alarms/force_deactivate` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ForceDeactivate {
    /// The alarm's name.
    #[schema(min_length = 1)]
    name: String,
}

/// Deactivates an active alarm of this node by hand (it comes back if its condition
/// still holds when next checked).
#[utoipa::path(post, path = "/alarms/force_deactivate", tag = "alarms",
    request_body = ForceDeactivate,
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 204, description = "Deactivated"),
        (status = 400, description = "No such active alarm (`NOT_FOUND`), or bad input", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
    ))]
async fn force_deactivate(
    _: Authenticated,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<ForceDeactivate>,
) -> Result<StatusCode, ApiError> {
    if state.broker().deactivate_alarm(&body.name, None) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError {
            code: "NOT_FOUND",
            ..ApiError::bad_field("name", "Alarm not found or already deactivated")
        })
    }
}
