//! Measures the monitors' tick on a filled data folder (see `postdesk-fill`):
//! `postdesk-monitor-bench DATA_DIR`. Sets the seven kinds on the `bench` organization
//! (indexing its tickets' watched times) and prints RESULT lines for the first tick, an
//! idle tick, a tick after 1,000 due dates set in the past, and the ticks that alert every
//! ticket crossing two monitors at once, with their times and what each read and raised.

use postdesk_desk::Desk;
use postdesk_store::{Clock, Store};

mod seven;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use time::{Duration, OffsetDateTime};

/// The wall clock moved by a bench-chosen amount.
struct MovedClock(Mutex<Duration>);

impl Clock for MovedClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + self.0.lock().map(|d| *d).unwrap_or_default()
    }
}

fn main() {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: postdesk-monitor-bench DATA_DIR");
        std::process::exit(2);
    };
    let store = Store::open(std::path::Path::new(&dir)).unwrap_or_else(|e| {
        eprintln!("cannot open {dir}: {e}");
        std::process::exit(1);
    });
    let tickets = store
        .ticket_counts()
        .map_or(0, |c| c.iter().map(|x| x.3).sum::<u64>());
    println!("RESULT monitor_open rss={}MB", memory("VmRSS"));
    let started = Instant::now();
    let monitors = seven::seven_monitors();
    if let Err(e) = store.set_monitors("bench", &monitors) {
        eprintln!("cannot set the monitors: {e}");
        std::process::exit(1);
    }
    println!(
        "RESULT monitor_set seconds={:.2} tickets={tickets} rss={}MB (indexes the seven kinds' times)",
        started.elapsed().as_secs_f64(),
        memory("VmRSS")
    );
    let clock = Arc::new(MovedClock(Mutex::new(Duration::ZERO)));
    let desk = Desk::new(store.clone(), clock.clone());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| {
            eprintln!("no runtime: {e}");
            std::process::exit(1);
        });
    let tick = |name: &str| {
        let started = Instant::now();
        match runtime.block_on(desk.monitor_tick()) {
            Ok(r) => println!(
                "RESULT monitor_tick {name} ms={:.1} tickets={tickets} monitors={} written={} crossed={} raised={} rss={}MB",
                started.elapsed().as_secs_f64() * 1000.0,
                r.monitors,
                r.written,
                r.crossed,
                r.raised,
                memory("VmRSS")
            ),
            Err(e) => {
                eprintln!("tick failed: {e}");
                std::process::exit(1);
            }
        }
    };
    tick("first");
    tick("idle");
    let newest: Vec<u64> = store
        .tickets_where(&Default::default(), 1000, |_| true)
        .map(|list| list.into_iter().map(|t| t.number).collect())
        .unwrap_or_default();
    let now = clock.now();
    for n in &newest {
        let action = postdesk_store::TicketAction {
            ticket: *n,
            author: "bench@localhost".into(),
            by_staff: true,
            text: None,
            attachments: vec![],
            changes: vec![postdesk_store::Change::Due(Some("2020-01-31".into()))],
            at: now,
        };
        if let Err(e) = store.act_on_ticket(&action) {
            eprintln!("cannot change ticket {n}: {e}");
            std::process::exit(1);
        }
    }
    // Due dates set in the past: the written tickets are read, and each is past due.
    tick("after_1000_due_dates");
    // 50 hours on: every ticket has been unassigned for 48 and silent for 49.
    if let Ok(mut moved) = clock.0.lock() {
        *moved = Duration::hours(50);
    }
    // Every ticket now crosses two monitors: the alerts come a bounded batch per tick.
    let (started, mut ticks, mut raised, mut slowest) = (Instant::now(), 0, 0, 0.0f64);
    loop {
        let one = Instant::now();
        let r = runtime.block_on(desk.monitor_tick()).unwrap_or_else(|e| {
            eprintln!("tick failed: {e}");
            std::process::exit(1);
        });
        slowest = slowest.max(one.elapsed().as_secs_f64() * 1000.0);
        ticks += 1;
        raised += r.raised;
        if r.crossed == 0 {
            break;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "RESULT monitor_tick every_ticket_crosses_two ticks={ticks} raised={raised} seconds={seconds:.1} alerts_per_s={:.0} slowest_tick_ms={slowest:.0} rss={}MB",
        raised as f64 / seconds,
        memory("VmRSS")
    );
    tick("idle_after");
    println!("RESULT monitor_tick peak_rss={}MB", memory("VmHWM"));
}

/// A line of /proc/self/status in MB (VmRSS now, VmHWM the peak).
fn memory(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0)
        / 1024
}
