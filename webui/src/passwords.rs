//! Password hashing and checking (argon2id: about 19 MiB of memory each) on a few dedicated
//! threads behind a semaphore, so a flood of sign-ins waits in line instead of exhausting
//! memory; an unknown address costs the same work as a known one.

use argon2::password_hash::phc::{Output, PasswordHash};
use argon2::password_hash::PasswordHasher;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Longer passwords are refused: hashing cost must not grow with what a stranger posts.
pub const MAX_PASSWORD: usize = 1024;
/// How long a sign-in waits for a hashing thread before it is told to come back.
const QUEUE_WAIT: Duration = Duration::from_secs(10);
/// Stored hashes asking for more argon2 memory than this (in KiB blocks) are not checked.
const MAX_BLOCKS: usize = 256 * 1024;

/// Work for a hashing thread, given that thread's argon2 memory. Each thread allocates it
/// once and reuses it: argon2's own 19 MiB allocation per check, freed between small
/// allocations of the server, fragments the heap, and measured it grew by about 12 MiB
/// per check, even one at a time.
type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

/// The server is hashing as many passwords as it allows; try again shortly.
#[derive(Debug, Clone, Copy)]
pub struct Busy;

pub struct Passwords {
    /// One permit per thread: a job is only handed over with a permit, which it holds
    /// until it is done, so no job ever queues behind another inside the pool (even if
    /// the request that asked for it has gone).
    permits: Arc<Semaphore>,
    threads: usize,
    jobs: OnceLock<mpsc::Sender<Job>>,
}

impl Default for Passwords {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Passwords::new(cores.clamp(2, 4))
    }
}

impl Passwords {
    /// At most `threads` hashes at a time (the threads start on first use).
    pub fn new(threads: usize) -> Passwords {
        let threads = threads.max(1);
        Passwords {
            permits: Arc::new(Semaphore::new(threads)),
            threads,
            jobs: OnceLock::new(),
        }
    }

    /// Whether `password` matches the stored PHC hash; with no hash (an unknown address,
    /// or no password set) a dummy hash is checked, so the answer takes as long.
    pub async fn verify(&self, password: String, stored: Option<String>) -> Result<bool, Busy> {
        self.run(move |memory| {
            let (hash, real) = match &stored {
                Some(h) => (h.as_str(), true),
                None => (dummy_hash(), false),
            };
            password_matches(password.as_bytes(), hash, memory) && real
        })
        .await
    }

    /// A new hash (argon2id, random salt).
    pub async fn hash(&self, password: String) -> Result<Option<String>, Busy> {
        self.run(move |_| hash_password(&password)).await
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, Busy> {
        let permit: OwnedSemaphorePermit =
            tokio::time::timeout(QUEUE_WAIT, self.permits.clone().acquire_owned())
                .await
                .map_err(|_| Busy)?
                .map_err(|_| Busy)?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |memory| {
            let _ = tx.send(work(memory));
            drop(permit);
        });
        self.sender().send(job).map_err(|_| Busy)?;
        rx.await.map_err(|_| Busy)
    }

    fn sender(&self) -> &mpsc::Sender<Job> {
        self.jobs.get_or_init(|| {
            let (tx, rx) = mpsc::channel::<Job>();
            let rx = Arc::new(Mutex::new(rx));
            for i in 0..self.threads {
                let rx = rx.clone();
                let spawned = std::thread::Builder::new()
                    .name(format!("password-{i}"))
                    .spawn(move || {
                        let mut memory = Vec::new();
                        loop {
                            let next = match rx.lock() {
                                Ok(jobs) => jobs.recv(),
                                Err(_) => return,
                            };
                            let Ok(job) = next else { return };
                            let work = std::panic::AssertUnwindSafe(|| job(&mut memory));
                            if std::panic::catch_unwind(work).is_err() {
                                tracing::error!("password hashing panicked");
                            }
                        }
                    });
                if let Err(e) = spawned {
                    tracing::error!(error = %e, "cannot start a password hashing thread");
                }
            }
            tx
        })
    }
}

/// Hashes a new password (argon2id, random salt). Blocking: callers in the server go
/// through `Passwords`.
pub fn hash_password(password: &str) -> Option<String> {
    let hash: PasswordHash = Argon2::default().hash_password(password.as_bytes()).ok()?;
    Some(hash.to_string())
}

/// Whether `password` matches the stored PHC string, computed in `memory` (grown to the
/// size the hash's parameters ask, once). The outputs are compared in constant time.
fn password_matches(password: &[u8], stored: &str, memory: &mut Vec<Block>) -> bool {
    let Ok(hash) = stored.parse::<PasswordHash>() else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(hash.algorithm.as_str()) else {
        return false;
    };
    let version = match hash.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let Ok(params) = Params::try_from(&hash) else {
        return false;
    };
    let blocks = params.block_count();
    if blocks > MAX_BLOCKS {
        tracing::error!(blocks, "a stored password hash asks for too much memory");
        return false;
    }
    if memory.len() < blocks {
        memory.resize(blocks, Block::new());
    }
    let mut out = vec![0u8; expected.len()];
    let computed = Argon2::new(algorithm, version, params).hash_password_into_with_memory(
        password,
        salt,
        &mut out,
        &mut memory[..blocks],
    );
    computed.is_ok() && Output::new(&out).is_ok_and(|o| &o == expected)
}

/// A hash of a random password with today's parameters, made once.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let random =
            data_encoding::BASE32_NOPAD.encode(&postdesk_desk::model::random_bytes::<16>());
        hash_password(&random).unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn right_wrong_and_unknown() {
        let p = Passwords::new(2);
        let hash = p
            .hash("correct horse".into())
            .await
            .expect("not busy")
            .expect("hashed");
        assert_eq!(
            p.verify("correct horse".into(), Some(hash.clone()))
                .await
                .ok(),
            Some(true)
        );
        assert_eq!(p.verify("wrong".into(), Some(hash)).await.ok(), Some(false));
        assert_eq!(p.verify("".into(), None).await.ok(), Some(false));
        assert_eq!(
            p.verify("x".into(), Some("not a hash".into())).await.ok(),
            Some(false)
        );
    }

    #[test]
    fn other_parameters_are_checked_in_the_same_memory() {
        let params = Params::new(64, 3, 2, Some(16)).expect("params");
        let old = Argon2::new(Algorithm::Argon2i, Version::V0x10, params)
            .hash_password(b"legacy password")
            .expect("hash")
            .to_string();
        let new = hash_password("current password").expect("hash");
        let mut memory = Vec::new();
        assert!(password_matches(b"legacy password", &old, &mut memory));
        assert!(!password_matches(b"legacy passwore", &old, &mut memory));
        assert!(password_matches(b"current password", &new, &mut memory));
        assert!(password_matches(b"legacy password", &old, &mut memory));
        assert_eq!(memory.len(), Params::DEFAULT_M_COST as usize);
    }

    #[tokio::test]
    async fn never_more_at_once_than_threads() {
        let p = Arc::new(Passwords::new(2));
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (p, running, most) = (p.clone(), running.clone(), most.clone());
                tokio::spawn(async move {
                    p.run(move |_| {
                        use std::sync::atomic::Ordering::SeqCst;
                        let now = running.fetch_add(1, SeqCst) + 1;
                        most.fetch_max(now, SeqCst);
                        std::thread::sleep(Duration::from_millis(20));
                        running.fetch_sub(1, SeqCst);
                    })
                    .await
                })
            })
            .collect();
        for t in tasks {
            assert!(t.await.expect("task").is_ok());
        }
        assert_eq!(most.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
