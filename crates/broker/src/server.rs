//! Listeners: bind, accept, cap connections, hand each socket to its own task; and shutdown.

use std::{
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use tokio::{
    net::{TcpListener, TcpStream},
    sync::Semaphore,
    time::timeout,
};
use tokio_rustls::TlsAcceptor;

use crate::{
    config::{ListenerConfig, PeerCertField},
    connection::{PeerCert, Transport, serve},
    error::BrokerError,
    shared::Shared,
    transport::{tls, ws},
};

/// A bound listener, ready to accept.
pub(crate) struct Bound {
    pub(crate) transport: Transport,
    pub(crate) listener: TcpListener,
    pub(crate) address: SocketAddr,
    tls: Option<Secure>,
    /// The listener's certificate, to reload on `SIGHUP`.
    pub(crate) certificates: Option<Arc<tls::Certificates>>,
    path: String,
}

/// How a TLS listener's connections start.
#[derive(Clone)]
struct Secure {
    acceptor: TlsAcceptor,
    /// Which name of a verified client certificate becomes the user name.
    peer_cert: Option<PeerCertField>,
}

impl std::fmt::Debug for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bound")
            .field("transport", &self.transport)
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

/// Binds `config` as a `transport` listener called `name`.
pub(crate) async fn bind(
    name: &str,
    transport: Transport,
    config: &ListenerConfig,
) -> Result<Bound, BrokerError> {
    let tls = match (transport, &config.certfile, &config.keyfile) {
        (Transport::Tls | Transport::Wss, Some(cert), Some(key)) => {
            Some(tls::acceptor(name, config, cert, key)?)
        }
        (Transport::Tls | Transport::Wss, _, _) => {
            return Err(BrokerError::Tls {
                listener: name.to_owned(),
                reason: "certfile and keyfile are required".into(),
            });
        }
        _ => None,
    };
    let listener = TcpListener::bind(config.bind)
        .await
        .map_err(|source| BrokerError::Bind {
            listener: name.to_owned(),
            address: config.bind,
            source,
        })?;
    let address = listener.local_addr().map_err(|source| BrokerError::Bind {
        listener: name.to_owned(),
        address: config.bind,
        source,
    })?;
    let (tls, certificates) = match tls {
        Some(tls::Tls {
            acceptor,
            certificates,
        }) => (
            Some(Secure {
                acceptor,
                peer_cert: config.peer_cert_as_username,
            }),
            Some(certificates),
        ),
        None => (None, None),
    };
    Ok(Bound {
        transport,
        listener,
        address,
        tls,
        certificates,
        path: config.path.clone(),
    })
}

/// Decrements the connection gauge when a connection task ends.
struct Gauge(Arc<Shared>);

impl Drop for Gauge {
    fn drop(&mut self) {
        self.0.stats.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Accepts connections until shutdown. `limit` is shared by all listeners.
pub(crate) async fn accept_loop(bound: Bound, shared: Arc<Shared>, limit: Arc<Semaphore>) {
    let Bound {
        transport,
        listener,
        address,
        tls,
        path,
        ..
    } = bound;
    let path: Arc<str> = path.into();
    tracing::info!(%address, ?transport, "listening");
    let mut alarm = crate::alarms::ListenerAlarm::new(transport.name());
    loop {
        let clears_at = alarm.clears_at();
        let clear = async {
            match clears_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shared.shutdown.cancelled() => break,
            () = clear => {
                alarm.clear(&shared);
                continue;
            }
        };
        let (socket, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                alarm.failed(&shared, address, &error);
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(%address, %error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let per_address = shared.config.mqtt.max_connections_per_address;
        let address_slot = if per_address == 0 {
            None
        } else if let Some(slot) = shared.per_address.admit(peer.ip(), per_address) {
            Some(slot)
        } else {
            shared
                .stats
                .connections_refused_per_address
                .fetch_add(1, Ordering::Relaxed);
            // One line per refusal would flood the log: `summary` reports them.
            tracing::debug!(%peer, "connections per address limit reached, closing");
            continue;
        };
        let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
            shared
                .stats
                .connections_refused
                .fetch_add(1, Ordering::Relaxed);
            // One line per refusal would flood the log: `summarise` reports them.
            tracing::debug!(%peer, "connection limit reached, closing");
            continue;
        };
        let _ = socket.set_nodelay(true);
        let local = socket.local_addr().unwrap_or(address);
        shared
            .stats
            .connections_accepted
            .fetch_add(1, Ordering::Relaxed);
        shared.stats.connections.fetch_add(1, Ordering::Relaxed);
        let gauge = Gauge(Arc::clone(&shared));
        let tasks = shared.tasks.clone();
        let shared = Arc::clone(&shared);
        // A task's future lives as long as its connection: plain TCP (the common case) runs
        // `serve` directly, the others go through `handle`, which boxes what it awaits.
        if transport == Transport::Tcp {
            tasks.spawn(async move {
                let _places = (permit, address_slot);
                let _gauge = gauge;
                serve(socket, peer, local, transport, None, shared).await;
            });
        } else {
            let (tls, path) = (tls.clone(), Arc::clone(&path));
            tasks.spawn(async move {
                let _places = (permit, address_slot);
                let _gauge = gauge;
                handle(socket, peer, local, transport, tls, &path, shared).await;
            });
        }
    }
}

/// Runs the transport's handshake (WebSocket, TLS), then serves MQTT.
async fn handle(
    socket: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    transport: Transport,
    tls: Option<Secure>,
    path: &str,
    shared: Arc<Shared>,
) {
    // Both steps are boxed: the task holds only the one in use, not room for the largest (a
    // TLS + WebSocket handshake is over 10 KB) for as long as the connection lives.
    let session = Box::pin(open(socket, peer, local, transport, tls, path, shared)).await;
    if let Some(session) = session {
        session.await;
    }
}

/// A connection's MQTT session, boxed.
type Session = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Runs the transport's handshake and returns the MQTT session over it, not yet started.
async fn open(
    socket: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    transport: Transport,
    tls: Option<Secure>,
    path: &str,
    shared: Arc<Shared>,
) -> Option<Session> {
    // The transport handshake counts against the same allowance as CONNECT.
    let allowance = shared.config.mqtt.connect_timeout;
    match (transport, tls) {
        (Transport::Tcp, _) => Some(Box::pin(serve(
            socket, peer, local, transport, None, shared,
        ))),
        (Transport::Ws, _) => {
            let stream = handshake(allowance, "WebSocket", peer, ws::accept(socket, path)).await?;
            Some(Box::pin(serve(
                stream, peer, local, transport, None, shared,
            )))
        }
        (Transport::Tls | Transport::Wss, Some(secure)) => {
            let stream = handshake(allowance, "TLS", peer, secure.acceptor.accept(socket)).await?;
            let login = match tls::peer_name(stream.get_ref().1, secure.peer_cert) {
                tls::PeerName::Absent => None,
                tls::PeerName::Named(name) => Some(name),
                tls::PeerName::Unnamed => {
                    tracing::debug!(%peer, "client certificate without the name to log in with");
                    return None;
                }
            };
            let (cn, dn) = tls::subject(stream.get_ref().1);
            let name = (login.is_some() || cn.is_some() || dn.is_some())
                .then(|| Box::new(PeerCert { login, cn, dn }));
            if transport == Transport::Tls {
                return Some(Box::pin(serve(
                    stream, peer, local, transport, name, shared,
                )));
            }
            let stream = handshake(allowance, "WebSocket", peer, ws::accept(stream, path)).await?;
            Some(Box::pin(serve(
                stream, peer, local, transport, name, shared,
            )))
        }
        (Transport::Tls | Transport::Wss, None) => None,
    }
}

/// Runs a transport handshake within `allowance`; a failure or a timeout is logged and ends
/// the connection (`None`).
async fn handshake<T, E: std::fmt::Display>(
    allowance: std::time::Duration,
    what: &str,
    peer: SocketAddr,
    attempt: impl Future<Output = Result<T, E>>,
) -> Option<T> {
    match timeout(allowance, attempt).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(error)) => {
            tracing::debug!(%peer, %error, "{what} handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "{what} handshake timed out");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{mem::size_of_val, sync::Arc};

    use tokio::net::{TcpListener, TcpStream};

    use super::{Transport, handle, serve};
    use crate::{
        config::Config,
        shared::{Access, Shared},
    };

    /// A connection task keeps its future as long as the connection lives, so what an idle
    /// connection holds must stay small: handshakes and closing are boxed. (Debug builds lay
    /// futures out larger than release builds; the sizes are printed for profiling.)
    #[tokio::test]
    async fn connection_futures_stay_small() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let _client = TcpStream::connect(address).await.expect("connect");
        let (socket, peer) = listener.accept().await.expect("accept");
        let shared = Arc::new(Shared::new(Config::default(), Access::default(), None));
        let tcp = serve(
            socket,
            peer,
            address,
            Transport::Tcp,
            None,
            Arc::clone(&shared),
        );
        let tcp_size = size_of_val(&tcp);
        drop(tcp);
        let _client = TcpStream::connect(address).await.expect("connect");
        let (socket, peer) = listener.accept().await.expect("accept");
        let other = handle(socket, peer, address, Transport::Ws, None, "/mqtt", shared);
        let other_size = size_of_val(&other);
        println!("connection task futures: tcp {tcp_size} B, other transports {other_size} B");
        assert!(tcp_size < 1536, "the TCP connection future is {tcp_size} B");
        assert!(
            other_size < 512,
            "the transport handshake future is {other_size} B"
        );
    }
}
