//! The HTTP client of one webhook: hyper-util's pooled client (keep-alive, TCP_NODELAY,
//! HTTP/1.1, and HTTP/2 when a TLS server offers it), a connect timeout, a request timeout, no
//! redirects, and response bodies read up to a cap.

use std::{fs::File, io::BufReader, path::Path, sync::Arc, time::Duration};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use rustls::{
    ClientConfig, RootCertStore,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    pki_types::{CertificateDer, ServerName, UnixTime},
};

use crate::{
    render::RenderedRequest,
    spec::{SpecError, TlsSpec, WebhookSpec},
};

/// Response bytes read at most (the rest is discarded; the connection is then not reused).
const RESPONSE_READ_LIMIT: usize = 64 * 1024;
/// Response bytes kept for failure reports and the Test button.
pub const RESPONSE_KEPT: usize = 512;
/// Idle connections are closed after this.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

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

/// A pooled client for one webhook.
#[derive(Debug, Clone)]
pub struct HttpClient {
    inner: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    request_timeout: Duration,
}

impl HttpClient {
    /// Builds the client from a webhook's delivery settings.
    ///
    /// # Errors
    /// [`SpecError`] on a `tls.*` field whose file cannot be used.
    pub fn new(spec: &WebhookSpec) -> Result<Self, SpecError> {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(spec.connect_timeout));
        http.enforce_http(false);
        let tls = tls_config(&spec.tls)?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(http);
        let inner = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(spec.pool_size)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(connector);
        Ok(Self {
            inner,
            request_timeout: spec.request_timeout,
        })
    }

    /// Sends `request` with `extra` headers added.
    ///
    /// # Errors
    /// [`SendError`] when no answer came.
    pub async fn send(
        &self,
        request: &RenderedRequest,
        extra: HeaderMap,
    ) -> Result<Answer, SendError> {
        let mut builder = http::Request::builder()
            .method(request.method.clone())
            .uri(request.uri.clone());
        if let Some(headers) = builder.headers_mut() {
            headers.clone_from(&request.headers);
            headers.extend(extra);
        }
        let http_request = builder
            .body(Full::new(request.body.clone()))
            .map_err(|e| SendError::Connection(e.to_string()))?;
        let exchange = async {
            let response = self
                .inner
                .request(http_request)
                .await
                .map_err(|e| SendError::Connection(describe(&e)))?;
            let (parts, mut body) = response.into_parts();
            let mut kept = BytesMut::new();
            let mut read = 0;
            while read < RESPONSE_READ_LIMIT {
                match body.frame().await {
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            read += data.len();
                            let room = RESPONSE_KEPT.saturating_sub(kept.len());
                            kept.extend_from_slice(&data[..room.min(data.len())]);
                        }
                    }
                    // A body cut short still carries the status that matters.
                    Some(Err(_)) | None => break,
                }
            }
            Ok(Answer {
                status: parts.status,
                headers: parts.headers,
                body_start: kept.freeze(),
            })
        };
        tokio::time::timeout(self.request_timeout, exchange)
            .await
            .map_err(|_| SendError::Timeout(self.request_timeout))?
    }
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
