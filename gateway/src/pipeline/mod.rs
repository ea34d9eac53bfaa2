//! The pipeline: takes spooled messages in order, plans what each does (plan.rs) and
//! commits several messages per transaction. Each message is planned on a worker thread
//! within a time budget; one that panics, runs past the budget, or was in hand each time
//! the server died is recorded as failed with its reason (the original is kept), so no
//! message blocks those behind it or stalls every restart. Resumes after a crash from the
//! spool markers; a delivery already decided is not applied twice.

mod commands;
mod content;
pub(crate) use content::{id_list, MAX_IN_REPLY_TO, MAX_REFERENCES};
mod guard;
mod lookup;
mod people;
mod plan;
mod proof;

use crate::{DmarcChecker, GatewayError};
use guard::{failure_writes, plan_guarded};
use lookup::BatchView;
use plan::PlanContext;
use postdesk_store::{
    normalize_message_id, Clock, Decision, PipelineWrite, Store, StoreError, SystemClock,
    TicketTarget,
};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where DMARC checks get their DNS answers.
#[derive(Debug, Clone)]
pub enum DnsSource {
    /// The system resolvers.
    System,
    /// Only the TXT records in this text (zone-file lines); nothing goes to the network.
    Records(String),
    /// One DNS server, asked over UDP.
    Server(std::net::SocketAddr),
}

/// How long one message may take from parse to planned writes unless told otherwise. Every
/// step is linear in the message, so real mail takes milliseconds; this is the backstop.
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(30);

/// Whether the server's stop signal is set (or its sender gone); `None`: no server.
fn stop_signalled(stop: Option<&tokio::sync::watch::Receiver<bool>>) -> bool {
    stop.is_some_and(|s| *s.borrow() || s.has_changed().is_err())
}

/// How long, after the stop signal, the pipeline waits for the message in hand (the
/// server's own grace is longer, see `serve.rs`); a message budget may be longer still.
const STOP_WAIT: Duration = Duration::from_secs(10);

/// A message in hand this many times when the server died is recorded as failed.
const MAX_CRASHES: u32 = 3;

/// Most messages committed by one pipeline transaction. Each store transaction costs a
/// log write with a sync of its own, and one per message made the pipeline's syncs, not
/// the receiver's, the limit on ingest (issue 6). But a store transaction also holds a
/// lock every other store operation waits for (the spool's writes, sessions' recipient
/// lookups, web reads): under c=20 load a 64-message commit took 14.5 ms on average
/// (74 ms at worst), waiting for or holding it, a 16-message one 5.5 ms. 16 keeps most
/// of the saving.
const MAX_BATCH_MESSAGES: usize = 16;

/// The spool's signal that it committed messages; whichever worker follows the spool
/// waits on it (a fresh worker takes it over when one is given up on).
type Wake = Arc<Mutex<Receiver<()>>>;

/// The pipeline: its worker wakes when the spool commits, and every second regardless.
pub struct Pipeline {
    processor: Processor,
    wake: Wake,
}

impl Pipeline {
    /// At the server's `stop` signal the pipeline finishes the message in hand and ends;
    /// otherwise it ends once the spool writer is gone and what is pending is done.
    pub fn new(
        mut processor: Processor,
        wake: Receiver<()>,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Pipeline {
        processor.stop = Some(stop);
        Pipeline {
            processor,
            wake: Arc::new(Mutex::new(wake)),
        }
    }

    /// Runs on its own thread until the spool writer is gone and the worker has finished
    /// what is pending.
    pub fn run(mut self) {
        while let Err(e) = self.processor.follow(&self.wake) {
            tracing::error!(error = %e, "pipeline stopped; starting again");
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

/// Plans and commits spooled messages: passes run on a worker thread, watched from the
/// caller's thread, which gives up on a message past its budget.
pub struct Processor {
    store: Store,
    dns: Option<DnsSource>,
    secret: [u8; 32],
    budget: Duration,
    /// Started by the first pass, on the thread that runs the passes (whose priority
    /// it inherits).
    worker: Option<Worker>,
    /// Set until the first pass has looked at how the last run ended.
    recovered: bool,
    /// After an unclean stop: each message is noted durably before it is planned, up to
    /// this inbound id (the newest pending at start), so one that kills the process at
    /// once is known on the next start.
    careful_until: Option<u64>,
    /// The server's stop signal, when the pipeline runs in one (see [`Pipeline::new`]).
    stop: Option<tokio::sync::watch::Receiver<bool>>,
    /// What entries are stamped with: the desk's clock (see [`Processor::with_clock`]).
    clock: Arc<dyn Clock>,
}

impl Processor {
    /// `dns` (when given) lets a staff member's mail prove itself by DKIM and lets forged
    /// senders be recognised; `budget` bounds each message's planning.
    pub fn new(
        store: Store,
        dns: Option<DnsSource>,
        budget: Duration,
    ) -> Result<Processor, GatewayError> {
        let secret = store.secret("reply-token")?;
        Ok(Processor {
            store,
            dns,
            secret,
            budget,
            worker: None,
            recovered: false,
            careful_until: None,
            stop: None,
            clock: Arc::new(SystemClock),
        })
    }

    /// Stamps entries with `clock` (the desk's, which tests move) instead of the wall clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Processor {
        self.clock = clock;
        self
    }

    /// Processes every spooled message not yet completed, oldest first, in one pass on the
    /// worker. Returns how many (those given up on included).
    pub fn process_pending(&mut self) -> Result<usize, GatewayError> {
        let mut worker = self.take_worker()?;
        let mut given_up = 0;
        worker.order(Order::Pass(self.careful_until))?;
        loop {
            match worker.done.recv_timeout(self.tick()) {
                Ok(Report::Pass(done)) => {
                    self.worker = Some(worker);
                    let done = done?;
                    self.careful_until = done.careful_until;
                    return Ok(done.processed + given_up);
                }
                Ok(Report::Stopped) | Err(RecvTimeoutError::Disconnected) => {
                    worker = self.after_death(worker)?;
                }
                Err(RecvTimeoutError::Timeout) => {
                    let (w, replaced) = self.watch_budget(worker)?;
                    worker = w;
                    if !replaced {
                        continue;
                    }
                }
            }
            given_up += 1;
            worker.order(Order::Pass(self.careful_until))?;
        }
    }

    /// Has the worker follow the spool's wake, passing over what is pending each time,
    /// and watches it, until the spool writer is gone and the last pass is done. The
    /// worker waits for the spool itself: a hand-off between threads for every pass cost
    /// the receiver a tenth of its rate at one connection (two thread wake-ups per message
    /// on two cores). The watch looks at the worker's progress every tick instead.
    pub fn follow(&mut self, wake: &Wake) -> Result<(), GatewayError> {
        let mut worker = self.take_worker()?;
        worker.order(Order::Follow(self.careful_until, wake.clone()))?;
        let mut stop_seen: Option<Instant> = None;
        loop {
            std::thread::sleep(self.tick());
            if self.stopping() {
                let since = *stop_seen.get_or_insert_with(Instant::now);
                if since.elapsed() > STOP_WAIT {
                    // A stop, not a crash: the message in hand is not counted against it
                    // on the next start, where it is planned again.
                    tracing::warn!(inbound = ?worker.progress.current(), "the message in hand was not finished at the stop; it waits for the next start");
                    // Told to stop at its next step, so it commits nothing after the note
                    // is gone.
                    worker.cancelled.store(true, Ordering::Relaxed);
                    self.store.clear_planning()?;
                    return Ok(());
                }
            }
            let (next, fresh) = match worker.done.try_recv() {
                Ok(Report::Stopped) => return Ok(()),
                Ok(Report::Pass(_)) | Err(TryRecvError::Empty) => self.watch_budget(worker)?,
                Err(TryRecvError::Disconnected) => (self.after_death(worker)?, true),
            };
            worker = next;
            // A fresh worker, after one given up on, takes the wake over (at a stop it
            // only has to see the stop and end).
            if fresh {
                worker.order(Order::Follow(self.careful_until, wake.clone()))?;
            }
        }
    }

    fn stopping(&self) -> bool {
        stop_signalled(self.stop.as_ref())
    }

    /// The worker, started (and the last run's end looked at) if there is none yet.
    fn take_worker(&mut self) -> Result<Worker, GatewayError> {
        if !self.recovered {
            self.recover()?;
            self.recovered = true;
        }
        match self.worker.take() {
            Some(w) => Ok(w),
            None => Worker::start(
                self.store.clone(),
                self.dns.clone(),
                self.secret,
                self.stop.clone(),
                self.clock.clone(),
            ),
        }
    }

    /// How often the worker is looked at: often enough to give up soon after the budget.
    fn tick(&self) -> Duration {
        (self.budget / 4).clamp(Duration::from_millis(10), Duration::from_millis(250))
    }

    /// The same worker while its message is within the budget; past it, the message is
    /// recorded as failed and a fresh worker returned (`true`).
    fn watch_budget(&self, worker: Worker) -> Result<(Worker, bool), GatewayError> {
        let Some(id) = worker.progress.over(self.budget) else {
            return Ok((worker, false));
        };
        tracing::error!(
            inbound = id,
            budget_ms = self.budget.as_millis() as u64,
            "message took longer than its budget; recorded as failed"
        );
        let reason = format!(
            "processing took longer than {:.1} s; recorded as failed, the original is kept",
            self.budget.as_secs_f64()
        );
        Ok((self.give_up(worker, id, &reason)?, true))
    }

    /// The worker died outside its guards: what it had in hand is recorded as failed and
    /// a fresh worker returned.
    fn after_death(&self, worker: Worker) -> Result<Worker, GatewayError> {
        let Some(id) = worker.progress.current() else {
            return Err(GatewayError::Io(std::io::Error::other(
                "the pipeline worker stopped",
            )));
        };
        tracing::error!(
            inbound = id,
            "pipeline worker died; message recorded as failed"
        );
        self.give_up(
            worker,
            id,
            "the message could not be processed; recorded as failed, the original is kept",
        )
    }

    /// Records message `id` as failed, tells `worker` to stop at its next step (what it
    /// would still commit is idempotent: the first decision of a delivery stands), and
    /// starts a fresh worker.
    fn give_up(&self, worker: Worker, id: u64, reason: &str) -> Result<Worker, GatewayError> {
        worker.cancelled.store(true, Ordering::Relaxed);
        self.store
            .commit_pipeline(&failure_writes(&self.store, id, reason, self.clock.now())?)?;
        Worker::start(
            self.store.clone(),
            self.dns.clone(),
            self.secret,
            self.stop.clone(),
            self.clock.clone(),
        )
    }

    /// After an unclean stop: the message that was in hand counts one crash more, and is
    /// recorded as failed once it has been in hand for [`MAX_CRASHES`] of them.
    fn recover(&mut self) -> Result<(), GatewayError> {
        let Some((suspect, crashes)) = self.store.crash_suspect()? else {
            return Ok(());
        };
        let pending = self.store.pending_inbound()?;
        self.careful_until = pending.last().copied();
        if !pending.contains(&suspect) {
            return Ok(());
        }
        if crashes >= MAX_CRASHES {
            tracing::error!(
                inbound = suspect,
                crashes,
                "message was in hand each time the server died; recorded as failed"
            );
            let reason = format!(
                "the server stopped {crashes} times while processing this message; recorded \
                 as failed, the original is kept"
            );
            let writes = failure_writes(&self.store, suspect, &reason, self.clock.now())?;
            self.store.commit_pipeline(&writes)?;
        } else {
            tracing::warn!(
                inbound = suspect,
                crashes,
                "the server stopped while processing this message; trying again"
            );
        }
        Ok(())
    }
}

/// What a worker is told to do.
enum Order {
    /// One pass over what is pending, reported when done.
    Pass(Option<u64>),
    /// Passes each time the spool wakes it, until the spool writer is gone.
    Follow(Option<u64>, Wake),
}

/// What a worker reports.
enum Report {
    Pass(Result<PassDone, GatewayError>),
    /// A following worker finished its last pass.
    Stopped,
}

/// What a finished pass reports.
struct PassDone {
    processed: usize,
    careful_until: Option<u64>,
}

/// Which message a worker has in hand, and since when, for the watch on its budget.
struct Progress {
    base: Instant,
    /// The inbound id in hand; 0 when none (inbound ids start at 1).
    current: AtomicU64,
    /// When it was taken, in milliseconds after `base`.
    since_ms: AtomicU64,
}

impl Progress {
    fn take(&self, id: u64) {
        self.since_ms
            .store(self.base.elapsed().as_millis() as u64, Ordering::Relaxed);
        self.current.store(id, Ordering::Release);
    }

    fn put_down(&self) {
        self.current.store(0, Ordering::Release);
    }

    fn current(&self) -> Option<u64> {
        Some(self.current.load(Ordering::Acquire)).filter(|&id| id != 0)
    }

    /// The message in hand, if it has been for longer than `budget`.
    fn over(&self, budget: Duration) -> Option<u64> {
        let id = self.current()?;
        let since = Duration::from_millis(self.since_ms.load(Ordering::Relaxed));
        (self.base.elapsed().saturating_sub(since) > budget).then_some(id)
    }
}

/// The thread that runs passes, so the pipeline can give up on a message that takes too
/// long and go on with a fresh one.
struct Worker {
    orders: mpsc::Sender<Order>,
    done: Receiver<Report>,
    progress: Arc<Progress>,
    /// Set when the pipeline gives up on this worker: it stops at its next step.
    cancelled: Arc<AtomicBool>,
}

/// The planning thread's stack: parsers recurse on some structures (nested message parts
/// are counted and bounded before parsing); room to spare costs only address space.
const WORKER_STACK: usize = 64 * 1024 * 1024;

impl Worker {
    fn start(
        store: Store,
        dns: Option<DnsSource>,
        secret: [u8; 32],
        stop: Option<tokio::sync::watch::Receiver<bool>>,
        clock: Arc<dyn Clock>,
    ) -> Result<Worker, GatewayError> {
        let (orders, order_rx) = mpsc::channel::<Order>();
        let (done_tx, done) = mpsc::channel();
        let cancelled = Arc::new(AtomicBool::new(false));
        let progress = Arc::new(Progress {
            base: Instant::now(),
            current: AtomicU64::new(0),
            since_ms: AtomicU64::new(0),
        });
        let (flag, watched) = (cancelled.clone(), progress.clone());
        std::thread::Builder::new()
            .name("pipeline-plan".into())
            .stack_size(WORKER_STACK)
            .spawn(move || {
                // Built here: the checker owns a small runtime, which must not be created or
                // dropped inside the server's async runtime.
                let checker = dns.and_then(|dns| {
                    let made = match &dns {
                        DnsSource::System => DmarcChecker::system(),
                        DnsSource::Records(text) => DmarcChecker::from_records(text),
                        DnsSource::Server(server) => DmarcChecker::with_server(*server),
                    };
                    made.map_err(|e| tracing::warn!(error = %e, "DKIM/DMARC checks are off; staff must prove themselves with reply tokens"))
                        .ok()
                });
                let context = PlanContext {
                    store: &store,
                    secret: &secret,
                    dmarc: checker.as_ref(),
                    cancelled: &flag,
                    stop: stop.as_ref(),
                    clock: clock.as_ref(),
                };
                while let Ok(order) = order_rx.recv() {
                    let report = match order {
                        Order::Pass(careful_until) => {
                            Report::Pass(run_pass(&context, careful_until, &watched))
                        }
                        Order::Follow(careful_until, wake) => {
                            follow_spool(&context, careful_until, &watched, &wake);
                            Report::Stopped
                        }
                    };
                    if done_tx.send(report).is_err() {
                        // Given up on: a fresh worker has taken over.
                        return;
                    }
                }
            })?;
        Ok(Worker {
            orders,
            done,
            progress,
            cancelled,
        })
    }

    fn order(&self, order: Order) -> Result<(), GatewayError> {
        self.orders
            .send(order)
            .map_err(|_| GatewayError::Io(std::io::Error::other("the pipeline worker stopped")))
    }
}

/// A following worker's loop: a pass, then a wait for the spool, until the spool writer is
/// gone (one last pass) or the pipeline gives up on this worker (a fresh one has the wake).
fn follow_spool(
    context: &PlanContext<'_>,
    mut careful_until: Option<u64>,
    progress: &Progress,
    wake: &Wake,
) {
    let mut last = false;
    while context.go_on().is_ok() {
        match run_pass(context, careful_until, progress) {
            Ok(done) => careful_until = done.careful_until,
            Err(GatewayError::Cancelled) => return,
            Err(e) if last => {
                tracing::error!(error = %e, "last pipeline pass failed");
            }
            Err(e) => {
                tracing::error!(error = %e, "pipeline pass failed; retrying");
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        if last || context.stopping() {
            return;
        }
        // Held only while waiting, where nothing panics; were it poisoned anyway, going on
        // beats a pipeline that stops for good while the server still takes mail.
        let wake = wake
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match wake.recv_timeout(Duration::from_secs(1)) {
            Ok(()) => while wake.try_recv().is_ok() {},
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => last = true,
        }
    }
}

/// One pass over the pending messages, on the worker: each is planned (noted as in hand
/// first) and committed with others in batches.
fn run_pass(
    context: &PlanContext<'_>,
    careful_until: Option<u64>,
    progress: &Progress,
) -> Result<PassDone, GatewayError> {
    let store = context.store;
    let pending = store.pending_inbound()?;
    let mut batch = Batch::default();
    let mut processed = 0;
    for &id in &pending {
        if context.stopping() {
            break;
        }
        processed += 1;
        // Another node sharing the store has it in hand (or decided it meanwhile).
        if !store.claim_inbound(id)? {
            continue;
        }
        let careful = careful_until.is_some_and(|last| id <= last);
        store.note_planning(id, careful)?;
        progress.take(id);
        let mut planned = plan_guarded(context, id, &batch.view)?;
        if planned.read_batch {
            // This message threads on one planned in this batch: commit those first, so it
            // is planned against the tickets they made.
            context.go_on()?;
            batch.commit(store, context.clock.now())?;
            planned = plan_guarded(context, id, &batch.view)?;
        }
        progress.put_down();
        batch.add(id, planned.writes);
        if batch.messages.len() >= MAX_BATCH_MESSAGES {
            context.go_on()?;
            batch.commit(store, context.clock.now())?;
        }
    }
    context.go_on()?;
    batch.commit(store, context.clock.now())?;
    store.clear_planning()?;
    let done_to = pending[..processed].last();
    Ok(PassDone {
        processed,
        careful_until: careful_until.filter(|&last| done_to.is_none_or(|&p| p < last)),
    })
}

/// Messages planned and not yet committed, with what their writes touch, so a later
/// message that would read those tickets or Message-IDs waits for the commit.
#[derive(Default)]
struct Batch {
    writes: Vec<PipelineWrite>,
    /// Inbound id and how many of `writes` are its.
    messages: Vec<(u64, usize)>,
    view: BatchView,
}

impl Batch {
    fn add(&mut self, id: u64, writes: Vec<PipelineWrite>) {
        for w in &writes {
            if let PipelineWrite::Delivery(c) = w {
                if let Some(m) = &c.message_id {
                    self.view
                        .message_ids
                        .insert((c.org.clone(), normalize_message_id(m)));
                }
                match c.target {
                    TicketTarget::Existing(n) => {
                        self.view.tickets.insert(n);
                    }
                    TicketTarget::New { .. } => self.view.opens_tickets = true,
                }
            }
        }
        self.messages.push((id, writes.len()));
        self.writes.extend(writes);
    }

    /// Commits the batch in one transaction. If it cannot be applied as a whole (a ticket
    /// deleted meanwhile, bad data), each message is committed alone and one that still
    /// fails is recorded as refused (at `now`, the desk's clock); storage errors are
    /// returned and the batch is planned again on the next pass.
    fn commit(&mut self, store: &Store, now: time::OffsetDateTime) -> Result<(), GatewayError> {
        if self.messages.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(self);
        let started = std::time::Instant::now();
        match store.commit_pipeline(&batch.writes) {
            Ok(decisions) => {
                tracing::debug!(
                    messages = batch.messages.len(),
                    micros = started.elapsed().as_micros() as u64,
                    "pipeline batch committed"
                );
                log_decided(&batch.writes, &decisions)
            }
            Err(e @ (StoreError::Db(_) | StoreError::Io(_))) => return Err(e.into()),
            Err(e) => {
                tracing::warn!(error = %e, messages = batch.messages.len(), "batch not applied as a whole; committing message by message");
                let mut rest = batch.writes.as_slice();
                for &(id, n) in &batch.messages {
                    let (mine, after) = rest.split_at(n);
                    rest = after;
                    match store.commit_pipeline(mine) {
                        Ok(decisions) => log_decided(mine, &decisions),
                        Err(e @ (StoreError::Db(_) | StoreError::Io(_))) => return Err(e.into()),
                        Err(e) => {
                            tracing::error!(inbound = id, error = %e, "message could not be applied; recorded as refused");
                            let refusal = failure_writes(
                                store,
                                id,
                                &format!(
                                    "the message could not be applied: {e}; the original is kept"
                                ),
                                now,
                            )?;
                            store.commit_pipeline(&refusal)?;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

fn log_decided(writes: &[PipelineWrite], decisions: &[Decision]) {
    for (w, d) in writes.iter().zip(decisions) {
        if matches!(w, PipelineWrite::Delivery(_)) {
            tracing::info!(inbound = d.inbound, org = %d.org, outcome = ?d.outcome, "inbound decided");
            postdesk_desk::metrics::metrics().decision(d.outcome.as_str());
        }
    }
}
