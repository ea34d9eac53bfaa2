//! TLS settings: the receiver's certificate and key (STARTTLS), and the trusted roots the
//! IMAP client checks servers against.

use crate::GatewayError;
use std::path::Path;
use std::sync::Arc;
use tokio_rustls::rustls;

/// A TLS acceptor from a PEM certificate chain and private key.
pub fn load_tls(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor, GatewayError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|e| GatewayError::Tls(format!("cannot read {}: {e}", p.display())))
    };
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let certs = rustls_pemfile::certs(&mut &cert_pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| GatewayError::Tls(format!("{}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(GatewayError::Tls(format!(
            "{} holds no certificate",
            cert.display()
        )));
    }
    let key = rustls_pemfile::private_key(&mut &key_pem[..])
        .map_err(|e| GatewayError::Tls(format!("{}: {e}", key.display())))?
        .ok_or_else(|| GatewayError::Tls(format!("{} holds no private key", key.display())))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| GatewayError::Tls(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| GatewayError::Tls(e.to_string()))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// A TLS connector trusting the system's roots and, if given, the certificates in `ca_file`.
pub(crate) fn client_connector(
    ca_file: Option<&Path>,
) -> Result<tokio_rustls::TlsConnector, GatewayError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| GatewayError::Tls(format!("cannot read {}: {e}", path.display())))?;
        let certs = rustls_pemfile::certs(&mut &pem[..])
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| GatewayError::Tls(format!("{}: {e}", path.display())))?;
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(GatewayError::Tls(format!(
                "{} holds no usable certificate",
                path.display()
            )));
        }
    }
    if roots.is_empty() {
        return Err(GatewayError::Tls(
            "no trusted root certificates: install ca-certificates or set ca_file".into(),
        ));
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| GatewayError::Tls(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}
