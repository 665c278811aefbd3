//! A minimal HTTP receiver: answers every request `200 ok` and counts the events they carry
//! (a batch carries several: each `"event":"` in a body is one; a body without any is one).
//! `GET /count` answers `<events> <ms from first to last request>` (that request is not
//! counted), so a benchmark can compute the delivered rate; `GET /requests` the number of
//! requests. `GET /latency` answers
//! `<p50 ms> <p99 ms> <samples>` of the time from each event's `publish_received_at` (the broker
//! took the PUBLISH) to its arrival here. `--delay-ms` holds every answer back, to play a
//! stalled receiver.

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;

/// Minimal webhook receiver.
#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    bind: SocketAddr,
    /// Wait this long before answering each event (a stalled receiver: a large value).
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
}

/// Latency buckets, one per millisecond; the last holds everything slower.
const LATENCY_BUCKETS: usize = 60_001;

#[derive(Debug)]
struct Counts {
    started: Instant,
    requests: AtomicU64,
    events: AtomicU64,
    /// µs since `started` of the first and the last request (0 = none yet).
    first_us: AtomicU64,
    last_us: AtomicU64,
    /// Events per latency in ms (`publish_received_at` → arrival).
    latency_ms: Vec<AtomicU64>,
    delay: std::time::Duration,
}

impl Counts {
    /// Records the latency of each event in `body` that carries
    /// `"publish_received_at":<ms>`; returns how many events it carries.
    fn record_events(&self, body: &[u8]) -> u64 {
        const KEY: &[u8] = b"\"publish_received_at\":";
        const EVENT: &[u8] = b"\"event\":\"";
        for (at, _) in body
            .windows(KEY.len())
            .enumerate()
            .filter(|(_, w)| *w == KEY)
        {
            self.record_latency(&body[at + KEY.len()..]);
        }
        let events = body.windows(EVENT.len()).filter(|w| *w == EVENT).count();
        u64::try_from(events).unwrap_or(u64::MAX).max(1)
    }

    /// Records the latency of an event published at the ms `digits` begins with.
    fn record_latency(&self, digits: &[u8]) {
        let digits = digits
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .fold(0u64, |n, d| {
                n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
            });
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let bucket = usize::try_from(now.saturating_sub(digits))
            .unwrap_or(usize::MAX)
            .min(LATENCY_BUCKETS - 1);
        self.latency_ms[bucket].fetch_add(1, Ordering::Relaxed);
    }

    /// `p50 p99 samples`, in ms.
    fn latency_report(&self) -> String {
        let counts: Vec<u64> = self
            .latency_ms
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        let quantile = |q: f64| {
            // Truncation is fine: a rank among at most u64::MAX samples.
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss
            )]
            let rank = ((total as f64) * q).ceil().max(1.0) as u64;
            let mut seen = 0;
            counts
                .iter()
                .position(|&c| {
                    seen += c;
                    seen >= rank
                })
                .unwrap_or(0)
        };
        format!("{} {} {total}\n", quantile(0.5), quantile(0.99))
    }
}

async fn handle(
    counts: Arc<Counts>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if request.uri().path() == "/count" {
        let n = counts.events.load(Ordering::Relaxed);
        let span = counts
            .last_us
            .load(Ordering::Relaxed)
            .saturating_sub(counts.first_us.load(Ordering::Relaxed));
        return Ok(Response::new(Full::new(Bytes::from(format!(
            "{n} {}\n",
            span / 1000
        )))));
    }
    if request.uri().path() == "/requests" {
        let n = counts.requests.load(Ordering::Relaxed);
        return Ok(Response::new(Full::new(Bytes::from(format!("{n}\n")))));
    }
    if request.uri().path() == "/latency" {
        return Ok(Response::new(Full::new(Bytes::from(
            counts.latency_report(),
        ))));
    }
    // Read the body, as a real receiver does.
    let events = match request.into_body().collect().await {
        Ok(body) => counts.record_events(&body.to_bytes()),
        Err(_) => 1,
    };
    if !counts.delay.is_zero() {
        tokio::time::sleep(counts.delay).await;
    }
    let now = u64::try_from(counts.started.elapsed().as_micros())
        .unwrap_or(u64::MAX)
        .max(1);
    let _ = counts
        .first_us
        .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
    counts.last_us.fetch_max(now, Ordering::Relaxed);
    counts.requests.fetch_add(1, Ordering::Relaxed);
    counts.events.fetch_add(events, Ordering::Relaxed);
    Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(args.bind).await?;
    let counts = Arc::new(Counts {
        started: Instant::now(),
        requests: AtomicU64::new(0),
        events: AtomicU64::new(0),
        first_us: AtomicU64::new(0),
        last_us: AtomicU64::new(0),
        latency_ms: (0..LATENCY_BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        delay: std::time::Duration::from_millis(args.delay_ms),
    });
    loop {
        let (socket, _) = listener.accept().await?;
        let _ = socket.set_nodelay(true);
        let counts = Arc::clone(&counts);
        tokio::spawn(async move {
            let service = service_fn(move |request| handle(Arc::clone(&counts), request));
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(socket), service)
                .await;
        });
    }
}
