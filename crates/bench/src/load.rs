//! Load scenarios: publishers → subscribers with latency, idle connections, retained-heavy
//! subscribe. Every subscriber subscribes to `bench/#` and receives every publisher's messages,
//! so a run expects `publishers × count × subscribers` deliveries.

use std::{
    io,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use bytes::{BufMut, Bytes, BytesMut};
use hookmq_codec::{Packet, ProtocolVersion, QoS};
use serde::Serialize;
use tokio::{sync::Barrier, task::JoinSet};

use crate::client::Client;

/// A publish/subscribe run.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Broker address.
    pub address: SocketAddr,
    /// Where the subscribers connect, if not to `address` (another node of a cluster).
    pub subscriber_address: Option<SocketAddr>,
    /// Time between the subscriptions and the first publish (a cluster spreads the
    /// subscriptions to the other nodes meanwhile).
    pub settle: Duration,
    /// Protocol version.
    pub version: ProtocolVersion,
    /// Publishing connections.
    pub publishers: usize,
    /// Subscribing connections.
    pub subscribers: usize,
    /// Messages per publisher.
    pub count: usize,
    /// QoS of publishes and subscriptions.
    pub qos: QoS,
    /// Payload bytes (at least 8: the send timestamp).
    pub payload_size: usize,
    /// Messages per second per publisher; 0 for as fast as possible.
    pub rate: u64,
    /// QoS 1 messages in flight per publisher.
    pub inflight: usize,
    /// Subscribers keep their sessions (clean session = false, v5 expiry 1 h).
    pub persistent_subscribers: bool,
    /// Give up after this long (the rest counts as lost).
    pub timeout: Duration,
    /// Client ids are `<prefix>-pub-<i>` and `<prefix>-sub-<i>`.
    pub client_prefix: String,
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// Messages published.
    pub published: u64,
    /// Deliveries received, all subscribers together.
    pub received: u64,
    /// Deliveries expected.
    pub expected: u64,
    /// From the first publish to the last delivery, seconds.
    pub seconds: f64,
    /// Published messages per second.
    pub publish_rate: f64,
    /// Deliveries per second (the sum over subscribers).
    pub delivery_rate: f64,
    /// Latency publish → subscriber, µs.
    pub latency_p50_us: u64,
    /// 99th percentile latency, µs.
    pub latency_p99_us: u64,
}

fn micros_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn payload(size: usize) -> Bytes {
    let mut buf = BytesMut::with_capacity(size.max(8));
    buf.put_u64(micros_now());
    buf.resize(size.max(8), b'x');
    buf.freeze()
}

/// Runs one publish/subscribe scenario.
///
/// # Errors
/// A connection or protocol failure.
pub async fn run(spec: &LoadSpec) -> io::Result<LoadReport> {
    let expected_per_subscriber = (spec.publishers * spec.count) as u64;
    let mut subscribers = JoinSet::new();
    let ready = Arc::new(Barrier::new(spec.subscribers + spec.publishers + 1));
    for i in 0..spec.subscribers {
        let mut client = Client::connect_with(
            spec.subscriber_address.unwrap_or(spec.address),
            &format!("{}-sub-{i}", spec.client_prefix),
            spec.version,
            60,
            spec.persistent_subscribers,
        )
        .await?;
        client.subscribe("bench/#", spec.qos).await?;
        let ready = Arc::clone(&ready);
        let deadline = spec.timeout;
        subscribers.spawn(async move {
            ready.wait().await;
            subscribe_loop(client, expected_per_subscriber, deadline).await
        });
    }
    let mut publishers = JoinSet::new();
    for i in 0..spec.publishers {
        let client = Client::connect(
            spec.address,
            &format!("{}-pub-{i}", spec.client_prefix),
            spec.version,
            60,
        )
        .await?;
        let ready = Arc::clone(&ready);
        let spec = spec.clone();
        publishers.spawn(async move {
            ready.wait().await;
            publish_loop(client, i, &spec).await
        });
    }
    tokio::time::sleep(spec.settle).await;
    ready.wait().await;
    let started = Instant::now();
    let mut published = 0;
    while let Some(result) = publishers.join_next().await {
        published += result.map_err(io::Error::other)??;
    }
    let publish_seconds = started.elapsed().as_secs_f64();
    let mut received = 0;
    let mut latencies = Vec::new();
    while let Some(result) = subscribers.join_next().await {
        let (count, mut samples) = result.map_err(io::Error::other)??;
        received += count;
        latencies.append(&mut samples);
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let percentile = |p: f64| {
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )]
        let index = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        latencies.get(index).copied().unwrap_or(0)
    };
    #[allow(clippy::cast_precision_loss)]
    Ok(LoadReport {
        published,
        received,
        expected: expected_per_subscriber * spec.subscribers as u64,
        seconds,
        publish_rate: published as f64 / publish_seconds.max(1e-9),
        delivery_rate: received as f64 / seconds.max(1e-9),
        latency_p50_us: percentile(0.5),
        latency_p99_us: percentile(0.99),
    })
}

/// Publishes `spec.count` messages; returns how many went out.
async fn publish_loop(mut client: Client, index: usize, spec: &LoadSpec) -> io::Result<u64> {
    let topic = format!("bench/{index}");
    let interval = (spec.rate > 0).then(|| Duration::from_secs_f64(1.0 / spec.rate as f64));
    let started = Instant::now();
    let mut inflight = 0;
    let mut packet_id: u16 = 0;
    let mut sent = 0;
    let mut incoming = Vec::new();
    while sent < spec.count {
        // Fill a batch: up to 64 messages, within the in-flight window.
        while sent < spec.count && client.pending() < 64 * 1024 {
            if spec.qos != QoS::AtMostOnce && inflight >= spec.inflight {
                break;
            }
            if let Some(interval) = interval {
                let due = started + interval.mul_f64(sent as f64);
                if due > Instant::now() {
                    if client.pending() > 0 {
                        break;
                    }
                    tokio::time::sleep_until(due.into()).await;
                }
            }
            packet_id = packet_id.wrapping_add(1).max(1);
            let id = if spec.qos == QoS::AtMostOnce {
                0
            } else {
                packet_id
            };
            client.queue_publish(&topic, spec.qos, id, payload(spec.payload_size), false)?;
            sent += 1;
            if spec.qos != QoS::AtMostOnce {
                inflight += 1;
            }
        }
        client.flush().await?;
        if spec.qos != QoS::AtMostOnce && (inflight >= spec.inflight || sent >= spec.count) {
            inflight -= read_acks(&mut client, &mut incoming).await?.min(inflight);
        }
    }
    // Wait for the last acknowledgements.
    while spec.qos != QoS::AtMostOnce && inflight > 0 {
        inflight -= read_acks(&mut client, &mut incoming).await?.min(inflight);
    }
    client.disconnect().await;
    Ok(sent as u64)
}

/// Messages queued for offline sessions: each subscriber makes a persistent session and
/// leaves, the publishers publish everything (`publish_rate`: what a broker that keeps the
/// queue on disk costs the publisher), then the subscribers come back and drain their
/// queues (`delivery_rate`, over the drain only; no latencies: they measure the wait).
///
/// # Errors
/// A connection or protocol failure.
pub async fn queue(spec: &LoadSpec) -> io::Result<LoadReport> {
    let id = |i: usize| format!("{}-sub-{i}", spec.client_prefix);
    for i in 0..spec.subscribers {
        let mut client = Client::connect_with(spec.address, &id(i), spec.version, 60, true).await?;
        client.subscribe("bench/#", spec.qos).await?;
        client.disconnect().await;
    }
    let publishing = Instant::now();
    let mut publishers = JoinSet::new();
    for i in 0..spec.publishers {
        let client = Client::connect(
            spec.address,
            &format!("{}-pub-{i}", spec.client_prefix),
            spec.version,
            60,
        )
        .await?;
        let spec = spec.clone();
        publishers.spawn(async move { publish_loop(client, i, &spec).await });
    }
    let mut published = 0;
    while let Some(result) = publishers.join_next().await {
        published += result.map_err(io::Error::other)??;
    }
    let publish_seconds = publishing.elapsed().as_secs_f64();
    let draining = Instant::now();
    let mut subscribers = JoinSet::new();
    for i in 0..spec.subscribers {
        let client = Client::connect_with(spec.address, &id(i), spec.version, 60, true).await?;
        subscribers.spawn(subscribe_loop(client, published, spec.timeout));
    }
    let mut received = 0;
    while let Some(result) = subscribers.join_next().await {
        received += result.map_err(io::Error::other)??.0;
    }
    let drain_seconds = draining.elapsed().as_secs_f64();
    #[allow(clippy::cast_precision_loss)]
    Ok(LoadReport {
        published,
        received,
        expected: published * spec.subscribers as u64,
        seconds: publish_seconds + drain_seconds,
        publish_rate: published as f64 / publish_seconds.max(1e-9),
        delivery_rate: received as f64 / drain_seconds.max(1e-9),
        latency_p50_us: 0,
        latency_p99_us: 0,
    })
}

/// Reads what the broker sent and counts the PUBACKs in it.
async fn read_acks(client: &mut Client, incoming: &mut Vec<Packet>) -> io::Result<usize> {
    incoming.clear();
    client.read_batch(incoming).await?;
    Ok(incoming
        .iter()
        .filter(|p| matches!(p, Packet::PubAck(_)))
        .count())
}

/// Receives until `expected` messages or the timeout; returns the count and latencies (µs).
async fn subscribe_loop(
    mut client: Client,
    expected: u64,
    timeout: Duration,
) -> io::Result<(u64, Vec<u64>)> {
    let mut received = 0;
    let mut latencies = Vec::with_capacity(usize::try_from(expected).unwrap_or(0).min(10_000_000));
    let mut batch = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while received < expected {
        batch.clear();
        match tokio::time::timeout_at(deadline, client.read_batch(&mut batch)).await {
            Ok(result) => result?,
            Err(_) => break,
        }
        let now = micros_now();
        for packet in batch.drain(..) {
            if let Packet::Publish(publish) = packet {
                received += 1;
                if let Some(sent) = publish.payload.get(..8) {
                    let mut stamp = [0u8; 8];
                    stamp.copy_from_slice(sent);
                    latencies.push(now.saturating_sub(u64::from_be_bytes(stamp)));
                }
                if publish.qos != QoS::AtMostOnce {
                    client.queue_puback(publish.packet_id)?;
                }
            }
        }
        client.flush().await?;
    }
    client.disconnect().await;
    Ok((received, latencies))
}

/// What the idle-connections scenario measured.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectReport {
    /// Connections established.
    pub connections: usize,
    /// Connections per second while connecting.
    pub connect_rate: f64,
}

/// Opens `count` connections, `parallel` at a time, calls `connected` with the report, and
/// keeps them open for `hold`.
///
/// # Errors
/// A connection failure.
pub async fn connections(
    address: SocketAddr,
    count: usize,
    parallel: usize,
    sources: usize,
    hold: Duration,
    connected: impl FnOnce(&ConnectReport),
) -> io::Result<ConnectReport> {
    let started = Instant::now();
    let mut open = Vec::with_capacity(count);
    let mut pending = JoinSet::new();
    let mut next = 0;
    while open.len() < count {
        while pending.len() < parallel && next < count {
            let id = format!("idle-{next}");
            // 127.0.0.1, 127.0.0.2, ... in turn.
            let source = std::net::IpAddr::V4(std::net::Ipv4Addr::from(
                u32::from(std::net::Ipv4Addr::LOCALHOST)
                    + u32::try_from(next % sources.max(1)).unwrap_or(0),
            ));
            pending.spawn(async move {
                if sources > 1 {
                    Client::connect_from(address, source, &id, ProtocolVersion::V3_1_1, 600).await
                } else {
                    Client::connect(address, &id, ProtocolVersion::V3_1_1, 600).await
                }
            });
            next += 1;
        }
        if let Some(result) = pending.join_next().await {
            open.push(result.map_err(io::Error::other)??);
        }
    }
    #[allow(clippy::cast_precision_loss)]
    let report = ConnectReport {
        connections: open.len(),
        connect_rate: open.len() as f64 / started.elapsed().as_secs_f64(),
    };
    connected(&report);
    tokio::time::sleep(hold).await;
    drop(open);
    Ok(report)
}

/// What the retained scenario measured.
#[derive(Debug, Clone, Serialize)]
pub struct RetainedReport {
    /// Retained topics stored.
    pub topics: usize,
    /// Time for one `#` subscriber to receive all of them, ms.
    pub subscribe_ms: f64,
}

/// Stores `count` retained messages, then times a wildcard subscription that receives them.
///
/// # Errors
/// A connection failure.
pub async fn retained(
    address: SocketAddr,
    count: usize,
    payload_size: usize,
) -> io::Result<RetainedReport> {
    let mut publisher =
        Client::connect(address, "bench-retain-pub", ProtocolVersion::V3_1_1, 60).await?;
    for i in 0..count {
        publisher.queue_publish(
            &format!("retained/{}/{i}", i % 100),
            QoS::AtMostOnce,
            0,
            payload(payload_size),
            true,
        )?;
        if publisher.pending() > 64 * 1024 {
            publisher.flush().await?;
        }
    }
    publisher.flush().await?;
    publisher.disconnect().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut subscriber =
        Client::connect(address, "bench-retain-sub", ProtocolVersion::V3_1_1, 60).await?;
    let started = Instant::now();
    subscriber.subscribe("retained/#", QoS::AtMostOnce).await?;
    let mut received = 0;
    let mut batch = Vec::new();
    while received < count {
        batch.clear();
        tokio::time::timeout(Duration::from_secs(60), subscriber.read_batch(&mut batch))
            .await
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("only {received} of {count} retained messages"),
                )
            })??;
        received += batch
            .iter()
            .filter(|p| matches!(p, Packet::Publish(_)))
            .count();
    }
    let subscribe_ms = started.elapsed().as_secs_f64() * 1000.0;
    subscriber.disconnect().await;
    Ok(RetainedReport {
        topics: count,
        subscribe_ms,
    })
}
