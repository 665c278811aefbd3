//! Shared fixtures: a broker on 127.0.0.1:0, an event log, a raw MQTT client built on the
//! project's codec, and helpers for rumqttc and mosquitto clients.

#![allow(dead_code, unreachable_pub)]

pub mod events;
pub mod raw;

use std::{net::SocketAddr, time::Duration};

use hookmq_broker::{
    Broker, BrokerHandle, Config, ListenerAddresses, config::ListenerConfig, hooks::EventMask,
};

pub use events::EventLog;
pub use raw::RawClient;

/// How long tests wait for something that should happen promptly.
pub const PATIENCE: Duration = Duration::from_secs(5);

/// A broker for one test.
pub struct TestBroker {
    broker: Option<Broker>,
    pub handle: BrokerHandle,
    pub tcp: SocketAddr,
    pub ws: SocketAddr,
    pub addresses: ListenerAddresses,
    pub events: EventLog,
    /// The data directory (the broker's journal), removed with the test.
    pub data: tempfile::TempDir,
    config: Config,
}

fn local() -> ListenerConfig {
    ListenerConfig {
        bind: "127.0.0.1:0".parse().expect("address"),
        ..ListenerConfig::default()
    }
}

/// A configuration with TCP and WS on free loopback ports, TLS and WSS off.
pub fn test_config() -> Config {
    let mut config = Config::default();
    // Nothing on disk unless a test gives a data directory (TestBroker does).
    config.persistence.enable = false;
    config.listeners.tcp = local();
    config.listeners.ws = ListenerConfig {
        path: "/mqtt".into(),
        ..local()
    };
    config.listeners.tls = ListenerConfig {
        enable: false,
        ..local()
    };
    config.listeners.wss = ListenerConfig {
        enable: false,
        ..local()
    };
    // No memory alarm from a busy test machine among the events the tests count.
    config.sysmon.os.mem_check_interval = std::time::Duration::ZERO;
    // No $SYS client messages among the events the tests count (tests/it/sys.rs has them).
    config.sys_topics.sys_event_messages.client_connected = false;
    config.sys_topics.sys_event_messages.client_disconnected = false;
    config
}

impl TestBroker {
    /// Starts with the test defaults.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts after `adjust` changes the test defaults.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let data = tempfile::tempdir().expect("data directory");
        let mut config = test_config();
        config.node.data_dir = data.path().to_path_buf();
        config.persistence.enable = true;
        adjust(&mut config);
        Self::start_on(config, data).await
    }

    async fn start_on(config: Config, data: tempfile::TempDir) -> Self {
        let broker = Broker::start(config.clone()).await.expect("broker starts");
        let handle = broker.handle();
        let events = EventLog::new(handle.subscribe_events(EventMask::ALL, 100_000));
        let addresses = broker.addresses();
        Self {
            tcp: addresses.tcp.expect("tcp listener"),
            ws: addresses.ws.unwrap_or(addresses.tcp.expect("tcp listener")),
            addresses,
            handle,
            events,
            broker: Some(broker),
            data,
            config,
        }
    }

    /// Stops the broker as a stop signal would and starts a new one on the same data
    /// directory (on new ports).
    pub async fn restart(self) -> Self {
        self.restart_after(Duration::ZERO).await
    }

    /// [`TestBroker::restart`], stopped for `down` in between (wall-clock time: what passes
    /// while hookmq is down is read from the clock at the next start, so it cannot be paused).
    pub async fn restart_after(mut self, down: Duration) -> Self {
        self.take().shutdown(PATIENCE).await;
        tokio::time::sleep(down).await;
        Self::start_on(self.config, self.data).await
    }

    /// The underlying broker, for shutdown tests.
    pub fn take(&mut self) -> Broker {
        self.broker.take().expect("not taken yet")
    }
}

/// A CONNECT that keeps its session: clean start off, and (v5) a session expiry of `expiry`
/// seconds (3.1.1 sessions get the broker's `session_expiry_interval`).
pub fn persistent(
    version: hookmq_codec::ProtocolVersion,
    client_id: &str,
    expiry: u32,
) -> hookmq_codec::Connect {
    let mut connect = RawClient::connect_packet(version, client_id);
    connect.clean_start = false;
    if version.is_v5() {
        connect.properties.session_expiry_interval = Some(expiry);
    }
    connect
}

/// Runs a command-line MQTT client, failing the test with its output if it fails.
pub async fn run_command(program: &str, args: &[&str]) -> String {
    let output = tokio::process::Command::new(program)
        .args(args)
        .output()
        .await
        .unwrap_or_else(|e| panic!("{program} could not run (is it installed?): {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}
