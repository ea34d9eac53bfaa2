//! The monitors' timer: a desk tick every interval until the stop signal. The alerts it
//! raises are events; the notifier's pass turns them into mail and bell entries.

use postdesk_desk::metrics::metrics;
use postdesk_desk::model::Leadership;
use postdesk_desk::Desk;
use std::time::Duration;
use tokio::sync::watch;

/// Runs a tick every `every` (the first one at once) until `stop` turns true. A failed
/// tick is logged and tried again at the next.
pub async fn run_monitors(desk: Desk, every: Duration, mut stop: watch::Receiver<bool>) {
    let mut timer = tokio::time::interval(every);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut lead = None;
    loop {
        tokio::select! {
            _ = timer.tick() => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        // Of nodes sharing a store, one ticks; another takes over when it dies.
        if !lead.as_ref().is_some_and(Leadership::still_held) {
            if lead.take().is_some() {
                metrics().job("monitors", false);
            }
            lead = desk.lead_monitors().await.unwrap_or_else(|e| {
                tracing::error!(error = %e, "cannot ask who runs the monitors; retrying");
                None
            });
            metrics().job("monitors", lead.is_some());
            if lead.is_none() {
                continue;
            }
        }
        let started = std::time::Instant::now();
        let tick = desk.monitor_tick().await;
        metrics().monitor_tick(tick.is_ok(), tick.as_ref().map_or(0, |r| r.raised as u64));
        match tick {
            Ok(r) if r.raised > 0 || r.crossed > 0 => tracing::info!(
                monitors = r.monitors,
                written = r.written,
                crossed = r.crossed,
                raised = r.raised,
                ms = started.elapsed().as_millis() as u64,
                "monitor tick"
            ),
            Ok(r) => tracing::debug!(monitors = r.monitors, written = r.written, "monitor tick"),
            Err(e) => {
                tracing::error!(error = %e, cause = e.cause().unwrap_or(""), "monitor tick failed")
            }
        }
    }
}
