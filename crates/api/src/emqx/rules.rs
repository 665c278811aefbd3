//! `/rules`: which events go to which `http` actions, in the SQL `sql` reads.

use axum::{Json, extract::State, http::StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{Catalog, missing, now_ms, objects::Rule, sql};
use crate::{
    auth::Authenticated,
    error::{ApiError, ErrorBody},
    json::{JsonBody, PathParams, QueryParams, from_value},
    paging::{Page, Paging},
    state::AppState,
};

/// The routes under `/api/v5`.
pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, update, remove))
        .routes(routes!(events))
        .routes(routes!(metrics))
        .routes(routes!(test))
}

/// Keys a rule's answer has that a request may send back; dropped from requests.
const SHOWN_ONLY: [&str; 8] = [
    "from",
    "created_at",
    "last_modified_at",
    "status",
    "node_status",
    "metrics",
    "node_metrics",
    "node",
];

/// A rule as EMQX shows it.
fn view(rule: &Rule) -> Value {
    let from = sql::parse(&rule.sql).map(|s| s.from).unwrap_or_default();
    json!({
        "id": rule.id, "name": rule.name, "from": from, "actions": rule.actions,
        "sql": rule.sql, "enable": rule.enable, "description": rule.description,
        "created_at": hookmq_broker::sys::rfc3339(rule.created_at),
        "last_modified_at": hookmq_broker::sys::rfc3339(rule.last_modified_at),
    })
}

fn not_found() -> ApiError {
    missing("Rule Id Not Found")
}

/// A rule from a request body: GET-only keys dropped, its SQL and actions checked.
fn read(mut body: Value) -> Result<Rule, ApiError> {
    if let Some(object) = body.as_object_mut() {
        for key in SHOWN_ONLY {
            object.remove(key);
        }
    }
    let mut rule: Rule = from_value(body)?;
    sql::parse(&rule.sql).map_err(|why| ApiError::bad_field("sql", why))?;
    for (i, action) in rule.actions.iter_mut().enumerate() {
        match action.split_once(':') {
            Some(("http" | "webhook", name)) if !name.is_empty() => {
                *action = format!("http:{name}")
            }
            _ => {
                return Err(ApiError::bad_field(
                    format!("actions[{i}]"),
                    format!("`{action}`: hookmq's rules send to http actions only (http:<name>)"),
                ));
            }
        }
    }
    Ok(rule)
}

/// `GET /rules` filters and paging.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only the rules on (`true`) or off.
    enable: Option<bool>,
    /// Only the rules naming this action (`http:<name>`).
    action: Option<String>,
    /// Only the rules whose id contains this.
    like_id: Option<String>,
    /// Only the rules with this source in `FROM`.
    from: Option<String>,
    /// Page number, from 1 (default 1).
    #[param(minimum = 1, maximum = 1_000_000)]
    page: Option<u64>,
    /// Rules per page, 1 to 10000 (default 50; EMQX's bound).
    #[param(minimum = 1, maximum = 10_000)]
    limit: Option<u64>,
}

/// The rules, a page at a time (`{data, meta}`).
#[utoipa::path(get, path = "/rules", tag = "emqx",
    params(ListQuery),
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "A page of rules", body = Object),
        (status = 400, description = "Bad paging, naming the field", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
    ))]
async fn list(
    _: Authenticated,
    State(state): State<AppState>,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Json<Page<Value>>, ApiError> {
    let paging = Paging::new(query.page, query.limit)?;
    let catalog = Catalog::load(&state).await?;
    let action = query
        .action
        .as_deref()
        .map(|a| a.replacen("webhook:", "http:", 1));
    let wanted = |rule: &&Rule| {
        query.enable.is_none_or(|on| rule.enable == on)
            && action.as_ref().is_none_or(|a| rule.actions.contains(a))
            && query
                .like_id
                .as_ref()
                .is_none_or(|part| rule.id.contains(part.as_str()))
            && query
                .from
                .as_ref()
                .is_none_or(|source| sql::parse(&rule.sql).is_ok_and(|s| s.from.contains(source)))
    };
    Ok(Json(paging.apply(
        catalog.rules.values().filter(wanted).map(view).collect(),
    )))
}

/// Creates a rule (`id` made up when absent); the actions it names get its events.
#[utoipa::path(post, path = "/rules", tag = "emqx",
    request_body = Rule,
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 201, description = "Created", body = Object),
        (status = 400, description = "Bad input, naming the field; SQL hookmq cannot run says what it supports", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
    ))]
async fn create(
    _: Authenticated,
    State(state): State<AppState>,
    JsonBody(mut body): JsonBody<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Some(object) = body.as_object_mut() else {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    };
    match object.get("id") {
        None => {
            let id: String = (0..4)
                .map(|_| format!("{:02x}", rand::random::<u8>()))
                .collect();
            object.insert("id".into(), json!(id));
        }
        Some(Value::String(id)) if id.is_empty() => {
            return Err(ApiError::bad_field("id", "empty rule id is not allowed"));
        }
        Some(Value::String(_)) => {}
        Some(_) => return Err(ApiError::bad_field("id", "rule id must be a string")),
    }
    let mut rule = read(body)?;
    let _writing = state.emqx_writes.lock().await;
    let mut catalog = Catalog::load(&state).await?;
    if catalog.rules.contains_key(&rule.id) {
        return Err(ApiError::bad_field("id", "rule id already exists"));
    }
    (rule.created_at, rule.last_modified_at) = (now_ms(), now_ms());
    catalog.put_rule(rule.clone());
    catalog.commit(&state).await?;
    Ok((StatusCode::CREATED, Json(view(&rule))))
}

/// One rule.
#[utoipa::path(get, path = "/rules/{id}", tag = "emqx",
    params(("id" = String, Path, description = "Rule id")),
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "The rule", body = Object),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such rule", body = ErrorBody),
    ))]
async fn show(
    _: Authenticated,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    let catalog = Catalog::load(&state).await?;
    catalog
        .rules
        .get(&id)
        .map(|r| Json(view(r)))
        .ok_or_else(not_found)
}

/// Changes a rule: the keys sent replace the rule's (`{"enable": false}` alone turns it
/// off); an unknown id with `sql` is created.
#[utoipa::path(put, path = "/rules/{id}", tag = "emqx",
    params(("id" = String, Path, description = "Rule id")),
    request_body = Object,
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "Changed", body = Object),
        (status = 400, description = "Bad input, naming the field", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such rule, and no `sql` to make it", body = ErrorBody),
    ))]
async fn update(
    _: Authenticated,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>, ApiError> {
    let Value::Object(changes) = body else {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    };
    let _writing = state.emqx_writes.lock().await;
    let mut catalog = Catalog::load(&state).await?;
    let current = catalog.rules.get(&id).cloned();
    if current.is_none() && !changes.contains_key("sql") {
        return Err(not_found());
    }
    let mut merged = current
        .as_ref()
        .map(|rule| serde_json::to_value(rule).unwrap_or_default())
        .unwrap_or_else(|| json!({}));
    for (key, value) in changes {
        merged[key] = value;
    }
    merged["id"] = json!(id);
    let mut rule = read(merged)?;
    rule.created_at = current.map_or_else(now_ms, |r| r.created_at);
    rule.last_modified_at = now_ms();
    catalog.put_rule(rule.clone());
    catalog.commit(&state).await?;
    Ok(Json(view(&rule)))
}

/// Deletes a rule; its actions no longer get its events.
#[utoipa::path(delete, path = "/rules/{id}", tag = "emqx",
    params(("id" = String, Path, description = "Rule id")),
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such rule", body = ErrorBody),
    ))]
async fn remove(
    _: Authenticated,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    let _writing = state.emqx_writes.lock().await;
    let mut catalog = Catalog::load(&state).await?;
    if !catalog.rules.contains_key(&id) {
        return Err(not_found());
    }
    catalog.remove_rule(&id);
    catalog.commit(&state).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The events rules can select (EMQX's `GET /rule_events`): each with its `FROM` topic,
/// title, description, columns, sample values and an example SQL.
#[utoipa::path(get, path = "/rule_events", tag = "emqx",
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "Every event: `event`, `title`, `description`, `columns`, `test_columns`, `sql_example`", body = Vec<Object>),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
    ))]
async fn events(_: Authenticated, State(state): State<AppState>) -> Json<Vec<Value>> {
    let node = state.engine.node();
    let context = hookmq_webhooks::render::RenderContext {
        node,
        rule_id: "my_rule",
        payload_encoding: hookmq_webhooks::spec::PayloadEncoding::Plain,
    };
    let events = hookmq_broker::hooks::EventKind::ALL
        .into_iter()
        .map(|kind| {
            let sample = hookmq_webhooks::render::emqx::event_object(
                &hookmq_webhooks::samples::sample(kind, node),
                context,
            );
            let columns: Vec<&String> = sample.keys().collect();
            let (title, description) = crate::events::describe(kind);
            let (event, sql) = match sql::event_topic(kind) {
                Some(topic) => (topic.to_owned(), format!("SELECT * FROM \"{topic}\"")),
                None => (
                    "$events/message_publish".to_owned(),
                    "SELECT * FROM \"t/#\"".to_owned(),
                ),
            };
            json!({
                "event": event,
                "title": {"en": title, "zh": title},
                "description": {"en": description, "zh": description},
                "columns": columns,
                "test_columns": sample,
                "sql_example": sql,
            })
        })
        .collect();
    Json(events)
}

/// A rule's metrics with EMQX's keys, from the webhooks of the actions it names (this
/// node's): what they matched, delivered and gave up. A webhook may be fed by several
/// rules; each of them reports its counts.
#[utoipa::path(get, path = "/rules/{id}/metrics", tag = "emqx",
    params(("id" = String, Path, description = "Rule id")),
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "`{id, metrics, node_metrics: [{node, metrics}]}`", body = Object),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such rule", body = ErrorBody),
    ))]
async fn metrics(
    _: Authenticated,
    State(state): State<AppState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    let catalog = Catalog::load(&state).await?;
    let rule = catalog.rules.get(&id).ok_or_else(not_found)?;
    let webhooks: Vec<hookmq_webhooks::MetricsSnapshot> = rule
        .actions
        .iter()
        .filter_map(|a| a.strip_prefix("http:"))
        .filter_map(|a| state.engine.get(super::webhook_name(a)))
        .map(|w| w.metrics)
        .collect();
    let sum = |f: fn(&hookmq_webhooks::MetricsSnapshot) -> u64| webhooks.iter().map(f).sum::<u64>();
    let matched = webhooks.iter().map(|m| m.matched).max().unwrap_or(0);
    let rate = |f: fn(&hookmq_webhooks::MetricsSnapshot) -> f64| {
        let top = webhooks.iter().map(f).fold(0.0, f64::max);
        (top * 100.0).round() / 100.0
    };
    let metrics = json!({
        "matched": matched, "passed": matched, "failed": 0, "failed.exception": 0,
        "failed.no_result": 0, "actions.total": sum(|m| m.matched),
        "actions.success": sum(|m| m.success), "actions.failed": sum(|m| m.failed + m.dropped),
        "actions.failed.out_of_service": sum(|m| m.dropped),
        "actions.failed.unknown": sum(|m| m.failed), "actions.discarded": 0,
        "matched.rate": rate(|m| m.rate), "matched.rate.max": rate(|m| m.rate_max),
        "matched.rate.last5m": rate(|m| m.rate_last5m),
    });
    Ok(Json(json!({
        "id": id,
        "metrics": metrics,
        "node_metrics": [{"node": state.engine.node(), "metrics": metrics}],
    })))
}

/// `POST /rule_test` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RuleTest {
    /// The event to try: `event_type` (`message_publish`, `client_connected`, ...) and its
    /// columns (`topic` for message events).
    #[schema(value_type = Object)]
    context: serde_json::Map<String, Value>,
    /// The rule's SQL.
    sql: String,
}

/// Tries a rule's SQL on an event, as EMQX's SQL tester: the output (the event's columns
/// with `event`), or 412 `NOT_MATCH` when the rule would not select it.
#[utoipa::path(post, path = "/rule_test", tag = "emqx",
    request_body = RuleTest,
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "What the rule selects from the event", body = Object),
        (status = 400, description = "SQL hookmq cannot run, or an unknown event_type", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 412, description = "`NOT_MATCH`: the rule would not select this event", body = ErrorBody),
    ))]
async fn test(
    _: Authenticated,
    JsonBody(test): JsonBody<RuleTest>,
) -> Result<Json<Value>, ApiError> {
    let selection = sql::parse(&test.sql).map_err(|why| ApiError::bad_field("sql", why))?;
    let named = test
        .context
        .get("event_type")
        .and_then(Value::as_str)
        .unwrap_or("message_publish");
    let topic_form = format!("$events/{}", named.trim_start_matches("$events/"));
    let kind = hookmq_broker::hooks::EventKind::ALL
        .into_iter()
        .find(|&k| {
            sql::event_topic(k).map_or(topic_form == "$events/message_publish", |t| t == topic_form)
        })
        .ok_or_else(|| {
            ApiError::bad_field(
                "context.event_type",
                format!("`{named}` is not an event hookmq sends"),
            )
        })?;
    let topic = test
        .context
        .get("topic")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let selected = selection.events.contains(&kind)
        && (!kind.is_message_event()
            || selection
                .topics
                .iter()
                .any(|filter| hookmq_codec::topic::matches(filter, topic)));
    if !selected {
        return Err(ApiError {
            status: StatusCode::PRECONDITION_FAILED,
            code: "NOT_MATCH",
            ..ApiError::bad_request("SQL Not Match")
        });
    }
    let mut output = test.context;
    output.remove("event_type");
    output.insert("event".into(), json!(kind.name()));
    Ok(Json(Value::Object(output)))
}
