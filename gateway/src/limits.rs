//! Limits on what clients may take: rates (governor) of connections and messages per
//! client IP and of messages per sender; the cap on concurrent sessions; the bytes all
//! sessions may buffer for messages being received.

use crate::GatewayConfig;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

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

/// The cap on concurrent SMTP/LMTP sessions, and the "stress" mode near it: from three
/// quarters of the cap on, a session waiting for the client (a command, or more DATA)
/// gives up after `stress_timeout` of silence instead of the usual timeout, including one
/// that was already waiting when stress began. A flood of idle connections is thus shed
/// within seconds while real senders, who never pause that long, keep their sessions
/// (Postfix does the same when its process limit is reached).
pub(crate) struct Sessions {
    open: AtomicUsize,
    max: usize,
    stress_at: usize,
    pub(crate) stress_timeout: Duration,
    /// Whether the server is under stress, told to waiting sessions as it changes. Waiting
    /// on it costs a session no timer: a short periodic one per read woke the runtime's
    /// I/O driver at every read, measurably slowing one-message connections.
    stress: watch::Sender<bool>,
    /// When stress was last logged (seconds since `started`), so a flood that keeps
    /// crossing the mark is logged once a minute, not at every crossing.
    stress_logged: AtomicU64,
    started: std::time::Instant,
}

/// A session's place under the cap, given back when the session ends.
pub(crate) struct SessionSlot {
    sessions: Arc<Sessions>,
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        let before = self.sessions.open.fetch_sub(1, Ordering::AcqRel);
        if before == self.sessions.stress_at {
            self.sessions.tell_stress();
        }
    }
}

impl Sessions {
    pub(crate) fn new(config: &GatewayConfig) -> Sessions {
        let max = config.max_sessions.max(1);
        Sessions {
            open: AtomicUsize::new(0),
            max,
            stress_at: (max - max / 4).max(1),
            stress_timeout: config.stress_timeout,
            stress: watch::Sender::new(false),
            stress_logged: AtomicU64::new(0),
            started: std::time::Instant::now(),
        }
    }

    /// A slot for a new session, or `None` when `max_sessions` are open.
    pub(crate) fn try_open(self: &Arc<Self>) -> Option<SessionSlot> {
        let before = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()?;
        if before + 1 == self.stress_at {
            self.tell_stress();
            if self.first_stress_this_minute() {
                tracing::warn!(
                    sessions = self.stress_at,
                    timeout_secs = self.stress_timeout.as_secs(),
                    "many SMTP sessions open: silent clients now time out sooner"
                );
            }
        }
        Some(SessionSlot {
            sessions: self.clone(),
        })
    }

    fn first_stress_this_minute(&self) -> bool {
        let now = self.started.elapsed().as_secs() + 60;
        let last = self.stress_logged.load(Ordering::Acquire);
        now >= last + 60
            && self
                .stress_logged
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    fn stressed(&self) -> bool {
        self.open.load(Ordering::Acquire) >= self.stress_at
    }

    /// Follows the stress mode: `true` while under stress, with a change told at once.
    pub(crate) fn watch_stress(&self) -> watch::Receiver<bool> {
        self.stress.subscribe()
    }

    /// Called after the count crossed the mark. The count is read under the channel's
    /// lock, so when crossings race, the last to take the lock leaves the true state.
    fn tell_stress(&self) {
        self.stress.send_if_modified(|told| {
            let now = self.stressed();
            std::mem::replace(told, now) != now
        });
    }
}

/// The bytes all sessions may hold for messages being received, together. Small
/// messages (up to `SMALL_MESSAGE`) may use all of it; larger ones only three quarters,
/// so a few big messages cannot keep a normal mail out.
pub(crate) struct DataBudget {
    used: AtomicUsize,
    total: usize,
    for_large: usize,
}

/// Messages up to this size draw on the whole budget.
pub(crate) const SMALL_MESSAGE: usize = 1024 * 1024;

impl DataBudget {
    pub(crate) fn new(total: usize) -> DataBudget {
        DataBudget {
            used: AtomicUsize::new(0),
            total,
            for_large: total - total / 4,
        }
    }

    /// An empty grant, to grow as a message grows.
    pub(crate) fn grant(&self) -> BufferGrant<'_> {
        BufferGrant {
            budget: self,
            bytes: 0,
        }
    }

    /// Bytes held by all grants now.
    #[cfg(test)]
    fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

/// Bytes of the budget one message holds; given back when dropped.
pub(crate) struct BufferGrant<'a> {
    budget: &'a DataBudget,
    bytes: usize,
}

impl BufferGrant<'_> {
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Grows the grant to `bytes` in all, if the budget has room; changes nothing otherwise.
    pub(crate) fn grow_to(&mut self, bytes: usize) -> bool {
        let Some(more) = bytes.checked_sub(self.bytes) else {
            return true;
        };
        let limit = if bytes > SMALL_MESSAGE {
            self.budget.for_large
        } else {
            self.budget.total
        };
        let granted = self
            .budget
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(more).filter(|&after| after <= limit)
            })
            .is_ok();
        if granted {
            self.bytes = bytes;
        }
        granted
    }

    /// Gives everything back (the message's buffer was freed).
    pub(crate) fn release(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
        self.bytes = 0;
    }
}

impl Drop for BufferGrant<'_> {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_messages_leave_a_quarter_for_small_ones() {
        let budget = DataBudget::new(40 * SMALL_MESSAGE);
        let mut big = budget.grant();
        assert!(big.grow_to(30 * SMALL_MESSAGE));
        let mut second = budget.grant();
        assert!(!second.grow_to(2 * SMALL_MESSAGE), "over three quarters");
        assert_eq!(second.bytes(), 0);
        let mut small: Vec<_> = (0..10).map(|_| budget.grant()).collect();
        assert!(small.iter_mut().all(|g| g.grow_to(SMALL_MESSAGE)));
        let mut one_more = budget.grant();
        assert!(!one_more.grow_to(64 * 1024), "the budget is spent");
        drop(small);
        drop(big);
        assert!(second.grow_to(30 * SMALL_MESSAGE));
        drop(second);
        drop(one_more);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn session_cap_and_stress() {
        let sessions = Arc::new(Sessions::new(&GatewayConfig {
            max_sessions: 4,
            ..GatewayConfig::default()
        }));
        let slots: Vec<_> = (0..2).filter_map(|_| sessions.try_open()).collect();
        assert!(!sessions.stressed());
        let third = sessions.try_open();
        assert!(third.is_some() && sessions.stressed(), "3 of 4 is stress");
        let fourth = sessions.try_open();
        assert!(fourth.is_some());
        assert!(sessions.try_open().is_none(), "over the cap");
        drop(fourth);
        drop(third);
        assert!(!sessions.stressed());
        assert!(sessions.try_open().is_some());
        drop(slots);
        assert_eq!(sessions.open.load(Ordering::Acquire), 0);
    }
}
