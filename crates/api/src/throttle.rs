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

/// Whether `ip` is this machine's loopback, IPv4-mapped forms included.
pub(crate) fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

impl Subject {
    /// What a log-in from `source` as `name` counts against: the name and the address; from
    /// loopback only the address, so that failures elsewhere cannot lock the local
    /// administrator out.
    pub(crate) fn of(name: Self, source: IpAddr) -> Vec<Self> {
        if is_loopback(source) {
            vec![Self::address(source)]
        } else {
            vec![name, Self::address(source)]
        }
    }

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
    /// Attempts begun ([`LoginThrottle::begin`]) whose outcome is not known yet: they count
    /// against the allowance, so a burst of parallel guesses gets no more than a sequence.
    in_flight: u32,
    locked_until: Option<Instant>,
    /// Until when the record matters: after it, the subject starts afresh.
    keep_until: Instant,
}

/// A log-in attempt under way ([`LoginThrottle::begin`]): settle it with
/// [`Attempt::failed`] or [`Attempt::succeeded`]; dropped unsettled (the client went away
/// mid-check), it gives its place back.
#[derive(Debug)]
pub(crate) struct Attempt<'a> {
    throttle: &'a LoginThrottle,
    subjects: Vec<Subject>,
    settled: bool,
}

impl Attempt<'_> {
    /// It failed; returns the lock-out it started, if any.
    pub(crate) fn failed(mut self) -> Option<Duration> {
        self.settled = true;
        self.throttle
            .failed_at(&self.subjects, Instant::now(), true)
    }

    /// It succeeded: its subjects start afresh.
    pub(crate) fn succeeded(mut self) {
        self.settled = true;
        self.throttle.succeeded(&self.subjects);
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.throttle.abandoned(&self.subjects);
        }
    }
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
        self.failed_at(subjects, Instant::now(), false)
    }

    /// Starts an attempt whose check takes a while (a password hash): `Err(wait)` while a
    /// subject is locked out, or while its failures and the attempts still running use up
    /// its allowance.
    pub(crate) fn begin(&self, subjects: Vec<Subject>) -> Result<Attempt<'_>, Duration> {
        self.begin_at(&subjects, Instant::now())?;
        Ok(Attempt {
            throttle: self,
            subjects,
            settled: false,
        })
    }

    fn begin_at(&self, subjects: &[Subject], now: Instant) -> Result<(), Duration> {
        self.check_at(subjects, now)?;
        let max = self.policy.max_attempts;
        if max == 0 {
            return Ok(());
        }
        let mut records = self.records.lock();
        // What is left of the allowance runs at once; past a lock-out, one at a time.
        let busy = subjects.iter().any(|subject| {
            records.get(subject).is_some_and(|record| {
                let failures = if record.keep_until > now {
                    record.failures
                } else {
                    0
                };
                record.in_flight >= max.saturating_sub(failures).max(1)
            })
        });
        if busy {
            drop(records);
            self.throttled.fetch_add(1, Ordering::Relaxed);
            return Err(Duration::from_secs(1));
        }
        for subject in subjects {
            self.record(&mut records, subject, now).in_flight += 1;
        }
        Ok(())
    }

    /// An attempt begun ended without an outcome (the request was dropped).
    fn abandoned(&self, subjects: &[Subject]) {
        let mut records = self.records.lock();
        for subject in subjects {
            if let Some(record) = records.get_mut(subject) {
                record.in_flight = record.in_flight.saturating_sub(1);
            }
        }
    }

    fn failed_at(&self, subjects: &[Subject], now: Instant, begun: bool) -> Option<Duration> {
        self.failures.fetch_add(1, Ordering::Relaxed);
        let policy = self.policy;
        if policy.max_attempts == 0 {
            return None;
        }
        let mut records = self.records.lock();
        let mut longest = None;
        for subject in subjects {
            let record = self.record(&mut records, subject, now);
            if record.keep_until <= now {
                record.failures = 0;
            }
            if begun {
                record.in_flight = record.in_flight.saturating_sub(1);
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

    /// The record of `subject`, made (room made first, at the bound) if there is none: no
    /// failures, kept until the policy forgets it.
    fn record<'r>(
        &self,
        records: &'r mut HashMap<Subject, Record>,
        subject: &Subject,
        now: Instant,
    ) -> &'r mut Record {
        if !records.contains_key(subject) && records.len() >= MAX_TRACKED {
            self.make_room(records, now);
        }
        records.entry(subject.clone()).or_insert(Record {
            failures: 0,
            in_flight: 0,
            locked_until: None,
            keep_until: now + self.policy.forget_after,
        })
    }

    /// Drops records that no longer matter; if none, the one kept for the shortest time,
    /// preferring one that is not locked out (a flood of new names must not free `admin`).
    fn make_room(&self, records: &mut HashMap<Subject, Record>, now: Instant) {
        records.retain(|_, record| record.keep_until > now || record.in_flight > 0);
        if records.len() < MAX_TRACKED {
            return;
        }
        let oldest = records
            .iter()
            .min_by_key(|(_, record)| {
                (
                    record.locked_until.is_some_and(|until| until > now),
                    record.keep_until,
                )
            })
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
            assert_eq!(t.failed_at(&admin(), start, false), None);
            assert_eq!(t.check_at(&admin(), start), Ok(()));
        }
        assert_eq!(
            t.failed_at(&admin(), start, false),
            Some(Duration::from_secs(10))
        );
        assert_eq!(t.check_at(&admin(), start), Err(Duration::from_secs(10)));
        let after = start + Duration::from_secs(10);
        assert_eq!(t.check_at(&admin(), after), Ok(()));
        assert_eq!(
            t.failed_at(&admin(), after, false),
            Some(Duration::from_secs(20))
        );
        let late = after + Duration::from_secs(3600);
        assert_eq!(t.check_at(&admin(), late), Ok(()));
        // Forgotten after the lock ended plus five minutes: the count starts again.
        assert_eq!(t.failed_at(&admin(), late, false), None);
        assert_eq!(t.throttled.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn parallel_attempts_get_no_more_than_the_allowance() {
        let t = throttle();
        let now = Instant::now();
        for _ in 0..5 {
            assert_eq!(t.begin_at(&admin(), now), Ok(()));
        }
        // Five are running: the sixth waits, whatever their outcome will be.
        assert_eq!(t.begin_at(&admin(), now), Err(Duration::from_secs(1)));
        for _ in 0..4 {
            assert_eq!(t.failed_at(&admin(), now, true), None);
        }
        assert_eq!(
            t.failed_at(&admin(), now, true),
            Some(Duration::from_secs(10))
        );
        assert!(t.begin_at(&admin(), now).is_err());
        // A success frees the subjects for the next attempt.
        let later = now + Duration::from_secs(10);
        assert_eq!(t.begin_at(&admin(), later), Ok(()));
        t.succeeded(&admin());
        assert_eq!(t.begin_at(&admin(), later), Ok(()));
    }

    #[test]
    fn an_attempt_dropped_unsettled_gives_its_place_back() {
        let t = throttle();
        let mut running: Vec<Attempt<'_>> =
            (0..5).map(|_| t.begin(admin()).expect("allowed")).collect();
        assert!(t.begin(admin()).is_err());
        running.pop();
        let sixth = t.begin(admin()).expect("a place came back");
        sixth.succeeded();
        drop(running);
        assert_eq!(t.records.lock().len(), 0, "settled by the success");
    }

    #[test]
    fn from_loopback_only_the_address_counts() {
        let user = Subject::User("admin".into());
        assert_eq!(
            Subject::of(user.clone(), "127.0.0.1".parse().expect("ip")).len(),
            1
        );
        assert_eq!(Subject::of(user, "192.0.2.1".parse().expect("ip")).len(), 2);
    }

    #[test]
    fn the_lock_stops_doubling_at_sixty_four_times() {
        let t = throttle();
        let mut now = Instant::now();
        let mut locks = Vec::new();
        for _ in 0..12 {
            // Each attempt just after the previous lock-out ended.
            let lock = t.failed_at(&admin(), now, false);
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
            t.failed_at(&from(&format!("user{i}")), now, false);
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
            t.failed_at(&admin(), now, false);
        }
        t.succeeded(&admin());
        assert_eq!(t.failed_at(&admin(), now, false), None);
        let off = LoginThrottle::new(Policy {
            max_attempts: 0,
            ..t.policy
        });
        for _ in 0..50 {
            assert_eq!(off.failed_at(&admin(), now, false), None);
        }
        assert_eq!(off.check_at(&admin(), now), Ok(()));
    }

    #[test]
    fn at_the_bound_the_oldest_record_is_forgotten() {
        let t = throttle();
        let now = Instant::now();
        for i in 0..MAX_TRACKED {
            let at = now + Duration::from_millis(u64::try_from(i).expect("small"));
            t.failed_at(&[Subject::User(format!("u{i}"))], at, false);
        }
        let later = now + Duration::from_secs(1);
        t.failed_at(&[Subject::User("new".into())], later, false);
        let records = t.records.lock();
        assert_eq!(records.len(), MAX_TRACKED);
        assert!(!records.contains_key(&Subject::User("u0".into())));
        assert!(records.contains_key(&Subject::User("new".into())));
        drop(records);
        assert_eq!(t.forgotten.load(Ordering::Relaxed), 1);
    }
}
