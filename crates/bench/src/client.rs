//! A lean MQTT client for load generation, on the project's codec: packets are encoded into
//! one buffer and written together, read buffers are decoded in place.

use std::{io, net::SocketAddr, time::Duration};

use bytes::{Bytes, BytesMut};
use hookmq_codec::{
    Connect, Packet, ProtocolVersion, PubResponse, Publish, QoS, ReasonCode, Subscribe,
    SubscriptionOptions, SubscriptionRequest, decode, encode,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// A connected client.
#[derive(Debug)]
pub struct Client {
    stream: TcpStream,
    read_buf: BytesMut,
    write_buf: BytesMut,
    version: ProtocolVersion,
}

fn invalid(what: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

impl Client {
    /// Connects with a clean session and waits for a successful CONNACK.
    ///
    /// # Errors
    /// I/O errors, or a refused CONNACK.
    pub async fn connect(
        address: SocketAddr,
        client_id: &str,
        version: ProtocolVersion,
        keep_alive: u16,
    ) -> io::Result<Self> {
        Self::connect_with(address, client_id, version, keep_alive, false).await
    }

    /// [`Client::connect`], with a session kept for an hour if `persistent` (clean session
    /// = false; v5: session expiry 3600 s).
    ///
    /// # Errors
    /// I/O errors, or a refused CONNACK.
    pub async fn connect_with(
        address: SocketAddr,
        client_id: &str,
        version: ProtocolVersion,
        keep_alive: u16,
        persistent: bool,
    ) -> io::Result<Self> {
        let stream = TcpStream::connect(address).await?;
        Self::handshake(stream, client_id, version, keep_alive, persistent).await
    }

    /// [`Client::connect`] from the local address `source` (loopback has a port range per
    /// source address: several let one machine open more than about 28,000 connections).
    ///
    /// # Errors
    /// I/O errors, or a refused CONNACK.
    pub async fn connect_from(
        address: SocketAddr,
        source: std::net::IpAddr,
        client_id: &str,
        version: ProtocolVersion,
        keep_alive: u16,
    ) -> io::Result<Self> {
        let socket = if source.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.bind(SocketAddr::new(source, 0))?;
        let stream = socket.connect(address).await?;
        Self::handshake(stream, client_id, version, keep_alive, false).await
    }

    async fn handshake(
        stream: TcpStream,
        client_id: &str,
        version: ProtocolVersion,
        keep_alive: u16,
        persistent: bool,
    ) -> io::Result<Self> {
        stream.set_nodelay(true)?;
        // Buffers grow when traffic comes: an idle connection keeps little (the idle
        // scenario holds tens of thousands).
        let mut client = Self {
            stream,
            read_buf: BytesMut::new(),
            write_buf: BytesMut::new(),
            version,
        };
        let mut connect = Connect {
            protocol: version,
            clean_start: !persistent,
            keep_alive,
            client_id: client_id.to_owned(),
            ..Connect::default()
        };
        if persistent && version == ProtocolVersion::V5 {
            connect.properties.session_expiry_interval = Some(3600);
        }
        client.queue(&Packet::Connect(Box::new(connect)))?;
        client.flush().await?;
        match client.next().await? {
            Packet::ConnAck(ack) if ack.reason_code == ReasonCode::SUCCESS => Ok(client),
            Packet::ConnAck(ack) => {
                Err(invalid(format!("connection refused: {}", ack.reason_code)))
            }
            other => Err(invalid(format!("expected CONNACK, got {}", other.name()))),
        }
    }

    /// Subscribes to `filter` and waits for the SUBACK.
    ///
    /// # Errors
    /// I/O errors or a refused subscription.
    pub async fn subscribe(&mut self, filter: &str, qos: QoS) -> io::Result<()> {
        let subscribe = Subscribe {
            packet_id: 1,
            subscriptions: vec![SubscriptionRequest {
                filter: filter.into(),
                options: SubscriptionOptions {
                    qos,
                    ..Default::default()
                },
            }],
            ..Default::default()
        };
        self.queue(&Packet::Subscribe(subscribe))?;
        self.flush().await?;
        loop {
            match self.next().await? {
                Packet::SubAck(ack) if ack.reason_codes.iter().all(|c| !c.is_error()) => {
                    return Ok(());
                }
                Packet::SubAck(_) => return Err(invalid("subscription refused")),
                _ => {}
            }
        }
    }

    /// Adds a PUBLISH to the write buffer.
    ///
    /// # Errors
    /// If the packet cannot be encoded.
    pub fn queue_publish(
        &mut self,
        topic: &str,
        qos: QoS,
        packet_id: u16,
        payload: Bytes,
        retain: bool,
    ) -> io::Result<()> {
        let publish = Publish {
            qos,
            retain,
            topic: topic.into(),
            packet_id,
            payload,
            ..Publish::default()
        };
        self.queue(&Packet::Publish(publish))
    }

    /// Adds a PUBACK to the write buffer.
    ///
    /// # Errors
    /// If the packet cannot be encoded.
    pub fn queue_puback(&mut self, packet_id: u16) -> io::Result<()> {
        self.queue(&Packet::PubAck(PubResponse::new(packet_id)))
    }

    fn queue(&mut self, packet: &Packet) -> io::Result<()> {
        encode(packet, self.version, &mut self.write_buf)
            .map(|_| ())
            .map_err(invalid)
    }

    /// Bytes waiting to be written.
    #[must_use]
    pub fn pending(&self) -> usize {
        self.write_buf.len()
    }

    /// Writes what is buffered.
    ///
    /// # Errors
    /// I/O errors.
    pub async fn flush(&mut self) -> io::Result<()> {
        if !self.write_buf.is_empty() {
            self.stream.write_all(&self.write_buf).await?;
            self.write_buf.clear();
        }
        Ok(())
    }

    /// Decodes every packet already read, then reads once more if there was none.
    ///
    /// # Errors
    /// I/O errors, a closed connection or an undecodable packet.
    pub async fn read_batch(&mut self, out: &mut Vec<Packet>) -> io::Result<()> {
        loop {
            while let Some(packet) =
                decode(&mut self.read_buf, Some(self.version), u32::MAX).map_err(invalid)?
            {
                out.push(packet);
            }
            if !out.is_empty() {
                return Ok(());
            }
            if self.read_buf.capacity() - self.read_buf.len() < 16 * 1024 {
                self.read_buf.reserve(64 * 1024);
            }
            if self.stream.read_buf(&mut self.read_buf).await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "broker closed the connection",
                ));
            }
        }
    }

    /// The next packet.
    ///
    /// # Errors
    /// As [`Client::read_batch`].
    pub async fn next(&mut self) -> io::Result<Packet> {
        loop {
            if let Some(packet) =
                decode(&mut self.read_buf, Some(self.version), u32::MAX).map_err(invalid)?
            {
                return Ok(packet);
            }
            self.read_buf.reserve(1024);
            if self.stream.read_buf(&mut self.read_buf).await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "broker closed the connection",
                ));
            }
        }
    }

    /// Sends DISCONNECT and closes.
    pub async fn disconnect(mut self) {
        if self
            .queue(&Packet::Disconnect(hookmq_codec::Disconnect::default()))
            .is_ok()
        {
            let _ = tokio::time::timeout(Duration::from_secs(1), self.flush()).await;
        }
        let _ = self.stream.shutdown().await;
    }
}
