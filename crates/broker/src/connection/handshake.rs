//! From accepted socket to connected session: read CONNECT (within the connect timeout),
//! validate it, authenticate, take the session over, answer CONNACK.

use std::{
    net::SocketAddr,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use bytes::BytesMut;
use hookmq_codec::{
    ConnAck, Connect, DecodeError, Packet, Properties, ProtocolVersion, ReasonCode, decode, topic,
};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    sync::oneshot,
    time::timeout,
};

use super::{Connection, Transport, write_packet};
use crate::{
    hooks::{ClientInfo, EventData, EventKind},
    message::{Message, MessageId, MessageParts, PacketProperties, Publisher, now_ms},
    session::{
        SessionState,
        registry::{Claimed, Control, ControlReceiver, control_slot},
    },
    shared::Shared,
};

/// How long a new connection waits for the old one to hand its session over.
const TAKEOVER_TIMEOUT: Duration = Duration::from_secs(5);

/// What a verified client certificate says.
#[derive(Debug, Default)]
pub(crate) struct PeerCert {
    /// The user name it gives (`listeners.*.peer_cert_as_username`): it authenticates the
    /// client, no password asked.
    pub(crate) login: Option<Arc<str>>,
    /// Its subject's common name (`cn` in `client_attrs_init`).
    pub(crate) cn: Option<Arc<str>>,
    /// Its subject (`dn`).
    pub(crate) dn: Option<Arc<str>>,
}

/// Serves one accepted connection until it closes. `cert`: what a verified client
/// certificate says.
pub(crate) async fn serve<S>(
    stream: S,
    peer: SocketAddr,
    local: SocketAddr,
    transport: Transport,
    cert: Option<Box<PeerCert>>,
    shared: Arc<Shared>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    // The handshake (CONNECT, authentication, takeover, CONNACK) runs once and its future is
    // large: boxed, and freed when it ends, so the state an idle connection keeps is only
    // the connection loop's.
    let Some((stream, read_buf, accepted)) =
        Box::pin(handshake(stream, peer, local, transport, cert, &shared)).await
    else {
        return;
    };
    Connection::new(stream, read_buf, transport, shared, accepted)
        .run()
        .await;
}

/// Reads CONNECT, accepts it and answers CONNACK. `None`: the connection ends here.
async fn handshake<S>(
    mut stream: S,
    peer: SocketAddr,
    local: SocketAddr,
    transport: Transport,
    cert: Option<Box<PeerCert>>,
    shared: &Arc<Shared>,
) -> Option<(S, BytesMut, Accepted)>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut read_buf = BytesMut::with_capacity(512);
    let config = &shared.config.mqtt;
    let first = tokio::select! {
        read = timeout(config.connect_timeout, read_connect(&mut stream, &mut read_buf, config.max_packet_size)) => read,
        () = shared.shutdown.cancelled() => return None,
    };
    let connect = match first {
        Ok(Ok(Some(connect))) => connect,
        Ok(Ok(None)) => return None,
        Ok(Err((error, level))) => {
            shared.stats.protocol_errors.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, %error, "bad CONNECT");
            refuse_undecodable(&mut stream, level, error).await;
            return None;
        }
        Err(_) => {
            tracing::debug!(%peer, "no CONNECT within the connect timeout");
            return None;
        }
    };
    let mut connect = *connect;
    // A verified certificate names the client: its name is the user name, and it
    // authenticates the client (no password is asked for).
    if let Some(name) = cert.as_ref().and_then(|c| c.login.as_ref()) {
        connect.username = Some(name.as_ref().into());
    }
    let cert = cert.unwrap_or_default();
    let listener = super::listener_config(shared, transport);
    let mut accepted = accept(shared, connect, (peer, local), listener, &cert, &mut stream).await?;
    let client = Arc::clone(&accepted.client);
    let hooks = &shared.hooks;
    hooks.emit_with(EventKind::ClientConnected, || EventData::ClientConnected {
        client: Arc::clone(&client),
    });
    if let Some(peers) = shared.peers.get() {
        peers.connected(&client.client_id);
    }
    let mut write_buf = BytesMut::with_capacity(64);
    let packet = Packet::ConnAck(ConnAck {
        session_present: accepted.session_present,
        reason_code: ReasonCode::SUCCESS,
        properties: std::mem::take(&mut accepted.connack),
    });
    let version = client.protocol;
    if write_packet(&mut write_buf, &packet, version).is_err()
        || stream.write_all(&write_buf).await.is_err()
        || stream.flush().await.is_err()
    {
        // The client is gone before it could hear CONNACK: end like any other close.
        tracing::debug!(%peer, "could not write CONNACK");
    }
    hooks.emit_with(EventKind::ClientConnack, || EventData::ClientConnack {
        client: Arc::clone(&client),
        reason_code: ReasonCode::SUCCESS,
    });
    Some((stream, read_buf, accepted))
}

/// Reads until a whole first packet is decoded. `Ok(None)`: the client closed first. An
/// error comes with the protocol level the bytes showed, if any.
async fn read_connect<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    max_packet_size: u32,
) -> Result<Option<Box<Connect>>, (DecodeError, Option<u8>)> {
    loop {
        // Peeked before decoding: a failed decode may consume the packet.
        let level = peek_protocol_level(buf);
        match decode(buf, None, max_packet_size).map_err(|e| (e, level))? {
            Some(Packet::Connect(connect)) => return Ok(Some(connect)),
            Some(_) => return Err((DecodeError::FirstPacketNotConnect, level)),
            None => {}
        }
        buf.reserve(512);
        match stream.read_buf(buf).await {
            Ok(0) | Err(_) => return Ok(None),
            Ok(_) => {}
        }
    }
}

/// The protocol level of a CONNECT that could not be decoded, when the bytes show it.
fn peek_protocol_level(buf: &[u8]) -> Option<u8> {
    // Fixed header: type byte + 1..=4 length bytes; then name length (2) + name + level.
    let header = 1 + buf.iter().skip(1).take(4).position(|b| b & 0x80 == 0)? + 1;
    let name_len = usize::from(u16::from_be_bytes([
        *buf.get(header)?,
        *buf.get(header + 1)?,
    ]));
    buf.get(header + 2 + name_len).copied()
}

/// Answers a CONNECT that failed to decode, where the protocol allows an answer.
async fn refuse_undecodable<S: AsyncWrite + Unpin>(
    stream: &mut S,
    level: Option<u8>,
    error: DecodeError,
) {
    let version = match level {
        Some(5) => ProtocolVersion::V5,
        Some(3 | 4) if error == DecodeError::FirstPacketNotConnect => return,
        Some(3) => ProtocolVersion::V3_1,
        // [MQTT-3.1.2-2]: an unsupported level is answered in the 3.1.1 format (return code 1).
        _ if matches!(error, DecodeError::UnsupportedProtocolVersion(_)) => ProtocolVersion::V3_1_1,
        _ => return,
    };
    if !version.is_v5() && !matches!(error, DecodeError::UnsupportedProtocolVersion(_)) {
        return; // v3 has no CONNACK code for malformed packets: just close.
    }
    let mut out = BytesMut::new();
    let packet = Packet::ConnAck(ConnAck {
        reason_code: error.reason_code(),
        ..ConnAck::default()
    });
    if write_packet(&mut out, &packet, version).is_ok() {
        let _ = stream.write_all(&out).await;
        let _ = stream.flush().await;
    }
}

/// What the client asked for that shapes the connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientLimits {
    /// Most QoS 1/2 messages in flight towards the client.
    pub(crate) receive_maximum: u16,
    /// Largest packet the client accepts.
    pub(crate) max_packet_size: u32,
    /// Highest topic alias the client accepts from the broker.
    pub(crate) topic_alias_maximum: u16,
    /// Keep-alive in force (seconds, 0 = none).
    pub(crate) keep_alive: u16,
}

/// The will message with its delay.
#[derive(Debug, Clone)]
pub(crate) struct PendingWill {
    pub(crate) will: hookmq_codec::Will,
    pub(crate) delay: u32,
}

impl PendingWill {
    /// The will as the message it publishes (the delay is not forwarded).
    pub(crate) fn into_message(self, id: MessageId, publisher: Arc<Publisher>) -> Message {
        let will = self.will;
        let mut properties = will.properties;
        properties.will_delay_interval = None;
        let parts = MessageParts {
            topic: will.topic,
            payload: will.payload,
            qos: will.qos,
            retain: will.retain,
            dup: false,
            properties,
        };
        Message::received(id, parts, publisher)
    }
}

/// A connection that passed CONNECT, with its session.
pub(super) struct Accepted {
    pub(super) client: Arc<ClientInfo>,
    pub(super) state: Box<SessionState>,
    /// Boxed: most clients have no will, and the connection keeps this for its whole life.
    pub(super) will: Option<Box<PendingWill>>,
    pub(super) limits: ClientLimits,
    pub(super) control: ControlReceiver,
    pub(super) connection_id: u64,
    pub(super) session_present: bool,
    pub(super) connack: Properties,
}

/// Validates, authenticates and attaches the session; on refusal sends CONNACK and returns
/// `None`.
async fn accept<S: AsyncWrite + Unpin>(
    shared: &Arc<Shared>,
    mut connect: Connect,
    (peer, local): (SocketAddr, SocketAddr),
    listener: &crate::config::ListenerConfig,
    cert: &PeerCert,
    stream: &mut S,
) -> Option<Accepted> {
    let config = &shared.config.mqtt;
    let version = connect.protocol;
    let props = &connect.properties;
    let mut connack = Properties::default();

    let mut assigned = false;
    if connect.client_id.is_empty() {
        let allowed = match version {
            ProtocolVersion::V3_1 => false,
            ProtocolVersion::V3_1_1 => connect.clean_start, // [MQTT-3.1.3-8]
            ProtocolVersion::V5 => true,
        };
        if allowed {
            connect.client_id = format!("hookmq-{:016x}", rand::random::<u64>());
            assigned = true;
        }
    }
    let expiry_interval = if version.is_v5() {
        let max = u32::try_from(config.max_session_expiry_interval.as_secs()).unwrap_or(u32::MAX);
        let asked = props.session_expiry_interval.unwrap_or(0);
        if asked > max {
            connack.session_expiry_interval = Some(max);
        }
        asked.min(max)
    } else if connect.clean_start {
        0
    } else {
        u32::try_from(config.session_expiry_interval.as_secs()).unwrap_or(u32::MAX)
    };
    let keep_alive = match (version.is_v5(), config.server_keep_alive) {
        (true, Some(server)) => {
            let secs = u16::try_from(server.as_secs()).unwrap_or(u16::MAX);
            connack.server_keep_alive = Some(secs);
            secs
        }
        _ => connect.keep_alive,
    };
    let receive_maximum = props
        .receive_maximum
        .unwrap_or(config.max_inflight)
        .min(config.max_inflight);
    let client = Arc::new(ClientInfo {
        client_id: connect.client_id.as_str().into(),
        username: connect.username.as_deref().map(Into::into),
        peer,
        local,
        protocol: version,
        keep_alive,
        clean_start: connect.clean_start,
        expiry_interval,
        receive_maximum,
        connect_properties: PacketProperties::copy(&connect.properties),
        connected_at: now_ms(),
        session_id: shared.next_session_id(),
        is_superuser: false,
        client_attrs: Vec::new(),
        mountpoint: None,
    });

    let refusal =
        if connect.client_id.is_empty() || connect.client_id.len() > config.max_clientid_len {
            Some(ReasonCode::CLIENT_IDENTIFIER_NOT_VALID)
        } else if connect.properties.authentication_method.is_some() {
            Some(ReasonCode::BAD_AUTHENTICATION_METHOD)
        } else if let Some(will) = &connect.will {
            if !topic::is_valid_name(&will.topic)
                || super::inbound::too_many_levels(&will.topic, config.max_topic_levels)
            {
                Some(ReasonCode::TOPIC_NAME_INVALID)
            } else if will.qos > shared.max_qos() {
                Some(ReasonCode::QOS_NOT_SUPPORTED)
            } else if will.retain && !config.retain_available {
                Some(ReasonCode::RETAIN_NOT_SUPPORTED)
            } else {
                None
            }
        } else {
            None
        };
    if let Some(reason_code) = refusal {
        refuse(shared, stream, &client, reason_code).await;
        return None;
    }

    let client = identify(shared, &connect, (peer, listener, cert), client, stream).await?;

    if connect.clean_start {
        // A session handed from here and not yet had elsewhere is discarded with the rest.
        crate::session::transfer::kept(shared, &client.client_id);
    } else {
        // Handed from here to a node that died before it had it: resumed here.
        crate::session::transfer::take_back_if_lost(shared, &client.client_id).await;
    }
    let (control_tx, control) = control_slot();
    let connection_id = shared.next_connection_id();
    let previous = match shared.registry.claim(&client, connection_id, control_tx) {
        // Perhaps on another node of the cluster: it hands the session over.
        Claimed::Fresh => match (connect.clean_start, shared.peers.get()) {
            (false, Some(peers)) => {
                let fetched = peers.fetch_session(&client.client_id).await;
                let state = fetched
                    .as_deref()
                    .and_then(|bytes| crate::session::transfer::rebuild(shared, &client, bytes));
                // Settled even if the session did not read: the old node stops holding.
                if fetched.is_some()
                    && let Some(held) = peers.settle_session(&client.client_id).await
                    && let Some(state) = &state
                {
                    crate::session::transfer::add_held(state, &held);
                }
                state
            }
            _ => None,
        },
        Claimed::Offline(state) => Some(state),
        Claimed::Online(old) => {
            let (reply, answer) = oneshot::channel();
            let request = Control::Takeover {
                discard: connect.clean_start,
                reply,
            };
            if old.try_send(request).is_ok() {
                timeout(TAKEOVER_TIMEOUT, answer)
                    .await
                    .ok()
                    .and_then(Result::ok)
            } else {
                None
            }
        }
    };
    let (mut state, session_present) = match previous {
        Some(state) if !connect.clean_start => (state, true),
        other => {
            if let Some(old) = other {
                shared.end_session(&old);
            }
            let state = SessionState::new(client.session_id, shared.new_mailbox(&client));
            (Box::new(state), false)
        }
    };
    if let Some(will) = state.pending_will.take() {
        will.abort();
    }
    state.expiry_interval = expiry_interval;
    // A resumed session keeps its number; events name the session through the client.
    let client = if state.id == client.session_id {
        client
    } else {
        Arc::new(ClientInfo {
            session_id: state.id,
            ..(*client).clone()
        })
    };
    state.mailbox.set_online(Arc::clone(&client));
    shared.registry.update_client(&client, connection_id);

    if version.is_v5() {
        if config.receive_maximum != u16::MAX {
            connack.receive_maximum = Some(config.receive_maximum);
        }
        if config.max_qos < 2 {
            connack.maximum_qos = Some(config.max_qos);
        }
        if !config.retain_available {
            connack.retain_available = Some(0);
        }
        connack.maximum_packet_size = Some(config.max_packet_size);
        if assigned {
            connack.assigned_client_identifier = Some(connect.client_id.clone());
        }
        if config.max_topic_alias > 0 {
            connack.topic_alias_maximum = Some(config.max_topic_alias);
        }
        if !config.wildcard_subscription {
            connack.wildcard_subscription_available = Some(0);
        }
        if !config.shared_subscription {
            connack.shared_subscription_available = Some(0);
        }
        if props.request_response_information == Some(1) && !config.response_information.is_empty()
        {
            connack.response_information = Some(
                config
                    .response_information
                    .replace("${clientid}", &connect.client_id),
            );
        }
    }
    let limits = ClientLimits {
        receive_maximum,
        max_packet_size: props.maximum_packet_size.unwrap_or(u32::MAX),
        topic_alias_maximum: props.topic_alias_maximum.unwrap_or(0),
        keep_alive,
    };
    let will = connect.will.take().map(|mut will| {
        if let Some(mountpoint) = &client.mountpoint {
            will.topic = super::mount::topic(mountpoint, &will.topic);
        }
        Box::new(PendingWill {
            delay: will.properties.will_delay_interval.unwrap_or(0),
            will,
        })
    });
    if let Some(log) = &shared.persist {
        if expiry_interval > 0 {
            // Kept from now on; CONNACK promises it only once it is on disk.
            state.stored.offline_since = None;
            state.stored.will = None;
            log.keep(&mut state, &client, will.as_deref());
            log.synced().await;
        } else if state.stored.record != 0 {
            // Resumed without expiry: the session now ends with this connection.
            log.acknowledge([std::mem::take(&mut state.stored.record)]);
            state.mailbox.set_durable(false);
        }
    }
    Some(Accepted {
        client,
        state,
        will,
        limits,
        control,
        connection_id,
        session_present,
        connack,
    })
}

/// Checks the user name and password.
async fn authenticate(
    shared: &Arc<Shared>,
    username: Option<&str>,
    password: Option<&[u8]>,
) -> (ReasonCode, bool) {
    let auth = &shared.config.auth;
    match (username, &shared.access.passwords) {
        (None, _) if auth.allow_anonymous => (ReasonCode::SUCCESS, false),
        (None, _) => (ReasonCode::NOT_AUTHORIZED, false),
        (Some(_), None) => (ReasonCode::SUCCESS, false),
        (Some(username), Some(passwords)) => {
            let Some(password) = password else {
                return (ReasonCode::BAD_USERNAME_OR_PASSWORD, false);
            };
            let Ok(_permit) = shared.password_checks.acquire().await else {
                return (ReasonCode::SERVER_UNAVAILABLE, false);
            };
            let (passwords, username, password) = (
                Arc::clone(passwords),
                username.to_owned(),
                password.to_vec(),
            );
            // Password hashing takes tens of milliseconds by design: keep it off the
            // threads that serve sockets.
            let verified = tokio::task::spawn_blocking(move || {
                passwords
                    .verify(&username, &password)
                    .then(|| passwords.is_superuser(&username))
            })
            .await
            .unwrap_or(None);
            match verified {
                Some(superuser) => (ReasonCode::SUCCESS, superuser),
                None => (ReasonCode::BAD_USERNAME_OR_PASSWORD, false),
            }
        }
    }
}

/// Authenticates the client (reported as `client.check_authn_complete`) and completes what
/// events say of it: `is_superuser`, its attributes, its listener's mountpoint. `None`:
/// refused, with its CONNACK sent.
async fn identify<S: AsyncWrite + Unpin>(
    shared: &Arc<Shared>,
    connect: &Connect,
    (peer, listener, cert): (SocketAddr, &crate::config::ListenerConfig, &PeerCert),
    client: Arc<ClientInfo>,
    stream: &mut S,
) -> Option<Arc<ClientInfo>> {
    let (authn, is_superuser) = if cert.login.is_some() {
        (ReasonCode::SUCCESS, false)
    } else {
        authenticate(
            shared,
            connect.username.as_deref(),
            connect.password.as_deref(),
        )
        .await
    };
    let client_attrs = client_attrs(shared, connect, peer, cert);
    let mut client = if is_superuser || !client_attrs.is_empty() {
        Arc::new(ClientInfo {
            is_superuser,
            client_attrs,
            ..(*client).clone()
        })
    } else {
        client
    };
    shared.hooks.emit_with(EventKind::CheckAuthnComplete, || {
        EventData::CheckAuthnComplete {
            client: Arc::clone(&client),
            reason_code: authn,
            is_anonymous: connect.username.is_none(),
        }
    });
    if authn != ReasonCode::SUCCESS {
        refuse(shared, stream, &client, authn).await;
        return None;
    }
    match super::mount::resolve(
        &listener.mountpoint,
        &connect.client_id,
        connect.username.as_deref(),
        &client.client_attrs,
    ) {
        Ok(None) => {}
        Ok(mountpoint) => {
            client = Arc::new(ClientInfo {
                mountpoint,
                ..(*client).clone()
            });
        }
        Err(why) => {
            tracing::debug!(%peer, client = %connect.client_id, why, "refused: its mountpoint");
            refuse(shared, stream, &client, ReasonCode::NOT_AUTHORIZED).await;
            return None;
        }
    }
    Some(client)
}

/// The attributes `[mqtt] client_attrs_init` gives this client, in name order.
fn client_attrs(
    shared: &Shared,
    connect: &Connect,
    peer: SocketAddr,
    cert: &PeerCert,
) -> crate::hooks::ClientAttrs {
    if shared.client_attrs.is_empty() {
        return Vec::new();
    }
    let sources = crate::client_attrs::Sources {
        clientid: &connect.client_id,
        username: connect.username.as_deref(),
        cn: cert.cn.as_deref(),
        dn: cert.dn.as_deref(),
        peerhost: peer.ip().to_string(),
        user_properties: &connect.properties.user_properties,
    };
    let mut attrs: crate::hooks::ClientAttrs = shared
        .client_attrs
        .iter()
        .filter_map(|(name, expression)| {
            expression
                .evaluate(&sources)
                .map(|value| (Arc::clone(name), Arc::from(value)))
        })
        .collect();
    attrs.sort_by(|a, b| a.0.cmp(&b.0));
    // A later rule for the same attribute wins, as in EMQX.
    attrs.dedup_by(|later, earlier| {
        let same = later.0 == earlier.0;
        if same {
            std::mem::swap(later, earlier);
        }
        same
    });
    attrs
}

/// Sends a failed CONNACK and reports it.
async fn refuse<S: AsyncWrite + Unpin>(
    shared: &Shared,
    stream: &mut S,
    client: &Arc<ClientInfo>,
    reason_code: ReasonCode,
) {
    shared
        .stats
        .connects_refused
        .fetch_add(1, Ordering::Relaxed);
    tracing::debug!(client = %client.client_id, peer = %client.peer, reason = reason_code.name(), "CONNECT refused");
    let mut out = BytesMut::new();
    let packet = Packet::ConnAck(ConnAck {
        reason_code,
        ..ConnAck::default()
    });
    if write_packet(&mut out, &packet, client.protocol).is_ok() {
        let _ = stream.write_all(&out).await;
        let _ = stream.flush().await;
    }
    shared
        .hooks
        .emit_with(EventKind::ClientConnack, || EventData::ClientConnack {
            client: Arc::clone(client),
            reason_code,
        });
}

#[cfg(test)]
mod tests {
    use super::peek_protocol_level;

    #[test]
    fn peeks_level() {
        assert_eq!(peek_protocol_level(b"\x10\x10\x00\x04MQTT\x05"), Some(5));
        assert_eq!(peek_protocol_level(b"\x10\x10\x00\x06MQIsdp\x03"), Some(3));
        assert_eq!(peek_protocol_level(b"\x10"), None);
    }
}
