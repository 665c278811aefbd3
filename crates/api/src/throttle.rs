//! Login throttling: failed log-ins (dashboard passwords, API key secrets) lock out the user
//! or key and the source address they came from, for a time that doubles with each further
//! failure. A locked subject gets 429 with `Retry-After` before its credentials are even
//! checked, so guessing costs the guesser time and the server no hashing.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use parking_lot::Mutex;

/// Subjects followed at once. At the bound, the one whose last failure is oldest is
/// forgotten (counted in [`LoginThrottle::forgotten`]): an attacker spreading guesses over
/// many names or addresses can push out old records, never grow memory.
const MAX_TRACKED: usize = 10_000;

/// A lock-out doubles at most this many times (10 s becomes 640 s, about EMQX's 10 minutes).
const MAX_DOUBLINGS: u32 = 6;

/// What failures are counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Subject {
    /// A dashboard user name (whether or not it exists).
    User(String),
    /// An API key id.
    ApiKey(String),
    /// A source address; IPv6 by its /64, which one host usually holds whole.
    Address(IpAddr),
}

impl Subject {
    /// The subject for a source address.
    pub(crate) fn address(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::Address(IpAddr::V4(v4)),
                None => {
                    let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                    Self::Address(IpAddr::V6(prefix.into()))
                }
            },
            v4 @ IpAddr::V4(_) => Self::Address(v4),
        }
    }
}

/// How failures are answered.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy {
    /// Failures allowed before the first lock-out; 0 turns throttling off.
    pub(crate) max_attempts: u32,
    /// The first lock-out.
    pub(crate) lock: Duration,
    /// Failures are forgotten this long after the last one (or the end of its lock-out).
    pub(crate) forget_after: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    locked_until: Option<Instant>,
    /// Until when the record matters: after it, the subject starts afresh.
    keep_until: Instant,
}

/// Failed log-ins by subject.
#[derive(Debug)]
pub(crate) struct LoginThrottle {
    policy: Policy,
    /// Short critical sections (look up, update, rarely prune); never held across `.await`.
    records: Mutex<HashMap<Subject, Record>>,
    /// Failed log-ins.
    pub(crate) failures: AtomicU64,
    /// Attempts answered 429 while their subject was locked out.
    pub(crate) throttled: AtomicU64,
    /// Records forgotten early because [`MAX_TRACKED`] subjects were followed.
    pub(crate) forgotten: AtomicU64,
}

impl LoginThrottle {
    pub(crate) fn new(policy: Policy) -> Self {
        Self {
            policy,
            records: Mutex::default(),
            failures: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            forgotten: AtomicU64::new(0),
        }
    }

    /// `Err(wait)` while any of `subjects` is locked out: how long until it may try again.
    pub(crate) fn check(&self, subjects: &[Subject]) -> Result<(), Duration> {
        self.check_at(subjects, Instant::now())
    }

    fn check_at(&self, subjects: &[Subject], now: Instant) -> Result<(), Duration> {
        let records = self.records.lock();
        let wait = subjects
            .iter()
            .filter_map(|subject| records.get(subject)?.locked_until)
            .filter(|until| *until > now)
            .map(|until| until - now)
            .max();
        drop(records);
        match wait {
            Some(wait) => {
                self.throttled.fetch_add(1, Ordering::Relaxed);
                Err(wait)
            }
            None => Ok(()),
        }
    }

    /// Counts a failure against each subject; returns the lock-out it started, if any.
    pub(crate) fn failed(&self, subjects: &[Subject]) -> Option<Duration> {
        self.failed_at(subjects, Instant::now())
    }

    fn failed_at(&self, subjects: &[Subject], now: Instant) -> Option<Duration> {
        self.failures.fetch_add(1, Ordering::Relaxed);
        let policy = self.policy;
        if policy.max_attempts == 0 {
            return None;
        }
        let mut records = self.records.lock();
        let mut longest = None;
        for subject in subjects {
            if !records.contains_key(subject) && records.len() >= MAX_TRACKED {
                self.make_room(&mut records, now);
            }
            let record = records.entry(subject.clone()).or_insert(Record {
                failures: 0,
                locked_until: None,
                keep_until: now,
            });
            if record.keep_until <= now {
                record.failures = 0;
            }
            record.failures += 1;
            let mut keep_from = now;
            if let Some(over) = record.failures.checked_sub(policy.max_attempts) {
                let lock = policy.lock * 2u32.pow(over.min(MAX_DOUBLINGS));
                record.locked_until = Some(now + lock);
                keep_from = now + lock;
                longest = longest.max(Some(lock));
            }
            record.keep_until = keep_from + policy.forget_after;
        }
        longest
    }

    /// A successful log-in: its subjects start afresh.
    pub(crate) fn succeeded(&self, subjects: &[Subject]) {
        let mut records = self.records.lock();
        for subject in subjects {
            records.remove(subject);
        }
    }

    /// Drops records that no longer matter; if none, the one kept for the shortest time.
    fn make_room(&self, records: &mut HashMap<Subject, Record>, now: Instant) {
        records.retain(|_, record| record.keep_until > now);
        if records.len() < MAX_TRACKED {
            return;
        }
        let oldest = records
            .iter()
            .min_by_key(|(_, record)| record.keep_until)
            .map(|(subject, _)| subject.clone());
        if let Some(subject) = oldest {
            records.remove(&subject);
            self.forgotten.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> LoginThrottle {
        LoginThrottle::new(Policy {
            max_attempts: 5,
            lock: Duration::from_secs(10),
            forget_after: Duration::from_secs(300),
        })
    }

    fn admin() -> Vec<Subject> {
        vec![
            Subject::User("admin".into()),
            Subject::address("192.0.2.9".parse().expect("ip")),
        ]
    }

    #[test]
    fn the_fifth_failure_locks_and_each_further_one_doubles_the_lock() {
        let t = throttle();
        let start = Instant::now();
        for _ in 0..4 {
            assert_eq!(t.failed_at(&admin(), start), None);
            assert_eq!(t.check_at(&admin(), start), Ok(()));
        }
        assert_eq!(t.failed_at(&admin(), start), Some(Duration::from_secs(10)));
        assert_eq!(t.check_at(&admin(), start), Err(Duration::from_secs(10)));
        let after = start + Duration::from_secs(10);
        assert_eq!(t.check_at(&admin(), after), Ok(()));
        assert_eq!(t.failed_at(&admin(), after), Some(Duration::from_secs(20)));
        let late = after + Duration::from_secs(3600);
        assert_eq!(t.check_at(&admin(), late), Ok(()));
        // Forgotten after the lock ended plus five minutes: the count starts again.
        assert_eq!(t.failed_at(&admin(), late), None);
        assert_eq!(t.throttled.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn the_lock_stops_doubling_at_sixty_four_times() {
        let t = throttle();
        let mut now = Instant::now();
        let mut locks = Vec::new();
        for _ in 0..12 {
            // Each attempt just after the previous lock-out ended.
            let lock = t.failed_at(&admin(), now);
            now += lock.unwrap_or_default() + Duration::from_secs(1);
            locks.extend(lock.map(|d| d.as_secs()));
        }
        assert_eq!(locks, [10, 20, 40, 80, 160, 320, 640, 640]);
    }

    #[test]
    fn an_address_is_locked_whichever_user_it_tries() {
        let t = throttle();
        let now = Instant::now();
        let from = |user: &str| {
            vec![
                Subject::User(user.into()),
                Subject::address("2001:db8::1".parse().expect("ip")),
            ]
        };
        for i in 0..5 {
            t.failed_at(&from(&format!("user{i}")), now);
        }
        // Another host of the same /64 is the same subject.
        let neighbour = vec![
            Subject::User("admin".into()),
            Subject::address("2001:db8::2".parse().expect("ip")),
        ];
        assert!(t.check_at(&neighbour, now).is_err());
        assert_eq!(t.check_at(&admin(), now), Ok(()));
    }

    #[test]
    fn a_success_clears_and_zero_attempts_turns_it_off() {
        let t = throttle();
        let now = Instant::now();
        for _ in 0..4 {
            t.failed_at(&admin(), now);
        }
        t.succeeded(&admin());
        assert_eq!(t.failed_at(&admin(), now), None);
        let off = LoginThrottle::new(Policy {
            max_attempts: 0,
            ..t.policy
        });
        for _ in 0..50 {
            assert_eq!(off.failed_at(&admin(), now), None);
        }
        assert_eq!(off.check_at(&admin(), now), Ok(()));
    }

    #[test]
    fn at_the_bound_the_oldest_record_is_forgotten() {
        let t = throttle();
        let now = Instant::now();
        for i in 0..MAX_TRACKED {
            let at = now + Duration::from_millis(u64::try_from(i).expect("small"));
            t.failed_at(&[Subject::User(format!("u{i}"))], at);
        }
        let later = now + Duration::from_secs(1);
        t.failed_at(&[Subject::User("new".into())], later);
        let records = t.records.lock();
        assert_eq!(records.len(), MAX_TRACKED);
        assert!(!records.contains_key(&Subject::User("u0".into())));
        assert!(records.contains_key(&Subject::User("new".into())));
        drop(records);
        assert_eq!(t.forgotten.load(Ordering::Relaxed), 1);
    }
}
