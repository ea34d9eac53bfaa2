//! Mail that no ticket event causes (sign-in links, invitations): the desk asks for it here
//! and the notifier renders, signs and queues it, so all outbound mail leaves through one
//! reader. A request lives until the notifier has put its mail in the outbox.

use crate::codec::{decode, encode, key_num, num_key};
use crate::outbox::{put_mail, OutboxItem};
use crate::tickets::bump;
use crate::{Store, StoreError};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

const PREFIX: &str = "signinreq/";

/// A sign-in link to mail: where it leads and what the mail says about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignInRequest {
    /// The organization whose address and DKIM key send it.
    pub org: String,
    pub recipient: String,
    /// "the Acme Support portal", "the Postdesk staff desk".
    pub place: String,
    /// A first line saying why the mail comes (an invitation), or empty.
    pub intro: String,
    /// The whole link, with its secret token (held here only until the mail is queued).
    pub link: String,
    pub hours: i64,
    pub uses: u32,
    pub at: OffsetDateTime,
}

impl Store {
    /// Asks for a sign-in mail. Durable when this returns.
    pub fn request_sign_in_mail(&self, request: &SignInRequest) -> Result<(), StoreError> {
        let value = encode(request)?;
        self.state
            .transaction(|tx| {
                let n = bump(tx, "counter/signinreq")?;
                tx.insert(num_key(PREFIX, n), value.clone())?;
                Ok(())
            })
            .map_err(StoreError::from)?;
        self.flush()
    }

    /// The oldest requests not yet queued, with their ids.
    pub fn sign_in_requests(&self, limit: usize) -> Result<Vec<(u64, SignInRequest)>, StoreError> {
        self.state
            .scan_prefix(PREFIX)
            .take(limit)
            .map(|kv| {
                let (k, v) = kv?;
                let id = key_num(&k).ok_or_else(|| StoreError::Corrupt("request key".into()))?;
                Ok((id, decode(&v)?))
            })
            .collect()
    }

    /// Ends request `id`: its mail (`None` when it cannot be made) goes into the outbox in
    /// the same transaction, so a mail is neither lost nor queued twice.
    pub fn fulfil_sign_in_request(
        &self,
        id: u64,
        mail: Option<&OutboxItem>,
    ) -> Result<(), StoreError> {
        let mail = mail
            .map(|item| Ok::<_, StoreError>((item, encode(item)?)))
            .transpose()?;
        self.state
            .transaction(|tx| {
                let key = num_key(PREFIX, id);
                if tx.get(&key)?.is_none() {
                    return Ok(());
                }
                tx.remove(key)?;
                if let Some((item, value)) = &mail {
                    put_mail(tx, item, value)?;
                }
                Ok::<_, crate::engine::ConflictableTransactionError<StoreError>>(())
            })
            .map_err(StoreError::from)?;
        self.flush()
    }
}
