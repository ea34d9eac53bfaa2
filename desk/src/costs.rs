//! What work on a ticket cost: the minutes each staff member logged on it, at their
//! hourly rate (kept on the ticket as they are logged, so reports and exports read no
//! events).

use postdesk_store::{Staff, Ticket};

/// Minutes logged on `ticket` and what they cost in cents, each at its worker's rate
/// (someone no longer on the staff costs nothing).
pub fn time_and_cost(ticket: &Ticket, staff: &[Staff]) -> (u64, u64) {
    let rate = |who: &str| {
        staff
            .iter()
            .find(|s| s.email == who)
            .map_or(0, |s| s.hourly_rate_cents)
    };
    let minutes = ticket.minutes_logged.values().sum();
    let cost = ticket
        .minutes_logged
        .iter()
        .map(|(who, m)| m * rate(who) / 60)
        .sum();
    (minutes, cost)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{staff, ticket};
    use postdesk_store::Role;

    #[test]
    fn costs_use_each_workers_rate() {
        let mut t = ticket("r@x");
        t.minutes_logged.insert("a@x".into(), 120);
        t.minutes_logged.insert("b@x".into(), 30);
        t.minutes_logged.insert("gone@x".into(), 60);
        let mut a = staff("a@x", "A", Role::Tech);
        a.hourly_rate_cents = 6000;
        let mut b = staff("b@x", "B", Role::Tech);
        b.hourly_rate_cents = 3000;
        assert_eq!(time_and_cost(&t, &[a, b]), (210, 120 * 100 + 15 * 100));
    }
}
