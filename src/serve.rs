//! `postdesk serve`: first-run setup, the listeners, the mailbox importers, the spool writer
//! and pipeline, and a clean shutdown on SIGINT/SIGTERM.

use crate::config::Config;
use crate::{lock, open_store};
use anyhow::{Context, Result};
use postdesk_desk::model::{Clock, OffsetFileClock, Store, SystemClock};
use postdesk_desk::operator::FirstRun;
use postdesk_desk::Desk;
use postdesk_gateway::{DnsSource, Gateway, Mode, Pipeline, Processor, SpoolHandle, SpoolWriter};
use postdesk_notifier::{FolderTransport, Notifier, NotifierConfig, RelayTransport, Transport};
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::net::TcpListener;

pub fn serve(data: &Path, config: Config, owner: Option<&str>) -> Result<()> {
    map_large_buffers();
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log)
        .with_context(|| format!("invalid log filter {:?}", config.log))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    // Both ring (ours) and aws-lc-rs (mail-auth's resolver) are linked: name the one TLS
    // uses, or rustls refuses to guess at the first connection.
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let _lock = lock::acquire(data, "postdesk serve")?;
    let store = open_store(data, &config)?;
    let desk = Desk::new(store.clone(), clock(&config));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(run(data, store, desk, config, owner));
    // A thread still busy after the grace periods (a relay that does not answer) must not
    // keep the process: what it had not committed is redone on the next start.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

/// The clock everything stamps and expires by: the system's, or moved by a file (tests).
pub(crate) fn clock(config: &Config) -> Arc<dyn Clock> {
    if config.clock_offset_file.is_empty() {
        Arc::new(SystemClock)
    } else {
        tracing::warn!(file = %config.clock_offset_file, "the desk's clock is moved by a file (a test setting)");
        Arc::new(OffsetFileClock {
            path: config.clock_offset_file.clone().into(),
        })
    }
}

/// On an empty data folder: organization `support`, the owner, an API token and a
/// sign-in link, printed once when the server is up.
fn first_run_setup(desk: &Desk, config: &Config, owner: Option<&str>) -> Result<Option<FirstRun>> {
    let first = desk
        .operator()
        .first_run(&config.domain, owner)
        .map_err(crate::admin::refused)?;
    match &first {
        None if owner.is_some() => {
            tracing::warn!("--owner is only used on an empty data folder; ignored");
        }
        Some(f) if owner.is_none() => {
            tracing::warn!(owner = %f.owner, "no --owner given: the owner is {}; start with --owner you@example.org on an empty data folder to choose", f.owner);
        }
        _ => {}
    }
    Ok(first)
}

/// How long the stop waits for each step: open web requests, then the spool writer, the
/// pipeline's message in hand and the notifier's pass, together.
const STOP_GRACE: Duration = Duration::from_secs(15);

/// The server's sockets, bound before anything is written.
struct Listeners {
    smtp: TcpListener,
    lmtp: Option<TcpListener>,
    http: TcpListener,
}

impl Listeners {
    async fn bind(config: &Config) -> Result<Listeners> {
        let lmtp = match config.lmtp.as_str() {
            "" => None,
            address => Some(listen(address, "LMTP").await?),
        };
        Ok(Listeners {
            smtp: listen(&config.smtp, "SMTP").await?,
            lmtp,
            http: listen(&config.http, "HTTP").await?,
        })
    }
}

/// The running server: every component, started in the order mail flows through them
/// and stopped by one signal. At the signal the listeners, importers and web server stop
/// taking work, the pipeline finishes the message in hand (the rest waits in the spool
/// for the next start) and the notifier its pass; the spool writer ends when the last
/// session has let go of it. Each wait is bounded (see [`STOP_GRACE`]): a service
/// manager's stop timeout (systemd: 90 s) must not end in a kill.
async fn run(
    data: &Path,
    store: Store,
    desk: Desk,
    config: Config,
    owner: Option<&str>,
) -> Result<()> {
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    // Ports and settings first: a first start that cannot listen (port 25 taken) or whose
    // configuration is refused writes nothing, and stays a first start.
    let Listeners { smtp, lmtp, http } = Listeners::bind(&config).await?;
    let tls = tls(&config)?;
    let sources = config
        .imap
        .iter()
        .map(|i| i.source())
        .collect::<Result<Vec<_>>>()?;
    let trusted_proxies = Arc::new(config.trusted_proxies()?);
    let dns = config.dns_source()?;
    let transport = outbound_transport(&store, &config)?;
    let first_run = first_run_setup(&desk, &config, owner)?;
    let (spool, spool_thread, pipeline) =
        start_mail_flow(&store, &config, desk.clock(), dns, stop.clone())?;
    let notifier = start_notifier(&store, &config, transport, stop.clone())?;
    let gateway = Gateway::new(store.clone(), config.gateway(), spool, tls, stop.clone());
    let mut listeners = vec![tokio::spawn(postdesk_gateway::serve(
        smtp,
        gateway.clone(),
        Mode::Smtp,
    ))];
    if let Some(lmtp) = lmtp {
        listeners.push(tokio::spawn(postdesk_gateway::serve(
            lmtp,
            gateway.clone(),
            Mode::Lmtp,
        )));
    }
    let importers = postdesk_gateway::start_sources(&gateway, sources)?;
    let monitors = tokio::spawn(postdesk_notifier::run_monitors(
        desk.clone(),
        Duration::from_secs(config.monitor_interval_secs),
        stop.clone(),
    ));
    let web = start_web(http, desk, data, &config, trusted_proxies, stop)?;
    tracing::info!(smtp = %config.smtp, lmtp = %config.lmtp, http = %config.http, domain = %config.domain, "postdesk is running");
    if let Some(f) = first_run {
        print_first_run(&f, &config);
    }

    shutdown_signal().await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    for l in listeners {
        let _ = l.await;
    }
    // An importer in the middle of a pass is stopped after a grace period: what it
    // committed is marked or moved on the next start, and nothing else was acknowledged.
    for task in importers {
        let abort = task.abort_handle();
        if tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .is_err()
        {
            abort.abort();
        }
    }
    // A tick commits each alert with its record, so one cut short loses nothing: the next
    // start scans again from its marks.
    let abort = monitors.abort_handle();
    if tokio::time::timeout(Duration::from_secs(5), monitors)
        .await
        .is_err()
    {
        abort.abort();
    }
    // A client that never finishes its request must not hold the stop.
    let abort = web.abort_handle();
    if tokio::time::timeout(STOP_GRACE, web).await.is_err() {
        tracing::warn!("web requests still open at the stop; closed");
        abort.abort();
    }
    // Sessions still in flight hold spool handles; the writer ends when the last is gone.
    drop(gateway);
    // All three are waited for at once, within one deadline.
    let deadline = tokio::time::Instant::now() + STOP_GRACE;
    let joins = [
        ("spool", spool_thread),
        ("pipeline", pipeline),
        ("notifier", notifier),
    ]
    .map(|(name, thread)| (name, tokio::task::spawn_blocking(move || thread.join())));
    for (name, joined) in joins {
        if tokio::time::timeout_at(deadline, joined).await.is_err() {
            tracing::warn!(thread = name, "did not finish in time; left behind");
        }
    }
    // Every acknowledged message is already durable in the spool; this only saves the
    // pipeline's latest progress so the next start has less to redo.
    if let Err(e) = store.flush() {
        tracing::error!(error = %e, "final flush failed");
    }
    Ok(())
}

fn tls(config: &Config) -> Result<Option<tokio_rustls::TlsAcceptor>> {
    if config.tls_cert.is_empty() {
        return Ok(None);
    }
    Ok(Some(postdesk_gateway::load_tls(
        Path::new(&config.tls_cert),
        Path::new(&config.tls_key),
    )?))
}

async fn listen(address: &str, what: &str) -> Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen for {what} on {address}"))
}

/// The spool writer (group commits for every session) and the pipeline after it, each on
/// a thread of its own: the handle sessions spool through, and the two threads.
fn start_mail_flow(
    store: &Store,
    config: &Config,
    clock: Arc<dyn Clock>,
    dns: DnsSource,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(SpoolHandle, JoinHandle<()>, JoinHandle<()>)> {
    let (wake_tx, wake_rx) = std::sync::mpsc::channel();
    let (writer, spool) = SpoolWriter::new(store.clone(), wake_tx);
    let spool_thread = std::thread::Builder::new()
        .name("spool".into())
        .spawn(move || writer.run())?;
    let processor = Processor::new(
        store.clone(),
        Some(dns),
        Duration::from_millis(config.message_budget_ms.max(1)),
    )?
    .with_clock(clock);
    let pipeline = std::thread::Builder::new()
        .name("pipeline".into())
        .spawn(move || {
            lower_priority();
            Pipeline::new(processor, wake_rx, stop).run()
        })?;
    Ok((spool, spool_thread, pipeline))
}

/// Where outbound mail goes: the relay, or the outbox folder when none is set.
fn outbound_transport(store: &Store, config: &Config) -> Result<Transport> {
    Ok(if config.relay.url.is_empty() {
        let folder = store.delivered_folder().to_path_buf();
        Transport::Folder(
            FolderTransport::new(folder.clone())
                .with_context(|| format!("cannot create {}", folder.display()))?,
        )
    } else {
        Transport::Relay(RelayTransport::new(&config.relay_config()?)?)
    })
}

/// Outbound mail, on a thread of its own; relay sends run on the server's runtime.
fn start_notifier(
    store: &Store,
    config: &Config,
    transport: Transport,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<JoinHandle<()>> {
    let notifier_config = NotifierConfig {
        retry_base: Duration::from_secs(config.relay.retry_base_secs.max(1)),
        concurrency: config.relay.concurrency.max(1),
        max_message_bytes: config.max_outbound_size(),
        public_url: config.public_url(),
        ..Default::default()
    };
    let notifier = Notifier::new(store.clone(), transport, notifier_config);
    let runtime = tokio::runtime::Handle::current();
    Ok(std::thread::Builder::new()
        .name("notifier".into())
        .spawn(move || {
            lower_priority();
            notifier.run(runtime, stop)
        })?)
}

/// The web UI and the JSON API, until the stop signal.
fn start_web(
    http: TcpListener,
    desk: Desk,
    data: &Path,
    config: &Config,
    trusted_proxies: Arc<postdesk_webui::Networks>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>> {
    let app = postdesk_webui::router(postdesk_webui::AppState {
        outbound: config.outbound_description(data),
        domain: config.domain.to_ascii_lowercase(),
        trusted_proxies,
        metrics_allow: Arc::new(config.metrics_allow()?),
        limits: Arc::new(postdesk_webui::Limits::for_desk(&desk)),
        ..postdesk_webui::AppState::new(desk, &config.public_url())
    })
    .into_make_service_with_connect_info::<std::net::SocketAddr>();
    Ok(tokio::spawn(async move {
        let _ = axum::serve(http, app)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await;
    }))
}

fn print_first_run(f: &FirstRun, config: &Config) {
    let link = format!("{}/signin/link/{}", config.public_url(), f.link_token);
    println!(
        "Postdesk is running with a new data folder.\n\
         \n  Organization `support` accepts mail at support@{domain} on {smtp}.\n\
         \n  Send a test mail:\n    swaks --server {smtp} --from you@example.com --to support@{domain}\n\
         \n  See it in the web UI (sign-in link for {admin}, valid 12 hours):\n    {link}\n\
         \n  Or with the API (token shown only now):\n    curl -H 'Authorization: Bearer {token}' http://{http}/api/v1/tickets\n\
         \n  Add organizations and staff with `postdesk org add` / `postdesk staff add` while the server is stopped.",
        domain = config.domain,
        smtp = config.smtp,
        http = config.http,
        admin = f.owner,
        token = f.api_token,
    );
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Message buffers (up to max_message_size each) are allocated and freed all day. glibc's
/// default threshold for mapping an allocation on its own grows to 32 MiB after the first
/// such buffer is freed, and from then on they come from the heap, whose freed pages stay
/// with the process: RSS would keep the high-water mark of every burst of large mail, and
/// the stated memory bound (README) would only hold until the heap fragments. A fixed
/// threshold keeps every buffer over 1 MiB in a mapping of its own, handed back on free.
/// Fixing it also fixes the heap's trim threshold at 128 KiB, and sled's 512 KiB log
/// buffers come from the heap: each free gave the top pages back, to be faulted in again
/// for the next one (c=1 ingest over one connection measured 6% slower). Free heap up to
/// 4 MiB is kept instead, as glibc's own adaptive rule would have kept 1 MiB+. That is per
/// malloc arena (glibc makes up to 8 per core as threads contend; 15 seen on 2 cores after
/// a burst). Capping them (`M_ARENA_MAX` 4) cost c=1 ingest 6-9% in interleaved pairs, so
/// the cap is left to the operator (`MALLOC_ARENA_MAX`, README).
fn map_large_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only tunes the allocator; it is called before any other thread runs.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 4 << 20);
    }
}

/// The pipeline and the notifier work after the 250: under load the receiver (whose
/// acknowledgements senders wait for) gets the CPU first, and they catch up in the gaps.
/// Measured: c=20 ingest went from about 1,200 to 1,800 msg/s on 2 cores. SCHED_IDLE
/// measured about 10% more still, but it also yields to every other process on the host,
/// and on a busy host mail then waits for tickets far longer; not worth it.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority on the calling thread's own id has no memory effects.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        if libc::setpriority(libc::PRIO_PROCESS, tid, 10) != 0 {
            tracing::debug!("could not lower a worker thread's priority");
        }
    }
}
