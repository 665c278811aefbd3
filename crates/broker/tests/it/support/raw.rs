//! A minimal MQTT client over the project's own codec, for tests that need exact packets
//! (malformed input, v5 properties, reason codes).

use std::net::SocketAddr;

use bytes::BytesMut;
use hookmq_codec::{
    ConnAck, Connect, Packet, Properties, ProtocolVersion, PubResponse, Publish, QoS, ReasonCode,
    SubAck, Subscribe, SubscriptionOptions, SubscriptionRequest, decode, encode,
};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
    time::timeout,
};

use super::PATIENCE;

/// Any byte stream a raw client can talk over.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// A client that sends and receives whole packets.
pub struct RawClient {
    stream: Box<dyn Stream>,
    pub version: ProtocolVersion,
    read_buf: BytesMut,
}

impl RawClient {
    /// Opens a TCP connection without sending anything.
    pub async fn open(address: SocketAddr, version: ProtocolVersion) -> Self {
        let stream = TcpStream::connect(address).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Self::over(Box::new(stream), version)
    }

    /// Wraps an established stream.
    pub fn over(stream: Box<dyn Stream>, version: ProtocolVersion) -> Self {
        Self {
            stream,
            version,
            read_buf: BytesMut::new(),
        }
    }

    /// Connects with a clean session and keep-alive 60, and expects success.
    pub async fn connect(address: SocketAddr, version: ProtocolVersion, client_id: &str) -> Self {
        let mut client = Self::open(address, version).await;
        let ack = client
            .handshake(Self::connect_packet(version, client_id))
            .await;
        assert_eq!(
            ack.reason_code,
            ReasonCode::SUCCESS,
            "CONNACK for {client_id}"
        );
        client
    }

    /// A CONNECT with a clean session and keep-alive 60.
    pub fn connect_packet(version: ProtocolVersion, client_id: &str) -> Connect {
        Connect {
            protocol: version,
            clean_start: true,
            keep_alive: 60,
            client_id: client_id.to_owned(),
            ..Connect::default()
        }
    }

    /// Sends CONNECT and returns the CONNACK.
    pub async fn handshake(&mut self, connect: Connect) -> ConnAck {
        self.send(Packet::Connect(Box::new(connect))).await;
        match self.recv().await {
            Some(Packet::ConnAck(ack)) => ack,
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// Sends one packet.
    pub async fn send(&mut self, packet: Packet) {
        let mut out = BytesMut::new();
        encode(&packet, self.version, &mut out).expect("encodes");
        self.send_bytes(&out).await;
    }

    /// Sends raw bytes.
    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
        self.stream.flush().await.expect("flush");
    }

    /// The next packet, or `None` when the broker closed the connection. Fails the test if
    /// nothing comes within the patience.
    pub async fn recv(&mut self) -> Option<Packet> {
        timeout(PATIENCE, self.recv_inner())
            .await
            .expect("a packet or close in time")
    }

    /// Like [`RawClient::recv`] but gives up quietly after `wait`.
    pub async fn try_recv(&mut self, wait: std::time::Duration) -> Result<Option<Packet>, ()> {
        timeout(wait, self.recv_inner()).await.map_err(|_| ())
    }

    async fn recv_inner(&mut self) -> Option<Packet> {
        loop {
            match decode(&mut self.read_buf, Some(self.version), u32::MAX) {
                Ok(Some(packet)) => return Some(packet),
                Ok(None) => {}
                Err(error) => panic!("broker sent an undecodable packet: {error}"),
            }
            match self.stream.read_buf(&mut self.read_buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Expects the broker to close the connection, after an optional DISCONNECT whose reason
    /// code is returned (`None`: closed without DISCONNECT).
    pub async fn expect_close(&mut self) -> Option<ReasonCode> {
        match self.recv().await {
            None => None,
            Some(Packet::Disconnect(d)) => {
                assert!(
                    self.recv().await.is_none(),
                    "connection closes after DISCONNECT"
                );
                Some(d.reason_code)
            }
            other => panic!("expected the connection to close, got {other:?}"),
        }
    }

    /// Subscribes to one filter and returns the SUBACK.
    pub async fn subscribe(&mut self, packet_id: u16, filter: &str, qos: QoS) -> SubAck {
        self.subscribe_with(
            packet_id,
            filter,
            SubscriptionOptions {
                qos,
                ..Default::default()
            },
            Properties::default(),
        )
        .await
    }

    /// Subscribes with options and properties.
    pub async fn subscribe_with(
        &mut self,
        packet_id: u16,
        filter: &str,
        options: SubscriptionOptions,
        properties: Properties,
    ) -> SubAck {
        self.send(Packet::Subscribe(Subscribe {
            packet_id,
            properties,
            subscriptions: vec![SubscriptionRequest {
                filter: filter.into(),
                options,
            }],
        }))
        .await;
        match self.recv().await {
            Some(Packet::SubAck(ack)) => ack,
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    /// Publishes and, for QoS 1/2, completes the exchange; returns the PUBACK/PUBREC reason.
    pub async fn publish(
        &mut self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        packet_id: u16,
    ) -> ReasonCode {
        self.publish_packet(Publish {
            qos,
            topic: topic.into(),
            packet_id: if qos == QoS::AtMostOnce { 0 } else { packet_id },
            payload: bytes::Bytes::copy_from_slice(payload),
            ..Publish::default()
        })
        .await
    }

    /// Sends a PUBLISH and completes its QoS exchange.
    pub async fn publish_packet(&mut self, publish: Publish) -> ReasonCode {
        let (qos, packet_id) = (publish.qos, publish.packet_id);
        self.send(Packet::Publish(publish)).await;
        match qos {
            QoS::AtMostOnce => ReasonCode::SUCCESS,
            QoS::AtLeastOnce => match self.recv().await {
                Some(Packet::PubAck(ack)) if ack.packet_id == packet_id => ack.reason_code,
                other => panic!("expected PUBACK {packet_id}, got {other:?}"),
            },
            QoS::ExactlyOnce => {
                let code = match self.recv().await {
                    Some(Packet::PubRec(ack)) if ack.packet_id == packet_id => ack.reason_code,
                    other => panic!("expected PUBREC {packet_id}, got {other:?}"),
                };
                self.send(Packet::PubRel(PubResponse::new(packet_id))).await;
                match self.recv().await {
                    Some(Packet::PubComp(ack)) if ack.packet_id == packet_id => code,
                    other => panic!("expected PUBCOMP {packet_id}, got {other:?}"),
                }
            }
        }
    }

    /// The next PUBLISH, acknowledged as its QoS requires (QoS 2 fully).
    pub async fn receive_publish(&mut self) -> Publish {
        let publish = match self.recv().await {
            Some(Packet::Publish(p)) => p,
            other => panic!("expected PUBLISH, got {other:?}"),
        };
        self.acknowledge(&publish).await;
        publish
    }

    /// Acknowledges a received PUBLISH.
    pub async fn acknowledge(&mut self, publish: &Publish) {
        match publish.qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => {
                self.send(Packet::PubAck(PubResponse::new(publish.packet_id)))
                    .await
            }
            QoS::ExactlyOnce => {
                self.send(Packet::PubRec(PubResponse::new(publish.packet_id)))
                    .await;
                match self.recv().await {
                    Some(Packet::PubRel(rel)) if rel.packet_id == publish.packet_id => {}
                    other => panic!("expected PUBREL, got {other:?}"),
                }
                self.send(Packet::PubComp(PubResponse::new(publish.packet_id)))
                    .await;
            }
        }
    }

    /// Sends DISCONNECT (normal) and waits for the close.
    pub async fn disconnect(mut self) {
        self.send(Packet::Disconnect(hookmq_codec::Disconnect::default()))
            .await;
        let _ = self.try_recv(PATIENCE).await;
    }

    /// Checks nothing arrives within `wait`.
    pub async fn expect_silence(&mut self, wait: std::time::Duration) {
        if let Ok(packet) = self.try_recv(wait).await {
            panic!("expected nothing, got {packet:?}");
        }
    }
}
