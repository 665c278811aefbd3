//! TLS server configuration from PEM files.

use std::{fs::File, io::BufReader, path::Path, sync::Arc};

use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

use crate::error::BrokerError;

/// Builds an acceptor from a PEM certificate chain and a PEM private key.
///
/// # Errors
/// [`BrokerError::Tls`] naming the listener and the file that could not be used.
pub(crate) fn acceptor(
    listener: &str,
    certfile: &Path,
    keyfile: &Path,
) -> Result<TlsAcceptor, BrokerError> {
    let fail = |reason: String| BrokerError::Tls {
        listener: listener.to_owned(),
        reason,
    };
    let open = |path: &Path| {
        File::open(path)
            .map(BufReader::new)
            .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))
    };
    let certs = rustls_pemfile::certs(&mut open(certfile)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(format!("bad certificate in {}: {e}", certfile.display())))?;
    if certs.is_empty() {
        return Err(fail(format!("no certificate in {}", certfile.display())));
    }
    let key = rustls_pemfile::private_key(&mut open(keyfile)?)
        .map_err(|e| fail(format!("bad private key in {}: {e}", keyfile.display())))?
        .ok_or_else(|| fail(format!("no private key in {}", keyfile.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| fail(format!("certificate and key do not fit: {e}")))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
