//! A small MQTT 5 client (rumqttc) whose event loop runs in the background.

use std::{net::SocketAddr, time::Duration};

use rumqttc::v5::{
    AsyncClient, Event, MqttOptions,
    mqttbytes::{
        QoS,
        v5::{Filter, Packet, Publish},
    },
};
use tokio::sync::mpsc;

use super::PATIENCE;

/// A connected client.
pub struct Mqtt {
    pub client: AsyncClient,
    incoming: mpsc::UnboundedReceiver<Packet>,
}

impl Mqtt {
    /// Connects and waits for CONNACK.
    pub async fn connect(address: SocketAddr, client_id: &str) -> Self {
        let mut options = MqttOptions::new(client_id, address.ip().to_string(), address.port());
        options.set_keep_alive(Duration::from_secs(30));
        let (client, mut eventloop) = AsyncClient::new(options, 1000);
        let (sender, incoming) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(packet)) => {
                        if sender.send(packet).is_err() {
                            return;
                        }
                    }
                    Ok(Event::Outgoing(_)) => {}
                    Err(_) => return,
                }
            }
        });
        let mut this = Self { client, incoming };
        this.expect(|p| matches!(p, Packet::ConnAck(_))).await;
        this
    }

    /// Waits for an incoming packet `wanted` accepts, skipping others.
    pub async fn expect(&mut self, wanted: impl Fn(&Packet) -> bool) -> Packet {
        tokio::time::timeout(PATIENCE, async {
            loop {
                match self.incoming.recv().await {
                    Some(packet) if wanted(&packet) => return packet,
                    Some(_) => {}
                    None => panic!("connection closed"),
                }
            }
        })
        .await
        .expect("packet in time")
    }

    pub async fn subscribe(&mut self, filter: &str, qos: QoS, no_local: bool) {
        let mut filter = Filter::new(filter, qos);
        filter.nolocal = no_local;
        self.client
            .subscribe_many([filter])
            .await
            .expect("subscribe");
        self.expect(|p| matches!(p, Packet::SubAck(_))).await;
    }

    pub async fn unsubscribe(&mut self, filter: &str) {
        self.client.unsubscribe(filter).await.expect("unsubscribe");
        self.expect(|p| matches!(p, Packet::UnsubAck(_))).await;
    }

    /// Publishes and, for QoS 1, waits for the PUBACK.
    pub async fn publish(&mut self, topic: &str, qos: QoS, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, qos, false, payload.into())
            .await
            .expect("publish");
        if qos == QoS::AtLeastOnce {
            self.expect(|p| matches!(p, Packet::PubAck(_))).await;
        }
    }

    /// The next message received.
    pub async fn message(&mut self) -> Publish {
        match self.expect(|p| matches!(p, Packet::Publish(_))).await {
            Packet::Publish(publish) => publish,
            _ => unreachable!("filtered"),
        }
    }

    pub async fn disconnect(self) {
        let _ = self.client.disconnect().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
