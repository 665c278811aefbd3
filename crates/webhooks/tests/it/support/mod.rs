//! Fixtures: a broker and a webhook engine on loopback, a recording receiver, a small MQTT
//! client and command-line helpers.

#![allow(dead_code, unreachable_pub)]

pub mod mqtt;
pub mod receiver;
pub mod wire;

use std::{net::SocketAddr, time::Duration};

use hookmq_broker::{Broker, BrokerHandle, Config, config::ListenerConfig};
use hookmq_webhooks::{WebhookEngine, WebhookSpec};

pub use mqtt::Mqtt;
pub use receiver::{Receiver, Reply};

/// How long tests wait for something that should happen promptly.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A broker with a webhook engine, its state in a temporary directory.
pub struct Stack {
    pub broker: Broker,
    pub handle: BrokerHandle,
    pub engine: WebhookEngine,
    pub mqtt: SocketAddr,
    pub data: tempfile::TempDir,
}

impl Stack {
    pub async fn start() -> Self {
        let mut config = Config::default();
        let local = ListenerConfig {
            bind: "127.0.0.1:0".parse().expect("address"),
            ..ListenerConfig::default()
        };
        config.listeners.tcp = local.clone();
        config.listeners.ws = ListenerConfig {
            enable: false,
            ..local.clone()
        };
        config.listeners.tls = ListenerConfig {
            enable: false,
            ..local.clone()
        };
        config.listeners.wss = ListenerConfig {
            enable: false,
            ..local
        };
        config.node.name = "emqx@127.0.0.1".into();
        // No memory alarm from a busy test machine in the events tests count.
        config.sysmon.os.mem_check_interval = Duration::ZERO;
        let data = tempfile::tempdir().expect("data directory");
        config.node.data_dir = data.path().to_path_buf();
        let broker = Broker::start(config).await.expect("broker starts");
        let handle = broker.handle();
        let engine = WebhookEngine::start(
            handle.clone(),
            data.path(),
            hookmq_webhooks::Egress::default(),
            hookmq_webhooks::seal::Sealer::load(data.path(), None).expect("key"),
        );
        let mqtt = broker.addresses().tcp.expect("tcp");
        Self {
            broker,
            handle,
            engine,
            mqtt,
            data,
        }
    }

    /// Creates a webhook after `adjust` changes the defaults.
    pub async fn webhook(&self, name: &str, url: &str, adjust: impl FnOnce(&mut WebhookSpec)) {
        let mut spec = WebhookSpec::new(name, url);
        spec.retry_backoff = Duration::from_millis(100);
        adjust(&mut spec);
        self.engine.create(spec).await.expect("webhook created");
    }

    pub fn port(&self) -> String {
        self.mqtt.port().to_string()
    }

    /// Waits until `check` holds for `name`'s metrics.
    pub async fn wait_metrics(
        &self,
        name: &str,
        what: &str,
        check: impl Fn(&hookmq_webhooks::MetricsSnapshot) -> bool,
    ) {
        wait_for_metrics(&self.engine, name, what, check).await;
    }
}

/// Waits until `check` holds for the metrics of `engine`'s webhook `name` (polled: the
/// engine has no change feed), and returns them.
pub async fn wait_for_metrics(
    engine: &WebhookEngine,
    name: &str,
    what: &str,
    check: impl Fn(&hookmq_webhooks::MetricsSnapshot) -> bool,
) -> hookmq_webhooks::MetricsSnapshot {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let metrics = engine.get(name).expect("webhook exists").metrics;
        if check(&metrics) {
            return metrics;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: {metrics:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Checks EMQX's invariant.
pub fn assert_balanced(m: &hookmq_webhooks::MetricsSnapshot) {
    assert_eq!(
        m.matched,
        m.success + m.failed + m.dropped + m.late_reply + m.queuing + m.inflight,
        "{m:#?}"
    );
}

/// Runs a command, failing the test with its output if it fails.
pub async fn run(program: &str, args: &[&str]) -> String {
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

/// `mosquitto_pub` against the stack.
pub async fn mosquitto_pub(stack: &Stack, args: &[&str]) {
    let port = stack.port();
    let mut all = vec!["-h", "127.0.0.1", "-p", &port];
    all.extend_from_slice(args);
    run("mosquitto_pub", &all).await;
}
