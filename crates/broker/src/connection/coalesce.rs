//! Write coalescing: a connection whose client streams holds its small writes for a few
//! tens of microseconds, gathering the acknowledgements and deliveries that come meanwhile
//! into one write.
//!
//! A client that keeps many messages in flight (a publish window, as rumqttc's and most
//! load tools') otherwise gets one small TCP segment per packet or two the broker reads.
//! Each segment costs the client a wake-up and a read, and on a shared machine the
//! broker's segments contend with the client's own sends for the client's socket lock:
//! measured with mqttwrk, that made the client, not the broker, the bottleneck.
//!
//! Only a buffer of several packets on a connection that wrote moments ago is held: it
//! answers a burst or carries deliveries of a busy topic, so the client streams. A client
//! that waits for each answer before it sends again gets one packet at a time and never
//! waits for a hold; a connection that writes now and then never spins its worker waiting.
//! Nor is a client whose in-flight window is full held: what would come next waits for its
//! acknowledgements, which wait for this write.
//!
//! Answers to the client's own publishes (PUBACK, PUBREC, PUBCOMP) are what its publish
//! window waits for. Holding them pays only when the window is wide: the client keeps
//! sending meanwhile, and one segment frees much of its window (mqttwrk, window 100:
//! +65% for a lone publisher). A narrow window (paho's 10–20) would sit full through every
//! hold (measured: a quarter of the rate). So a connection's first holds learn how many
//! answers its client leaves outstanding, and later holds keep answers only for a client
//! that left [`WIDE_WINDOW`] or more, and only until half of that many are buffered. A
//! buffer that carries deliveries and an answer follows the answers' rule: the answer is
//! what the client may be waiting for.
//!
//! A buffer that goes to wait for the disk (its acknowledgements promise what the journal
//! has not yet written) leaves at once, ending any hold under way.
//!
//! Time is the wall clock (not tokio's, which a paused test clock would stop while the
//! holding connection keeps the runtime busy).

use std::time::{Duration, Instant};

/// Packets a buffer needs before it is held.
const MIN_PACKETS: usize = 2;
/// A connection streams while its writes come less than this many windows apart.
const STREAMING: u32 = 10;
/// Holds of answers that learn the client's publish window, whatever it is.
const LEARNING_HOLDS: u32 = 8;
/// The fewest answers a client must have left outstanding for its answers to be held.
const WIDE_WINDOW: usize = 32;

/// A connection's coalescing state.
#[derive(Debug)]
pub(super) struct Coalesce {
    /// How long a write may be held; zero: never.
    window: Duration,
    /// Bytes at which the buffer goes out at once.
    max_bytes: usize,
    /// When the hold under way began.
    since: Option<Instant>,
    /// When the buffer last went out.
    last_write: Option<Instant>,
    /// The most answers to the client's publishes buffered at once: a lower bound of its
    /// publish window.
    answers_seen: usize,
    /// Holds of a buffer with answers that have ended (counted up to [`LEARNING_HOLDS`]).
    answer_holds: u32,
}

/// The write buffer as the connection's loop sees it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pending {
    /// Bytes buffered.
    pub(super) bytes: usize,
    /// Packets buffered.
    pub(super) packets: usize,
    /// The client's in-flight window is full: nothing more can be delivered until it
    /// acknowledges what this write carries.
    pub(super) window_full: bool,
    /// Answers to the client's publishes buffered (PUBACK, PUBREC, PUBCOMP).
    pub(super) answers: usize,
    /// The buffer goes to wait for the disk: it leaves now, and a hold under way ends.
    pub(super) waits_for_disk: bool,
}

impl Coalesce {
    /// Holds writes up to `window`, and never a buffer of `max_bytes` or more.
    pub(super) const fn new(window: Duration, max_bytes: usize) -> Self {
        Self {
            window,
            max_bytes,
            since: None,
            last_write: None,
            answers_seen: 0,
            answer_holds: 0,
        }
    }

    /// Whether the buffer waits a little longer (the caller then lets the runtime run the
    /// other ready tasks, reads what has arrived, and asks again). Once it says no, the
    /// buffer goes out and the next hold starts afresh.
    pub(super) fn hold(&mut self, pending: Pending, now: Instant) -> bool {
        self.answers_seen = self.answers_seen.max(pending.answers);
        let held = !self.window.is_zero()
            && pending.bytes < self.max_bytes
            && !pending.window_full
            && !pending.waits_for_disk
            && self.may_hold_answers(pending.answers)
            && match self.since {
                Some(since) => now.duration_since(since) < self.window,
                None => pending.packets >= MIN_PACKETS && self.streaming(now),
            };
        self.since = match (held, self.since) {
            (false, since) => {
                if since.is_some() && pending.answers > 0 {
                    self.answer_holds = (self.answer_holds + 1).min(LEARNING_HOLDS);
                }
                self.last_write = Some(now);
                None
            }
            (true, since) => Some(since.unwrap_or(now)),
        };
        held
    }

    /// Whether a buffer with `answers` may wait: always while the connection learns its
    /// client's window, then only for a wide window and while under half of it is buffered.
    fn may_hold_answers(&self, answers: usize) -> bool {
        answers == 0
            || self.answer_holds < LEARNING_HOLDS
            || (self.answers_seen >= WIDE_WINDOW && answers * 2 < self.answers_seen)
    }

    /// Whether the connection wrote within [`STREAMING`] windows: only a busy connection
    /// waits (and spins its worker) for more.
    fn streaming(&self, now: Instant) -> bool {
        self.last_write
            .is_some_and(|at| now.duration_since(at) < self.window * STREAMING)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_micros(100);

    fn pending(bytes: usize, packets: usize) -> Pending {
        Pending {
            bytes,
            packets,
            window_full: false,
            answers: 0,
            waits_for_disk: false,
        }
    }

    /// A coalescer whose connection has just written.
    fn streaming(now: Instant) -> Coalesce {
        let mut coalesce = Coalesce::new(WINDOW, 1024);
        assert!(
            !coalesce.hold(pending(8, 2), now),
            "a first write goes at once"
        );
        coalesce
    }

    #[test]
    fn a_burst_is_held_for_the_window_then_the_next_one_starts_afresh() {
        let start = Instant::now();
        let mut coalesce = streaming(start);
        assert!(coalesce.hold(pending(8, 2), start), "two answers: held");
        assert!(coalesce.hold(pending(40, 10), start + WINDOW / 2));
        assert!(
            !coalesce.hold(pending(40, 10), start + WINDOW),
            "the window has passed"
        );
        let later = start + WINDOW * 3;
        assert!(coalesce.hold(pending(8, 2), later), "a new hold");
        assert!(
            coalesce.hold(pending(8, 2), later + WINDOW / 2),
            "timed from its own start"
        );
    }

    #[test]
    fn a_single_answer_a_large_buffer_or_a_full_window_goes_at_once() {
        let now = Instant::now();
        let mut coalesce = Coalesce::new(WINDOW, 1024);
        assert!(
            !coalesce.hold(pending(4, 1), now),
            "a client waiting for each answer"
        );
        assert!(!coalesce.hold(pending(1024, 20), now));
        let full = Pending {
            window_full: true,
            ..pending(400, 5)
        };
        assert!(!coalesce.hold(full, now));
        assert!(coalesce.hold(pending(400, 5), now));
        assert!(
            !coalesce.hold(full, now),
            "a hold under way ends when the window fills"
        );
    }

    /// A coalescer that has learned its client's window from holds of `answers`.
    fn learned(answers: usize, start: Instant) -> Coalesce {
        let mut coalesce = streaming(start);
        let answer = |answers| Pending {
            answers,
            ..pending(4 * answers, answers)
        };
        for i in 0..LEARNING_HOLDS {
            let at = start + WINDOW * (2 * i + 1);
            assert!(coalesce.hold(answer(2), at), "learning: hold {i} held");
            assert!(coalesce.hold(answer(answers), at + WINDOW / 2));
            assert!(!coalesce.hold(answer(answers), at + WINDOW));
        }
        coalesce
    }

    #[test]
    fn answers_are_held_only_for_a_client_with_a_wide_window() {
        let start = Instant::now();
        let at = start + WINDOW * (2 * LEARNING_HOLDS + 1);
        let answers = |answers| Pending {
            answers,
            ..pending(4 * answers, answers)
        };
        let mut narrow = learned(10, start);
        assert!(
            !narrow.hold(answers(2), at),
            "a window of 10 would sit full"
        );
        assert!(narrow.hold(pending(160, 2), at), "deliveries still wait");

        assert!(
            !learned(31, start).hold(answers(2), at),
            "31 outstanding is narrow"
        );
        assert!(learned(32, start).hold(answers(2), at), "32 is wide");

        let mut wide = learned(100, start);
        assert!(wide.hold(answers(10), at), "a window of 100 keeps sending");
        assert!(wide.hold(answers(49), at + WINDOW / 4));
        assert!(
            !wide.hold(answers(50), at + WINDOW / 2),
            "half the window is buffered"
        );
    }

    #[test]
    fn a_buffer_waiting_for_the_disk_ends_the_hold() {
        let start = Instant::now();
        let mut coalesce = streaming(start);
        assert!(coalesce.hold(pending(8, 2), start));
        let disk = Pending {
            waits_for_disk: true,
            ..pending(40, 10)
        };
        assert!(!coalesce.hold(disk, start + WINDOW / 4));
        assert!(
            coalesce.hold(pending(8, 2), start + WINDOW / 2),
            "the next buffer starts a hold of its own"
        );
        assert!(coalesce.hold(pending(8, 2), start + WINDOW));
    }

    #[test]
    fn no_window_never_holds() {
        let mut coalesce = Coalesce::new(Duration::ZERO, 1024);
        assert!(!coalesce.hold(pending(40, 10), Instant::now()));
    }
}
