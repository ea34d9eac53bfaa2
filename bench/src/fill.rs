//! Fills a data folder with synthetic tickets through the spool and the pipeline, for the
//! web benchmark: `postdesk-fill DATA_DIR [TICKETS] [EVENTS_PER_TICKET]` (defaults 100000,
//! 5): each ticket is a question mailed in and replies that thread by In-Reply-To. With
//! MONITORS=1 the `bench` organization has the seven monitor kinds while it fills.

use postdesk_store::{Delivery, Envelope, Org, Source, Store};

mod seven;
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
        let org = Org::new(
            "bench",
            "Bench",
            vec!["bench@localhost".into()],
            time::OffsetDateTime::now_utc(),
        );
        if let Err(e) = store.add_org(&org) {
            eprintln!("cannot add the bench organization: {e}");
            std::process::exit(1);
        }
    }
    // MONITORS=1: the seven monitor kinds are set first, so every write keeps their indexes.
    if std::env::var("MONITORS").is_ok_and(|v| v == "1") {
        if let Err(e) = store.set_monitors("bench", &seven::seven_monitors()) {
            eprintln!("cannot set the monitors: {e}");
            std::process::exit(1);
        }
    }
    let text = "The printer in room 4 prints blank pages since this morning. ".repeat(8);
    let envelope = Envelope {
        source: Source::Smtp,
        peer: "127.0.0.1:1".into(),
        helo: "fill.test".into(),
        mail_from: "fill@customer.test".into(),
        deliveries: vec![Delivery {
            org: "bench".into(),
            address: "bench@localhost".into(),
        }],
        refused: vec![],
        received_at: time::OffsetDateTime::now_utc(),
        mailbox: None,
    };
    let started = Instant::now();
    // Per chunk of tickets, each round of messages (the first of every ticket, then every
    // reply) is spooled as received mail and the pipeline threads it: the store ends up
    // with what receiving that mail would leave (raw messages, envelopes, decisions,
    // Message-ID index), not a shortcut of it.
    const CHUNK: u64 = 500;
    let mut pipeline = match postdesk_gateway::Processor::new(
        store.clone(),
        None,
        postdesk_gateway::DEFAULT_BUDGET,
    ) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("the pipeline could not start: {e}");
            std::process::exit(1);
        }
    };
    let mut done = 0;
    while done < tickets {
        let chunk = CHUNK.min(tickets - done);
        for e in 0..per {
            let raws: Vec<Vec<u8>> = (done..done + chunk).map(|t| message(t, e, &text)).collect();
            let batch: Vec<(&Envelope, &[u8])> =
                raws.iter().map(|r| (&envelope, r.as_slice())).collect();
            if let Err(e) = store.spool_batch(&batch) {
                eprintln!("spooling failed: {e}");
                std::process::exit(1);
            }
            if let Err(e) = pipeline.process_pending() {
                eprintln!("the pipeline failed: {e}");
                std::process::exit(1);
            }
        }
        done += chunk;
        if done % 10_000 == 0 {
            eprintln!("{done} tickets");
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

/// Message `e` of ticket `t`: the question (`e == 0`) or a reply quoting the message before.
fn message(t: u64, e: u64, text: &str) -> Vec<u8> {
    let from = format!("user{}@customer{}.test", t % 5000, t % 97);
    let kind = ["Question", "Incident", "Bug"][(t % 3) as usize];
    let mut head = format!(
        "From: User {t} <{from}>\r\nTo: bench@localhost\r\nDate: Thu, 26 Nov 2026 04:00:00 +0000\r\n\
         Message-ID: <fill-{t}-{e}@customer.test>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n"
    );
    let body = if e == 0 {
        head.push_str(&format!("Subject: {kind}: Printer problem {t}\r\n"));
        format!("{text}\r\n")
    } else {
        let parent = format!("fill-{t}-{}@customer.test", e - 1);
        head.push_str(&format!(
            "Subject: Re: {kind}: Printer problem {t}\r\nIn-Reply-To: <{parent}>\r\nReferences: <{parent}>\r\n"
        ));
        format!("Still broken, attempt {e}.\r\n\r\nOn Thu, 26 Nov 2026 at 04:00, Bench <bench@localhost> wrote:\r\n> {text}\r\n")
    };
    format!("{head}\r\n{body}").into_bytes()
}
