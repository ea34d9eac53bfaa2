//! Sign-in links by mail: issue the link, have the notifier render and sign the mail, and
//! queue it in the outbox. Portal links come from the portal's organization; staff links
//! and invitations from the first organization (the desk has no address of its own yet).

use crate::session::{issue_link, LINK_USES};
use crate::AppState;
use postdesk_notifier::SignInMail;
use postdesk_store::{Org, Principal, Store, StoreError};

fn queue(
    store: &Store,
    mail: &SignInMail<'_>,
    now: time::OffsetDateTime,
) -> Result<(), StoreError> {
    postdesk_notifier::queue_sign_in_mail(store, mail, now)
        .map_err(|e| StoreError::Invalid(e.to_string()))
}

/// Mails a portal sign-in link for `email` in `org`. Runs on a blocking thread.
pub fn mail_portal_link(
    state: &AppState,
    org: &Org,
    email: &str,
    hours: i64,
) -> Result<(), StoreError> {
    let now = state.clock.now();
    let principal = Principal::Portal {
        org: org.slug.clone(),
        email: email.to_string(),
    };
    let token = issue_link(&state.store, principal, now, hours)?;
    let link = format!("{}/portal/link/{token}", state.public_url);
    let place = format!("the {} support portal", org.name);
    let mail = SignInMail {
        org,
        recipient: email,
        place: &place,
        intro: "",
        link: &link,
        hours,
        uses: LINK_USES,
    };
    queue(&state.store, &mail, now)
}

/// Mails a staff sign-in link (or, with an `intro`, an invitation). Runs on a blocking
/// thread.
pub fn mail_staff_link(
    state: &AppState,
    email: &str,
    intro: &str,
    hours: i64,
) -> Result<(), StoreError> {
    let now = state.clock.now();
    let Some(org) = state.store.orgs()?.into_iter().min_by_key(|o| o.created_at) else {
        return Err(StoreError::Invalid(
            "no organization to send mail from".into(),
        ));
    };
    let principal = Principal::Staff {
        email: email.to_string(),
    };
    let token = issue_link(&state.store, principal, now, hours)?;
    let link = format!("{}/signin/link/{token}", state.public_url);
    let mail = SignInMail {
        org: &org,
        recipient: email,
        place: "the Postdesk staff desk",
        intro,
        link: &link,
        hours,
        uses: LINK_USES,
    };
    queue(&state.store, &mail, now)
}
