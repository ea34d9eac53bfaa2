//! Receiver settings: the mail domain, size and line limits, timeouts and rate limits.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The host name announced in the greeting and EHLO answer.
    pub domain: String,
    pub max_message_size: usize,
    /// Longest line accepted inside a message, CRLF excluded.
    pub max_line_length: usize,
    pub max_recipients: usize,
    pub command_timeout: Duration,
    pub data_timeout: Duration,
    /// New connections per client IP per minute (0 = unlimited).
    pub connections_per_minute: u32,
    /// Messages per client IP per minute (0 = unlimited).
    pub messages_per_minute: u32,
    /// Messages per sender (return path) per minute (0 = unlimited).
    pub messages_per_sender_per_minute: u32,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            domain: "localhost".into(),
            max_message_size: 25 * 1024 * 1024,
            max_line_length: 10_000,
            max_recipients: 100,
            command_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(600),
            connections_per_minute: 6000,
            messages_per_minute: 12000,
            messages_per_sender_per_minute: 600,
        }
    }
}
