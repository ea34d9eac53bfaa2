//! The PostgreSQL engine: every tree is a slice of one table of byte keys and values,
//! reached through a pool of tokio-postgres connections driven by a runtime of its own.

use super::{
    Batch, Bounds, CompareAndSwapError, ConflictableTransactionError,
    ConflictableTransactionResult, EngineError, TransactionError, TransactionalTree,
    UnabortableTransactionError, Value,
};
use deadpool_postgres::GenericClient;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::ops::Bound;
use std::sync::{Arc, Mutex};
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres_rustls::MakeRustlsConnect;

/// The schema this build writes; [`migrate`] brings a database to it.
pub(crate) const SCHEMA_VERSION: i32 = 1;

/// Each migration, in order: the SQL that takes a database from the version before to
/// its index + 1. Applied in one transaction each, never edited once released.
const MIGRATIONS: &[&str] = &[
    // 1: the trees and their keys and values. bytea sorts bytewise, as sled's keys do.
    "CREATE TABLE postdesk_trees (
        id smallserial PRIMARY KEY,
        name text NOT NULL UNIQUE
     );
     CREATE TABLE postdesk_kv (
        tree smallint NOT NULL REFERENCES postdesk_trees (id),
        k bytea NOT NULL,
        v bytea NOT NULL,
        PRIMARY KEY (tree, k)
     );",
];

/// The advisory lock that orders migrations of nodes starting together.
const MIGRATION_LOCK: i64 = 0x706f_7374_6465_736b; // "postdesk"

/// A connection that carried more than this many bytes is closed rather than pooled:
/// tokio-postgres keeps its buffers as large as the largest message they held.
const BIG: usize = 1 << 20;

/// Hands a connection back to the pool, or closes it when it moved `bytes` > [`BIG`].
fn let_go(c: Object, bytes: usize) {
    if bytes > BIG {
        drop(Object::take(c));
    }
}

/// Rows fetched per page when iterating. Values of the mail trees can be megabytes: their
/// pages hold up to PAGE_LARGE_KEYS rows within PAGE_BYTES (or one row, however large).
const PAGE_SMALL: i64 = 512;
const PAGE_LARGE: i64 = 8;
const PAGE_LARGE_KEYS: i64 = 64;
const PAGE_BYTES: usize = 8 << 20;

/// A connection pool to one PostgreSQL database.
#[derive(Clone)]
pub(crate) struct Pg {
    inner: Arc<Inner>,
}

struct Inner {
    runtime: Option<tokio::runtime::Runtime>,
    pool: Pool,
    /// For connections of their own (advisory locks held as long as a job runs).
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    trees: Mutex<HashMap<String, i16>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // A runtime may not be dropped (joined) from async code; let its threads end alone.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// The error with its causes: tokio-postgres says only "db error" until its source, the
/// server's own message, is read.
fn pg_error(e: impl std::error::Error) -> EngineError {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    EngineError::Postgres(text)
}

/// Whether a statement failed only because a concurrent transaction won.
fn is_conflict(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE
            || *c == SqlState::T_R_DEADLOCK_DETECTED
            || *c == SqlState::UNIQUE_VIOLATION
    )
}

fn unabortable(e: tokio_postgres::Error) -> UnabortableTransactionError {
    if is_conflict(&e) {
        UnabortableTransactionError::Conflict
    } else {
        UnabortableTransactionError::Storage(pg_error(e))
    }
}

/// Parses a `postgres://` URL: the error names what is wrong, never the password.
fn parse_url(url: &str) -> Result<tokio_postgres::Config, EngineError> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| EngineError::Postgres(format!("database_url is not a PostgreSQL URL: {e}")))?;
    // A password kept out of the URL (and so out of `ps` and shell history) comes from the
    // environment, as for psql.
    if config.get_password().is_none() {
        if let Ok(password) = std::env::var("PGPASSWORD") {
            config.password(password);
        }
    }
    // TLS when the URL asks for it (sslmode=require), the server's certificate checked
    // against the system's roots and PGSSLROOTCERT; otherwise plain, as before (libpq's
    // default "prefer" would try TLS without checking anything).
    if config.get_ssl_mode() == SslMode::Prefer {
        config.ssl_mode(SslMode::Disable);
    }
    config.application_name("postdesk");
    // An unreachable host fails a connection in seconds, not after TCP's retries.
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(std::time::Duration::from_secs(10));
    }
    // A peer gone without a word (a network cut) is noticed within about a minute.
    config.keepalives(true);
    config.keepalives_idle(std::time::Duration::from_secs(30));
    Ok(config)
}

/// What connections use for TLS when the URL asks for it: the system's root certificates
/// and those of the PEM file PGSSLROOTCERT names (a private CA, a cloud provider's).
fn tls() -> Result<MakeRustlsConnect, EngineError> {
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // A certificate the system lists but rustls cannot use is one root fewer.
        let _ = roots.add(cert);
    }
    if let Some(path) = std::env::var("PGSSLROOTCERT")
        .ok()
        .filter(|p| !p.is_empty())
    {
        let pem = std::fs::read(&path)
            .map_err(|e| EngineError::Postgres(format!("PGSSLROOTCERT {path}: {e}")))?;
        for cert in rustls_pemfile::certs(&mut &pem[..]) {
            let cert =
                cert.map_err(|e| EngineError::Postgres(format!("PGSSLROOTCERT {path}: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| EngineError::Postgres(format!("PGSSLROOTCERT {path}: {e}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(pg_error)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

fn runtime() -> Result<tokio::runtime::Runtime, EngineError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("postgres")
        .enable_all()
        .build()
        .map_err(pg_error)
}

/// Runs `f` to its end from synchronous code: a plain thread, a blocking-pool thread, or
/// (moved aside with `block_in_place`) a multi-threaded runtime's worker.
fn wait<F: Future>(rt: &tokio::runtime::Runtime, f: F) -> F::Output {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(|| rt.block_on(f)),
        // Outside any runtime, or on a current-thread runtime's blocking pool.
        _ => rt.block_on(f),
    }
}

/// The database a URL names, for people to read: user, hosts, ports and database, never a
/// password (wherever the URL keeps it).
pub(crate) fn describe(url: &str) -> String {
    let Ok(config) = url.parse::<tokio_postgres::Config>() else {
        return "a database URL that is not a PostgreSQL URL".into();
    };
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .zip(config.get_ports().iter().chain(std::iter::repeat(&5432)))
        .map(|(h, port)| match h {
            // Part of a password with an unescaped @ would read as the host.
            tokio_postgres::config::Host::Tcp(h) if h.contains('@') => "***".into(),
            tokio_postgres::config::Host::Tcp(h) => format!("{h}:{port}"),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .collect();
    format!(
        "postgres://{}@{}/{}",
        config.get_user().unwrap_or(""),
        hosts.join(","),
        config.get_dbname().unwrap_or("")
    )
}

/// Brings the database at `url` to [`SCHEMA_VERSION`]; the versions it applied. Refuses a
/// database written by a newer Postdesk.
pub(crate) fn migrate(url: &str) -> Result<Vec<i32>, EngineError> {
    let config = parse_url(url)?;
    let rt = runtime()?;
    let applied = wait(&rt, async {
        let (mut client, connection) = config.connect(tls()?).await.map_err(pg_error)?;
        tokio::spawn(connection);
        client
            .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(pg_error)?;
        let applied = apply_migrations(&mut client).await;
        // The lock ends with the session anyway; release it for a pool that reuses none.
        let _ = client
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
            .await;
        applied
    });
    rt.shutdown_background();
    applied
}

async fn apply_migrations(client: &mut tokio_postgres::Client) -> Result<Vec<i32>, EngineError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS postdesk_schema (
                version integer PRIMARY KEY,
                applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .await
        .map_err(pg_error)?;
    let current: i32 = client
        .query_one("SELECT coalesce(max(version), 0) FROM postdesk_schema", &[])
        .await
        .map_err(pg_error)?
        .get(0);
    if current > SCHEMA_VERSION {
        return Err(EngineError::Postgres(format!(
            "the database has schema version {current}, newer than this Postdesk knows \
             ({SCHEMA_VERSION}); run the newer Postdesk"
        )));
    }
    let mut applied = Vec::new();
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = i as i32 + 1;
        let tx = client.transaction().await.map_err(pg_error)?;
        tx.batch_execute(sql).await.map_err(pg_error)?;
        tx.execute(
            "INSERT INTO postdesk_schema (version) VALUES ($1)",
            &[&version],
        )
        .await
        .map_err(pg_error)?;
        tx.commit().await.map_err(pg_error)?;
        applied.push(version);
    }
    Ok(applied)
}

/// Creates schema `name` in the database at `url` unless it exists, or anew (`fresh`).
/// Tests give each store a schema of its own in one private server.
pub(crate) fn create_schema(url: &str, name: &str, fresh: bool) -> Result<(), EngineError> {
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(EngineError::Postgres(format!("not a schema name: {name}")));
    }
    let config = parse_url(url)?;
    let rt = runtime()?;
    let done = wait(&rt, async {
        let (client, connection) = config.connect(tls()?).await.map_err(pg_error)?;
        tokio::spawn(connection);
        if fresh {
            client
                .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                .await
                .map_err(pg_error)?;
        }
        client
            .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {name}"))
            .await
            .map_err(pg_error)
    });
    rt.shutdown_background();
    done
}

impl Pg {
    /// Connects to the database at `url`, migrating it first.
    pub(crate) fn connect(url: &str) -> Result<Pg, EngineError> {
        migrate(url)?;
        let mut config = parse_url(url)?;
        // Commits are durable at the next flush (as sled's writes are), not each on its
        // own: a flush (`synchronous_commit = on`) makes every earlier commit durable.
        let options = config.get_options().unwrap_or_default().to_string();
        config.options(format!("{options} -c synchronous_commit=off").trim());
        let tls = tls()?;
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let rt = runtime()?;
        let pool = {
            let _in = rt.enter();
            Pool::builder(manager)
                .max_size(16)
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .wait_timeout(Some(std::time::Duration::from_secs(30)))
                .create_timeout(Some(std::time::Duration::from_secs(10)))
                .build()
                .map_err(pg_error)?
        };
        let pg = Pg {
            inner: Arc::new(Inner {
                runtime: Some(rt),
                pool,
                config,
                tls,
                trees: Mutex::default(),
            }),
        };
        // Fail at start, not at the first message, when the database cannot be reached.
        pg.run(|c| async move { c.simple_query("SELECT 1").await.map_err(pg_error).map(drop) })?;
        Ok(pg)
    }

    fn rt(&self) -> &tokio::runtime::Runtime {
        self.inner
            .runtime
            .as_ref()
            .expect("runtime lives as long as the pool")
    }

    /// Runs `f` on a pooled connection.
    fn run<T, Fut>(&self, f: impl FnOnce(Object) -> Fut) -> Result<T, EngineError>
    where
        Fut: Future<Output = Result<T, EngineError>>,
    {
        wait(self.rt(), async {
            let client = self.inner.pool.get().await.map_err(pg_error)?;
            f(client).await
        })
    }

    pub(crate) fn open_tree(&self, name: &str) -> Result<PgTree, EngineError> {
        let mut trees = self
            .inner
            .trees
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let id = match trees.get(name) {
            Some(id) => *id,
            None => {
                let id: i16 = self.run(|c| async move {
                    c.execute(
                        "INSERT INTO postdesk_trees (name) VALUES ($1) ON CONFLICT DO NOTHING",
                        &[&name],
                    )
                    .await
                    .map_err(pg_error)?;
                    let row = c
                        .query_one("SELECT id FROM postdesk_trees WHERE name = $1", &[&name])
                        .await
                        .map_err(pg_error)?;
                    Ok(row.get(0))
                })?;
                trees.insert(name.to_string(), id);
                id
            }
        };
        Ok(PgTree {
            pg: self.clone(),
            id,
            page: if name == "state" {
                PAGE_SMALL
            } else {
                PAGE_LARGE
            },
        })
    }

    /// Makes every commit so far durable: a transaction that commits synchronously waits
    /// until the log is on disk up to its commit record, which follows every earlier one.
    pub(crate) fn flush(&self) -> Result<(), EngineError> {
        self.run(|mut c| async move {
            let tx = c.transaction().await.map_err(pg_error)?;
            tx.batch_execute("SET LOCAL synchronous_commit = on; SELECT txid_current()")
                .await
                .map_err(pg_error)?;
            tx.commit().await.map_err(pg_error)
        })
    }

    /// The advisory lock named `name` (in this schema: tests share one database), on a
    /// connection of its own that holds it until dropped; `wait`s for it, or `None` if
    /// another session holds it.
    pub(crate) fn try_lock(
        &self,
        name: &str,
        wait_for_it: bool,
    ) -> Result<Option<PgLease>, EngineError> {
        let (config, tls) = (self.inner.config.clone(), self.inner.tls.clone());
        wait(self.rt(), async move {
            let (client, connection) = config.connect(tls).await.map_err(pg_error)?;
            tokio::spawn(connection);
            let key = "hashtextextended(current_schema() || ':' || $1, 0)";
            let held = if wait_for_it {
                // Not for ever: a holder that hangs makes the waiter fail, not pile up.
                client
                    .batch_execute("SET lock_timeout = '60s'")
                    .await
                    .map_err(pg_error)?;
                client
                    .execute(&format!("SELECT pg_advisory_lock({key})"), &[&name])
                    .await
                    .map_err(pg_error)?;
                true
            } else {
                client
                    .query_one(&format!("SELECT pg_try_advisory_lock({key})"), &[&name])
                    .await
                    .map_err(pg_error)?
                    .get(0)
            };
            Ok(held.then(|| {
                let client = Arc::new(client);
                let answering = Arc::new(std::sync::atomic::AtomicBool::new(true));
                let (c, a) = (client.clone(), answering.clone());
                let watch = tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(LEASE_CHECK).await;
                        let ok = tokio::time::timeout(LEASE_CHECK, c.simple_query("SELECT 1"))
                            .await
                            .is_ok_and(|r| r.is_ok());
                        if !ok {
                            a.store(false, std::sync::atomic::Ordering::Relaxed);
                            return;
                        }
                    }
                });
                PgLease {
                    client,
                    answering,
                    watch,
                    _pg: self.clone(),
                }
            }))
        })
    }

    /// (connections, idle, max, waiting) of the pool.
    pub(crate) fn pool_use(&self) -> (usize, usize, usize, usize) {
        let s = self.inner.pool.status();
        (s.size, s.available, s.max_size, s.waiting)
    }

    /// Gathers the planner's statistics of the table at once (after a bulk load, before
    /// autovacuum would: without them a range read plans a scan of the whole range).
    pub(crate) fn analyze(&self) -> Result<(), EngineError> {
        self.run(|c| async move {
            c.batch_execute("ANALYZE postdesk_kv")
                .await
                .map_err(pg_error)
        })
    }

    /// Rewrites the table without the old versions of rows (`VACUUM FULL`), which a
    /// plain vacuum only marks for reuse; its size in bytes before and after.
    pub(crate) fn vacuum_full(&self) -> Result<(u64, u64), EngineError> {
        self.run(|c| async move {
            let size = "SELECT pg_total_relation_size('postdesk_kv')::bigint";
            let before: i64 = c.query_one(size, &[]).await.map_err(pg_error)?.get(0);
            c.batch_execute("VACUUM FULL postdesk_kv")
                .await
                .map_err(pg_error)?;
            let after: i64 = c.query_one(size, &[]).await.map_err(pg_error)?.get(0);
            Ok((before as u64, after as u64))
        })
    }

    /// Applies batches to several trees in one transaction.
    pub(crate) fn apply_batches(&self, batches: Vec<(PgTree, Batch)>) -> Result<(), EngineError> {
        let bytes: usize = batches
            .iter()
            .flat_map(|(_, b)| &b.writes)
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, |v| v.len()))
            .sum();
        self.run(|mut c| async move {
            let tx = c.transaction().await.map_err(pg_error)?;
            for (tree, batch) in &batches {
                let mut last: BTreeMap<&[u8], Option<&[u8]>> = BTreeMap::new();
                for (k, v) in &batch.writes {
                    last.insert(k, v.as_deref());
                }
                write_all(&tx, tree.id, last).await.map_err(pg_error)?;
            }
            tx.commit().await.map_err(pg_error)?;
            let_go(c, bytes);
            Ok(())
        })
    }
}

/// Writes each key's last value (`None`: removed) in two statements.
async fn write_all(
    c: &impl GenericClient,
    tree: i16,
    writes: BTreeMap<&[u8], Option<&[u8]>>,
) -> Result<(), tokio_postgres::Error> {
    let (mut keys, mut values, mut gone) = (Vec::new(), Vec::new(), Vec::new());
    for (k, v) in writes {
        match v {
            // A large value goes alone: the connection's buffer holds one at a time.
            Some(v) if v.len() > BIG => {
                c.execute(
                    "INSERT INTO postdesk_kv (tree, k, v) VALUES ($1, $2, $3)
                     ON CONFLICT (tree, k) DO UPDATE SET v = EXCLUDED.v",
                    &[&tree, &k, &v],
                )
                .await?;
            }
            Some(v) => {
                keys.push(k);
                values.push(v);
            }
            None => gone.push(k),
        }
    }
    if !keys.is_empty() {
        c.execute(
            "INSERT INTO postdesk_kv (tree, k, v) SELECT $1, * FROM unnest($2::bytea[], $3::bytea[])
             ON CONFLICT (tree, k) DO UPDATE SET v = EXCLUDED.v",
            &[&tree, &keys, &values],
        )
        .await?;
    }
    if !gone.is_empty() {
        c.execute(
            "DELETE FROM postdesk_kv WHERE tree = $1 AND k = ANY($2::bytea[])",
            &[&tree, &gone],
        )
        .await?;
    }
    Ok(())
}

/// An advisory lock, held by the session of its own connection: released when this is
/// dropped, or by the server when the process dies.
pub(crate) struct PgLease {
    client: Arc<tokio_postgres::Client>,
    /// Cleared by the watch below when the session stops answering: a connection a
    /// network dropped silently looks open, while the server may have ended the session
    /// and given the lock to another.
    answering: Arc<std::sync::atomic::AtomicBool>,
    watch: tokio::task::JoinHandle<()>,
    /// The runtime that drives the connection and the watch lives as long as the lock.
    _pg: Pg,
}

/// How often a held lock's session is asked whether it is still there.
const LEASE_CHECK: std::time::Duration = std::time::Duration::from_secs(5);

impl PgLease {
    /// Whether the lock is still this session's: its connection is open and its session
    /// answered the last check. Reads two flags: no I/O on the caller's thread.
    pub(crate) fn held(&self) -> bool {
        !self.client.is_closed() && self.answering.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for PgLease {
    fn drop(&mut self) {
        self.watch.abort();
    }
}

/// One tree: the rows of `postdesk_kv` with its id.
#[derive(Clone)]
pub(crate) struct PgTree {
    pg: Pg,
    id: i16,
    page: i64,
}

impl PgTree {
    pub(crate) fn pg(&self) -> &Pg {
        &self.pg
    }

    pub(crate) fn get(&self, k: &[u8]) -> Result<Option<Value>, EngineError> {
        self.select(k, |r| Value::from(r.get::<_, &[u8]>(0)), |v| v.len())
    }

    /// The value of `k`, taken from its row by `take` (`size`: its bytes, to let go of a
    /// connection that carried a large one).
    fn select<T: Send>(
        &self,
        k: &[u8],
        take: fn(&tokio_postgres::Row) -> T,
        size: fn(&T) -> usize,
    ) -> Result<Option<T>, EngineError> {
        let id = self.id;
        self.pg.run(|c| async move {
            let stmt = c
                .prepare_cached("SELECT v FROM postdesk_kv WHERE tree = $1 AND k = $2")
                .await
                .map_err(pg_error)?;
            let row = c.query_opt(&stmt, &[&id, &k]).await.map_err(pg_error)?;
            let value = row.as_ref().map(take);
            let_go(c, value.as_ref().map_or(0, size));
            Ok(value)
        })
    }

    /// The values of `keys`, in their order, read by one statement.
    pub(crate) fn get_many(&self, keys: &[Value]) -> Result<Vec<Option<Value>>, EngineError> {
        let id = self.id;
        let wanted: Vec<&[u8]> = keys.iter().map(|k| k.as_ref()).collect();
        let found = self.pg.run(|c| async move {
            let stmt = c
                .prepare_cached("SELECT k, v FROM postdesk_kv WHERE tree = $1 AND k = ANY($2)")
                .await
                .map_err(pg_error)?;
            let rows = c.query(&stmt, &[&id, &wanted]).await.map_err(pg_error)?;
            let found: HashMap<Vec<u8>, Value> = rows
                .iter()
                .map(|r| (r.get::<_, Vec<u8>>(0), Value::from(r.get::<_, &[u8]>(1))))
                .collect();
            let_go(c, found.values().map(|v| v.len()).sum());
            Ok(found)
        })?;
        Ok(keys
            .iter()
            .map(|k| found.get(k.as_ref()).cloned())
            .collect())
    }

    /// Whether `k` is set, without reading its value.
    pub(crate) fn contains_key(&self, k: &[u8]) -> Result<bool, EngineError> {
        let id = self.id;
        self.pg.run(|c| async move {
            let stmt = c
                .prepare_cached("SELECT 1 FROM postdesk_kv WHERE tree = $1 AND k = $2")
                .await
                .map_err(pg_error)?;
            Ok(c.query_opt(&stmt, &[&id, &k])
                .await
                .map_err(pg_error)?
                .is_some())
        })
    }

    /// [`PgTree::get`] into a vector of its own: a large value is copied once, not twice.
    pub(crate) fn get_vec(&self, k: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        self.select(k, |r| r.get::<_, Vec<u8>>(0), Vec::len)
    }

    pub(crate) fn insert(&self, k: &[u8], v: &[u8]) -> Result<Option<Value>, EngineError> {
        let id = self.id;
        self.pg.run(|c| async move {
            let stmt = c
                .prepare_cached(
                    "WITH old AS (SELECT v FROM postdesk_kv WHERE tree = $1 AND k = $2)
                     INSERT INTO postdesk_kv (tree, k, v) VALUES ($1, $2, $3)
                     ON CONFLICT (tree, k) DO UPDATE SET v = EXCLUDED.v
                     RETURNING (SELECT v FROM old)",
                )
                .await
                .map_err(pg_error)?;
            let row = c.query_one(&stmt, &[&id, &k, &v]).await.map_err(pg_error)?;
            let old = row.get::<_, Option<&[u8]>>(0).map(Value::from);
            let_go(c, v.len() + old.as_ref().map_or(0, |o| o.len()));
            Ok(old)
        })
    }

    pub(crate) fn remove(&self, k: &[u8]) -> Result<Option<Value>, EngineError> {
        let id = self.id;
        self.pg.run(|c| async move {
            let stmt = c
                .prepare_cached("DELETE FROM postdesk_kv WHERE tree = $1 AND k = $2 RETURNING v")
                .await
                .map_err(pg_error)?;
            let row = c.query_opt(&stmt, &[&id, &k]).await.map_err(pg_error)?;
            let old = row.as_ref().map(|r| Value::from(r.get::<_, &[u8]>(0)));
            let_go(c, old.as_ref().map_or(0, |o| o.len()));
            Ok(old)
        })
    }

    pub(crate) fn compare_and_swap(
        &self,
        k: &[u8],
        old: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<Result<(), CompareAndSwapError>, EngineError> {
        let id = self.id;
        self.pg.run(|c| async move {
            // Each case is one statement, atomic on its own; when it changed nothing, the
            // value found is read for the caller.
            let changed = match (old, new) {
                (None, Some(new)) => c.execute(
                    "INSERT INTO postdesk_kv (tree, k, v) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    &[&id, &k, &new],
                ).await,
                (Some(old), Some(new)) => c.execute(
                    "UPDATE postdesk_kv SET v = $4 WHERE tree = $1 AND k = $2 AND v = $3",
                    &[&id, &k, &old, &new],
                ).await,
                (Some(old), None) => c.execute(
                    "DELETE FROM postdesk_kv WHERE tree = $1 AND k = $2 AND v = $3",
                    &[&id, &k, &old],
                ).await,
                (None, None) => Ok(0),
            }
            .map_err(pg_error)?;
            if changed == 1 {
                return Ok(Ok(()));
            }
            let current = c
                .query_opt("SELECT v FROM postdesk_kv WHERE tree = $1 AND k = $2", &[&id, &k])
                .await
                .map_err(pg_error)?
                .map(|r| Value::from(r.get::<_, Vec<u8>>(0)));
            if old.is_none() && new.is_none() && current.is_none() {
                return Ok(Ok(()));
            }
            Ok(Err(CompareAndSwapError { current }))
        })
    }

    /// How many keys lie within `bounds`.
    pub(crate) fn count(&self, bounds: Bounds) -> Result<u64, EngineError> {
        let mut sql = String::from("SELECT count(*) FROM postdesk_kv WHERE tree = $1");
        let (lo, hi) = (bound_bytes(&bounds.0), bound_bytes(&bounds.1));
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&self.id];
        for (bound, op, value) in [(&bounds.0, ">", &lo), (&bounds.1, "<", &hi)] {
            let op = match bound {
                Bound::Included(_) => format!("{op}="),
                Bound::Excluded(_) => op.to_string(),
                Bound::Unbounded => continue,
            };
            params.push(value);
            sql.push_str(&format!(" AND k {op} ${}", params.len()));
        }
        self.pg.run(|c| async move {
            let row = c.query_one(&sql, &params).await.map_err(pg_error)?;
            Ok(row.get::<_, i64>(0) as u64)
        })
    }

    pub(crate) fn iter(&self, bounds: Bounds) -> PgIter {
        PgIter {
            tree: self.clone(),
            lo: bounds.0,
            hi: bounds.1,
            front: VecDeque::new(),
            back: VecDeque::new(),
            front_done: false,
            back_done: false,
            failed: false,
        }
    }

    /// Runs `f` in a serializable transaction, again when a concurrent one wins.
    pub(crate) fn transaction<A, E>(
        &self,
        f: impl Fn(&TransactionalTree) -> ConflictableTransactionResult<A, E>,
    ) -> Result<A, TransactionError<E>> {
        let pg = &self.pg;
        let storage = |e: EngineError| TransactionError::Storage(e);
        let mut client = wait(pg.rt(), pg.inner.pool.get()).map_err(|e| storage(pg_error(e)))?;
        let mut conflicts = 0u32;
        loop {
            let tx = PgTx {
                tree: self,
                client: &mut client,
                writes: RefCell::default(),
            };
            wait(
                pg.rt(),
                tx.client
                    .batch_execute("BEGIN ISOLATION LEVEL SERIALIZABLE"),
            )
            .map_err(|e| storage(pg_error(e)))?;
            // A panic in `f` must not hand the pool a connection inside a transaction.
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                f(&TransactionalTree::Pg(&tx))
            }))
            .unwrap_or_else(|panic| {
                let _ = wait(pg.rt(), tx.client.batch_execute("ROLLBACK"));
                std::panic::resume_unwind(panic)
            });
            // Every way out but a commit ends with a rollback (a no-op after a failed
            // commit): the connection goes back to the pool outside any transaction.
            let ended = match outcome {
                Ok(a) => match tx.commit() {
                    Ok(()) => return Ok(a),
                    Err(UnabortableTransactionError::Conflict) => Ok(()),
                    Err(UnabortableTransactionError::Storage(e)) => Err(storage(e)),
                },
                Err(ConflictableTransactionError::Abort(e)) => Err(TransactionError::Abort(e)),
                Err(ConflictableTransactionError::Storage(e)) => Err(storage(e)),
                Err(ConflictableTransactionError::Conflict) => Ok(()),
            };
            wait(pg.rt(), tx.client.batch_execute("ROLLBACK")).map_err(|e| storage(pg_error(e)))?;
            ended?;
            // A conflict: the other transaction is likely still at it. Back off a little
            // (growing, with jitter) before running again, so retries do not spin.
            conflicts = conflicts.saturating_add(1);
            let ceiling = (1u64 << conflicts.min(6)).min(50);
            let r = crate::random_bytes::<1>()[0];
            std::thread::sleep(std::time::Duration::from_micros(
                ceiling * 1000 / 2 + ceiling * 1000 / 2 * u64::from(r) / 255,
            ));
        }
    }
}

/// An open transaction on one tree: reads go to the database unless this transaction
/// wrote the key; writes are kept until the commit, then sent in two statements.
pub(crate) struct PgTx<'a> {
    tree: &'a PgTree,
    client: &'a mut Object,
    writes: RefCell<BTreeMap<Value, Option<Value>>>,
}

impl PgTx<'_> {
    pub(crate) fn get(&self, k: &[u8]) -> Result<Option<Value>, UnabortableTransactionError> {
        if let Some(v) = self.writes.borrow().get(k) {
            return Ok(v.clone());
        }
        let id = self.tree.id;
        let client = &*self.client;
        wait(self.tree.pg.rt(), async {
            let stmt = client
                .prepare_cached("SELECT v FROM postdesk_kv WHERE tree = $1 AND k = $2")
                .await
                .map_err(unabortable)?;
            let row = client
                .query_opt(&stmt, &[&id, &k])
                .await
                .map_err(unabortable)?;
            Ok(row.map(|r| Value::from(r.get::<_, Vec<u8>>(0))))
        })
    }

    pub(crate) fn write(&self, k: Value, v: Option<Value>) {
        self.writes.borrow_mut().insert(k, v);
    }

    fn commit(&self) -> Result<(), UnabortableTransactionError> {
        let writes = self.writes.borrow();
        let last = writes.iter().map(|(k, v)| (&k[..], v.as_deref())).collect();
        let client = &*self.client;
        wait(self.tree.pg.rt(), async {
            write_all(client, self.tree.id, last)
                .await
                .map_err(unabortable)?;
            client.batch_execute("COMMIT").await.map_err(unabortable)
        })
    }
}

/// A lazy walk over a key range, a page of rows at a time from either end.
pub(crate) struct PgIter {
    tree: PgTree,
    /// What is left to fetch: keys already fetched from either end are outside.
    lo: Bound<Value>,
    hi: Bound<Value>,
    front: VecDeque<(Value, Value)>,
    /// Fetched from the high end, highest first.
    back: VecDeque<(Value, Value)>,
    front_done: bool,
    back_done: bool,
    failed: bool,
}

impl PgIter {
    /// Fetches the next page from the low end (`ascending`) or the high end.
    /// The next page from the low end (`ascending`) or the high end, whether the range is
    /// exhausted on that side, and the last key the page covers (the next starts past it).
    #[allow(clippy::type_complexity)]
    fn fetch(
        &mut self,
        ascending: bool,
    ) -> Result<(Vec<(Value, Value)>, bool, Option<Value>), EngineError> {
        let mut conditions = String::from("tree = $1");
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&self.tree.id];
        let (lo, hi) = (bound_bytes(&self.lo), bound_bytes(&self.hi));
        for (bound, below) in [(&self.lo, false), (&self.hi, true)] {
            let op = match (bound, below) {
                (Bound::Included(_), false) => ">=",
                (Bound::Excluded(_), false) => ">",
                (Bound::Included(_), true) => "<=",
                (Bound::Excluded(_), true) => "<",
                (Bound::Unbounded, _) => continue,
            };
            params.push(if below { &hi } else { &lo });
            conditions.push_str(&format!(" AND k {op} ${}", params.len()));
        }
        let order = if ascending { "ASC" } else { "DESC" };
        let (page, tree) = (self.tree.page, self.tree.id);
        self.tree.pg.run(|c| async move {
            let pairs = |rows: &[tokio_postgres::Row]| -> Vec<(Value, Value)> {
                rows.iter()
                    .map(|r| {
                        (
                            Value::from(r.get::<_, &[u8]>(0)),
                            Value::from(r.get::<_, &[u8]>(1)),
                        )
                    })
                    .collect()
            };
            if page != PAGE_LARGE {
                let sql = format!(
                    "SELECT k, v FROM postdesk_kv WHERE {conditions} ORDER BY k {order} LIMIT {page}"
                );
                let stmt = c.prepare_cached(&sql).await.map_err(pg_error)?;
                let rows = c.query(&stmt, &params).await.map_err(pg_error)?;
                let got = pairs(&rows);
                let exhausted = (got.len() as i64) < page;
                let edge = got.last().map(|(k, _)| k.clone());
                return Ok((got, exhausted, edge));
            }
            // Mail trees: values up to a message's size. The sizes first, then as many
            // values as fit in PAGE_BYTES (at least one).
            let sql = format!(
                "SELECT k, length(v) FROM postdesk_kv WHERE {conditions} \
                 ORDER BY k {order} LIMIT {PAGE_LARGE_KEYS}"
            );
            let stmt = c.prepare_cached(&sql).await.map_err(pg_error)?;
            let sizes = c.query(&stmt, &params).await.map_err(pg_error)?;
            let (mut keys, mut bytes) = (Vec::new(), 0usize);
            for r in &sizes {
                let size = usize::try_from(r.get::<_, i32>(1)).unwrap_or(0);
                if !keys.is_empty() && bytes + size > PAGE_BYTES {
                    break;
                }
                bytes += size;
                keys.push(r.get::<_, &[u8]>(0));
            }
            let exhausted = (sizes.len() as i64) < PAGE_LARGE_KEYS && keys.len() == sizes.len();
            let edge = keys.last().map(|k| Value::from(*k));
            let sql = format!(
                "SELECT k, v FROM postdesk_kv WHERE tree = $1 AND k = ANY($2) ORDER BY k {order}"
            );
            let stmt = c.prepare_cached(&sql).await.map_err(pg_error)?;
            let rows = c
                .query(&stmt, &[&tree, &keys])
                .await
                .map_err(pg_error)?;
            let got = pairs(&rows);
            let_go(c, bytes);
            Ok((got, exhausted, edge))
        })
    }

    fn step(&mut self, ascending: bool) -> Option<Result<(Value, Value), EngineError>> {
        if self.failed {
            return None;
        }
        let done = if ascending {
            self.front_done
        } else {
            self.back_done
        };
        let mut done = done;
        // A page can come back empty yet not be the end (the mail trees' rows deleted
        // between its two statements): fetch on from past it.
        while buffer_empty(self, ascending) && !done {
            match self.fetch(ascending) {
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
                Ok((rows, exhausted, edge)) => {
                    if let Some(edge) = edge {
                        if ascending {
                            self.lo = Bound::Excluded(edge);
                        } else {
                            self.hi = Bound::Excluded(edge);
                        }
                    }
                    if ascending {
                        self.front.extend(rows);
                        self.front_done = exhausted;
                    } else {
                        self.back.extend(rows);
                        self.back_done = exhausted;
                    }
                    done = exhausted;
                }
            }
        }
        // The range between the two ends is exhausted: what the other end fetched and
        // has not yet given out comes next, from its far side.
        let item = if ascending {
            self.front.pop_front().or_else(|| self.back.pop_back())
        } else {
            self.back.pop_front().or_else(|| self.front.pop_back())
        };
        item.map(Ok)
    }
}

fn buffer_empty(it: &PgIter, ascending: bool) -> bool {
    if ascending {
        it.front.is_empty()
    } else {
        it.back.is_empty()
    }
}

fn bound_bytes(b: &Bound<Value>) -> Vec<u8> {
    match b {
        Bound::Included(k) | Bound::Excluded(k) => k.to_vec(),
        Bound::Unbounded => Vec::new(),
    }
}

impl Iterator for PgIter {
    type Item = Result<(Value, Value), EngineError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.step(true)
    }
}

impl DoubleEndedIterator for PgIter {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.step(false)
    }
}
