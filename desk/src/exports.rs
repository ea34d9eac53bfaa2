//! CSV exports for owners, admins and managers: one row per ticket (the list's filters:
//! organization, status, type, created from/to) and one per time entry (logged from/to).
//! RFC 4180 by the csv crate, UTF-8, cells a spreadsheet would run as a formula made
//! inert, written in chunks into a bounded channel as the store is read: memory stays
//! the same whatever the number of tickets.

use crate::costs::{hourly_rate, money, time_and_cost};
use crate::{policy, Desk, DeskError, DeskResult};
use postdesk_store::{Change, Event, Staff, Status, Store, StoreError, Ticket, TicketFilter};
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime, Time};
use tokio::sync::mpsc;

/// The ticket export's columns, in order; the API's ticket has a field for each.
pub const TICKET_COLUMNS: [&str; 15] = [
    "number",
    "org",
    "summary",
    "type",
    "status",
    "priority",
    "requester",
    "assignee",
    "created",
    "updated",
    "due",
    "resolved",
    "first_response",
    "time_logged_minutes",
    "cost",
];

/// The time export's columns.
const TIME_COLUMNS: [&str; 8] = [
    "ticket",
    "org",
    "summary",
    "staff",
    "minutes",
    "hourly_rate",
    "cost",
    "logged_at",
];

/// A chunk is sent once it holds this much.
const CHUNK: usize = 64 * 1024;
/// Exports that may stream at once; one more is answered "busy".
pub const MAX_EXPORTS: usize = 4;
/// How long a client may leave a chunk unread before the export is cut off.
const CLIENT_WAIT: std::time::Duration = std::time::Duration::from_secs(30);
/// Chunks waiting for the client: the export's memory is about CHUNK × this.
const CHUNKS_AHEAD: usize = 4;

/// Which tickets or entries an export holds; `None` matches everything. Days are UTC and
/// inclusive: tickets by the day they were opened, time entries by the day logged.
#[derive(Debug, Clone, Default)]
pub struct ExportFilter {
    /// Organization, status and type, as the ticket list filters them.
    pub tickets: TicketFilter,
    pub from: Option<Date>,
    pub to: Option<Date>,
}

impl ExportFilter {
    /// The filter from a request's text fields (empty = not given), or what is wrong.
    pub fn parse(
        org: Option<&str>,
        status: Option<&str>,
        ticket_type: Option<&str>,
        from: Option<&str>,
        to: Option<&str>,
    ) -> DeskResult<ExportFilter> {
        fn given(v: Option<&str>) -> Option<&str> {
            v.map(str::trim).filter(|v| !v.is_empty())
        }
        let f = ExportFilter {
            tickets: TicketFilter {
                org: given(org).map(str::to_string),
                status: given(status)
                    .map(str::parse)
                    .transpose()
                    .map_err(DeskError::Invalid)?,
                ticket_type: given(ticket_type)
                    .map(str::parse)
                    .transpose()
                    .map_err(DeskError::Invalid)?,
            },
            from: given_day(from, "from")?,
            to: given_day(to, "to")?,
        };
        if let (Some(a), Some(b)) = (f.from, f.to) {
            if a > b {
                return Err(DeskError::Invalid("from is after to.".into()));
            }
        }
        Ok(f)
    }

    fn start(&self) -> OffsetDateTime {
        self.from.map_or(OffsetDateTime::UNIX_EPOCH, |d| {
            d.with_time(Time::MIDNIGHT).assume_utc()
        })
    }

    /// The first moment after the last day.
    fn end(&self) -> OffsetDateTime {
        self.to
            .and_then(Date::next_day)
            .map_or(OffsetDateTime::new_utc(Date::MAX, Time::MIDNIGHT), |d| {
                d.with_time(Time::MIDNIGHT).assume_utc()
            })
    }

    fn holds(&self, t: &Ticket) -> bool {
        self.tickets.matches(t) && t.created_at >= self.start() && t.created_at < self.end()
    }
}

/// The day a request's field `name` gives (`YYYY-MM-DD`), `None` when it is empty or
/// absent, or what is wrong with it (exports' and reports' periods).
pub fn given_day(v: Option<&str>, name: &str) -> DeskResult<Option<Date>> {
    v.map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| {
            postdesk_store::parse_day(d)
                .filter(|_| d.len() == 10)
                .ok_or_else(|| {
                    DeskError::Invalid(format!("{name} must be a day as YYYY-MM-DD, not {d:?}."))
                })
        })
        .transpose()
}

/// A time as exports and the API write it (RFC 3339, UTC).
pub fn timestamp(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// When the ticket was resolved or closed, if it is.
pub fn resolved_at(t: &Ticket) -> Option<OffsetDateTime> {
    t.closed_at
        .filter(|_| matches!(t.status, Status::Resolved | Status::Closed))
}

/// A ticket's export row, one cell per [`TICKET_COLUMNS`] entry.
pub fn ticket_row(t: &Ticket, staff: &[Staff]) -> [String; 15] {
    let (minutes, cost) = time_and_cost(t, staff);
    let time = |t: Option<OffsetDateTime>| t.map(timestamp).unwrap_or_default();
    [
        t.number.to_string(),
        t.org.clone(),
        t.summary.clone(),
        t.ticket_type.as_str().to_string(),
        t.status.as_str().to_string(),
        t.priority.as_str().to_string(),
        t.requester.clone(),
        t.assignee.clone().unwrap_or_default(),
        timestamp(t.created_at),
        timestamp(t.updated_at),
        t.due.clone().unwrap_or_default(),
        time(resolved_at(t)),
        time(t.first_response_at),
        minutes.to_string(),
        money(cost),
    ]
}

/// A cell a spreadsheet would take for a formula gets a leading apostrophe: shown, never
/// run. That is one starting with `=`, `+`, `-`, `@`, a tab or a carriage return, also
/// behind invisible characters (a byte-order mark, zero-width spaces, spaces) or written
/// in their full-width and small forms, which some spreadsheets read as the same.
pub fn inert(cell: &str) -> std::borrow::Cow<'_, str> {
    const INVISIBLE: [char; 5] = ['\u{feff}', '\u{200b}', '\u{200c}', '\u{200d}', '\u{2060}'];
    const TRIGGERS: [char; 14] = [
        '=', '+', '-', '@', '\t', '\r', '\u{ff1d}', '\u{fe66}', '\u{ff0b}', '\u{fe62}', '\u{ff0d}',
        '\u{fe63}', '\u{ff20}', '\u{fe6b}',
    ];
    let visible = cell.trim_start_matches(|c: char| INVISIBLE.contains(&c) || c == ' ');
    if cell.starts_with(TRIGGERS) || visible.starts_with(TRIGGERS) {
        format!("'{cell}").into()
    } else {
        cell.into()
    }
}

/// Where an export's bytes go (the CSV writer's, a person's ZIP): gathered into chunks,
/// each sent once full. A send that fails (the client went away) fails the write, which
/// stops the export.
pub(crate) struct ChunkSink {
    chunk: Vec<u8>,
    out: mpsc::Sender<DeskResult<Vec<u8>>>,
    /// To wait for the client with a timeout from the export's blocking thread.
    runtime: tokio::runtime::Handle,
}

/// Ends a download with an error instead of its last chunk: the client sees a cut-off
/// transfer, never a short one that looks whole. Kept apart from the sink, which a writer
/// (a ZIP's) may own.
pub(crate) struct Cut(mpsc::Sender<DeskResult<Vec<u8>>>);

impl Cut {
    pub(crate) fn fail(&self, error: DeskError) {
        let _ = self.0.try_send(Err(error));
    }
}

impl ChunkSink {
    pub(crate) fn cut(&self) -> Cut {
        Cut(self.out.clone())
    }

    fn send(&mut self) -> std::io::Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK + 4096));
        // A client that stops reading must not hold the thread (and the export's place).
        let sent = self
            .runtime
            .block_on(tokio::time::timeout(CLIENT_WAIT, self.out.send(Ok(chunk))));
        match sent {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe)),
            Err(_) => Err(std::io::Error::from(std::io::ErrorKind::TimedOut)),
        }
    }
}

impl std::io::Write for ChunkSink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.chunk.extend_from_slice(bytes);
        if self.chunk.len() >= CHUNK {
            self.send()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// Writes an export's rows; `row` answers `false` once the export must stop.
struct ChunkWriter {
    csv: csv::Writer<ChunkSink>,
    /// Why the export stopped early, if it did.
    failed: Option<DeskError>,
}

impl ChunkWriter {
    /// Writes one row, each cell made inert; `false` once the export must stop (the
    /// client went away).
    fn row<I: AsRef<str>>(&mut self, cells: impl IntoIterator<Item = I>) -> bool {
        let cells = cells.into_iter().map(|c| inert(c.as_ref()).into_owned());
        match self.csv.write_record(cells) {
            Ok(()) => true,
            Err(e) => {
                self.failed = Some(DeskError::Internal(format!("export: {e}")));
                false
            }
        }
    }

    /// Sends what is left, or ends the export with `error`: the client then sees a
    /// cut-off download, never a short one that looks whole.
    fn finish(mut self, error: Option<DeskError>) {
        let error = error.or(self.failed.take());
        match error {
            None => {
                let _ = self.csv.flush();
            }
            Some(e) => {
                if let Ok(sink) = self.csv.into_inner() {
                    sink.cut().fail(e);
                }
            }
        }
    }
}

/// An export's chunks, as they are written.
pub type Chunks = mpsc::Receiver<DeskResult<Vec<u8>>>;

impl Desk {
    /// The ticket export (owners, admins and managers): a header, then one row per ticket
    /// in number order.
    pub async fn tickets_csv(&self, staff: Staff, filter: ExportFilter) -> DeskResult<Chunks> {
        self.export(staff, filter.tickets.org.clone(), move |store, w| {
            let people = store.staff_list()?;
            if !w.row(TICKET_COLUMNS) {
                return Ok(());
            }
            for t in store.all_tickets() {
                let t = t?;
                if filter.holds(&t) && !w.row(ticket_row(&t, &people)) {
                    return Ok(());
                }
            }
            Ok(())
        })
        .await
    }

    /// The time export (owners, admins and managers): one row per time entry logged in the
    /// period, oldest first, at the worker's hourly rate now.
    pub async fn time_csv(&self, staff: Staff, filter: ExportFilter) -> DeskResult<Chunks> {
        self.export(staff, filter.tickets.org.clone(), move |store, w| {
            let people = store.staff_list()?;
            if !w.row(TIME_COLUMNS) {
                return Ok(());
            }
            let mut ticket: Option<Ticket> = None;
            for e in store.time_entries(filter.start(), filter.end()) {
                let e = e?;
                if ticket.as_ref().is_none_or(|t| t.number != e.ticket) {
                    ticket = store.ticket(e.ticket)?;
                }
                let Some(t) = ticket.as_ref() else { continue };
                if !filter.tickets.matches(t) {
                    continue;
                }
                if !w.row(time_row(&e, t, &people)) {
                    return Ok(());
                }
            }
            Ok(())
        })
        .await
    }

    /// Checks the caller may export, then runs `write` on the blocking pool, feeding the
    /// returned channel as it goes.
    async fn export(
        &self,
        staff: Staff,
        org: Option<String>,
        write: impl FnOnce(&Store, &mut ChunkWriter) -> Result<(), StoreError> + Send + 'static,
    ) -> DeskResult<Chunks> {
        policy::require_reports(&staff)?;
        // An organization filter names one that exists (what the audit log records is real).
        if let Some(org) = org {
            self.run(move |desk| desk.require_org(&org)).await?;
        }
        self.stream(move |store, sink| {
            let mut w = ChunkWriter {
                // RFC 4180 ends records with CRLF; the crate's default is LF. Every cell is
                // quoted: a spreadsheet whose list separator is `;` would otherwise split
                // `x;=1+1` into a cell that runs.
                csv: csv::WriterBuilder::new()
                    .terminator(csv::Terminator::CRLF)
                    .quote_style(csv::QuoteStyle::Always)
                    .from_writer(sink),
                failed: None,
            };
            let result = write(store, &mut w);
            w.finish(result.err().map(DeskError::from));
        })
    }

    /// A place among the reads of the whole store (exports, a person's data, reports), at
    /// most [`MAX_EXPORTS`] at once: each holds a blocking thread for as long as it reads.
    pub(crate) fn whole_store_read(&self) -> DeskResult<tokio::sync::OwnedSemaphorePermit> {
        self.exports.clone().try_acquire_owned().map_err(|_| {
            DeskError::Busy(format!(
                "{MAX_EXPORTS} exports or reports are running; try again in a moment."
            ))
        })
    }

    /// Runs `write` on the blocking pool with a sink that feeds the returned channel as it
    /// goes; at most [`MAX_EXPORTS`] at once (the caller's rights are checked before).
    pub(crate) fn stream(
        &self,
        write: impl FnOnce(&Store, ChunkSink) + Send + 'static,
    ) -> DeskResult<Chunks> {
        let running = self.whole_store_read()?;
        let (out, chunks) = mpsc::channel(CHUNKS_AHEAD);
        let store = self.store.clone();
        let sink = ChunkSink {
            chunk: Vec::with_capacity(CHUNK + 4096),
            out,
            runtime: tokio::runtime::Handle::current(),
        };
        tokio::task::spawn_blocking(move || {
            let _running = running;
            write(&store, sink);
        });
        Ok(chunks)
    }
}

/// A time entry's export row, one cell per [`TIME_COLUMNS`] entry.
fn time_row(e: &Event, t: &Ticket, staff: &[Staff]) -> [String; 8] {
    let minutes = match e.change {
        Some(Change::TimeSpent(m)) => u64::from(m),
        _ => 0,
    };
    let rate = hourly_rate(staff, &e.author);
    [
        t.number.to_string(),
        t.org.clone(),
        t.summary.clone(),
        e.author.clone(),
        minutes.to_string(),
        money(rate),
        money(minutes * rate / 60),
        timestamp(e.at),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::ticket;

    #[test]
    fn formulas_are_made_inert_and_plain_text_is_not() {
        for hostile in [
            "=HYPERLINK(\"http://x\",\"y\")",
            "+1",
            "-2+3",
            "@SUM(A1)",
            "\t=1",
        ] {
            assert!(inert(hostile).starts_with('\''), "{hostile}");
        }
        assert_eq!(inert("Printer = broken"), "Printer = broken");
        assert_eq!(inert(""), "");
    }

    #[test]
    fn filters_parse_and_refuse_bad_days() {
        let f = ExportFilter::parse(
            Some("acme"),
            Some("open"),
            Some(""),
            Some("2026-01-01"),
            None,
        )
        .expect("filter");
        assert_eq!(f.tickets.org.as_deref(), Some("acme"));
        assert!(f.tickets.ticket_type.is_none());
        assert!(ExportFilter::parse(None, Some("late"), None, None, None).is_err());
        assert!(ExportFilter::parse(None, None, None, Some("2026-13-01"), None).is_err());
        assert!(
            ExportFilter::parse(None, None, None, Some("2026-02-01"), Some("2026-01-01")).is_err()
        );
        let mut t = ticket("r@x");
        t.created_at = OffsetDateTime::new_utc(
            Date::from_calendar_date(2026, time::Month::March, 3).expect("day"),
            Time::MIDNIGHT,
        );
        let on = |from: &str, to: &str| {
            ExportFilter::parse(None, None, None, Some(from), Some(to))
                .expect("filter")
                .holds(&t)
        };
        assert!(on("2026-03-03", "2026-03-03"));
        assert!(!on("2026-03-04", "2026-03-05"));
        assert!(!on("2026-03-01", "2026-03-02"));
    }

    #[test]
    fn a_ticket_row_has_every_column() {
        let mut t = ticket("r@x");
        t.minutes_logged.insert("a@x".into(), 90);
        let row = ticket_row(&t, &[]);
        assert_eq!(row.len(), TICKET_COLUMNS.len());
        assert_eq!(row[13], "90");
        assert_eq!(row[14], "0.00");
    }
}
