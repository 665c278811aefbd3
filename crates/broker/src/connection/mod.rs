//! One task per connection: it owns the socket and, while connected, the session.
//!
//! The task reads packets and answers them, drains the session's mailbox into PUBLISH
//! packets (many per write), watches keep-alive, and obeys control requests (takeover, kick,
//! shutdown). When it ends it hands the session to the registry, to the connection that took
//! it over, or to the router's clean-up.

mod coalesce;
mod handshake;
mod inbound;
mod mount;
mod outbound;

use std::{collections::HashMap, sync::Arc, time::Duration};

use bytes::BytesMut;
use hookmq_codec::{
    ByteString, Disconnect, EncodeError, Packet, Properties, ProtocolVersion, ReasonCode, encode,
};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    sync::oneshot,
    time::{Instant, timeout},
};

use handshake::{Accepted, ClientLimits};
pub(crate) use handshake::{PeerCert, PendingWill, serve};

use crate::{
    hooks::{
        AuthzAction, AuthzResult, ClientInfo, Durable, EventData, EventKind, HookBatch,
        PacketProperties,
    },
    message::{Message, Publisher, now_ms},
    session::{
        SessionState,
        mailbox::Delivery,
        registry::{Control, ControlReceiver},
    },
    shared::Shared,
};

/// Deliveries turned into packets per pass, so reads and writes interleave fairly.
const DELIVERY_BATCH: usize = 256;
/// Read buffer growth: starts small (idle connections cost little memory), doubles while
/// reads fill it, up to the maximum.
const MIN_READ_CHUNK: usize = 1024;
const MAX_READ_CHUNK: usize = 64 * 1024;
/// A write buffer that grew past this is released after a flush.
const KEEP_WRITE_BUFFER: usize = 64 * 1024;
/// How long closing waits to write a last DISCONNECT.
const CLOSE_WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// After the server ends a connection (and sent its DISCONNECT), how long it reads and
/// discards what the client still sends before closing: closing a socket with unread data
/// resets it, and a reset can make the client lose the DISCONNECT it has not read yet.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// The kind of socket a client came over; it names the reason of an unannounced close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// Plain TCP.
    Tcp,
    /// TLS over TCP.
    Tls,
    /// WebSocket.
    Ws,
    /// WebSocket over TLS.
    Wss,
}

impl Transport {
    /// The listener's name in the configuration (`listeners.<name>`).
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Tls => "tls",
            Self::Ws => "ws",
            Self::Wss => "wss",
        }
    }

    /// EMQX's reason for a socket that closed without DISCONNECT.
    const fn closed_reason(self) -> &'static str {
        match self {
            Self::Tcp | Self::Ws => "tcp_closed",
            Self::Tls | Self::Wss => "ssl_closed",
        }
    }
}

/// The configuration of the listener a `transport` connection came through.
fn listener_config(shared: &Shared, transport: Transport) -> &crate::config::ListenerConfig {
    let listeners = &shared.config.listeners;
    match transport {
        Transport::Tcp => &listeners.tcp,
        Transport::Tls => &listeners.tls,
        Transport::Ws => &listeners.ws,
        Transport::Wss => &listeners.wss,
    }
}

/// Encodes `packet` at the end of `buf`.
pub(crate) fn write_packet(
    buf: &mut BytesMut,
    packet: &Packet,
    version: ProtocolVersion,
) -> Result<usize, EncodeError> {
    encode(packet, version, buf)
}

/// Why a connection ends.
#[derive(Debug)]
enum Close {
    /// The client sent DISCONNECT (reason 0x04 asks for the will).
    Client {
        publish_will: bool,
        properties: Box<Properties>,
    },
    /// The socket closed or failed without DISCONNECT.
    Transport,
    /// Nothing arrived within the keep-alive allowance.
    KeepAlive,
    /// The client broke the protocol; v5 clients get a DISCONNECT with this code.
    Violation(ReasonCode),
    /// Another connection took the session over.
    Takeover {
        discard: bool,
        reply: oneshot::Sender<Box<SessionState>>,
    },
    /// An administrator kicked the client.
    Kicked,
    /// The client connected to another node of the cluster: its session lives there now.
    Elsewhere,
    /// The broker is stopping.
    Shutdown,
}

impl Close {
    /// EMQX's `client.disconnected` reason.
    fn reason(&self, transport: Transport) -> &'static str {
        match self {
            Self::Client { .. } => "normal",
            Self::Transport => transport.closed_reason(),
            Self::KeepAlive => "keepalive_timeout",
            Self::Violation(code) => code.name(),
            Self::Takeover { discard: false, .. } => "takenover",
            Self::Takeover { discard: true, .. } => "discarded",
            Self::Kicked => "kicked",
            Self::Elsewhere => "takenover",
            Self::Shutdown => "server_shutting_down",
        }
    }

    /// The DISCONNECT a v5 client gets, if any.
    fn server_disconnect(&self) -> Option<ReasonCode> {
        match self {
            Self::Client { .. } | Self::Transport => None,
            Self::KeepAlive => Some(ReasonCode::KEEP_ALIVE_TIMEOUT),
            Self::Violation(code) => Some(*code),
            Self::Takeover { .. } => Some(ReasonCode::SESSION_TAKEN_OVER),
            Self::Kicked => Some(ReasonCode::ADMINISTRATIVE_ACTION),
            Self::Elsewhere => Some(ReasonCode::SESSION_TAKEN_OVER),
            Self::Shutdown => Some(ReasonCode::SERVER_SHUTTING_DOWN),
        }
    }
}

/// Authorization decisions remembered by this connection.
type AuthzCache = HashMap<(AuthzAction, ByteString), (AuthzResult, &'static str)>;

/// A connected client.
pub(crate) struct Connection<S> {
    stream: S,
    read_buf: BytesMut,
    write_buf: BytesMut,
    /// Packets in the write buffer.
    write_packets: usize,
    /// Answers to the client's publishes in the write buffer.
    write_answers: usize,
    transport: Transport,
    shared: Arc<Shared>,
    client: Arc<ClientInfo>,
    version: ProtocolVersion,
    state: Box<SessionState>,
    will: Option<Box<PendingWill>>,
    limits: ClientLimits,
    control: ControlReceiver,
    /// The id this connection claimed the session with.
    connection_id: u64,
    /// This client as the sender of its messages (shared by all of them).
    publisher: Arc<Publisher>,
    /// Topic aliases the client set up (inbound).
    aliases_in: HashMap<u16, ByteString>,
    /// Topic aliases the broker set up towards the client.
    aliases_out: HashMap<ByteString, u16>,
    authz_cache: AuthzCache,
    /// Reused buffer of deliveries taken from the mailbox.
    batch: Vec<Delivery>,
    /// Events of the current read or mailbox wake-up, handed to the hook before waiting.
    events: HookBatch,
    /// The mailbox holds deliveries that fit the window but not the last batch.
    more: bool,
    /// Small writes held while the connection streams (`[mqtt] write_coalesce_us`).
    coalesce: coalesce::Coalesce,
    /// A PUBACK or PUBREC waits in the write buffer (sinks may ask it to wait for the disk).
    acks_owed: bool,
    /// What the write buffer holds promises records just given to the broker's journal (a
    /// retained message, a QoS 1/2 message queued for a persistent session, a subscription
    /// of one, a QoS 2 packet id): with `sync = "before_ack"` it waits for the disk.
    sync_owed: bool,
    /// Written packets waiting for the disk (acknowledgements that promise what the
    /// journals are writing): the connection reads on meanwhile, so one sync covers what
    /// arrived during the previous one.
    held: Option<Held>,
    /// What `write_buf` waits for before it may be written, when it holds such promises.
    write_buf_waits: Option<Durable>,
    /// Bytes to make room for before the next read.
    read_chunk: usize,
    last_read: Instant,
    /// `mqtt.max_publish_rate`, if set: PUBLISHes this connection may still send now.
    publish_rate: Option<crate::limits::PublishRate>,
    /// While the rate is spent: when reading may go on (nothing is read until then).
    paused_until: Option<Instant>,
}

impl<S> Connection<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    fn new(
        stream: S,
        read_buf: BytesMut,
        transport: Transport,
        shared: Arc<Shared>,
        accepted: Accepted,
    ) -> Self {
        let coalesce = coalesce::Coalesce::new(
            Duration::from_micros(shared.config.mqtt.write_coalesce_us),
            KEEP_WRITE_BUFFER,
        );
        let Accepted {
            client,
            state,
            will,
            limits,
            control,
            connection_id,
            ..
        } = accepted;
        let rate = shared.config.mqtt.max_publish_rate;
        let publish_rate =
            (rate > 0).then(|| crate::limits::PublishRate::new(rate, Instant::now()));
        let publisher = Arc::new(Publisher {
            client_id: Arc::clone(&client.client_id),
            username: client.username.clone(),
            peer: Some(client.peer),
            session_id: state.id,
            protocol: Some(client.protocol),
            client_attrs: (!client.client_attrs.is_empty())
                .then(|| Arc::new(client.client_attrs.clone())),
        });
        let events = HookBatch::new(Arc::clone(&shared.hooks));
        Self {
            stream,
            read_buf,
            write_buf: BytesMut::new(),
            write_packets: 0,
            write_answers: 0,
            read_chunk: MIN_READ_CHUNK,
            transport,
            version: client.protocol,
            shared,
            client,
            state,
            will,
            limits,
            control,
            connection_id,
            publisher,
            aliases_in: HashMap::new(),
            aliases_out: HashMap::new(),
            authz_cache: HashMap::new(),
            batch: Vec::new(),
            events,
            more: false,
            coalesce,
            acks_owed: false,
            sync_owed: false,
            held: None,
            write_buf_waits: None,
            last_read: Instant::now(),
            publish_rate,
            paused_until: None,
        }
    }

    /// Serves the client, then closes.
    #[allow(clippy::manual_async_fn)] // on purpose, see below
    fn run(mut self) -> impl Future<Output = ()> {
        // An async block, not an `async fn`: the latter keeps its `self` argument twice in
        // its future (the argument and the moved-in local), for the connection's whole life.
        async move {
            let close = self.serve().await;
            // Boxed: closing runs once and its future holds another copy of the connection.
            Box::pin(self.finish(close)).await;
        }
    }

    async fn serve(&mut self) -> Close {
        self.resend_inflight();
        // Clients may pipeline packets right behind CONNECT: they are already buffered.
        if let Err(close) = self.handle_input() {
            return close;
        }
        let mailbox = Arc::clone(&self.state.mailbox);
        let allowance = (self.limits.keep_alive > 0).then(|| {
            Duration::from_secs_f32(
                f32::from(self.limits.keep_alive) * self.shared.config.mqtt.keepalive_multiplier,
            )
        });
        let timer = tokio::time::sleep(allowance.unwrap_or(Duration::from_secs(3600)));
        tokio::pin!(timer);
        loop {
            // While packets wait for the disk, deliveries wait in the mailbox (bounded)
            // rather than in the write buffer.
            if self.held.is_none() {
                self.drain_mailbox();
            }
            // What the last read and this wake-up emitted goes to the hook before any wait.
            self.events.flush();
            if let Some(wait) = self.durability_wait() {
                // Both: the earlier wait may be of another kind (the journal, the sinks).
                self.write_buf_waits = Some(match self.write_buf_waits.take() {
                    None => wait,
                    Some(earlier) => Box::pin(async move {
                        earlier.await;
                        wait.await;
                    }),
                });
            }
            if self.hold_writes() {
                // The other ready tasks run and the I/O driver is polled before this task
                // goes on (`yield_now` defers it past that poll); then what the client sent
                // meanwhile is read, and the loop takes what the mailbox got.
                tokio::task::yield_now().await;
                if let Err(close) = self.read_ready_now().await {
                    return close;
                }
                continue;
            }
            if self.held.is_none() && !self.write_buf.is_empty() {
                self.write_packets = 0;
                self.write_answers = 0;
                if let Some(ready) = self.write_buf_waits.take() {
                    let bytes = std::mem::take(&mut self.write_buf);
                    self.held = Some(Held { bytes, ready });
                } else if self.flush().await.is_err() {
                    return Close::Transport;
                }
            }
            let room = self.read_room();
            tokio::select! {
                biased;
                control = self.control.recv() => return match control {
                    Some(Control::Takeover { discard, reply }) => Close::Takeover { discard, reply },
                    Some(Control::Kick) => Close::Kicked,
                    Some(Control::Elsewhere) => Close::Elsewhere,
                    Some(Control::Shutdown) | None => Close::Shutdown,
                },
                // Paused at the publish rate: read nothing (TCP pushes back on the client)
                // until the rate allows, then go on with what is already buffered.
                () = tokio::time::sleep_until(self.paused_until.unwrap_or_else(Instant::now)),
                    if self.paused_until.is_some() => {
                    self.paused_until = None;
                    self.last_read = Instant::now();
                    if let Err(close) = self.handle_input() {
                        return close;
                    }
                }
                read = self.stream.read_buf(&mut self.read_buf), if self.paused_until.is_none() => match read {
                    Ok(0) | Err(_) => return Close::Transport,
                    Ok(n) => if let Err(close) = self.took_input(n, room) {
                        return close;
                    },
                },
                () = mailbox.notified(), if !self.more => {}
                () = std::future::ready(()), if self.more && self.held.is_none() => {}
                () = async { held_ready(&mut self.held).await }, if self.held.is_some() => {
                    if let Some(held) = self.held.take()
                        && self.write_held(held.bytes).await.is_err()
                    {
                        return Close::Transport;
                    }
                }
                () = &mut timer, if allowance.is_some() => {
                    let deadline = self.last_read + allowance.unwrap_or_default();
                    if deadline <= Instant::now() {
                        return Close::KeepAlive;
                    }
                    timer.as_mut().reset(deadline);
                }
            }
        }
    }

    /// Whether the write buffer waits a little longer for more to go with it (see
    /// `coalesce`); never while a write waits for the disk.
    fn hold_writes(&mut self) -> bool {
        if self.held.is_some() || self.write_buf.is_empty() {
            return false;
        }
        let pending = coalesce::Pending {
            bytes: self.write_buf.len(),
            packets: self.write_packets,
            answers: self.write_answers,
            waits_for_disk: self.write_buf_waits.is_some(),
            window_full: self.state.outbound.len() >= usize::from(self.limits.receive_maximum),
        };
        self.coalesce.hold(pending, std::time::Instant::now())
    }

    /// Makes room for the next read (a chunk more when less than half a chunk is left) and
    /// returns it.
    fn read_room(&mut self) -> usize {
        if self.read_buf.capacity() - self.read_buf.len() < self.read_chunk / 2 {
            self.read_buf.reserve(self.read_chunk);
        }
        self.read_buf.capacity() - self.read_buf.len()
    }

    /// `n` bytes were read into a buffer that had `room`: sizes the next read and handles
    /// the packets.
    fn took_input(&mut self, n: usize, room: usize) -> Result<(), Close> {
        self.read_chunk = if n >= room {
            (self.read_chunk * 2).min(MAX_READ_CHUNK)
        } else if n < self.read_chunk / 8 {
            (self.read_chunk / 2).max(MIN_READ_CHUNK)
        } else {
            self.read_chunk
        };
        self.last_read = Instant::now();
        self.shared
            .stats
            .bytes_received
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        self.handle_input()
    }

    /// Reads and handles what the socket holds now, without waiting (nothing while the
    /// publish rate pauses reading).
    async fn read_ready_now(&mut self) -> Result<(), Close> {
        if self.paused_until.is_some() {
            return Ok(());
        }
        let room = self.read_room();
        // Polled once: ready bytes are taken, and a socket with none leaves this task's
        // waker registered, as the loop's read would.
        let read = std::future::poll_fn(|cx| {
            let read = std::pin::pin!(self.stream.read_buf(&mut self.read_buf));
            match read.poll(cx) {
                std::task::Poll::Ready(result) => std::task::Poll::Ready(Some(result)),
                std::task::Poll::Pending => std::task::Poll::Ready(None),
            }
        })
        .await;
        match read {
            None => Ok(()),
            Some(Ok(0) | Err(_)) => Err(Close::Transport),
            Some(Ok(n)) => self.took_input(n, room),
        }
    }

    /// What the write buffer's new acknowledgements must wait for: the broker's journal
    /// (a retained message, a QoS 1/2 message for a persistent session, a subscription of
    /// one), and sinks that keep events on disk (they may ask the publisher to wait for them
    /// before its QoS 1/2 PUBLISHes are acknowledged: the disk only, never a receiver).
    fn durability_wait(&mut self) -> Option<Durable> {
        let journal = std::mem::take(&mut self.sync_owed)
            .then(|| self.shared.persist.as_ref().map(|log| log.synced()))
            .flatten();
        let acks_owed = std::mem::take(&mut self.acks_owed);
        let hooks = acks_owed.then(|| self.shared.hooks.durable()).flatten();
        let peers = acks_owed
            .then(|| self.shared.peers.get().and_then(|peers| peers.forwarded()))
            .flatten();
        let sinks: Option<Durable> = match (hooks, peers) {
            (None, None) => None,
            (Some(one), None) | (None, Some(one)) => Some(one),
            (Some(hooks), Some(peers)) => Some(Box::pin(async move {
                hooks.await;
                peers.await;
            })),
        };
        match (journal, sinks) {
            (None, None) => None,
            (Some(journal), None) => Some(Box::pin(journal)),
            (None, Some(sinks)) => Some(sinks),
            (Some(journal), Some(sinks)) => Some(Box::pin(async move {
                journal.await;
                sinks.await;
            })),
        }
    }

    /// Writes packets that waited for the disk.
    async fn write_held(&mut self, bytes: BytesMut) -> std::io::Result<()> {
        self.stream.write_all(&bytes).await?;
        self.stream.flush().await?;
        self.shared
            .stats
            .bytes_sent
            .fetch_add(bytes.len() as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Writes what is buffered.
    async fn flush(&mut self) -> std::io::Result<()> {
        self.stream.write_all(&self.write_buf).await?;
        self.stream.flush().await?;
        self.shared.stats.bytes_sent.fetch_add(
            self.write_buf.len() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        if self.write_buf.capacity() > KEEP_WRITE_BUFFER {
            self.write_buf = BytesMut::new();
        } else {
            self.write_buf.clear();
        }
        Ok(())
    }

    /// Appends a packet to the write buffer.
    fn send(&mut self, packet: &Packet) {
        self.write_packets += 1;
        if matches!(
            packet,
            Packet::PubAck(_) | Packet::PubRec(_) | Packet::PubComp(_)
        ) {
            self.write_answers += 1;
        }
        if let Err(error) = write_packet(&mut self.write_buf, packet, self.version) {
            tracing::warn!(client = %self.client.client_id, %error, packet = packet.name(), "could not encode");
        }
    }

    /// Ends the connection: last DISCONNECT, the will, the event, the session's next owner.
    async fn finish(mut self, close: Close) {
        let reason = close.reason(self.transport);
        if matches!(close, Close::Violation(_)) {
            self.shared
                .stats
                .protocol_errors
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        tracing::debug!(client = %self.client.client_id, reason, "connection closed");
        if let (true, Some(code)) = (self.version.is_v5(), close.server_disconnect()) {
            self.write_buf.clear();
            self.send(&Packet::Disconnect(Disconnect::new(code)));
            let _ = timeout(CLOSE_WRITE_TIMEOUT, self.flush()).await;
        }
        let _ = timeout(CLOSE_WRITE_TIMEOUT, self.stream.shutdown()).await;
        let linger = !matches!(close, Close::Client { .. } | Close::Transport);

        let (publish_will, disconnect_properties) = match &close {
            Close::Client {
                publish_will,
                properties,
            } => (*publish_will, PacketProperties::copy(properties)),
            Close::Takeover { discard: false, .. } => {
                // The session lives on: only a will without delay goes out now.
                (
                    self.will.as_ref().is_some_and(|w| w.delay == 0),
                    PacketProperties::default(),
                )
            }
            // The client is alive on another node, which has its will now if it sent one.
            Close::Elsewhere => (false, PacketProperties::default()),
            _ => (true, PacketProperties::default()),
        };
        self.events.emit_with(EventKind::ClientDisconnected, || {
            EventData::ClientDisconnected {
                client: Arc::clone(&self.client),
                reason,
                properties: disconnect_properties,
                disconnected_at: now_ms(),
            }
        });
        // A session taken over goes on at once: its queue is not cut to the offline bound.
        let taken_over = matches!(close, Close::Takeover { .. });
        let (dropped, subscriber) = self.state.mailbox.set_offline(!taken_over);
        if !dropped.is_empty() {
            self.shared
                .report_dropped(dropped, "queue_full", &subscriber, &mut self.events);
        }
        if matches!(close, Close::Elsewhere) {
            // Not kept here: the client goes on with the session on the other node.
            self.state.expiry_interval = 0;
        }
        let will = if publish_will { self.will.take() } else { None };
        let expiry = self.state.expiry_interval;
        if let Some(will) = will {
            self.publish_will(*will, expiry);
        }
        // Before the session is handed on: a taking-over connection's events come after.
        self.events.flush();

        let Self {
            mut stream,
            shared,
            client,
            state,
            connection_id,
            ..
        } = self;
        match close {
            Close::Takeover { reply, .. } => {
                if let Err(state) = reply.send(state) {
                    release(&shared, &client, connection_id, state);
                }
            }
            _ => release(&shared, &client, connection_id, state),
        }
        if linger {
            // The session is handed on already; only the socket waits.
            let _ = timeout(CLOSE_LINGER, discard_until_closed(&mut stream)).await;
        }
    }

    /// Publishes the will now, or after its delay (cancelled if the session resumes first).
    fn publish_will(&mut self, pending: PendingWill, expiry: u32) {
        let delay = pending.delay.min(expiry);
        if delay > 0 && self.shared.journal_of(&self.state).is_some() {
            // Written with the session's record when it goes offline.
            self.state.stored.will = Some(Box::new(pending.clone()));
        }
        let message =
            Arc::new(pending.into_message(self.shared.ids.next_id(), Arc::clone(&self.publisher)));
        if delay == 0 {
            self.shared.publish(message, &mut self.events);
            return;
        }
        let handle = self.shared.tasks.spawn(publish_will_after(
            Arc::clone(&self.shared),
            message,
            Duration::from_secs(delay.into()),
            Arc::clone(&self.client.client_id),
            self.state.id,
            self.state.stored.will.is_some(),
        ));
        self.state.pending_will = Some(handle.abort_handle());
    }
}

/// Publishes a will once its delay has passed (unless the session resumed first: the task
/// is aborted), then takes it out of the session's record. A will `kept` in the journal is
/// left there when the broker stops first, for the next start.
pub(crate) async fn publish_will_after(
    shared: Arc<Shared>,
    message: Arc<Message>,
    delay: Duration,
    client_id: Arc<str>,
    session_id: u64,
    kept: bool,
) {
    tokio::select! {
        () = tokio::time::sleep(delay) => {}
        () = shared.shutdown.cancelled(), if kept => return,
    }
    shared.publish(message, &mut HookBatch::new(Arc::clone(&shared.hooks)));
    shared
        .registry
        .update_offline(&client_id, session_id, |state, client| {
            state.stored.will = None;
            if let Some(log) = shared.journal_of(state) {
                log.save_session(state, client, None);
            }
        });
}

/// Reads and drops what the client sends until it closes its side.
async fn discard_until_closed<S: AsyncRead + Unpin>(stream: &mut S) {
    let mut sink = [0u8; 4096];
    while let Ok(1..) = stream.read(&mut sink).await {}
}

/// Packets written once the disk has what they promise.
struct Held {
    bytes: BytesMut,
    ready: Durable,
}

/// Resolves when the held packets may be written.
async fn held_ready(held: &mut Option<Held>) {
    match held {
        Some(held) => held.ready.as_mut().await,
        None => std::future::pending().await,
    }
}

/// Parks the session offline or ends it.
fn release(
    shared: &Arc<Shared>,
    client: &Arc<ClientInfo>,
    connection_id: u64,
    mut state: Box<SessionState>,
) {
    let expiry = state.expiry_interval;
    if expiry > 0
        && let Some(log) = shared.journal_of(&state)
    {
        state.stored.offline_since = Some(now_ms());
        log.save_session(&mut state, client, None);
    }
    let session_id = state.id;
    let keep = (expiry > 0).then(|| {
        (expiry != u32::MAX).then(|| std::time::Instant::now() + Duration::from_secs(expiry.into()))
    });
    let expires_at = keep.flatten();
    match shared.registry.release(client, connection_id, state, keep) {
        Ok(None) => {
            if let Some(at) = expires_at {
                shared.schedule_expiry(Arc::clone(&client.client_id), session_id, at);
            }
        }
        Ok(Some(state)) | Err(state) => shared.end_session(&state),
    }
}
