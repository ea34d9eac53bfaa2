//! Organizations in settings: the list (with their DKIM keys) and one organization's
//! settings for those who see settings; adding one, saving its settings, replacing its
//! directory-token secret or its DKIM key for owners and admins.

use crate::address::{email_address, host_name};
use crate::policy::{require_org_deactivation, require_settings_edit, require_settings_view};
use crate::{Desk, DeskError, DeskResult};
use postdesk_store::{DkimKeyRecord, Org, Staff, StoreError};

/// Store refusals of a settings change, as the form shows them.
pub(crate) fn refused(e: StoreError, taken: &str) -> DeskError {
    match e {
        StoreError::Exists(what) => DeskError::Conflict(format!("The {what} {taken}.")),
        StoreError::Invalid(why) => DeskError::Invalid(why),
        other => other.into(),
    }
}

/// An organization's name: 1 to 100 characters, no control characters; trimmed.
pub fn org_name(name: &str) -> DeskResult<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(DeskError::Invalid(
            "The name must be 1 to 100 characters.".into(),
        ));
    }
    Ok(name.to_string())
}

/// An address an organization receives mail at, lowercase: a mailbox address
/// ([`email_address`]) without a `+` part (reply addresses use it).
pub fn org_address(a: &str) -> DeskResult<String> {
    let a = email_address(a)
        .ok_or_else(|| DeskError::Invalid(format!("{:?} is not an email address.", a.trim())))?;
    if a.split_once('@')
        .is_some_and(|(local, _)| local.contains('+'))
    {
        return Err(DeskError::Invalid(format!(
            "{a:?} is not an address mail can be sent to (no + part)."
        )));
    }
    Ok(a)
}

/// A sender domain for the whitelist, lowercase, without a leading `@`: a host name with a
/// dot ([`host_name`]); one label alone (`com`) would let a whole top-level domain in, and
/// a `*` matches nothing.
pub fn whitelist_domain(d: &str) -> DeskResult<String> {
    let d = d.trim().trim_start_matches('@').to_ascii_lowercase();
    if !d.contains('.') || !host_name(&d) {
        return Err(DeskError::Invalid(format!(
            "{:?} is not a domain (like example.org; a listed domain lets its subdomains in too).",
            d.chars().take(100).collect::<String>()
        )));
    }
    Ok(d)
}

/// A DKIM selector (the DNS name the key is published under, before `._domainkey`):
/// host-name labels ([`host_name`]), at most 63 characters, lowercase.
pub fn dkim_selector(s: &str) -> DeskResult<String> {
    let s = s.trim().to_ascii_lowercase();
    if s.len() > 63 || !host_name(&s) {
        return Err(DeskError::Invalid(
            "The selector is letters, digits and dashes, in labels separated by dots (at most 63 characters)."
                .into(),
        ));
    }
    Ok(s)
}

impl Desk {
    pub async fn orgs(&self, staff: Staff) -> DeskResult<Vec<Org>> {
        require_settings_view(&staff)?;
        self.run(|desk| Ok(desk.store.orgs()?)).await
    }

    /// Organization `slug`, and whether it has a directory-token secret.
    pub async fn org_settings(&self, staff: Staff, slug: String) -> DeskResult<(Org, bool)> {
        require_settings_view(&staff)?;
        self.run(move |desk| {
            let org = desk
                .store
                .org(&slug)?
                .ok_or_else(|| DeskError::NotFound("No such organization.".into()))?;
            let has_secret = desk.store.directory_secret(&slug)?.is_some();
            Ok((org, has_secret))
        })
        .await
    }

    /// Adds organization `slug` named `name`, receiving mail at `slug@domain`.
    pub async fn add_org(
        &self,
        staff: Staff,
        slug: String,
        name: String,
        domain: String,
    ) -> DeskResult<Org> {
        require_settings_edit(&staff)?;
        self.run(move |desk| {
            desk.operator()
                .create_org(slug.trim(), &name, &domain, &[], &[])
        })
        .await
    }

    /// Saves an organization's changed settings (checked by the store: addresses another
    /// organization has are refused).
    pub async fn save_org(&self, staff: Staff, org: Org) -> DeskResult<()> {
        require_settings_edit(&staff)?;
        self.run(move |desk| {
            desk.store
                .update_org(&org)
                .map_err(|e| refused(e, "belongs to another organization"))
        })
        .await
    }

    /// Deactivates organization `slug` (`deactivate`) or reactivates it: the owner's
    /// alone. Deactivated, it takes no mail and its portal is closed; its data is deleted
    /// [`Org::DELETION_GRACE_DAYS`] later unless reactivated. Returns it as it is now.
    pub async fn set_org_deactivated(
        &self,
        staff: Staff,
        slug: String,
        deactivate: bool,
    ) -> DeskResult<Org> {
        require_org_deactivation(&staff)?;
        self.run(move |desk| {
            let at = deactivate.then(|| desk.now());
            let org = desk
                .store
                .set_org_deactivated(&slug, at)
                .map_err(|e| match e {
                    StoreError::NotFound(_) => DeskError::NotFound("No such organization.".into()),
                    other => other.into(),
                })?;
            Ok(org)
        })
        .await
    }

    /// Replaces organization `slug`'s directory-token secret; returns the new one, to be
    /// shown once.
    pub async fn new_directory_secret(&self, staff: Staff, slug: String) -> DeskResult<String> {
        require_settings_edit(&staff)?;
        self.run(move |desk| {
            desk.store
                .org(&slug)?
                .ok_or_else(|| DeskError::NotFound("No such organization.".into()))?;
            let secret = crate::tokens::new_token();
            desk.store.set_directory_secret(&slug, secret.as_bytes())?;
            Ok(secret)
        })
        .await
    }

    /// Every organization with its DKIM key, if it has one.
    pub async fn orgs_with_keys(
        &self,
        staff: Staff,
    ) -> DeskResult<Vec<(Org, Option<DkimKeyRecord>)>> {
        require_settings_view(&staff)?;
        self.run(|desk| {
            desk.store
                .orgs()?
                .into_iter()
                .map(|o| {
                    let key = desk.store.dkim_key(&o.slug)?;
                    Ok((o, key))
                })
                .collect()
        })
        .await
    }

    /// Replaces the organization's DKIM key (made by the caller, which knows how).
    pub async fn set_dkim_key(&self, staff: Staff, key: DkimKeyRecord) -> DeskResult<()> {
        require_settings_edit(&staff)?;
        self.run(move |desk| {
            desk.store
                .org(&key.org)?
                .ok_or_else(|| DeskError::NotFound("No such organization.".into()))?;
            Ok(desk.store.put_dkim_key(&key)?)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn organization_addresses_and_whitelist_domains() {
        assert_eq!(
            org_address(" Help@Acme.EU ").ok(),
            Some("help@acme.eu".into())
        );
        assert_eq!(
            org_address("support@LOCALHOST").ok(),
            Some("support@localhost".into())
        );
        for bad in [
            "not-an-address",
            "a+b@acme.eu",
            "a b@acme.eu",
            "@localhost",
            "a@b@localhost",
        ] {
            assert!(org_address(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            whitelist_domain(" @Partner.Test").ok(),
            Some("partner.test".into())
        );
        for bad in [
            "", "partner", "com", "*.com", "a..com", "a@b.test", "x.test/", ".x.test", "a b.test",
        ] {
            assert!(whitelist_domain(bad).is_err(), "{bad:?}");
        }
        assert!(whitelist_domain(&format!("{}.test", "a".repeat(100_000))).is_err());
        assert!(org_name(" ").is_err() && org_name(&"n".repeat(101)).is_err());
        assert_eq!(dkim_selector(" S1.Mail ").ok(), Some("s1.mail".into()));
        for bad in ["", "..", "sel.", ".sel", "a_b", "x y"] {
            assert!(dkim_selector(bad).is_err(), "{bad:?}");
        }
        assert_eq!(org_name(" Acme ").ok(), Some("Acme".into()));
    }
}
