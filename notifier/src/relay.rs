//! The relay transport (mail-send): `smtp://host:port` protected by STARTTLS as the `tls`
//! setting asks, or `smtps://` for implicit TLS, optional AUTH that never crosses a
//! connection without TLS. Failures are sorted into temporary (4xx, refused connection,
//! timeout, TLS not available: retried) and permanent (5xx: marked failed with the
//! server's answer).

use crate::NotifierError;
use mail_send::smtp::message::Message;
use mail_send::SmtpClientBuilder;
use postdesk_desk::hosts::is_loopback;
use std::str::FromStr;
use std::time::Duration;

/// How the connection to an `smtp://` relay is protected (`smtps://` is always implicit
/// TLS). Certificates are always verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RelayTls {
    /// STARTTLS or nothing: a relay that does not offer it gets no mail (it waits).
    #[default]
    Required,
    /// STARTTLS when offered; otherwise plain text, and then only without credentials.
    Opportunistic,
    /// Plain text, only to a loopback relay and never with credentials.
    None,
}

impl RelayTls {
    pub fn as_str(self) -> &'static str {
        match self {
            RelayTls::Required => "required",
            RelayTls::Opportunistic => "opportunistic",
            RelayTls::None => "none",
        }
    }
}

impl FromStr for RelayTls {
    type Err = NotifierError;
    fn from_str(s: &str) -> Result<Self, NotifierError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "required" => Ok(RelayTls::Required),
            "opportunistic" => Ok(RelayTls::Opportunistic),
            "none" => Ok(RelayTls::None),
            other => Err(NotifierError::Config(format!(
                "relay tls {other:?} must be \"required\", \"opportunistic\" or \"none\""
            ))),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct RelayConfig {
    pub url: String,
    pub username: String,
    pub password: String,
    pub tls: RelayTls,
}

pub struct RelayTransport {
    host: String,
    port: u16,
    implicit_tls: bool,
    tls: RelayTls,
    credentials: Option<(String, String)>,
    timeout: Duration,
}

/// Why a send did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    Temporary(String),
    Permanent(String),
    /// Refused for its size (552, or 5.3.4): permanent for this message as it is.
    TooLarge(String),
}

impl RelayTransport {
    /// Checks the settings: the URL's form, and that clear text is only asked for towards
    /// a loopback relay and never with credentials.
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
        // An IPv6 address is bracketed: [::1]:2525.
        let split_at = match rest.rfind(']') {
            Some(end) => rest[end..].find(':').map(|p| end + p),
            None => rest.rfind(':'),
        };
        let (host, port) = match split_at {
            Some(p) => (
                rest[..p].to_string(),
                rest[p + 1..].parse().map_err(|_| bad())?,
            ),
            None => (rest.to_string(), if implicit_tls { 465 } else { 25 }),
        };
        if host.is_empty() {
            return Err(bad());
        }
        let credentials = (!config.username.is_empty())
            .then(|| (config.username.clone(), config.password.clone()));
        if config.tls == RelayTls::None {
            let refuse =
                |why: String| Err(NotifierError::Config(format!("relay tls = \"none\" {why}")));
            if implicit_tls {
                return refuse(format!(
                    "contradicts {:?}: smtps:// is always implicit TLS",
                    config.url
                ));
            }
            if !is_loopback(&host) {
                return refuse(format!(
                    "is only allowed to a loopback relay (127.0.0.0/8, ::1, localhost), not {host:?}: mail would cross the network in clear"
                ));
            }
            if credentials.is_some() {
                return refuse(
                    "cannot go with a username: credentials are never sent without TLS".into(),
                );
            }
        }
        Ok(RelayTransport {
            host,
            port,
            implicit_tls,
            tls: config.tls,
            credentials,
            timeout: Duration::from_secs(60),
        })
    }

    fn builder(&self, with_credentials: bool) -> Result<SmtpClientBuilder<String>, SendError> {
        let mut b = SmtpClientBuilder::new(self.host.clone(), self.port)
            .map_err(SendError::Temporary)?
            .implicit_tls(self.implicit_tls)
            .timeout(self.timeout);
        if let (true, Some((u, p))) = (with_credentials, &self.credentials) {
            b = b.credentials((u.clone(), p.clone()));
        }
        Ok(b)
    }

    /// A temporary failure because TLS could not be had: the mail waits for the relay (or
    /// the setting) to be fixed, and the administrator reads why in the log and the outbox.
    fn refuse_clear_text(&self, why: &str) -> SendError {
        let reason = format!(
            "relay {}:{} offers no STARTTLS; {why}",
            self.host, self.port
        );
        tracing::warn!(%reason, "mail not sent to the relay");
        SendError::Temporary(reason)
    }

    /// Sends `raw` from `from` to `to`.
    pub async fn send(&self, from: &str, to: &str, raw: &[u8]) -> Result<(), SendError> {
        let message = Message::new(from, [to], raw);
        let result = if self.implicit_tls {
            self.send_tls(message).await
        } else {
            match self.tls {
                RelayTls::Required => match self.send_tls(message).await {
                    Err(mail_send::Error::MissingStartTls) => {
                        return Err(self.refuse_clear_text("tls = \"required\""));
                    }
                    other => other,
                },
                RelayTls::Opportunistic => match self.send_tls(message.clone()).await {
                    Err(mail_send::Error::MissingStartTls) if self.credentials.is_some() => {
                        return Err(self.refuse_clear_text(
                            "credentials are never sent without TLS (tls = \"opportunistic\")",
                        ));
                    }
                    Err(mail_send::Error::MissingStartTls) => self.send_plain(message).await?,
                    other => other,
                },
                RelayTls::None if self.credentials.is_some() => {
                    // `new` refuses this; kept so no later change can send them in clear.
                    return Err(SendError::Temporary(
                        "credentials are never sent without TLS (tls = \"none\")".into(),
                    ));
                }
                RelayTls::None => self.send_plain(message).await?,
            }
        };
        result.map_err(classify)
    }

    /// STARTTLS (mail-send refuses with `MissingStartTls` before AUTH when it is not
    /// offered) or implicit TLS, then AUTH when configured.
    async fn send_tls(&self, message: Message<'_>) -> Result<(), mail_send::Error> {
        let mut client = self.builder(true).map_err(to_mail_send)?.connect().await?;
        client.send(message).await
    }

    /// Clear text, never with credentials.
    async fn send_plain(
        &self,
        message: Message<'_>,
    ) -> Result<Result<(), mail_send::Error>, SendError> {
        let builder = self.builder(false)?;
        Ok(match builder.connect_plain().await {
            Ok(mut client) => client.send(message).await,
            Err(e) => Err(e),
        })
    }
}

fn to_mail_send(e: SendError) -> mail_send::Error {
    let (SendError::Temporary(m) | SendError::Permanent(m) | SendError::TooLarge(m)) = e;
    mail_send::Error::Io(std::io::Error::other(m))
}

fn classify(e: mail_send::Error) -> SendError {
    match &e {
        // A refused login is a setting to fix, not a verdict on the mail: retried.
        mail_send::Error::UnexpectedReply(r)
            if r.code() == 552 || (r.code() >= 500 && r.esc == [5, 3, 4]) =>
        {
            SendError::TooLarge(format!("{} {}", r.code(), r.message()))
        }
        mail_send::Error::UnexpectedReply(r) if r.code() >= 500 => {
            SendError::Permanent(format!("{} {}", r.code(), r.message()))
        }
        mail_send::Error::UnexpectedReply(r) => {
            SendError::Temporary(format!("{} {}", r.code(), r.message()))
        }
        _ => SendError::Temporary(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str, tls: RelayTls, username: &str) -> RelayConfig {
        RelayConfig {
            url: url.into(),
            username: username.into(),
            password: if username.is_empty() { "" } else { "secret" }.into(),
            tls,
        }
    }

    fn refusal(c: RelayConfig) -> String {
        RelayTransport::new(&c)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn clear_text_only_to_loopback_and_never_with_credentials() {
        for host in [
            "127.0.0.1:25",
            "127.3.4.5:2525",
            "[::1]:25",
            "localhost:25",
            "LOCALHOST",
        ] {
            let url = format!("smtp://{host}");
            assert!(
                RelayTransport::new(&config(&url, RelayTls::None, "")).is_ok(),
                "{host}"
            );
        }
        for host in [
            "relay.example.com:587",
            "10.0.0.1:25",
            "[2001:db8::1]:25",
            "localhost.evil.test",
        ] {
            let url = format!("smtp://{host}");
            assert!(
                refusal(config(&url, RelayTls::None, "")).contains("loopback"),
                "{host}"
            );
        }
        assert!(
            refusal(config("smtp://127.0.0.1:25", RelayTls::None, "desk"))
                .contains("credentials are never sent without TLS")
        );
        assert!(refusal(config("smtps://127.0.0.1", RelayTls::None, "")).contains("implicit TLS"));
        for tls in [RelayTls::Required, RelayTls::Opportunistic] {
            assert!(
                RelayTransport::new(&config("smtp://relay.example.com:587", tls, "desk")).is_ok()
            );
        }
    }

    #[test]
    fn tls_setting_parses_with_a_clear_error() {
        assert_eq!(
            "Opportunistic".parse::<RelayTls>().ok(),
            Some(RelayTls::Opportunistic)
        );
        assert_eq!(RelayTls::default(), RelayTls::Required);
        let e = "starttls".parse::<RelayTls>().err().map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("\"required\", \"opportunistic\" or \"none\"")));
    }

    #[test]
    fn ipv6_host_and_default_ports() {
        let t = RelayTransport::new(&config("smtp://[::1]:2525", RelayTls::None, "")).ok();
        assert_eq!(
            t.map(|t| (t.host, t.port)),
            Some(("[::1]".to_string(), 2525))
        );
        let t =
            RelayTransport::new(&config("smtps://relay.example.com", RelayTls::Required, "")).ok();
        assert_eq!(t.map(|t| t.port), Some(465));
    }
}
