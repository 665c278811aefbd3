//! `hookmq-bench`: MQTT load generator. Each command prints one JSON object.

use std::{net::SocketAddr, time::Duration};

use anyhow::Context;
use clap::{Parser, Subcommand};
use hookmq_bench::load::{self, LoadSpec};
use hookmq_codec::{ProtocolVersion, QoS};

/// MQTT load generator for hookmq's benchmarks.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Broker address.
    #[arg(long, short = 'a', default_value = "127.0.0.1:1883", global = true)]
    address: SocketAddr,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Publishers → subscribers (each subscriber receives every message), with latency.
    Load {
        /// Publishing connections.
        #[arg(long, short = 'p', default_value_t = 1)]
        publishers: usize,
        /// Subscribing connections.
        #[arg(long, short = 's', default_value_t = 1)]
        subscribers: usize,
        /// Messages per publisher.
        #[arg(long, short = 'n', default_value_t = 100_000)]
        count: usize,
        /// QoS (0 or 1).
        #[arg(long, short = 'q', default_value_t = 0)]
        qos: u8,
        /// Payload bytes.
        #[arg(long, short = 'm', default_value_t = 64)]
        size: usize,
        /// Messages per second per publisher (0: as fast as possible).
        #[arg(long, default_value_t = 0)]
        rate: u64,
        /// QoS 1 window per publisher.
        #[arg(long, default_value_t = 100)]
        inflight: usize,
        /// MQTT version: 4 (3.1.1) or 5.
        #[arg(long, default_value_t = 4)]
        version: u8,
        /// Where the subscribers connect, if not to --address (another node of a cluster).
        #[arg(long)]
        sub_address: Option<SocketAddr>,
        /// Milliseconds between subscribing and the first publish (a cluster spreads the
        /// subscriptions meanwhile).
        #[arg(long, default_value_t = 0)]
        settle_ms: u64,
        /// Subscribers keep their sessions (clean session = false, v5 expiry 1 h): a broker
        /// that persists sessions keeps their QoS 1/2 messages on disk.
        #[arg(long)]
        persistent: bool,
        /// Subscribers make persistent sessions and leave; everything is published to their
        /// queues, then they come back and drain them (see `load::queue`).
        #[arg(long)]
        offline: bool,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
        /// Client ids are `<prefix>-pub-<i>` and `<prefix>-sub-<i>` (give each concurrent
        /// run against one cluster its own: a client id is one connection cluster-wide).
        #[arg(long, default_value = "bench")]
        client_prefix: String,
    },
    /// Opens idle connections, prints the connect rate, holds them, then closes.
    Connections {
        /// Connections.
        #[arg(long, short = 'n', default_value_t = 10_000)]
        count: usize,
        /// Connection attempts at once.
        #[arg(long, default_value_t = 100)]
        parallel: usize,
        /// Loopback source addresses to connect from (127.0.0.1 and up): each gives about
        /// 28,000 ports.
        #[arg(long, default_value_t = 1)]
        sources: usize,
        /// Seconds to hold them open after printing.
        #[arg(long, default_value_t = 5)]
        hold: u64,
    },
    /// Stores retained messages, then times a wildcard subscriber receiving them all.
    Retained {
        /// Retained topics.
        #[arg(long, short = 'n', default_value_t = 10_000)]
        count: usize,
        /// Payload bytes.
        #[arg(long, short = 'm', default_value_t = 64)]
        size: usize,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let json = match cli.command {
        Command::Load {
            publishers,
            subscribers,
            count,
            qos,
            size,
            rate,
            inflight,
            version,
            sub_address,
            settle_ms,
            persistent,
            offline,
            timeout,
            client_prefix,
        } => {
            let spec = LoadSpec {
                address: cli.address,
                subscriber_address: sub_address,
                settle: Duration::from_millis(settle_ms),
                version: if version == 5 {
                    ProtocolVersion::V5
                } else {
                    ProtocolVersion::V3_1_1
                },
                publishers,
                subscribers,
                count,
                qos: QoS::from_u8(qos).context("--qos is 0, 1 or 2")?,
                payload_size: size,
                rate,
                inflight: inflight.max(1),
                persistent_subscribers: persistent,
                timeout: Duration::from_secs(timeout),
                client_prefix,
            };
            let report = if offline {
                load::queue(&spec).await?
            } else {
                load::run(&spec).await?
            };
            serde_json::to_string(&report)?
        }
        Command::Connections {
            count,
            parallel,
            sources,
            hold,
        } => {
            // Printed as soon as every connection is open, while they are held.
            load::connections(
                cli.address,
                count,
                parallel.max(1),
                sources,
                Duration::from_secs(hold),
                |report| {
                    if let Ok(json) = serde_json::to_string(report) {
                        println!("{json}");
                    }
                },
            )
            .await?;
            return Ok(());
        }
        Command::Retained { count, size } => {
            serde_json::to_string(&load::retained(cli.address, count, size).await?)?
        }
    };
    println!("{json}");
    Ok(())
}
