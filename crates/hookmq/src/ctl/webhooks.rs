//! `hookmq ctl webhooks list|show|create|delete|enable|disable|test|dead-letters`.

use std::{io::Read, path::PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::{
    dead_letters::{self, DeadLetterAction},
    http::{ApiClient, segment},
    output::{cell, pairs, print_json, table, time},
};

/// What to do with webhooks.
#[derive(Debug, Subcommand)]
pub(crate) enum WebhookAction {
    /// List the webhooks with their delivery counts.
    List,
    /// Show one webhook's settings and metrics.
    Show {
        /// The webhook's name.
        name: String,
    },
    /// Create a webhook from a JSON file (the API's fields) or from flags.
    Create(Box<CreateArgs>),
    /// Delete a webhook.
    Delete {
        /// The webhook's name.
        name: String,
    },
    /// Enable a webhook.
    Enable {
        /// The webhook's name.
        name: String,
    },
    /// Disable a webhook.
    Disable {
        /// The webhook's name.
        name: String,
    },
    /// Send one sample request and show the receiver's answer (exit code 2 if it failed).
    Test {
        /// The webhook's name.
        name: String,
    },
    /// Events the webhook gave up: list, replay, purge.
    #[command(subcommand)]
    DeadLetters(DeadLetterAction),
    /// The last delivery attempts, newest first: the answer or the error, and how long.
    Attempts {
        /// The webhook's name.
        name: String,
        /// Attempts to show (1 to 100).
        #[arg(long, default_value_t = 20)]
        limit: u64,
    },
}

/// `webhooks create`: `--file` or flags.
#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// JSON file with the webhook (`-` for standard input), e.g.
    /// {"name":"my_webhook","url":"http://localhost:5000"}.
    #[arg(long, short, conflicts_with_all = ["name", "url", "urls", "url_strategy", "events", "topics", "method", "description", "header", "body", "disabled"])]
    file: Option<PathBuf>,
    /// Unique name: letters, digits, - and _.
    #[arg(long, required_unless_present = "file")]
    name: Option<String>,
    /// Receiver URL, http:// or https://.
    #[arg(long, required_unless_present = "file")]
    url: Option<String>,
    /// Another receiver URL after --url (repeatable; a URL may hold commas).
    #[arg(long = "also-url")]
    urls: Vec<String>,
    /// How events are shared among the URLs: round_robin (default) or failover.
    #[arg(long)]
    url_strategy: Option<String>,
    /// Events, comma-separated (default: all), e.g. message.publish,client.connected.
    #[arg(long, value_delimiter = ',')]
    events: Vec<String>,
    /// Topic filters for message events, comma-separated (default: #).
    #[arg(long, value_delimiter = ',')]
    topics: Vec<String>,
    /// HTTP method: post (default), put, get, delete.
    #[arg(long)]
    method: Option<String>,
    /// A note.
    #[arg(long)]
    description: Option<String>,
    /// A request header, `name: value` (repeatable).
    #[arg(long)]
    header: Vec<String>,
    /// Body template (default: the whole event as EMQX's JSON).
    #[arg(long)]
    body: Option<String>,
    /// Create it disabled.
    #[arg(long)]
    disabled: bool,
}

impl CreateArgs {
    /// The webhook as the API takes it.
    fn spec(self) -> anyhow::Result<Value> {
        if let Some(file) = self.file {
            let mut text = String::new();
            if file.as_os_str() == "-" {
                std::io::stdin()
                    .read_to_string(&mut text)
                    .context("reading standard input")?;
            } else {
                text = std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?;
            }
            return serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", file.display()));
        }
        let mut spec = Map::new();
        let mut put = |key: &str, value: Value| {
            spec.insert(key.to_owned(), value);
        };
        put("name", json!(self.name));
        put("url", json!(self.url));
        if !self.urls.is_empty() {
            put("urls", json!(self.urls));
        }
        if let Some(strategy) = self.url_strategy {
            put("url_strategy", json!(strategy.to_lowercase()));
        }
        if !self.events.is_empty() {
            put("events", json!(self.events));
        }
        if !self.topics.is_empty() {
            put("topics", json!(self.topics));
        }
        if let Some(method) = self.method {
            put("method", json!(method.to_lowercase()));
        }
        if let Some(description) = self.description {
            put("description", json!(description));
        }
        if !self.header.is_empty() {
            let mut headers = Map::new();
            headers.insert("content-type".into(), json!("application/json"));
            for header in &self.header {
                let Some((name, value)) = header.split_once(':') else {
                    bail!("--header {header}: expected `name: value`");
                };
                headers.insert(name.trim().to_lowercase(), json!(value.trim()));
            }
            put("headers", Value::Object(headers));
        }
        if let Some(body) = self.body {
            put("body", json!(body));
        }
        if self.disabled {
            put("enable", json!(false));
        }
        Ok(Value::Object(spec))
    }
}

fn path(name: &str) -> String {
    format!("/webhooks/{}", segment(name))
}

/// Runs a `webhooks` command.
///
/// # Errors
/// The API's refusal or an unreachable node, as one line.
pub(crate) async fn run(api: &ApiClient, action: WebhookAction, json: bool) -> anyhow::Result<()> {
    match action {
        WebhookAction::List => {
            let list = api.get("/webhooks").await?;
            if json {
                print_json(&list);
            } else {
                print!("{}", list_table(&list));
            }
        }
        WebhookAction::Show { name } => {
            let webhook = api.get(&path(&name)).await?;
            if json {
                print_json(&webhook);
            } else {
                print!("{}", details(&webhook));
            }
        }
        WebhookAction::Create(args) => {
            let spec = args.spec()?;
            let created = api
                .request(Method::POST, "/webhooks", Some(&spec))
                .await?
                .unwrap_or_default();
            if json {
                print_json(&created);
            } else {
                println!("webhook {} created", cell(&created["name"]));
            }
        }
        WebhookAction::Delete { name } => {
            api.request(Method::DELETE, &path(&name), None).await?;
            if !json {
                println!("webhook {name} deleted");
            }
        }
        WebhookAction::DeadLetters(action) => dead_letters::run(api, action, json).await?,
        WebhookAction::Attempts { name, limit } => {
            let attempts = api
                .get(&format!("{}/attempts?limit={limit}", path(&name)))
                .await?;
            if json {
                print_json(&attempts);
            } else {
                print!("{}", attempts_table(&attempts));
            }
        }
        WebhookAction::Enable { name } => set_enabled(api, &name, true, json).await?,
        WebhookAction::Disable { name } => set_enabled(api, &name, false, json).await?,
        WebhookAction::Test { name } => {
            let result = api
                .request(Method::POST, &format!("{}/test", path(&name)), None)
                .await?
                .unwrap_or_default();
            if json {
                print_json(&result);
            }
            if result["success"] != true {
                let why = match (&result["status"], &result["error"]) {
                    (_, Value::String(error)) => error.clone(),
                    (Value::Number(status), _) => format!("the receiver answered {status}"),
                    _ => "no answer".to_owned(),
                };
                bail!("test request of webhook {name} failed: {why}");
            }
            if !json {
                let body = cell(&result["body"]);
                let body: String = body.chars().take(200).collect();
                println!(
                    "{name}: {} in {} ms: {}",
                    cell(&result["status"]),
                    cell(&result["latency_ms"]),
                    body.replace('\n', " ")
                );
            }
        }
    }
    Ok(())
}

async fn set_enabled(api: &ApiClient, name: &str, enable: bool, json: bool) -> anyhow::Result<()> {
    api.request(
        Method::PUT,
        &format!("{}/enable/{enable}", path(name)),
        None,
    )
    .await?;
    if !json {
        let state = if enable { "enabled" } else { "disabled" };
        println!("webhook {name} {state}");
    }
    Ok(())
}

/// The list as a table.
fn list_table(list: &Value) -> String {
    let rows: Vec<Vec<String>> = list
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|w| {
            let m = &w["metrics"];
            // `stopped` while disabled, as the server says.
            let status = cell(&w["status"]["state"]);
            vec![
                cell(&w["name"]),
                cell(&w["enable"]),
                status,
                cell(&w["method"]).to_uppercase(),
                url_cell(w),
                cell(&w["events"]),
                cell(&m["success"]),
                cell(&m["failed"]),
                cell(&m["queuing"]),
            ]
        })
        .collect();
    if rows.is_empty() {
        return "no webhooks\n".to_owned();
    }
    table(
        &[
            "NAME", "ENABLED", "STATUS", "METHOD", "URL", "EVENTS", "SUCCESS", "FAILED", "QUEUING",
        ],
        &rows,
    )
}

/// A webhook's URL, with how many more it has.
fn url_cell(webhook: &Value) -> String {
    let url = cell(&webhook["url"]);
    match webhook["urls"].as_array().map(Vec::len) {
        Some(more) if more > 0 => format!("{url} (+{more})"),
        _ => url,
    }
}

/// Attempts as a table.
fn attempts_table(attempts: &Value) -> String {
    let rows: Vec<Vec<String>> = attempts
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|a| {
            vec![
                time(a["at"].as_u64().unwrap_or_default()),
                cell(&a["event"]),
                cell(&a["status"]),
                format!("{} ms", cell(&a["latency_ms"])),
                cell(&a["error"]),
                cell(&a["webhook_id"]),
            ]
        })
        .collect();
    if rows.is_empty() {
        return "no attempts yet\n".to_owned();
    }
    table(
        &["AT", "EVENT", "STATUS", "LATENCY", "ERROR", "WEBHOOK-ID"],
        &rows,
    )
}

/// One webhook as `key: value` lines, settings then metrics.
fn details(webhook: &Value) -> String {
    // The fields people look for first, then the rest in the API's order.
    const FIRST: [&str; 7] = [
        "name",
        "description",
        "enable",
        "method",
        "url",
        "events",
        "topics",
    ];
    let mut items: Vec<(String, String)> = FIRST
        .iter()
        .map(|k| ((*k).to_owned(), cell(&webhook[*k])))
        .collect();
    if let Some(object) = webhook.as_object() {
        items.extend(
            object
                .iter()
                .filter(|(k, _)| {
                    !["metrics", "status", "receivers"].contains(&k.as_str())
                        && !FIRST.contains(&k.as_str())
                })
                .map(|(k, v)| (k.clone(), cell(v))),
        );
    }
    let m = &webhook["metrics"];
    for key in [
        "matched",
        "success",
        "failed",
        "retried",
        "dropped",
        "queuing",
        "inflight",
        "rate",
        "dead_letters",
    ] {
        items.push((format!("metrics.{key}"), cell(&m[key])));
    }
    let latency = &m["latency"];
    items.push((
        "metrics.latency".into(),
        format!(
            "p50 {} ms, p90 {} ms, p99 {} ms ({} requests)",
            cell(&latency["p50_ms"]),
            cell(&latency["p90_ms"]),
            cell(&latency["p99_ms"]),
            cell(&latency["count"])
        ),
    ));
    items.push(("status".into(), cell(&webhook["status"]["state"])));
    if let Some(error) = webhook["status"]["last_error"].as_str() {
        items.push(("status.last_error".into(), error.to_owned()));
    }
    let receivers = webhook["receivers"].as_array().map(Vec::as_slice);
    for (i, receiver) in receivers.unwrap_or_default().iter().enumerate() {
        let mut line = format!(
            "{} {}: {} delivered, {} of {} requests failed, {} lanes",
            cell(&receiver["url"]),
            cell(&receiver["state"]),
            cell(&receiver["delivered"]),
            cell(&receiver["failed_requests"]),
            cell(&receiver["requests"]),
            cell(&receiver["lanes"]),
        );
        if let Some(error) = receiver["last_error"].as_str() {
            line.push_str(&format!(" (last error: {error})"));
        }
        items.push((format!("receivers[{i}]"), line));
    }
    if let Some(failure) = m["last_failures"].as_array().and_then(|f| f.first()) {
        items.push(("metrics.last_failure".into(), cell(&failure["reason"])));
    }
    pairs(&items)
}
