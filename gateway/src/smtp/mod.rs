//! The SMTP and LMTP receiver: a listener, and a session split by verb.

mod data;
mod ehlo;
mod mail;
mod rcpt;
mod rset;
mod session;
mod starttls;
mod vrfy;

use crate::Gateway;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

pub use session::run as serve_connection;

/// SMTP (answers once per message) or LMTP (answers per recipient, greets with LHLO).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Smtp,
    Lmtp,
}

/// Accepts connections until the gateway's stop signal; each gets its own session task,
/// up to `max_sessions` at once. At the signal, a session waiting for a command answers
/// `421 4.3.2` and closes; one inside DATA finishes its message first.
pub async fn serve(listener: TcpListener, gateway: Arc<Gateway>, mode: Mode) {
    let mut prune = tokio::time::interval(Duration::from_secs(60));
    let mut stop = gateway.stop.clone();
    loop {
        tokio::select! {
            () = async {
                // The borrow guard is dropped here, inside: it is not Send.
                let _ = stop.wait_for(|s| *s).await;
            } => return,
            _ = prune.tick() => gateway.limits.prune(),
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Some(slot) = gateway.sessions.try_open() else {
                    // Over the session cap: say so without waiting on the client (a fresh
                    // socket's send buffer is empty) and close; a real sender retries.
                    tracing::debug!(%peer, "session cap reached; connection refused");
                    let _ = stream.try_write(
                        format!(
                            "421 4.7.0 {} Too many sessions at once; try again later\r\n",
                            gateway.config.domain
                        )
                        .as_bytes(),
                    );
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let gateway = gateway.clone();
                tokio::spawn(async move {
                    session::run(stream, peer, gateway, mode).await;
                    drop(slot);
                });
            }
        }
    }
}
