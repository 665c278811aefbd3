//! The HTTP client of one webhook: a connect timeout, a request timeout, TCP_NODELAY, no
//! redirects, and response bodies read up to a cap.
//!
//! Each lane sends one request at a time, so for `http` URLs a busy lane keeps its own
//! keep-alive HTTP/1.1 connection ([`LaneSender`]): no pool checkout, no shared bookkeeping
//! per request (measured on this project's 2-core machine: about 30% less CPU per request than
//! hyper-util's pool, see BENCHMARKS.md). A lane that runs out of work parks its connection
//! among the webhook's idle ones (at most `pool_size`, closed after [`POOL_IDLE_TIMEOUT`]),
//! where the next lane that needs one takes it, so light traffic reuses connections too. `https` URLs go through hyper-util's pooled client, which multiplexes
//! lanes over HTTP/2 when the server offers it and reuses TLS sessions.

use std::{
    fs::File,
    io::BufReader,
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::{body::Incoming, client::conn::http1};
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use parking_lot::Mutex;
use rustls::{
    ClientConfig, RootCertStore,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    pki_types::{CertificateDer, ServerName, UnixTime},
};
use tower_service::Service;

use crate::{
    render::RenderedRequest,
    spec::{SpecError, TlsSpec, WebhookSpec},
};

/// Response bytes read at most (the rest is discarded; the connection is then not reused).
const RESPONSE_READ_LIMIT: usize = 64 * 1024;
/// Response bytes kept for failure reports and the Test button.
pub const RESPONSE_KEPT: usize = 512;
/// Idle connections are closed after this.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The receiver's answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Status code.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// The start of the body.
    pub body_start: Bytes,
}

/// Why no answer came.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// No answer within the request timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The connection could not be made or broke.
    #[error("connection failed: {0}")]
    Connection(String),
}

/// The client of one webhook; lanes send through their own [`LaneSender`].
#[derive(Debug, Clone)]
pub struct HttpClient {
    /// For `https`: pooled, HTTP/2 when offered.
    pooled: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// For `http`: opens each lane's own connection.
    connector: HttpConnector,
    /// For `http`: connections no lane is using, newest last, with when they were parked.
    /// parking_lot mutex: touched only when a lane runs out of work or needs a connection,
    /// for a push or a pop; never held across `.await`.
    idle: Arc<Mutex<Vec<(Instant, Connection)>>>,
    /// Idle connections kept at most.
    pool_size: usize,
    request_timeout: Duration,
}

/// An open HTTP/1.1 connection, ready for a request.
type Connection = http1::SendRequest<Full<Bytes>>;

impl HttpClient {
    /// Builds the client from a webhook's delivery settings.
    ///
    /// # Errors
    /// [`SpecError`] on a `tls.*` field whose file cannot be used.
    pub fn new(spec: &WebhookSpec) -> Result<Self, SpecError> {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(spec.connect_timeout));
        let connector = http.clone();
        http.enforce_http(false);
        let tls = tls_config(&spec.tls)?;
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(http);
        let pooled = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(spec.pool_size)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(https);
        Ok(Self {
            pooled,
            connector,
            idle: Arc::default(),
            pool_size: spec.pool_size,
            request_timeout: spec.request_timeout,
        })
    }

    /// A sender for one lane (or one test request).
    #[must_use]
    pub fn lane(&self) -> LaneSender {
        LaneSender {
            client: self.clone(),
            connection: None,
        }
    }

    /// Closes idle `http` connections parked longer than [`POOL_IDLE_TIMEOUT`].
    pub fn close_idle(&self) {
        self.idle
            .lock()
            .retain(|(parked, c)| parked.elapsed() < POOL_IDLE_TIMEOUT && !c.is_closed());
    }

    /// The most recently parked idle connection still open.
    fn take_idle(&self) -> Option<Connection> {
        let mut idle = self.idle.lock();
        while let Some((parked, connection)) = idle.pop() {
            if parked.elapsed() < POOL_IDLE_TIMEOUT && !connection.is_closed() {
                return Some(connection);
            }
        }
        None
    }

    /// Keeps `connection` for another lane, if there is room.
    fn park(&self, connection: Connection) {
        let mut idle = self.idle.lock();
        if idle.len() < self.pool_size && !connection.is_closed() {
            idle.push((Instant::now(), connection));
        }
    }

    /// Sends `request` with `extra` headers on the pooled client.
    async fn send_pooled(
        &self,
        request: &RenderedRequest,
        extra: HeaderMap,
    ) -> Result<Answer, SendError> {
        let http_request = build(request, extra, false)?;
        let exchange = async {
            let response = self
                .pooled
                .request(http_request)
                .await
                .map_err(|e| SendError::Connection(describe(&e)))?;
            Ok(read_answer(response).await.0)
        };
        tokio::time::timeout(self.request_timeout, exchange)
            .await
            .map_err(|_| SendError::Timeout(self.request_timeout))?
    }

    /// Opens a connection for an `http` lane.
    async fn connect(&self, uri: &Uri) -> Result<Connection, SendError> {
        let io = self
            .connector
            .clone()
            .call(uri.clone())
            .await
            .map_err(|e| SendError::Connection(describe(&e)))?;
        let (sender, connection) = http1::handshake(io)
            .await
            .map_err(|e| SendError::Connection(describe(&e)))?;
        // Its own task: hyper's connection must be driven while the lane awaits the answer.
        // It ends when the lane drops the sender or the receiver closes the connection.
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::trace!(%error, "webhook connection closed");
            }
        });
        Ok(sender)
    }
}

/// One lane's way to the receiver: its own keep-alive connection for `http`, the pooled
/// client for `https`.
#[derive(Debug)]
pub struct LaneSender {
    client: HttpClient,
    /// Kept between requests while the lane is busy; taken out while one is in flight, so a
    /// request that did not end cleanly (timeout, error, body too long) never leaves its
    /// connection for reuse.
    connection: Option<Connection>,
}

impl LaneSender {
    /// The lane has no more work for now: its connection joins the webhook's idle ones (or is
    /// closed if `pool_size` are idle already).
    pub fn park(&mut self) {
        if let Some(connection) = self.connection.take() {
            self.client.park(connection);
        }
    }

    /// Sends `request` with `extra` headers added.
    ///
    /// # Errors
    /// [`SendError`] when no answer came.
    pub async fn send(
        &mut self,
        request: &RenderedRequest,
        extra: HeaderMap,
    ) -> Result<Answer, SendError> {
        if request.uri.scheme() != Some(&http::uri::Scheme::HTTP) {
            return self.client.send_pooled(request, extra).await;
        }
        let timeout = self.client.request_timeout;
        tokio::time::timeout(timeout, self.exchange(request, extra))
            .await
            .map_err(|_| SendError::Timeout(timeout))?
    }

    async fn exchange(
        &mut self,
        request: &RenderedRequest,
        extra: HeaderMap,
    ) -> Result<Answer, SendError> {
        // A kept connection the receiver closed while idle fails at once; then one fresh
        // connection is tried.
        let mut reused = true;
        loop {
            let kept = match self.connection.take() {
                Some(sender) if !sender.is_closed() => Some(sender),
                _ if reused => self.client.take_idle(),
                _ => None,
            };
            let mut sender = match kept {
                Some(sender) => sender,
                None => {
                    reused = false;
                    self.client.connect(&request.uri).await?
                }
            };
            if sender.ready().await.is_err() {
                if reused {
                    reused = false;
                    continue;
                }
                return Err(SendError::Connection("connection closed".into()));
            }
            let response = match sender
                .send_request(build(request, extra.clone(), true)?)
                .await
            {
                Ok(response) => response,
                // A kept connection failed without an answer: most often the receiver closed
                // it as the request went out (keep-alive race). Once more, on a fresh one.
                // Delivery is at least once, so a receiver that acted and then closed without
                // answering sees a duplicate, as it would after a timeout.
                Err(_) if reused => {
                    reused = false;
                    continue;
                }
                Err(error) => return Err(SendError::Connection(describe(&error))),
            };
            let (answer, complete) = read_answer(response).await;
            if complete {
                self.connection = Some(sender);
            }
            return Ok(answer);
        }
    }
}

/// The HTTP request for `request` plus `extra` headers. `origin_form`: the target is the path
/// and query with a `Host` header, as sent on a connection of our own.
fn build(
    request: &RenderedRequest,
    extra: HeaderMap,
    origin_form: bool,
) -> Result<http::Request<Full<Bytes>>, SendError> {
    let uri = if origin_form {
        request
            .uri
            .path_and_query()
            .map_or_else(|| Uri::from_static("/"), |p| Uri::from(p.clone()))
    } else {
        request.uri.clone()
    };
    let mut builder = http::Request::builder()
        .method(request.method.clone())
        .uri(uri);
    if let Some(headers) = builder.headers_mut() {
        headers.clone_from(&request.headers);
        headers.extend(extra);
        if origin_form
            && !headers.contains_key(http::header::HOST)
            && let Some(authority) = request.uri.authority()
            && let Ok(host) = http::HeaderValue::from_str(authority.as_str())
        {
            headers.insert(http::header::HOST, host);
        }
    }
    builder
        .body(Full::new(request.body.clone()))
        .map_err(|e| SendError::Connection(e.to_string()))
}

/// The answer, and whether its body was read to the end (only then can the connection carry
/// another request).
async fn read_answer(response: http::Response<Incoming>) -> (Answer, bool) {
    let (parts, mut body) = response.into_parts();
    let mut kept = BytesMut::new();
    let mut read = 0;
    let mut complete = false;
    while read < RESPONSE_READ_LIMIT {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    read += data.len();
                    let room = RESPONSE_KEPT.saturating_sub(kept.len());
                    kept.extend_from_slice(&data[..room.min(data.len())]);
                }
            }
            None => {
                complete = true;
                break;
            }
            // A body cut short still carries the status that matters.
            Some(Err(_)) => break,
        }
    }
    let answer = Answer {
        status: parts.status,
        headers: parts.headers,
        body_start: kept.freeze(),
    };
    (answer, complete)
}

/// The error and its causes on one line.
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn read_pem(path: &Path, field: &str) -> Result<BufReader<File>, SpecError> {
    File::open(path)
        .map(BufReader::new)
        .map_err(|e| SpecError::new(field, format!("cannot read {}: {e}", path.display())))
}

fn tls_config(tls: &TlsSpec) -> Result<ClientConfig, SpecError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| SpecError::new("tls", e.to_string()))?;
    let builder = if tls.verify {
        let mut roots = RootCertStore::empty();
        match &tls.ca_file {
            Some(path) => {
                for cert in rustls_pemfile::certs(&mut read_pem(path, "tls.ca_file")?) {
                    let cert = cert.map_err(|e| SpecError::new("tls.ca_file", e.to_string()))?;
                    roots
                        .add(cert)
                        .map_err(|e| SpecError::new("tls.ca_file", e.to_string()))?;
                }
                if roots.is_empty() {
                    return Err(SpecError::new("tls.ca_file", "no certificate in the file"));
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        builder.with_root_certificates(roots)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
    };
    match (&tls.certfile, &tls.keyfile) {
        (Some(cert), Some(key)) => {
            let chain = rustls_pemfile::certs(&mut read_pem(cert, "tls.certfile")?)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| SpecError::new("tls.certfile", e.to_string()))?;
            let key = rustls_pemfile::private_key(&mut read_pem(key, "tls.keyfile")?)
                .map_err(|e| SpecError::new("tls.keyfile", e.to_string()))?
                .ok_or_else(|| SpecError::new("tls.keyfile", "no private key in the file"))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| SpecError::new("tls.certfile", e.to_string()))
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

/// Accepts any server certificate (`tls.verify = false`); signatures are still checked.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
