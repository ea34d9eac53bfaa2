//! Who is signed in, and how: sign-in links (minted for the web and the CLI, mailed
//! through the notifier), browser sessions, API tokens, passwords and directory tokens.
//! The edges read cookies and headers; what they prove is decided here.

use crate::tokens::new_token;
use crate::{Desk, DeskError, DeskResult};
use postdesk_store::{
    BellItem, LinkRefusal, LoginLink, Org, Principal, SignInRequest, Staff, WebSession,
};

/// Sign-in links are valid this long, and open at most this many times (mail scanners
/// may open a link before its reader does). Invitations last longer.
pub const LINK_HOURS: i64 = 12;
pub const INVITATION_HOURS: i64 = 72;
pub const LINK_USES: u32 = 5;
/// How long a browser stays signed in without signing in again.
pub const SESSION_DAYS: i64 = 14;

/// A signed-in staff member as every desk page needs them: the newest bell entries and
/// how many are unread.
pub struct StaffVisit {
    pub staff: Staff,
    /// The session's form token.
    pub csrf: String,
    pub bell: Vec<BellItem>,
    pub unread: usize,
}

impl Desk {
    /// Mints a sign-in link for `principal`, valid `hours`, and returns its secret token;
    /// the store keeps only its hash. For the CLI, which prints it, and for mailed links.
    pub fn sign_in_token(&self, principal: Principal, hours: i64) -> DeskResult<String> {
        let token = new_token();
        self.store.add_login_link(
            &token,
            &LoginLink {
                principal,
                expires_at: self.now() + time::Duration::hours(hours),
                uses_left: LINK_USES,
            },
        )?;
        Ok(token)
    }

    /// Mails `email` a sign-in link to `org`'s portal (under `base_url`, the web UI's).
    pub async fn mail_portal_link(
        &self,
        org: Org,
        email: String,
        base_url: String,
    ) -> DeskResult<()> {
        self.run(move |desk| {
            let principal = Principal::Portal {
                org: org.slug.clone(),
                email: email.clone(),
            };
            let token = desk.sign_in_token(principal, LINK_HOURS)?;
            desk.request_link_mail(SignInRequest {
                place: format!("the {} support portal", org.name),
                org: org.slug,
                recipient: email,
                intro: String::new(),
                link: format!("{base_url}/portal/link/{token}"),
                hours: LINK_HOURS,
                uses: LINK_USES,
                at: desk.now(),
            })
        })
        .await
    }

    /// Mails a staff member a sign-in link valid `hours` (with an `intro`, an invitation);
    /// an address that is not staff gets nothing, and the caller cannot tell.
    pub async fn mail_staff_link(
        &self,
        email: String,
        intro: String,
        hours: i64,
        base_url: String,
    ) -> DeskResult<()> {
        self.run(move |desk| {
            if desk.store.staff(&email)?.is_none() {
                return Ok(());
            }
            // The desk has no address of its own: staff mail comes from the first
            // organization's.
            let Some(org) = desk.store.orgs()?.into_iter().min_by_key(|o| o.created_at) else {
                return Err(DeskError::Invalid(
                    "no organization to send mail from".into(),
                ));
            };
            let token = desk.sign_in_token(
                Principal::Staff {
                    email: email.clone(),
                },
                hours,
            )?;
            desk.request_link_mail(SignInRequest {
                org: org.slug,
                recipient: email,
                place: "the Postdesk staff desk".into(),
                intro,
                link: format!("{base_url}/signin/link/{token}"),
                hours,
                uses: LINK_USES,
                at: desk.now(),
            })
        })
        .await
    }

    fn request_link_mail(&self, request: SignInRequest) -> DeskResult<()> {
        Ok(self.store.request_sign_in_mail(&request)?)
    }

    /// Opens a sign-in link once: whom it signs in, or why it does not.
    pub async fn use_sign_in_link(
        &self,
        token: String,
    ) -> DeskResult<Result<Principal, LinkRefusal>> {
        self.run(move |desk| {
            let used = desk.store.use_login_link(&token, desk.now())?;
            // A link into a portal closed since it was sent signs no one in.
            if let Ok(Principal::Portal { org, .. }) = &used {
                desk.open_portal(org)?;
            }
            Ok(used)
        })
        .await
    }

    /// Starts a browser session for `principal`; returns its id (the cookie's value).
    pub async fn start_session(&self, principal: Principal) -> DeskResult<String> {
        self.run(move |desk| {
            let id = new_token();
            desk.store.add_session(
                &id,
                &WebSession {
                    principal,
                    csrf: new_token(),
                    expires_at: desk.now() + time::Duration::days(SESSION_DAYS),
                },
            )?;
            Ok(id)
        })
        .await
    }

    /// The live session with this id, if there is one.
    pub async fn session(&self, id: String) -> DeskResult<Option<WebSession>> {
        self.run(move |desk| Ok(desk.store.session(&id, desk.now())?))
            .await
    }

    pub async fn end_session(&self, id: String) -> DeskResult<()> {
        self.run(move |desk| Ok(desk.store.end_session(&id)?)).await
    }

    /// Signs `principal` out everywhere: every session ends, and links still waiting in a
    /// mailbox (which would open a new one) are revoked.
    pub async fn end_all_sessions(&self, principal: Principal) -> DeskResult<()> {
        self.run(move |desk| {
            desk.store.end_all_sessions(&principal)?;
            desk.store.revoke_login_links(&principal)?;
            Ok(())
        })
        .await
    }

    /// The staff member a browser session (`id`) is signed in as, with their bell and the
    /// session's form token, in one trip to the store; `None` for no live staff session.
    /// Notes their activity for "online now", at most once a minute per person.
    pub async fn staff_visit(&self, id: String, bell: usize) -> DeskResult<Option<StaffVisit>> {
        self.run(move |desk| {
            let Some(session) = desk.store.session(&id, desk.now())? else {
                return Ok(None);
            };
            let Principal::Staff { email } = session.principal else {
                return Ok(None);
            };
            let Some(staff) = desk.store.staff(&email)? else {
                return Ok(None);
            };
            if desk.first_seen_this_minute(&email) {
                desk.store.touch_staff(&email, desk.now())?;
            }
            let (bell, unread) = desk.store.bell(&email, bell)?;
            Ok(Some(StaffVisit {
                staff,
                csrf: session.csrf,
                bell,
                unread,
            }))
        })
        .await
    }

    /// Whether `email`'s activity is due to be written: the first visit, or the first
    /// after a minute (the store is written at most once a minute per person).
    fn first_seen_this_minute(&self, email: &str) -> bool {
        let now = self.now();
        let Ok(mut seen) = self.last_seen.lock() else {
            return true;
        };
        let due = seen
            .get(email)
            .is_none_or(|t| now - *t >= time::Duration::minutes(1));
        if due {
            seen.insert(email.to_string(), now);
        }
        due
    }

    /// The staff member an API token belongs to.
    pub async fn api_caller(&self, token: String) -> DeskResult<Option<Staff>> {
        self.run(move |desk| Ok(desk.store.staff_for_api_token(&token)?))
            .await
    }

    /// A staff member and their password hash, for a password sign-in (the edge checks
    /// the password, a few at a time).
    pub async fn password_of(&self, email: String) -> DeskResult<(Option<Staff>, Option<String>)> {
        self.run(move |desk| {
            Ok(match desk.store.staff(&email)? {
                Some(s) => {
                    let hash = desk.store.password_hash(&s.email)?;
                    (Some(s), hash)
                }
                None => (None, None),
            })
        })
        .await
    }

    /// Sets one's own password (its hash, made by the edge).
    pub async fn set_own_password(&self, staff: Staff, hash: String) -> DeskResult<()> {
        self.run(move |desk| Ok(desk.store.set_password_hash(&staff.email, &hash)?))
            .await
    }

    /// Turns one's own mail alerts on or off (the bell keeps every entry either way).
    pub async fn set_own_alerts(&self, staff: Staff, on: bool) -> DeskResult<()> {
        self.run(move |desk| Ok(desk.store.set_staff_alerts(&staff.email, on)?))
            .await
    }

    /// The secret `slug`'s sign-in service signs its directory tokens with, if it has one.
    pub async fn directory_secret(&self, slug: String) -> DeskResult<Option<Vec<u8>>> {
        self.run(move |desk| Ok(desk.store.directory_secret(&slug)?))
            .await
    }

    /// Uses a directory token's id once: true the first time (see
    /// `Store::use_directory_token`); `expires` and the check are in unix seconds.
    pub async fn use_directory_token(
        &self,
        slug: String,
        jti: String,
        expires: i64,
    ) -> DeskResult<bool> {
        self.run(move |desk| {
            let now = desk.now().unix_timestamp();
            Ok(desk.store.use_directory_token(&slug, &jti, expires, now)?)
        })
        .await
    }
}
