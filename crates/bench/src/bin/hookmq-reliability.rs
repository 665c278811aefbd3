//! The reliability harness: starts `hookmq` (the release binary) and a webhook receiver,
//! runs each scenario against a fresh data directory, and prints a report of what the
//! receiver got against what the publishers had acknowledged.
//!
//! 1. outage: the receiver is down while clients publish (default 10 minutes at 1,000
//!    events/s from 100 clients), then comes back.
//! 2. kill: `kill -9` in the middle of delivering, then a restart on the same data.
//! 3. stop: SIGTERM in the middle of delivering, then a restart.
//! 4. bound: the receiver is down and the disk buffer's bound is reached: the overflow is
//!    counted as configured, and MQTT keeps serving.
//! 5. refused: the receiver answers 400: dead letters; replayed once it is fixed.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use clap::Parser;
use hookmq_bench::reliability::{
    check::{Check, check},
    node::Node,
    publish::{Published, publish},
    receiver::Receiver,
};
use serde_json::{Value, json};

/// hookmq's reliability harness.
#[derive(Debug, Parser)]
struct Args {
    /// The hookmq binary.
    #[arg(long, default_value = "target/release/hookmq")]
    hookmq: PathBuf,
    /// Where the scenarios keep their data (a fresh directory each).
    #[arg(long, default_value = "target/reliability")]
    dir: PathBuf,
    /// How long the receiver is down in the outage scenario, in seconds.
    #[arg(long, default_value_t = 600)]
    outage: u64,
    /// Events per second the clients publish in the outage scenario.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Publishing clients in the outage scenario.
    #[arg(long, default_value_t = 100)]
    clients: usize,
    /// Only these scenarios (comma-separated): outage, kill, stop, bound, refused.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

/// One scenario's line in the report.
struct Row {
    name: &'static str,
    setup: String,
    published: Published,
    check: Check,
    notes: String,
    passed: bool,
}

/// The webhook every scenario uses, with `extra` settings.
fn config(url: &str, extra: &str) -> String {
    format!(
        "[[webhooks]]\nname = \"audit\"\nurl = \"{url}\"\nevents = [\"message.publish\"]\n\
         topics = [\"rel/#\"]\n{extra}\n"
    )
}

/// Waits until `done` holds for the receiver's arrivals, up to `limit`; returns how long.
async fn wait_until(
    receiver: &Receiver,
    limit: Duration,
    done: impl Fn(&[hookmq_bench::reliability::receiver::Arrival]) -> bool,
) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if done(&receiver.arrivals()) {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// Every acknowledged event delivered at least once.
fn all_delivered(
    published: &Published,
) -> impl Fn(&[hookmq_bench::reliability::receiver::Arrival]) -> bool + '_ {
    move |arrivals| check(&published.acked, arrivals).missing == 0
}

async fn outage(args: &Args, dir: PathBuf) -> anyhow::Result<Row> {
    let mut receiver = Receiver::new()?;
    let mut node = Node::new(&args.hookmq, &dir, &config(&receiver.url(), ""))?;
    node.start().await?;
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let per_client = (args.rate * args.outage as f64 / args.clients as f64).round() as usize;
    let published = publish(node.mqtt, args.clients, per_client, Some(args.rate), 0).await?;
    let queued = node.metrics("audit").await?;
    receiver.up().await?;
    let drained = wait_until(
        &receiver,
        Duration::from_secs(1800),
        all_delivered(&published),
    )
    .await;
    let result = check(&published.acked, &receiver.arrivals());
    let notes = format!(
        "receiver down {} s; {} queued ({} on disk only, journal {} MiB); {} after it came back",
        args.outage,
        queued["queuing"],
        queued["buffer"]["on_disk_only"],
        queued["buffer"]["disk_bytes"].as_u64().unwrap_or(0) >> 20,
        drained.map_or_else(
            || "not all delivered 30 min".to_owned(),
            |d| format!("all delivered {:.1} s", d.as_secs_f64())
        ),
    );
    #[allow(clippy::cast_precision_loss)]
    let rate = published.count() as f64 / published.took.as_secs_f64();
    Ok(Row {
        name: "outage",
        setup: format!(
            "{} clients, {rate:.0} events/s for {:.0} s",
            args.clients,
            published.took.as_secs_f64()
        ),
        passed: result.passed(),
        check: result,
        published,
        notes,
    })
}

/// Publishes a backlog to a slow receiver, interrupts hookmq mid-delivery with `interrupt`,
/// restarts it, and lets a fast receiver take everything.
async fn interrupted(
    args: &Args,
    dir: PathBuf,
    name: &'static str,
    interrupt: fn(&mut Node),
) -> anyhow::Result<Row> {
    let mut receiver = Receiver::new()?;
    receiver.answer(200, Duration::from_millis(20));
    receiver.up().await?;
    let mut node = Node::new(&args.hookmq, &dir, &config(&receiver.url(), ""))?;
    node.start().await?;
    let published = publish(node.mqtt, 20, 500, None, 0).await?;
    let target = published.count() / 10;
    if wait_until(&receiver, Duration::from_secs(60), |a| a.len() >= target)
        .await
        .is_none()
    {
        bail!("{name}: deliveries did not start");
    }
    let before = receiver.arrivals().len();
    interrupt(&mut node);
    let stopped = node.log_lines("webhooks stopped").pop().unwrap_or_default();
    receiver.answer(200, Duration::ZERO);
    node.start().await?;
    let drained = wait_until(
        &receiver,
        Duration::from_secs(300),
        all_delivered(&published),
    )
    .await;
    let result = check(&published.acked, &receiver.arrivals());
    let mut notes = format!(
        "{before} delivered before; {} after the restart",
        drained.map_or_else(
            || "not all delivered in 5 min".to_owned(),
            |d| format!("the rest in {:.1} s", d.as_secs_f64())
        ),
    );
    if !stopped.is_empty() {
        let fields: Vec<&str> = stopped
            .split_whitespace()
            .filter(|w| {
                w.starts_with("delivered=")
                    || w.starts_with("kept_on_disk=")
                    || w.starts_with("lost=")
            })
            .collect();
        notes.push_str(&format!("; at the stop: {}", fields.join(" ")));
    }
    Ok(Row {
        name,
        setup: format!("20 clients × 500, receiver answering in 20 ms; {name} after {before}"),
        passed: result.passed(),
        check: result,
        published,
        notes,
    })
}

async fn bound(args: &Args, dir: PathBuf) -> anyhow::Result<Row> {
    let mut receiver = Receiver::new()?;
    let extra = "queue_capacity = 1000\nmax_buffer_bytes = 2097152\n";
    let mut node = Node::new(&args.hookmq, &dir, &config(&receiver.url(), extra))?;
    node.start().await?;
    let published = publish(node.mqtt, 20, 5000, None, 0).await?;
    let full = node.metrics("audit").await?;
    let dropped = full["dropped.queue_full"].as_u64().unwrap_or(0);
    receiver.up().await?;
    let matched = full["matched"].as_u64().unwrap_or(0);
    let kept = usize::try_from(matched.saturating_sub(dropped)).unwrap_or(usize::MAX);
    let drained = wait_until(&receiver, Duration::from_secs(300), |a| {
        check(&published.acked, a).delivered >= kept
    })
    .await;
    let result = check(&published.acked, &receiver.arrivals());
    #[allow(clippy::cast_precision_loss)]
    let rate = published.count() as f64 / published.took.as_secs_f64();
    let after = node.metrics("audit").await?;
    let passed = dropped > 0
        && result.missing as u64 == dropped
        && result.duplicates_with_another_id == 0
        && after["queuing"] == 0;
    Ok(Row {
        name: "bound",
        setup: "20 clients × 5,000 as fast as acknowledged, receiver down, max_buffer_bytes 2 MiB, overflow drop_new".into(),
        notes: format!(
            "MQTT kept serving: {rate:.0} publishes/s acknowledged; dropped.queue_full {dropped} (= missing); journal {} KiB at the bound; the {kept} kept {}",
            full["buffer"]["disk_bytes"].as_u64().unwrap_or(0) >> 10,
            drained.map_or_else(|| "not all delivered".to_owned(), |d| format!("delivered in {:.1} s", d.as_secs_f64())),
        ),
        passed,
        check: result,
        published,
    })
}

async fn refused(args: &Args, dir: PathBuf) -> anyhow::Result<Row> {
    let mut receiver = Receiver::new()?;
    receiver.answer(400, Duration::ZERO);
    receiver.up().await?;
    let mut node = Node::new(&args.hookmq, &dir, &config(&receiver.url(), ""))?;
    node.start().await?;
    let published = publish(node.mqtt, 10, 50, None, 0).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut dead: Value;
    loop {
        dead = node.metrics("audit").await?;
        if dead["dead_letters"].as_u64() == Some(published.count() as u64) {
            break;
        }
        if Instant::now() > deadline {
            bail!("refused: dead letters {}", dead["dead_letters"]);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    receiver.answer(200, Duration::ZERO);
    let report = node
        .post("/webhooks/audit/dead_letters/replay", &json!({}))
        .await?;
    let drained = wait_until(
        &receiver,
        Duration::from_secs(60),
        all_delivered(&published),
    )
    .await;
    let result = check(&published.acked, &receiver.arrivals());
    let after = node.metrics("audit").await?;
    Ok(Row {
        name: "refused",
        setup: "10 clients × 50, receiver answering 400, then fixed and the dead letters replayed"
            .into(),
        notes: format!(
            "{} dead letters (failed {}, retried {}); replay {report}; {}; dead letters left {}",
            dead["dead_letters"],
            dead["failed"],
            dead["retried"],
            drained.map_or_else(
                || "not all delivered".to_owned(),
                |d| format!("delivered in {:.1} s", d.as_secs_f64())
            ),
            after["dead_letters"],
        ),
        passed: result.passed() && after["dead_letters"] == 0,
        check: result,
        published,
    })
}

fn print(rows: &[Row]) {
    println!(
        "| scenario | setup | acknowledged | delivered | missing | duplicates (another webhook-id) | clients out of order | result |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---|");
    for row in rows {
        let c = &row.check;
        println!(
            "| {} | {} | {} | {} | {} | {} ({}) | {} | {} |",
            row.name,
            row.setup,
            row.published.count(),
            c.delivered,
            c.missing,
            c.duplicates,
            c.duplicates_with_another_id,
            c.clients_out_of_order,
            if row.passed { "pass" } else { "FAIL" },
        );
    }
    println!();
    for row in rows {
        println!("- {}: {}", row.name, row.notes);
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !args.hookmq.is_file() {
        bail!(
            "no hookmq binary at {} (cargo build --release -p hookmq)",
            args.hookmq.display()
        );
    }
    let wanted = |name: &str| args.only.is_empty() || args.only.iter().any(|o| o == name);
    let _ = std::fs::remove_dir_all(&args.dir);
    std::fs::create_dir_all(&args.dir).context("the data directory")?;
    let mut rows = Vec::new();
    let started = Instant::now();
    for name in ["outage", "kill", "stop", "bound", "refused"] {
        if !wanted(name) {
            continue;
        }
        eprintln!("scenario {name}…");
        let dir = args.dir.join(name);
        let row = match name {
            "outage" => outage(&args, dir).await,
            "kill" => interrupted(&args, dir, "kill", Node::kill).await,
            "stop" => interrupted(&args, dir, "stop", Node::stop).await,
            "bound" => bound(&args, dir).await,
            _ => refused(&args, dir).await,
        }
        .with_context(|| format!("scenario {name}"))?;
        eprintln!(
            "scenario {name}: {}",
            if row.passed { "pass" } else { "FAIL" }
        );
        rows.push(row);
    }
    print(&rows);
    println!(
        "\n(hookmq-reliability, {:.0} s)",
        started.elapsed().as_secs_f64()
    );
    if rows.iter().all(|r| r.passed) {
        Ok(())
    } else {
        bail!("a scenario failed")
    }
}
