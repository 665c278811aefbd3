//! `hookmq ctl`: manage a running node through its API (`/api/v5`).
//!
//! - `http`: the API client (address, credentials, errors as one line).
//! - `webhooks` (with `dead_letters`), `clients`: the subcommands.
//! - `output`: aligned tables and key/value listings for people; `--json` prints the API's
//!   answers as they are.
//!
//! Credentials: an API key (`--api-key`/`--api-secret`, sent as HTTP Basic) or a dashboard
//! user (`--username`/`--password`, which logs in first). Every failure is one line on
//! standard error and exit code 2.

mod clients;
mod cluster;
mod dead_letters;
mod http;
mod output;
mod webhooks;

use anyhow::Context;
use clap::{Args, Subcommand};

pub(crate) use clients::ClientAction;
pub(crate) use webhooks::WebhookAction;

/// `hookmq ctl` and its options.
#[derive(Debug, Args)]
pub(crate) struct CtlArgs {
    /// The node's API address (the dashboard listener).
    #[arg(
        long,
        global = true,
        env = "HOOKMQ_API",
        default_value = "http://127.0.0.1:18083"
    )]
    api: String,
    /// API key (create one with POST /api/v5/api_key or in the dashboard).
    #[arg(long, global = true, env = "HOOKMQ_API_KEY")]
    api_key: Option<String>,
    /// The API key's secret.
    #[arg(long, global = true, env = "HOOKMQ_API_SECRET", hide_env_values = true)]
    api_secret: Option<String>,
    /// Dashboard user name (instead of an API key).
    #[arg(long, global = true, env = "HOOKMQ_USERNAME")]
    username: Option<String>,
    /// Dashboard user's password.
    #[arg(long, global = true, env = "HOOKMQ_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// Print the API's JSON answers instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: CtlCommand,
}

#[derive(Debug, Subcommand)]
enum CtlCommand {
    /// Webhooks: list, show, create, delete, enable, disable, test, dead-letters.
    Webhooks {
        #[command(subcommand)]
        action: WebhookAction,
    },
    /// MQTT clients: list, kick.
    Clients {
        #[command(subcommand)]
        action: ClientAction,
    },
    /// The cluster: status (NATS, nodes).
    Cluster {
        #[command(subcommand)]
        action: cluster::ClusterAction,
    },
}

/// Runs one `ctl` command to completion.
///
/// # Errors
/// Anything that went wrong, as one line (e.g. `404 NOT_FOUND: webhook x not found`).
pub(crate) fn run(args: CtlArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        let credentials = http::Credentials::from_options(
            args.api_key,
            args.api_secret,
            args.username,
            args.password,
        )?;
        let api = http::ApiClient::connect(&args.api, credentials).await?;
        match args.command {
            CtlCommand::Webhooks { action } => webhooks::run(&api, action, args.json).await,
            CtlCommand::Clients { action } => clients::run(&api, action, args.json).await,
            CtlCommand::Cluster { action } => cluster::run(&api, action, args.json).await,
        }
    })
}
