//! A `hookmq` process for the harness: started from its binary on free loopback ports with a
//! data directory and a config file, stopped with SIGTERM or SIGKILL, started again on the
//! same data; and its API (login, a webhook's metrics, dead letters).

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// A free loopback port (at the time of asking).
fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// How a running node is reached, and the process.
#[derive(Debug)]
pub struct Node {
    binary: PathBuf,
    data: PathBuf,
    config: PathBuf,
    /// MQTT, on loopback.
    pub mqtt: SocketAddr,
    api: String,
    child: Option<Child>,
    token: Option<String>,
    http: reqwest::Client,
}

impl Node {
    /// A node of `binary` keeping its state in `data`, configured by `config` (TOML: its
    /// `[[webhooks]]`); not started.
    ///
    /// # Errors
    /// No free port, or the config cannot be written.
    pub fn new(binary: &Path, data: &Path, config: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data)?;
        let config_path = data.with_extension("toml");
        std::fs::write(&config_path, config)?;
        let mqtt = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let api = format!("http://127.0.0.1:{}/api/v5", free_port()?);
        Ok(Self {
            binary: binary.to_owned(),
            data: data.to_owned(),
            config: config_path,
            mqtt,
            api,
            child: None,
            token: None,
            http: reqwest::Client::new(),
        })
    }

    /// Starts it and waits until MQTT and the API answer.
    ///
    /// # Errors
    /// It does not start.
    pub async fn start(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data.with_extension("log"))?;
        let dashboard = self
            .api
            .trim_start_matches("http://")
            .trim_end_matches("/api/v5");
        let child = Command::new(&self.binary)
            .env("HOOKMQ_CONFIG", &self.config)
            .env("HOOKMQ_NODE__DATA_DIR", &self.data)
            .env("HOOKMQ_LISTENERS__TCP__BIND", self.mqtt.to_string())
            .env("HOOKMQ_LISTENERS__WS__ENABLE", "false")
            .env("HOOKMQ_DASHBOARD__BIND", dashboard)
            .env("HOOKMQ_LOG__LEVEL", "info")
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        let dashboard: SocketAddr = dashboard.parse()?;
        while TcpStream::connect(self.mqtt).is_err() || TcpStream::connect(dashboard).is_err() {
            if Instant::now() > deadline {
                bail!(
                    "hookmq did not start; see {}",
                    self.data.with_extension("log").display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.token = None;
        Ok(())
    }

    /// SIGTERM, and waits for it to exit (a normal stop).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    /// SIGKILL (a crash), and waits for it to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The lines of its log containing `needle`.
    #[must_use]
    pub fn log_lines(&self, needle: &str) -> Vec<String> {
        std::fs::read_to_string(self.data.with_extension("log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect()
    }

    async fn token(&mut self) -> anyhow::Result<String> {
        if let Some(token) = &self.token {
            return Ok(token.clone());
        }
        let answer: Value = self
            .http
            .post(format!("{}/login", self.api))
            .json(&json!({"username": "admin", "password": "public"}))
            .send()
            .await?
            .json()
            .await?;
        let token = answer["token"]
            .as_str()
            .context("no token in the login answer")?
            .to_owned();
        self.token = Some(token.clone());
        Ok(token)
    }

    /// `GET` an API path, as JSON.
    ///
    /// # Errors
    /// The request fails.
    pub async fn get(&mut self, path: &str) -> anyhow::Result<Value> {
        let token = self.token().await?;
        Ok(self
            .http
            .get(format!("{}{path}", self.api))
            .bearer_auth(token)
            .send()
            .await?
            .json()
            .await?)
    }

    /// `POST` an API path with a JSON body, as JSON.
    ///
    /// # Errors
    /// The request fails.
    pub async fn post(&mut self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let token = self.token().await?;
        Ok(self
            .http
            .post(format!("{}{path}", self.api))
            .bearer_auth(token)
            .json(body)
            .send()
            .await?
            .json()
            .await?)
    }

    /// A webhook's metrics.
    ///
    /// # Errors
    /// The request fails.
    pub async fn metrics(&mut self, webhook: &str) -> anyhow::Result<Value> {
        self.get(&format!("/webhooks/{webhook}/metrics")).await
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}
