//! The operator's commands (`postdesk org|staff|contact|person|token|dkim`, and the first
//! run of `serve`): whoever holds the data folder, with the server stopped. There is no
//! caller to authorize (holding the folder is the proof); the settings forms' rules apply
//! otherwise.

use crate::access::LINK_HOURS;
use crate::address::email_address;
use crate::audit::{AuditAction, AuditAction::SettingsChanged, AuditAction::StaffChanged, Done};
use crate::employees::{employee_name, staff_address};
use crate::organizations::{org_address, org_name, refused, whitelist_domain};
use crate::people::{erasure_done, person_address, write_person_zip};
use crate::{Desk, DeskError, DeskResult};
use postdesk_store::{
    check_slug, random_bytes, ApiTokenInfo, DkimKeyRecord, Org, Principal, Role, Staff, StoreError,
};

/// What the first run of `serve` on an empty data folder made, printed once.
pub struct FirstRun {
    pub owner: String,
    /// An API token for the owner (stored hashed; only this copy shows it).
    pub api_token: String,
    /// A sign-in link token for the owner (`LINK_HOURS`, at most `LINK_USES` uses).
    pub link_token: String,
}

/// The desk as the command line drives it: `desk.operator()`.
pub struct Operator<'a> {
    desk: &'a Desk,
}

/// Who and where the operator's commands are, in the audit log.
const COMMAND_LINE: &str = "command line";

impl Desk {
    pub fn operator(&self) -> Operator<'_> {
        Operator { desk: self }
    }
}

impl Operator<'_> {
    /// On an empty data folder (no organization yet): `owner` (or `admin@domain`) as the
    /// owner with an API token and a sign-in link, then organization `support` at
    /// `support@domain`. Everything is checked before anything is written, and the
    /// organization comes last: a first run that fails midway is a first run again on the
    /// next start. `None` when the folder holds data already.
    pub fn first_run(&self, domain: &str, owner: Option<&str>) -> DeskResult<Option<FirstRun>> {
        // Nodes that start together on an empty shared store: one sets it up.
        let store = &self.desk.store;
        store.exclusively("first-run", || self.first_run_alone(domain, owner))
    }

    fn first_run_alone(&self, domain: &str, owner: Option<&str>) -> DeskResult<Option<FirstRun>> {
        let store = &self.desk.store;
        if !store.is_empty()? {
            return Ok(None);
        }
        let given = owner.map(str::to_string);
        let owner = staff_address(&given.unwrap_or_else(|| format!("admin@{domain}")))?;
        org_address(&format!("support@{domain}"))?;
        if store.staff(&owner)?.is_none() {
            self.add_staff(&owner, "Owner", Role::Owner)?;
        }
        let (_, api_token) = self.create_api_token(&owner)?;
        let link_token = self.desk.sign_in_token(
            Principal::Staff {
                email: owner.clone(),
            },
            LINK_HOURS,
        )?;
        self.add_org("support", "Support", domain, &[], &[])?;
        Ok(Some(FirstRun {
            owner,
            api_token,
            link_token,
        }))
    }

    /// Adds organization `slug` at `slug@domain` and the `extra` addresses; `whitelist`
    /// (sender domains) empty lets everyone write.
    pub fn add_org(
        &self,
        slug: &str,
        name: &str,
        domain: &str,
        extra: &[String],
        whitelist: &[String],
    ) -> DeskResult<Org> {
        let org = self.create_org(slug, name, domain, extra, whitelist)?;
        self.record(SettingsChanged, Some(slug), "organization added")?;
        Ok(org)
    }

    /// [`Operator::add_org`] without the audit entry, for an edge that records who did it.
    pub(crate) fn create_org(
        &self,
        slug: &str,
        name: &str,
        domain: &str,
        extra: &[String],
        whitelist: &[String],
    ) -> DeskResult<Org> {
        check_slug(slug).map_err(DeskError::Invalid)?;
        let mut addresses = vec![org_address(&format!("{slug}@{domain}"))?];
        for a in extra {
            let a = org_address(a)?;
            if !addresses.contains(&a) {
                addresses.push(a);
            }
        }
        let mut domains: Vec<String> = Vec::new();
        for d in whitelist.iter().filter(|d| !d.trim().is_empty()) {
            let d = whitelist_domain(d)?;
            if !domains.contains(&d) {
                domains.push(d);
            }
        }
        let org = Org {
            whitelist: domains,
            ..Org::new(slug, &org_name(name)?, addresses, self.desk.now())
        };
        self.desk
            .store
            .add_org(&org)
            .map_err(|e| refused(e, "is taken"))?;
        Ok(org)
    }

    /// Records an operator's command in the audit log.
    fn record(&self, action: AuditAction, org: Option<&str>, detail: &str) -> DeskResult<()> {
        self.desk
            .record_now(COMMAND_LINE, COMMAND_LINE, Done::new(action, org, detail))
    }

    /// Writes everything held about `email` as a ZIP to a new file `out` (an existing
    /// file is never overwritten; a failed export leaves no file). Returns the address as
    /// kept.
    pub fn person_export(&self, email: &str, out: &std::path::Path) -> DeskResult<String> {
        let email = person_address(email)?;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(out)
            .map_err(|e| DeskError::Invalid(format!("cannot create {}: {e}", out.display())))?;
        let zip = zip::ZipWriter::new_stream(std::io::BufWriter::new(file));
        let now = self.desk.now();
        let written = write_person_zip(&self.desk.store, &email, now, zip).and_then(|w| {
            let file = w.into_inner().map_err(|e| e.into_error())?;
            Ok(file.sync_all()?)
        });
        if let Err(e) = written {
            let _ = std::fs::remove_file(out);
            return Err(e.into());
        }
        let done = self.desk.export_done(&email)?;
        self.desk.record_now(COMMAND_LINE, COMMAND_LINE, done)?;
        Ok(email)
    }

    /// Erases `email` (see `Store::erase_person`); the audit log names the pseudonym.
    pub fn person_erase(&self, email: &str) -> DeskResult<postdesk_store::Erased> {
        let erased = self.desk.erase_now(&person_address(email)?)?;
        self.desk
            .record_now(COMMAND_LINE, COMMAND_LINE, erasure_done(&erased))?;
        Ok(erased)
    }

    pub fn orgs(&self) -> DeskResult<Vec<Org>> {
        Ok(self.desk.store.orgs()?)
    }

    /// Adds a staff member with any role (the operator may add an owner, e.g. after the
    /// owner left without handing ownership on).
    pub fn add_staff(&self, email: &str, name: &str, role: Role) -> DeskResult<Staff> {
        let staff = Staff::new(
            &staff_address(email)?,
            &employee_name(name)?,
            role,
            self.desk.now(),
        );
        self.desk.store.add_staff(&staff).map_err(|e| match e {
            StoreError::Exists(_) => {
                DeskError::Conflict(format!("{} is a staff member already.", staff.email))
            }
            other => other.into(),
        })?;
        self.record(
            StaffChanged,
            None,
            &format!("added {} as {}", staff.email, staff.role),
        )?;
        Ok(staff)
    }

    pub fn staff_list(&self) -> DeskResult<Vec<Staff>> {
        Ok(self.desk.store.staff_list()?)
    }

    /// A sign-in link token for staff member `email`.
    pub fn staff_link(&self, email: &str) -> DeskResult<String> {
        let staff = self.staff(email)?;
        let detail = format!("sign-in link made for {}", staff.email);
        let token = self
            .desk
            .sign_in_token(Principal::Staff { email: staff.email }, LINK_HOURS)?;
        self.record(StaffChanged, None, &detail)?;
        Ok(token)
    }

    pub fn set_staff_alerts(&self, email: &str, on: bool) -> DeskResult<Staff> {
        let staff = self.staff(email)?;
        self.desk.store.set_staff_alerts(&staff.email, on)?;
        Ok(staff)
    }

    /// Turns an end user's automatic mail on or off; returns their address as kept.
    pub fn set_contact_alerts(&self, email: &str, on: bool) -> DeskResult<String> {
        let email = email_address(email).ok_or_else(|| {
            DeskError::Invalid(format!("{:?} is not an email address", email.trim()))
        })?;
        self.desk.store.set_contact_alerts(&email, on)?;
        Ok(email)
    }

    /// Makes an API token for staff member `email`: its id (as listed) and the token,
    /// which the store keeps only hashed.
    pub fn create_api_token(&self, email: &str) -> DeskResult<(String, String)> {
        let staff = self.staff(email)?;
        let token = new_api_token();
        let id = self.desk.store.add_api_token(&staff.email, &token)?;
        let detail = format!("API token {id} created for {}", staff.email);
        self.record(StaffChanged, None, &detail)?;
        Ok((id, token))
    }

    pub fn api_tokens(&self) -> DeskResult<Vec<ApiTokenInfo>> {
        Ok(self.desk.store.api_tokens()?)
    }

    /// Revokes the token whose id (or its first 6+ characters) is `id`.
    pub fn revoke_api_token(&self, id: &str) -> DeskResult<ApiTokenInfo> {
        let revoked = self.desk.store.revoke_api_token(id).map_err(|e| match e {
            StoreError::NotFound(_) => DeskError::NotFound(format!(
                "no API token has the id {id} (see `postdesk token list`)"
            )),
            StoreError::Invalid(why) => DeskError::Invalid(why),
            other => other.into(),
        })?;
        let detail = format!("API token {} of {} revoked", revoked.id, revoked.email);
        self.record(StaffChanged, None, &detail)?;
        Ok(revoked)
    }

    /// Organization `slug`, for a key to be made for it.
    pub fn org(&self, slug: &str) -> DeskResult<Org> {
        self.desk.store.org(slug)?.ok_or_else(|| {
            DeskError::NotFound(format!(
                "no organization {slug:?} (see `postdesk org list`)"
            ))
        })
    }

    /// Replaces the organization's DKIM key (made by the caller, which knows how).
    pub fn set_dkim_key(&self, key: &DkimKeyRecord) -> DeskResult<()> {
        self.org(&key.org)?;
        self.desk.store.put_dkim_key(key)?;
        self.record(SettingsChanged, Some(&key.org), "DKIM key replaced")
    }

    pub fn dkim_key(&self, slug: &str) -> DeskResult<DkimKeyRecord> {
        self.org(slug)?;
        self.desk.store.dkim_key(slug)?.ok_or_else(|| {
            DeskError::NotFound(format!(
                "organization {slug} has no DKIM key; make one with `postdesk dkim generate`"
            ))
        })
    }

    fn staff(&self, email: &str) -> DeskResult<Staff> {
        let email = email.trim().to_ascii_lowercase();
        self.desk
            .store
            .staff(&email)?
            .ok_or_else(|| DeskError::NotFound(format!("{email} is not a staff member")))
    }
}

/// An API token: `pd_` and 48 hex digits (24 random bytes).
fn new_api_token() -> String {
    let bytes: [u8; 24] = random_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("pd_{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::desk;

    #[test]
    fn the_first_run_makes_an_owner_once() {
        let (d, _dir) = desk("operator-first");
        let first = d
            .operator()
            .first_run("localhost", Some("Boss@Example.org"))
            .expect("first run")
            .expect("an empty folder");
        assert_eq!(first.owner, "boss@example.org");
        assert!(first.api_token.starts_with("pd_") && first.api_token.len() == 51);
        let owner = d
            .store
            .staff("boss@example.org")
            .expect("read")
            .expect("owner");
        assert_eq!(owner.role, Role::Owner);
        let support = d.operator().org("support").expect("support");
        assert_eq!(support.addresses, ["support@localhost"]);
        assert!(d
            .operator()
            .first_run("localhost", None)
            .expect("again")
            .is_none());
    }

    #[test]
    fn a_first_run_that_fails_leaves_a_first_run() {
        let (d, _dir) = desk("operator-first-fails");
        let op = d.operator();
        assert!(matches!(
            op.first_run("localhost", Some("not an address")),
            Err(DeskError::Invalid(_))
        ));
        assert!(d.store.is_empty().expect("read"));
        // The default owner on a single-label domain (the README's first start).
        let first = op.first_run("intranet", None).expect("run").expect("first");
        assert_eq!(first.owner, "admin@intranet");
        assert_eq!(
            op.org("support").expect("org").addresses,
            ["support@intranet"]
        );
    }

    #[test]
    fn the_operator_keeps_the_forms_rules() {
        let (d, _dir) = desk("operator-rules");
        let op = d.operator();
        let org = op
            .add_org(
                "acme-eu",
                " Acme EU ",
                "acme.test",
                &["Help@Acme.EU".into(), "help@acme.eu".into()],
                &["acme.eu".into(), " @Partner.Test".into(), "acme.eu".into()],
            )
            .expect("add");
        assert_eq!(org.name, "Acme EU");
        assert_eq!(org.addresses, ["acme-eu@acme.test", "help@acme.eu"]);
        assert_eq!(org.whitelist, ["acme.eu", "partner.test"]);
        for (slug, extra, domain) in [
            ("Acme", "", "acme.eu"),
            ("other", "not-an-address", "acme.eu"),
            ("other", "sales+x@acme.eu", "acme.eu"),
            ("other", "", "no domain"),
        ] {
            let extra: Vec<String> = [extra]
                .iter()
                .filter(|e| !e.is_empty())
                .map(|e| e.to_string())
                .collect();
            let wl = [domain.to_string()];
            assert!(
                matches!(
                    op.add_org(slug, "X", "acme.test", &extra, &wl),
                    Err(DeskError::Invalid(_))
                ),
                "{slug} {extra:?} {domain}"
            );
        }
        assert!(matches!(
            op.add_org("acme-eu", "Again", "acme.test", &[], &[]),
            Err(DeskError::Conflict(_))
        ));
        assert!(matches!(
            op.add_org("other", "Other", "acme.test", &["help@acme.eu".into()], &[]),
            Err(DeskError::Conflict(_))
        ));
        assert_eq!(op.orgs().expect("orgs").len(), 1);
        assert!(matches!(
            op.add_staff("not an address", "Kim", Role::Tech),
            Err(DeskError::Invalid(_))
        ));
        op.add_staff("Kim@Acme.test", "Kim", Role::Tech)
            .expect("kim");
        assert!(matches!(
            op.add_staff("kim@acme.test", "Kim", Role::Tech),
            Err(DeskError::Conflict(_))
        ));
        assert!(matches!(
            op.create_api_token("nobody@acme.test"),
            Err(DeskError::NotFound(_))
        ));
        let (id, token) = op.create_api_token("KIM@acme.test").expect("token");
        assert_eq!(op.api_tokens().expect("list")[0].id, id);
        assert!(matches!(
            op.revoke_api_token("zzzzzz"),
            Err(DeskError::Invalid(_))
        ));
        assert_eq!(
            op.revoke_api_token(&id).expect("revoke").email,
            "kim@acme.test"
        );
        assert!(d.store.staff_for_api_token(&token).expect("read").is_none());
        assert!(matches!(op.dkim_key("nope"), Err(DeskError::NotFound(_))));
        assert!(matches!(
            op.dkim_key("acme-eu"),
            Err(DeskError::NotFound(_))
        ));
    }
}
