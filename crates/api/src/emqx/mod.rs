//! EMQX's management API for what its Webhook page makes: `/connectors`, `/actions` and
//! `/rules` of type `http`, so scripts written for EMQX manage hookmq's webhooks.
//!
//! ## Layout
//! - `objects`: the connector, action and rule with EMQX's fields and defaults.
//! - `sql`: the rule SQL hookmq runs (`SELECT * FROM` topics and `$events/...`).
//! - `mapping`: an action (with its connector and rules) as a webhook, and a webhook as
//!   the Webhook page's `<name>_WH_D` objects.
//! - `connectors`, `actions`, `rules`: the endpoints.
//! - here: the [`Catalog`], every object there is, and how a change reaches the webhooks.
//!
//! Objects made through these endpoints are kept in the API's store (shared with the
//! cluster like users; secret header values sealed); a webhook made any other way is shown
//! as its `<name>_WH_D` objects, which are stored the first time one of them is changed
//! here. Changing or deleting a webhook through `/webhooks` forgets its stored objects, so
//! it is shown as `<name>_WH_D` again.

mod actions;
mod connectors;
mod mapping;
mod objects;
mod rules;
mod sql;

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use hookmq_webhooks::spec::is_secret_header;
use serde::{Serialize, de::DeserializeOwned};
use utoipa_axum::router::OpenApiRouter;

use crate::{
    error::ApiError,
    state::AppState,
    store::{Store, StoreError, Table},
};
pub(crate) use mapping::webhook_name;
use objects::{Action, Connector, HTTP, Rule};

/// The routes under `/api/v5`.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(connectors::router())
        .merge(actions::router())
        .merge(rules::router())
}

/// The name in an id `http:<name>` (`webhook:` is EMQX's older name of the type); any
/// other id is not found, as in EMQX.
fn name_of(id: &str) -> Result<&str, ApiError> {
    match id.split_once(':') {
        Some((HTTP | "webhook", name)) if !name.is_empty() => Ok(name),
        _ => Err(ApiError::not_found(format!(
            "{id} (ids are http:<name>; hookmq has connectors and actions of type http only)"
        ))),
    }
}

/// 404 with EMQX's words.
fn missing(message: impl Into<String>) -> ApiError {
    ApiError {
        message: message.into(),
        ..ApiError::not_found("")
    }
}

/// EMQX's probe: whether the receiver of `connector` (with `action`, or none) accepts a
/// connection (no request is sent); 204, or 400 `TEST_FAILED` saying why not.
async fn probe(
    state: &AppState,
    connector: &Connector,
    action: Option<&Action>,
) -> Result<axum::http::StatusCode, ApiError> {
    let plain: Action;
    let action = match action {
        Some(action) => action,
        None => {
            plain = serde_json::from_value(serde_json::json!({
                "type": HTTP, "name": "probe", "connector": connector.name, "parameters": {}
            }))
            .map_err(ApiError::internal)?;
            &plain
        }
    };
    let spec = mapping::compose(connector, action, &[], None)?;
    match state.engine.reach(&spec).await? {
        Ok(()) => Ok(axum::http::StatusCode::NO_CONTENT),
        Err(reason) => Err(ApiError {
            code: "TEST_FAILED",
            ..ApiError::bad_request(reason)
        }),
    }
}

/// A connector or action from a request body: the keys only answers have left out (EMQX's
/// `filter_out_request_body`, so what GET gave can be sent back with PUT), then read and
/// checked, naming the field at fault.
fn read<T: DeserializeOwned + objects::Checked>(
    mut body: serde_json::Value,
    shown_only: &[&str],
) -> Result<T, ApiError> {
    if let Some(object) = body.as_object_mut() {
        for key in shown_only {
            object.remove(*key);
        }
    }
    let object: T = crate::json::from_value(body)?;
    object.check()?;
    Ok(object)
}

/// Now, in ms since the epoch.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The status EMQX shows for the webhooks of `actions` (`connecting` without any), and
/// the reason of the first that is not connected.
fn status(state: &AppState, actions: &[String]) -> (String, Option<String>) {
    let mut shown = ("connecting".to_owned(), None);
    for action in actions {
        let Some(webhook) = state.engine.get(webhook_name(action)) else {
            continue;
        };
        let now = serde_json::to_value(webhook.status.state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        if now != "connected" {
            return (now, webhook.status.last_error);
        }
        shown = (now, None);
    }
    shown
}

/// What a catalog change touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Connector,
    Action,
    Rule,
}

impl Kind {
    const fn table(self) -> Table {
        match self {
            Self::Connector => Table::EmqxConnectors,
            Self::Action => Table::EmqxActions,
            Self::Rule => Table::EmqxRules,
        }
    }
}

/// Every connector, action and rule: the stored ones, and the `<name>_WH_D` ones of the
/// webhooks no stored action delivers through. A change is made here, then
/// [`Catalog::commit`]ted.
#[derive(Debug, Default)]
pub(crate) struct Catalog {
    connectors: BTreeMap<String, Connector>,
    actions: BTreeMap<String, Action>,
    rules: BTreeMap<String, Rule>,
    /// Objects shown for a webhook and not stored, by the webhook's name.
    shown: BTreeMap<(Kind, String), String>,
    /// Objects changed (or removed) since loading.
    changed: BTreeSet<(Kind, String)>,
    /// Actions whose webhook must be made again.
    touched: BTreeSet<String>,
    /// Actions deleted: their webhooks go.
    removed: BTreeSet<String>,
}

fn context(kind: Kind, name: &str, field: &str) -> String {
    format!("emqx/{kind:?}/{name}/{field}")
}

/// Applies `change` to the secret header values of an object (`headers` of a connector,
/// `parameters.headers` of an action).
fn map_secret_headers(
    headers: &mut BTreeMap<String, String>,
    mut change: impl FnMut(&str, &str) -> Result<String, String>,
) -> Result<(), String> {
    for (name, value) in headers.iter_mut() {
        if is_secret_header(name) {
            *value = change(&format!("headers.{name}"), value)?;
        }
    }
    Ok(())
}

/// The objects of `kind` that read; one that does not (written by another version, or
/// damaged) is left out and logged, so it does not hide the others.
fn load_table<T: DeserializeOwned>(
    store: &Store,
    kind: Kind,
) -> Result<Vec<(String, T)>, StoreError> {
    let documents: Vec<(String, serde_json::Value)> = store.list(kind.table())?;
    Ok(documents
        .into_iter()
        .filter_map(|(name, document)| match serde_json::from_value(document) {
            Ok(object) => Some((name, object)),
            Err(error) => {
                tracing::warn!(?kind, name, %error, "an EMQX-style object that does not read is left out");
                None
            }
        })
        .collect())
}

impl Catalog {
    /// The catalog now.
    pub(crate) async fn load(state: &AppState) -> Result<Self, ApiError> {
        let store = Arc::clone(&state.store);
        let (connectors, actions, rules) = tokio::task::spawn_blocking(move || {
            Ok::<_, StoreError>((
                load_table::<Connector>(&store, Kind::Connector)?,
                load_table::<Action>(&store, Kind::Action)?,
                load_table::<Rule>(&store, Kind::Rule)?,
            ))
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
        let sealer = state.engine.sealer();
        let mut catalog = Self::default();
        let unopened = |kind: Kind, name: &str, error: &str| {
            tracing::warn!(
                ?kind,
                name,
                error,
                "an EMQX-style object whose secrets do not open is left out"
            );
        };
        for (name, mut connector) in connectors {
            match map_secret_headers(&mut connector.headers, |field, value| {
                sealer.open(&context(Kind::Connector, &name, field), value)
            }) {
                Ok(()) => drop(catalog.connectors.insert(name, connector)),
                Err(error) => unopened(Kind::Connector, &name, &error),
            }
        }
        for (name, mut action) in actions {
            match map_secret_headers(&mut action.parameters.headers, |field, value| {
                sealer.open(&context(Kind::Action, &name, field), value)
            }) {
                Ok(()) => drop(catalog.actions.insert(name, action)),
                Err(error) => unopened(Kind::Action, &name, &error),
            }
        }
        catalog.rules = rules.into_iter().collect();
        catalog.show_webhooks(state);
        Ok(catalog)
    }

    /// Adds the `<name>_WH_D` objects of every webhook no stored action delivers through.
    fn show_webhooks(&mut self, state: &AppState) {
        let claimed: BTreeSet<&str> = self.actions.keys().map(|a| webhook_name(a)).collect();
        let unclaimed: Vec<_> = state
            .engine
            .list()
            .into_iter()
            .filter(|w| !claimed.contains(w.spec.name.as_str()))
            .collect();
        for webhook in unclaimed {
            let (connector, action, rule) = mapping::synthesize(&webhook.spec);
            // Names stored for something else: this webhook is not shown as EMQX objects.
            if self.connectors.contains_key(&connector.name)
                || self.actions.contains_key(&action.name)
                || self.rules.contains_key(&rule.id)
            {
                continue;
            }
            let name = webhook.spec.name;
            for (kind, key) in [
                (Kind::Connector, &connector.name),
                (Kind::Action, &action.name),
                (Kind::Rule, &rule.id),
            ] {
                self.shown.insert((kind, key.clone()), name.clone());
            }
            self.connectors.insert(connector.name.clone(), connector);
            self.rules.insert(rule.id.clone(), rule);
            self.actions.insert(action.name.clone(), action);
        }
    }

    /// Stores the objects shown for the webhook `kind`/`name` belongs to (if it is one), so
    /// they can be changed like stored ones.
    fn own(&mut self, kind: Kind, name: &str) {
        let Some(webhook) = self.shown.get(&(kind, name.to_owned())).cloned() else {
            return;
        };
        let trio: Vec<(Kind, String)> = self
            .shown
            .iter()
            .filter(|(_, w)| **w == webhook)
            .map(|(key, _)| key.clone())
            .collect();
        for key in trio {
            self.shown.remove(&key);
            self.changed.insert(key);
        }
    }

    /// Whether `kind`/`name` is shown for a webhook and not stored.
    fn is_shown(&self, kind: Kind, name: &str) -> bool {
        self.shown.contains_key(&(kind, name.to_owned()))
    }

    fn actions_using(&self, connector: &str) -> Vec<String> {
        self.actions
            .values()
            .filter(|a| a.connector == connector)
            .map(|a| a.name.clone())
            .collect()
    }

    /// The rules naming action `name`.
    fn rules_of(&self, action: &str) -> Vec<String> {
        let id = format!("{HTTP}:{action}");
        self.rules
            .values()
            .filter(|r| r.actions.contains(&id))
            .map(|r| r.id.clone())
            .collect()
    }

    fn put_connector(&mut self, connector: Connector) {
        self.own(Kind::Connector, &connector.name);
        let users = self.actions_using(&connector.name);
        self.touched.extend(users);
        self.changed
            .insert((Kind::Connector, connector.name.clone()));
        self.connectors.insert(connector.name.clone(), connector);
    }

    fn remove_connector(&mut self, name: &str) {
        self.own(Kind::Connector, name);
        self.changed.insert((Kind::Connector, name.to_owned()));
        self.connectors.remove(name);
    }

    fn put_action(&mut self, action: Action) {
        self.own(Kind::Action, &action.name);
        self.own(Kind::Connector, &action.connector);
        self.touched.insert(action.name.clone());
        self.changed.insert((Kind::Action, action.name.clone()));
        self.actions.insert(action.name.clone(), action);
    }

    fn remove_action(&mut self, name: &str) {
        self.own(Kind::Action, name);
        self.touched.remove(name);
        self.changed.insert((Kind::Action, name.to_owned()));
        if self.actions.remove(name).is_some() {
            self.removed.insert(name.to_owned());
        }
    }

    fn put_rule(&mut self, rule: Rule) {
        self.own(Kind::Rule, &rule.id);
        let before = self.rules.get(&rule.id).map(|r| r.actions.clone());
        for id in before.iter().flatten().chain(&rule.actions) {
            // A rule may name an action made later: nothing to make before then.
            if let Some(name) = id.strip_prefix("http:")
                && self.actions.contains_key(name)
            {
                self.own(Kind::Action, name);
                self.touched.insert(name.to_owned());
            }
        }
        self.changed.insert((Kind::Rule, rule.id.clone()));
        self.rules.insert(rule.id.clone(), rule);
    }

    fn remove_rule(&mut self, id: &str) {
        self.own(Kind::Rule, id);
        if let Some(rule) = self.rules.remove(id) {
            for action in rule.actions.iter().filter_map(|a| a.strip_prefix("http:")) {
                if self.actions.contains_key(action) {
                    self.touched.insert(action.to_owned());
                }
            }
        }
        self.changed.insert((Kind::Rule, id.to_owned()));
    }

    /// The webhook of action `name` as the catalog says it now; `None` when the action is
    /// gone.
    fn webhook_of(
        &self,
        state: &AppState,
        name: &str,
    ) -> Result<Option<hookmq_webhooks::WebhookSpec>, ApiError> {
        let Some(action) = self.actions.get(name) else {
            return Ok(None);
        };
        let connector = self.connectors.get(&action.connector).ok_or_else(|| {
            ApiError::bad_field(
                "connector",
                format!("connector http:{} not found", action.connector),
            )
        })?;
        let rules: Vec<&Rule> = self
            .rules_of(name)
            .iter()
            .filter_map(|id| self.rules.get(id))
            .collect();
        let base = state.engine.get(webhook_name(name)).map(|w| w.spec);
        mapping::compose(connector, action, &rules, base.as_ref()).map(Some)
    }

    /// Makes the touched actions' webhooks again (and deletes the removed ones'), then
    /// stores what changed. Every webhook is composed (and refused with 400) before
    /// anything changes; when the engine refuses one, those already changed are put back
    /// and nothing is stored.
    pub(crate) async fn commit(self, state: &AppState) -> Result<(), ApiError> {
        let mut planned = Vec::new();
        for action in self.touched.iter().filter(|a| !self.removed.contains(*a)) {
            if let Some(spec) = self.webhook_of(state, action)? {
                planned.push((webhook_name(action).to_owned(), Some(spec)));
            }
        }
        planned.extend(
            self.removed
                .iter()
                .map(|a| (webhook_name(a).to_owned(), None)),
        );
        let mut done: Vec<(String, Option<hookmq_webhooks::WebhookSpec>)> = Vec::new();
        for (name, spec) in planned {
            let before = state.engine.get(&name).map(|webhook| webhook.spec);
            let applied = match spec {
                Some(spec) if before.as_ref() == Some(&spec) => continue,
                Some(spec) => state.engine.put(spec).await,
                None if before.is_none() => continue,
                None => state.engine.remove(&name).await,
            };
            if let Err(error) = applied {
                undo(state, done).await;
                return Err(error.into());
            }
            done.push((name, before));
        }
        for (kind, name) in &self.changed {
            self.save(state, *kind, name).await?;
        }
        Ok(())
    }

    async fn save(&self, state: &AppState, kind: Kind, name: &str) -> Result<(), ApiError> {
        let sealer = state.engine.sealer();
        let seal = |headers: &mut BTreeMap<String, String>| {
            map_secret_headers(headers, |field, value| {
                sealer
                    .seal(&context(kind, name, field), value)
                    .map_err(|e| e.to_string())
            })
            .map_err(ApiError::internal)
        };
        match kind {
            Kind::Connector => match self.connectors.get(name) {
                Some(connector) => {
                    let mut sealed = connector.clone();
                    seal(&mut sealed.headers)?;
                    state.save(kind.table(), name, sealed).await
                }
                None => state.remove(kind.table(), name).await,
            },
            Kind::Action => match self.actions.get(name) {
                Some(action) => {
                    let mut sealed = action.clone();
                    seal(&mut sealed.parameters.headers)?;
                    state.save(kind.table(), name, sealed).await
                }
                None => state.remove(kind.table(), name).await,
            },
            Kind::Rule => match self.rules.get(name) {
                Some(rule) => state.save(kind.table(), name, rule.clone()).await,
                None => state.remove(kind.table(), name).await,
            },
        }
    }
}

/// Puts back the webhooks a failed commit changed, newest first.
async fn undo(state: &AppState, done: Vec<(String, Option<hookmq_webhooks::WebhookSpec>)>) {
    for (name, before) in done.into_iter().rev() {
        let restored = match before {
            Some(spec) => state.engine.put(spec).await,
            None => state.engine.remove(&name).await,
        };
        if let Err(error) = restored {
            tracing::error!(webhook = %name, %error, "a webhook changed by a refused EMQX-style change was not put back");
        }
    }
}

/// The stored action whose webhook is `name`, if there is one.
fn stored_action(catalog: &Catalog, name: &str) -> Option<Action> {
    catalog
        .actions
        .values()
        .find(|a| webhook_name(&a.name) == name && !catalog.is_shown(Kind::Action, &a.name))
        .cloned()
}

/// Forgets the stored objects of webhook `name` (changed or deleted through `/webhooks`):
/// its action, the rules left with no action, and the connector left with none. Afterwards
/// it is shown as its `<name>_WH_D` objects again. The caller holds `state.emqx_writes`
/// and changes the webhook itself.
pub(crate) async fn forget_webhook(state: &AppState, name: &str) -> Result<(), ApiError> {
    let mut catalog = Catalog::load(state).await?;
    let Some(action) = stored_action(&catalog, name) else {
        return Ok(());
    };
    let id = format!("{HTTP}:{}", action.name);
    for rule_id in catalog.rules_of(&action.name) {
        let Some(mut rule) = catalog.rules.get(&rule_id).cloned() else {
            continue;
        };
        rule.actions.retain(|a| *a != id);
        if rule.actions.is_empty() {
            catalog.remove_rule(&rule_id);
        } else {
            catalog.put_rule(rule);
        }
    }
    catalog.remove_action(&action.name);
    if catalog.actions_using(&action.connector).is_empty() {
        catalog.remove_connector(&action.connector);
    }
    catalog.touched.clear();
    catalog.removed.clear();
    catalog.commit(state).await
}

/// Turns the stored action of webhook `name` on or off; `false` when it has none. The
/// caller holds `state.emqx_writes`.
///
/// # Errors
/// 409 when the action is on and its webhook stays off (its connector is off, or no
/// enabled rule feeds it), naming what to turn on.
pub(crate) async fn enable_webhook(
    state: &AppState,
    name: &str,
    enable: bool,
) -> Result<bool, ApiError> {
    let mut catalog = Catalog::load(state).await?;
    let Some(mut action) = stored_action(&catalog, name) else {
        return Ok(false);
    };
    action.enable = enable;
    action.last_modified_at = now_ms();
    let action_name = action.name.clone();
    let connector = action.connector.clone();
    catalog.put_action(action);
    catalog.commit(state).await?;
    let on = state.engine.get(name).is_some_and(|w| w.spec.enable);
    if enable && !on {
        let catalog = Catalog::load(state).await?;
        let why = if catalog
            .connectors
            .get(&connector)
            .is_some_and(|c| !c.enable)
        {
            format!(
                "its connector http:{connector} is off: PUT /connectors/http:{connector}/enable/true"
            )
        } else {
            format!(
                "no enabled rule names http:{action_name}: enable one, or add one with POST /rules"
            )
        };
        return Err(ApiError {
            status: axum::http::StatusCode::CONFLICT,
            code: "CONFLICT",
            ..ApiError::bad_request(format!(
                "action http:{action_name} is on, but webhook {name} stays off: {why}"
            ))
        });
    }
    Ok(true)
}

/// `value` as JSON with secret header values shown as `******`.
fn redacted<T: Serialize>(value: &T) -> serde_json::Value {
    let mut json = serde_json::to_value(value).unwrap_or_default();
    for headers in [json.get_mut("headers")].into_iter().flatten() {
        redact_headers(headers);
    }
    if let Some(headers) = json.pointer_mut("/parameters/headers") {
        redact_headers(headers);
    }
    json
}

fn redact_headers(headers: &mut serde_json::Value) {
    if let Some(map) = headers.as_object_mut() {
        for (name, value) in map.iter_mut() {
            if is_secret_header(name) {
                *value = serde_json::Value::from(hookmq_webhooks::spec::REDACTED);
            }
        }
    }
}

/// Header values sent back as `******` replaced by the ones they stand for (header names
/// compared without case).
///
/// # Errors
/// 400 naming the header when there is no value to stand for.
fn restore_secrets(
    headers: &mut BTreeMap<String, String>,
    current: Option<&BTreeMap<String, String>>,
    field: &str,
) -> Result<(), ApiError> {
    for (name, value) in headers.iter_mut() {
        if value != hookmq_webhooks::spec::REDACTED {
            continue;
        }
        let old = current
            .and_then(|c| c.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)))
            .map(|(_, old)| old.clone());
        match old {
            Some(old) => *value = old,
            None => {
                return Err(ApiError::bad_field(
                    format!("{field}.{name}"),
                    "`******` stands for a stored value, and there is none",
                ));
            }
        }
    }
    Ok(())
}
