//! The whole configuration file: defaults ← `hookmq.toml` ← `HOOKMQ_SECTION__KEY` variables.

use std::path::Path;

use anyhow::{Context, bail};
use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use hookmq_api::DashboardConfig;
use hookmq_broker::config::{
    AuthConfig, AuthzConfig, ListenersConfig, MqttConfig, NodeConfig, PersistenceConfig,
};
use hookmq_webhooks::{EgressConfig, WebhookSpec};
use serde::{Deserialize, Serialize};

/// Logging.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct LogConfig {
    /// A `tracing` filter such as `info` or `hookmq_broker=debug,info`; `RUST_LOG` wins.
    pub level: String,
    /// `text` (colours only when standard output is a terminal) or `json` (one object per
    /// line, for log collectors).
    pub format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    /// For people.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// Every section of `hookmq.toml`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct AppConfig {
    /// `[node]`: name and data directory.
    pub node: NodeConfig,
    /// `[listeners.tcp|ws|tls|wss]`.
    pub listeners: ListenersConfig,
    /// `[mqtt]`: protocol limits and session behaviour.
    pub mqtt: MqttConfig,
    /// `[auth]`: anonymous access and the password file.
    pub auth: AuthConfig,
    /// `[authz]`: the ACL file and the default decision.
    pub authz: AuthzConfig,
    /// `[persistence]`: retained messages and persistent sessions on disk, and when.
    pub persistence: PersistenceConfig,
    /// `[sys_topics]`: the broker's `$SYS` messages.
    pub sys_topics: hookmq_broker::config::SysTopicsConfig,
    /// `[alarm]`: what an alarm's change does, and how many past alarms are kept.
    pub alarm: hookmq_broker::alarms::AlarmConfig,
    /// `[sysmon.os]`: the system memory check that raises `high_system_memory_usage`.
    pub sysmon: hookmq_broker::alarms::SysmonConfig,
    /// `[dashboard]`: the API and dashboard listener.
    pub dashboard: DashboardConfig,
    /// `[egress]`: the networks webhook requests may reach.
    pub egress: EgressConfig,
    /// `[cluster]`: NATS, when several nodes serve together.
    pub cluster: hookmq_cluster::ClusterConfig,
    /// `[[webhooks]]`: webhooks defined in the file (applied at every start, over the ones
    /// saved through the API).
    pub webhooks: Vec<WebhookSpec>,
    /// `[log]`.
    pub log: LogConfig,
}

impl AppConfig {
    /// This configuration with its secrets (the default dashboard password, webhooks'
    /// signing secrets and secret header values) shown as `******`, for printing.
    #[must_use]
    pub(crate) fn redacted(mut self) -> Self {
        hookmq_webhooks::spec::REDACTED.clone_into(&mut self.dashboard.default_password);
        self.webhooks = self
            .webhooks
            .into_iter()
            .map(WebhookSpec::redacted)
            .collect();
        self
    }

    /// The broker's part.
    #[must_use]
    pub(crate) fn broker(&self) -> hookmq_broker::Config {
        hookmq_broker::Config {
            node: self.node.clone(),
            listeners: self.listeners.clone(),
            mqtt: self.mqtt.clone(),
            auth: self.auth.clone(),
            authz: self.authz.clone(),
            persistence: self.persistence.clone(),
            sys_topics: self.sys_topics.clone(),
            alarm: self.alarm.clone(),
            sysmon: self.sysmon.clone(),
        }
    }
}

/// The environment variable prefix; `__` separates nested keys.
pub(crate) const ENV_PREFIX: &str = "HOOKMQ_";

/// `HOOKMQ_*` variables that belong to the command line, not the configuration
/// (`HOOKMQ_CONFIG`, and `hookmq ctl`'s `HOOKMQ_API`, `HOOKMQ_API_KEY`, ...), and the
/// browser test's `HOOKMQ_BIN` and `HOOKMQ_URL` (tests/browser), which a developer may
/// have exported while other tests start hookmq; `HOOKMQ_SECRET_KEY` is read on its own
/// so that it is never part of a printed configuration.
const COMMAND_LINE_VARIABLES: [&str; 9] = [
    "config",
    "secret_key",
    "api",
    "api_key",
    "api_secret",
    "username",
    "password",
    "bin",
    "url",
];

/// Loads the configuration: embedded defaults, then `path` if given, then the environment.
///
/// # Errors
/// A missing file, bad TOML, or a value of the wrong type, naming the key.
pub(crate) fn load(path: Option<&Path>) -> anyhow::Result<AppConfig> {
    let env = Env::prefixed(ENV_PREFIX)
        .ignore(&COMMAND_LINE_VARIABLES)
        .split("__");
    let mut figment = Figment::from(Serialized::defaults(AppConfig::default()));
    if let Some(path) = path {
        if !path.is_file() {
            bail!("config file {} does not exist", path.display());
        }
        figment = figment.merge(Toml::file_exact(path));
    }
    let config: AppConfig = figment.merge(env).extract().map_err(|error| {
        // One clear line per problem, naming the key and where the value came from.
        let lines: Vec<String> = error.into_iter().map(|e| e.to_string()).collect();
        anyhow::anyhow!("invalid configuration: {}", lines.join("; "))
    })?;
    config
        .broker()
        .validate()
        .context("invalid configuration")?;
    let mut names = std::collections::HashSet::new();
    for (i, webhook) in config.webhooks.iter().enumerate() {
        webhook
            .validate()
            .with_context(|| format!("invalid configuration: webhooks[{i}] `{}`", webhook.name))?;
        if !names.insert(webhook.name.as_str()) {
            bail!(
                "invalid configuration: webhooks[{i}].name: `{}` is used by an earlier entry",
                webhook.name
            );
        }
    }
    Ok(config)
}

/// The defaults as a TOML document.
///
/// # Errors
/// Only if serialization fails, which would be a bug.
pub(crate) fn defaults_toml() -> anyhow::Result<String> {
    toml::to_string_pretty(&AppConfig::default()).context("serializing the defaults")
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail returns its own large error
mod tests {
    use figment::Jail;

    use super::*;

    fn load_in_jail(file: Option<&str>) -> anyhow::Result<AppConfig> {
        match file {
            Some(_) => load(Some(Path::new("hookmq.toml"))),
            None => load(None),
        }
    }

    #[test]
    fn defaults_load_and_round_trip() {
        Jail::expect_with(|jail| {
            let config = load_in_jail(None).expect("defaults are valid");
            assert_eq!(config, AppConfig::default());
            jail.create_file("hookmq.toml", &defaults_toml().expect("serializes"))?;
            let again = load_in_jail(Some("hookmq.toml")).expect("the printed defaults load");
            assert_eq!(again, config);
            Ok(())
        });
    }

    #[test]
    fn environment_overrides_file() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "hookmq.toml",
                "[listeners.tcp]\nbind = \"127.0.0.1:1999\"\n[node]\nname = \"a@h\"",
            )?;
            jail.set_env("HOOKMQ_LISTENERS__TCP__BIND", "127.0.0.1:2000");
            jail.set_env("HOOKMQ_NODE__DATA_DIR", "/tmp/x");
            let config = load_in_jail(Some("hookmq.toml")).expect("valid");
            assert_eq!(config.listeners.tcp.bind.port(), 2000);
            assert_eq!(config.node.name, "a@h");
            assert_eq!(config.node.data_dir, Path::new("/tmp/x"));
            Ok(())
        });
    }

    #[test]
    fn bad_values_name_their_key() {
        Jail::expect_with(|jail| {
            let cases = [
                ("[mqtt]\nmax_inflight = \"lots\"", "mqtt.max_inflight"),
                ("[mqtt]\nmax_inflite = 3", "max_inflite"),
                ("[mqtt]\nmax_qos = 3", "mqtt.max_qos"),
                (
                    "[mqtt]\nwrite_coalesce_us = 20000",
                    "mqtt.write_coalesce_us",
                ),
                (
                    "[mqtt]\nconnect_timeout = \"3 weeks\"",
                    "mqtt.connect_timeout",
                ),
            ];
            for (text, key) in cases {
                jail.create_file("hookmq.toml", text)?;
                let error = format!("{:#}", load_in_jail(Some("hookmq.toml")).expect_err(text));
                assert!(error.contains(key), "{text}: {error}");
            }
            jail.set_env("HOOKMQ_MQTT__MAX_INFLIGHT", "-1");
            let error = format!("{:#}", load_in_jail(None).expect_err("negative"));
            assert!(
                error.to_lowercase().contains("mqtt.max_inflight"),
                "{error}"
            );
            Ok(())
        });
    }

    #[test]
    fn webhook_entries_are_checked() {
        Jail::expect_with(|jail| {
            let entry = |name: &str, url: &str| {
                format!("[[webhooks]]\nname = \"{name}\"\nurl = \"{url}\"\n")
            };
            jail.create_file("hookmq.toml", &entry("a", "http://127.0.0.1:8080/"))?;
            let config = load_in_jail(Some("hookmq.toml")).expect("valid");
            assert_eq!(config.webhooks.len(), 1);
            assert_eq!(config.webhooks[0].name, "a");
            let cases = [
                (entry("a", "ftp://x/"), "webhooks[0] `a`: url"),
                (entry("-a", "http://x/"), "webhooks[0] `-a`: name"),
                (
                    entry("a", "http://x/") + &entry("a", "http://y/"),
                    "webhooks[1].name: `a` is used by an earlier entry",
                ),
            ];
            for (text, expected) in cases {
                jail.create_file("hookmq.toml", &text)?;
                let error = format!("{:#}", load_in_jail(Some("hookmq.toml")).expect_err(&text));
                assert!(error.contains(expected), "{text}: {error}");
            }
            Ok(())
        });
    }

    #[test]
    fn command_line_variables_are_not_configuration() {
        Jail::expect_with(|jail| {
            jail.set_env("HOOKMQ_CONFIG", "hookmq.toml");
            jail.set_env("HOOKMQ_API_KEY", "k");
            jail.set_env("HOOKMQ_API_SECRET", "s");
            jail.set_env("HOOKMQ_API", "http://127.0.0.1:18083");
            assert_eq!(load_in_jail(None).expect("valid"), AppConfig::default());
            Ok(())
        });
    }

    #[test]
    fn missing_file_is_an_error() {
        let error = load(Some(Path::new("/nonexistent/hookmq.toml"))).expect_err("missing");
        assert!(error.to_string().contains("does not exist"));
    }
}
