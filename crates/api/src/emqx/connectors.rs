//! `/connectors`: EMQX's `http` connectors (ids `http:<name>`).

use axum::{Json, extract::State, http::StatusCode};
use serde_json::{Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    Catalog, missing, name_of,
    objects::{Connector, HTTP},
    probe, read, redacted, restore_secrets, status,
};
use crate::{
    auth::Authenticated,
    error::{ApiError, ErrorBody},
    json::{JsonBody, PathParams},
    state::AppState,
};

/// Keys of an answer a request may send back: left out.
const SHOWN_ONLY: [&str; 7] = [
    "id",
    "status",
    "status_reason",
    "node_status",
    "node",
    "actions",
    "sources",
];

/// The routes under `/api/v5`.
pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, update, remove))
        .routes(routes!(enable))
        .routes(routes!(test))
}

/// A connector as EMQX shows it: its fields, its status and the actions using it.
fn view(state: &AppState, catalog: &Catalog, connector: &Connector) -> Value {
    let actions = catalog.actions_using(&connector.name);
    let (state_now, reason) = if connector.enable {
        status(state, &actions)
    } else {
        ("stopped".to_owned(), None)
    };
    let mut shown = redacted(connector);
    if let Some(object) = shown.as_object_mut() {
        object.insert("status".into(), json!(state_now));
        let mut node = json!({"node": state.engine.node(), "status": state_now});
        if let Some(reason) = reason {
            object.insert("status_reason".into(), json!(reason));
            node["status_reason"] = json!(reason);
        }
        object.insert("node_status".into(), json!([node]));
        object.insert("actions".into(), json!(actions));
    }
    shown
}

/// The connector with that id, or 404.
fn find<'a>(catalog: &'a Catalog, id: &str) -> Result<&'a Connector, ApiError> {
    let name = name_of(id)?;
    catalog.connectors.get(name).ok_or_else(|| {
        missing(format!(
            "Connector lookup failed: connector named '{name}' of type http does not exist."
        ))
    })
}

/// Every connector (EMQX's `GET /connectors`).
#[utoipa::path(get, path = "/connectors", tag = "emqx",
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "Every http connector, with status and the actions using it", body = Vec<Object>),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
    ))]
async fn list(
    _: Authenticated,
    State(state): State<AppState>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let catalog = Catalog::load(&state).await?;
    Ok(Json(
        catalog
            .connectors
            .values()
            .map(|c| view(&state, &catalog, c))
            .collect(),
    ))
}

/// Creates an `http` connector; it sends nothing until an action uses it.
#[utoipa::path(post, path = "/connectors", tag = "emqx",
    request_body = Connector,
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 201, description = "Created: its fields with status, status_reason, node_status and actions", body = Object),
        (status = 400, description = "Bad input, naming the field; `ALREADY_EXISTS` when the name is taken", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
    ))]
async fn create(
    _: Authenticated,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let connector: Connector = read(body, &SHOWN_ONLY)?;
    let _writing = state.emqx_writes.lock().await;
    let mut catalog = Catalog::load(&state).await?;
    if catalog.connectors.contains_key(&connector.name) {
        return Err(ApiError::already_exists("connector already exists"));
    }
    catalog.put_connector(connector.clone());
    catalog.commit(&state).await?;
    let catalog = Catalog::load(&state).await?;
    Ok((
        StatusCode::CREATED,
        Json(view(&state, &catalog, &connector)),
    ))
}

/// One connector.
#[utoipa::path(get, path = "/connectors/{id}", tag = "emqx",
    params(("id" = String, Path, description = "`http:<name>`")),
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "The connector: its fields with status, status_reason, node_status and actions", body = Object),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such connector", body = ErrorBody),
    ))]
async fn show(
    _: Authenticated,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    let catalog = Catalog::load(&state).await?;
    let connector = find(&catalog, &id)?;
    Ok(Json(view(&state, &catalog, connector)))
}

/// Changes a connector (the body is a connector without `type` and `name`); the webhooks
/// of its actions change with it.
#[utoipa::path(put, path = "/connectors/{id}", tag = "emqx",
    params(("id" = String, Path, description = "`http:<name>`")),
    request_body = Connector,
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "Changed: its fields with status, status_reason, node_status and actions", body = Object),
        (status = 400, description = "Bad input, naming the field", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such connector", body = ErrorBody),
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
    let mut connector: Connector = read(body, &SHOWN_ONLY)?;
    restore_secrets(&mut connector.headers, Some(&current.headers), "headers")?;
    catalog.put_connector(connector.clone());
    catalog.commit(&state).await?;
    let catalog = Catalog::load(&state).await?;
    Ok(Json(view(&state, &catalog, &connector)))
}

/// Deletes a connector no action uses.
#[utoipa::path(delete, path = "/connectors/{id}", tag = "emqx",
    params(("id" = String, Path, description = "`http:<name>`")),
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Actions still use it", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such connector", body = ErrorBody),
    ))]
async fn remove(
    _: Authenticated,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    let _writing = state.emqx_writes.lock().await;
    let mut catalog = Catalog::load(&state).await?;
    let name = find(&catalog, &id)?.name.clone();
    let users = catalog.actions_using(&name);
    if !users.is_empty() {
        return Err(ApiError::bad_request(format!(
            "Cannot delete connector while there are active channels defined for this \
             connector: actions {}",
            users.join(", ")
        )));
    }
    catalog.remove_connector(&name);
    catalog.commit(&state).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Turns a connector on or off: off, its actions deliver nothing (their events wait).
#[utoipa::path(put, path = "/connectors/{id}/enable/{enable}", tag = "emqx",
    params(
        ("id" = String, Path, description = "`http:<name>`"),
        ("enable" = bool, Path, description = "`true` or `false`"),
    ),
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 204, description = "Done"),
        (status = 400, description = "Neither true nor false", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such connector", body = ErrorBody),
    ))]
async fn enable(
    _: Authenticated,
    State(state): State<AppState>,
    PathParams((id, enable)): PathParams<(String, bool)>,
) -> Result<StatusCode, ApiError> {
    let _writing = state.emqx_writes.lock().await;
    let mut catalog = Catalog::load(&state).await?;
    let mut connector = find(&catalog, &id)?.clone();
    connector.enable = enable;
    catalog.put_connector(connector);
    catalog.commit(&state).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Checks that a connector's receiver accepts a connection, as EMQX's Test button does (no
/// request is sent; the connector is not saved).
#[utoipa::path(post, path = "/connectors_probe", tag = "emqx",
    request_body = Connector,
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 204, description = "The receiver accepts connections"),
        (status = 400, description = "`TEST_FAILED` saying why, or bad input naming the field", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
    ))]
async fn test(
    _: Authenticated,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<Value>,
) -> Result<StatusCode, ApiError> {
    let connector: Connector = read(body, &SHOWN_ONLY)?;
    probe(&state, &connector, None).await
}
