//! Rate limits (governor): connections and messages per client IP, messages per sender.

use crate::GatewayConfig;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::net::IpAddr;
use std::num::NonZeroU32;

pub(crate) struct Limits {
    connections: Option<DefaultKeyedRateLimiter<IpAddr>>,
    messages: Option<DefaultKeyedRateLimiter<IpAddr>>,
    senders: Option<DefaultKeyedRateLimiter<String>>,
}

fn limiter<K: std::hash::Hash + Eq + Clone>(per_minute: u32) -> Option<DefaultKeyedRateLimiter<K>> {
    NonZeroU32::new(per_minute).map(|n| RateLimiter::keyed(Quota::per_minute(n)))
}

impl Limits {
    pub(crate) fn new(config: &GatewayConfig) -> Limits {
        Limits {
            connections: limiter(config.connections_per_minute),
            messages: limiter(config.messages_per_minute),
            senders: limiter(config.messages_per_sender_per_minute),
        }
    }

    pub(crate) fn allow_connection(&self, ip: IpAddr) -> bool {
        self.connections
            .as_ref()
            .is_none_or(|l| l.check_key(&ip).is_ok())
    }

    pub(crate) fn allow_message(&self, ip: IpAddr) -> bool {
        self.messages
            .as_ref()
            .is_none_or(|l| l.check_key(&ip).is_ok())
    }

    /// Per return-path address; bounces (empty return path) come from everywhere and are
    /// limited by IP only.
    pub(crate) fn allow_sender(&self, sender: &str) -> bool {
        let key = sender.trim().to_ascii_lowercase();
        key.is_empty()
            || self
                .senders
                .as_ref()
                .is_none_or(|l| l.check_key(&key).is_ok())
    }

    /// Forgets clients whose quota has fully recovered, so memory stays bounded.
    pub(crate) fn prune(&self) {
        for l in [&self.connections, &self.messages].into_iter().flatten() {
            l.retain_recent();
        }
        if let Some(l) = &self.senders {
            l.retain_recent();
        }
    }
}
