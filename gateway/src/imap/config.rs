//! A mailbox source's settings, as the `[[imap]]` configuration tables give them.

use crate::GatewayError;
use postdesk_desk::hosts::is_loopback;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// How the connection to the IMAP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImapTls {
    /// TLS from the first byte (port 993).
    Implicit,
    /// Plain connection upgraded by STARTTLS before logging in.
    StartTls,
    /// No TLS: only to a loopback address, where nothing crosses a network.
    None,
}

impl FromStr for ImapTls {
    type Err = GatewayError;
    fn from_str(s: &str) -> Result<Self, GatewayError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "tls" => Ok(ImapTls::Implicit),
            "starttls" => Ok(ImapTls::StartTls),
            "none" => Ok(ImapTls::None),
            other => Err(GatewayError::Config(format!(
                "imap tls {other:?} must be \"tls\", \"starttls\" or \"none\""
            ))),
        }
    }
}

/// What happens to a message in the mailbox once it is stored here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterImport {
    Keep,
    MarkSeen,
    Move,
}

impl FromStr for AfterImport {
    type Err = GatewayError;
    fn from_str(s: &str) -> Result<Self, GatewayError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "keep" => Ok(AfterImport::Keep),
            "seen" => Ok(AfterImport::MarkSeen),
            "move" => Ok(AfterImport::Move),
            other => Err(GatewayError::Config(format!(
                "imap after {other:?} must be \"keep\", \"seen\" or \"move\""
            ))),
        }
    }
}

/// One mailbox read into one organization.
#[derive(Clone)]
pub struct ImapSourceConfig {
    pub org: String,
    pub host: String,
    pub port: u16,
    pub tls: ImapTls,
    pub user: String,
    pub password: String,
    pub folder: String,
    pub after: AfterImport,
    /// Where imported messages go when `after` is `Move`; created if missing.
    pub move_to: String,
    /// Where messages that cannot be imported go when `after` is `Move`; with `Keep` or
    /// `MarkSeen` they stay where they are, unread.
    pub failed_folder: String,
    /// How often to look for new mail when the server has no IDLE.
    pub poll_interval: Duration,
    /// PEM file of extra trusted certificates (a private CA); the system roots otherwise.
    pub ca_file: Option<PathBuf>,
}

// Written by hand so the password never reaches a log.
impl std::fmt::Debug for ImapSourceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImapSourceConfig")
            .field("source", &self.name())
            .field("org", &self.org)
            .field("tls", &self.tls)
            .field("after", &self.after)
            .finish_non_exhaustive()
    }
}

impl ImapSourceConfig {
    /// The source's name in logs, status and the store: `user@host:port/folder`.
    pub fn name(&self) -> String {
        format!("{}@{}:{}/{}", self.user, self.host, self.port, self.folder)
    }

    /// Refuses settings that cannot work or would be unsafe.
    pub fn validate(&self) -> Result<(), GatewayError> {
        let bad = |m: String| {
            Err(GatewayError::Config(format!(
                "imap source {}: {m}",
                self.name()
            )))
        };
        if self.host.trim().is_empty() || self.user.is_empty() || self.folder.trim().is_empty() {
            return bad("host, user and folder must be set".into());
        }
        if self.port == 0 {
            return bad("port must be set".into());
        }
        if self.tls == ImapTls::None && !is_loopback(&self.host) {
            return bad(format!(
                "tls = \"none\" is only allowed to a loopback host, not {:?}: the password would cross the network in clear",
                self.host
            ));
        }
        if let Some(problem) = folder_name_problem(&self.folder) {
            return bad(format!("folder {:?} {problem}", self.folder));
        }
        if self.after == AfterImport::Move {
            if self.move_to.trim().is_empty() {
                return bad("after = \"move\" needs move_to".into());
            }
            for (setting, name) in [
                ("move_to", &self.move_to),
                ("failed_folder", &self.failed_folder),
            ] {
                if let Some(problem) = folder_name_problem(name) {
                    return bad(format!("{setting} {name:?} {problem}"));
                }
            }
            if self.move_to == self.folder || self.failed_folder == self.folder {
                return bad("move_to and the failed folder must differ from folder".into());
            }
        }
        if self.poll_interval.is_zero() {
            return bad("poll interval must be at least one second".into());
        }
        Ok(())
    }
}

/// Why a configured folder name cannot be a server's folder: levels are joined by "/", so
/// none may be empty (servers refuse a leading, trailing or doubled separator); IMAP's
/// wildcards and quoting characters would make the folder impossible to look up.
fn folder_name_problem(name: &str) -> Option<&'static str> {
    if name.chars().any(char::is_control) {
        Some("has a control character")
    } else if name.contains(['*', '%', '"', '\\']) {
        Some("has one of * % \" \\, which IMAP uses for wildcards and quoting")
    } else if name.split('/').any(|level| level.trim().is_empty()) {
        Some("has an empty level: levels are joined by \"/\", none may be empty")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> ImapSourceConfig {
        ImapSourceConfig {
            org: "acme".into(),
            host: "127.0.0.1".into(),
            port: 1143,
            tls: ImapTls::None,
            user: "support".into(),
            password: "secret".into(),
            folder: "INBOX".into(),
            after: AfterImport::Move,
            move_to: "Postdesk/Imported".into(),
            failed_folder: "Postdesk/Failed".into(),
            poll_interval: Duration::from_secs(30),
            ca_file: None,
        }
    }

    #[test]
    fn clear_text_only_to_loopback() {
        assert!(source().validate().is_ok());
        let remote = ImapSourceConfig {
            host: "imap.example.com".into(),
            ..source()
        };
        assert!(remote.validate().is_err());
        let remote_tls = ImapSourceConfig {
            tls: ImapTls::Implicit,
            ..remote
        };
        assert!(remote_tls.validate().is_ok());
    }

    #[test]
    fn move_needs_a_different_target() {
        let same = ImapSourceConfig {
            move_to: "INBOX".into(),
            ..source()
        };
        assert!(same.validate().is_err());
        let none = ImapSourceConfig {
            move_to: String::new(),
            ..source()
        };
        assert!(none.validate().is_err());
    }

    #[test]
    fn folder_names_need_every_level() {
        for bad in [
            "/Imported",
            "Postdesk/",
            "Postdesk//Imported",
            "Postdesk/ /x",
            "a\r\nb",
        ] {
            let s = ImapSourceConfig {
                move_to: bad.into(),
                ..source()
            };
            assert!(s.validate().is_err(), "{bad:?}");
            let s = ImapSourceConfig {
                folder: bad.into(),
                after: AfterImport::Keep,
                ..source()
            };
            assert!(s.validate().is_err(), "{bad:?}");
        }
        let failed = ImapSourceConfig {
            failed_folder: String::new(),
            ..source()
        };
        assert!(failed.validate().is_err());
        let fine = ImapSourceConfig {
            move_to: "Help Desk/Traité".into(),
            ..source()
        };
        assert!(fine.validate().is_ok());
    }

    #[test]
    fn password_is_not_in_debug_output() {
        assert!(!format!("{:?}", source()).contains("secret"));
    }

    #[test]
    fn settings_parse_with_clear_errors() {
        assert_eq!("STARTTLS".parse::<ImapTls>().ok(), Some(ImapTls::StartTls));
        assert_eq!(
            "seen".parse::<AfterImport>().ok(),
            Some(AfterImport::MarkSeen)
        );
        let e = "delete".parse::<AfterImport>().err().map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("keep")));
    }
}
