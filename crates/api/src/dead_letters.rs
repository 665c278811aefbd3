//! `/webhooks/{name}/dead_letters`: the events a webhook gave up, with their last attempt;
//! replay them once the receiver is fixed, or purge them.

use axum::{Json, extract::State};
use hookmq_webhooks::{DeadLetterView, ReplayReport};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    auth::Authenticated,
    error::{ApiError, ErrorBody},
    json::{PathParams, QueryParams, from_slice},
    paging::{Page, Paging},
    state::AppState,
};

/// The routes under `/api/v5`.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, purge))
        .routes(routes!(replay))
}

/// Paging of dead letters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct DeadLetterQuery {
    /// Page number, from 1 (default 1).
    #[param(minimum = 1, maximum = 1_000_000)]
    page: Option<u64>,
    /// Items per page, 1 to 10000 (default 50; EMQX's bound).
    #[param(minimum = 1, maximum = 10_000)]
    limit: Option<u64>,
}

/// A dead letter: an event given up, with its last attempt.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DeadLetterDoc {
    /// Its number, for `replay`.
    id: u64,
    /// The event's `webhook-id` (the same when it is replayed).
    webhook_id: String,
    /// The event's name, e.g. `message.publish`.
    event: String,
    /// When the event happened, ms since the epoch.
    happened_at: u64,
    /// When it was given up, ms since the epoch.
    failed_at: u64,
    /// Attempts made.
    attempts: u32,
    /// The last answer's status, if the receiver answered.
    status: Option<u16>,
    /// The start of the last answer's body.
    response: String,
    /// Why it was given up.
    reason: String,
    /// The event, as the default request body shows it (EMQX's fields).
    #[schema(value_type = Object)]
    body: serde_json::Value,
}

impl From<DeadLetterView> for DeadLetterDoc {
    fn from(view: DeadLetterView) -> Self {
        let attempt = view.attempt;
        Self {
            id: view.id,
            webhook_id: attempt.webhook_id,
            event: attempt.event,
            happened_at: attempt.happened_at,
            failed_at: attempt.failed_at,
            attempts: attempt.attempts,
            status: attempt.status,
            response: attempt.response,
            reason: attempt.reason,
            body: view.body,
        }
    }
}

/// Which dead letters to replay.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReplayRequest {
    /// Their ids; absent: all of them.
    ids: Option<Vec<u64>>,
}

/// What a replay did.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ReplayDoc {
    /// Put back in the queue, oldest first (and no longer dead letters).
    replayed: u64,
    /// Asked for but left among the dead letters (the queue had no room).
    left: u64,
}

impl From<ReplayReport> for ReplayDoc {
    fn from(report: ReplayReport) -> Self {
        Self {
            replayed: report.replayed,
            left: report.left,
        }
    }
}

/// How many dead letters were purged.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PurgeDoc {
    /// Dead letters deleted.
    purged: u64,
}

/// A webhook's dead letters, newest first.
#[utoipa::path(get, path = "/webhooks/{name}/dead_letters", tag = "webhooks",
    params(("name" = String, Path, description = "Webhook name"), DeadLetterQuery),
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "One page of dead letters", body = Page<DeadLetterDoc>),
        (status = 400, description = "Bad query parameter, named in field", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such webhook", body = ErrorBody),
    ))]
async fn list(
    _: Authenticated,
    State(state): State<AppState>,
    PathParams(name): PathParams<String>,
    QueryParams(query): QueryParams<DeadLetterQuery>,
) -> Result<Json<Page<DeadLetterDoc>>, ApiError> {
    let paging = Paging::new(query.page, query.limit)?;
    let (skip, take) = paging.window();
    let page = state.engine.dead_letters(&name, skip, take).await?;
    let data = page.letters.into_iter().map(DeadLetterDoc::from).collect();
    Ok(Json(paging.page_of(data, page.count)))
}

/// Puts dead letters back in the webhook's queue (all, or `ids`), oldest first, with their
/// `webhook-id`.
#[utoipa::path(post, path = "/webhooks/{name}/dead_letters/replay", tag = "webhooks",
    params(("name" = String, Path, description = "Webhook name")),
    request_body(content = ReplayRequest, description = "Which ones; an empty body: all"),
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "What was replayed", body = ReplayDoc),
        (status = 400, description = "Bad input, naming the field", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such webhook", body = ErrorBody),
    ))]
async fn replay(
    _: Authenticated,
    State(state): State<AppState>,
    PathParams(name): PathParams<String>,
    body: axum::body::Bytes,
) -> Result<Json<ReplayDoc>, ApiError> {
    // An empty body replays them all.
    let request: ReplayRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ReplayRequest::default()
    } else {
        from_slice(&body)?
    };
    let report = state.engine.replay_dead_letters(&name, request.ids).await?;
    Ok(Json(report.into()))
}

/// Deletes all of a webhook's dead letters.
#[utoipa::path(delete, path = "/webhooks/{name}/dead_letters", tag = "webhooks",
    params(("name" = String, Path, description = "Webhook name")),
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "How many were deleted", body = PurgeDoc),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such webhook", body = ErrorBody),
    ))]
async fn purge(
    _: Authenticated,
    State(state): State<AppState>,
    PathParams(name): PathParams<String>,
) -> Result<Json<PurgeDoc>, ApiError> {
    let purged = state.engine.purge_dead_letters(&name).await?;
    Ok(Json(PurgeDoc { purged }))
}
