//! The effective configuration: defaults, then the TOML file, then `POSTDESK_*` variables,
//! then command-line flags.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Mail domain: organization addresses are SLUG@domain.
    pub domain: String,
    /// SMTP listen address.
    pub smtp: String,
    /// LMTP listen address; empty = off.
    pub lmtp: String,
    /// HTTP listen address (web UI, API, health).
    pub http: String,
    /// The address people reach the web UI at, for links in mail and the CLI (e.g.
    /// "https://desk.example.org"); empty = http://<http>. An https URL makes cookies
    /// Secure with the `__Host-` prefix.
    pub public_url: String,
    /// Reverse proxies (addresses or CIDR blocks) whose X-Forwarded-For / Forwarded headers
    /// name the web client that rate limits count; empty = every client is its TCP peer.
    /// `POSTDESK_TRUSTED_PROXIES` takes a comma-separated list.
    pub trusted_proxies: Vec<String>,
    /// Clients (addresses or CIDR blocks, as the web UI sees them: see trusted_proxies)
    /// that may read `/metrics`; everyone else gets 403. `POSTDESK_METRICS_ALLOW` takes a
    /// comma-separated list.
    pub metrics_allow: Vec<String>,
    pub max_message_size: usize,
    pub max_line_length: usize,
    pub max_recipients: usize,
    pub command_timeout_secs: u64,
    /// Longest silence inside DATA.
    pub data_timeout_secs: u64,
    /// Longest a whole DATA may take (421 4.4.2 after it), however it trickles.
    pub data_deadline_secs: u64,
    /// Concurrent SMTP + LMTP sessions (421 4.7.0 over it); keep it under `ulimit -n`.
    pub max_sessions: usize,
    /// The command and data timeouts from three quarters of max_sessions on.
    pub stress_timeout_secs: u64,
    /// MiB all sessions may buffer for messages being received; a message that finds no
    /// room is answered 452 4.3.1 (try again later).
    pub data_buffer_mb: usize,
    pub connections_per_minute: u32,
    pub messages_per_minute: u32,
    pub messages_per_sender_per_minute: u32,
    /// PEM certificate chain and key for STARTTLS; both empty = no STARTTLS.
    pub tls_cert: String,
    pub tls_key: String,
    /// TXT records file (`NAME TXT "value"` lines) answering DMARC's DNS questions instead
    /// of the system resolver; for closed networks and tests. Empty = system DNS.
    pub dns_records: String,
    /// One DNS server (IP:PORT, e.g. a local validating resolver) that DKIM and DMARC
    /// checks ask instead of the system's resolvers. Empty = system DNS.
    pub dns_server: String,
    /// How long one inbound message may take from parse to ticket, in milliseconds; a
    /// message past it is recorded as failed (its original is kept) and the rest go on.
    pub message_budget_ms: u64,
    /// Log filter (tracing EnvFilter syntax), e.g. "info" or "postdesk_gateway=debug".
    pub log: String,
    /// For tests only: a file holding seconds added to the web UI's clock (link and
    /// session expiry), so a test can move a running server's time. Empty = wall clock.
    pub clock_offset_file: String,
    /// How often monitors look for tickets to alert about, in seconds (1 to 60).
    pub monitor_interval_secs: u64,
    /// Where the store lives: empty = sled in the data folder (one node); a
    /// `postgres://user:password@host:port/database` URL = that PostgreSQL database, which
    /// any number of nodes may share (`postdesk migrate` readies its schema). The password
    /// may instead be in PGPASSWORD; it is never printed.
    pub database_url: String,
    /// Outbound relay; with no url, mail is written to DATA/outbox/.
    pub relay: Relay,
    /// Existing mailboxes read over IMAP (`[[imap]]` tables), each into one organization.
    pub imap: Vec<Imap>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Imap {
    pub org: String,
    pub host: String,
    pub port: u16,
    /// "tls" (implicit, port 993), "starttls", or "none" (loopback only).
    pub tls: String,
    pub user: String,
    pub password: String,
    pub folder: String,
    /// "keep", "seen" or "move" (to move_to), done only after the message is stored.
    pub after: String,
    pub move_to: String,
    /// With after = "move", messages that cannot be imported go here.
    pub failed_folder: String,
    /// Seconds between looks when the server has no IDLE.
    pub poll_secs: u64,
    /// PEM file of extra trusted certificates (a private CA); empty = system roots only.
    pub ca_file: String,
}

impl Default for Imap {
    fn default() -> Self {
        Imap {
            org: String::new(),
            host: String::new(),
            port: 993,
            tls: "tls".into(),
            user: String::new(),
            password: String::new(),
            folder: "INBOX".into(),
            after: "seen".into(),
            move_to: "Postdesk/Imported".into(),
            failed_folder: "Postdesk/Failed".into(),
            poll_secs: 60,
            ca_file: String::new(),
        }
    }
}

impl Imap {
    pub fn source(&self) -> Result<postdesk_gateway::ImapSourceConfig> {
        let source = postdesk_gateway::ImapSourceConfig {
            org: self.org.clone(),
            host: self.host.clone(),
            port: self.port,
            tls: self.tls.parse()?,
            user: self.user.clone(),
            password: self.password.clone(),
            folder: self.folder.clone(),
            after: self.after.parse()?,
            move_to: self.move_to.clone(),
            failed_folder: self.failed_folder.clone(),
            poll_interval: std::time::Duration::from_secs(self.poll_secs),
            ca_file: (!self.ca_file.is_empty()).then(|| self.ca_file.clone().into()),
        };
        source.validate()?;
        Ok(source)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Relay {
    /// smtp://host:port (STARTTLS, as `tls` says) or smtps://host:port (implicit TLS).
    pub url: String,
    pub username: String,
    pub password: String,
    /// For smtp://: "required" (STARTTLS or the mail waits), "opportunistic" (STARTTLS
    /// when offered, else clear text without credentials) or "none" (loopback relay only,
    /// no credentials). Credentials never cross a connection without TLS.
    pub tls: String,
    /// First retry delay after a temporary failure (doubles, up to 6 hours, for 3 days).
    pub retry_base_secs: u64,
    /// Mails handed to the relay at once.
    pub concurrency: usize,
    /// Largest outbound mail in bytes, files included (folder or relay); 0 = the same as
    /// `max_message_size`. Files that do not fit are named in the text instead, and a mail
    /// the relay refuses for its size (552) goes again without its files.
    pub max_message_size: usize,
}

impl Default for Relay {
    fn default() -> Self {
        Relay {
            url: String::new(),
            username: String::new(),
            password: String::new(),
            tls: postdesk_notifier::RelayTls::default().as_str().into(),
            retry_base_secs: 60,
            concurrency: 4,
            max_message_size: 0,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        let g = postdesk_gateway::GatewayConfig::default();
        Config {
            domain: "localhost".into(),
            smtp: "127.0.0.1:2525".into(),
            lmtp: String::new(),
            http: "127.0.0.1:8080".into(),
            public_url: String::new(),
            trusted_proxies: Vec::new(),
            metrics_allow: vec!["127.0.0.0/8".into(), "::1".into()],
            max_message_size: g.max_message_size,
            max_line_length: g.max_line_length,
            max_recipients: g.max_recipients,
            command_timeout_secs: g.command_timeout.as_secs(),
            data_timeout_secs: g.data_timeout.as_secs(),
            data_deadline_secs: g.data_deadline.as_secs(),
            max_sessions: g.max_sessions,
            stress_timeout_secs: g.stress_timeout.as_secs(),
            data_buffer_mb: g.data_buffer_bytes >> 20,
            connections_per_minute: g.connections_per_minute,
            messages_per_minute: g.messages_per_minute,
            messages_per_sender_per_minute: g.messages_per_sender_per_minute,
            tls_cert: String::new(),
            tls_key: String::new(),
            dns_records: String::new(),
            dns_server: String::new(),
            message_budget_ms: postdesk_gateway::DEFAULT_BUDGET.as_millis() as u64,
            log: "info".into(),
            clock_offset_file: String::new(),
            monitor_interval_secs: 60,
            database_url: String::new(),
            relay: Relay::default(),
            imap: Vec::new(),
        }
    }
}

impl Config {
    /// Loads the file (if given) and applies `POSTDESK_<KEY>` environment overrides.
    pub fn load(file: Option<&Path>) -> Result<Config> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?;
                text.parse::<toml::Table>()
                    .with_context(|| format!("{} is not valid TOML", path.display()))?
            }
            None => toml::Table::new(),
        };
        let defaults = toml::Table::try_from(Config::default())?;
        for (key, default) in &defaults {
            let var = format!("POSTDESK_{}", key.to_ascii_uppercase());
            if key == "imap" {
                // [[imap]] tables only come from the file.
                continue;
            }
            if let toml::Value::Table(section) = default {
                // [relay] url = ... is POSTDESK_RELAY_URL
                for (sub, sub_default) in section {
                    let var = format!("{var}_{}", sub.to_ascii_uppercase());
                    if let Some(value) = env_value(&var, sub_default)? {
                        let entry = table
                            .entry(key.clone())
                            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                        if let toml::Value::Table(t) = entry {
                            t.insert(sub.clone(), value);
                        }
                    }
                }
            } else if let Some(value) = env_value(&var, default)? {
                table.insert(key.clone(), value);
            }
        }
        let config: Config = toml::Value::Table(table)
            .try_into()
            .context("invalid configuration")?;
        config.validate()?;
        Ok(config)
    }

    /// The configuration as `postdesk config` shows it: secrets masked.
    pub fn printable(&self) -> Config {
        let mut c = self.clone();
        if !c.relay.password.is_empty() {
            c.relay.password = "********".into();
        }
        for source in &mut c.imap {
            source.password = "********".into();
        }
        if !c.database_url.is_empty() {
            c.database_url = postdesk_desk::model::describe_database_url(&c.database_url);
        }
        c
    }

    pub fn validate(&self) -> Result<()> {
        check_database_url(&self.database_url)?;
        if !(1..=60).contains(&self.monitor_interval_secs) {
            bail!(
                "monitor_interval_secs must be from 1 to 60, not {}",
                self.monitor_interval_secs
            );
        }
        let url = &self.relay.url;
        if !(url.is_empty() || url.starts_with("smtp://") || url.starts_with("smtps://")) {
            bail!(
                "relay url {:?} must start with smtp:// or smtps://",
                self.relay.url
            );
        }
        let relay = self.relay_config()?;
        if !relay.url.is_empty() {
            postdesk_notifier::RelayTransport::new(&relay)?;
        }
        if !postdesk_desk::address::host_name(&self.domain.to_ascii_lowercase()) {
            bail!(
                "domain {:?} is not a host name (labels of letters, digits and hyphens, like example.org or localhost)",
                self.domain
            );
        }
        let url = &self.public_url;
        if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
            bail!("public_url {url:?} must start with http:// or https://");
        }
        // It goes into links in mail headers and pages: plain printable ASCII, nothing that
        // ends a URL in a header (`<>"`, spaces).
        if url.chars().any(|c| {
            !c.is_ascii_graphic()
                || matches!(c, '<' | '>' | '"' | '\\' | '^' | '`' | '{' | '|' | '}')
        }) {
            bail!("public_url {url:?} must be a plain URL (ASCII, no spaces, quotes or angle brackets)");
        }
        self.trusted_proxies()?;
        self.metrics_allow()?;
        if !self.dns_server.is_empty() {
            if !self.dns_records.is_empty() {
                bail!("dns_server and dns_records cannot both be set");
            }
            if self.dns_server.parse::<std::net::SocketAddr>().is_err() {
                bail!(
                    "dns_server {:?} must be IP:PORT, e.g. 127.0.0.1:53",
                    self.dns_server
                );
            }
        }
        if self.tls_cert.is_empty() != self.tls_key.is_empty() {
            bail!("tls_cert and tls_key must be set together");
        }
        if self.max_recipients == 0 || self.max_message_size == 0 {
            bail!("max_recipients and max_message_size must be positive");
        }
        self.gateway().validate()?;
        for source in &self.imap {
            source.source()?;
        }
        Ok(())
    }

    /// The parsed `metrics_allow`.
    pub fn metrics_allow(&self) -> Result<postdesk_webui::Networks> {
        postdesk_webui::Networks::parse(&self.metrics_allow)
            .map_err(|e| anyhow::anyhow!("metrics_allow: {e}"))
    }

    /// The parsed `trusted_proxies`.
    pub fn trusted_proxies(&self) -> Result<postdesk_webui::Networks> {
        postdesk_webui::Networks::parse(&self.trusted_proxies)
            .map_err(|e| anyhow::anyhow!("trusted_proxies: {e}"))
    }

    /// The relay settings the notifier takes (`tls` parsed).
    pub fn relay_config(&self) -> Result<postdesk_notifier::RelayConfig> {
        Ok(postdesk_notifier::RelayConfig {
            url: self.relay.url.clone(),
            username: self.relay.username.clone(),
            password: self.relay.password.clone(),
            tls: self.relay.tls.parse()?,
        })
    }

    /// Where the pipeline's DMARC checks get DNS answers: `dns_server`, else the records in
    /// `dns_records` (tests), else the system's resolvers.
    pub fn dns_source(&self) -> Result<postdesk_gateway::DnsSource> {
        use postdesk_gateway::DnsSource;
        if !self.dns_server.is_empty() {
            return Ok(DnsSource::Server(self.dns_server.parse().with_context(
                || format!("dns_server {:?} is not an IP:PORT address", self.dns_server),
            )?));
        }
        if self.dns_records.is_empty() {
            return Ok(DnsSource::System);
        }
        let text = std::fs::read_to_string(&self.dns_records)
            .with_context(|| format!("cannot read dns_records file {}", self.dns_records))?;
        postdesk_gateway::TxtAnswers::from_records(&text)
            .with_context(|| format!("dns_records file {}", self.dns_records))?;
        Ok(DnsSource::Records(text))
    }

    /// How outbound mail leaves, as the settings page says it (a password written into
    /// the relay URL is not shown).
    pub fn outbound_description(&self, data: &std::path::Path) -> String {
        if self.relay.url.is_empty() {
            return format!(
                "No relay is configured: mail is written to {} for another program to send.",
                data.join("outbox").display()
            );
        }
        let url = match self.relay.url.split_once("://") {
            Some((scheme, rest)) => match rest.rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://***@{host}"),
                None => self.relay.url.clone(),
            },
            None => self.relay.url.clone(),
        };
        let tls = if url.starts_with("smtps://") {
            "implicit".to_string()
        } else {
            self.relay.tls.to_ascii_lowercase()
        };
        if self.relay.username.is_empty() {
            format!("Mail goes through the relay {url} (TLS {tls}).")
        } else {
            format!(
                "Mail goes through the relay {url} as {} (TLS {tls}).",
                self.relay.username
            )
        }
    }

    /// The largest outbound mail, files included.
    pub fn max_outbound_size(&self) -> u64 {
        match self.relay.max_message_size {
            0 => self.max_message_size as u64,
            n => n as u64,
        }
    }

    /// The web UI's base URL, without a trailing slash: the configured address, else the
    /// listening one (plain http, so mail carries no unsubscribe links then).
    pub fn public_url(&self) -> String {
        if self.public_url.is_empty() {
            format!("http://{}", self.http)
        } else {
            self.public_url.trim_end_matches('/').to_string()
        }
    }

    pub fn gateway(&self) -> postdesk_gateway::GatewayConfig {
        postdesk_gateway::GatewayConfig {
            domain: self.domain.clone(),
            max_message_size: self.max_message_size,
            max_line_length: self.max_line_length,
            max_recipients: self.max_recipients,
            command_timeout: std::time::Duration::from_secs(self.command_timeout_secs.max(1)),
            data_timeout: std::time::Duration::from_secs(self.data_timeout_secs.max(1)),
            data_deadline: std::time::Duration::from_secs(self.data_deadline_secs.max(1)),
            max_sessions: self.max_sessions,
            stress_timeout: std::time::Duration::from_secs(self.stress_timeout_secs.max(1)),
            data_buffer_bytes: self.data_buffer_mb.saturating_mul(1 << 20),
            connections_per_minute: self.connections_per_minute,
            messages_per_minute: self.messages_per_minute,
            messages_per_sender_per_minute: self.messages_per_sender_per_minute,
        }
    }
}

/// The value of an environment override, typed like the default it replaces.
fn env_value(var: &str, default: &toml::Value) -> Result<Option<toml::Value>> {
    let Ok(raw) = std::env::var(var) else {
        return Ok(None);
    };
    Ok(Some(match default {
        toml::Value::Integer(_) => toml::Value::Integer(
            raw.trim()
                .parse()
                .with_context(|| format!("{var}={raw:?} is not a whole number"))?,
        ),
        // A list of words: comma-separated.
        toml::Value::Array(_) => toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_string()))
                .collect(),
        ),
        _ => toml::Value::String(raw),
    }))
}

/// A `database_url` as the configuration takes it: empty (sled), or a postgres:// URL
/// whose password, if any, has its @ escaped.
pub(crate) fn check_database_url(url: &str) -> Result<()> {
    if url.is_empty() {
        return Ok(());
    }
    if !["postgres://", "postgresql://"]
        .iter()
        .any(|scheme| url.starts_with(scheme))
    {
        bail!("database_url must be a postgres:// URL (or empty for sled in the data folder)");
    }
    if url
        .split('?')
        .next()
        .unwrap_or_default()
        .matches('@')
        .count()
        > 1
    {
        bail!(
            "database_url has more than one @: write an @ in the password as %40 (or give \
             the password in PGPASSWORD)"
        );
    }
    Ok(())
}
