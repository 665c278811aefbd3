//! A minimal HTTP receiver: answers every request `200 ok` and counts them.
//! `GET /count` answers `<requests> <ms from first to last request>` (that request is not
//! counted), so a benchmark can compute the delivered rate.

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
}

#[derive(Debug)]
struct Counts {
    started: Instant,
    requests: AtomicU64,
    /// µs since `started` of the first and the last request (0 = none yet).
    first_us: AtomicU64,
    last_us: AtomicU64,
}

async fn handle(
    counts: Arc<Counts>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if request.uri().path() == "/count" {
        let n = counts.requests.load(Ordering::Relaxed);
        let span = counts
            .last_us
            .load(Ordering::Relaxed)
            .saturating_sub(counts.first_us.load(Ordering::Relaxed));
        return Ok(Response::new(Full::new(Bytes::from(format!(
            "{n} {}\n",
            span / 1000
        )))));
    }
    // Read the body, as a real receiver does.
    let _ = request.into_body().collect().await;
    let now = u64::try_from(counts.started.elapsed().as_micros())
        .unwrap_or(u64::MAX)
        .max(1);
    let _ = counts
        .first_us
        .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
    counts.last_us.fetch_max(now, Ordering::Relaxed);
    counts.requests.fetch_add(1, Ordering::Relaxed);
    Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(args.bind).await?;
    let counts = Arc::new(Counts {
        started: Instant::now(),
        requests: AtomicU64::new(0),
        first_us: AtomicU64::new(0),
        last_us: AtomicU64::new(0),
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
