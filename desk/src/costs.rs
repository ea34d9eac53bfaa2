//! What work on a ticket cost: the minutes each staff member logged on it, at their
//! hourly rate (kept on the ticket as they are logged, so reports and exports read no
//! events).

use postdesk_store::{Staff, Ticket};

/// What an hour of `who`'s time costs now, in cents (someone no longer on the staff
/// costs nothing).
pub fn hourly_rate(staff: &[Staff], who: &str) -> u64 {
    staff
        .iter()
        .find(|s| s.email == who)
        .map_or(0, |s| s.hourly_rate_cents)
}

/// Minutes logged on `ticket` and what they cost in cents, each at its worker's rate.
pub fn time_and_cost(ticket: &Ticket, staff: &[Staff]) -> (u64, u64) {
    let minutes = ticket.minutes_logged.values().sum();
    let cost = ticket
        .minutes_logged
        .iter()
        .map(|(who, m)| m * hourly_rate(staff, who) / 60)
        .sum();
    (minutes, cost)
}

/// "12.50" from 1250 cents.
pub fn money(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// Cents from "12", "12.5" or "12.50"; `None` for anything else.
pub fn parse_money(text: &str) -> Option<u64> {
    let text = text.trim();
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty()
        || whole.len() > 9
        || frac.len() > 2
        || !whole
            .chars()
            .chain(frac.chars())
            .all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let frac = format!("{frac:0<2}");
    Some(whole.parse::<u64>().ok()? * 100 + frac.parse::<u64>().ok()?)
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

    #[test]
    fn amounts_read_and_write_as_decimals() {
        assert_eq!(money(1234), "12.34");
        assert_eq!(money(5), "0.05");
        assert_eq!(parse_money("45"), Some(4500));
        assert_eq!(parse_money("45.5"), Some(4550));
        for bad in ["", "-1", "1.234", "4,50", "1e3", ".5"] {
            assert_eq!(parse_money(bad), None, "{bad}");
        }
    }
}
