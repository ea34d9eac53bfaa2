//! `postdesk import --org SLUG PATH` (server stopped): an mbox file or a Maildir folder
//! read into an organization through the gateway's checks, spool and pipeline, with a
//! progress bar (rate, ETA) on a terminal and plain progress lines otherwise, and a
//! summary at the end.

use crate::config::Config;
use crate::{lock, open_store};
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use postdesk_gateway::{ImportProgress, ImportReport, MailFiles, Processor};
use std::io::IsTerminal;
use std::path::Path;
use std::time::{Duration, Instant};

/// How often plain progress lines are written when no terminal watches.
const LINE_EVERY: Duration = Duration::from_secs(5);

pub(crate) fn import(data: &Path, config: &Config, org: &str, path: &Path) -> Result<()> {
    let _lock = lock::acquire(data, "an import")?;
    let store = open_store(data, config)?;
    let clock = crate::serve::clock(config);
    // No DNS: what it proves (a staff member's DKIM, a sender's DMARC policy for automatic
    // answers) does not hold for old mail, whose keys have often been rotated since and
    // which nothing answers; asked per sender domain, it made the import wait on the
    // resolver for most of its time.
    let mut processor = Processor::new(
        store.clone(),
        None,
        Duration::from_millis(config.message_budget_ms.max(1)),
    )?
    .with_clock(clock.clone());
    let g = config.gateway();
    let mut files = MailFiles {
        store: &store,
        processor: &mut processor,
        max_message_size: g.max_message_size,
        max_line_length: g.max_line_length,
        now: clock.now(),
    };
    let started = Instant::now();
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} messages · {per_sec} · ETA {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    });
    let mut last_line = Instant::now();
    let report = files
        .import(org, path, |p: ImportProgress| match &bar {
            Some(bar) => {
                bar.set_length(p.total as u64);
                bar.set_position(p.done as u64);
            }
            None if last_line.elapsed() >= LINE_EVERY || p.done == p.total => {
                last_line = Instant::now();
                let rate = p.done as f64 / started.elapsed().as_secs_f64().max(0.001);
                eprintln!("imported {}/{} messages ({rate:.0}/s)", p.done, p.total);
            }
            None => {}
        })
        .with_context(|| format!("cannot import {}", path.display()))?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    store.flush()?;
    print_summary(&report, started.elapsed());
    Ok(())
}

fn print_summary(r: &ImportReport, took: Duration) {
    let rate = r.found as f64 / took.as_secs_f64().max(0.001);
    println!(
        "{} messages in {:.1} s ({rate:.0}/s): {} imported ({} tickets opened), {} already imported before, {} duplicates of mail already here, {} refused",
        r.found,
        took.as_secs_f64(),
        r.imported,
        r.opened,
        r.already,
        r.duplicates,
        r.refused.values().sum::<usize>()
    );
    for (reason, n) in &r.refused {
        println!("  refused {n}: {reason}");
    }
    if r.skipped > 0 {
        println!(
            "  not read: {} entries of the Maildir that are not message files (links, folders, hidden files)",
            r.skipped
        );
    }
}
