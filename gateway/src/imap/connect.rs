//! Opening an IMAP session: TCP, then implicit TLS or STARTTLS as configured, the greeting,
//! and LOGIN. Every step has a deadline, so a silent server is an error, not a stall.

use super::config::{ImapSourceConfig, ImapTls};
use crate::GatewayError;
use async_imap::{Client, Session};
use std::future::Future;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;

/// How long any one IMAP exchange may take before the connection counts as dead.
pub(super) const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(60);

/// A plain or TLS connection, one type for the session.
pub(super) trait Transport: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug> Transport for T {}

pub(super) type ImapSession = Session<Box<dyn Transport>>;

/// Runs one IMAP exchange under the deadline.
pub(super) async fn timed<T, E>(
    what: &str,
    f: impl Future<Output = Result<T, E>>,
) -> Result<T, GatewayError>
where
    GatewayError: From<E>,
{
    match tokio::time::timeout(EXCHANGE_TIMEOUT, f).await {
        Ok(r) => r.map_err(GatewayError::from),
        Err(_) => Err(GatewayError::Imap(format!(
            "no answer to {what} within {} s",
            EXCHANGE_TIMEOUT.as_secs()
        ))),
    }
}

/// Connects and logs in.
pub(super) async fn connect(source: &ImapSourceConfig) -> Result<ImapSession, GatewayError> {
    let tcp = timed(
        "connect",
        TcpStream::connect((source.host.as_str(), source.port)),
    )
    .await
    .map_err(|e| {
        GatewayError::Imap(format!(
            "cannot connect to {}:{}: {e}",
            source.host, source.port
        ))
    })?;
    let _ = tcp.set_nodelay(true);
    let stream: Box<dyn Transport> = match source.tls {
        ImapTls::None => Box::new(tcp),
        ImapTls::Implicit => Box::new(wrap_tls(source, tcp).await?),
        ImapTls::StartTls => {
            let mut client = Client::new(tcp);
            read_greeting(&mut client).await?;
            timed(
                "STARTTLS",
                client.run_command_and_check_ok("STARTTLS", None),
            )
            .await?;
            Box::new(wrap_tls(source, client.into_inner()).await?)
        }
    };
    let mut client = Client::new(stream);
    if source.tls != ImapTls::StartTls {
        read_greeting(&mut client).await?;
    }
    match tokio::time::timeout(
        EXCHANGE_TIMEOUT,
        client.login(&source.user, &source.password),
    )
    .await
    {
        Ok(Ok(session)) => Ok(session),
        Ok(Err((e, _))) => Err(GatewayError::Imap(format!(
            "login as {} refused: {e}",
            source.user
        ))),
        Err(_) => Err(GatewayError::Imap("no answer to LOGIN".into())),
    }
}

async fn wrap_tls<S: AsyncRead + AsyncWrite + Unpin>(
    source: &ImapSourceConfig,
    stream: S,
) -> Result<tokio_rustls::client::TlsStream<S>, GatewayError> {
    let connector = crate::tls::client_connector(source.ca_file.as_deref())?;
    let name = ServerName::try_from(source.host.clone())
        .map_err(|e| GatewayError::Tls(format!("{:?} is not a server name: {e}", source.host)))?;
    timed("the TLS handshake", connector.connect(name, stream)).await
}

async fn read_greeting<T: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug>(
    client: &mut Client<T>,
) -> Result<(), GatewayError> {
    match timed("the greeting", client.read_response()).await? {
        Some(_) => Ok(()),
        None => Err(GatewayError::Imap(
            "the server closed the connection before its greeting".into(),
        )),
    }
}
