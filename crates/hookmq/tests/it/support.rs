//! Fixtures: the binary, free ports, and a running `hookmq` ended when dropped.

use std::{
    net::{TcpListener, TcpStream},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// The binary under test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_hookmq");

/// A port nothing listens on (at the time of asking), different from every other this
/// process was given. Taken below Linux's ephemeral range (32768 and up), from a cursor that
/// only moves on: a port the kernel picked for `:0` and released could be picked again at
/// once, by a parallel test's receiver or an outgoing connection, before hookmq binds it.
pub(crate) fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    // Starts at a place that depends on the process id, so two runs at once rarely meet.
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(
        0,
        20_000 + (std::process::id() % 1_000) as u16 * 10,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    loop {
        let port = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(port < 32_768, "ran out of test ports");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Waits until something accepts connections on `port`.
pub(crate) fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A child process ended (SIGTERM) when dropped.
pub(crate) struct Running(pub(crate) Child);

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(Some(_))) {
            return;
        }
        // A paused process would not act on SIGTERM.
        self.signal("-CONT");
        self.signal("-TERM");
        let _ = self.0.wait();
    }
}

impl Running {
    /// Stops the process (SIGSTOP): it does nothing until [`Running::resume`].
    pub(crate) fn pause(&self) {
        assert!(self.signal("-STOP"), "kill -STOP");
    }

    /// Lets a paused process go on (SIGCONT).
    pub(crate) fn resume(&self) {
        assert!(self.signal("-CONT"), "kill -CONT");
    }

    fn signal(&self, signal: &str) -> bool {
        send_signal(&self.0, signal)
    }

    /// `kill -9`, and waits for the exit.
    pub(crate) fn kill(&mut self) {
        self.0.kill().expect("SIGKILL");
        let _ = self.0.wait();
    }
}

/// Sends `signal` (`-STOP`, `-CONT`, `-TERM`) to `process` with `kill`; whether it went.
pub(crate) fn send_signal(process: &Child, signal: &str) -> bool {
    Command::new("kill")
        .args([signal, &process.id().to_string()])
        .status()
        .is_ok_and(|status| status.success())
}

/// `hookmq` with MQTT and the dashboard on the given ports, state in `data` (its log in
/// `data/hookmq.log`), and `extra` environment; returns once both listen.
pub(crate) fn start_hookmq(
    data: &Path,
    mqtt: u16,
    dashboard: u16,
    extra: &[(&str, &str)],
) -> Running {
    start_hookmq_in(Command::new(BIN), data, mqtt, dashboard, extra)
}

/// [`start_hookmq`] with at most `files` open files (`ulimit -n`).
pub(crate) fn start_hookmq_with_files(
    files: u32,
    data: &Path,
    mqtt: u16,
    dashboard: u16,
    extra: &[(&str, &str)],
) -> Running {
    let mut shell = Command::new("sh");
    shell.args(["-c", &format!("ulimit -n {files} && exec \"$0\""), BIN]);
    start_hookmq_in(shell, data, mqtt, dashboard, extra)
}

fn start_hookmq_in(
    mut command: Command,
    data: &Path,
    mqtt: u16,
    dashboard: u16,
    extra: &[(&str, &str)],
) -> Running {
    let child = command
        .env("HOOKMQ_LISTENERS__TCP__BIND", format!("127.0.0.1:{mqtt}"))
        .env("HOOKMQ_LISTENERS__WS__ENABLE", "false")
        .env("HOOKMQ_DASHBOARD__BIND", format!("127.0.0.1:{dashboard}"))
        .env("HOOKMQ_NODE__DATA_DIR", data)
        // No memory alarm from a busy test machine in the events tests count.
        .env("HOOKMQ_SYSMON__OS__MEM_CHECK_INTERVAL", "0s")
        .envs(extra.iter().copied())
        .stdout(log_file(data))
        .stderr(Stdio::null())
        .spawn()
        .expect("hookmq starts");
    wait_for_port(mqtt);
    wait_for_port(dashboard);
    // The listeners are bound before the node is ready (a cluster node reads the cluster's
    // users first, up to 10 s): its log says when it is.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = std::fs::read_to_string(log_path(data)).unwrap_or_default();
        if log.contains("hookmq started") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "hookmq never said it started:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Running(child)
}

/// Where [`start_hookmq`] writes hookmq's log (its standard output).
pub(crate) fn log_path(data: &Path) -> std::path::PathBuf {
    data.join("hookmq.log")
}

fn log_file(data: &Path) -> Stdio {
    let _ = std::fs::create_dir_all(data);
    std::fs::File::create(log_path(data)).map_or_else(|_| Stdio::null(), Stdio::from)
}

/// Logs in as the default admin on the API at `base` (`…/api/v5`); returns the token.
pub(crate) async fn login(base: &str) -> String {
    let answer: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/login"))
        .json(&serde_json::json!({"username": "admin", "password": "public"}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    answer["token"].as_str().expect("token").to_owned()
}
