//! What this node counts for `/metrics` (Prometheus text format): counters the gateway,
//! pipeline, notifier and web server bump as work happens (since this process started),
//! and gauges read from the store when the page is asked for.

use crate::{Desk, DeskResult};
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::LazyLock;

/// A metric's labels: names and values.
type Labels = Vec<(&'static str, String)>;

/// A family of histograms, made with the same buckets.
type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

/// Request durations from 1 ms to about 16 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// Every metric of this process.
pub struct Metrics {
    registry: Registry,
    inbound: Family<Labels, Counter>,
    decisions: Family<Labels, Counter>,
    outbound: Family<Labels, Counter>,
    monitor_ticks: Family<Labels, Counter>,
    monitor_alerts: Counter,
    http_requests: Family<Labels, Counter>,
    http_seconds: Histograms,
    backlog: Gauge,
    lag: Gauge<f64, AtomicU64>,
    outbox_queue: Gauge,
    sources: Family<Labels, Gauge>,
    source_silence: Family<Labels, Gauge<f64, AtomicU64>>,
    pool: Family<Labels, Gauge>,
    jobs: Family<Labels, Gauge>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// This process's metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    fn new() -> Metrics {
        let mut m = Metrics {
            registry: Registry::with_prefix("postdesk"),
            inbound: Family::default(),
            decisions: Family::default(),
            outbound: Family::default(),
            monitor_ticks: Family::default(),
            monitor_alerts: Counter::default(),
            http_requests: Family::default(),
            http_seconds: Family::new_with_constructor(latency_histogram),
            backlog: Gauge::default(),
            lag: Gauge::default(),
            outbox_queue: Gauge::default(),
            sources: Family::default(),
            source_silence: Family::default(),
            pool: Family::default(),
            jobs: Family::default(),
        };
        let r = &mut m.registry;
        r.register(
            "inbound_messages",
            "Inbound messages (SMTP, LMTP) answered at the end of DATA or refused at RCPT, \
             by outcome (accepted, refused, deferred) and reason",
            m.inbound.clone(),
        );
        r.register(
            "pipeline_decisions",
            "Inbound messages the pipeline decided, by outcome",
            m.decisions.clone(),
        );
        r.register(
            "outbound_mails",
            "Outbound mail handed to the relay or the outbox folder, by outcome (sent, \
             retry: a temporary failure, failed: given up)",
            m.outbound.clone(),
        );
        r.register(
            "monitor_runs",
            "Monitor ticks this node ran, by outcome",
            m.monitor_ticks.clone(),
        );
        r.register(
            "monitor_alerts",
            "Monitor alerts this node raised",
            m.monitor_alerts.clone(),
        );
        r.register(
            "http_requests",
            "HTTP requests by route, method and status",
            m.http_requests.clone(),
        );
        r.register(
            "http_request_duration_seconds",
            "HTTP request durations by route and method",
            m.http_seconds.clone(),
        );
        r.register(
            "pipeline_backlog_messages",
            "Accepted messages waiting for the pipeline (every node's)",
            m.backlog.clone(),
        );
        r.register(
            "pipeline_lag_seconds",
            "Age of the oldest message waiting for the pipeline (0 when none waits)",
            m.lag.clone(),
        );
        r.register(
            "outbox_queue_mails",
            "Outbound mail not yet sent (waiting or between retries)",
            m.outbox_queue.clone(),
        );
        r.register(
            "imap_source_connected",
            "Whether the node reading each IMAP source is connected to it (1) or not (0)",
            m.sources.clone(),
        );
        r.register(
            "imap_source_seconds_since_success",
            "Seconds since each IMAP source was last read through",
            m.source_silence.clone(),
        );
        r.register(
            "database_pool_connections",
            "PostgreSQL connections of this node's pool, by state (in_use, idle, max), and \
             requests waiting for one (waiting)",
            m.pool.clone(),
        );
        r.register(
            "jobs_led",
            "Jobs only one node runs (outbox, monitors, imap/NAME): 1 on the node running it",
            m.jobs.clone(),
        );
        m
    }

    /// An inbound message's answer: `outcome` accepted, refused or deferred.
    pub fn inbound(&self, outcome: &'static str, reason: &str) {
        self.inbound
            .get_or_create(&vec![
                ("outcome", outcome.into()),
                ("reason", reason.into()),
            ])
            .inc();
    }

    pub fn decision(&self, outcome: &str) {
        self.decisions
            .get_or_create(&vec![("outcome", outcome.into())])
            .inc();
    }

    pub fn outbound(&self, outcome: &'static str) {
        self.outbound
            .get_or_create(&vec![("outcome", outcome.into())])
            .inc();
    }

    pub fn monitor_tick(&self, ok: bool, alerts: u64) {
        let outcome = if ok { "ok" } else { "failed" };
        self.monitor_ticks
            .get_or_create(&vec![("outcome", outcome.into())])
            .inc();
        self.monitor_alerts.inc_by(alerts);
    }

    /// One HTTP request: `route` is the matched route pattern (never the raw path, whose
    /// values a stranger picks), `status` its answer.
    pub fn http_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        let (route, method) = (route.to_string(), method.to_string());
        self.http_requests
            .get_or_create(&vec![
                ("route", route.clone()),
                ("method", method.clone()),
                ("status", status.to_string()),
            ])
            .inc();
        self.http_seconds
            .get_or_create(&vec![("route", route), ("method", method)])
            .observe(seconds);
    }

    /// Whether this node leads job `name` now.
    pub fn job(&self, name: &str, led: bool) {
        self.jobs
            .get_or_create(&vec![("job", name.into())])
            .set(i64::from(led));
    }

    fn text(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

/// The `Content-Type` of [`Desk::metrics_text`].
pub const METRICS_CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

impl Desk {
    /// The metrics page: the gauges read from the store now, then every metric.
    pub async fn metrics_text(&self) -> DeskResult<String> {
        self.run(|desk| {
            let m = metrics();
            let now = desk.now();
            let store = &desk.store;
            let waiting = store.pipeline_backlog()?;
            m.backlog.set(waiting.count as i64);
            m.lag.set(
                waiting
                    .oldest
                    .map_or(0.0, |at| (now - at).as_seconds_f64().max(0.0)),
            );
            m.outbox_queue.set(store.outbox_queue_len()? as i64);
            for s in store.mailbox_statuses()? {
                let labels = vec![("source", s.source.clone())];
                m.sources.get_or_create(&labels).set(i64::from(s.connected));
                if let Some(at) = s.last_success {
                    m.source_silence
                        .get_or_create(&labels)
                        .set((now - at).as_seconds_f64().max(0.0));
                }
            }
            if let Some(pool) = store.pool_use() {
                for (state, n) in [
                    ("in_use", pool.size.saturating_sub(pool.idle)),
                    ("idle", pool.idle),
                    ("max", pool.max),
                    ("waiting", pool.waiting),
                ] {
                    m.pool
                        .get_or_create(&vec![("state", state.into())])
                        .set(n as i64);
                }
            }
            Ok(m.text())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_histograms_are_written_in_prometheus_text() {
        let m = Metrics::new();
        m.inbound("refused", "no_such_mailbox");
        m.inbound("refused", "no_such_mailbox");
        m.http_request("/api/v1/tickets/{number}", "GET", 200, 0.003);
        let text = m.text();
        assert!(
            text.contains(
                "postdesk_inbound_messages_total{outcome=\"refused\",reason=\"no_such_mailbox\"} 2"
            ),
            "{text}"
        );
        assert!(text.contains("# TYPE postdesk_http_request_duration_seconds histogram"));
        assert!(text.contains(
            "postdesk_http_request_duration_seconds_count{route=\"/api/v1/tickets/{number}\",method=\"GET\"} 1"
        ), "{text}");
        assert!(!text.contains("# EOF"), "Prometheus text, not OpenMetrics");
    }
}
