//! Who wrote a message, as far as the mail itself can say: the DKIM proof of a staff From,
//! and what DMARC says of an end user's From. Each is asked at most once per message.

use super::plan::Planning;
use crate::dmarc::Arrival;
use crate::SenderCheck;
use postdesk_store::Source;

impl Planning<'_> {
    /// The DKIM proof of the staff From, checked once per message.
    pub(super) fn dkim_proof(&self) -> &Result<String, String> {
        self.dkim_proof.get_or_init(|| match self.context.dmarc {
            Some(checker) => checker.staff_proof(self.raw, &self.head.from),
            None => Err("DKIM checks are off".into()),
        })
    }

    /// What DMARC says of an end user's From, checked once per message (again only if
    /// authentication is asked for the first time). `authenticate` asks whether the address
    /// is proven, beyond whether it is likely forged.
    pub(super) fn sender(&self, host: &str, authenticate: bool) -> SenderCheck {
        if let Some((check, authenticated_asked)) = self.sender.get() {
            if *authenticated_asked || !authenticate {
                return check.clone();
            }
        }
        let Some(checker) = self.context.dmarc else {
            return SenderCheck::default();
        };
        let smtp_client = (self.envelope.source == Source::Smtp)
            .then(|| self.envelope.peer.parse::<std::net::SocketAddr>().ok())
            .flatten()
            .map(|a| a.ip());
        let check = checker.sender_check(
            self.raw,
            &Arrival {
                smtp_client,
                helo: &self.envelope.helo,
                mail_from: &self.envelope.mail_from,
                host,
            },
            authenticate,
        );
        // A first answer is kept; one asked again with authentication replaces nothing
        // (OnceCell), but is returned.
        let _ = self.sender.set((check.clone(), authenticate));
        check
    }
}
