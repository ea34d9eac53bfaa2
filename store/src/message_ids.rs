//! The Message-ID index of each organization: what threads a reply and what makes a
//! retry a duplicate. One entry per id (its ticket, first original and first sender),
//! keys for other senders of the same id, and our own outbound ids.

use crate::codec::read_u64;
use crate::{Store, StoreError};

/// Message-IDs are compared without angle brackets and surrounding space.
pub fn normalize_message_id(mid: &str) -> String {
    mid.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim()
        .to_string()
}

/// The Message-ID index of an organization: see [`mid_entry`] for what it holds.
pub(crate) fn mid_key(org: &str, mid: &str) -> String {
    format!("mid/{org}/{mid}")
}

/// A received Message-ID's entry: its ticket, the inbound message that brought it first
/// and that message's sender, who owns the id for threading. One key, written once per
/// new message: keys named by Message-IDs land in random places of the tree, and each
/// costs the store's write lock a page of its own, so what belongs to one id stays in one.
pub(crate) fn mid_entry(ticket: u64, inbound: u64, from: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(16 + from.len());
    v.extend_from_slice(&ticket.to_be_bytes());
    v.extend_from_slice(&inbound.to_be_bytes());
    v.extend_from_slice(from.as_bytes());
    v
}

/// `entry` (a [`mid_entry`] or a ticket-only one) pointing at another ticket, its origin kept.
pub(crate) fn moved_mid_entry(entry: &[u8], ticket: u64) -> Vec<u8> {
    let mut v = ticket.to_be_bytes().to_vec();
    v.extend_from_slice(entry.get(8..).unwrap_or_default());
    v
}

/// The ticket of a [`mid_entry`], or of an entry holding the ticket alone (our own
/// outbound ids, and ids stored before entries held more).
pub(crate) fn mid_ticket(v: &[u8]) -> Option<u64> {
    v.get(..8).and_then(read_u64)
}

/// The inbound message and sender of a [`mid_entry`]; `None` for a ticket-only entry.
pub(crate) fn mid_origin(v: &[u8]) -> Option<(u64, &str)> {
    let inbound = v.get(8..16).and_then(read_u64)?;
    Some((inbound, std::str::from_utf8(v.get(16..)?).ok()?))
}

/// Where stores before [`mid_entry`] kept who first sent a Message-ID; read, never written.
pub(crate) fn midfrom_key(org: &str, mid: &str) -> String {
    format!("midfrom/{org}/{mid}")
}

/// The ticket another sender's mail with an id someone else owns went to: what makes that
/// sender's retry a duplicate (the owner's retry is recognised by the [`mid_entry`]).
pub(crate) fn midby_key(org: &str, mid: &str, from: &str) -> String {
    format!("{}{from}", midby_prefix(org, mid))
}

/// Where every sender's [`midby_key`] of one Message-ID begins.
pub(crate) fn midby_prefix(org: &str, mid: &str) -> String {
    format!("midby/{org}/{mid}\0")
}

/// Marks a Message-ID as one of ours (outbound): delivery reports attach only about those.
pub(crate) fn ourmid_key(org: &str, mid: &str) -> String {
    format!("ourmid/{org}/{mid}")
}

impl Store {
    /// The ticket a Message-ID (seen or generated) belongs to within an organization.
    pub fn ticket_for_message_id(&self, org: &str, mid: &str) -> Result<Option<u64>, StoreError> {
        Ok(self
            .state
            .get(mid_key(org, &normalize_message_id(mid)))?
            .and_then(|v| mid_ticket(&v)))
    }

    /// The ticket a reply from `sender` naming this Message-ID belongs to, and whether
    /// that is in doubt. A sender's own id leads to their own mail's ticket. Anyone else's
    /// reply goes to the first sender's ticket, in doubt when several senders used the id
    /// (someone who saw it early may have sent first): such a reply proves no part in it.
    pub fn ticket_for_reference(
        &self,
        org: &str,
        mid: &str,
        sender: &str,
    ) -> Result<Option<(u64, bool)>, StoreError> {
        let mid = normalize_message_id(mid);
        let Some(entry) = self.state.get(mid_key(org, &mid))? else {
            return Ok(None);
        };
        let Some(ticket) = mid_ticket(&entry) else {
            return Ok(None);
        };
        if mid_origin(&entry).is_some_and(|(_, owner)| owner == sender) {
            return Ok(Some((ticket, false)));
        }
        if let Some(own) = self
            .state
            .get(midby_key(org, &mid, sender))?
            .and_then(|v| mid_ticket(&v))
        {
            return Ok(Some((own, false)));
        }
        let contested = self
            .state
            .scan_prefix(midby_prefix(org, &mid))
            .next()
            .transpose()?
            .is_some();
        Ok(Some((ticket, contested)))
    }

    /// The inbound message that first brought a Message-ID into an organization.
    pub fn inbound_for_message_id(&self, org: &str, mid: &str) -> Result<Option<u64>, StoreError> {
        let mid = normalize_message_id(mid);
        if let Some((inbound, _)) = self
            .state
            .get(mid_key(org, &mid))?
            .as_deref()
            .and_then(mid_origin)
        {
            return Ok(Some(inbound));
        }
        // Stores before `mid_entry` kept it under a key of its own.
        Ok(self
            .state
            .get(format!("rawmid/{mid}"))?
            .and_then(|v| read_u64(&v)))
    }

    /// Whether a Message-ID is one Postdesk gave a mail it sent in this organization.
    pub fn is_our_message_id(&self, org: &str, mid: &str) -> Result<bool, StoreError> {
        Ok(self
            .state
            .contains_key(ourmid_key(org, &normalize_message_id(mid)))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scratch::scratch_store as store;
    use crate::{DeliveryCommit, EventKind, Outcome, TicketTarget, TicketType, Visibility};
    use time::OffsetDateTime;

    fn delivery(inbound: u64, from: &str) -> DeliveryCommit {
        DeliveryCommit {
            inbound,
            org: "acme".into(),
            message_id: Some("<m1@x>".into()),
            from: from.into(),
            subject: "s".into(),
            target: TicketTarget::New {
                ticket_type: TicketType::Question,
                summary: "s".into(),
                requester: from.into(),
                automatic: false,
            },
            kind: EventKind::Created,
            by_staff: false,
            text: "t".into(),
            attachments: vec![],
            automatic: false,
            participants: vec![from.into()],
            cc: vec![],
            rule: "new".into(),
            notes: vec![],
            visibility: Visibility::Public,
            changes: vec![],
            last_delivery: true,
            held: false,
            suspected_spoofing: false,
            imported: false,
            at: OffsetDateTime::now_utc(),
        }
    }

    fn outcome(s: &Store, inbound: u64, from: &str) -> Outcome {
        s.commit_delivery(&delivery(inbound, from))
            .expect("commit")
            .outcome
    }

    #[test]
    fn a_message_id_entry_keeps_its_ticket_first_original_and_owner() {
        let (s, _dir) = store("entry");
        assert!(matches!(
            outcome(&s, 1, "bob@c.test"),
            Outcome::Accepted { ticket: 1, .. }
        ));
        // The owner's retry is a duplicate; another sender's mail is its own, and its
        // retry a duplicate of that.
        assert_eq!(
            outcome(&s, 2, "bob@c.test"),
            Outcome::Duplicate { ticket: 1 }
        );
        assert!(matches!(
            outcome(&s, 3, "eve@d.test"),
            Outcome::Accepted { ticket: 2, .. }
        ));
        assert_eq!(
            outcome(&s, 4, "eve@d.test"),
            Outcome::Duplicate { ticket: 2 }
        );
        assert_eq!(s.ticket_for_message_id("acme", "m1@x").expect("t"), Some(1));
        // A reply naming it: each sender's own id leads to their own ticket; anyone
        // else's goes to the first sender's, in doubt.
        let reference = |from: &str| s.ticket_for_reference("acme", "<m1@x>", from).expect("r");
        assert_eq!(reference("bob@c.test"), Some((1, false)));
        assert_eq!(reference("eve@d.test"), Some((2, false)));
        assert_eq!(reference("carol@c.test"), Some((1, true)));
        assert_eq!(
            s.ticket_for_reference("acme", "other@x", "carol@c.test")
                .expect("r"),
            None
        );
        assert_eq!(
            s.inbound_for_message_id("acme", "<m1@x>").expect("i"),
            Some(1)
        );
        assert_eq!(s.inbound_for_message_id("beta", "m1@x").expect("i"), None);
        // Moving the entry to another ticket keeps who sent it first.
        let entry = s
            .state
            .get(mid_key("acme", "m1@x"))
            .expect("get")
            .expect("entry");
        let moved = moved_mid_entry(&entry, 7);
        assert_eq!(mid_ticket(&moved), Some(7));
        assert_eq!(mid_origin(&moved), Some((1, "bob@c.test")));
        assert_eq!(mid_ticket(&moved_mid_entry(&[], 7)), Some(7));
    }

    #[test]
    fn a_suspected_forgery_sent_first_does_not_make_the_real_mail_a_duplicate() {
        let (s, _dir) = store("forged");
        let forged = DeliveryCommit {
            suspected_spoofing: true,
            ..delivery(1, "bob@c.test")
        };
        assert!(matches!(
            s.commit_delivery(&forged).expect("forged").outcome,
            Outcome::Accepted { ticket: 1, .. }
        ));
        assert!(matches!(
            outcome(&s, 2, "bob@c.test"),
            Outcome::Accepted { ticket: 2, .. }
        ));
        assert_eq!(
            outcome(&s, 3, "bob@c.test"),
            Outcome::Duplicate { ticket: 2 }
        );
        assert_eq!(s.ticket_for_message_id("acme", "m1@x").expect("t"), Some(2));
        assert_eq!(
            s.ticket_for_reference("acme", "m1@x", "carol@c.test")
                .expect("r"),
            Some((2, false)),
            "one sender used it: no doubt"
        );
    }

    #[test]
    fn entries_written_before_they_held_the_owner_are_still_read() {
        let (s, _dir) = store("legacy");
        // As stores before `mid_entry` wrote them: the ticket alone, the owner and the first
        // original under keys of their own; and an outbound id of ours (the ticket alone).
        s.state
            .insert(mid_key("acme", "m1@x"), &5u64.to_be_bytes())
            .expect("w");
        s.state
            .insert(midfrom_key("acme", "m1@x"), b"bob@c.test")
            .expect("w");
        s.state
            .insert("rawmid/m1@x", &9u64.to_be_bytes())
            .expect("w");
        s.state
            .insert(mid_key("acme", "m2@x"), &6u64.to_be_bytes())
            .expect("w");
        assert_eq!(
            outcome(&s, 10, "bob@c.test"),
            Outcome::Duplicate { ticket: 5 }
        );
        assert!(matches!(
            outcome(&s, 11, "eve@d.test"),
            Outcome::Accepted { .. }
        ));
        assert_eq!(
            s.inbound_for_message_id("acme", "m1@x").expect("i"),
            Some(9)
        );
        let ours = DeliveryCommit {
            message_id: Some("m2@x".into()),
            ..delivery(12, "eve@d.test")
        };
        assert_eq!(
            s.commit_delivery(&ours).expect("c").outcome,
            Outcome::Duplicate { ticket: 6 }
        );
    }
}
