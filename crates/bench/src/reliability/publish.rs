//! The harness's publishers: `clients` MQTT clients publishing QoS 1 messages (`c<k>-<n>` to
//! `rel/<k>`), each waiting for its PUBACK; the messages acknowledged are the ones hookmq
//! took responsibility for, so the ones the receiver must get.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use bytes::Bytes;
use hookmq_codec::{Packet, ProtocolVersion, QoS};
use tokio::task::JoinSet;

use crate::client::Client;

/// What the publishers did.
#[derive(Debug, Default)]
pub struct Published {
    /// Per client (index = k), the payloads acknowledged, in order.
    pub acked: Vec<Vec<String>>,
    /// How long publishing took.
    pub took: Duration,
}

impl Published {
    /// Messages acknowledged in all.
    #[must_use]
    pub fn count(&self) -> usize {
        self.acked.iter().map(Vec::len).sum()
    }
}

/// `clients` clients publish `per_client` messages each, together `rate` per second at most
/// (`None`: as fast as their PUBACKs come), starting at message number `from`.
///
/// # Errors
/// A client could not connect.
pub async fn publish(
    mqtt: SocketAddr,
    clients: usize,
    per_client: usize,
    rate: Option<f64>,
    from: usize,
) -> anyhow::Result<Published> {
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for k in 0..clients {
        // Each client sends one message per period, staggered across the clients.
        #[allow(clippy::cast_precision_loss)]
        let period = rate.map(|rate| Duration::from_secs_f64(clients as f64 / rate));
        let client = Client::connect(mqtt, &format!("c{k}"), ProtocolVersion::V5, 60).await?;
        tasks.spawn(run(client, k, per_client, period, from));
    }
    let mut acked = vec![Vec::new(); clients];
    while let Some(done) = tasks.join_next().await {
        let (k, payloads) = done?;
        acked[k] = payloads;
    }
    Ok(Published {
        acked,
        took: started.elapsed(),
    })
}

async fn run(
    mut client: Client,
    k: usize,
    count: usize,
    period: Option<Duration>,
    from: usize,
) -> (usize, Vec<String>) {
    let mut acked = Vec::with_capacity(count);
    let mut tick = period.map(|p| {
        let mut tick = tokio::time::interval(p);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick
    });
    let topic = format!("rel/{k}");
    for n in from..from + count {
        if let Some(tick) = &mut tick {
            tick.tick().await;
        }
        let payload = format!("c{k}-{n}");
        let id = u16::try_from(n % 65_535 + 1).unwrap_or(1);
        let sent = client.queue_publish(
            &topic,
            QoS::AtLeastOnce,
            id,
            Bytes::from(payload.clone()),
            false,
        );
        if sent.is_err() || client.flush().await.is_err() {
            break;
        }
        loop {
            match client.next().await {
                Ok(Packet::PubAck(ack)) if ack.packet_id == id => {
                    acked.push(payload);
                    break;
                }
                Ok(_) => {}
                // The broker went away: what was not acknowledged is not owed.
                Err(_) => return (k, acked),
            }
        }
    }
    client.disconnect().await;
    (k, acked)
}
