//! `/actions`: EMQX's `http` actions (ids `http:<name>`); each is one hookmq webhook.

use axum::{Json, extract::State, http::StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    Catalog, missing, name_of, now_ms,
    objects::{Action, HTTP},
    probe, read, redacted, restore_secrets, status, webhook_name,
};
use crate::{
    auth::Authenticated,
    error::{ApiError, ErrorBody},
    json::{JsonBody, PathParams, QueryParams},
    state::AppState,
};

/// Keys of an answer a request may send back: left out.
const SHOWN_ONLY: [&str; 7] = [
    "id",
    "status",
    "status_reason",
    "node_status",
    "node",
    "error",
    "rules",
];

/// The routes under `/api/v5`.
pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, update, remove))
        .routes(routes!(enable))
        .routes(routes!(metrics))
        .routes(routes!(reset))
        .routes(routes!(test))
}

/// An action as EMQX shows it: its fields, status and the rules naming it.
fn view(state: &AppState, catalog: &Catalog, action: &Action) -> Value {
    let connected = action.enable
        && catalog
            .connectors
            .get(&action.connector)
            .is_some_and(|c| c.enable);
    let (now, reason) = if connected {
        status(state, std::slice::from_ref(&action.name))
    } else {
        ("stopped".to_owned(), None)
    };
    let reason = reason.unwrap_or_default();
    let mut shown = redacted(action);
    if let Some(object) = shown.as_object_mut() {
        object.insert("status".into(), json!(now));
        object.insert("status_reason".into(), json!(reason));
        object.insert("error".into(), json!(reason));
        object.insert(
            "node_status".into(),
            json!([{"node": state.engine.node(), "status": now, "status_reason": reason}]),
        );
        object.insert("rules".into(), json!(catalog.rules_of(&action.name)));
    }
    shown
}

fn find<'a>(catalog: &'a Catalog, id: &str) -> Result<&'a Action, ApiError> {
    let name = name_of(id)?;
    catalog.actions.get(name).ok_or_else(|| {
        missing(format!(
            "Bridge lookup failed: bridge named '{name}' of type http does not exist."
        ))
    })
}

/// Refuses an action whose connector does not exist, as EMQX does.
fn check_connector(catalog: &Catalog, action: &Action) -> Result<(), ApiError> {
    if catalog.connectors.contains_key(&action.connector) {
        return Ok(());
    }
    let reason = json!({
        "bridge_name": action.name, "bridge_type": HTTP, "connector_name": action.connector,
        "conf_root_key": "actions", "reason": "connector_not_found_or_wrong_type",
    });
    Err(ApiError::bad_field("connector", reason))
}

/// Every action (EMQX's `GET /actions`).
#[utoipa::path(get, path = "/actions", tag = "emqx",
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "Every http action, with status and the rules naming it", body = Vec<Object>),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
    ))]
async fn list(
    _: Authenticated,
    State(state): State<AppState>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let catalog = Catalog::load(&state).await?;
    Ok(Json(
        catalog
            .actions
            .values()
            .map(|a| view(&state, &catalog, a))
            .collect(),
    ))
}

/// Creates an `http` action: the webhook of the same name (without `_WH_D`), fed by the
/// rules that name it.
#[utoipa::path(post, path = "/actions", tag = "emqx",
    request_body = Action,
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 201, description = "Created: its fields with status, status_reason, error, node_status and rules", body = Object),
        (status = 400, description = "Bad input, naming the field; `ALREADY_EXISTS` when the name (or its webhook's) is taken", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
    ))]
async fn create(
    _: Authenticated,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let mut action: Action = read(body, &SHOWN_ONLY)?;
    let _writing = state.emqx_writes.lock().await;
    let mut catalog = Catalog::load(&state).await?;
    if catalog.actions.contains_key(&action.name) {
        return Err(ApiError::already_exists("bridge already exists"));
    }
    let webhook = webhook_name(&action.name);
    if let Some(other) = catalog
        .actions
        .values()
        .find(|a| webhook_name(&a.name) == webhook)
    {
        return Err(ApiError::already_exists(format!(
            "webhook {webhook} exists (action http:{}); an action is the webhook of its name \
             without _WH_D",
            other.name
        )));
    }
    check_connector(&catalog, &action)?;
    (action.created_at, action.last_modified_at) = (now_ms(), now_ms());
    catalog.put_action(action.clone());
    catalog.commit(&state).await?;
    let catalog = Catalog::load(&state).await?;
    Ok((StatusCode::CREATED, Json(view(&state, &catalog, &action))))
}

/// One action.
#[utoipa::path(get, path = "/actions/{id}", tag = "emqx",
    params(("id" = String, Path, description = "`http:<name>`")),
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "The action: its fields with status, status_reason, error, node_status and rules", body = Object),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such action", body = ErrorBody),
    ))]
async fn show(
    _: Authenticated,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    let catalog = Catalog::load(&state).await?;
    Ok(Json(view(&state, &catalog, find(&catalog, &id)?)))
}

/// Replaces an action (the body is an action without `type` and `name`); its webhook
/// changes with it, queued events kept.
#[utoipa::path(put, path = "/actions/{id}", tag = "emqx",
    params(("id" = String, Path, description = "`http:<name>`")),
    request_body = Action,
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "Changed: its fields with status, status_reason, error, node_status and rules", body = Object),
        (status = 400, description = "Bad input, naming the field", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such action", body = ErrorBody),
    ))]
async fn update(
    _: Authenticated,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    JsonBody(mut body): JsonBody<Value>,
) -> Result<Json<Value>, ApiError> {
    let _writing = state.emqx_writes.lock().await;
    let mut catalog = Catalog::load(&state).await?;
    let current = find(&catalog, &id)?.clone();
    if let Some(object) = body.as_object_mut() {
        object.insert("type".into(), json!(HTTP));
        object.insert("name".into(), json!(current.name));
    }
    let mut action: Action = read(body, &SHOWN_ONLY)?;
    check_connector(&catalog, &action)?;
    restore_secrets(
        &mut action.parameters.headers,
        Some(&current.parameters.headers),
        "parameters.headers",
    )?;
    action.created_at = current.created_at;
    action.last_modified_at = now_ms();
    catalog.put_action(action.clone());
    catalog.commit(&state).await?;
    let catalog = Catalog::load(&state).await?;
    Ok(Json(view(&state, &catalog, &action)))
}

/// `DELETE /actions/{id}` options.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct RemoveQuery {
    /// Take the action out of the rules naming it (they stay) instead of refusing.
    #[serde(default)]
    also_delete_dep_actions: bool,
}

/// Deletes an action and its webhook (events still queued are dropped, and logged).
#[utoipa::path(delete, path = "/actions/{id}", tag = "emqx",
    params(("id" = String, Path, description = "`http:<name>`"), RemoveQuery),
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Rules still name it (listed in `rules`)", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such action", body = ErrorBody),
    ))]
async fn remove(
    _: Authenticated,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    QueryParams(query): QueryParams<RemoveQuery>,
) -> Result<StatusCode, ApiError> {
    let _writing = state.emqx_writes.lock().await;
    let mut catalog = Catalog::load(&state).await?;
    let name = find(&catalog, &id)?.name.clone();
    let rules = catalog.rules_of(&name);
    if !rules.is_empty() && !query.also_delete_dep_actions {
        return Err(ApiError::bad_request(
            "Cannot delete action while active rules are depending on it",
        )
        .with("rules", json!(rules)));
    }
    let reference = format!("{HTTP}:{name}");
    for rule_id in rules {
        if let Some(mut rule) = catalog.rules.get(&rule_id).cloned() {
            rule.actions.retain(|a| *a != reference);
            catalog.put_rule(rule);
        }
    }
    catalog.remove_action(&name);
    catalog.commit(&state).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Turns an action on or off: off, its events wait.
#[utoipa::path(put, path = "/actions/{id}/enable/{enable}", tag = "emqx",
    params(
        ("id" = String, Path, description = "`http:<name>`"),
        ("enable" = bool, Path, description = "`true` or `false`"),
    ),
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 204, description = "Done"),
        (status = 400, description = "Neither true nor false", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such action", body = ErrorBody),
    ))]
async fn enable(
    _: Authenticated,
    State(state): State<AppState>,
    PathParams((id, enable)): PathParams<(String, bool)>,
) -> Result<StatusCode, ApiError> {
    let _writing = state.emqx_writes.lock().await;
    let mut catalog = Catalog::load(&state).await?;
    let mut action = find(&catalog, &id)?.clone();
    action.enable = enable;
    action.last_modified_at = now_ms();
    catalog.put_action(action);
    catalog.commit(&state).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// EMQX's action metrics of a webhook.
fn emqx_metrics(metrics: &hookmq_webhooks::MetricsSnapshot) -> Value {
    let round = |rate: f64| (rate * 100.0).round() / 100.0;
    json!({
        "matched": metrics.matched, "success": metrics.success, "failed": metrics.failed,
        "late_reply": metrics.late_reply, "retried": metrics.retried, "received": 0,
        "dropped": metrics.dropped, "dropped.expired": metrics.dropped_expired,
        "dropped.queue_full": metrics.dropped_queue_full,
        "dropped.other": metrics.dropped.saturating_sub(metrics.dropped_expired + metrics.dropped_queue_full),
        "dropped.resource_not_found": 0, "dropped.resource_stopped": 0,
        "queuing": metrics.queuing,
        "queuing_bytes": metrics.buffer.as_ref().map_or(0, |b| b.disk_bytes),
        "inflight": metrics.inflight, "rate": round(metrics.rate),
        "rate_last5m": round(metrics.rate_last5m), "rate_max": round(metrics.rate_max),
    })
}

/// An action's metrics, as EMQX reports them (this node's).
#[utoipa::path(get, path = "/actions/{id}/metrics", tag = "emqx",
    params(("id" = String, Path, description = "`http:<name>`")),
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "`{metrics, node_metrics: [{node, metrics}]}`", body = Object),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such action", body = ErrorBody),
    ))]
async fn metrics(
    _: Authenticated,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    let catalog = Catalog::load(&state).await?;
    let action = find(&catalog, &id)?;
    let metrics = state
        .engine
        .get(webhook_name(&action.name))
        .map(|w| emqx_metrics(&w.metrics))
        .unwrap_or_else(|| emqx_metrics(&hookmq_webhooks::MetricsSnapshot::default()));
    Ok(Json(json!({
        "metrics": metrics,
        "node_metrics": [{"node": state.engine.node(), "metrics": metrics}],
    })))
}

/// Sets an action's counters back to zero.
#[utoipa::path(put, path = "/actions/{id}/metrics/reset", tag = "emqx",
    params(("id" = String, Path, description = "`http:<name>`")),
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 204, description = "Done"),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such action", body = ErrorBody),
    ))]
async fn reset(
    _: Authenticated,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    let catalog = Catalog::load(&state).await?;
    let action = find(&catalog, &id)?;
    match state.engine.reset_metrics(webhook_name(&action.name)) {
        Ok(()) | Err(hookmq_webhooks::EngineError::NotFound(_)) => Ok(StatusCode::NO_CONTENT),
        Err(error) => Err(error.into()),
    }
}

/// Checks that an action's receiver (through its connector) accepts a connection, as
/// EMQX's dry run does (no request is sent; the action is not saved).
#[utoipa::path(post, path = "/actions_probe", tag = "emqx",
    request_body = Action,
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 204, description = "The receiver accepts connections"),
        (status = 400, description = "`TEST_FAILED` saying why (or that the connector does not exist), or bad input naming the field", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
    ))]
async fn test(
    _: Authenticated,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<Value>,
) -> Result<StatusCode, ApiError> {
    let action: Action = read(body, &SHOWN_ONLY)?;
    let catalog = Catalog::load(&state).await?;
    let Some(connector) = catalog.connectors.get(&action.connector) else {
        return Err(ApiError {
            code: "TEST_FAILED",
            ..ApiError::bad_request(format!("Connector <<\"{}\">> not found", action.connector))
        });
    };
    probe(&state, connector, Some(&action)).await
}
