//! Rate limits on the portal's anonymous forms (governor): sign-in link requests per
//! address (nobody's inbox can be flooded) and per client IP (addresses cannot be tried
//! in bulk), and guest tickets per client IP.

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::net::IpAddr;
use std::num::NonZeroU32;

pub struct LinkLimits {
    per_address: DefaultKeyedRateLimiter<String>,
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    /// Guest tickets per client IP: a form anyone can post must not become a spam gun.
    guests_per_ip: DefaultKeyedRateLimiter<IpAddr>,
}

impl Default for LinkLimits {
    fn default() -> Self {
        let hourly = |n: u32| Quota::per_hour(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN));
        LinkLimits {
            per_address: RateLimiter::keyed(hourly(5)),
            per_ip: RateLimiter::keyed(hourly(30)),
            guests_per_ip: RateLimiter::keyed(hourly(20)),
        }
    }
}

impl LinkLimits {
    /// Whether one more link may go to `address` asked from `ip`; both quotas are spent.
    pub fn allow(&self, address: &str, ip: IpAddr) -> bool {
        let by_ip = self.per_ip.check_key(&ip).is_ok();
        let by_address = self.per_address.check_key(&address.to_string()).is_ok();
        self.per_ip.retain_recent();
        self.per_address.retain_recent();
        by_ip && by_address
    }

    /// Whether `ip` may open one more guest ticket.
    pub fn allow_guest(&self, ip: IpAddr) -> bool {
        let ok = self.guests_per_ip.check_key(&ip).is_ok();
        self.guests_per_ip.retain_recent();
        ok
    }
}
