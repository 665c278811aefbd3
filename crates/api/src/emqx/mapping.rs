//! EMQX's objects as a hookmq webhook, and a webhook as EMQX's objects.
//!
//! An action is one webhook, named after it without the Webhook page's `_WH_D` suffix: its
//! connector gives the URL's base, headers, connection settings and TLS; the action the
//! path, method, headers over the connector's, body and buffer; the rules naming it the
//! events and topics, and whether it runs (connector, action and one rule enabled). What
//! EMQX has no field for (signing, retries, ordering, batching, payload encoding) stays as
//! the webhook had it, or hookmq's default. A webhook made in hookmq is shown as the three
//! objects the Webhook page would have made: `<name>_WH_D` each.

use std::collections::BTreeMap;

use hookmq_broker::hooks::EventKind;
use hookmq_webhooks::{
    WebhookSpec,
    spec::{Buffer, Method},
};
use serde_json::{Map, json};

use super::{
    objects::{
        self, Action, ActionOpts, Connector, ConnectorOpts, HTTP, Parameters, Rule, Ssl, Type,
    },
    sql,
};
use crate::error::ApiError;

/// The suffix EMQX's Webhook page gives the objects of one webhook.
pub(crate) const SUFFIX: &str = "_WH_D";

/// The webhook an action delivers through.
pub(crate) fn webhook_name(action: &str) -> &str {
    action
        .strip_suffix(SUFFIX)
        .filter(|name| !name.is_empty())
        .unwrap_or(action)
}

/// The Webhook page's name of a webhook's objects.
pub(crate) fn object_name(webhook: &str) -> String {
    format!("{webhook}{SUFFIX}")
}

/// The connector URL and the action path: EMQX keeps a connector URL's path, and a path
/// starting with `?` is the query.
fn join(url: &str, path: &str) -> String {
    let base = url.split(['?', '#']).next().unwrap_or(url);
    if path.is_empty() {
        base.to_owned()
    } else if path.starts_with('?') {
        format!("{base}{path}")
    } else {
        format!(
            "{}/{}",
            base.trim_end_matches('/'),
            path.trim_start_matches('/')
        )
    }
}

/// The events and topics of the rules that feed an action (the enabled ones when there
/// are some); `None` without rules.
fn selection(rules: &[&Rule]) -> Result<Option<sql::Selection>, ApiError> {
    let enabled: Vec<&&Rule> = rules.iter().filter(|rule| rule.enable).collect();
    let chosen: Vec<&&Rule> = if enabled.is_empty() {
        rules.iter().collect()
    } else {
        enabled
    };
    let mut merged: Option<(sql::Selection, &str)> = None;
    for rule in chosen {
        let this = sql::parse(&rule.sql).map_err(|why| ApiError::bad_field("sql", why))?;
        let messages = this.events.iter().any(|k| k.is_message_event());
        merged = Some(match merged {
            None => (this, rule.id.as_str()),
            Some((mut all, first)) => {
                let all_messages = all.events.iter().any(|k| k.is_message_event());
                if messages && all_messages && this.topics != all.topics {
                    return Err(ApiError::bad_field(
                        "sql",
                        format!(
                            "rules {first} and {} send messages of different topics to one \
                             action; hookmq's action takes one list of topics (make one rule, \
                             or one action per rule)",
                            rule.id
                        ),
                    ));
                }
                if messages && !all_messages {
                    all.topics = this.topics;
                }
                all.events.extend(this.events);
                all.events.sort_by_key(|&k| k as u8);
                all.events.dedup();
                (all, first)
            }
        });
    }
    Ok(merged.map(|(selection, _)| selection))
}

/// The webhook for `action` through `connector`, fed by `rules`; `base` is the webhook as
/// it is now (what EMQX has no field for is kept from it).
pub(crate) fn compose(
    connector: &Connector,
    action: &Action,
    rules: &[&Rule],
    base: Option<&WebhookSpec>,
) -> Result<WebhookSpec, ApiError> {
    let name = webhook_name(&action.name).to_owned();
    let url = join(&connector.url, &action.parameters.path);
    let mut spec = match base {
        Some(base) => base.clone(),
        None => serde_json::from_value(json!({"name": name, "url": url}))
            .map_err(|e| ApiError::bad_field("url", e))?,
    };
    spec.name = name;
    spec.url = url;
    spec.headers = connector.headers.clone();
    spec.headers.extend(action.parameters.headers.clone());
    spec.method = serde_json::from_value(json!(action.parameters.method))
        .map_err(|e| ApiError::bad_field("parameters.method", e))?;
    spec.body.clone_from(&action.parameters.body);
    spec.connect_timeout = objects::duration_of(&connector.connect_timeout, "connect_timeout")?;
    spec.pool_size = connector.pool_size as usize;
    spec.pipelining = connector.enable_pipelining as usize;
    spec.tls.verify = connector.ssl.verify == "verify_peer";
    spec.tls.ca_file = connector.ssl.cacertfile.as_ref().map(Into::into);
    spec.tls.certfile = connector.ssl.certfile.as_ref().map(Into::into);
    spec.tls.keyfile = connector.ssl.keyfile.as_ref().map(Into::into);
    if let Some(timeout) = &action.parameters.request_timeout {
        spec.request_timeout = objects::duration_of(timeout, "parameters.request_timeout")?;
    }
    let opts = &action.resource_opts;
    spec.max_inflight = opts.worker_pool_size as usize;
    spec.request_ttl = match opts.request_ttl.as_str() {
        "infinity" => None,
        ttl => Some(objects::duration_of(ttl, "resource_opts.request_ttl")?),
    };
    spec.health_check_interval = objects::duration_of(
        &opts.health_check_interval,
        "resource_opts.health_check_interval",
    )?;
    spec.max_buffer_bytes = objects::byte_size(&opts.max_buffer_bytes).ok_or_else(|| {
        ApiError::bad_field("resource_opts.max_buffer_bytes", "a size like 256MB or 1GB")
    })?;
    match opts.buffer_mode.as_deref() {
        Some("memory_only") => spec.buffer = Buffer::Memory,
        // EMQX's other mode spills to disk: hookmq's disk buffer, or the cluster's kept.
        Some(_) if spec.buffer == Buffer::Memory => spec.buffer = Buffer::Disk,
        _ => {}
    }
    if let Some(selection) = selection(rules)? {
        spec.events = if selection.events.len() == EventKind::ALL.len() {
            vec!["*".to_owned()]
        } else {
            selection
                .events
                .iter()
                .map(|k| k.name().to_owned())
                .collect()
        };
        spec.topics = selection.topics;
    }
    spec.enable = connector.enable && action.enable && rules.iter().any(|rule| rule.enable);
    let note = rules
        .iter()
        .map(|rule| rule.description.as_str())
        .find(|d| !d.is_empty());
    spec.description = note.unwrap_or(&action.description).to_owned();
    spec.validate()
        .map_err(|e| ApiError::bad_field(e.field, e.reason))?;
    Ok(spec)
}

/// The connector, action and rule EMQX's Webhook page would have made for `spec`.
pub(crate) fn synthesize(spec: &WebhookSpec) -> (Connector, Action, Rule) {
    let name = object_name(&spec.name);
    let (url, path) = match spec.url.split_once('?') {
        Some((base, query)) => (base.to_owned(), format!("?{query}")),
        None => (spec.url.clone(), String::new()),
    };
    let events = spec.event_kinds().unwrap_or_default();
    let rule = Rule {
        id: name.clone(),
        name: String::new(),
        sql: sql::write(&events, &spec.topics),
        actions: vec![format!("{HTTP}:{name}")],
        enable: true,
        description: spec.description.clone(),
        metadata: Map::new(),
        created_at: 0,
        last_modified_at: 0,
    };
    (
        connector_of(spec, &name, url),
        action_of(spec, &name, path),
        rule,
    )
}

/// The connector part of `spec`, named `name`, at `url` (without its query).
fn connector_of(spec: &WebhookSpec, name: &str, url: String) -> Connector {
    let file = |path: &Option<std::path::PathBuf>| path.as_ref().map(|p| p.display().to_string());
    Connector {
        kind: Type::Http,
        name: name.to_owned(),
        enable: true,
        description: String::new(),
        url,
        // On the action only (as the Webhook page keeps them): one place to change them.
        headers: BTreeMap::new(),
        connect_timeout: hookmq_broker::duration::format(spec.connect_timeout),
        pool_size: u32::try_from(spec.pool_size).unwrap_or(u32::MAX),
        pool_type: "hash".to_owned(),
        enable_pipelining: u32::try_from(spec.pipelining).unwrap_or(u32::MAX),
        ssl: Ssl {
            enable: spec.url.starts_with("https:"),
            verify: if spec.tls.verify {
                "verify_peer"
            } else {
                "verify_none"
            }
            .to_owned(),
            cacertfile: file(&spec.tls.ca_file),
            certfile: file(&spec.tls.certfile),
            keyfile: file(&spec.tls.keyfile),
            other: Map::new(),
        },
        resource_opts: ConnectorOpts::default(),
        tags: None,
    }
}

/// The action part of `spec`, named `name` (its connector too), with `path` (the query).
fn action_of(spec: &WebhookSpec, name: &str, path: String) -> Action {
    let duration = hookmq_broker::duration::format;
    let method = match spec.method {
        Method::Post => "post",
        Method::Put => "put",
        Method::Get => "get",
        Method::Delete => "delete",
    };
    let buffer_mode = match spec.buffer {
        Buffer::Memory => "memory_only",
        _ => "volatile_offload",
    };
    Action {
        kind: Type::Http,
        name: name.to_owned(),
        connector: name.to_owned(),
        enable: spec.enable,
        description: String::new(),
        parameters: Parameters {
            path,
            method: method.to_owned(),
            headers: spec.headers.clone(),
            body: spec.body.clone(),
            max_retries: spec.max_retries.unwrap_or(2),
            request_timeout: Some(duration(spec.request_timeout)),
        },
        resource_opts: ActionOpts {
            worker_pool_size: u32::try_from(spec.max_inflight).unwrap_or(u32::MAX),
            request_ttl: spec
                .request_ttl
                .map_or_else(|| "infinity".to_owned(), duration),
            health_check_interval: duration(spec.health_check_interval),
            max_buffer_bytes: format!("{}B", spec.max_buffer_bytes),
            buffer_mode: Some(buffer_mode.to_owned()),
            ..ActionOpts::default()
        },
        created_at: 0,
        last_modified_at: 0,
        tags: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(value: serde_json::Value) -> WebhookSpec {
        serde_json::from_value(value).expect("spec")
    }

    #[test]
    fn a_webhook_shown_as_emqx_objects_composes_back_to_itself() {
        for webhook in [
            spec(
                json!({"name": "w", "url": "http://127.0.0.1:9/hook?x=${clientid}",
                "events": ["message.publish", "message.delivered"], "topics": ["a/#", "b"],
                "headers": {"x-a": "1"}, "method": "put", "body": "${payload}",
                "request_ttl": "45s", "buffer": "memory", "signing_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                "description": "note", "max_inflight": 4, "pipelining": 1}),
            ),
            spec(
                json!({"name": "v", "url": "https://example.com/in", "enable": false,
                "tls": {"verify": false}, "events": ["client.connected"]}),
            ),
            spec(json!({"name": "all", "url": "http://h/"})),
        ] {
            let (connector, action, rule) = synthesize(&webhook);
            let back = compose(&connector, &action, &[&rule], Some(&webhook)).expect("compose");
            assert_eq!(back, webhook, "{}", rule.sql);
        }
    }

    #[test]
    fn urls_join_as_emqx_joins_them() {
        assert_eq!(
            join("http://h:80/base?dropped=1", "in/${clientid}"),
            "http://h:80/base/in/${clientid}"
        );
        assert_eq!(join("http://h/base/", "/x"), "http://h/base/x");
        assert_eq!(join("http://h/base", "?q=1"), "http://h/base?q=1");
        assert_eq!(join("http://h/base", ""), "http://h/base");
    }

    #[test]
    fn rules_that_send_different_topics_to_one_action_are_refused() {
        let connector: Connector =
            serde_json::from_value(json!({"type": "http", "name": "c", "url": "http://h/"}))
                .expect("c");
        let action: Action = serde_json::from_value(
            json!({"type": "http", "name": "a", "connector": "c", "parameters": {}}),
        )
        .expect("a");
        let rule = |id: &str, sql: &str| -> Rule {
            serde_json::from_value(json!({"id": id, "sql": sql, "actions": ["http:a"]}))
                .expect("rule")
        };
        let (one, two) = (
            rule("r1", "SELECT * FROM \"t/1\""),
            rule("r2", "SELECT * FROM \"t/2\""),
        );
        let error = compose(&connector, &action, &[&one, &two], None).expect_err("differ");
        assert!(error.message.contains("r1 and r2"), "{}", error.message);
        let events = rule("r3", "SELECT * FROM \"$events/client_connected\"");
        let spec = compose(&connector, &action, &[&one, &events], None).expect("union");
        assert_eq!(spec.events, ["client.connected", "message.publish"]);
        assert_eq!(spec.topics, ["t/1"]);
        assert_eq!(spec.name, "a");
        assert!(spec.enable);
    }
}
