//! `hookmq ctl cluster status`.

use clap::Subcommand;
use serde_json::Value;

use super::{
    http::ApiClient,
    output::{cell, print_json, table, time},
};

/// What to ask about the cluster.
#[derive(Debug, Subcommand)]
pub(crate) enum ClusterAction {
    /// Whether this node is clustered, its NATS connection, and the nodes that answer.
    Status,
}

/// Runs a `cluster` command.
///
/// # Errors
/// The API's refusal or an unreachable node, as one line.
pub(crate) async fn run(api: &ApiClient, action: ClusterAction, json: bool) -> anyhow::Result<()> {
    match action {
        ClusterAction::Status => {
            let answer = api.get("/cluster").await?;
            if json {
                print_json(&answer);
            } else {
                print!("{}", status_text(&answer));
            }
        }
    }
    Ok(())
}

/// The cluster's status: a line about NATS, then the nodes as a table.
fn status_text(answer: &Value) -> String {
    let mut text = if answer["clustered"] == true {
        format!(
            "clustered: NATS {} ({})\n",
            cell(&answer["nats"]),
            cell(&answer["server"])
        )
    } else {
        "a single node (no [cluster] nats_url)\n".to_owned()
    };
    let rows: Vec<Vec<String>> = answer["nodes"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|node| {
            vec![
                cell(&node["node"]),
                cell(&node["node_status"]),
                cell(&node["version"]),
                cell(&node["connections"]),
                node["started_at"]
                    .as_u64()
                    .map_or_else(|| "-".to_owned(), time),
            ]
        })
        .collect();
    text.push_str(&table(
        &[
            "NODE",
            "STATUS",
            "VERSION",
            "CONNECTIONS",
            "STARTED_AT (UTC)",
        ],
        &rows,
    ));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_nats_and_lists_the_nodes() {
        let answer = serde_json::json!({
            "clustered": true, "nats": "connected", "server": "127.0.0.1:4222",
            "nodes": [
                {"node": "a", "node_status": "running", "version": "0.1.0", "connections": 3, "started_at": 0},
                {"node": "b", "node_status": "running", "version": "0.1.0", "connections": 0, "started_at": 0},
            ],
        });
        let text = status_text(&answer);
        assert!(
            text.starts_with("clustered: NATS connected (127.0.0.1:4222)\n"),
            "{text}"
        );
        assert!(
            text.contains("NODE") && text.contains("\na ") && text.contains("\nb "),
            "{text}"
        );
        let single = status_text(&serde_json::json!({"clustered": false, "nodes": []}));
        assert!(single.starts_with("a single node"), "{single}");
    }
}
