//! The lane worker of an `http` webhook: HTTP/1.1 pipelining on the lane's own connection.
//!
//! The lane keeps a window of requests sent and not yet answered (at most `pipelining`; one
//! on a connection that has not answered yet, so a server that closes after each answer
//! costs nothing). Answers come back in the order the requests went out, and each settles
//! the oldest request. A whole batch of requests goes out in one write, and every answer
//! already read is settled before the next write, so a busy lane makes few system calls per
//! event.
//!
//! Order under retries (go-back-N): when the oldest request needs a retry (connection error,
//! timeout, 408, 429, 5xx), the connection is dropped, and that request and every later one
//! in the window go back to the head of the lane's queue in their order. After the backoff
//! they are sent again, so a client's events reach the receiver in order, and the ones sent
//! after a failed one may arrive twice (at least once, same `webhook-id` when signed).
//!
//! A connection that answered before and then closes (keep-alive timeout, `Connection:
//! close`, a request limit) sends its unanswered requests again on a fresh connection,
//! without costing a retry: that connection made progress, so this cannot loop.

use std::{
    collections::VecDeque,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::BytesMut;
use http::{HeaderMap, Uri};
use tokio_util::sync::CancellationToken;

use crate::{
    client::{Answer, Pipe, SendError},
    deliver::{Outcome, backoff, classify},
    metrics::failure,
    queue::{Queue, Queued},
    webhook::Webhook,
    wire,
};

/// A request on the wire, waiting for its answer.
struct Flight {
    item: Queued,
    sent: Instant,
}

/// One lane's window and connection.
struct Lane {
    webhook: Arc<Webhook>,
    lane: usize,
    /// Where the connection goes (the URL's scheme and authority).
    origin: Uri,
    pipe: Option<Pipe>,
    /// Sent (or encoded in `out`) and not yet answered, oldest first.
    window: VecDeque<Flight>,
    /// Requests encoded and not yet written.
    out: BytesMut,
}

/// Runs one `http` lane until the webhook stops.
pub(crate) async fn run_pipelined(webhook: Arc<Webhook>, lane: usize, stop: CancellationToken) {
    let origin = match webhook.renderer.origin() {
        Ok(origin) => origin,
        Err(error) => {
            tracing::error!(webhook = %webhook.spec.name, %error, "lane not started");
            return;
        }
    };
    let mut this = Lane {
        webhook,
        lane,
        origin,
        pipe: None,
        window: VecDeque::new(),
        out: BytesMut::new(),
    };
    loop {
        this.fill();
        if this.window.is_empty() {
            // Out of work: the connection goes to the idle ones for whichever lane needs one.
            if let Some(pipe) = this.pipe.take() {
                this.webhook.client.park(pipe);
            }
            let item = tokio::select! {
                biased;
                () = stop.cancelled() => return,
                item = this.webhook.queue.pop(this.lane) => item,
            };
            let Some(item) = item else { return };
            // Back to the head, where `fill` takes it first.
            this.webhook.queue.requeue_front(this.lane, item);
            continue;
        }
        let exchanged = tokio::select! {
            biased;
            () = stop.cancelled() => {
                // Stopped (update, disable, shutdown): the window goes back to the queue.
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
            tokio::select! {
                biased;
                () = stop.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
            }
        }
    }
}

impl Lane {
    /// Takes events from the queue into the window, rendered and encoded, up to the room the
    /// connection has.
    fn fill(&mut self) {
        if self.pipe.is_none() {
            self.pipe = self.webhook.client.take_idle();
        }
        let room = self.room();
        let webhook = &self.webhook;
        let mut now = None;
        while self.window.len() < room {
            let Some(mut item) = webhook.queue.try_pop(self.lane) else {
                break;
            };
            webhook.metrics.start();
            let request = match webhook.renderer.render(&item.event) {
                Ok(request) => request,
                Err(error) => {
                    webhook.metrics.finish();
                    webhook.metrics.failed(failure(
                        item.event.kind().name(),
                        None,
                        error.to_string(),
                        0,
                    ));
                    continue;
                }
            };
            // The delivery id is made when first needed (only signed requests carry it) and
            // travels with the event if it goes back to the queue; the timestamp is the
            // attempt's.
            let extra = match &webhook.signer {
                Some(signer) => {
                    let id = *item.id.get_or_insert_with(|| webhook.ids.next_id());
                    signer.headers(id, &request.body)
                }
                None => HeaderMap::new(),
            };
            wire::encode(&request, &extra, &mut self.out);
            let sent = *now.get_or_insert_with(Instant::now);
            self.window.push_back(Flight { item, sent });
        }
    }

    /// Requests the connection may have in flight: one until it has answered once.
    fn room(&self) -> usize {
        if self.pipe.as_ref().is_some_and(|pipe| pipe.answered > 0) {
            self.webhook.spec.pipelining
        } else {
            1
        }
    }

    /// Writes what waits, then reads and settles at least one answer (and every one already
    /// read), or returns early when an event arrives for a window with room. `Some(delay)`:
    /// a retry sent the window back to the queue, to go again after `delay`. An error is the
    /// connection's, with the window still to settle.
    async fn exchange(&mut self) -> Result<Option<Duration>, SendError> {
        if self.pipe.is_none() {
            self.pipe = Some(self.webhook.client.connect(&self.origin).await?);
        }
        let room_left = self.window.len() < self.room();
        let Self {
            webhook,
            lane,
            pipe,
            window,
            out,
            ..
        } = self;
        let (Some(pipe), Some(oldest)) = (pipe.as_mut(), window.front()) else {
            return Ok(None);
        };
        if !out.is_empty() {
            pipe.write(out).await?;
            out.clear();
        }
        let timeout = webhook.client.request_timeout;
        let deadline = tokio::time::Instant::from_std(oldest.sent + timeout);
        // Both cancel safe: a read keeps what it got in the connection's buffer, and `pop`
        // takes an event only as it returns it.
        let answer = tokio::select! {
            biased;
            answer = tokio::time::timeout_at(deadline, pipe.next_answer()) => answer,
            item = webhook.queue.pop(*lane), if room_left => {
                // Back to the head, where `fill` takes it into the window.
                if let Some(item) = item {
                    webhook.queue.requeue_front(*lane, item);
                }
                return Ok(None);
            }
        };
        let mut parsed = answer.map_err(|_| SendError::Timeout(timeout))??;
        loop {
            let reusable = parsed.reusable;
            if let Some(delay) = self.settle(Ok(parsed.answer)) {
                return Ok(Some(delay));
            }
            if !reusable {
                // The receiver ends the connection here: the rest goes again on a fresh one.
                self.pipe = None;
                self.go_back();
                return Ok(None);
            }
            let Some(pipe) = self.pipe.as_mut() else {
                return Ok(None);
            };
            match pipe.try_answer()? {
                Some(next) if !self.window.is_empty() => parsed = next,
                Some(_) => return Err(SendError::Connection("answer to no request".into())),
                None => return Ok(None),
            }
        }
    }

    /// Settles the oldest request with `result`. `Some(delay)` when it goes back for a retry:
    /// the connection is dropped and the rest of the window goes back after it.
    fn settle(&mut self, result: Result<Answer, SendError>) -> Option<Duration> {
        let flight = self.window.pop_front()?;
        let metrics = &self.webhook.metrics;
        let spec = &self.webhook.spec;
        let mut item = flight.item;
        let attempts = item.attempts + 1;
        let outcome = classify(&result);
        if result.is_ok() {
            metrics.latency(flight.sent.elapsed());
        }
        let delay = match outcome {
            Outcome::Success => {
                metrics.finish();
                metrics.success();
                return None;
            }
            Outcome::Retry { after, .. } if attempts <= spec.max_retries => {
                metrics.retried();
                item.attempts = attempts;
                backoff(spec.retry_backoff, spec.retry_max_backoff, attempts, after)
            }
            Outcome::Retry { reason, status, .. } | Outcome::Fail { reason, status } => {
                let event = item.event.kind().name();
                tracing::debug!(webhook = %spec.name, event, %reason, "delivery failed");
                metrics.finish();
                metrics.failed(failure(event, status, reason, attempts));
                return None;
            }
        };
        // Go back: the rest of the window, then this request at the lane's head.
        self.pipe = None;
        self.go_back();
        self.webhook.metrics.finish();
        self.webhook.queue.requeue_front(self.lane, item);
        Some(delay)
    }

    /// The connection failed with `error` (or timed out) with requests in the window.
    fn broken(&mut self, error: SendError) -> Option<Duration> {
        let progressed = self.pipe.take().is_some_and(|pipe| pipe.answered > 0);
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
    /// are sent again).
    fn go_back(&mut self) {
        self.out.clear();
        while let Some(flight) = self.window.pop_back() {
            self.webhook.metrics.finish();
            self.webhook.queue.requeue_front(self.lane, flight.item);
        }
    }
}
