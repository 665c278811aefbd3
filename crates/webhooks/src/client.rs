//! The HTTP client of one webhook: a connect timeout, a request timeout, TCP_NODELAY, no
//! redirects, and response bodies read up to a cap.
//!
//! For `http` URLs each lane owns a keep-alive HTTP/1.1 connection ([`Pipe`]) and pipelines
//! up to `pipelining` requests on it (see `delivery`); the bytes are [`wire`]'s. A lane that
//! runs out of work parks its connection among the webhook's idle ones (at most `pool_size`,
//! closed after [`POOL_IDLE_TIMEOUT`]), where the next lane that needs one takes it.
//! `https` URLs go through hyper-util's pooled client, which multiplexes lanes over HTTP/2
//! when the server offers it and reuses TLS sessions. [`LaneSender`] sends one request at a
//! time either way (https lanes, the Test button).

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
use hyper::body::Incoming;
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
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::{
    egress::{Egress, Resolver},
    render::RenderedRequest,
    spec::{SpecError, TlsSpec, WebhookSpec},
    wire::{self, Parsed},
};

/// Response bytes read at most (the rest is discarded; the connection is then not reused).
const RESPONSE_READ_LIMIT: usize = 64 * 1024;
/// Response bytes kept for failure reports and the Test button.
pub const RESPONSE_KEPT: usize = 512;
/// Idle connections are closed after this.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Read buffer growth step of a connection.
const INPUT_CHUNK: usize = 8 * 1024;

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
    /// TLS refused the receiver (its certificate, the protocol): retrying cannot help until
    /// the receiver or the webhook's `tls` settings change.
    #[error("TLS failed: {0}")]
    Tls(String),
    /// The receiver's addresses are all in networks the egress policy denies: retrying
    /// cannot help until the policy or the receiver's address changes.
    #[error("refused: {0}")]
    Denied(String),
}

/// The client of one webhook; lanes send through their own [`LaneSender`].
#[derive(Debug, Clone)]
pub struct HttpClient {
    /// For `https`: pooled, HTTP/2 when offered; names resolved through the egress guard.
    pooled: Client<HttpsConnector<HttpConnector<Resolver>>, Full<Bytes>>,
    /// The networks requests may reach.
    egress: Egress,
    /// For `http`: connections no lane is using, newest last, with when they were parked.
    /// parking_lot mutex: touched only when a lane runs out of work or needs a connection,
    /// for a push or a pop; never held across `.await`.
    idle: Arc<Mutex<Vec<(Instant, Pipe)>>>,
    /// Idle connections kept at most.
    pool_size: usize,
    connect_timeout: Duration,
    /// Time allowed for one request, answer included.
    pub(crate) request_timeout: Duration,
}

impl HttpClient {
    /// Builds the client from a webhook's delivery settings, reaching only what `egress`
    /// permits.
    ///
    /// # Errors
    /// [`SpecError`] on a `tls.*` field whose file cannot be used.
    pub fn new(spec: &WebhookSpec, egress: &Egress) -> Result<Self, SpecError> {
        let mut http = HttpConnector::new_with_resolver(egress.resolver());
        http.set_nodelay(true);
        http.set_connect_timeout(Some(spec.connect_timeout));
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
            egress: egress.clone(),
            idle: Arc::default(),
            pool_size: spec.pool_size,
            connect_timeout: spec.connect_timeout,
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
            .retain(|(parked, _)| parked.elapsed() < POOL_IDLE_TIMEOUT);
    }

    /// The most recently parked idle connection to `uri`'s origin (a webhook with several
    /// URLs parks connections to each). One the receiver closed meanwhile fails at its
    /// first request, which is then sent again on a fresh one.
    pub(crate) fn take_idle(&self, uri: &Uri) -> Option<Pipe> {
        let mut idle = self.idle.lock();
        idle.retain(|(parked, _)| parked.elapsed() < POOL_IDLE_TIMEOUT);
        let newest = idle
            .iter()
            .rposition(|(_, pipe)| same_origin(&pipe.origin, uri))?;
        Some(idle.remove(newest).1)
    }

    /// Keeps `pipe` for another lane, if there is room and it has nothing half-read.
    pub(crate) fn park(&self, pipe: Pipe) {
        if !pipe.input.is_empty() || pipe.eof {
            return;
        }
        let mut idle = self.idle.lock();
        if idle.len() < self.pool_size {
            idle.push((Instant::now(), pipe));
        }
    }

    /// Sends `request` with `extra` headers on the pooled client.
    async fn send_pooled(
        &self,
        request: &RenderedRequest,
        extra: HeaderMap,
    ) -> Result<Answer, SendError> {
        // hyper-util connects to an IP literal without asking the resolver.
        if let Some(host) = request.uri.host()
            && host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok()
        {
            self.egress.resolve(host, 0).await?;
        }
        let http_request = build(request, extra)?;
        let exchange = async {
            let response = self.pooled.request(http_request).await.map_err(|e| {
                if let Some(denied) = denial(&e) {
                    denied
                } else if is_tls(&e) {
                    SendError::Tls(describe(&e))
                } else {
                    SendError::Connection(describe(&e))
                }
            })?;
            Ok(read_answer(response).await.0)
        };
        tokio::time::timeout(self.request_timeout, exchange)
            .await
            .map_err(|_| SendError::Timeout(self.request_timeout))?
    }

    /// Opens a connection for an `http` lane: TCP with TCP_NODELAY, to the first address of
    /// the host the egress policy permits that answers, within the connect timeout.
    pub(crate) async fn connect(&self, uri: &Uri) -> Result<Pipe, SendError> {
        let stream = self.open(uri).await?;
        stream
            .set_nodelay(true)
            .map_err(|e| SendError::Connection(e.to_string()))?;
        Ok(Pipe {
            origin: Box::new(uri.clone()),
            stream,
            input: BytesMut::with_capacity(INPUT_CHUNK),
            answered: 0,
            eof: false,
        })
    }

    /// Whether the receiver at `uri` accepts a connection now, as EMQX's connector health
    /// check finds out (no request is sent; an `https` connection is not negotiated). The
    /// connection is closed at once: a receiver serving one connection at a time is not
    /// held up by an idle one.
    pub(crate) async fn reach(&self, uri: &Uri) -> Result<(), SendError> {
        self.open(uri).await.map(drop)
    }

    /// A TCP connection to `uri`'s host (the first of its addresses the egress policy
    /// permits that answers), within the connect timeout.
    async fn open(&self, uri: &Uri) -> Result<TcpStream, SendError> {
        let host = uri
            .host()
            .ok_or_else(|| SendError::Connection("no host in the URL".into()))?;
        let https = uri.scheme_str() == Some("https");
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let timeout = self.connect_timeout;
        let attempt = async {
            let addresses = self.egress.resolve(host, port).await?;
            let mut last = None;
            for address in addresses {
                match TcpStream::connect(address).await {
                    Ok(stream) => return Ok(stream),
                    Err(error) => last = Some(format!("connect to {address}: {error}")),
                }
            }
            Err(SendError::Connection(last.unwrap_or_else(|| {
                format!("{host} resolves to no address")
            })))
        };
        tokio::time::timeout(timeout, attempt)
            .await
            .map_err(|_| SendError::Connection(format!("connect timed out after {timeout:?}")))?
    }
}

/// Whether `a` and `b` have the same scheme and authority (a connection to one serves both).
fn same_origin(a: &Uri, b: &Uri) -> bool {
    a.scheme() == b.scheme() && a.authority() == b.authority()
}

/// One lane's way to the receiver for one request at a time: a connection of its own for
/// `http` (the Test button), the pooled client for `https`.
#[derive(Debug)]
pub struct LaneSender {
    client: HttpClient,
    /// Kept between requests while the lane is busy; taken out while one is in flight, so a
    /// request that did not end cleanly (timeout, error, body too long) never leaves its
    /// connection for reuse.
    connection: Option<Pipe>,
}

impl LaneSender {
    /// The lane has no more work for now: its connection joins the webhook's idle ones (or is
    /// closed if `pool_size` are idle already).
    pub fn park(&mut self) {
        if let Some(pipe) = self.connection.take() {
            self.client.park(pipe);
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
        tokio::time::timeout(timeout, self.exchange(request, &extra))
            .await
            .map_err(|_| SendError::Timeout(timeout))?
    }

    async fn exchange(
        &mut self,
        request: &RenderedRequest,
        extra: &HeaderMap,
    ) -> Result<Answer, SendError> {
        let mut out = BytesMut::new();
        wire::encode(request, extra, &mut out);
        // A kept connection the receiver closed while idle fails without an answer; then
        // one fresh connection is tried.
        loop {
            let (mut pipe, reused) = match self
                .connection
                .take()
                .or_else(|| self.client.take_idle(&request.uri))
            {
                Some(pipe) => (pipe, true),
                None => (self.client.connect(&request.uri).await?, false),
            };
            let result = match pipe.write(&out).await {
                Ok(()) => pipe.next_answer().await,
                Err(error) => Err(error),
            };
            match result {
                Ok(parsed) => {
                    if parsed.reusable {
                        self.connection = Some(pipe);
                    }
                    return Ok(parsed.answer);
                }
                // Most often the receiver closed a kept connection as the request went out
                // (keep-alive race). Delivery is at least once, so a receiver that acted and
                // then closed without answering sees a duplicate, as after a timeout.
                Err(_) if reused => {}
                Err(error) => return Err(error),
            }
        }
    }
}

/// An open HTTP/1.1 connection to the receiver, with what it has read and not yet parsed.
#[derive(Debug)]
pub(crate) struct Pipe {
    /// Where it goes (the scheme and authority count); boxed, as a lane holds a pipe inline.
    origin: Box<Uri>,
    stream: TcpStream,
    input: BytesMut,
    /// Answers taken off this connection so far.
    pub(crate) answered: u64,
    eof: bool,
}

impl Pipe {
    /// Writes all of `bytes`.
    pub(crate) async fn write(&mut self, bytes: &[u8]) -> Result<(), SendError> {
        self.stream
            .write_all(bytes)
            .await
            .map_err(|e| SendError::Connection(format!("write: {e}")))
    }

    /// The next answer if it is already read (no I/O).
    pub(crate) fn try_answer(&mut self) -> Result<Option<Parsed>, SendError> {
        let parsed = wire::take_answer(&mut self.input, self.eof)
            .map_err(|e| SendError::Connection(e.to_string()))?;
        if parsed.is_some() {
            self.answered += 1;
        }
        Ok(parsed)
    }

    /// The next answer, reading as needed.
    pub(crate) async fn next_answer(&mut self) -> Result<Parsed, SendError> {
        loop {
            if let Some(parsed) = self.try_answer()? {
                return Ok(parsed);
            }
            if self.eof {
                return Err(SendError::Connection(
                    "connection closed by the receiver".into(),
                ));
            }
            if self.input.capacity() - self.input.len() < INPUT_CHUNK / 4 {
                self.input.reserve(INPUT_CHUNK);
            }
            match self.stream.read_buf(&mut self.input).await {
                Ok(0) => self.eof = true,
                Ok(_) => {}
                Err(e) => return Err(SendError::Connection(format!("read: {e}"))),
            }
        }
    }
}

/// The HTTP request for `request` plus `extra` headers, for the pooled client.
fn build(
    request: &RenderedRequest,
    extra: HeaderMap,
) -> Result<http::Request<Full<Bytes>>, SendError> {
    let mut builder = http::Request::builder()
        .method(request.method.clone())
        .uri(request.uri.clone());
    if let Some(headers) = builder.headers_mut() {
        headers.clone_from(&request.headers);
        headers.extend(extra);
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
/// Whether `error` comes from TLS itself (rustls refused a certificate or the handshake),
/// rather than from the network under it.
fn is_tls(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(cause) = source {
        if cause.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        // An io::Error's `source` skips the error it wraps: follow `get_ref` instead.
        source = match cause.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => cause.source(),
        };
    }
    false
}

/// The egress guard's refusal somewhere in a hyper error's causes.
fn denial(error: &(dyn std::error::Error + 'static)) -> Option<SendError> {
    let mut source = Some(error);
    while let Some(cause) = source {
        if let Some(denied @ SendError::Denied(_)) = cause.downcast_ref::<SendError>() {
            return Some(denied.clone());
        }
        source = match cause.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => cause.source(),
        };
    }
    None
}

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

#[cfg(test)]
mod tests {
    use super::*;

    /// Small requests go out at once: an `http` lane's connection has Nagle's algorithm off.
    #[tokio::test]
    async fn lane_connections_have_tcp_nodelay() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("listener");
        let url = format!("http://{}/", listener.local_addr().expect("address"));
        let client =
            HttpClient::new(&WebhookSpec::new("w", &url), &Egress::default()).expect("client");
        let pipe = client
            .connect(&url.parse().expect("uri"))
            .await
            .expect("connects");
        assert!(pipe.stream.nodelay().expect("option readable"));
    }
}
