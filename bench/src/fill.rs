//! Fills a data folder with synthetic tickets through the real store API, for the web
//! benchmark: `postdesk-fill DATA_DIR [TICKETS] [EVENTS_PER_TICKET]` (defaults 100000, 5).

use postdesk_store::{DeliveryCommit, EventKind, Org, Store, TicketTarget, TicketType};
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next() else {
        eprintln!("usage: postdesk-fill DATA_DIR [TICKETS] [EVENTS_PER_TICKET]");
        std::process::exit(2);
    };
    let tickets: u64 = args.next().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let per: u64 = args.next().and_then(|v| v.parse().ok()).unwrap_or(5).max(1);
    let store = match Store::open(std::path::Path::new(&dir)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot open {dir}: {e}");
            std::process::exit(1);
        }
    };
    if let Ok(None) = store.org("bench") {
        let org = Org {
            slug: "bench".into(),
            name: "Bench".into(),
            addresses: vec!["bench@localhost".into()],
            whitelist: vec![],
            created_at: time::OffsetDateTime::now_utc(),
            portal: Default::default(),
        };
        if let Err(e) = store.add_org(&org) {
            eprintln!("cannot add the bench organization: {e}");
            std::process::exit(1);
        }
    }
    let text = "The printer in room 4 prints blank pages since this morning. ".repeat(8);
    let started = Instant::now();
    // Inbound ids far above the spool's, so synthetic decisions never collide with real ones.
    let mut inbound = 1u64 << 40;
    for t in 0..tickets {
        let requester = format!("user{}@customer{}.test", t % 5000, t % 97);
        let mut number = None;
        for e in 0..per {
            inbound += 1;
            let commit = DeliveryCommit {
                inbound,
                org: "bench".into(),
                message_id: Some(format!("fill-{t}-{e}@bench.test")),
                from: requester.clone(),
                subject: format!("Printer problem {t}"),
                target: match number {
                    Some(n) => TicketTarget::Existing(n),
                    None => TicketTarget::New {
                        ticket_type: [TicketType::Question, TicketType::Incident, TicketType::Bug]
                            [(t % 3) as usize],
                        summary: format!("Printer problem {t}"),
                        requester: requester.clone(),
                        automatic: false,
                    },
                },
                kind: if number.is_some() {
                    EventKind::Reply
                } else {
                    EventKind::Created
                },
                by_staff: false,
                text: text.clone(),
                attachments: vec![],
                automatic: false,
                participants: vec![requester.clone()],
                cc: vec![],
                rule: "fill".into(),
                notes: vec![],
                visibility: postdesk_store::Visibility::Public,
                changes: vec![],
                last_delivery: true,
                at: time::OffsetDateTime::now_utc(),
            };
            match store.commit_delivery(&commit) {
                Ok(d) => {
                    if let postdesk_store::Outcome::Accepted { ticket, .. } = d.outcome {
                        number = Some(ticket);
                    }
                }
                Err(e) => {
                    eprintln!("commit failed: {e}");
                    std::process::exit(1);
                }
            }
        }
        if (t + 1) % 10_000 == 0 {
            eprintln!("{} tickets", t + 1);
        }
    }
    if let Err(e) = store.flush() {
        eprintln!("flush failed: {e}");
        std::process::exit(1);
    }
    println!(
        "RESULT fill tickets={tickets} events={} seconds={:.1}",
        tickets * per,
        started.elapsed().as_secs_f64()
    );
}
