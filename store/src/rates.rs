//! Rate limits that every node sharing a store spends together (sign-in attempts per
//! account, sign-in links per mailbox): a GCRA's theoretical arrival time per key, kept in
//! the store; the keys are keyed hashes (they are addresses strangers submit), and those
//! whose quota is whole again are swept by retention.

use crate::codec::read_u64;
use crate::{Store, StoreError};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Quotas forgotten per sweep batch: a flood of addresses is swept in bounded steps.
const SWEEP_BATCH: usize = 10_000;

impl Store {
    /// The key of `kind`'s quota for `key`: an HMAC under a secret of the store, so the
    /// table names no address, nor a hash anyone could compute from one.
    fn rate_key(&self, kind: &str, key: &str) -> Result<Vec<u8>, StoreError> {
        let secret = self.secret("rates")?;
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&secret)
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        mac.update(key.as_bytes());
        let mut k = format!("rate/{kind}/").into_bytes();
        k.extend_from_slice(&mac.finalize().into_bytes()[..16]);
        Ok(k)
    }
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl Store {
    /// Spends one of `kind`'s quota for `key`: `burst` at once, then one per `every`.
    /// `Err(wait)` when none is left, with the time until the next.
    pub fn spend_rate(
        &self,
        kind: &str,
        key: &str,
        every: Duration,
        burst: u32,
    ) -> Result<Result<(), Duration>, StoreError> {
        let k = self.rate_key(kind, key)?;
        let now = now_nanos();
        let t = u64::try_from(every.as_nanos()).unwrap_or(u64::MAX);
        let tolerance = t.saturating_mul(u64::from(burst.max(1) - 1));
        self.state
            .transaction(|tx| {
                let tat = tx.get(&k)?.and_then(|v| read_u64(&v)).unwrap_or(now);
                let allowed_from = tat.saturating_sub(tolerance);
                if now < allowed_from {
                    return Ok(Err(Duration::from_nanos(allowed_from - now)));
                }
                tx.insert(&k, &tat.max(now).saturating_add(t).to_be_bytes()[..])?;
                Ok(Ok(()))
            })
            .map_err(StoreError::from)
    }

    /// Forgets the quotas that are whole again (their time has passed), in bounded
    /// batches; how many.
    pub fn sweep_rates(&self) -> Result<u64, StoreError> {
        let now = now_nanos();
        let mut total = 0;
        let mut batch = crate::engine::Batch::default();
        for kv in self.state.scan_prefix("rate/") {
            let (k, v) = kv?;
            if read_u64(&v).is_none_or(|tat| tat <= now) {
                batch.remove(k);
                total += 1;
                if batch.len() >= SWEEP_BATCH {
                    self.state.apply_batch(std::mem::take(&mut batch))?;
                }
            }
        }
        self.state.apply_batch(batch)?;
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use crate::scratch::scratch_store;
    use std::time::Duration;

    #[test]
    fn a_burst_then_one_per_period_per_key() {
        let (s, _dir) = scratch_store("rates");
        let every = Duration::from_secs(60);
        for _ in 0..5 {
            assert_eq!(
                s.spend_rate("pw", "ann@x.test", every, 5).expect("spend"),
                Ok(())
            );
        }
        let wait = s
            .spend_rate("pw", "ann@x.test", every, 5)
            .expect("spend")
            .expect_err("spent");
        assert!(wait > Duration::from_secs(50) && wait <= every, "{wait:?}");
        assert_eq!(
            s.spend_rate("pw", "bob@x.test", every, 5)
                .expect("other key"),
            Ok(())
        );
        assert_eq!(
            s.spend_rate("links", "ann@x.test", every, 1)
                .expect("other kind"),
            Ok(())
        );
        // Nothing is whole again yet: nothing to forget.
        assert_eq!(s.sweep_rates().expect("sweep"), 0);
        let short = Duration::from_millis(1);
        assert_eq!(
            s.spend_rate("tiny", "ann@x.test", short, 1).expect("spend"),
            Ok(())
        );
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(s.sweep_rates().expect("sweep"), 1);
    }
}
