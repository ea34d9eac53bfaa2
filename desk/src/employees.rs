//! Employees (staff) in settings: the list for those who see settings; inviting, changing
//! a role or rate, handing on ownership and removing for owners and admins, under the
//! policy's rules (nobody removes the owner or themselves; ownership moves, it is not
//! shared).

use crate::address::email_address;
use crate::policy::{self, require_settings_edit, require_settings_view};
use crate::{Desk, DeskError, DeskResult};
use postdesk_store::{Role, Staff, StoreError};

/// A new employee as the settings form gives them.
pub struct Invitation {
    pub email: String,
    pub name: String,
    pub role: Role,
    pub hourly_rate_cents: u64,
}

/// A staff member's address ([`email_address`]).
pub fn staff_address(a: &str) -> DeskResult<String> {
    email_address(a)
        .ok_or_else(|| DeskError::Invalid(format!("{:?} is not an email address", a.trim())))
}

/// An employee's name: 1 to 100 characters, no control characters; trimmed.
pub fn employee_name(name: &str) -> DeskResult<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(DeskError::Invalid(
            "Give the employee's name (at most 100 characters).".into(),
        ));
    }
    Ok(name.to_string())
}

impl Desk {
    pub async fn staff_list(&self, staff: Staff) -> DeskResult<Vec<Staff>> {
        require_settings_view(&staff)?;
        self.run(|desk| Ok(desk.store.staff_list()?)).await
    }

    /// Adds the employee; returns them as stored (the address lowercased).
    pub async fn invite_employee(&self, staff: Staff, i: Invitation) -> DeskResult<Staff> {
        require_settings_edit(&staff)?;
        let email = staff_address(&i.email)
            .map_err(|_| DeskError::Invalid("Give the employee's email address.".into()))?;
        let name = employee_name(&i.name)?;
        if i.role == Role::Owner {
            return Err(DeskError::Invalid(
                "Choose admin, manager or tech (ownership is handed on, not given to newcomers)."
                    .into(),
            ));
        }
        self.run(move |desk| {
            let new = Staff {
                hourly_rate_cents: i.hourly_rate_cents,
                ..Staff::new(&email, &name, i.role, desk.now())
            };
            desk.store.add_staff(&new).map_err(|e| match e {
                StoreError::Exists(_) => {
                    DeskError::Conflict("That address already belongs to an employee.".into())
                }
                other => other.into(),
            })?;
            Ok(new)
        })
        .await
    }

    /// Sets an employee's role and hourly rate; `Role::Owner` hands ownership on (only the
    /// owner may). Returns them as saved.
    pub async fn change_employee(
        &self,
        staff: Staff,
        email: String,
        role: Role,
        hourly_rate_cents: u64,
    ) -> DeskResult<Staff> {
        require_settings_edit(&staff)?;
        self.run(move |desk| {
            let mut person = desk
                .store
                .staff(&email)?
                .ok_or_else(|| DeskError::Invalid("No such employee.".into()))?;
            if let Some(why) = policy::staff_change_refused(&staff, &person, Some(role), false) {
                return Err(DeskError::Invalid(why.into()));
            }
            let handing_on = role == Role::Owner && person.role != Role::Owner;
            person.hourly_rate_cents = hourly_rate_cents;
            if !handing_on {
                person.role = role;
            }
            desk.store.update_staff(&person)?;
            if handing_on {
                desk.store.transfer_ownership(&staff.email, &person.email)?;
            }
            Ok(person)
        })
        .await
    }

    pub async fn remove_employee(&self, staff: Staff, email: String) -> DeskResult<Staff> {
        require_settings_edit(&staff)?;
        self.run(move |desk| {
            let person = desk
                .store
                .staff(&email)?
                .ok_or_else(|| DeskError::Invalid("No such employee.".into()))?;
            if let Some(why) = policy::staff_change_refused(&staff, &person, None, true) {
                return Err(DeskError::Invalid(why.into()));
            }
            desk.store.remove_staff(&person.email)?;
            Ok(person)
        })
        .await
    }
}
