//! Rate limits (governor) on what anyone may try without being signed in: sign-in link
//! requests per address (nobody's inbox can be flooded) and per client, guest tickets per
//! client, and password attempts per submitted address (known or not) and per client.
//! Clients are keyed by `ClientIp::key` (an IPv6 client by its /64).

use crate::client_ip::ClientIp;
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Password attempts per address: a few at once, then one a minute, whoever tries.
const PASSWORD_BURST_PER_ACCOUNT: u32 = 5;
const PASSWORD_EVERY_PER_ACCOUNT: Duration = Duration::from_secs(60);
/// Password attempts per client: enough for an office behind one address signing in.
const PASSWORD_BURST_PER_CLIENT: u32 = 30;
const PASSWORD_EVERY_PER_CLIENT: Duration = Duration::from_secs(3);
/// Sign-in links per mailbox: five an hour (one every 12 minutes, five at once).
const LINKS_PER_ADDRESS: u32 = 5;
const LINK_EVERY_PER_ADDRESS: Duration = Duration::from_secs(12 * 60);
/// Submitted addresses are keyed by at most this many characters, so a key costs little.
const MAX_ACCOUNT_KEY: usize = 320;
/// Keys whose quota is whole again are dropped every this many checks.
const CLEAN_EVERY: u32 = 1024;

/// A refusal, and how long until the next attempt may pass.
#[derive(Debug, Clone, Copy)]
pub struct Wait(pub Duration);

impl Wait {
    /// Whole seconds for a Retry-After header, at least 1.
    pub fn seconds(self) -> u64 {
        (self.0.as_secs() + u64::from(self.0.subsec_nanos() > 0)).max(1)
    }
}

/// One keyed limiter whose idle keys are cleaned up now and then, not on every check
/// (a scan of every key per request would make a flood of new keys quadratic).
struct Keyed<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    checks: AtomicU32,
}

impl<K: Hash + Eq + Clone> Keyed<K> {
    fn new(quota: Quota) -> Self {
        Keyed {
            limiter: RateLimiter::keyed(quota),
            checks: AtomicU32::new(0),
        }
    }

    fn check(&self, key: &K) -> Result<(), Wait> {
        let outcome = self
            .limiter
            .check_key(key)
            .map(|_| ())
            .map_err(|not_until| Wait(not_until.wait_time_from(self.limiter.clock().now())));
        if self.checks.fetch_add(1, Ordering::Relaxed) % CLEAN_EVERY == CLEAN_EVERY - 1 {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        outcome
    }
}

pub struct Limits {
    /// On a store several nodes share, the per-address quotas are the store's, spent
    /// by every node together (an attacker spreading over the nodes gets no more).
    shared: Option<postdesk_desk::Desk>,
    links_per_address: Keyed<String>,
    links_per_client: Keyed<IpAddr>,
    /// Guest tickets per client: a form anyone can post must not become a spam gun.
    guests_per_client: Keyed<IpAddr>,
    passwords_per_account: Keyed<String>,
    passwords_per_client: Keyed<IpAddr>,
}

fn burst(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

fn paced(every: Duration, at_once: u32) -> Quota {
    Quota::with_period(every)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst(at_once))
}

impl Default for Limits {
    fn default() -> Self {
        let hourly = |n: u32| Quota::per_hour(burst(n));
        let links_per_address = paced(LINK_EVERY_PER_ADDRESS, LINKS_PER_ADDRESS);
        Limits {
            shared: None,
            links_per_address: Keyed::new(links_per_address),
            links_per_client: Keyed::new(hourly(30)),
            guests_per_client: Keyed::new(hourly(20)),
            passwords_per_account: Keyed::new(paced(
                PASSWORD_EVERY_PER_ACCOUNT,
                PASSWORD_BURST_PER_ACCOUNT,
            )),
            passwords_per_client: Keyed::new(paced(
                PASSWORD_EVERY_PER_CLIENT,
                PASSWORD_BURST_PER_CLIENT,
            )),
        }
    }
}

impl Limits {
    /// The limits of a node: with a store several nodes share, the per-address quotas
    /// are kept there.
    pub fn for_desk(desk: &postdesk_desk::Desk) -> Limits {
        Limits {
            shared: desk.store_is_shared().then(|| desk.clone()),
            ..Limits::default()
        }
    }

    /// Whether one more sign-in link may go to `address` asked by `client`; both quotas
    /// are spent.
    pub async fn allow_link(&self, address: &str, client: ClientIp) -> bool {
        let by_client = self.links_per_client.check(&client.key()).is_ok();
        if !by_client && self.shared.is_some() {
            // Refused already: no write to the shared store for a stranger's address.
            return false;
        }
        let by_address = match &self.shared {
            Some(desk) => {
                shared(
                    desk,
                    "links",
                    address,
                    LINK_EVERY_PER_ADDRESS,
                    LINKS_PER_ADDRESS,
                )
                .await
            }
            None => self.links_per_address.check(&account_key(address)),
        };
        by_client && by_address.is_ok()
    }

    /// Whether `client` may open one more guest ticket.
    pub fn allow_guest(&self, client: ClientIp) -> Result<(), Wait> {
        self.guests_per_client.check(&client.key())
    }

    /// Whether `client` may try one more password for `address`. The client's quota is
    /// asked first, so one client cannot spend an account's quota faster than its own.
    pub async fn allow_password(&self, address: &str, client: ClientIp) -> Result<(), Wait> {
        self.passwords_per_client.check(&client.key())?;
        match &self.shared {
            Some(desk) => {
                shared(
                    desk,
                    "passwords",
                    address,
                    PASSWORD_EVERY_PER_ACCOUNT,
                    PASSWORD_BURST_PER_ACCOUNT,
                )
                .await
            }
            None => self.passwords_per_account.check(&account_key(address)),
        }
    }
}

/// Spends a quota of the shared store; a store that cannot be asked refuses (for a
/// second: the caller answers as for a spent quota).
async fn shared(
    desk: &postdesk_desk::Desk,
    kind: &'static str,
    address: &str,
    every: Duration,
    burst: u32,
) -> Result<(), Wait> {
    match desk
        .spend_quota(kind, account_key(address), every, burst)
        .await
    {
        Ok(spent) => spent.map_err(Wait),
        Err(e) => {
            tracing::error!(error = %e, kind, "shared sign-in quota unavailable; refused");
            Err(Wait(Duration::from_secs(1)))
        }
    }
}

/// The key of a submitted address: its mailbox (`bob+1@` and `bob+2@` spend one quota),
/// bounded in length.
fn account_key(address: &str) -> String {
    let bounded: String = address.trim().chars().take(MAX_ACCOUNT_KEY).collect();
    postdesk_desk::address::mailbox(&bounded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(s: &str) -> ClientIp {
        ClientIp(s.parse().expect("test address"))
    }

    #[tokio::test]
    async fn password_attempts_stop_per_account_whoever_asks() {
        let limits = Limits::default();
        for i in 0..PASSWORD_BURST_PER_ACCOUNT {
            let from = client(&format!("192.0.2.{i}"));
            assert!(limits.allow_password("Ann@X.test", from).await.is_ok());
        }
        let wait = limits
            .allow_password("ann@x.test ", client("198.51.100.1"))
            .await
            .expect_err("the account's quota is spent");
        assert!(wait.seconds() >= 1 && wait.seconds() <= 60, "{wait:?}");
        // Another address is untouched.
        assert!(limits
            .allow_password("bob@x.test", client("198.51.100.1"))
            .await
            .is_ok());
    }

    #[tokio::test]
    async fn links_to_one_mailbox_share_a_quota_whatever_its_tag() {
        let limits = Limits::default();
        let mut sent = 0;
        for i in 0..12 {
            let from = client(&format!("192.0.2.{i}"));
            sent += usize::from(limits.allow_link(&format!("Bob+{i}@c.test"), from).await);
            sent += usize::from(limits.allow_link("bob@c.test.", from).await);
        }
        assert_eq!(sent, 5, "five links an hour to one mailbox");
    }

    #[tokio::test]
    async fn password_attempts_stop_per_client_and_per_64() {
        let limits = Limits::default();
        for i in 0..PASSWORD_BURST_PER_CLIENT {
            let from = client(&format!("2001:db8:0:1::{i:x}"));
            assert!(limits
                .allow_password(&format!("u{i}@x.test"), from)
                .await
                .is_ok());
        }
        assert!(limits
            .allow_password("new@x.test", client("2001:db8:0:1:ffff::1"))
            .await
            .is_err());
        assert!(limits
            .allow_password("new@x.test", client("2001:db8:0:2::1"))
            .await
            .is_ok());
    }

    #[test]
    fn guests_per_client() {
        let limits = Limits::default();
        for _ in 0..20 {
            assert!(limits.allow_guest(client("192.0.2.1")).is_ok());
        }
        assert!(limits.allow_guest(client("192.0.2.1")).is_err());
        assert!(limits.allow_guest(client("192.0.2.2")).is_ok());
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(Wait(Duration::from_millis(1)).seconds(), 1);
        assert_eq!(Wait(Duration::ZERO).seconds(), 1);
        assert_eq!(Wait(Duration::from_secs(59)).seconds(), 59);
        assert_eq!(Wait(Duration::from_millis(59_001)).seconds(), 60);
    }
}
