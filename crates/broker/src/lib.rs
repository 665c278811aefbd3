//! # hookmq-broker
//!
//! The MQTT 3.1 / 3.1.1 / 5.0 broker core: listeners, sessions, routing, retained messages,
//! authentication and authorization, and the event hook that webhooks consume.
//!
//! ## Layout
//! - [`config`]: the configuration sections and their validation.
//! - `server`: listeners (TCP, TLS, WebSocket, WSS), the connection limit, accept loops;
//!   `limits`: connections per address and the publish rate of a connection.
//! - `transport`: TLS set-up and the WebSocket byte-stream adapter.
//! - `connection`: one task per connection; handshake, inbound packets, outbound deliveries.
//! - `session`: session state, the mailbox the router fills, in-flight tracking and the
//!   registry that hands sessions over between connections.
//! - `router`: the subscription trie (with shared subscriptions) and the retained store.
//! - `persist`: the journal of retained messages and persistent sessions (`[persistence]`),
//!   its writer thread and the recovery at start.
//! - [`alarms`]: EMQX's alarms (`[alarm]`, `[sysmon]`): active and past, published and
//!   emitted as events.
//! - [`auth`]: password file and ACL file.
//! - [`client_attrs`]: attributes set at connect from `[mqtt] client_attrs_init`.
//! - [`hooks`]: the typed events and the non-blocking bus that carries them.
//! - [`message`]: the routed message and its id.
//! - [`BrokerHandle`]: how other crates reach a running broker.
//! - [`peers`]: the other nodes of a cluster (forwarding, local interest, peer messages).
//! - `summary`: rate-limited log lines of refused connections, protocol errors and drops.
//! - [`sys`]: the `$SYS` topics (`[sys_topics]`), published through the one publish path.
//!
//! A PUBLISH goes: socket → codec (zero-copy `Bytes`) → connection task (alias, authz,
//! events) → router (trie match under a read lock) → each subscriber's mailbox → that
//! subscriber's connection task → socket, many packets per write.

pub mod alarms;
pub mod auth;
pub mod client_attrs;
pub mod config;
mod connection;
pub mod duration;
mod error;
mod handle;
pub mod hooks;
mod limits;
pub mod message;
pub mod peers;
mod persist;
mod router;
mod server;
mod session;
mod shared;
mod summary;
pub mod sys;
pub mod transport;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use tokio::{sync::Semaphore, task::JoinHandle};

pub use config::Config;
pub use error::BrokerError;
pub use handle::{BrokerHandle, StatsSnapshot};
pub use router::SubscriptionRow;
pub use session::registry::ClientSummary;
pub use shared::Stats;

use crate::{
    connection::Transport,
    session::registry::Control,
    shared::{Access, Shared},
};

/// How often expired retained messages are purged.
const RETAINED_PURGE_INTERVAL: Duration = Duration::from_secs(60);

/// The addresses the listeners actually bound (useful with port 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListenerAddresses {
    /// MQTT over TCP.
    pub tcp: Option<SocketAddr>,
    /// MQTT over WebSocket.
    pub ws: Option<SocketAddr>,
    /// MQTT over TLS.
    pub tls: Option<SocketAddr>,
    /// MQTT over secure WebSocket.
    pub wss: Option<SocketAddr>,
}

/// How often [`Stopping::hand_off`] looks whether the sessions have moved.
const HAND_OFF_POLL: Duration = Duration::from_millis(50);

/// A started broker.
#[derive(Debug)]
pub struct Broker {
    shared: Arc<Shared>,
    addresses: ListenerAddresses,
    /// Listeners bound and not yet accepting (until [`Broker::accept`]).
    bound: Vec<server::Bound>,
    limit: Arc<Semaphore>,
    accept_loops: Vec<JoinHandle<()>>,
}

impl Broker {
    /// Validates `config`, loads the password and ACL files, binds every enabled listener and
    /// starts accepting.
    ///
    /// # Errors
    /// The first thing that prevents starting, naming the config key or file.
    pub async fn start(config: Config) -> Result<Self, BrokerError> {
        let mut broker = Self::bind(config).await?;
        broker.accept();
        Ok(broker)
    }

    /// Like [`Broker::start`], but the listeners do not accept until [`Broker::accept`]:
    /// hooks attached in between see every event from the first client on (connections
    /// made meanwhile wait in the listeners' backlogs).
    ///
    /// # Errors
    /// The first thing that prevents starting, naming the config key or file.
    pub async fn bind(config: Config) -> Result<Self, BrokerError> {
        config.validate()?;
        let mut access = Access {
            passwords: match &config.auth.password_file {
                Some(path) => Some(Arc::new(auth::PasswordFile::load(path)?)),
                None => None,
            },
            acl: match &config.authz.acl_file {
                Some(path) => Some(auth::Acl::load(path)?),
                None => None,
            },
            certificates: Vec::new(),
        };
        let listeners = &config.listeners;
        let mut bound = Vec::new();
        if listeners.tcp.enable {
            bound.push(server::bind("tcp", Transport::Tcp, &listeners.tcp).await?);
        }
        if listeners.ws.enable {
            bound.push(server::bind("ws", Transport::Ws, &listeners.ws).await?);
        }
        if listeners.tls.enable && listeners.tls.certfile.is_some() {
            bound.push(server::bind("tls", Transport::Tls, &listeners.tls).await?);
        }
        if listeners.wss.enable && listeners.wss.certfile.is_some() {
            bound.push(server::bind("wss", Transport::Wss, &listeners.wss).await?);
        }
        access.certificates = bound
            .iter()
            .filter_map(|listener| listener.certificates.clone())
            .collect();
        let limit = Arc::new(Semaphore::new(
            config.mqtt.max_connections.min(Semaphore::MAX_PERMITS),
        ));
        let persistence = if config.persistence.enable {
            let (log, records) =
                persist::StateLog::open(&config.node.data_dir, &config.persistence)?;
            Some((Arc::new(log), records))
        } else {
            None
        };
        let log = persistence.as_ref().map(|(log, _)| Arc::clone(log));
        let shared = Arc::new(Shared::new(config, access, log));
        if let Some((log, records)) = persistence {
            let recovered = persist::recover::restore(&shared, &log, records);
            if recovered != persist::recover::Recovered::default() {
                tracing::info!(
                    sessions = recovered.sessions,
                    messages = recovered.messages,
                    retained = recovered.retained,
                    expired_while_down = recovered.expired,
                    "persistence: state recovered"
                );
            }
        }
        let mut addresses = ListenerAddresses::default();
        for listener in &bound {
            let slot = match listener.transport {
                Transport::Tcp => &mut addresses.tcp,
                Transport::Ws => &mut addresses.ws,
                Transport::Tls => &mut addresses.tls,
                Transport::Wss => &mut addresses.wss,
            };
            *slot = Some(listener.address);
        }
        let purge = Arc::clone(&shared);
        shared.tasks.spawn(async move {
            let mut tick = tokio::time::interval(RETAINED_PURGE_INTERVAL);
            loop {
                tokio::select! {
                    _ = tick.tick() => purge.retained.purge_expired(),
                    () = purge.shutdown.cancelled() => break,
                }
            }
        });
        Ok(Self {
            shared,
            addresses,
            bound,
            limit,
            accept_loops: Vec::new(),
        })
    }

    /// Starts accepting on the bound listeners (once; later calls do nothing).
    pub fn accept(&mut self) {
        if !self.shared.accepting.is_cancelled() {
            self.shared.tasks.spawn(summary::summarise(self.handle()));
            sys::start(&self.shared);
            alarms::start_memory_check(&self.shared);
        }
        self.shared.accepting.cancel();
        for listener in self.bound.drain(..) {
            self.accept_loops.push(tokio::spawn(server::accept_loop(
                listener,
                Arc::clone(&self.shared),
                Arc::clone(&self.limit),
            )));
        }
    }

    /// Where the listeners listen.
    #[must_use]
    pub const fn addresses(&self) -> ListenerAddresses {
        self.addresses
    }

    /// A handle for the API, the webhooks and tests.
    #[must_use]
    pub fn handle(&self) -> BrokerHandle {
        BrokerHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Stops accepting, disconnects every client (v5 clients get `server shutting down`),
    /// waits up to `grace` for their tasks to finish, and closes the store.
    pub async fn shutdown(self, grace: Duration) {
        self.disconnect(grace).await.close().await;
    }

    /// Stops accepting, disconnects every client (v5 clients get `server shutting down`) and
    /// waits up to `grace` for their tasks to finish; the store stays open (sessions may
    /// still move to other nodes) until [`Stopping::close`].
    pub async fn disconnect(self, grace: Duration) -> Stopping {
        self.shared.shutdown.cancel();
        for accept in self.accept_loops {
            let _ = accept.await;
        }
        let connected: Vec<Arc<str>> = self
            .shared
            .registry
            .clients()
            .into_iter()
            .filter(|client| client.connected)
            .map(|client| client.info.client_id.clone())
            .collect();
        for control in self.shared.registry.all_controls() {
            let _ = control.try_send(Control::Shutdown);
        }
        self.shared.tasks.close();
        if tokio::time::timeout(grace, self.shared.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("some connections did not close within {grace:?}");
        }
        Stopping {
            shared: self.shared,
            connected,
        }
    }
}

/// A broker whose clients are gone, its store still open.
#[derive(Debug)]
pub struct Stopping {
    shared: Arc<Shared>,
    /// The clients connected when the stop began.
    connected: Vec<Arc<str>>,
}

impl Stopping {
    /// Waits up to `wait` for the kept sessions of the clients that were connected when the
    /// stop began to move to the nodes those clients connect to next (a cluster hands a
    /// session over when asked, `BrokerHandle::hand_over_session`). Returns how many are
    /// still here.
    pub async fn hand_off(&self, wait: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let staying = self
                .connected
                .iter()
                .filter(|client_id| self.shared.registry.client(client_id).is_some())
                .count();
            // What moved sessions' subscriptions held here is collected by their new node.
            let holding = !self.shared.holding.lock().is_empty();
            if (staying == 0 && !holding) || tokio::time::Instant::now() >= deadline {
                return staying + self.take_back_lost().await;
            }
            tokio::time::sleep(HAND_OFF_POLL).await;
        }
    }

    /// Sessions handed from here to nodes that do not have them (they died before) are
    /// built here again while the cluster and the journal are still open, so they stay on
    /// this node's disk. Returns how many.
    async fn take_back_lost(&self) -> usize {
        let handed: Vec<Arc<str>> = self.shared.holding.lock().keys().cloned().collect();
        let mut taken = 0;
        for client_id in handed {
            if session::transfer::take_back_if_lost(&self.shared, &client_id).await {
                taken += 1;
            }
        }
        taken
    }

    /// Writes what the closed sessions wrote last to disk.
    pub async fn close(self) {
        if let Some(log) = self.shared.persist.clone() {
            let _ = tokio::task::spawn_blocking(move || log.close()).await;
        }
    }
}
