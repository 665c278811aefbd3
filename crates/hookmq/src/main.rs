//! # hookmq
//!
//! The `hookmq` binary: `hookmq` (or `hookmq run`) starts the broker; `hookmq user` manages
//! the password file; `hookmq config` prints or checks the configuration; `hookmq ctl`
//! manages a running node through its API.
//!
//! ## Layout
//! - `config`: loading `hookmq.toml` and `HOOKMQ_*` variables over the embedded defaults.
//! - `ctl`: the API client commands (webhooks, clients).
//! - `main`: the command line, logging, start-up and graceful shutdown on SIGINT/SIGTERM.

mod config;
mod ctl;

/// mimalloc: the broker allocates and frees small objects on many threads (messages, events,
/// requests); measured faster than the system allocator on the delivery path.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::{io::BufRead, path::PathBuf, process::ExitCode};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use std::sync::Arc;

use hookmq_api::Api;
use hookmq_api::Store;
use hookmq_broker::{Broker, auth};
use hookmq_webhooks::WebhookEngine;

/// hookmq: an MQTT broker whose webhooks turn every event into an HTTP request.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Configuration file (TOML). Without it the embedded defaults apply; HOOKMQ_SECTION__KEY
    /// variables override both, e.g. HOOKMQ_LISTENERS__TCP__BIND=127.0.0.1:1883.
    #[arg(long, short, global = true, env = "HOOKMQ_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the broker (the default).
    Run,
    /// Manage the password file (MQTT clients) and dashboard passwords.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Manage a running node through its API: webhooks, clients.
    Ctl(Box<ctl::CtlArgs>),
}

#[derive(Debug, Subcommand)]
enum UserAction {
    /// Add a user, or change its password. The password is read from --password or, if
    /// absent, from the first line of standard input.
    Add {
        /// User name.
        username: String,
        /// Password (prefer standard input: command lines are visible to other users).
        #[arg(long)]
        password: Option<String>,
        /// Password file; default: auth.password_file from the configuration.
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Remove a user.
    Remove {
        /// User name.
        username: String,
        /// Password file; default: auth.password_file from the configuration.
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Set a dashboard user's password in the data dir (creating the user), with hookmq
    /// stopped: before the first start it replaces the default admin/public. The password is
    /// read from --password or, if absent, from the first line of standard input.
    Passwd {
        /// Dashboard user name.
        username: String,
        /// Password, 8 to 256 characters (prefer standard input).
        #[arg(long)]
        password: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigAction {
    /// Print the embedded defaults as TOML.
    Defaults,
    /// Load and validate the configuration, then print it (secrets as ******).
    Check,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// The broker's runtime (`workers` threads, default one per core).
///
/// Without the LIFO slot: tasks woken together (by one batch of socket events) run in the
/// order they were woken, so a SUBSCRIBE read before another client's PUBLISH usually takes
/// effect first; with it the last one woken runs first. The rest of the reordering comes from
/// two workers serving the two clients at once (BENCHMARKS.md, "Order across connections").
fn runtime(workers: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    #[cfg(tokio_unstable)]
    builder.disable_lifo_slot();
    #[cfg(not(tokio_unstable))]
    eprintln!("hookmq was built without --cfg tokio_unstable: the runtime keeps its LIFO slot");
    if let Some(workers) = workers {
        builder.worker_threads(workers);
    }
    builder.enable_all().thread_name("hookmq").build()
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => {
            let config = config::load(cli.config.as_deref())?;
            init_logging(&config.log);
            let runtime = runtime(None).context("starting the runtime")?;
            runtime.block_on(serve(config))
        }
        Command::User { action } => {
            let config = config::load(cli.config.as_deref())?;
            user(action, &config)
        }
        Command::Ctl(args) => ctl::run(*args),
        Command::Config {
            action: ConfigAction::Defaults,
        } => {
            print!("{}", config::defaults_toml()?);
            Ok(())
        }
        Command::Config {
            action: ConfigAction::Check,
        } => {
            let config = config::load(cli.config.as_deref())?.redacted();
            print!(
                "{}",
                toml::to_string_pretty(&config).context("printing the configuration")?
            );
            Ok(())
        }
    }
}

fn init_logging(log: &config::LogConfig) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a terminal: a log redirected to a file or a pipe stays plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match log.format {
        config::LogFormat::Text => builder.with_ansi(ansi).init(),
        config::LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// Makes everything hookmq writes its owner's alone (files 0600, directories 0700), whatever
/// the umask it was started with, and takes group and other access away from the data
/// directory and what hookmq keeps in it (written by an earlier version). Other entries of
/// the data directory are left as they are: it may be shared.
fn keep_private(data_dir: &std::path::Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("node.data_dir: cannot create {}", data_dir.display()))?;
        let ours = [
            "hookmq.redb",
            hookmq_webhooks::seal::KEY_FILE,
            "webhooks",
            "broker",
        ];
        let tightened = make_private(data_dir, false).and_then(|()| {
            ours.iter()
                .map(|name| data_dir.join(name))
                .filter(|path| path.exists())
                .try_for_each(|path| make_private(&path, true))
        });
        tightened.with_context(|| {
            format!("node.data_dir: cannot make {} private", data_dir.display())
        })?;
    }
    Ok(())
}

/// Clears the group and other permission bits of `path` and, with `recurse`, of everything
/// under it (symbolic links are left alone).
#[cfg(unix)]
fn make_private(path: &std::path::Path, recurse: bool) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let metadata = std::fs::symlink_metadata(path)?;
    if metadata.file_type().is_symlink() {
        return Ok(());
    }
    let mode = metadata.permissions().mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & !0o077))?;
    }
    if recurse && metadata.is_dir() {
        for entry in std::fs::read_dir(path)? {
            make_private(&entry?.path(), true)?;
        }
    }
    Ok(())
}

async fn serve(config: config::AppConfig) -> anyhow::Result<()> {
    let signals = shutdown_signal()?;
    let start_reloading = reload_on_hangup()?;
    let data_dir = &config.node.data_dir;
    keep_private(data_dir)?;
    let store = Arc::new(Store::open(data_dir)?);
    let secret_key = std::env::var("HOOKMQ_SECRET_KEY").ok();
    let sealer = hookmq_webhooks::seal::Sealer::load(data_dir, secret_key.as_deref())?;
    // Listening, not accepting, until the webhooks are attached: a client that connects
    // as soon as the port opens (one reconnecting after a restart) is seen by them.
    let mut broker = Broker::bind(config.broker()).await?;
    // Before accepting: the subscriptions recovered from disk are this node's first
    // interest. Before the webhooks: cluster-buffered ones keep their events there.
    let cluster = if config.cluster.enabled() {
        Some(hookmq_cluster::Cluster::join(&config.cluster, broker.handle()).await?)
    } else {
        None
    };
    let engine = WebhookEngine::start(
        broker.handle(),
        &config.node.data_dir,
        hookmq_webhooks::Egress::new(config.egress.clone()),
        sealer,
    );
    if let Some(cluster) = &cluster {
        engine.use_cluster(cluster.handle());
    }
    engine.restore().await;
    hookmq_api::migrate_saved_webhooks(&engine, &store).await?;
    for spec in &config.webhooks {
        engine
            .configure(spec.clone())
            .await
            .with_context(|| format!("webhooks: {}", spec.name))?;
    }
    engine.warn_orphans();
    if let Some(cluster) = &cluster {
        engine.share(&cluster.handle()).await?;
        let reporting = engine.clone();
        cluster
            .handle()
            .report_webhooks(Arc::new(move || reporting.metrics_report()));
    }
    broker.accept();
    start_reloading(broker.handle());
    let api = if config.dashboard.enable {
        let api = Api::bind(&config.dashboard, engine.clone(), Arc::clone(&store)).await?;
        Some(match &cluster {
            Some(cluster) => api.with_cluster(cluster.handle()).await?,
            None => api,
        })
    } else {
        None
    };
    let dashboard = api.as_ref().map(Api::address).transpose()?;
    tracing::info!(
        node = %config.node.name,
        mqtt = ?broker.addresses(),
        ?dashboard,
        webhooks = engine.list().len(),
        "hookmq started"
    );
    let stop = tokio_util::sync::CancellationToken::new();
    let api_task = api.map(|api| {
        let stop = stop.clone();
        tokio::spawn(async move { api.serve(async move { stop.cancelled().await }).await })
    });
    signals.await;
    tracing::info!("shutting down");
    stop.cancel();
    if let Some(task) = api_task {
        let _ = task.await;
    }
    let stopping = broker.disconnect(config.node.shutdown_timeout).await;
    if cluster.is_some() {
        // The clients reconnect to other nodes: their sessions go there when asked.
        let staying = stopping.hand_off(config.node.shutdown_timeout).await;
        if staying > 0 {
            tracing::info!(
                sessions = staying,
                "sessions of clients that did not reconnect elsewhere stay here until the next start"
            );
        }
    }
    // The webhooks before the cluster: a cluster buffer stores its last events there.
    engine.shutdown(config.node.shutdown_timeout).await;
    if let Some(cluster) = cluster {
        cluster.leave().await;
    }
    // After leaving: a session handed over meanwhile is ended in the journal too.
    stopping.close().await;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is called, so call
/// it first thing: a signal that arrives during start-up is then kept for later rather than
/// killing the process without a graceful stop.
///
/// # Errors
/// The handlers cannot be installed.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
        let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

/// Reads the TLS listeners' certificates again on every `SIGHUP`, without dropping a
/// connection. The handler is installed at once (a `SIGHUP` would otherwise end the
/// process); reloading starts when the returned function gets the broker.
///
/// # Errors
/// The handler cannot be installed.
fn reload_on_hangup() -> anyhow::Result<impl FnOnce(hookmq_broker::BrokerHandle)> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangup = signal(SignalKind::hangup()).context("listening for SIGHUP")?;
        Ok(move |broker: hookmq_broker::BrokerHandle| {
            tokio::spawn(async move {
                while hangup.recv().await.is_some() {
                    // Each outcome is logged by the broker.
                    let _ = broker.reload_certificates();
                }
            });
        })
    }
    #[cfg(not(unix))]
    {
        Ok(|_: hookmq_broker::BrokerHandle| {})
    }
}

/// `password`, or the first line of standard input.
fn password_or_stdin(password: Option<String>) -> anyhow::Result<String> {
    if let Some(password) = password {
        return Ok(password);
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn user(action: UserAction, config: &config::AppConfig) -> anyhow::Result<()> {
    let default_file = config.auth.password_file.clone();
    let pick = |file: Option<PathBuf>| {
        file.or(default_file.clone())
            .context("no password file: pass --file or set auth.password_file in the configuration")
    };
    match action {
        UserAction::Add {
            username,
            password,
            file,
        } => {
            let file = pick(file)?;
            let password = password_or_stdin(password)?;
            if password.is_empty() {
                bail!("the password must not be empty");
            }
            auth::add_user(&file, &username, password.as_bytes())?;
            println!("user {username} saved in {}", file.display());
        }
        UserAction::Passwd { username, password } => {
            let password = password_or_stdin(password)?;
            let data_dir = &config.node.data_dir;
            let store = Store::open(data_dir).with_context(|| {
                format!(
                    "opening the store in {} (stop hookmq first: a running node holds it)",
                    data_dir.display()
                )
            })?;
            hookmq_api::set_password(&store, &username, &password)
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("dashboard user {username}"))?;
            println!("dashboard user {username}: password set");
        }
        UserAction::Remove { username, file } => {
            let file = pick(file)?;
            if auth::remove_user(&file, &username)? {
                println!("user {username} removed from {}", file.display());
            } else {
                bail!("no user {username} in {}", file.display());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// Two tasks woken one after the other by a task on the same worker run in that order
    /// (with the LIFO slot the second one would run first).
    #[test]
    fn tasks_woken_together_run_in_the_order_they_were_woken() {
        let runtime = super::runtime(Some(1)).expect("runtime");
        let order = runtime.block_on(async {
            let (log, mut ran) = tokio::sync::mpsc::unbounded_channel();
            let (wake_first, first) = tokio::sync::oneshot::channel::<()>();
            let (wake_second, second) = tokio::sync::oneshot::channel::<()>();
            for (name, woken) in [("first", first), ("second", second)] {
                let log = log.clone();
                tokio::spawn(async move {
                    let _ = woken.await;
                    let _ = log.send(name);
                });
            }
            // Both wait on their channels before the waker runs: it is spawned last, and
            // the single worker runs spawned tasks in turn.
            tokio::spawn(async move {
                let _ = wake_first.send(());
                let _ = wake_second.send(());
            });
            [ran.recv().await, ran.recv().await]
        });
        assert_eq!(order, [Some("first"), Some("second")]);
    }
}
