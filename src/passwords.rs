//! Agent passwords: argon2id hashes, and generated passwords for bootstrap.

use crate::domain::login;
use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct PasswordError(String);

pub fn hash(password: &str) -> Result<String, PasswordError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| PasswordError(e.to_string()))
}

pub fn verify(password: &str, stored_hash: &str) -> bool {
    PasswordHash::new(stored_hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Checks a login's password the way a server under load must: argon2 is
/// deliberately expensive (19 MiB and tens of milliseconds per check), so
/// at most one check per core runs at a time, off the async threads, and a
/// password that verified recently is recognised again from a keyed digest.
///
/// Mail clients log in often: Thunderbird keeps up to five connections per
/// account and reconnects after every idle timeout. Without the cache each of
/// those is a full argon2 run; with it, only the first login after start (or
/// after a password change, which changes the stored hash the cache is keyed
/// by) is. The digest is an HMAC under a key that lives only in this
/// process's memory, so the cache holds nothing an attacker could use
/// offline. Failed checks are never cached; the login throttle slows those.
pub struct Verifier {
    permits: tokio::sync::Semaphore,
    key: ring::hmac::Key,
    recent: std::sync::Mutex<std::collections::HashMap<String, ring::hmac::Tag>>,
}

/// Recently verified logins kept; past this the cache starts over.
const RECENT_LOGINS: usize = 10_000;

impl Verifier {
    fn new() -> Self {
        let rng = ring::rand::SystemRandom::new();
        let key = ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &rng).unwrap_or_else(|_| {
            ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &rand::random::<[u8; 32]>())
        });
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            permits: tokio::sync::Semaphore::new(cores),
            key,
            recent: Default::default(),
        }
    }

    /// The process-wide verifier (IMAP and submission logins share it).
    pub fn global() -> &'static Verifier {
        static VERIFIER: std::sync::LazyLock<Verifier> = std::sync::LazyLock::new(Verifier::new);
        &VERIFIER
    }

    pub async fn verify(&self, password: &str, stored_hash: &str) -> bool {
        if let Some(tag) = self.recent(stored_hash)
            && ring::hmac::verify(&self.key, password.as_bytes(), tag.as_ref()).is_ok()
        {
            return true;
        }
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        let (pass, hash) = (password.to_string(), stored_hash.to_string());
        let verified = tokio::task::spawn_blocking(move || verify(&pass, &hash))
            .await
            .unwrap_or(false);
        if verified {
            let tag = ring::hmac::sign(&self.key, password.as_bytes());
            if let Ok(mut recent) = self.recent.lock() {
                if recent.len() >= RECENT_LOGINS {
                    recent.clear();
                }
                recent.insert(stored_hash.to_string(), tag);
            }
        }
        verified
    }

    fn recent(&self, stored_hash: &str) -> Option<ring::hmac::Tag> {
        self.recent.lock().ok()?.get(stored_hash).copied()
    }
}

/// Failed logins, counted per (address, IP), per address and per IP (see
/// [`crate::domain::login`]), and the attempts each IP has in flight.
#[derive(Default)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<FailureKey, Failures>>,
    in_flight: Mutex<HashMap<IpAddr, Arc<tokio::sync::Semaphore>>>,
}

#[derive(Clone, PartialEq, Eq, Hash)]
enum FailureKey {
    Pair(String, IpAddr),
    Address(String),
    Ip(IpAddr),
}

#[derive(Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

/// Failures are forgotten after this long without another.
const FAILURE_MEMORY: Duration = Duration::from_secs(15 * 60);
/// Login attempts one IP may have checked at once; more wait their turn,
/// so guessing in parallel is no faster than guessing in a row.
const ATTEMPTS_IN_FLIGHT_PER_IP: usize = 4;

/// A place in an IP's queue of login attempts, held until the answer.
pub struct AttemptSlot {
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl LoginThrottle {
    /// Waits for one of the IP's attempt slots.
    pub async fn attempt(&self, ip: IpAddr) -> Option<AttemptSlot> {
        let semaphore = {
            let mut in_flight = self.in_flight.lock().ok()?;
            // Forget the IPs nobody is logging in from.
            in_flight.retain(|_, s| Arc::strong_count(s) > 1);
            Arc::clone(in_flight.entry(ip).or_insert_with(|| {
                Arc::new(tokio::sync::Semaphore::new(ATTEMPTS_IN_FLIGHT_PER_IP))
            }))
        };
        let permit = semaphore.acquire_owned().await.ok()?;
        Some(AttemptSlot { _permit: permit })
    }

    /// The failures that bear on an attempt of `address` from `ip`.
    pub fn failures(&self, address: &str, ip: IpAddr) -> login::Failures {
        let Ok(map) = self.failures.lock() else {
            return login::Failures::default();
        };
        let address = address.to_lowercase();
        let count = |key: FailureKey| {
            map.get(&key)
                .filter(|f| f.last.elapsed() < FAILURE_MEMORY)
                .map_or(0, |f| f.count)
        };
        login::Failures {
            pair: count(FailureKey::Pair(address.clone(), ip)),
            address: count(FailureKey::Address(address)),
            ip: count(FailureKey::Ip(ip)),
        }
    }

    pub fn login_failed(&self, address: &str, ip: IpAddr) {
        if let Ok(mut map) = self.failures.lock() {
            map.retain(|_, f| f.last.elapsed() < FAILURE_MEMORY);
            let address = address.to_lowercase();
            for key in [
                FailureKey::Pair(address.clone(), ip),
                FailureKey::Address(address),
                FailureKey::Ip(ip),
            ] {
                let entry = map.entry(key).or_insert(Failures {
                    count: 0,
                    last: Instant::now(),
                });
                entry.count += 1;
                entry.last = Instant::now();
            }
        }
    }

    /// The owner got in from there: that pair starts clean. The address's
    /// and the IP's counts stay, for whoever guesses elsewhere.
    pub fn login_succeeded(&self, address: &str, ip: IpAddr) {
        if let Ok(mut map) = self.failures.lock() {
            map.remove(&FailureKey::Pair(address.to_lowercase(), ip));
        }
    }
}

/// A hash no password matches, checked for unknown users so that they cost
/// what a known user costs (no telling which addresses exist by timing).
pub fn dummy_hash() -> Option<&'static str> {
    static DUMMY: std::sync::LazyLock<Option<String>> =
        std::sync::LazyLock::new(|| hash(&generate()).ok());
    DUMMY.as_deref()
}

/// A password to print once: 20 characters without look-alikes.
pub fn generate() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    (0..20)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_only_their_password() {
        let hashed = hash("correct horse").unwrap_or_default();
        assert!(hashed.starts_with("$argon2id$"));
        assert!(verify("correct horse", &hashed));
        assert!(!verify("wrong horse", &hashed));
        assert!(!verify("correct horse", "not a hash"));
    }

    #[tokio::test]
    async fn the_verifier_accepts_only_the_password_also_when_cached() {
        let hashed = hash("correct horse").unwrap_or_default();
        let verifier = Verifier::new();
        assert!(!verifier.verify("wrong horse", &hashed).await);
        assert!(verifier.verify("correct horse", &hashed).await);
        // Now cached: the right password still passes, a wrong one does
        // not, and another hash (a changed password) is not covered.
        assert!(verifier.verify("correct horse", &hashed).await);
        assert!(!verifier.verify("wrong horse", &hashed).await);
        let changed = hash("battery staple").unwrap_or_default();
        assert!(!verifier.verify("correct horse", &changed).await);
        assert!(verifier.verify("battery staple", &changed).await);
    }

    #[test]
    fn generated_passwords_are_long_and_differ() {
        let (a, b) = (generate(), generate());
        assert_eq!(a.len(), 20);
        assert_ne!(a, b);
    }
}
