//! The relay transport (mail-send): `smtp://host:port` with STARTTLS when offered, or
//! `smtps://` for implicit TLS, optional AUTH. Failures are sorted into temporary (4xx,
//! refused connection, timeout: retried) and permanent (5xx: marked failed with the
//! server's answer).

use crate::NotifierError;
use mail_send::smtp::message::Message;
use mail_send::SmtpClientBuilder;
use std::time::Duration;

#[derive(Debug, Clone, Default)]
pub struct RelayConfig {
    pub url: String,
    pub username: String,
    pub password: String,
}

pub struct RelayTransport {
    host: String,
    port: u16,
    implicit_tls: bool,
    credentials: Option<(String, String)>,
    timeout: Duration,
}

/// Why a send did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    Temporary(String),
    Permanent(String),
}

impl RelayTransport {
    pub fn new(config: &RelayConfig) -> Result<RelayTransport, NotifierError> {
        let bad = || {
            NotifierError::Config(format!(
                "relay url {:?} must look like smtp://host:port or smtps://host:port",
                config.url
            ))
        };
        let (implicit_tls, rest) = if let Some(r) = config.url.strip_prefix("smtps://") {
            (true, r)
        } else if let Some(r) = config.url.strip_prefix("smtp://") {
            (false, r)
        } else {
            return Err(bad());
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().map_err(|_| bad())?),
            None => (rest.to_string(), if implicit_tls { 465 } else { 25 }),
        };
        if host.is_empty() {
            return Err(bad());
        }
        Ok(RelayTransport {
            host,
            port,
            implicit_tls,
            credentials: (!config.username.is_empty())
                .then(|| (config.username.clone(), config.password.clone())),
            timeout: Duration::from_secs(60),
        })
    }

    fn builder(&self) -> Result<SmtpClientBuilder<String>, SendError> {
        let mut b = SmtpClientBuilder::new(self.host.clone(), self.port)
            .map_err(SendError::Temporary)?
            .implicit_tls(self.implicit_tls)
            .timeout(self.timeout);
        if let Some((u, p)) = &self.credentials {
            b = b.credentials((u.clone(), p.clone()));
        }
        Ok(b)
    }

    /// Sends `raw` from `from` to `to`.
    pub async fn send(&self, from: &str, to: &str, raw: &[u8]) -> Result<(), SendError> {
        let message = Message::new(from.to_string(), [to.to_string()], raw.to_vec());
        let builder = self.builder()?;
        let result = match builder.connect().await {
            Ok(mut client) => client.send(message).await,
            // No STARTTLS offered (a relay on the same host, say): plain text.
            Err(mail_send::Error::MissingStartTls) if !self.implicit_tls => {
                match builder.connect_plain().await {
                    Ok(mut client) => client.send(message).await,
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        result.map_err(classify)
    }
}

fn classify(e: mail_send::Error) -> SendError {
    match &e {
        // A refused login is a setting to fix, not a verdict on the mail: retried.
        mail_send::Error::UnexpectedReply(r) if r.code() >= 500 => {
            SendError::Permanent(format!("{} {}", r.code(), r.message()))
        }
        mail_send::Error::UnexpectedReply(r) => {
            SendError::Temporary(format!("{} {}", r.code(), r.message()))
        }
        _ => SendError::Temporary(e.to_string()),
    }
}
