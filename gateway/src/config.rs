//! Receiver settings: the mail domain, size and line limits, timeouts, rate limits and
//! the bounds on concurrent sessions and the memory their messages take.

use crate::limits::SMALL_MESSAGE;
use crate::GatewayError;
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
    /// Longest silence inside DATA.
    pub data_timeout: Duration,
    /// Longest a whole DATA may take, however steadily the bytes trickle in.
    pub data_deadline: Duration,
    /// Concurrent SMTP and LMTP sessions; a connection over it gets `421 4.7.0`.
    pub max_sessions: usize,
    /// From three quarters of `max_sessions` on, the command and data timeouts.
    pub stress_timeout: Duration,
    /// Bytes all sessions may buffer for messages being received, together; a message
    /// that finds no room is read to its end, stored nowhere and answered `452 4.3.1`.
    pub data_buffer_bytes: usize,
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
            data_deadline: Duration::from_secs(600),
            max_sessions: 2000,
            stress_timeout: Duration::from_secs(10),
            data_buffer_bytes: 256 * 1024 * 1024,
            connections_per_minute: 6000,
            messages_per_minute: 12000,
            messages_per_sender_per_minute: 600,
        }
    }
}

impl GatewayConfig {
    /// The smallest `data_buffer_bytes` that still lets one message of the maximum size in
    /// (large messages may use three quarters of the budget).
    pub fn min_data_buffer_bytes(&self) -> usize {
        let largest = self.max_message_size.max(SMALL_MESSAGE) + 64 * 1024;
        largest.saturating_mul(4).div_ceil(3)
    }

    /// Refuses bounds that would turn mail away for ever.
    pub fn validate(&self) -> Result<(), GatewayError> {
        if self.max_sessions == 0 {
            return Err(GatewayError::Config("max_sessions must be positive".into()));
        }
        if self.data_buffer_bytes < self.min_data_buffer_bytes() {
            return Err(GatewayError::Config(format!(
                "data_buffer_mb = {} cannot hold a message of max_message_size = {} bytes: \
                 messages over 1 MiB may use three quarters of it, so it must be at least {}",
                self.data_buffer_bytes >> 20,
                self.max_message_size,
                self.min_data_buffer_bytes().div_ceil(1 << 20)
            )));
        }
        Ok(())
    }
}
