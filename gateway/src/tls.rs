//! STARTTLS: the server certificate and key loaded from PEM files.

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
