//! The spool writer: sessions hand it accepted messages; it stores them in batches with one
//! flush each (group commit) and answers every session once its batch is durable.

use crate::GatewayError;
use postdesk_store::{Envelope, Store};
use tokio::sync::{mpsc, oneshot};

/// Largest batch, in messages and in bytes, committed by one flush.
const MAX_BATCH: usize = 512;
const MAX_BATCH_BYTES: usize = 64 * 1024 * 1024;

/// Messages that are committed together: one from an SMTP session, a chunk from a
/// mailbox source (whose cursor must never pass an uncommitted message).
struct SpoolRequest {
    messages: Vec<(Envelope, Vec<u8>)>,
    reply: oneshot::Sender<Result<Vec<u64>, String>>,
}

impl SpoolRequest {
    fn bytes(&self) -> usize {
        self.messages.iter().map(|(_, raw)| raw.len()).sum()
    }
}

/// Sessions' side of the spool: `store` returns once the message is durable.
#[derive(Clone)]
pub struct SpoolHandle {
    tx: mpsc::Sender<SpoolRequest>,
}

impl SpoolHandle {
    /// Stores a message durably; the returned inbound id may be acknowledged with 250.
    pub async fn store(&self, envelope: Envelope, raw: Vec<u8>) -> Result<u64, GatewayError> {
        let ids = self.store_all(vec![(envelope, raw)]).await?;
        ids.first().copied().ok_or(GatewayError::SpoolClosed)
    }

    /// Stores messages in one commit: all of them are durable, or none is acknowledged.
    pub async fn store_all(
        &self,
        messages: Vec<(Envelope, Vec<u8>)>,
    ) -> Result<Vec<u64>, GatewayError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(SpoolRequest { messages, reply })
            .await
            .map_err(|_| GatewayError::SpoolClosed)?;
        match rx.await {
            Ok(Ok(ids)) => Ok(ids),
            Ok(Err(e)) => Err(GatewayError::Io(std::io::Error::other(e))),
            Err(_) => Err(GatewayError::SpoolClosed),
        }
    }
}

/// The single writer task.
pub struct SpoolWriter {
    rx: mpsc::Receiver<SpoolRequest>,
    store: Store,
    /// Told after every committed batch, so the pipeline wakes up.
    on_commit: std::sync::mpsc::Sender<()>,
}

impl SpoolWriter {
    pub fn new(store: Store, on_commit: std::sync::mpsc::Sender<()>) -> (SpoolWriter, SpoolHandle) {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        (
            SpoolWriter {
                rx,
                store,
                on_commit,
            },
            SpoolHandle { tx },
        )
    }

    /// Runs until every handle is dropped.
    pub async fn run(mut self) {
        while let Some(first) = self.rx.recv().await {
            let mut bytes = first.bytes();
            let mut messages = first.messages.len();
            let mut batch = vec![first];
            while messages < MAX_BATCH && bytes < MAX_BATCH_BYTES {
                match self.rx.try_recv() {
                    Ok(r) => {
                        bytes += r.bytes();
                        messages += r.messages.len();
                        batch.push(r);
                    }
                    Err(_) => break,
                }
            }
            let store = self.store.clone();
            let (batch, result) = tokio::task::spawn_blocking(move || {
                let items: Vec<(&Envelope, &[u8])> = batch
                    .iter()
                    .flat_map(|r| r.messages.iter())
                    .map(|(envelope, raw)| (envelope, raw.as_slice()))
                    .collect();
                let result = store.spool_batch(&items);
                (batch, result)
            })
            .await
            .unwrap_or_else(|e| {
                (
                    Vec::new(),
                    Err(postdesk_store::StoreError::Invalid(e.to_string())),
                )
            });
            match result {
                Ok(ids) => {
                    tracing::debug!(messages = ids.len(), "spool batch committed");
                    let mut ids = ids.into_iter();
                    for r in batch {
                        let mine = ids.by_ref().take(r.messages.len()).collect();
                        let _ = r.reply.send(Ok(mine));
                    }
                    let _ = self.on_commit.send(());
                }
                Err(e) => {
                    tracing::error!(error = %e, "spool batch failed; senders get a temporary error");
                    for r in batch {
                        let _ = r.reply.send(Err(e.to_string()));
                    }
                }
            }
        }
    }
}
