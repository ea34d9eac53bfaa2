//! The admin commands (`postdesk org|staff|contact|token|dkim`): their arguments, and
//! each one's call to the desk's operator commands with what it prints. They run with the
//! server stopped: the data folder's lock says so.

use crate::config::Config;
use crate::{lock, open_store};
use anyhow::Result;
use clap::Subcommand;
use postdesk_desk::model::{Role, SystemClock};
use postdesk_desk::{Desk, DeskError};
use std::path::Path;
use std::sync::Arc;

#[derive(Subcommand)]
pub(crate) enum DkimCommand {
    /// Make a signing key for an organization (replacing its old one) and print the DNS
    /// record to publish.
    Generate {
        #[arg(long)]
        org: String,
        #[arg(long)]
        selector: String,
        /// rsa (2048 bits) is verified by every large mailbox provider; ed25519 is smaller
        /// but not yet checked everywhere.
        #[arg(long, default_value = "rsa")]
        algorithm: postdesk_notifier::Algorithm,
    },
    /// Print the DNS record of an organization's key again.
    Show {
        #[arg(long)]
        org: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum OrgCommand {
    /// Add an organization; its addresses are SLUG@DOMAIN plus any --address.
    Add {
        slug: String,
        #[arg(long)]
        name: String,
        #[arg(long = "address")]
        addresses: Vec<String>,
        /// Sender domains allowed to write (comma-separated); none = everyone.
        #[arg(long, value_delimiter = ',')]
        whitelist: Vec<String>,
    },
    /// List organizations.
    List,
}

#[derive(Subcommand)]
pub(crate) enum StaffCommand {
    /// Add a staff member.
    Add {
        email: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        role: Role,
    },
    /// List staff members.
    List,
    /// Turn a staff member's mail alerts on or off.
    Alerts { email: String, setting: OnOff },
    /// Print a sign-in link for the web UI (valid 12 hours, at most 5 uses).
    Link { email: String },
}

#[derive(Subcommand)]
pub(crate) enum ContactCommand {
    /// Turn an end user's automatic mail (acknowledgements) on or off; answers from staff
    /// still reach them.
    Alerts { email: String, setting: OnOff },
}

#[derive(Subcommand)]
pub(crate) enum PersonCommand {
    /// Write everything held about an address (records, tickets, what they wrote, their
    /// original messages and attachments) as a ZIP with a JSON manifest.
    Export {
        email: String,
        /// The new file to write (never overwritten).
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Erase an address: a pseudonym in its place everywhere, its words "[erased]", its
    /// original messages and the files only it sent deleted; its opt-out and blocks kept
    /// as hashes. Run `postdesk compact` afterwards to rewrite the database without the
    /// old versions of its records.
    Erase {
        email: String,
        /// Confirms the erasure (it cannot be undone).
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum OnOff {
    On,
    Off,
}

#[derive(Subcommand)]
pub(crate) enum TokenCommand {
    /// Create an API token for a staff member and print it (it is stored hashed).
    Create { email: String },
    /// List API tokens: id, staff member, creation date (never the tokens themselves).
    List,
    /// Revoke the API token with this id (as `token list` shows it).
    Revoke { id: String },
}

/// `postdesk compact`: rewrites the database (server stopped) so that old versions of
/// records (an erased person's) are gone.
pub(crate) fn compact(data: &Path, config: &Config) -> Result<()> {
    let _lock = lock::acquire(data, "compaction")?;
    let c = if config.database_url.is_empty() {
        postdesk_desk::model::compact(data)
    } else {
        open_store(data, config)?.compact_shared()
    }
    .map_err(|e| anyhow::anyhow!("compaction: {e}"))?;
    println!(
        "compacted {} records: {} -> {} bytes",
        c.records, c.bytes_before, c.bytes_after
    );
    Ok(())
}

/// `postdesk migrate`: readies the PostgreSQL database's schema.
pub(crate) fn migrate(config: &Config) -> Result<()> {
    if config.database_url.is_empty() {
        anyhow::bail!("no database_url is set: the store is sled in the data folder, which needs no migration");
    }
    let applied = postdesk_desk::model::migrate_postgres(&config.database_url)
        .map_err(|e| anyhow::anyhow!("migration: {e}"))?;
    match (applied.first(), applied.last()) {
        (Some(first), Some(last)) => println!("applied schema versions {first} to {last}"),
        _ => println!(
            "the schema is current (version {})",
            postdesk_desk::model::POSTGRES_SCHEMA_VERSION
        ),
    }
    Ok(())
}

/// `postdesk migrate-store --to URL`: moves the data folder's sled store into PostgreSQL.
pub(crate) fn migrate_store(data: &Path, config: &Config, to: &str) -> Result<()> {
    if !config.database_url.is_empty() {
        anyhow::bail!("database_url is set: the store is in PostgreSQL already");
    }
    crate::config::check_database_url(to)?;
    if to.is_empty() {
        anyhow::bail!("--to needs a postgres:// URL");
    }
    let _lock = lock::acquire(data, "the move")?;
    let store = open_store(data, config)?;
    let started = std::time::Instant::now();
    let mut last = std::time::Instant::now();
    let moved = store
        .move_to_postgres(to, |tree, n| {
            if last.elapsed() >= std::time::Duration::from_secs(5) {
                last = std::time::Instant::now();
                eprintln!("{tree}: {n} records copied");
            }
        })
        .map_err(|e| anyhow::anyhow!("the move stopped: {e}"))?;
    let [state, raw, blobs] = moved.entries;
    println!(
        "moved{} in {:.1} s: {state} records, {raw} original messages, {blobs} files; counted and hashed on both sides",
        if moved.resumed { " (resumed)" } else { "" },
        started.elapsed().as_secs_f64()
    );
    println!(
        "Now set in the configuration (or POSTDESK_DATABASE_URL), with the password if the \
         database needs one (or give it in PGPASSWORD):\n  database_url = \"{}\"\n\
         and start postdesk serve. The data folder keeps this node's own files (its \
         node-id, the outbox folder); its db/ and files/ are no longer read: keep them \
         until you have checked the moved store, then remove them.",
        postdesk_desk::model::describe_database_url(to)
    );
    Ok(())
}

/// Runs `command` on a desk over the configured store, holding the data folder's lock.
pub(crate) fn with_desk(
    data: &Path,
    config: &Config,
    command: impl FnOnce(&Desk) -> Result<()>,
) -> Result<()> {
    let _lock = lock::acquire(data, "this command")?;
    let desk = Desk::new(open_store(data, config)?, Arc::new(SystemClock));
    command(&desk)
}

/// A refusal as the operator reads it: the desk's message, or for a storage failure its
/// cause (the operator is the one who can fix it).
pub(crate) fn refused(e: DeskError) -> anyhow::Error {
    match e.cause() {
        Some(cause) => anyhow::anyhow!("internal error: {cause}"),
        None => anyhow::anyhow!(e),
    }
}

fn on_off(setting: OnOff) -> (bool, &'static str) {
    match setting {
        OnOff::On => (true, "on"),
        OnOff::Off => (false, "off"),
    }
}

pub(crate) fn org(desk: &Desk, config: &Config, command: OrgCommand) -> Result<()> {
    let op = desk.operator();
    match command {
        OrgCommand::Add {
            slug,
            name,
            addresses,
            whitelist,
        } => {
            let org = op
                .add_org(&slug, &name, &config.domain, &addresses, &whitelist)
                .map_err(refused)?;
            println!(
                "added organization {} ({})",
                org.slug,
                org.addresses.join(", ")
            );
        }
        OrgCommand::List => {
            for o in op.orgs().map_err(refused)? {
                let wl = if o.whitelist.is_empty() {
                    "everyone".to_string()
                } else {
                    o.whitelist.join(",")
                };
                println!(
                    "{}\t{}\t{}\twhitelist: {wl}",
                    o.slug,
                    o.name,
                    o.addresses.join(",")
                );
            }
        }
    }
    Ok(())
}

pub(crate) fn staff(desk: &Desk, config: &Config, command: StaffCommand) -> Result<()> {
    let op = desk.operator();
    match command {
        StaffCommand::Add { email, name, role } => {
            let s = op.add_staff(&email, &name, role).map_err(refused)?;
            println!("added {} ({}) as {}", s.name, s.email, s.role);
        }
        StaffCommand::List => {
            for s in op.staff_list().map_err(refused)? {
                let alerts = if s.alerts { "alerts on" } else { "alerts off" };
                println!("{}\t{}\t{}\t{alerts}", s.email, s.name, s.role);
            }
        }
        StaffCommand::Link { email } => {
            let token = op.staff_link(&email).map_err(refused)?;
            println!("{}/signin/link/{token}", config.public_url());
        }
        StaffCommand::Alerts { email, setting } => {
            let (on, word) = on_off(setting);
            let s = op.set_staff_alerts(&email, on).map_err(refused)?;
            println!("alerts for {} are {word}", s.email);
        }
    }
    Ok(())
}

pub(crate) fn contact(desk: &Desk, command: ContactCommand) -> Result<()> {
    match command {
        ContactCommand::Alerts { email, setting } => {
            let (on, word) = on_off(setting);
            let email = desk
                .operator()
                .set_contact_alerts(&email, on)
                .map_err(refused)?;
            println!("automatic mail to {email} is {word}");
        }
    }
    Ok(())
}

pub(crate) fn person(desk: &Desk, command: PersonCommand) -> Result<()> {
    match command {
        PersonCommand::Export { email, out } => {
            let email = desk
                .operator()
                .person_export(&email, &out)
                .map_err(refused)?;
            println!("the data held about {email} is in {}", out.display());
        }
        PersonCommand::Erase { email, yes } => {
            if !yes {
                anyhow::bail!("erasing {email} cannot be undone: add --yes to confirm");
            }
            let e = desk.operator().person_erase(&email).map_err(refused)?;
            println!(
                "{email} is now {}: {} tickets, {} entries, {} originals, {} files, {} mails",
                e.pseudonym,
                e.tickets,
                e.entries,
                e.originals,
                e.files,
                e.mails.len()
            );
            if e.left > 0 {
                eprintln!(
                    "warning: {} records still hold the address: mail that came in meanwhile \
                     (erase again), or a form of it the erasure does not read (README › Erasure)",
                    e.left
                );
            }
            println!("run `postdesk compact` to rewrite the database without their old records");
        }
    }
    Ok(())
}

pub(crate) fn token(desk: &Desk, command: TokenCommand) -> Result<()> {
    let op = desk.operator();
    match command {
        TokenCommand::Create { email } => {
            let (id, token) = op.create_api_token(&email).map_err(refused)?;
            eprintln!(
                "token {id} created for {}",
                email.trim().to_ascii_lowercase()
            );
            println!("{token}");
        }
        TokenCommand::List => {
            for t in op.api_tokens().map_err(refused)? {
                let created = match t.created_at {
                    Some(at) => at.date().to_string(),
                    None => "-".to_string(),
                };
                println!("{}\t{}\t{created}", t.id, t.email);
            }
        }
        TokenCommand::Revoke { id } => {
            let t = op.revoke_api_token(&id).map_err(refused)?;
            println!("revoked token {} of {}", t.id, t.email);
        }
    }
    Ok(())
}

pub(crate) fn dkim(desk: &Desk, command: DkimCommand) -> Result<()> {
    let op = desk.operator();
    match command {
        DkimCommand::Generate {
            org,
            selector,
            algorithm,
        } => {
            let o = op.org(&org).map_err(refused)?;
            let key = postdesk_notifier::new_key_record(&o.slug, &selector, algorithm, desk.now())
                .map_err(refused)?;
            op.set_dkim_key(&key).map_err(refused)?;
            println!("{}", postdesk_notifier::dns_record(&key, o.mail_domain()));
        }
        DkimCommand::Show { org } => {
            let o = op.org(&org).map_err(refused)?;
            let key = op.dkim_key(&o.slug).map_err(refused)?;
            println!("{}", postdesk_notifier::dns_record(&key, o.mail_domain()));
        }
    }
    Ok(())
}
