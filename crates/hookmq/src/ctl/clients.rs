//! `hookmq ctl clients list|kick`.

use clap::Subcommand;
use reqwest::Method;
use serde_json::Value;

use super::{
    http::{ApiClient, segment},
    output::{cell, print_json, table, time},
};

/// What to do with MQTT clients.
#[derive(Debug, Subcommand)]
pub(crate) enum ClientAction {
    /// List the clients (connected, and offline sessions), sorted by client id.
    List {
        /// Only client ids containing this text (case-insensitive).
        #[arg(long)]
        like: Option<String>,
        /// Page number, from 1.
        #[arg(long, default_value_t = 1)]
        page: u64,
        /// Clients per page, 1 to 1000.
        #[arg(long, default_value_t = 100)]
        limit: u64,
    },
    /// Disconnect a connected client.
    Kick {
        /// The client id.
        clientid: String,
    },
}

/// Percent-encodes a query value.
fn query_value(text: &str) -> String {
    segment(text)
}

/// Runs a `clients` command.
///
/// # Errors
/// The API's refusal or an unreachable node, as one line.
pub(crate) async fn run(api: &ApiClient, action: ClientAction, json: bool) -> anyhow::Result<()> {
    match action {
        ClientAction::List { like, page, limit } => {
            let mut path = format!("/clients?page={page}&limit={limit}");
            if let Some(like) = like {
                path.push_str(&format!("&like_clientid={}", query_value(&like)));
            }
            let answer = api.get(&path).await?;
            if json {
                print_json(&answer);
            } else {
                print!("{}", list_table(&answer));
            }
        }
        ClientAction::Kick { clientid } => {
            api.request(
                Method::DELETE,
                &format!("/clients/{}", segment(&clientid)),
                None,
            )
            .await?;
            if !json {
                println!("client {clientid} kicked");
            }
        }
    }
    Ok(())
}

/// A page of clients as a table, with a note when there are more.
fn list_table(answer: &Value) -> String {
    let clients = answer["data"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if clients.is_empty() {
        return "no clients\n".to_owned();
    }
    let rows: Vec<Vec<String>> = clients
        .iter()
        .map(|c| {
            vec![
                cell(&c["clientid"]),
                cell(&c["username"]),
                cell(&c["connected"]),
                cell(&c["peername"]),
                format!("{} {}", cell(&c["proto_name"]), cell(&c["proto_ver"])),
                cell(&c["keepalive"]),
                cell(&c["subscriptions_cnt"]),
                c["connected_at"]
                    .as_u64()
                    .map_or_else(|| "-".to_owned(), time),
            ]
        })
        .collect();
    let mut text = table(
        &[
            "CLIENTID",
            "USERNAME",
            "CONNECTED",
            "PEERNAME",
            "PROTOCOL",
            "KEEPALIVE",
            "SUBSCRIPTIONS",
            "CONNECTED_AT (UTC)",
        ],
        &rows,
    );
    let count = answer["meta"]["count"].as_u64().unwrap_or(0);
    if count > clients.len() as u64 {
        text.push_str(&format!(
            "({} of {count} clients; see --page and --limit)\n",
            clients.len()
        ));
    }
    text
}
