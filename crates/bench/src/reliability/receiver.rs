//! The harness's webhook receiver: records what arrives (`webhook-id`, client id, payload)
//! and answers as told: `200`, `400` (refusing), or not at all (down: its port is closed).

use std::{
    collections::HashMap,
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpListener, task::JoinSet};

/// One request as received.
#[derive(Debug, Clone)]
pub struct Arrival {
    /// Its `webhook-id`.
    pub id: String,
    /// The event's `clientid`.
    pub client: String,
    /// The event's `payload`.
    pub payload: String,
    /// What it was answered.
    pub status: u16,
}

#[derive(Debug, Default)]
struct State {
    arrivals: Mutex<Vec<Arrival>>,
    /// The status to answer, and how long to wait before.
    answer: Mutex<(u16, Duration)>,
}

/// The receiver, on a fixed port so it can go down and come back.
#[derive(Debug)]
pub struct Receiver {
    address: SocketAddr,
    state: Arc<State>,
    /// The accept loop and its connections while up.
    serving: Option<JoinSet<()>>,
}

impl Receiver {
    /// A receiver on a free port, down.
    ///
    /// # Errors
    /// No port could be had.
    pub fn new() -> std::io::Result<Self> {
        let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
        let address = probe.local_addr()?;
        drop(probe);
        let state = Arc::new(State {
            answer: Mutex::new((200, Duration::ZERO)),
            ..State::default()
        });
        Ok(Self {
            address,
            state,
            serving: None,
        })
    }

    /// Its URL.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}/", self.address)
    }

    /// Answers `status` after `delay` from now on.
    pub fn answer(&self, status: u16, delay: Duration) {
        *self
            .state
            .answer
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = (status, delay);
    }

    /// Starts listening (again).
    ///
    /// # Errors
    /// The port cannot be bound.
    pub async fn up(&mut self) -> std::io::Result<()> {
        if self.serving.is_some() {
            return Ok(());
        }
        let listener = TcpListener::bind(self.address).await?;
        let mut serving = JoinSet::new();
        let state = Arc::clone(&self.state);
        serving.spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                let state = Arc::clone(&state);
                connections.spawn(async move {
                    let service = service_fn(move |request| answer(Arc::clone(&state), request));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        self.serving = Some(serving);
        Ok(())
    }

    /// Stops listening and closes its connections: connections to it are refused.
    pub async fn down(&mut self) {
        if let Some(mut serving) = self.serving.take() {
            serving.abort_all();
            while serving.join_next().await.is_some() {}
        }
    }

    /// Everything received so far, in order.
    #[must_use]
    pub fn arrivals(&self) -> Vec<Arrival> {
        self.state
            .arrivals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Forgets what was received.
    pub fn clear(&self) {
        self.state
            .arrivals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

async fn answer(
    state: Arc<State>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let id = request
        .headers()
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let (status, delay) = *state.answer.lock().unwrap_or_else(PoisonError::into_inner);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let json: HashMap<String, serde_json::Value> =
        serde_json::from_slice(&body).unwrap_or_default();
    let text = |key: &str| {
        json.get(key)
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    state
        .arrivals
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Arrival {
            id,
            client: text("clientid"),
            payload: text("payload"),
            status,
        });
    let mut response = Response::new(Full::new(Bytes::from_static(b"{}")));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or_default();
    Ok(response)
}
