//! Password hashing with argon2id (OWASP parameters: 19 MiB, 2 passes). Hashing is slow on
//! purpose, so it runs on the blocking pool, never on the async workers, and only through a
//! [`HashGate`]: a fixed number of hashes at once and a short queue, so a login flood costs
//! bounded memory and CPU and the rest is refused with 429 and `Retry-After`.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use zy_model::{t, Error};

fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash_now(password: &str) -> Result<String, Error> {
    let salt = SaltString::generate(&mut OsRng);
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::internal(e.to_string()))
}

fn verify_now(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| hasher().verify_password(password.as_bytes(), &h).is_ok())
        .unwrap_or(false)
}

/// Hashes outside any request (first-start bootstrap, demo data), on the blocking pool.
pub async fn hash(password: String) -> Result<String, Error> {
    tokio::task::spawn_blocking(move || hash_now(&password))
        .await
        .map_err(|e| Error::internal(e.to_string()))?
}

/// A hash of nothing in particular, verified against when the user does not exist, so a
/// wrong user name takes as long as a wrong password.
pub const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3Pv2SkHbwzLRlAlIZmYl4QzEnBKBd/cJ3xNtwAfvB2o";

/// At most `slots` hashes run at once (each holds 19 MiB); at most `queue` more wait, each
/// for at most `wait`; anything beyond is refused at once with 429.
pub struct HashGate {
    slots: Arc<Semaphore>,
    total: usize,
    waiting: AtomicUsize,
    queue: usize,
    wait: Duration,
}

/// A hashing slot, held until the hash it is used for ends.
pub struct Admission {
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl Admission {
    /// Runs `work` on the blocking pool. The slot goes with the work, so a request given
    /// up (timeout, client gone) still holds it until the hash ends.
    async fn run<T: Send + 'static>(
        self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Error> {
        tokio::task::spawn_blocking(move || {
            let out = work();
            drop(self);
            out
        })
        .await
        .map_err(|e| Error::internal(e.to_string()))
    }

    /// True when `password` matches `hash`. A malformed stored hash never matches.
    pub async fn verify(self, password: String, hash: String) -> Result<bool, Error> {
        self.run(move || verify_now(&password, &hash)).await
    }
}

/// Decrements the waiting count however the wait ends (served, timed out, cancelled).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl HashGate {
    pub fn new(slots: usize, queue: usize, wait: Duration) -> Self {
        HashGate {
            slots: Arc::new(Semaphore::new(slots.max(1))),
            total: slots.max(1),
            waiting: AtomicUsize::new(0),
            queue,
            wait,
        }
    }

    /// One hash per core at once, a queue of 32 per core (about a second of hashing, so
    /// clients retrying after `Retry-After: 1` keep the cores busy), waiting at most 2 s.
    pub fn for_this_machine() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self::new(cores, 32 * cores, Duration::from_secs(2))
    }

    fn busy() -> Error {
        Error::rate_limited(
            t!(
                "登录请求过多，请稍后重试",
                "too many sign-ins at once; please try again shortly"
            ),
            1,
        )
    }

    /// Waits (in the short queue) for a slot. A login takes its slot before it looks the
    /// user up, so a flood is refused before it costs database work too.
    pub async fn admit(&self) -> Result<Admission, Error> {
        if let Ok(slot) = self.slots.clone().try_acquire_owned() {
            return Ok(Admission { _slot: slot });
        }
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.queue {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(Self::busy());
        }
        let _waiting = Waiting(&self.waiting);
        match tokio::time::timeout(self.wait, self.slots.clone().acquire_owned()).await {
            Ok(Ok(slot)) => Ok(Admission { _slot: slot }),
            _ => Err(Self::busy()),
        }
    }

    pub async fn hash(&self, password: String) -> Result<String, Error> {
        self.admit().await?.run(move || hash_now(&password)).await?
    }

    pub async fn verify(&self, password: String, hash: String) -> Result<bool, Error> {
        self.admit().await?.verify(password, hash).await
    }

    /// Hashes running or waiting now (for `/metrics`).
    pub fn in_use(&self) -> usize {
        self.waiting.load(Ordering::SeqCst) + self.total - self.slots.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zy_model::ErrorCode;

    impl HashGate {
        async fn run<T: Send + 'static>(
            &self,
            work: impl FnOnce() -> T + Send + 'static,
        ) -> Result<T, Error> {
            self.admit().await?.run(work).await
        }
    }

    #[tokio::test]
    async fn hashes_verify_and_a_bad_stored_hash_never_matches() {
        let gate = HashGate::new(1, 1, Duration::from_secs(5));
        let h = gate.hash("Zhengyun-2026".into()).await.expect("ok");
        assert!(gate
            .verify("Zhengyun-2026".into(), h.clone())
            .await
            .expect("ok"));
        assert!(!gate.verify("wrong".into(), h).await.expect("ok"));
        assert!(!gate
            .verify("x".into(), "not a hash".into())
            .await
            .expect("ok"));
        assert!(!gate
            .verify("x".into(), DUMMY_HASH.into())
            .await
            .expect("ok"));
    }

    #[tokio::test]
    async fn beyond_slots_and_queue_is_refused_with_retry_after() {
        let gate = Arc::new(HashGate::new(1, 2, Duration::from_secs(30)));
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let rx = std::sync::Mutex::new(rx);
        // Hold the only slot until told to finish.
        let g = gate.clone();
        let holder = tokio::spawn(async move {
            g.run(move || {
                let _ = rx.lock().map(|r| r.recv());
            })
            .await
        });
        while gate.in_use() < 1 {
            tokio::task::yield_now().await;
        }
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let g = gate.clone();
                tokio::spawn(async move { g.run(|| 1).await })
            })
            .collect();
        while gate.in_use() < 3 {
            tokio::task::yield_now().await;
        }
        let refused = gate.run(|| 1).await.expect_err("refused");
        assert_eq!(refused.code, ErrorCode::RateLimited);
        assert_eq!(refused.retry_after(), Some(1));
        tx.send(()).expect("ok");
        holder.await.expect("ok").expect("ok");
        for w in waiters {
            assert_eq!(w.await.expect("ok").expect("ok"), 1);
        }
        assert_eq!(gate.in_use(), 0);
    }

    #[tokio::test]
    async fn a_queued_hash_gives_up_after_its_wait() {
        let gate = Arc::new(HashGate::new(1, 4, Duration::from_millis(50)));
        let g = gate.clone();
        let slow = tokio::spawn(async move {
            g.run(|| std::thread::sleep(Duration::from_millis(500)))
                .await
        });
        while gate.in_use() < 1 {
            tokio::task::yield_now().await;
        }
        let e = gate.run(|| 1).await.expect_err("refused");
        assert_eq!(e.code, ErrorCode::RateLimited);
        slow.await.expect("ok").expect("ok");
    }
}
