//! Alarms, as EMQX's (`emqx_alarm`): a named condition that is active until it clears.
//!
//! Activating an active alarm, or deactivating one that is not, does nothing. Each change is
//! logged, and with `publish` in `[alarm] actions` (the default) published on
//! `$SYS/brokers/<node>/alarms/activate|deactivate` and emitted as an `alarm.activated` /
//! `alarm.deactivated` event (webhooks get them through the one event path). Deactivated
//! alarms are kept in a history bounded by `size_limit` (the oldest go first) and
//! `validity_period`. Times are microseconds since the epoch, as EMQX's.
//!
//! Raised here: `high_system_memory_usage` (the `[sysmon.os]` check) and
//! `listener_failed:<listener>` (a listener that cannot accept connections). Other layers
//! raise theirs through the broker's handle (the webhooks: a receiver down, a buffer near
//! its bound).

use std::{
    collections::{BTreeMap, VecDeque},
    sync::Arc,
    time::Duration,
};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{
    duration,
    hooks::{AlarmEvent, EventData, EventKind},
    message::now_micros,
    shared::Shared,
};

/// What happens when an alarm changes, besides keeping it (EMQX's `alarm.actions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlarmAction {
    /// A warning in the log.
    Log,
    /// A `$SYS` message and an `alarm.activated` / `alarm.deactivated` event.
    Publish,
}

/// `[alarm]`: EMQX's alarm settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AlarmConfig {
    /// What a change does: `log`, `publish` (both by default).
    pub actions: Vec<AlarmAction>,
    /// Deactivated alarms kept at most; past it the oldest is dropped.
    pub size_limit: usize,
    /// Deactivated alarms activated longer ago than this are dropped.
    #[serde(with = "duration")]
    pub validity_period: Duration,
}

impl Default for AlarmConfig {
    fn default() -> Self {
        Self {
            actions: vec![AlarmAction::Log, AlarmAction::Publish],
            size_limit: 1000,
            validity_period: Duration::from_secs(24 * 3600),
        }
    }
}

/// `[sysmon.os]`: EMQX's operating-system checks.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OsMonConfig {
    /// How often system memory is checked (Linux); `0s` never.
    #[serde(with = "duration")]
    pub mem_check_interval: Duration,
    /// `high_system_memory_usage` is active while used memory is above this share of the
    /// total (`"70%"`).
    #[serde(with = "percent")]
    pub sysmem_high_watermark: f64,
}

impl Default for OsMonConfig {
    fn default() -> Self {
        Self {
            mem_check_interval: Duration::from_secs(60),
            sysmem_high_watermark: 0.70,
        }
    }
}

/// `[sysmon]`: EMQX's system monitor.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SysmonConfig {
    /// Operating-system checks.
    pub os: OsMonConfig,
}

/// Serde for shares written `"70%"` (or a fraction, `0.7`).
mod percent {
    use serde::{Deserialize, Deserializer, Serializer, de};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Fraction(f64),
        Text(String),
    }

    pub(super) fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&format_args!("{}%", value * 100.0))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
        let share = match Raw::deserialize(deserializer)? {
            Raw::Fraction(share) => share,
            Raw::Text(text) => {
                let number = text.trim().strip_suffix('%').ok_or_else(|| {
                    de::Error::custom(format!("`{text}` is not a percentage like 70%"))
                })?;
                number.trim().parse::<f64>().map_err(|_| {
                    de::Error::custom(format!("`{text}` is not a percentage like 70%"))
                })? / 100.0
            }
        };
        if (0.0..=1.0).contains(&share) {
            Ok(share)
        } else {
            Err(de::Error::custom("a percentage from 0% to 100%"))
        }
    }
}

/// An alarm, active or past.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alarm {
    /// Its name, e.g. `high_system_memory_usage`.
    pub name: String,
    /// What it is about (a JSON object).
    pub details: Value,
    /// For people.
    pub message: String,
    /// When it was activated, µs since the epoch.
    pub activate_at: u64,
    /// When it was deactivated, µs since the epoch (past alarms only).
    pub deactivate_at: Option<u64>,
}

/// The active alarms and the history.
#[derive(Debug, Default)]
pub(crate) struct Alarms {
    // A plain mutex: alarms change rarely and nothing waits while holding it.
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    active: BTreeMap<String, Alarm>,
    /// Oldest first.
    history: VecDeque<Alarm>,
}

impl State {
    fn forget_expired(&mut self, config: &AlarmConfig, now: u64) {
        let validity = u64::try_from(config.validity_period.as_micros()).unwrap_or(u64::MAX);
        self.history
            .retain(|alarm| now.saturating_sub(alarm.activate_at) < validity);
    }
}

impl Alarms {
    /// The active alarms (`true`) or the history (`false`), oldest first.
    pub(crate) fn list(&self, config: &AlarmConfig, active: bool) -> Vec<Alarm> {
        let mut state = self.state.lock();
        if active {
            return state.active.values().cloned().collect();
        }
        state.forget_expired(config, now_micros());
        state.history.iter().cloned().collect()
    }

    /// Forgets the history.
    pub(crate) fn clear_history(&self) {
        self.state.lock().history.clear();
    }
}

impl Shared {
    /// Activates alarm `name`; `false` when it already is.
    pub(crate) fn activate_alarm(
        self: &Arc<Self>,
        name: &str,
        details: Value,
        message: String,
    ) -> bool {
        let message = if message.is_empty() {
            name.to_owned()
        } else {
            message
        };
        let alarm = Alarm {
            name: name.to_owned(),
            details,
            message,
            activate_at: now_micros(),
            deactivate_at: None,
        };
        // Held while the change goes out, so changes of an alarm go out in the order they
        // were made; publishing and emitting never wait.
        let mut state = self.alarms.state.lock();
        if state.active.contains_key(name) {
            return false;
        }
        state.active.insert(name.to_owned(), alarm.clone());
        self.alarm_changed(&alarm, "activate");
        true
    }

    /// Deactivates alarm `name`, with the details and message of now (EMQX's
    /// `"no_details"` and the name when there are none); `false` when it is not active.
    pub(crate) fn deactivate_alarm(
        self: &Arc<Self>,
        name: &str,
        now: Option<(Value, String)>,
    ) -> bool {
        let config = &self.config.alarm;
        // Held while the change goes out, as in `activate_alarm`.
        let mut state = self.alarms.state.lock();
        let Some(mut alarm) = state.active.remove(name) else {
            return false;
        };
        let at = now_micros();
        alarm.deactivate_at = Some(at);
        if config.size_limit > 0 {
            while state.history.len() >= config.size_limit {
                state.history.pop_front();
            }
            state.history.push_back(alarm.clone());
        }
        state.forget_expired(config, at);
        (alarm.details, alarm.message) =
            now.unwrap_or_else(|| (json!("no_details"), name.to_owned()));
        self.alarm_changed(&alarm, "deactivate");
        true
    }

    /// Logs, publishes and emits a change, as `[alarm] actions` asks.
    fn alarm_changed(self: &Arc<Self>, alarm: &Alarm, change: &str) {
        let actions = &self.config.alarm.actions;
        if actions.contains(&AlarmAction::Log) {
            if change == "activate" {
                tracing::warn!(alarm = %alarm.name, message = %alarm.message, "alarm is activated");
            } else {
                tracing::warn!(alarm = %alarm.name, "alarm is deactivated");
            }
        }
        if !actions.contains(&AlarmAction::Publish) {
            return;
        }
        let payload = json!({
            "name": alarm.name, "details": alarm.details, "message": alarm.message,
            "activate_at": alarm.activate_at,
            "deactivate_at": alarm.deactivate_at.map_or(json!("infinity"), Value::from),
            "activated": alarm.deactivate_at.is_none(),
        });
        crate::sys::publish_alarm(self, change, payload.to_string());
        let kind = if alarm.deactivate_at.is_none() {
            EventKind::AlarmActivated
        } else {
            EventKind::AlarmDeactivated
        };
        self.hooks.emit_with(kind, || {
            let event = Arc::new(AlarmEvent {
                name: alarm.name.clone(),
                details: alarm.details.to_string(),
                message: alarm.message.clone(),
                activated_at: alarm.activate_at,
                deactivated_at: alarm.deactivate_at,
            });
            match alarm.deactivate_at {
                None => EventData::AlarmActivated { alarm: event },
                Some(_) => EventData::AlarmDeactivated { alarm: event },
            }
        });
    }
}

/// The name of system memory's alarm.
const HIGH_MEMORY: &str = "high_system_memory_usage";

/// Used memory as a share of the total, from `/proc/meminfo` (`MemAvailable`), or `None`
/// where there is none.
fn memory_usage(meminfo: &str) -> Option<f64> {
    let field = |name: &str| -> Option<f64> {
        let line = meminfo.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    let (total, available) = (field("MemTotal:")?, field("MemAvailable:")?);
    (total > 0.0).then(|| 1.0 - available / total)
}

/// The memory alarm's details and message for `usage`, as EMQX writes them.
fn memory_state(usage: f64, watermark: f64) -> (Value, String) {
    let percent = (usage * 10_000.0).floor() / 100.0;
    (
        json!({"usage": percent, "high_watermark": watermark * 100.0}),
        format!("{percent:.2}% mem usage"),
    )
}

/// Checks system memory every `[sysmon.os] mem_check_interval` until shutdown.
pub(crate) fn start_memory_check(shared: &Arc<Shared>) {
    let config = shared.config.sysmon.os.clone();
    if config.mem_check_interval.is_zero() || std::fs::metadata("/proc/meminfo").is_err() {
        return;
    }
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(config.mem_check_interval);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                () = shared.shutdown.cancelled() => return,
            }
            let Some(usage) = std::fs::read_to_string("/proc/meminfo")
                .ok()
                .as_deref()
                .and_then(memory_usage)
            else {
                continue;
            };
            let (details, message) = memory_state(usage, config.sysmem_high_watermark);
            if usage > config.sysmem_high_watermark {
                shared.activate_alarm(HIGH_MEMORY, details, message);
            } else {
                shared.deactivate_alarm(HIGH_MEMORY, Some((details, message)));
            }
        }
    });
}

/// A listener's alarm (`listener_failed:<listener>`): raised when accepting fails for want
/// of resources (files, buffers, memory), cleared once accepting has not failed for
/// `HOLD` (it fails and works by turns while the process hovers at its file limit).
pub(crate) struct ListenerAlarm {
    name: String,
    listener: &'static str,
    /// When accepting last failed, while the alarm is active.
    failing: Option<tokio::time::Instant>,
}

impl ListenerAlarm {
    const HOLD: Duration = Duration::from_secs(2);

    /// The alarm of listener `listener` (its name in the configuration).
    pub(crate) fn new(listener: &'static str) -> Self {
        Self {
            name: format!("listener_failed:{listener}"),
            listener,
            failing: None,
        }
    }

    /// When the alarm clears if accepting does not fail again; `None` while inactive.
    pub(crate) fn clears_at(&self) -> Option<tokio::time::Instant> {
        self.failing.map(|last| last + Self::HOLD)
    }

    /// Accepting failed: raises the alarm for a want of resources (a failure of one
    /// connection, such as one aborted before it was accepted, is not the listener's).
    pub(crate) fn failed(
        &mut self,
        shared: &Arc<Shared>,
        bind: std::net::SocketAddr,
        error: &std::io::Error,
    ) {
        // EMFILE, ENFILE, ENOBUFS, ENOMEM (Linux numbers).
        const WANT_OF_RESOURCES: [i32; 4] = [24, 23, 105, 12];
        if !error
            .raw_os_error()
            .is_some_and(|code| WANT_OF_RESOURCES.contains(&code))
        {
            return;
        }
        if self.failing.is_none() {
            let details = json!({"listener": self.listener, "bind": bind.to_string(), "reason": error.to_string()});
            let message = format!("listener {} cannot accept: {error}", self.listener);
            shared.activate_alarm(&self.name, details, message);
        }
        self.failing = Some(tokio::time::Instant::now());
    }

    /// Accepting has not failed for `HOLD`: clears the alarm.
    pub(crate) fn clear(&mut self, shared: &Arc<Shared>) {
        self.failing = None;
        shared.deactivate_alarm(&self.name, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_usage_reads_meminfo() {
        let meminfo = "MemTotal:       1000 kB\nMemFree:         100 kB\nMemAvailable:    250 kB\n";
        let usage = memory_usage(meminfo).expect("usage");
        assert!((usage - 0.75).abs() < 1e-9);
        let (details, message) = memory_state(usage, 0.7);
        assert_eq!(details, json!({"usage": 75.0, "high_watermark": 70.0}));
        assert_eq!(message, "75.00% mem usage");
        assert_eq!(memory_usage("MemTotal: 0 kB\n"), None);
    }

    #[test]
    fn percentages_read_as_emqx_writes_them() {
        let config: OsMonConfig =
            serde_json::from_value(json!({"sysmem_high_watermark": "85%"})).expect("config");
        assert!((config.sysmem_high_watermark - 0.85).abs() < 1e-9);
        assert!(
            serde_json::from_value::<OsMonConfig>(json!({"sysmem_high_watermark": "85"})).is_err()
        );
        assert!(
            serde_json::from_value::<OsMonConfig>(json!({"sysmem_high_watermark": "150%"}))
                .is_err()
        );
    }
}
