//! Decides which ticket a message belongs to. First match wins: a valid reply token in a
//! recipient's plus part, In-Reply-To, References, a `[#N]` tag from a participant, else new.

use crate::{check_reply_token, plus_part, subject_tag};

/// What threading needs to know from the store, behind a trait so this crate does no I/O.
pub trait TicketLookup {
    /// The ticket of a Message-ID seen or generated in this organization.
    fn ticket_for_message_id(&self, org: &str, message_id: &str) -> Option<u64>;
    /// The ticket a reply from `sender` naming this Message-ID belongs to, and whether
    /// other senders' mail used the id too (then the id alone does not say which
    /// conversation a reply is in). By default the id's ticket, used by one sender.
    fn ticket_for_reference(
        &self,
        org: &str,
        message_id: &str,
        sender: &str,
    ) -> Option<(u64, bool)> {
        let _ = sender;
        self.ticket_for_message_id(org, message_id)
            .map(|t| (t, false))
    }
    /// The organization of a ticket, if it exists.
    fn ticket_org(&self, ticket: u64) -> Option<String>;
    /// Whether `address` already takes part in the ticket.
    fn is_participant(&self, ticket: u64, address: &str) -> bool;
}

/// The facts of one delivery that threading looks at.
#[derive(Debug, Clone)]
pub struct ThreadingInput<'a> {
    pub org: &'a str,
    /// The From address, lowercase.
    pub sender: &'a str,
    /// The envelope recipients of this delivery (plus parts included).
    pub recipients: &'a [String],
    pub in_reply_to: &'a [String],
    pub references: &'a [String],
    pub subject: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchRule {
    /// A reply token issued to the sender; this also proves who the sender is.
    ReplyToken,
    InReplyTo,
    References,
    SubjectTag,
    New,
}

impl MatchRule {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchRule::ReplyToken => "reply_token",
            MatchRule::InReplyTo => "in_reply_to",
            MatchRule::References => "references",
            MatchRule::SubjectTag => "subject_tag",
            MatchRule::New => "new",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TicketMatch {
    pub ticket: Option<u64>,
    pub rule: MatchRule,
    /// Matched by a Message-ID more than one sender's mail used: the reply may belong to
    /// another conversation than the ticket's, so it proves no part in it.
    pub contested: bool,
}

pub fn match_ticket(
    input: &ThreadingInput<'_>,
    secret: &[u8],
    lookup: &impl TicketLookup,
) -> TicketMatch {
    let in_org = |t: u64| lookup.ticket_org(t).as_deref() == Some(input.org);
    for rcpt in input.recipients {
        if let Some(t) =
            plus_part(rcpt).and_then(|tok| check_reply_token(secret, tok, input.sender))
        {
            if in_org(t) {
                return TicketMatch {
                    ticket: Some(t),
                    rule: MatchRule::ReplyToken,
                    contested: false,
                };
            }
        }
    }
    for (ids, rule) in [
        (input.in_reply_to, MatchRule::InReplyTo),
        (input.references, MatchRule::References),
    ] {
        // The newest reference is the most specific: search from the end.
        for id in ids.iter().rev() {
            if let Some((t, contested)) = lookup.ticket_for_reference(input.org, id, input.sender) {
                return TicketMatch {
                    ticket: Some(t),
                    rule,
                    contested,
                };
            }
        }
    }
    if let Some(t) = subject_tag(input.subject) {
        if in_org(t) && lookup.is_participant(t, input.sender) {
            return TicketMatch {
                ticket: Some(t),
                rule: MatchRule::SubjectTag,
                contested: false,
            };
        }
    }
    TicketMatch {
        ticket: None,
        rule: MatchRule::New,
        contested: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::make_reply_token;
    use std::collections::HashMap;

    struct Fake {
        mids: HashMap<String, u64>,
        orgs: HashMap<u64, String>,
        people: Vec<(u64, String)>,
    }

    impl TicketLookup for Fake {
        fn ticket_for_message_id(&self, _org: &str, m: &str) -> Option<u64> {
            self.mids.get(m).copied()
        }
        fn ticket_org(&self, t: u64) -> Option<String> {
            self.orgs.get(&t).cloned()
        }
        fn is_participant(&self, t: u64, a: &str) -> bool {
            self.people.iter().any(|(n, p)| *n == t && p == a)
        }
    }

    fn fake() -> Fake {
        Fake {
            mids: HashMap::from([("a@x".to_string(), 1), ("b@x".to_string(), 2)]),
            orgs: HashMap::from([
                (1, "acme".into()),
                (2, "acme".into()),
                (3, "acme".into()),
                (9, "other".into()),
            ]),
            people: vec![(3, "bob@c.test".into()), (9, "bob@c.test".into())],
        }
    }

    fn input<'a>(
        rcpts: &'a [String],
        irt: &'a [String],
        refs: &'a [String],
        subject: &'a str,
    ) -> ThreadingInput<'a> {
        ThreadingInput {
            org: "acme",
            sender: "bob@c.test",
            recipients: rcpts,
            in_reply_to: irt,
            references: refs,
            subject,
        }
    }

    #[test]
    fn rules_in_order() {
        let k = b"k";
        let f = fake();
        let tok = format!("support+{}@acme.test", make_reply_token(k, 3, "bob@c.test"));
        let m = match_ticket(&input(&[tok], &["a@x".into()], &[], ""), k, &f);
        assert_eq!(
            m,
            TicketMatch {
                ticket: Some(3),
                rule: MatchRule::ReplyToken,
                contested: false,
            }
        );
        let m = match_ticket(&input(&[], &["a@x".into()], &["b@x".into()], ""), k, &f);
        assert_eq!(m.rule, MatchRule::InReplyTo);
        assert_eq!(m.ticket, Some(1));
        let m = match_ticket(
            &input(&[], &["zz".into()], &["a@x".into(), "b@x".into()], ""),
            k,
            &f,
        );
        assert_eq!(
            m,
            TicketMatch {
                ticket: Some(2),
                rule: MatchRule::References,
                contested: false,
            }
        );
        let m = match_ticket(&input(&[], &[], &[], "Re: [#3] x"), k, &f);
        assert_eq!(
            m,
            TicketMatch {
                ticket: Some(3),
                rule: MatchRule::SubjectTag,
                contested: false,
            }
        );
        // tag of a ticket where the sender does not take part, or of another org
        let m = match_ticket(&input(&[], &[], &[], "Re: [#1] x"), k, &f);
        assert_eq!(m.rule, MatchRule::New);
        let m = match_ticket(&input(&[], &[], &[], "Re: [#9] x"), k, &f);
        assert_eq!(m.rule, MatchRule::New);
        // token issued to someone else
        let other = format!("support+{}@acme.test", make_reply_token(k, 3, "eve@c.test"));
        let m = match_ticket(&input(&[other], &[], &[], ""), k, &f);
        assert_eq!(m.rule, MatchRule::New);
    }

    /// An id two senders used: the lookup's answer, and that it is contested, is passed on.
    struct Contested;

    impl TicketLookup for Contested {
        fn ticket_for_message_id(&self, _org: &str, _m: &str) -> Option<u64> {
            Some(1)
        }
        fn ticket_for_reference(&self, _org: &str, _m: &str, sender: &str) -> Option<(u64, bool)> {
            Some(if sender == "bob@c.test" {
                (2, true)
            } else {
                (1, true)
            })
        }
        fn ticket_org(&self, _t: u64) -> Option<String> {
            Some("acme".into())
        }
        fn is_participant(&self, _t: u64, _a: &str) -> bool {
            true
        }
    }

    #[test]
    fn a_contested_message_id_is_said_so() {
        let m = match_ticket(&input(&[], &["a@x".into()], &[], ""), b"k", &Contested);
        assert_eq!(
            m,
            TicketMatch {
                ticket: Some(2),
                rule: MatchRule::InReplyTo,
                contested: true,
            }
        );
    }
}
