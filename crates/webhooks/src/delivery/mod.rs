//! Delivery: one worker per lane takes the lane's events from the webhook's queue and, for
//! each, **prepares** a request (rendered, with its `webhook-id` and signature), **sends**
//! it and **settles** the answer (delivered, retried or failed; see [`retry`]). The same
//! path serves both transports:
//!
//! - `http`: the lane owns a keep-alive HTTP/1.1 connection and pipelines a window of up to
//!   `pipelining` requests on it (one until the connection has answered once, so a server
//!   that closes after each answer costs nothing). A batch of requests goes out in one
//!   write, and every answer already read is settled, in order, before the next write.
//! - `https`: hyper's pooled client (TLS, HTTP/2 when offered), a window of one.
//!
//! Order under retries (go-back-N): when the oldest request needs a retry, the connection
//! is dropped, and that request and every later one in the window go back to the head of the
//! lane in their order. After the backoff they are sent again, so a client's events reach
//! the receiver in order, and the ones sent after a failed one may arrive twice (at least
//! once, with the same `webhook-id`).
//!
//! A connection that answered before and then closes (keep-alive timeout, `Connection:
//! close`, a request limit) sends its unanswered requests again on a fresh connection,
//! without costing a retry: that connection made progress, so this cannot loop.

mod prepare;
pub mod retry;

use std::{
    collections::VecDeque,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::BytesMut;
use hookmq_broker::message::now_ms;
use http::{HeaderMap, Uri};
use tokio_util::sync::CancellationToken;

use crate::{
    client::{Answer, LaneSender, Pipe, SendError},
    health::Permit,
    metrics::Metrics,
    queue::Queued,
    receivers::Seat,
    render::{RenderError, RenderedRequest},
    webhook::Webhook,
    wire,
};
use prepare::{drop_expired, expired, prepare};
use retry::Verdict;

/// Counts events as in flight while it lives: from when a lane takes them until they are
/// settled or go back to the queue.
struct InFlight {
    metrics: Arc<Metrics>,
    events: usize,
}

impl InFlight {
    fn new(metrics: &Arc<Metrics>) -> Self {
        Self {
            metrics: Arc::clone(metrics),
            events: 0,
        }
    }

    /// One more event taken.
    fn add(&mut self) {
        self.metrics.start();
        self.events += 1;
    }

    /// One event out of flight before the rest (it ends here).
    fn release_one(&mut self) {
        if self.events > 0 {
            self.metrics.finish();
            self.events -= 1;
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        for _ in 0..self.events {
            self.metrics.finish();
        }
    }
}

/// A request prepared or on the wire, waiting for its answer: one event, or a batch of a
/// lane's events (`batch.max_events`), oldest first.
struct Flight {
    items: Vec<Queued>,
    /// The request and its delivery headers, for a pooled lane, which sends it itself (an
    /// `http` lane encodes it into its output at once).
    request: Option<(RenderedRequest, HeaderMap)>,
    sent: Instant,
    _inflight: InFlight,
}

/// How a lane reaches its receiver.
// One per lane, held for the lane's life: its size costs nothing, boxing would cost a
// pointer chase per request.
#[allow(clippy::large_enum_variant)]
enum Transport {
    /// `http`: the lane's own connection, pipelined.
    Pipelined {
        /// The URL's scheme and authority.
        origin: Uri,
        pipe: Option<Pipe>,
        /// Requests encoded and not yet written.
        out: BytesMut,
    },
    /// `https`: the pooled client, one request at a time.
    Pooled(Box<LaneSender>),
}

/// How a lane reaches receiver `index`: its own connection (`http`), or the pooled client.
fn transport(webhook: &Webhook, index: usize) -> Result<Transport, RenderError> {
    if webhook.renderer.https(index) {
        return Ok(Transport::Pooled(Box::new(webhook.client.lane())));
    }
    Ok(Transport::Pipelined {
        origin: webhook.renderer.origin(index)?,
        pipe: None,
        out: BytesMut::new(),
    })
}

/// One lane's worker: its window and its transport.
struct Lane {
    webhook: Arc<Webhook>,
    lane: usize,
    /// The receiver it sends to (see [`crate::receivers`]).
    seat: Seat,
    /// Another receiver is wanted: the lane takes no more events until its window has
    /// drained, then turns to it.
    leaving: bool,
    transport: Transport,
    /// Prepared (and, on `http`, sent or encoded) and not yet answered, oldest first.
    window: VecDeque<Flight>,
    /// Whether the lane takes more events from the queue (not while finishing, for a
    /// disk buffer).
    taking: bool,
    /// When the lane last took events from its queue.
    took_at: Option<tokio::time::Instant>,
    /// A batch filling (fewer than `batch.max_events` were queued), taken from the queue,
    /// newer than the window: it goes out once full or `batch.max_wait` after it began.
    forming: Forming,
}

/// A batch filling.
struct Forming {
    items: Vec<Queued>,
    inflight: InFlight,
    /// When it goes out even if not full.
    due: Option<tokio::time::Instant>,
}

/// How often a lane that took events within [`LINGER_FOR`] looks at its queue again, instead
/// of being woken by every push. While events flow, the publishing threads then never wake
/// the delivery threads (waking a parked runtime thread is a syscall, which cost the publish
/// path a third of a webhook's cost on the benchmark machine). The price: up to this much
/// latency per event.
const LINGER: Duration = Duration::from_millis(1);

/// How long after it last took events a lane keeps looking every [`LINGER`]; after that it
/// waits to be woken, so an idle webhook costs nothing.
const LINGER_FOR: Duration = Duration::from_millis(4);

/// How a lane is told to end.
#[derive(Debug, Clone)]
pub(crate) struct Stop {
    /// At once: the window goes back to the queue (an update, a disable, a deadline).
    pub(crate) now: CancellationToken,
    /// After what is in flight is settled, taking nothing more, except that a memory
    /// buffer also delivers what it queues, which a stop would lose (hookmq stopping).
    pub(crate) finish: CancellationToken,
}

/// Runs one lane until the webhook stops or its queue closes.
pub(crate) async fn run_lane(webhook: Arc<Webhook>, lane: usize, stop: Stop) {
    let webhook_metrics = Arc::clone(&webhook.metrics);
    let home = webhook.receivers.home(lane);
    let transport = match transport(&webhook, home) {
        Ok(transport) => transport,
        Err(error) => {
            tracing::error!(webhook = %webhook.spec.name, %error, "lane not started");
            return;
        }
    };
    let mut this = Lane {
        seat: webhook.receivers.seat(home),
        leaving: false,
        webhook,
        lane,
        transport,
        forming: Forming {
            items: Vec::new(),
            inflight: InFlight::new(&webhook_metrics),
            due: None,
        },
        window: VecDeque::new(),
        taking: true,
        took_at: None,
    };
    loop {
        this.steer();
        let finishing = stop.finish.is_cancelled();
        // Finishing, a disk or cluster buffer keeps what waits (for the next start, or for
        // the other nodes): only a memory buffer goes on taking.
        this.taking = !finishing
            || (this.webhook.journal.is_none() && this.webhook.queue.as_cluster().is_none());
        if !this.taking {
            this.unform();
        } else if !this.leaving {
            this.fill(finishing);
        }
        if this.window.is_empty() {
            // Out of work: the connection goes to the idle ones for whichever lane needs one.
            this.park();
            if finishing || this.webhook.queue.is_closed() {
                // A batch still filling goes back (finishing, it was sent if it could be).
                this.unform();
                return;
            }
            let queue = &this.webhook.queue;
            let linger = this.lingering();
            let due = this.forming.due;
            tokio::select! {
                biased;
                () = stop.now.cancelled() => {
                    this.unform();
                    return;
                }
                () = stop.finish.cancelled() => continue,
                () = sleep_until(due), if due.is_some() => continue,
                () = tokio::time::sleep(LINGER), if linger => continue,
                () = queue.wait(this.lane), if !linger => continue,
            }
        }
        if this.has_unsent()
            && let Permit::Wait(wait) = this
                .seat
                .receiver()
                .health
                .permit(this.webhook.spec.health_check_interval)
        {
            // The circuit is open and another lane probes: nothing goes out to this receiver
            // until it closes (another usable receiver takes the lane's events meanwhile).
            this.go_back();
            if stop.finish.is_cancelled() {
                return;
            }
            if this.elsewhere() {
                continue;
            }
            // Until this circuit closes, or another receiver's probe is due.
            let wait = this.webhook.receivers.first_probe_within(wait);
            tokio::select! {
                biased;
                () = stop.now.cancelled() => return,
                () = stop.finish.cancelled() => {}
                () = this.seat.receiver().health.wait_closed(wait) => {}
            }
            continue;
        }
        let exchanged = tokio::select! {
            biased;
            () = stop.now.cancelled() => {
                // Stopped (update, disable, deadline): the window goes back to the queue.
                this.go_back();
                return;
            }
            result = this.exchange() => result,
        };
        let retry = match exchanged {
            Ok(retry) => retry,
            Err(error) => this.broken(error),
        };
        if let Some(delay) = retry {
            if stop.finish.is_cancelled() && !this.taking {
                // Finishing: what went back waits on disk for the next start.
                return;
            }
            if this.elsewhere() {
                // This receiver's circuit opened and another takes over: no reason to wait.
                continue;
            }
            tokio::select! {
                biased;
                () = stop.now.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
            }
        }
    }
}

/// Sleeps until `due`, or forever if none.
async fn sleep_until(due: Option<tokio::time::Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

impl Lane {
    /// Whether the lane should send to another receiver than its own now.
    fn elsewhere(&self) -> bool {
        self.webhook.receivers.preferred(self.lane) != self.seat.index()
    }

    /// Turns to the receiver the lane should send to now, once nothing is in flight; until
    /// then it takes no more events (`leaving`), so what it sent is settled where it went.
    fn steer(&mut self) {
        let receivers = &self.webhook.receivers;
        if receivers.len() == 1 {
            return;
        }
        let wanted = receivers.preferred(self.lane);
        self.leaving = wanted != self.seat.index();
        if !self.leaving || !self.window.is_empty() {
            return;
        }
        let Ok(transport) = transport(&self.webhook, wanted) else {
            // Not reachable (the spec's validation prevents it): the lane stays.
            self.leaving = false;
            return;
        };
        tracing::debug!(
            webhook = %self.webhook.spec.name,
            lane = self.lane,
            from = self.seat.index(),
            to = wanted,
            "lane turns to another receiver"
        );
        let seat = receivers.seat(wanted);
        self.park();
        self.transport = transport;
        self.seat = seat;
        self.leaving = false;
    }

    /// Takes events from the queue into the window, prepared (and on `http` encoded), up to
    /// the room the transport has. `finishing`: a batch filling goes out now.
    fn fill(&mut self, finishing: bool) {
        if let Transport::Pipelined { pipe, origin, .. } = &mut self.transport
            && pipe.is_none()
        {
            *pipe = self.webhook.client.take_idle(origin);
        }
        let room = self.room();
        let mut now = None;
        let before = self.window.len();
        while self.window.len() < room {
            let Some((items, mut inflight)) = self.take_batch(finishing) else {
                break;
            };
            let webhook = &self.webhook;
            let items = drop_expired(webhook, items, &mut inflight);
            let Some((items, request, headers)) =
                prepare(webhook, items, &mut inflight, self.seat.index())
            else {
                continue;
            };
            let request = match &mut self.transport {
                Transport::Pipelined { out, .. } => {
                    wire::encode(&request, &headers, out);
                    None
                }
                Transport::Pooled(_) => Some((request, headers)),
            };
            self.window.push_back(Flight {
                items,
                request,
                sent: *now.get_or_insert_with(Instant::now),
                _inflight: inflight,
            });
        }
        if self.window.len() > before {
            self.took_at = Some(tokio::time::Instant::now());
        }
    }

    /// The next request's events from the queue: one, or a batch of up to
    /// `batch.max_events`, which waits up to `batch.max_wait` to fill (unless `finishing`).
    fn take_batch(&mut self, finishing: bool) -> Option<(Vec<Queued>, InFlight)> {
        let batch = self.webhook.spec.batch;
        let forming = &mut self.forming;
        while forming.items.len() < batch.max_events {
            let Some(item) = self.webhook.queue.take(self.lane) else {
                break;
            };
            forming.inflight.add();
            forming.items.push(item);
        }
        if forming.items.is_empty() {
            return None;
        }
        if forming.items.len() < batch.max_events && !batch.max_wait.is_zero() && !finishing {
            let due = *forming
                .due
                .get_or_insert_with(|| tokio::time::Instant::now() + batch.max_wait);
            if tokio::time::Instant::now() < due {
                return None;
            }
        }
        forming.due = None;
        let inflight =
            std::mem::replace(&mut forming.inflight, InFlight::new(&self.webhook.metrics));
        Some((std::mem::take(&mut forming.items), inflight))
    }

    /// A batch filling goes back to the head of the queue (newest first, so the oldest
    /// ends at the head).
    fn unform(&mut self) {
        let forming = &mut self.forming;
        forming.due = None;
        // Out of flight before they are queued again, so no count has them twice.
        forming.inflight = InFlight::new(&self.webhook.metrics);
        while let Some(item) = forming.items.pop() {
            self.webhook.queue.put_back(self.lane, item);
        }
    }

    /// Whether the lane took events lately: it then looks at its queue every [`LINGER`]
    /// instead of waiting to be woken.
    fn lingering(&self) -> bool {
        self.took_at.is_some_and(|at| at.elapsed() < LINGER_FOR)
    }

    /// Requests the transport may have in flight: `pipelining` on an `http` connection that
    /// has answered once, else one.
    fn room(&self) -> usize {
        match &self.transport {
            Transport::Pipelined {
                pipe: Some(pipe), ..
            } if pipe.answered > 0 => self.webhook.spec.pipelining,
            _ => 1,
        }
    }

    /// Whether the window holds a request not yet sent.
    fn has_unsent(&self) -> bool {
        match &self.transport {
            Transport::Pipelined { out, .. } => !out.is_empty(),
            Transport::Pooled(_) => self.window.front().is_some_and(|f| f.request.is_some()),
        }
    }

    /// Out of work: an `http` connection joins the webhook's idle ones.
    fn park(&mut self) {
        match &mut self.transport {
            Transport::Pipelined { pipe, .. } => {
                if let Some(pipe) = pipe.take() {
                    self.webhook.client.park(pipe);
                }
            }
            Transport::Pooled(sender) => sender.park(),
        }
    }

    /// Sends what waits and settles at least one answer (on `http`, every one already read),
    /// or returns early when an event arrives for a window with room. `Some(delay)`: a retry
    /// sent the window back to the queue, to go again after `delay`. An error is the `http`
    /// connection's, with the window still to settle.
    async fn exchange(&mut self) -> Result<Option<Duration>, SendError> {
        if let Transport::Pooled(sender) = &mut self.transport {
            let Some((request, headers)) = self.window.front_mut().and_then(|f| f.request.take())
            else {
                return Ok(None);
            };
            let result = sender.send(&request, headers).await;
            return Ok(self.settle(result));
        }
        let room_left = self.taking && !self.leaving && self.window.len() < self.room();
        let linger = room_left && self.lingering();
        let due = self.forming.due.filter(|_| room_left);
        let Self {
            webhook,
            lane,
            transport,
            window,
            ..
        } = self;
        let Transport::Pipelined { origin, pipe, out } = transport else {
            return Ok(None);
        };
        if pipe.is_none() {
            *pipe = Some(webhook.client.connect(origin).await?);
        }
        let (Some(connection), Some(oldest)) = (pipe.as_mut(), window.front()) else {
            return Ok(None);
        };
        if !out.is_empty() {
            connection.write(out).await?;
            out.clear();
        }
        let timeout = webhook.client.request_timeout;
        let deadline = tokio::time::Instant::from_std(oldest.sent + timeout);
        // Both cancel safe: a read keeps what it got in the connection's buffer, and a wait
        // takes nothing from the queue.
        let answer = tokio::select! {
            biased;
            answer = tokio::time::timeout_at(deadline, connection.next_answer()) => answer,
            () = sleep_until(due), if due.is_some() => return Ok(None),
            () = tokio::time::sleep(LINGER), if linger => return Ok(None),
            () = webhook.queue.wait(*lane), if room_left && !linger => return Ok(None),
        };
        let mut parsed = answer.map_err(|_| SendError::Timeout(timeout))??;
        loop {
            let reusable = parsed.reusable;
            if let Some(delay) = self.settle(Ok(parsed.answer)) {
                return Ok(Some(delay));
            }
            let Transport::Pipelined { pipe, .. } = &mut self.transport else {
                return Ok(None);
            };
            if !reusable {
                // The receiver ends the connection here: the rest goes again on a fresh one.
                *pipe = None;
                self.go_back();
                return Ok(None);
            }
            let Some(connection) = pipe.as_mut() else {
                return Ok(None);
            };
            match connection.try_answer()? {
                Some(next) if !self.window.is_empty() => parsed = next,
                Some(_) => return Err(SendError::Connection("answer to no request".into())),
                None => return Ok(None),
            }
        }
    }

    /// Settles the oldest request with `result`. `Some(delay)` when it goes back for a retry:
    /// an `http` connection is dropped and the rest of the window goes back after it.
    fn settle(&mut self, result: Result<Answer, SendError>) -> Option<Duration> {
        let Flight {
            items,
            sent,
            _inflight,
            ..
        } = self.window.pop_front()?;
        let webhook = Arc::clone(&self.webhook);
        if result.is_ok() {
            webhook.metrics.latency(sent.elapsed());
        }
        let (status, error) = match &result {
            Ok(answer) if answer.status.is_success() => (Some(answer.status.as_u16()), None),
            Ok(answer) => (
                Some(answer.status.as_u16()),
                Some(format!("HTTP {}", answer.status)),
            ),
            Err(error) => (None, Some(error.to_string())),
        };
        let receiver = self.seat.receiver();
        if retry::reached(&result) {
            receiver.health.answered();
        } else if let Some(error) = &error {
            receiver
                .health
                .failed(error, webhook.spec.health_check_interval);
        }
        receiver.settled(error.is_none(), items.len());
        let latency_ms = u64::try_from(sent.elapsed().as_millis()).unwrap_or(u64::MAX);
        if let Some(first) = items.first() {
            webhook.attempts.record(
                self.lane,
                now_ms(),
                first.id,
                first.event.kind(),
                status,
                latency_ms,
                error,
            );
        }
        // Out of flight before they are counted as delivered, failed or retried: whoever
        // sees the new count sees them no longer in flight.
        drop(_inflight);
        let mut again = Vec::new();
        let mut delay = None;
        for mut item in items {
            item.attempts += 1;
            if result.is_ok() && expired(&webhook, &item) {
                // Answered after `request_ttl` (EMQX's late_reply): its outcome is not
                // counted as delivered or failed, and it is not sent again.
                webhook.metrics.late_reply();
                webhook.queue.settle(&item);
                continue;
            }
            match retry::verdict(&webhook.spec, &item.event, item.attempts, &result) {
                Verdict::Delivered => {
                    webhook.metrics.success();
                    webhook.queue.settle(&item);
                }
                Verdict::Failed { reason, status } => {
                    let response = result.as_ref().map_or(&[][..], |a| &a.body_start[..]);
                    webhook.give_up(item, status, reason, response);
                }
                Verdict::Retry(wait) => {
                    webhook.metrics.retried();
                    delay = delay.max(Some(wait));
                    again.push(item);
                }
            }
        }
        let delay = delay?;
        // Go back: the rest of the window, then this request's events at the lane's head.
        if let Transport::Pipelined { pipe, .. } = &mut self.transport {
            *pipe = None;
        }
        self.go_back();
        for item in again.into_iter().rev() {
            webhook.queue.put_back(self.lane, item);
        }
        Some(delay)
    }

    /// The `http` connection failed with `error` (or timed out) with requests in the window.
    fn broken(&mut self, error: SendError) -> Option<Duration> {
        let progressed = match &mut self.transport {
            Transport::Pipelined { pipe, .. } => pipe.take().is_some_and(|p| p.answered > 0),
            Transport::Pooled(_) => false,
        };
        let retry = if progressed && !matches!(error, SendError::Timeout(_)) {
            // It answered before (a kept or parked connection the receiver has closed since,
            // or a request limit): no fault of the request, and no retry spent.
            None
        } else {
            self.settle(Err(error))
        };
        self.go_back();
        retry
    }

    /// Puts the window back at the head of the lane's queue, in order (unanswered requests
    /// are prepared and sent again, on a fresh connection).
    fn go_back(&mut self) {
        if let Transport::Pipelined { out, pipe, .. } = &mut self.transport {
            out.clear();
            if !self.window.is_empty() {
                // Answers may still be owed on it for what it carried: they would be read
                // as answers to the requests sent next.
                *pipe = None;
            }
        }
        self.unform();
        while let Some(flight) = self.window.pop_back() {
            let Flight {
                items, _inflight, ..
            } = flight;
            drop(_inflight);
            for item in items.into_iter().rev() {
                self.webhook.queue.put_back(self.lane, item);
            }
        }
    }
}
