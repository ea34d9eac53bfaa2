//! What staff download from a ticket they may see: the original message behind an event,
//! and an attachment the ticket carries (a hash alone opens nothing).

use crate::error::{DeskError, DeskResult};
use crate::service::Desk;
use postdesk_store::Staff;

/// An attachment's bytes and the name it was sent with.
pub struct Download {
    pub name: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

impl Desk {
    /// The message event `seq` of ticket `number` came from, byte for byte.
    pub async fn original(&self, staff: Staff, number: u64, seq: u64) -> DeskResult<Vec<u8>> {
        self.run(move |desk| {
            desk.visible_ticket(&staff, number)?;
            let inbound = desk
                .store
                .events_for(number)?
                .into_iter()
                .find(|e| e.seq == seq)
                .and_then(|e| e.inbound)
                .ok_or_else(|| DeskError::NotFound("this event has no original message".into()))?;
            desk.store
                .raw_message(inbound)?
                .ok_or_else(|| DeskError::NotFound("the original message is gone".into()))
        })
        .await
    }

    /// The attachment with hash `sha256`, if ticket `number` carries it.
    pub async fn attachment(
        &self,
        staff: Staff,
        number: u64,
        sha256: String,
    ) -> DeskResult<Download> {
        self.run(move |desk| {
            desk.visible_ticket(&staff, number)?;
            let found = desk
                .store
                .events_for(number)?
                .into_iter()
                .flat_map(|e| e.attachments)
                .find(|a| a.sha256 == sha256)
                .ok_or_else(|| DeskError::NotFound("no such attachment on this ticket".into()))?;
            let bytes = desk
                .store
                .blob(&sha256)?
                .ok_or_else(|| DeskError::NotFound("the attachment's contents are gone".into()))?;
            Ok(Download {
                name: found.name,
                content_type: found.content_type,
                bytes,
            })
        })
        .await
    }
}
