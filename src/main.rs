//! The `postdesk` binary: command line, configuration, and wiring of the crates.

mod admin;
mod config;
mod data_folder;
mod import;
mod lock;
mod serve;

use admin::{ContactCommand, DkimCommand, OrgCommand, PersonCommand, StaffCommand, TokenCommand};
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use config::Config;
use postdesk_desk::model::Store;
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
    /// A person's data.
    Person {
        #[command(subcommand)]
        command: PersonCommand,
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
    /// Bring the PostgreSQL database of `database_url` to this version's schema (serve
    /// also does it when it starts); prints the versions applied.
    Migrate,
    /// Move this data folder's (sled) store into an empty PostgreSQL database, server
    /// stopped: copied, counted and hashed on both sides. An interrupted move resumes.
    MigrateStore {
        /// The database: postgres://user@host:port/database (the password in PGPASSWORD
        /// keeps it off the command line, where other users see it)
        #[arg(long)]
        to: String,
    },
    /// Rewrite the database without the old versions of records (sled keeps them until it
    /// reuses their space; PostgreSQL: VACUUM FULL). Run after an erasure, server stopped.
    Compact,
    /// Import an mbox file or a Maildir folder into an organization (server stopped):
    /// the same checks and threading as live mail, dates from the Date header, no mail
    /// sent; a second run imports nothing twice.
    Import {
        /// The organization the mail goes to.
        #[arg(long)]
        org: String,
        /// An mbox file or a Maildir folder.
        path: PathBuf,
    },
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
        Command::Config => {
            print!("{}", toml::to_string(&config.printable())?);
            Ok(())
        }
        Command::Dkim { command } => {
            admin::with_desk(&cli.data, &config, |desk| admin::dkim(desk, command))
        }
        Command::Org { command } => admin::with_desk(&cli.data, &config, |desk| {
            admin::org(desk, &config, command)
        }),
        Command::Staff { command } => admin::with_desk(&cli.data, &config, |desk| {
            admin::staff(desk, &config, command)
        }),
        Command::Contact { command } => {
            admin::with_desk(&cli.data, &config, |desk| admin::contact(desk, command))
        }
        Command::Migrate => admin::migrate(&config),
        Command::MigrateStore { to } => admin::migrate_store(&cli.data, &config, &to),
        Command::Compact => admin::compact(&cli.data, &config),
        Command::Import { org, path } => import::import(&cli.data, &config, &org, &path),
        Command::Person { command } => {
            admin::with_desk(&cli.data, &config, |desk| admin::person(desk, command))
        }
        Command::Token { command } => {
            admin::with_desk(&cli.data, &config, |desk| admin::token(desk, command))
        }
    }
}

/// The store `config` names: PostgreSQL at `database_url`, else sled in `data`.
pub(crate) fn open_store(data: &Path, config: &Config) -> Result<Store> {
    if config.database_url.is_empty() {
        Store::open(data).with_context(|| format!("cannot open the store in {}", data.display()))
    } else {
        Store::open_postgres(data, &config.database_url).with_context(|| {
            format!(
                "cannot open the store in {}",
                postdesk_desk::model::describe_database_url(&config.database_url)
            )
        })
    }
}
