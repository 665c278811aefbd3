//! `hookmq ctl webhooks dead-letters list|replay|purge`.

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::{
    http::{ApiClient, segment},
    output::{cell, print_json, table, time},
};

/// What to do with a webhook's dead letters.
#[derive(Debug, Subcommand)]
pub(crate) enum DeadLetterAction {
    /// List them, newest first, with their last attempt.
    List {
        /// The webhook's name.
        name: String,
        /// Page number, from 1.
        #[arg(long, default_value_t = 1)]
        page: u64,
        /// Dead letters per page (1 to 1000).
        #[arg(long, default_value_t = 50)]
        limit: u64,
    },
    /// Put them back in the webhook's queue, oldest first (all, or those given by --id).
    Replay {
        /// The webhook's name.
        name: String,
        /// A dead letter's id (repeatable); none: all of them.
        #[arg(long = "id")]
        ids: Vec<u64>,
    },
    /// Delete them all.
    Purge {
        /// The webhook's name.
        name: String,
    },
}

fn path(name: &str) -> String {
    format!("/webhooks/{}/dead_letters", segment(name))
}

/// Runs a `dead-letters` command.
///
/// # Errors
/// The API's refusal or an unreachable node, as one line.
pub(crate) async fn run(
    api: &ApiClient,
    action: DeadLetterAction,
    json: bool,
) -> anyhow::Result<()> {
    match action {
        DeadLetterAction::List { name, page, limit } => {
            let listed = api
                .get(&format!("{}?page={page}&limit={limit}", path(&name)))
                .await?;
            if json {
                print_json(&listed);
            } else {
                print!("{}", list_table(&listed));
            }
        }
        DeadLetterAction::Replay { name, ids } => {
            let body = if ids.is_empty() {
                json!({})
            } else {
                json!({ "ids": ids })
            };
            let report = api
                .request(
                    Method::POST,
                    &format!("{}/replay", path(&name)),
                    Some(&body),
                )
                .await?
                .unwrap_or_default();
            if json {
                print_json(&report);
            } else {
                println!(
                    "{name}: {} replayed, {} left",
                    cell(&report["replayed"]),
                    cell(&report["left"])
                );
            }
        }
        DeadLetterAction::Purge { name } => {
            let purged = api
                .request(Method::DELETE, &path(&name), None)
                .await?
                .unwrap_or_default();
            if json {
                print_json(&purged);
            } else {
                println!("{name}: {} dead letters deleted", cell(&purged["purged"]));
            }
        }
    }
    Ok(())
}

/// A page of dead letters as a table.
fn list_table(page: &Value) -> String {
    let rows: Vec<Vec<String>> = page["data"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|l| {
            vec![
                cell(&l["id"]),
                time(l["failed_at"].as_u64().unwrap_or_default()),
                cell(&l["event"]),
                cell(&l["body"]["clientid"]),
                cell(&l["status"]),
                cell(&l["attempts"]),
                cell(&l["reason"]),
            ]
        })
        .collect();
    if rows.is_empty() {
        return "no dead letters\n".to_owned();
    }
    let mut text = table(
        &[
            "ID",
            "FAILED AT",
            "EVENT",
            "CLIENT",
            "STATUS",
            "ATTEMPTS",
            "REASON",
        ],
        &rows,
    );
    text.push_str(&format!(
        "page {} of {} dead letters\n",
        cell(&page["meta"]["page"]),
        cell(&page["meta"]["count"])
    ));
    text
}
