//! Measures the monitors' tick on a filled data folder (see `postdesk-fill`):
//! `postdesk-monitor-bench DATA_DIR`. Sets the seven kinds on the `bench` organization and
//! prints RESULT lines for the first tick (every ticket written since the last one), an
//! idle tick, a tick after 1,000 ticket writes, and a tick in which every ticket crosses
//! two monitors at once, with their times and what each read and raised.

use postdesk_desk::Desk;
use postdesk_store::{Clock, Monitor, MonitorKind, Store};
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
    let monitor = |kind, hours| Monitor {
        kind,
        hours,
        email: true,
    };
    // Hours long enough that the fill's tickets (minutes old) cross nothing at first.
    let monitors = [
        monitor(MonitorKind::PastDue, None),
        monitor(MonitorKind::DueIn, Some(24)),
        monitor(MonitorKind::Unassigned, Some(48)),
        monitor(MonitorKind::Open, Some(400)),
        monitor(MonitorKind::Inactive, Some(300)),
        monitor(MonitorKind::Stale, Some(49)),
        monitor(MonitorKind::Waiting, Some(24)),
    ];
    if let Err(e) = store.set_monitors("bench", &monitors) {
        eprintln!("cannot set the monitors: {e}");
        std::process::exit(1);
    }
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
                "RESULT monitor_tick {name} ms={:.1} tickets={tickets} monitors={} written={} crossed={} raised={}",
                started.elapsed().as_secs_f64() * 1000.0,
                r.monitors,
                r.written,
                r.crossed,
                r.raised
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
            changes: vec![postdesk_store::Change::Priority(
                postdesk_store::Priority::High,
            )],
            at: now,
        };
        if let Err(e) = store.act_on_ticket(&action) {
            eprintln!("cannot change ticket {n}: {e}");
            std::process::exit(1);
        }
    }
    tick("after_1000_writes");
    // 50 hours on: every ticket has been unassigned for 48 and silent for 49.
    if let Ok(mut moved) = clock.0.lock() {
        *moved = Duration::hours(50);
    }
    tick("every_ticket_crosses_two");
    tick("idle_after");
    let peak = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0);
    println!("RESULT monitor_tick peak_rss={}MB", peak / 1024);
}
