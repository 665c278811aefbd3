//! TLS server configuration from PEM files: the listener's certificate (reloadable, see
//! [`Certificates`]), and optionally the CAs that sign client certificates and which name
//! of a verified client certificate becomes the client's user name.

use std::{
    fmt,
    fs::File,
    io::BufReader,
    path::{Path, PathBuf},
    sync::Arc,
};

use arc_swap::ArcSwap;
use rustls::{
    RootCertStore, ServerConfig, ServerConnection,
    crypto::CryptoProvider,
    server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier},
    sign::CertifiedKey,
};
use tokio_rustls::TlsAcceptor;

use crate::{
    config::{ListenerConfig, PeerCertField},
    error::BrokerError,
};

/// A listener's certificate and key, swapped whole when their files are read again
/// (`SIGHUP`): connections open keep their session, new handshakes get the new pair.
pub(crate) struct Certificates {
    listener: String,
    certfile: PathBuf,
    keyfile: PathBuf,
    provider: Arc<CryptoProvider>,
    /// Read on every handshake, replaced on reload.
    current: ArcSwap<CertifiedKey>,
}

impl fmt::Debug for Certificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificates")
            .field("listener", &self.listener)
            .field("certfile", &self.certfile)
            .finish_non_exhaustive()
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

impl Certificates {
    /// Reads the certificate and key files again; on failure the pair in use stays.
    ///
    /// # Errors
    /// [`BrokerError::Tls`] naming the listener and the file.
    pub(crate) fn reload(&self) -> Result<(), BrokerError> {
        let pair = certified_key(
            &self.listener,
            &self.certfile,
            &self.keyfile,
            &self.provider,
        )?;
        self.current.store(Arc::new(pair));
        Ok(())
    }

    /// The listener's name.
    pub(crate) fn listener(&self) -> &str {
        &self.listener
    }
}

/// What a TLS listener accepts with.
pub(crate) struct Tls {
    pub(crate) acceptor: TlsAcceptor,
    pub(crate) certificates: Arc<Certificates>,
}

/// Builds a listener's TLS set-up from its configuration.
///
/// # Errors
/// [`BrokerError::Tls`] naming the listener and the file that could not be used.
pub(crate) fn acceptor(
    listener: &str,
    config: &ListenerConfig,
    certfile: &Path,
    keyfile: &Path,
) -> Result<Tls, BrokerError> {
    let fail = |reason: String| BrokerError::Tls {
        listener: listener.to_owned(),
        reason,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let pair = certified_key(listener, certfile, keyfile, &provider)?;
    let certificates = Arc::new(Certificates {
        listener: listener.to_owned(),
        certfile: certfile.to_owned(),
        keyfile: keyfile.to_owned(),
        provider: Arc::clone(&provider),
        current: ArcSwap::from_pointee(pair),
    });
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(e.to_string()))?;
    let builder = match &config.cacertfile {
        None => builder.with_no_client_auth(),
        Some(cacertfile) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs(listener, cacertfile)? {
                roots
                    .add(cert)
                    .map_err(|e| fail(format!("bad CA in {}: {e}", cacertfile.display())))?;
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider));
            let verifier = if config.fail_if_no_peer_cert {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            let verifier = verifier
                .build()
                .map_err(|e| fail(format!("client verification: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let server =
        builder.with_cert_resolver(Arc::clone(&certificates) as Arc<dyn ResolvesServerCert>);
    Ok(Tls {
        acceptor: TlsAcceptor::from(Arc::new(server)),
        certificates,
    })
}

/// Reads a PEM certificate chain and private key and checks that they fit.
fn certified_key(
    listener: &str,
    certfile: &Path,
    keyfile: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, BrokerError> {
    let fail = |reason: String| BrokerError::Tls {
        listener: listener.to_owned(),
        reason,
    };
    let certs = read_certs(listener, certfile)?;
    if certs.is_empty() {
        return Err(fail(format!("no certificate in {}", certfile.display())));
    }
    let key = rustls_pemfile::private_key(&mut open(listener, keyfile)?)
        .map_err(|e| fail(format!("bad private key in {}: {e}", keyfile.display())))?
        .ok_or_else(|| fail(format!("no private key in {}", keyfile.display())))?;
    let pair = CertifiedKey::from_der(certs, key, provider)
        .map_err(|e| fail(format!("certificate and key do not fit: {e}")))?;
    Ok(pair)
}

fn open(listener: &str, path: &Path) -> Result<BufReader<File>, BrokerError> {
    File::open(path)
        .map(BufReader::new)
        .map_err(|e| BrokerError::Tls {
            listener: listener.to_owned(),
            reason: format!("cannot read {}: {e}", path.display()),
        })
}

fn read_certs(
    listener: &str,
    path: &Path,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, BrokerError> {
    rustls_pemfile::certs(&mut open(listener, path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| BrokerError::Tls {
            listener: listener.to_owned(),
            reason: format!("bad certificate in {}: {e}", path.display()),
        })
}

/// What a client certificate says about its client's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PeerName {
    /// No certificate, or the listener takes no names from certificates.
    Absent,
    /// The name the certificate gives.
    Named(Arc<str>),
    /// A verified certificate without the field the listener takes names from: refused,
    /// rather than letting its client log in some other way.
    Unnamed,
}

/// The name a verified client certificate gives its client.
pub(crate) fn peer_name(connection: &ServerConnection, field: Option<PeerCertField>) -> PeerName {
    let (Some(field), Some(der)) = (field, connection.peer_certificates().and_then(<[_]>::first))
    else {
        return PeerName::Absent;
    };
    name_in(der, field).map_or(PeerName::Unnamed, PeerName::Named)
}

/// The subject of a verified client certificate: its common name and its whole
/// distinguished name (`None` each without a certificate or that part).
pub(crate) fn subject(connection: &ServerConnection) -> (Option<Arc<str>>, Option<Arc<str>>) {
    let Some(der) = connection.peer_certificates().and_then(<[_]>::first) else {
        return (None, None);
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return (None, None);
    };
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(Arc::from);
    let dn = cert.subject().to_string();
    (cn, (!dn.is_empty()).then(|| dn.into()))
}

fn name_in(der: &[u8], field: PeerCertField) -> Option<Arc<str>> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let name = match field {
        PeerCertField::Cn => cert
            .subject()
            .iter_common_name()
            .next()?
            .as_str()
            .ok()?
            .to_owned(),
        PeerCertField::San => cert
            .subject_alternative_name()
            .ok()??
            .value
            .general_names
            .iter()
            .find_map(|name| match name {
                x509_parser::extensions::GeneralName::DNSName(dns) => Some((*dns).to_owned()),
                _ => None,
            })?,
    };
    (!name.is_empty()).then(|| name.into())
}
