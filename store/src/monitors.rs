//! Monitors in the store: each organization's list, the indexes of watched ticket times kept
//! with every ticket write, the tickets written since the last tick, and the alert records
//! (one per ticket, monitor and episode) written with the alert's event.

use crate::codec::{decode, encode, key_num, num_key};
use crate::engine::ConflictableTransactionError::Abort;
use crate::engine::{ConflictableTransactionError, TransactionalTree};
use crate::monitor_rules::Watch;
use crate::tickets::{append_event, bump, time_part};
use crate::{Event, EventKind, Monitor, Store, StoreError, Ticket, Visibility};
use time::OffsetDateTime;

/// Who alerts are by in the log.
const MONITOR_AUTHOR: &str = "monitors";

fn monitors_key(org: &str) -> String {
    format!("monitors/{org}")
}

/// `mon/<org>/<watch>/`: one index per organization and watched time.
fn index_prefix(org: &str, watch: Watch) -> String {
    format!("mon/{org}/{}/", watch.tag())
}

fn index_key(org: &str, watch: Watch, at: OffsetDateTime, number: u64) -> Vec<u8> {
    let mut k = num_key(&index_prefix(org, watch), time_part(at));
    k.extend_from_slice(&number.to_be_bytes());
    k
}

/// The watched times an organization's monitors read, as a bit per [`Watch`]: only those
/// are indexed, so an organization without monitors pays nothing on its ticket writes.
fn watches_key(org: &str) -> String {
    format!("monwatches/{org}")
}

fn watch_bit(w: Watch) -> u8 {
    1 << Watch::ALL.iter().position(|x| *x == w).unwrap_or(0)
}

/// The watched times of `monitors`, and resolved tickets' when auto-close is on.
fn watch_mask(monitors: &[Monitor], auto_close: bool) -> u8 {
    let resolved = if auto_close {
        watch_bit(Watch::Resolved)
    } else {
        0
    };
    monitors
        .iter()
        .fold(resolved, |mask, m| mask | watch_bit(m.kind.watch()))
}

/// Where an organization's auto-close setting (days, 4 bytes) is kept.
fn autoclose_key(org: &str) -> String {
    format!("autoclose/{org}")
}

/// The most monitors an organization has.
pub const MAX_MONITORS: usize = 50;

/// The longest auto-close delay: ten years.
pub const MAX_AUTO_CLOSE_DAYS: u32 = 3650;

/// The scan mark of auto-close (a name no monitor has).
const AUTO_CLOSE_MARK: &str = "auto-close";

/// Who closes tickets automatically, in the log.
pub const AUTO_CLOSE_AUTHOR: &str = "auto-close";

/// The monitor index entries of a ticket as it is, for the watched times in `mask`.
fn index_keys(t: &Ticket, mask: u8) -> Vec<(Watch, OffsetDateTime, Vec<u8>)> {
    Watch::ALL
        .into_iter()
        .filter(|w| mask & watch_bit(*w) != 0)
        .filter_map(|w| {
            w.of(t)
                .map(|at| (w, at, index_key(&t.org, w, at, t.number)))
        })
        .collect()
}

/// Marks a ticket whose write put a watched time where the tick's scan of new crossings
/// may not look: a due date (it may lie anywhere), or a time before the write (a reopened
/// ticket's old activity); the next tick reads it.
fn dirty_key(number: u64) -> Vec<u8> {
    num_key("mondirty/", number)
}

/// Alert records: `monrec/<ticket>/<monitor id>` holds the episode last alerted.
fn record_prefix(number: u64) -> Vec<u8> {
    num_key("monrec/", number)
}

fn record_key(number: u64, monitor: &Monitor) -> Vec<u8> {
    let mut k = record_prefix(number);
    k.extend_from_slice(format!("/{}", monitor.id()).as_bytes());
    k
}

/// How far a scan of crossings (a monitor's, by its id, or auto-close's) has gone: the
/// position (watched time, ticket) of the last index entry its ticks dealt with.
fn mark_key(org: &str, scan: &str) -> String {
    format!("monmark/{org}/{scan}")
}

/// Keeps a ticket's monitor index entries in step with a write (only the entries that
/// changed are touched), and marks it for the next tick when it must be (see
/// [`dirty_key`]). Reading the organization's watched times here makes a change of its
/// monitors conflict with, and so follow, any write in flight.
pub(crate) fn reindex(
    tx: &TransactionalTree,
    before: Option<&Ticket>,
    after: &Ticket,
) -> Result<(), ConflictableTransactionError<StoreError>> {
    let mask = tx
        .get(watches_key(&after.org))?
        .and_then(|v| v.first().copied())
        .unwrap_or(0);
    if mask == 0 {
        return Ok(());
    }
    let old = before.map(|b| index_keys(b, mask)).unwrap_or_default();
    let new = index_keys(after, mask);
    for (_, _, k) in old.iter().filter(|o| !new.iter().any(|n| n.2 == o.2)) {
        tx.remove(k.as_slice())?;
    }
    // Imported history that turns live is looked at again: its watched times are old,
    // and the scan passed them while monitors left it alone.
    let mut behind = before.is_some_and(|b| b.imported) && !after.imported;
    for (w, at, k) in new.iter().filter(|n| !old.iter().any(|o| o.2 == n.2)) {
        tx.insert(k.as_slice(), &[])?;
        behind |= *w == Watch::Due || *at < after.updated_at;
    }
    if behind {
        tx.insert(
            dirty_key(after.number),
            &time_part(after.updated_at).to_be_bytes(),
        )?;
    }
    Ok(())
}

/// Every key a deleted ticket leaves in the monitor indexes and records.
pub(crate) fn keys_of_deleted(store: &Store, t: &Ticket) -> Result<Vec<Vec<u8>>, StoreError> {
    let mut keys: Vec<Vec<u8>> = index_keys(t, u8::MAX).into_iter().map(|e| e.2).collect();
    keys.push(dirty_key(t.number));
    for k in store.state.scan_prefix(record_prefix(t.number)).keys() {
        keys.push(k?.to_vec());
    }
    Ok(keys)
}

/// A ticket written since the last tick, with what marked it (see [`Store::clear_written`]).
#[derive(Debug, Clone, PartialEq)]
pub struct WrittenTicket {
    pub number: u64,
    mark: Vec<u8>,
}

impl Store {
    /// An organization's monitors, in the order they were set.
    pub fn monitors(&self, org: &str) -> Result<Vec<Monitor>, StoreError> {
        Ok(match self.state.get(monitors_key(org))? {
            Some(v) => decode(&v)?,
            None => Vec::new(),
        })
    }

    /// Every organization's monitors, for organizations that have any.
    pub fn all_monitors(&self) -> Result<Vec<(String, Vec<Monitor>)>, StoreError> {
        let mut out = Vec::new();
        for kv in self.state.scan_prefix("monitors/") {
            let (k, v) = kv?;
            let org = String::from_utf8_lossy(&k["monitors/".len()..]).into_owned();
            let list: Vec<Monitor> = decode(&v)?;
            if !list.is_empty() {
                out.push((org, list));
            }
        }
        Ok(out)
    }

    /// Replaces an organization's monitors (each checked; one name once). A watched time
    /// no monitor read before is indexed for the organization's tickets now (a pass over
    /// the tickets, in transactions of a few hundred); one no longer read is dropped, and
    /// so are the scan marks of monitors no longer listed.
    pub fn set_monitors(&self, org: &str, monitors: &[Monitor]) -> Result<(), StoreError> {
        self.set_automation(org, monitors, None)
    }

    /// [`Store::set_monitors`] and, when `auto_close` is given, the organization's
    /// auto-close days (1 to [`MAX_AUTO_CLOSE_DAYS`], or off), in one change of its
    /// watched times; anything wrong changes nothing.
    pub fn set_automation(
        &self,
        org: &str,
        monitors: &[Monitor],
        auto_close: Option<Option<u32>>,
    ) -> Result<(), StoreError> {
        if monitors.len() > MAX_MONITORS {
            return Err(StoreError::Invalid(format!(
                "An organization has at most {MAX_MONITORS} monitors."
            )));
        }
        for (i, m) in monitors.iter().enumerate() {
            m.check().map_err(StoreError::Invalid)?;
            if monitors[..i].iter().any(|o| o.id() == m.id()) {
                return Err(StoreError::Invalid(format!(
                    "The monitor \"{}\" is listed twice.",
                    m.describe()
                )));
            }
        }
        if let Some(Some(d)) = auto_close {
            if !(1..=MAX_AUTO_CLOSE_DAYS).contains(&d) {
                return Err(StoreError::Invalid(format!(
                    "Auto-close takes 1 to {MAX_AUTO_CLOSE_DAYS} days, not {d}."
                )));
            }
        }
        if self.org(org)?.is_none() {
            return Err(StoreError::NotFound(format!("organization {org}")));
        }
        let before = self.monitors(org)?;
        let closes = match auto_close {
            Some(days) => days.is_some(),
            None => self.auto_close_days(org)?.is_some(),
        };
        let value = encode(&monitors)?;
        self.change_watches(org, watch_mask(monitors, closes), |tx| {
            tx.insert(monitors_key(org).as_bytes(), value.as_slice())?;
            match auto_close {
                Some(Some(d)) => {
                    tx.insert(autoclose_key(org).as_bytes(), &d.to_be_bytes())?;
                }
                Some(None) => {
                    tx.remove(autoclose_key(org).as_bytes())?;
                }
                None => {}
            }
            Ok(())
        })?;
        for m in before
            .iter()
            .filter(|m| !monitors.iter().any(|n| n.id() == m.id()))
        {
            self.state.remove(mark_key(org, &m.id()))?;
        }
        if auto_close == Some(None) {
            self.state.remove(mark_key(org, AUTO_CLOSE_MARK))?;
        }
        self.flush()
    }

    /// After how many days without a reply an organization's resolved tickets close.
    pub fn auto_close_days(&self, org: &str) -> Result<Option<u32>, StoreError> {
        Ok(self
            .state
            .get(autoclose_key(org))?
            .and_then(|v| <[u8; 4]>::try_from(v.as_ref()).ok())
            .map(u32::from_be_bytes))
    }

    /// Every organization's auto-close setting, for those that have one.
    pub fn all_auto_close(&self) -> Result<Vec<(String, u32)>, StoreError> {
        let mut out = Vec::new();
        for kv in self.state.scan_prefix("autoclose/") {
            let (k, v) = kv?;
            if let Ok(days) = <[u8; 4]>::try_from(v.as_ref()) {
                let org = String::from_utf8_lossy(&k["autoclose/".len()..]).into_owned();
                out.push((org, u32::from_be_bytes(days)));
            }
        }
        Ok(out)
    }

    /// Changes an organization's watched times to `new` around `setting` (its monitors or
    /// auto-close), so that no tick sees a monitor before its index is whole: added times
    /// are indexed first (writes index them from then on, and the organization's tickets
    /// are read into them), then `setting` commits with the new watched times, then the
    /// times no longer read are dropped.
    fn change_watches(
        &self,
        org: &str,
        new: u8,
        setting: impl Fn(&TransactionalTree) -> Result<(), crate::engine::UnabortableTransactionError>,
    ) -> Result<(), StoreError> {
        // Across nodes too: two changes must not interleave their index builds and drops.
        self.exclusively("watch-changes", || {
            let old = self
                .state
                .get(watches_key(org))?
                .and_then(|v| v.first().copied())
                .unwrap_or(0);
            let added = new & !old;
            if added != 0 {
                self.state.insert(watches_key(org), &[old | new])?;
                self.index_org(org, added)?;
            }
            self.state
                .transaction(|tx| {
                    setting(tx)?;
                    tx.insert(watches_key(org).as_bytes(), &[new])?;
                    Ok::<(), ConflictableTransactionError<StoreError>>(())
                })
                .map_err(StoreError::from)?;
            for w in Watch::ALL
                .into_iter()
                .filter(|w| old & !new & watch_bit(*w) != 0)
            {
                let mut batch = crate::engine::Batch::default();
                for k in self.state.scan_prefix(index_prefix(org, w)).keys() {
                    batch.remove(k?);
                }
                self.state.apply_batch(batch)?;
            }
            Ok(())
        })
    }

    /// Adds the index entries of the watched times in `mask` for every ticket of `org`,
    /// each read in the transaction that writes its entries (a write in flight either
    /// comes first and is read, or follows and sees the new watched times).
    fn index_org(&self, org: &str, mask: u8) -> Result<(), StoreError> {
        const BATCH: usize = 256;
        let mut numbers = Vec::with_capacity(BATCH);
        let flush = |numbers: &mut Vec<u64>| -> Result<(), StoreError> {
            self.state
                .transaction(|tx| {
                    for n in numbers.iter() {
                        let Some(v) = tx.get(num_key("ticket/", *n))? else {
                            continue;
                        };
                        let t: Ticket = decode(&v).map_err(Abort)?;
                        for (_, _, k) in index_keys(&t, mask) {
                            tx.insert(k, &[])?;
                        }
                    }
                    Ok(())
                })
                .map_err(StoreError::from)?;
            numbers.clear();
            Ok(())
        };
        for t in self.all_tickets() {
            let t = t?;
            if t.org == org {
                numbers.push(t.number);
                if numbers.len() == BATCH {
                    flush(&mut numbers)?;
                }
            }
        }
        flush(&mut numbers)
    }

    /// The index entries of `org`'s `watch` after position `after` (exclusive; `None`:
    /// from the first) up to the time `up_to` (inclusive), oldest first, as positions
    /// (watched time, ticket number), read as the caller goes on.
    fn index_range(
        &self,
        org: &str,
        watch: Watch,
        after: Option<(u64, u64)>,
        up_to: u64,
    ) -> impl Iterator<Item = Result<(u64, u64), StoreError>> + '_ {
        let prefix = index_prefix(org, watch);
        let start = match after {
            Some((at, n)) => {
                let mut k = num_key(&prefix, at);
                k.extend_from_slice(&n.to_be_bytes());
                k.push(0);
                k
            }
            None => prefix.clone().into_bytes(),
        };
        let mut end = num_key(&prefix, up_to);
        end.extend_from_slice(&u64::MAX.to_be_bytes());
        let range = (start <= end).then(|| self.state.range(start..=end));
        range.into_iter().flatten().map(|kv| {
            let (k, _) = kv?;
            let tail = k
                .len()
                .checked_sub(16)
                .and_then(|i| k.get(i..))
                .ok_or_else(|| StoreError::Corrupt("monitor index key".into()))?;
            let (at, n) = tail.split_at(8);
            match (crate::codec::read_u64(at), crate::codec::read_u64(n)) {
                (Some(at), Some(n)) => Ok((at, n)),
                _ => Err(StoreError::Corrupt("monitor index key".into())),
            }
        })
    }

    /// The tickets of `org` whose watched time crossed `monitor`'s threshold at `now` since
    /// the last [`Store::move_scan_mark`], oldest first, at most `limit` (the rest come
    /// next time).
    pub fn crossings(
        &self,
        org: &str,
        monitor: &Monitor,
        now: OffsetDateTime,
        limit: usize,
    ) -> Result<Crossings, StoreError> {
        let threshold = monitor.threshold(now);
        self.scan(org, monitor.kind.watch(), &monitor.id(), threshold, limit)
    }

    /// The resolved tickets of `org` resolved `days` or more before `now` since the last
    /// [`Store::move_scan_mark`] of auto-close, oldest first, at most `limit`.
    pub fn resolved_crossings(
        &self,
        org: &str,
        days: u32,
        now: OffsetDateTime,
        limit: usize,
    ) -> Result<Crossings, StoreError> {
        let threshold = now - time::Duration::days(i64::from(days));
        self.scan(org, Watch::Resolved, AUTO_CLOSE_MARK, threshold, limit)
    }

    fn scan(
        &self,
        org: &str,
        watch: Watch,
        name: &str,
        threshold: OffsetDateTime,
        limit: usize,
    ) -> Result<Crossings, StoreError> {
        let mark_key = mark_key(org, name);
        let mark = self.state.get(&mark_key)?.and_then(|v| {
            Some((
                crate::codec::read_u64(v.get(..8)?)?,
                crate::codec::read_u64(v.get(8..)?)?,
            ))
        });
        let up_to = time_part(threshold);
        let mut tickets = Vec::new();
        let mut last = None;
        for entry in self.index_range(org, watch, mark, up_to).take(limit) {
            let (at, n) = entry?;
            tickets.push(n);
            last = Some((at, n));
        }
        // All read: the mark moves to the threshold, past every entry at or before it.
        let next = match last {
            Some(last) if tickets.len() == limit => last,
            _ => (up_to, u64::MAX),
        };
        // A clock moved back moves the mark back with it: entries written meanwhile lie
        // after it, and those already alerted have their records.
        Ok(Crossings {
            tickets,
            mark_key,
            unchanged: mark == Some(next),
            next,
        })
    }

    /// Records that the tick dealt with `c`: its next scan starts after them.
    pub fn move_scan_mark(&self, c: &Crossings) -> Result<(), StoreError> {
        if c.unchanged {
            return Ok(());
        }
        let mut v = c.next.0.to_be_bytes().to_vec();
        v.extend_from_slice(&c.next.1.to_be_bytes());
        self.state.insert(c.mark_key.as_bytes(), v)?;
        Ok(())
    }

    /// Closes ticket `number` if it is still resolved and was resolved `days` or more
    /// before `now`: a status change by [`AUTO_CLOSE_AUTHOR`] (the notifier tells the
    /// requester). `None` when it is not (answered, reopened, gone).
    pub fn auto_close(
        &self,
        number: u64,
        days: u32,
        now: OffsetDateTime,
    ) -> Result<Option<Event>, StoreError> {
        let threshold = now - time::Duration::days(i64::from(days));
        self.state
            .transaction(|tx| {
                let Some(v) = tx.get(num_key("ticket/", number))? else {
                    return Ok(None);
                };
                let before: Ticket = decode(&v).map_err(Abort)?;
                if Watch::Resolved
                    .of(&before)
                    .is_none_or(|since| since > threshold)
                {
                    return Ok(None);
                }
                let mut after = before.clone();
                let base = Event::by(number, AUTO_CLOSE_AUTHOR, false, now);
                let event = crate::tickets::append_change(
                    tx,
                    &mut after,
                    &crate::Change::Status(crate::Status::Closed),
                    &base,
                )?;
                after.updated_at = now;
                crate::tickets::save_ticket(tx, Some(&before), &after)?;
                Ok(Some(event))
            })
            .map_err(StoreError::from)
    }

    /// Tickets of `org` in the state `monitor` watches for at `now`, oldest in it first, at
    /// most `limit`: read through its index, not a scan of the tickets.
    pub fn matching(
        &self,
        org: &str,
        monitor: &Monitor,
        now: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<Ticket>, StoreError> {
        let mut out = Vec::new();
        // A due_in monitor matches due times still ahead of now.
        let after = (monitor.kind == crate::MonitorKind::DueIn).then(|| (time_part(now), u64::MAX));
        let up_to = time_part(monitor.threshold(now));
        for entry in self.index_range(org, monitor.kind.watch(), after, up_to) {
            if out.len() >= limit {
                break;
            }
            let (_, n) = entry?;
            if let Some(t) = self.ticket(n)?.filter(|t| monitor.matches(t, now)) {
                out.push(t);
            }
        }
        Ok(out)
    }

    /// Up to `limit` tickets written since a tick last looked at them, numbered above
    /// `after` (to read them a batch at a time).
    pub fn written_tickets(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<WrittenTicket>, StoreError> {
        let start = match after {
            Some(n) => dirty_key(n.saturating_add(1)),
            None => b"mondirty/".to_vec(),
        };
        self.state
            .range(start..)
            .take_while(|kv| {
                kv.as_ref()
                    .map_or(true, |(k, _)| k.starts_with(b"mondirty/"))
            })
            .take(limit)
            .map(|kv| {
                let (k, v) = kv?;
                let number = key_num(&k).ok_or_else(|| StoreError::Corrupt("dirty key".into()))?;
                Ok(WrittenTicket {
                    number,
                    mark: v.to_vec(),
                })
            })
            .collect()
    }

    /// Forgets that a ticket was written, unless it was written again since it was read.
    pub fn clear_written(&self, w: &WrittenTicket) -> Result<(), StoreError> {
        // A conflict means a newer write: it stays marked for the next tick.
        let _ = self.state.compare_and_swap(
            dirty_key(w.number),
            Some(w.mark.as_slice()),
            None as Option<&[u8]>,
        )?;
        Ok(())
    }

    /// Records that `ticket` is in `monitor`'s state, in the episode `episode`, and appends
    /// the alert to its log; `None` when this episode was alerted already (or the ticket is
    /// gone). The record and the event are one transaction, so a restart alerts nothing twice.
    pub fn raise_alert(
        &self,
        ticket: u64,
        monitor: &Monitor,
        episode: &[u8],
        at: OffsetDateTime,
    ) -> Result<Option<Event>, StoreError> {
        let record = record_key(ticket, monitor);
        self.state
            .transaction(|tx| {
                if tx.get(num_key("ticket/", ticket))?.is_none()
                    || tx.get(&record)?.is_some_and(|v| v.as_ref() == episode)
                {
                    return Ok(None);
                }
                tx.insert(record.as_slice(), episode)?;
                let event = Event {
                    kind: EventKind::Alert,
                    visibility: Visibility::Internal,
                    text: format!("This ticket is {}.", monitor.describe()),
                    monitor: Some(*monitor),
                    seq: bump(tx, "counter/event")?,
                    ..Event::by(ticket, MONITOR_AUTHOR, false, at)
                };
                append_event(tx, &event)?;
                Ok(Some(event))
            })
            .map_err(StoreError::from)
    }

    /// Forgets the episode `monitor` last alerted for `ticket`: the state ended.
    pub fn end_episode(&self, ticket: u64, monitor: &Monitor) -> Result<(), StoreError> {
        let key = record_key(ticket, monitor);
        if self.state.get(&key)?.is_some() {
            self.state.remove(key)?;
        }
        Ok(())
    }

    /// Fills the monitor times of tickets written before they existed, from their events,
    /// once.
    pub(crate) fn ensure_monitor_index(&self) -> Result<(), StoreError> {
        const DONE: &str = "migrated/monitor-index";
        if self.state.get(DONE)?.is_some() {
            return Ok(());
        }
        let mut activity: std::collections::HashMap<u64, Ticket> = Default::default();
        for v in self.state.scan_prefix("ticket/").values() {
            let t: Ticket = decode(&v?)?;
            if t.active_since.is_none() {
                let mut t2 = t.clone();
                t2.active_since = Some(t.created_at);
                t2.status_since = Some(t.updated_at);
                t2.unassigned_since = t.assignee.is_none().then_some(t.created_at);
                activity.insert(t.number, t2);
            }
        }
        if !activity.is_empty() {
            for v in self.state.scan_prefix("ev/").values() {
                let e: Event = decode(&v?)?;
                if let Some(t) = activity.get_mut(&e.ticket) {
                    crate::tickets::record_activity(t, &e);
                }
            }
        }
        // No organization had monitors then: there is nothing to index.
        for t in activity.into_values() {
            self.state
                .insert(num_key("ticket/", t.number), encode(&t)?)?;
        }
        self.state.insert(DONE, &[])?;
        self.flush()
    }
}

/// What a crossing scan found, and where its next one starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Crossings {
    pub tickets: Vec<u64>,
    mark_key: String,
    /// (watched time, ticket number) of the last entry dealt with.
    next: (u64, u64),
    /// The mark stays where it was (nothing to write).
    unchanged: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scratch::{scratch_org, scratch_store, scratch_ticket};
    use crate::{Change, MonitorKind, Status, TicketAction};
    use time::macros::datetime;
    use time::Duration;

    const START: OffsetDateTime = datetime!(2026-12-01 09:00 UTC);

    fn open(store: &Store, at: OffsetDateTime) -> Ticket {
        scratch_ticket(store, "acme", at)
    }

    fn change(store: &Store, ticket: u64, c: Change, at: OffsetDateTime) {
        store
            .act_on_ticket(&TicketAction {
                ticket,
                author: "bo@x.test".into(),
                by_staff: true,
                text: None,
                attachments: vec![],
                changes: vec![c],
                at,
            })
            .expect("change");
    }

    #[test]
    fn the_indexes_follow_every_write_and_find_crossings() {
        let (s, _dir) = scratch_store("monitor-index");
        scratch_org(&s, "acme");
        let every: Vec<Monitor> = MonitorKind::ALL
            .into_iter()
            .map(|k| Monitor::new(k, k.takes_hours().then_some(1)))
            .collect();
        s.set_monitors("acme", &every).expect("monitors");
        let t = open(&s, START);
        let unassigned = Monitor::new(MonitorKind::Unassigned, Some(2));
        let later = START + Duration::hours(3);
        assert_eq!(
            s.matching("acme", &unassigned, later, 10).expect("m").len(),
            1
        );
        assert!(s
            .matching("acme", &unassigned, START + Duration::hours(1), 10)
            .expect("m")
            .is_empty());
        // Crossings are read from a mark on: none after the scan moved past them.
        let c = s.crossings("acme", &unassigned, later, 10).expect("c");
        assert_eq!(c.tickets, vec![t.number]);
        s.move_scan_mark(&c).expect("mark");
        let c = s
            .crossings("acme", &unassigned, later + Duration::hours(1), 10)
            .expect("c");
        assert!(c.tickets.is_empty());
        // A scan that stops at its limit goes on from its last entry the next time.
        let second = open(&s, START + Duration::minutes(1));
        let third = open(&s, START + Duration::minutes(2));
        let hourly = Monitor::new(MonitorKind::Unassigned, Some(1));
        let c = s.crossings("acme", &hourly, later, 2).expect("c");
        assert_eq!(c.tickets, vec![t.number, second.number]);
        s.move_scan_mark(&c).expect("mark");
        let c = s.crossings("acme", &hourly, later, 2).expect("c");
        assert_eq!(c.tickets, vec![third.number]);
        s.move_scan_mark(&c).expect("mark");
        assert!(s
            .crossings("acme", &hourly, later, 2)
            .expect("c")
            .tickets
            .is_empty());
        // The clock moved back two hours: the mark follows it, so what is written then (at
        // the earlier time, behind where the mark was) is found once it crosses.
        let back = later - Duration::hours(2);
        let c = s.crossings("acme", &hourly, back, 2).expect("c");
        assert!(c.tickets.is_empty());
        s.move_scan_mark(&c).expect("mark");
        let fourth = open(&s, back);
        assert!(s
            .crossings("acme", &hourly, back, 5)
            .expect("c")
            .tickets
            .is_empty());
        let c = s
            .crossings("acme", &hourly, back + Duration::minutes(61), 5)
            .expect("c");
        // (Those read before the clock went back are read again; their alert records
        // keep them from alerting twice.)
        assert_eq!(c.tickets.last(), Some(&fourth.number));
        s.delete_ticket(fourth.number, "bo@x.test", START, None)
            .expect("delete");
        for n in [second.number, third.number] {
            s.delete_ticket(n, "bo@x.test", START, None)
                .expect("delete");
        }
        let assigned_at = START + Duration::hours(2);
        change(
            &s,
            t.number,
            Change::Assignee(Some("bo@x.test".into())),
            assigned_at,
        );
        assert!(s
            .matching("acme", &unassigned, later, 10)
            .expect("m")
            .is_empty());
        // Staff activity ends inactivity, not staleness; resolving ends both.
        let stale = Monitor::new(MonitorKind::Stale, Some(2));
        let inactive = Monitor::new(MonitorKind::Inactive, Some(2));
        assert_eq!(s.matching("acme", &stale, later, 10).expect("m").len(), 1);
        assert!(s
            .matching("acme", &inactive, later, 10)
            .expect("m")
            .is_empty());
        change(&s, t.number, Change::Status(Status::Resolved), later);
        let much_later = later + Duration::days(30);
        for kind in MonitorKind::ALL {
            let m = Monitor::new(kind, kind.takes_hours().then_some(1));
            assert!(s
                .matching("acme", &m, much_later, 10)
                .expect("m")
                .is_empty());
        }
        // Reopened: open again from now, its requester silent since the start.
        change(&s, t.number, Change::Status(Status::Open), much_later);
        let open_m = Monitor::new(MonitorKind::Open, Some(2));
        assert!(s
            .matching("acme", &open_m, much_later, 10)
            .expect("m")
            .is_empty());
        assert_eq!(
            s.matching("acme", &stale, much_later, 10).expect("m").len(),
            1
        );
        let t = s.ticket(t.number).expect("read").expect("ticket");
        assert_eq!(t.active_since, Some(much_later));
        assert_eq!(t.last_user_at, Some(START));
        assert_eq!(t.last_staff_at, Some(much_later));
    }

    #[test]
    fn one_alert_per_episode_and_written_tickets_are_listed_once() {
        let (s, _dir) = scratch_store("monitor-alerts");
        scratch_org(&s, "acme");
        let past_due = Monitor::new(MonitorKind::PastDue, None);
        s.set_monitors("acme", &[past_due]).expect("monitors");
        let t = open(&s, START);
        // A new ticket's watched times are the write's: nothing for the tick to look at.
        assert!(s.written_tickets(None, 10).expect("written").is_empty());
        change(&s, t.number, Change::Due(Some("2026-11-30".into())), START);
        let written = s.written_tickets(None, 10).expect("written");
        assert_eq!(written.len(), 1);
        s.clear_written(&written[0]).expect("clear");
        assert!(s.written_tickets(None, 10).expect("written").is_empty());
        let t = s.ticket(t.number).expect("read").expect("ticket");
        assert!(past_due.matches(&t, START));
        let episode = past_due.episode(&t).expect("episode");
        let first = s
            .raise_alert(t.number, &past_due, &episode, START)
            .expect("alert");
        let event = first.expect("raised");
        assert_eq!(event.kind, EventKind::Alert);
        assert_eq!(event.monitor, Some(past_due));
        assert!(s
            .raise_alert(t.number, &past_due, &episode, START)
            .expect("again")
            .is_none());
        // An alert is no one's activity: the ticket is untouched.
        assert_eq!(s.ticket(t.number).expect("read"), Some(t.clone()));
        // A new due date is a new episode.
        change(&s, t.number, Change::Due(Some("2026-11-29".into())), START);
        let t = s.ticket(t.number).expect("read").expect("ticket");
        let second = past_due.episode(&t).expect("episode");
        assert!(s
            .raise_alert(t.number, &past_due, &second, START)
            .expect("alert")
            .is_some());
        // A written ticket marked again after it was read stays marked.
        let written = s.written_tickets(None, 10).expect("written");
        change(
            &s,
            t.number,
            Change::Due(Some("2026-11-28".into())),
            START + Duration::seconds(1),
        );
        s.clear_written(&written[0]).expect("clear");
        assert_eq!(s.written_tickets(None, 10).expect("written").len(), 1);
        // Deleting the ticket leaves nothing of it in the monitor keys.
        s.delete_ticket(t.number, "bo@x.test", START, None)
            .expect("delete");
        for prefix in ["mon/", "mondirty/", "monrec/"] {
            assert!(s.state.scan_prefix(prefix).next().is_none(), "{prefix}");
        }
    }

    #[test]
    fn only_watched_times_are_indexed_and_set_monitors_builds_and_drops_them() {
        let (s, _dir) = scratch_store("monitor-watches");
        scratch_org(&s, "acme");
        scratch_org(&s, "beta");
        let t = open(&s, START);
        assert!(
            s.state.scan_prefix("mon/").next().is_none(),
            "no monitors, no index"
        );
        let unassigned = Monitor::new(MonitorKind::Unassigned, Some(1));
        s.set_monitors("acme", &[unassigned]).expect("monitors");
        let later = START + Duration::hours(2);
        assert_eq!(
            s.matching("acme", &unassigned, later, 10).expect("m").len(),
            1
        );
        assert_eq!(
            s.state.scan_prefix("mon/").count(),
            1,
            "only the watched time"
        );
        let c = s.crossings("acme", &unassigned, later, 10).expect("c");
        s.move_scan_mark(&c).expect("mark");
        assert!(s
            .state
            .get(mark_key("acme", &unassigned.id()))
            .expect("get")
            .is_some());
        s.set_monitors("acme", &[]).expect("none");
        assert!(s.state.scan_prefix("mon/").next().is_none());
        assert!(s
            .state
            .get(mark_key("acme", &unassigned.id()))
            .expect("get")
            .is_none());
        // Another organization's monitors index nothing of this one's.
        s.set_monitors("beta", &[unassigned]).expect("beta");
        change(&s, t.number, Change::Priority(crate::Priority::High), later);
        assert!(s.state.scan_prefix("mon/").next().is_none());
    }

    #[test]
    fn monitors_are_checked_and_kept_per_organization() {
        let (s, _dir) = scratch_store("monitor-lists");
        scratch_org(&s, "acme");
        let list = [
            Monitor::new(MonitorKind::PastDue, None),
            Monitor::new(MonitorKind::Unassigned, Some(2)),
            Monitor::new(MonitorKind::Unassigned, Some(8)),
        ];
        s.set_monitors("acme", &list).expect("set");
        assert_eq!(s.monitors("acme").expect("read"), list.to_vec());
        for bad in [
            vec![Monitor::new(MonitorKind::Open, None)],
            vec![Monitor::new(MonitorKind::Open, Some(0))],
            vec![
                Monitor::new(MonitorKind::Open, Some(2)),
                Monitor::new(MonitorKind::Open, Some(2)),
            ],
        ] {
            assert!(s.set_monitors("acme", &bad).is_err());
        }
        assert!(s.set_monitors("nobody", &list).is_err());
        assert_eq!(s.monitors("acme").expect("read"), list.to_vec());
        assert_eq!(s.all_monitors().expect("all").len(), 1);
        // Monitors and auto-close in one write: bad days change neither.
        let two = &list[..2];
        assert!(s.set_automation("acme", two, Some(Some(0))).is_err());
        assert_eq!(s.monitors("acme").expect("read"), list.to_vec());
        s.set_automation("acme", two, Some(Some(7))).expect("both");
        assert_eq!(s.monitors("acme").expect("read"), two.to_vec());
        assert_eq!(s.auto_close_days("acme").expect("days"), Some(7));
        s.set_monitors("acme", &list).expect("monitors alone");
        assert_eq!(s.auto_close_days("acme").expect("days"), Some(7));
        s.set_automation("acme", &list, Some(None)).expect("off");
        assert_eq!(s.auto_close_days("acme").expect("days"), None);
    }

    #[test]
    fn tickets_from_before_monitors_get_their_times_from_their_events() {
        let (s, dir) = scratch_store("monitor-legacy");
        scratch_org(&s, "acme");
        let t = open(&s, START);
        change(
            &s,
            t.number,
            Change::TimeSpent(30),
            START + Duration::hours(1),
        );
        // As an older version stored it: none of the monitor times, no index.
        let mut old = s.ticket(t.number).expect("read").expect("ticket");
        old.active_since = None;
        old.status_since = None;
        old.unassigned_since = None;
        old.last_staff_at = None;
        old.last_user_at = None;
        old.minutes_logged.clear();
        s.state
            .insert(num_key("ticket/", t.number), encode(&old).expect("encode"))
            .expect("write");
        s.state.remove("migrated/monitor-index").expect("remove");
        s.flush().expect("flush");
        drop(s);
        let s = crate::testing::open(&dir.0).expect("reopen");
        let stale = Monitor::new(MonitorKind::Stale, Some(2));
        s.set_monitors("acme", &[stale]).expect("monitors");
        let t = s.ticket(t.number).expect("read").expect("ticket");
        assert_eq!(t.last_staff_at, Some(START + Duration::hours(1)));
        assert_eq!(t.last_user_at, Some(START));
        assert_eq!(t.minutes_logged.get("bo@x.test"), Some(&30));
        assert_eq!(
            s.matching("acme", &stale, START + Duration::hours(3), 10)
                .expect("m")
                .len(),
            1
        );
    }
}
