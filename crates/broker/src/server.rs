//! Listeners: bind, accept, cap connections, hand each socket to its own task; and shutdown.

use std::{
    net::SocketAddr,
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
    config::ListenerConfig,
    connection::{Transport, serve},
    error::BrokerError,
    shared::Shared,
    transport::{tls, ws},
};

/// A bound listener, ready to accept.
pub(crate) struct Bound {
    pub(crate) transport: Transport,
    pub(crate) listener: TcpListener,
    pub(crate) address: SocketAddr,
    tls: Option<TlsAcceptor>,
    path: String,
}

/// Binds `config` as a `transport` listener called `name`.
pub(crate) async fn bind(
    name: &str,
    transport: Transport,
    config: &ListenerConfig,
) -> Result<Bound, BrokerError> {
    let tls = match (transport, &config.certfile, &config.keyfile) {
        (Transport::Tls | Transport::Wss, Some(cert), Some(key)) => {
            Some(tls::acceptor(name, cert, key)?)
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
    Ok(Bound {
        transport,
        listener,
        address,
        tls,
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
    } = bound;
    let path: Arc<str> = path.into();
    tracing::info!(%address, ?transport, "listening");
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shared.shutdown.cancelled() => break,
        };
        let (socket, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(%address, %error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
            shared
                .stats
                .connections_refused
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%peer, "connection limit reached, closing");
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
        let (shared, tls, path) = (Arc::clone(&shared), tls.clone(), Arc::clone(&path));
        shared.tasks.clone().spawn(async move {
            let _permit = permit;
            let _gauge = gauge;
            handle(socket, peer, local, transport, tls, &path, shared).await;
        });
    }
}

/// Runs the transport's handshake, then serves MQTT.
async fn handle(
    socket: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    transport: Transport,
    tls: Option<TlsAcceptor>,
    path: &str,
    shared: Arc<Shared>,
) {
    // Each transport's session future is boxed: the task then holds only the one in use,
    // instead of room for the largest (TLS state is kilobytes) on every connection.
    // The transport handshake counts against the same allowance as CONNECT.
    let allowance = shared.config.mqtt.connect_timeout;
    match (transport, tls) {
        (Transport::Tcp, _) => Box::pin(serve(socket, peer, local, transport, shared)).await,
        (Transport::Ws, _) => match timeout(allowance, ws::accept(socket, path)).await {
            Ok(Ok(stream)) => Box::pin(serve(stream, peer, local, transport, shared)).await,
            Ok(Err(error)) => tracing::debug!(%peer, %error, "WebSocket handshake failed"),
            Err(_) => tracing::debug!(%peer, "WebSocket handshake timed out"),
        },
        (Transport::Tls | Transport::Wss, Some(acceptor)) => {
            let stream = match timeout(allowance, acceptor.accept(socket)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => return tracing::debug!(%peer, %error, "TLS handshake failed"),
                Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
            };
            if transport == Transport::Tls {
                return Box::pin(serve(stream, peer, local, transport, shared)).await;
            }
            match timeout(allowance, ws::accept(stream, path)).await {
                Ok(Ok(stream)) => Box::pin(serve(stream, peer, local, transport, shared)).await,
                Ok(Err(error)) => tracing::debug!(%peer, %error, "WebSocket handshake failed"),
                Err(_) => tracing::debug!(%peer, "WebSocket handshake timed out"),
            }
        }
        (Transport::Tls | Transport::Wss, None) => {}
    }
}
