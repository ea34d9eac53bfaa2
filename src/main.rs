//! The `postdesk` binary: command line, configuration, and wiring of the crates.

mod config;
mod data_folder;
mod lock;
mod serve;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use config::Config;
use postdesk_desk::model::{Org, Role, Staff, Store};
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(
    name = "postdesk",
    version,
    about = "A help desk whose first interface is email"
)]
struct Cli {
    /// Data folder (database, secrets, outbox).
    #[arg(
        long,
        global = true,
        env = "POSTDESK_DATA",
        default_value = "./postdesk-data"
    )]
    data: PathBuf,
    /// TOML configuration file; every key can also be set as POSTDESK_<KEY>.
    #[arg(long, global = true, env = "POSTDESK_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the mail gateway and the HTTP API.
    Serve {
        /// SMTP listen address.
        #[arg(long)]
        smtp: Option<String>,
        /// LMTP listen address (off unless given).
        #[arg(long)]
        lmtp: Option<String>,
        /// HTTP listen address.
        #[arg(long)]
        http: Option<String>,
        /// Mail domain of organization addresses.
        #[arg(long)]
        domain: Option<String>,
        /// On an empty data folder: the owner's email (default admin@DOMAIN). Ignored later.
        #[arg(long)]
        owner: Option<String>,
    },
    /// Organizations.
    Org {
        #[command(subcommand)]
        command: OrgCommand,
    },
    /// Staff members.
    Staff {
        #[command(subcommand)]
        command: StaffCommand,
    },
    /// End users (contacts).
    Contact {
        #[command(subcommand)]
        command: ContactCommand,
    },
    /// API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// DKIM signing keys for outbound mail.
    Dkim {
        #[command(subcommand)]
        command: DkimCommand,
    },
    /// Print the effective configuration.
    Config,
}

#[derive(Subcommand)]
enum DkimCommand {
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
enum OrgCommand {
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
enum StaffCommand {
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
enum ContactCommand {
    /// Turn an end user's automatic mail (acknowledgements) on or off; answers from staff
    /// still reach them.
    Alerts { email: String, setting: OnOff },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum OnOff {
    On,
    Off,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create an API token for a staff member and print it (it is stored hashed).
    Create { email: String },
    /// List API tokens: id, staff member, creation date (never the tokens themselves).
    List,
    /// Revoke the API token with this id (as `token list` shows it).
    Revoke { id: String },
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    data_folder::private_umask();
    let cli = Cli::parse();
    let mut config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Serve {
            smtp,
            lmtp,
            http,
            domain,
            owner,
        } => {
            if let Some(v) = smtp {
                config.smtp = v;
            }
            if let Some(v) = lmtp {
                config.lmtp = v;
            }
            if let Some(v) = http {
                config.http = v;
            }
            if let Some(v) = domain {
                config.domain = v;
            }
            config.validate()?;
            serve::serve(&cli.data, config, owner.as_deref())
        }
        Command::Dkim { command } => {
            let _lock = lock::acquire(&cli.data, "this command")?;
            let store = open_store(&cli.data)?;
            let org_of = |slug: &str| -> Result<Org> {
                store.org(slug)?.ok_or_else(|| {
                    anyhow::anyhow!("no organization {slug:?} (see `postdesk org list`)")
                })
            };
            let domain_of = |org: &Org| {
                org.addresses
                    .first()
                    .and_then(|a| a.rsplit_once('@'))
                    .map(|(_, d)| d.to_string())
                    .unwrap_or_default()
            };
            match command {
                DkimCommand::Generate {
                    org,
                    selector,
                    algorithm,
                } => {
                    let o = org_of(&org)?;
                    if selector.is_empty()
                        || !selector
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
                    {
                        anyhow::bail!(
                            "selector {selector:?} must be letters, digits, dashes and dots"
                        );
                    }
                    let (algorithm, private_key, public_key) =
                        postdesk_notifier::generate_key(algorithm)?;
                    let key = postdesk_desk::model::DkimKeyRecord {
                        org: o.slug.clone(),
                        selector,
                        algorithm,
                        private_key,
                        public_key,
                        created_at: time::OffsetDateTime::now_utc(),
                    };
                    store.put_dkim_key(&key)?;
                    println!("{}", postdesk_notifier::dns_record(&key, &domain_of(&o)));
                }
                DkimCommand::Show { org } => {
                    let o = org_of(&org)?;
                    let key = store.dkim_key(&o.slug)?.ok_or_else(|| {
                        anyhow::anyhow!("organization {org} has no DKIM key; make one with `postdesk dkim generate`")
                    })?;
                    println!("{}", postdesk_notifier::dns_record(&key, &domain_of(&o)));
                }
            }
            Ok(())
        }
        Command::Config => {
            print!("{}", toml::to_string(&config.printable())?);
            Ok(())
        }
        Command::Org { command } => {
            let _lock = lock::acquire(&cli.data, "this command")?;
            let store = open_store(&cli.data)?;
            match command {
                OrgCommand::Add {
                    slug,
                    name,
                    addresses,
                    whitelist,
                } => {
                    let org = new_org(&config, &slug, &name, &addresses, &whitelist)?;
                    store.add_org(&org)?;
                    println!(
                        "added organization {} ({})",
                        org.slug,
                        org.addresses.join(", ")
                    );
                }
                OrgCommand::List => {
                    for o in store.orgs()? {
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
        Command::Staff { command } => {
            let _lock = lock::acquire(&cli.data, "this command")?;
            let store = open_store(&cli.data)?;
            match command {
                StaffCommand::Add { email, name, role } => {
                    let staff = Staff {
                        email: email.trim().to_ascii_lowercase(),
                        name,
                        role,
                        alerts: true,
                        hourly_rate_cents: 0,
                        created_at: time::OffsetDateTime::now_utc(),
                    };
                    store.add_staff(&staff)?;
                    println!("added {} ({}) as {}", staff.name, staff.email, staff.role);
                }
                StaffCommand::List => {
                    for s in store.staff_list()? {
                        let alerts = if s.alerts { "alerts on" } else { "alerts off" };
                        println!("{}\t{}\t{}\t{alerts}", s.email, s.name, s.role);
                    }
                }
                StaffCommand::Link { email } => {
                    let email = email.trim().to_ascii_lowercase();
                    if store.staff(&email)?.is_none() {
                        anyhow::bail!("{email} is not a staff member");
                    }
                    let desk = postdesk_desk::Desk::new(
                        store.clone(),
                        std::sync::Arc::new(postdesk_desk::model::SystemClock),
                    );
                    let token = desk.sign_in_token(
                        postdesk_desk::model::Principal::Staff { email },
                        postdesk_desk::access::LINK_HOURS,
                    )?;
                    println!("{}/signin/link/{token}", config.public_url());
                }
                StaffCommand::Alerts { email, setting } => {
                    store.set_staff_alerts(&email, matches!(setting, OnOff::On))?;
                    println!(
                        "alerts for {email} are {}",
                        if matches!(setting, OnOff::On) {
                            "on"
                        } else {
                            "off"
                        }
                    );
                }
            }
            Ok(())
        }
        Command::Contact { command } => {
            let _lock = lock::acquire(&cli.data, "this command")?;
            let store = open_store(&cli.data)?;
            match command {
                ContactCommand::Alerts { email, setting } => {
                    store.set_contact_alerts(&email, matches!(setting, OnOff::On))?;
                    println!(
                        "automatic mail to {email} is {}",
                        if matches!(setting, OnOff::On) {
                            "on"
                        } else {
                            "off"
                        }
                    );
                }
            }
            Ok(())
        }
        Command::Token { command } => {
            let _lock = lock::acquire(&cli.data, "this command")?;
            let store = open_store(&cli.data)?;
            match command {
                TokenCommand::Create { email } => {
                    let token = new_token();
                    let id = store.add_api_token(&email, &token)?;
                    eprintln!(
                        "token {id} created for {}",
                        email.trim().to_ascii_lowercase()
                    );
                    println!("{token}");
                }
                TokenCommand::List => {
                    for t in store.api_tokens()? {
                        let created = match t.created_at {
                            Some(at) => at.date().to_string(),
                            None => "-".to_string(),
                        };
                        println!("{}\t{}\t{created}", t.id, t.email);
                    }
                }
                TokenCommand::Revoke { id } => {
                    let t = store.revoke_api_token(&id)?;
                    println!("revoked token {} of {}", t.id, t.email);
                }
            }
            Ok(())
        }
    }
}

pub(crate) fn open_store(data: &Path) -> Result<Store> {
    Store::open(data).with_context(|| format!("cannot open the store in {}", data.display()))
}

pub(crate) fn new_token() -> String {
    let bytes: [u8; 24] = postdesk_desk::model::random_bytes();
    format!(
        "pd_{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

pub(crate) fn new_org(
    config: &Config,
    slug: &str,
    name: &str,
    extra: &[String],
    whitelist: &[String],
) -> Result<Org> {
    postdesk_desk::model::check_slug(slug).map_err(anyhow::Error::msg)?;
    let mut addresses = vec![format!("{slug}@{}", config.domain.to_ascii_lowercase())];
    for a in extra {
        let a = a.trim().to_ascii_lowercase();
        if !a.contains('@') || a.contains(char::is_whitespace) {
            anyhow::bail!("--address {a:?} is not an email address");
        }
        if !addresses.contains(&a) {
            addresses.push(a);
        }
    }
    let whitelist = whitelist
        .iter()
        .map(|d| d.trim().trim_start_matches('@').to_ascii_lowercase())
        .filter(|d| !d.is_empty())
        .collect();
    Ok(Org {
        slug: slug.to_string(),
        name: name.to_string(),
        addresses,
        whitelist,
        created_at: time::OffsetDateTime::now_utc(),
        portal: Default::default(),
    })
}
