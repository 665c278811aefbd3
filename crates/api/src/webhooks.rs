//! `/webhooks`: create, read, update, delete, enable, metrics, test; and `/webhooks_probe`.
//! The engine saves the webhooks created here, and they come back after a restart.

use std::sync::Arc;

use crate::store::Table;
use axum::{Json, extract::State, http::StatusCode};
use hookmq_webhooks::{
    MetricsSnapshot, ProbeResult, WebhookSpec, WebhookStatus, attempts::Attempt,
};
use serde_json::Value;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    auth::Authenticated,
    error::{ApiError, ErrorBody},
    json::{JsonBody, PathParams, QueryParams, from_value},
    openapi::{AttemptDoc, ProbeResultDoc, WebhookMetricsDoc, WebhookSpecDoc, WebhookStatusDoc},
    state::AppState,
};

pub use hookmq_webhooks::spec::REDACTED;

/// The routes under `/api/v5`.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, update, remove))
        .routes(routes!(enable))
        .routes(routes!(metrics))
        .routes(routes!(attempts))
        .routes(routes!(reset))
        .routes(routes!(test))
        .routes(routes!(probe))
}

/// A spec with its secrets replaced by [`REDACTED`].
#[must_use]
pub fn redact(spec: WebhookSpec) -> WebhookSpec {
    spec.redacted()
}

/// Puts back secrets that came in redacted (the form sends what it was shown).
fn restore_secrets(mut spec: WebhookSpec, current: &WebhookSpec) -> WebhookSpec {
    if spec.signing_secret.as_deref() == Some(REDACTED) {
        spec.signing_secret.clone_from(&current.signing_secret);
    }
    for (name, value) in &mut spec.headers {
        if value == REDACTED
            && let Some(old) = current.headers.get(name)
        {
            value.clone_from(old);
        }
    }
    spec
}

fn shown(status: WebhookStatus) -> WebhookStatus {
    WebhookStatus {
        spec: redact(status.spec),
        ..status
    }
}

fn current(state: &AppState, name: &str) -> Result<WebhookStatus, ApiError> {
    state
        .engine
        .get(name)
        .ok_or_else(|| ApiError::not_found(format!("webhook {name}")))
}

/// Lists the webhooks with their metrics (secrets shown as `******`).
#[utoipa::path(get, path = "/webhooks", tag = "webhooks",
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "Every webhook", body = Vec<WebhookStatusDoc>),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
    ))]
async fn list(_: Authenticated, State(state): State<AppState>) -> Json<Vec<WebhookStatus>> {
    Json(state.engine.list().into_iter().map(shown).collect())
}

/// Creates a webhook; it is saved and delivers at once (if enabled).
#[utoipa::path(post, path = "/webhooks", tag = "webhooks",
    request_body = WebhookSpecDoc,
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 201, description = "Created", body = WebhookStatusDoc),
        (status = 400, description = "Bad input, naming the field", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 409, description = "The name is taken", body = ErrorBody),
        (status = 503, description = "A clustered node cannot reach the cluster, which takes every change first", body = ErrorBody),
    ))]
async fn create(
    _: Authenticated,
    State(state): State<AppState>,
    JsonBody(spec): JsonBody<WebhookSpec>,
) -> Result<(StatusCode, Json<WebhookStatus>), ApiError> {
    let name = spec.name.clone();
    state.engine.create(spec).await?;
    Ok((StatusCode::CREATED, Json(shown(current(&state, &name)?))))
}

/// One webhook with its metrics.
#[utoipa::path(get, path = "/webhooks/{name}", tag = "webhooks",
    params(("name" = String, Path, description = "Webhook name")),
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "The webhook", body = WebhookStatusDoc),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such webhook", body = ErrorBody),
    ))]
async fn show(
    _: Authenticated,
    State(state): State<AppState>,
    PathParams(name): PathParams<String>,
) -> Result<Json<WebhookStatus>, ApiError> {
    Ok(Json(shown(current(&state, &name)?)))
}

/// Replaces a webhook's definition (fields left out take their defaults; `******` keeps a
/// stored secret; `metrics`, `status` and `receivers`, as a GET shows them, are ignored).
/// Its queue and metrics carry over. A webhook made through `/actions` is
/// then shown there as `<name>_WH_D` (its EMQX-style objects are forgotten).
#[utoipa::path(put, path = "/webhooks/{name}", tag = "webhooks",
    params(("name" = String, Path, description = "Webhook name")),
    request_body = WebhookSpecDoc,
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "Updated", body = WebhookStatusDoc),
        (status = 400, description = "Bad input, naming the field", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such webhook", body = ErrorBody),
        (status = 503, description = "A clustered node cannot reach the cluster, which takes every change first", body = ErrorBody),
    ))]
async fn update(
    _: Authenticated,
    State(state): State<AppState>,
    PathParams(name): PathParams<String>,
    JsonBody(mut body): JsonBody<Value>,
) -> Result<Json<WebhookStatus>, ApiError> {
    let existing = current(&state, &name)?;
    let object = body
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("expected a JSON object"))?;
    // What a GET shows besides the definition: left out, so a GET → PUT round trip works.
    for shown_only in ["metrics", "status", "receivers"] {
        object.remove(shown_only);
    }
    match object.get("name") {
        None => {
            object.insert("name".into(), Value::String(name.clone()));
        }
        Some(Value::String(given)) if *given == name => {}
        Some(_) => return Err(ApiError::bad_field("name", "a webhook cannot be renamed")),
    }
    let spec = restore_secrets(from_value::<WebhookSpec>(body)?, &existing.spec);
    // Held so no EMQX-style change composes this webhook from what it was meanwhile.
    let _writing = state.emqx_writes.lock().await;
    state.engine.update(spec).await?;
    crate::emqx::forget_webhook(&state, &name).await?;
    Ok(Json(shown(current(&state, &name)?)))
}

/// Deletes a webhook; what it had queued is dropped. One made through `/actions` goes with
/// its action, the rules left with no action and the connector left unused.
#[utoipa::path(delete, path = "/webhooks/{name}", tag = "webhooks",
    params(("name" = String, Path, description = "Webhook name")),
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such webhook", body = ErrorBody),
        (status = 503, description = "A clustered node cannot reach the cluster, which takes every change first", body = ErrorBody),
    ))]
async fn remove(
    _: Authenticated,
    State(state): State<AppState>,
    PathParams(name): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    let _writing = state.emqx_writes.lock().await;
    state.engine.remove(&name).await?;
    crate::emqx::forget_webhook(&state, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Enables or disables a webhook.
#[utoipa::path(put, path = "/webhooks/{name}/enable/{enable}", tag = "webhooks",
    params(
        ("name" = String, Path, description = "Webhook name"),
        ("enable" = bool, Path, description = "`true` or `false`"),
    ),
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 204, description = "Done"),
        (status = 400, description = "Neither true nor false (field enable)", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such webhook", body = ErrorBody),
        (status = 409, description = "Made through /actions, and its connector or rules keep it off", body = ErrorBody),
        (status = 503, description = "A clustered node cannot reach the cluster, which takes every change first", body = ErrorBody),
    ))]
async fn enable(
    _: Authenticated,
    State(state): State<AppState>,
    PathParams((name, enable)): PathParams<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let enable = match enable.as_str() {
        "true" => true,
        "false" => false,
        _ => return Err(ApiError::bad_field("enable", "use true or false")),
    };
    let _writing = state.emqx_writes.lock().await;
    if !crate::emqx::enable_webhook(&state, &name, enable).await? {
        state.engine.set_enabled(&name, enable).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// A webhook's metrics on this node, and on every node (`node_metrics`, as EMQX's).
#[derive(Debug, serde::Serialize)]
struct WebhookMetrics {
    #[serde(flatten)]
    metrics: MetricsSnapshot,
    node_metrics: Vec<NodeMetrics>,
}

/// One node's metrics of a webhook.
#[derive(Debug, serde::Serialize)]
struct NodeMetrics {
    node: String,
    metrics: serde_json::Value,
}

/// A webhook's metrics: counts, rates, latency, last failures; on this node, and in
/// `node_metrics` on each node (in a cluster, every node that answers within 300 ms).
#[utoipa::path(get, path = "/webhooks/{name}/metrics", tag = "webhooks",
    params(("name" = String, Path, description = "Webhook name")),
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "The metrics", body = WebhookMetricsDoc),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such webhook", body = ErrorBody),
    ))]
async fn metrics(
    _: Authenticated,
    State(state): State<AppState>,
    PathParams(name): PathParams<String>,
) -> Result<Json<WebhookMetrics>, ApiError> {
    let metrics = current(&state, &name)?.metrics;
    let here = state.broker().node_name().to_owned();
    let mut node_metrics = Vec::new();
    if let Some(cluster) = &state.cluster {
        for mut node in cluster.nodes().await {
            if node.node != here
                && let Some(theirs) = node.webhooks.remove(&name)
            {
                node_metrics.push(NodeMetrics {
                    node: node.node,
                    metrics: theirs,
                });
            }
        }
    }
    node_metrics.push(NodeMetrics {
        node: here,
        metrics: serde_json::to_value(&metrics).map_err(ApiError::internal)?,
    });
    node_metrics.sort_by(|a, b| a.node.cmp(&b.node));
    Ok(Json(WebhookMetrics {
        metrics,
        node_metrics,
    }))
}

/// How many attempts to list.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AttemptsQuery {
    /// Attempts to list, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u64>,
}

/// A webhook's last attempts, newest first: when, which event, the answer or the error,
/// how long.
#[utoipa::path(get, path = "/webhooks/{name}/attempts", tag = "webhooks",
    params(("name" = String, Path, description = "Webhook name"), AttemptsQuery),
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "The last attempts", body = Vec<AttemptDoc>),
        (status = 400, description = "Bad query parameter, named in field", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such webhook", body = ErrorBody),
    ))]
async fn attempts(
    _: Authenticated,
    State(state): State<AppState>,
    PathParams(name): PathParams<String>,
    QueryParams(query): QueryParams<AttemptsQuery>,
) -> Result<Json<Vec<Attempt>>, ApiError> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::bad_field("limit", "use 1 to 100"));
    }
    let limit = usize::try_from(limit).unwrap_or(100);
    Ok(Json(state.engine.attempts(&name, limit)?))
}

/// Sets a webhook's counters back to zero.
#[utoipa::path(put, path = "/webhooks/{name}/metrics/reset", tag = "webhooks",
    params(("name" = String, Path, description = "Webhook name")),
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 204, description = "Reset"),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such webhook", body = ErrorBody),
    ))]
async fn reset(
    _: Authenticated,
    State(state): State<AppState>,
    PathParams(name): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    state.engine.reset_metrics(&name)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sends one sample request with a saved webhook's settings and shows the receiver's answer.
#[utoipa::path(post, path = "/webhooks/{name}/test", tag = "webhooks",
    params(("name" = String, Path, description = "Webhook name")),
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "What the receiver answered (or the error)", body = ProbeResultDoc),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such webhook", body = ErrorBody),
    ))]
async fn test(
    _: Authenticated,
    State(state): State<AppState>,
    PathParams(name): PathParams<String>,
) -> Result<Json<ProbeResult>, ApiError> {
    let spec = current(&state, &name)?.spec;
    Ok(Json(state.engine.probe(&spec).await?))
}

/// Sends one sample request with unsaved settings (the form's Test button); `name` may be
/// left out.
#[utoipa::path(post, path = "/webhooks_probe", tag = "webhooks",
    request_body = WebhookSpecDoc,
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "What the receiver answered (or the error)", body = ProbeResultDoc),
        (status = 400, description = "Bad input, naming the field", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
    ))]
async fn probe(
    _: Authenticated,
    State(state): State<AppState>,
    JsonBody(mut body): JsonBody<Value>,
) -> Result<Json<ProbeResult>, ApiError> {
    // An unsaved webhook may not have a name yet.
    if let Some(object) = body.as_object_mut() {
        object
            .entry("name")
            .or_insert_with(|| Value::String("probe".into()));
    }
    let spec: WebhookSpec = from_value(body)?;
    Ok(Json(state.engine.probe(&spec).await?))
}

/// Moves webhooks an earlier hookmq saved in the broker's store into the engine, which
/// saves them in their own directories from now on (see `hookmq_webhooks::store`), and
/// removes them from the store. Run once at start, after [`WebhookEngine::restore`]; one
/// that no longer validates stays in the store with a warning. Returns how many moved.
///
/// # Errors
/// The store cannot be read or written.
///
/// [`WebhookEngine::restore`]: hookmq_webhooks::WebhookEngine::restore
pub async fn migrate_saved_webhooks(
    engine: &hookmq_webhooks::WebhookEngine,
    store: &Arc<crate::store::Store>,
) -> Result<usize, crate::store::StoreError> {
    let join = |e: tokio::task::JoinError| crate::store::StoreError::Database {
        path: "hookmq.redb".into(),
        reason: e.to_string(),
    };
    let reader = Arc::clone(store);
    let saved: Vec<(String, WebhookSpec)> =
        tokio::task::spawn_blocking(move || reader.list(Table::Webhooks))
            .await
            .map_err(join)??;
    let mut moved = 0;
    for (name, spec) in saved {
        if let Err(error) = engine.put(spec).await {
            tracing::warn!(webhook = %name, %error, "saved webhook not moved: left in the store");
            continue;
        }
        let writer = Arc::clone(store);
        let key = name.clone();
        tokio::task::spawn_blocking(move || writer.delete(Table::Webhooks, &key))
            .await
            .map_err(join)??;
        tracing::info!(webhook = %name, "saved webhook moved to the webhooks' own directory");
        moved += 1;
    }
    Ok(moved)
}
