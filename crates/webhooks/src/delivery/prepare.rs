//! Preparing a request: a lane's events, rendered for its receiver, with their
//! `webhook-id` and signature; and leaving out those past `request_ttl`.

use std::time::Duration;

use hookmq_broker::message::{MessageId, now_ms};
use http::HeaderMap;

use super::InFlight;
use crate::{
    queue::Queued, render::RenderedRequest, sign::delivery_headers, spec::BatchFormat,
    webhook::Webhook,
};

/// Renders `items` (one event, or a batch) into a request to `receiver` with its delivery
/// headers; an
/// event's id is made at its first attempt if the queue gave none, and kept for the next
/// ones (a batch goes by its first event's). An event that does not render is given up (a
/// dead letter, to replay once the webhook is fixed).
pub(super) fn prepare(
    webhook: &Webhook,
    mut items: Vec<Queued>,
    inflight: &mut InFlight,
    receiver: usize,
) -> Option<(Vec<Queued>, RenderedRequest, HeaderMap)> {
    for item in &mut items {
        item.id.get_or_insert_with(|| webhook.ids.next_id());
    }
    let rendered = if let [item] = items.as_slice()
        && webhook.spec.batch.max_events == 1
    {
        webhook.renderer.render(&item.event, receiver)
    } else {
        let (body, rendered) = batch_body(webhook, items, inflight);
        items = rendered;
        if items.is_empty() {
            return None;
        }
        webhook
            .renderer
            .batch(body, webhook.spec.batch.format, receiver)
    };
    match rendered {
        Ok(request) => {
            let id = request_id(&items).unwrap_or_else(|| webhook.ids.next_id());
            let headers = delivery_headers(webhook.signer.as_ref(), id, &request.body);
            Some((items, request, headers))
        }
        Err(error) => {
            for item in items {
                inflight.release_one();
                webhook.give_up(item, None, error.to_string(), &[]);
            }
            None
        }
    }
}

/// The body of a batch of `items`: each event rendered as alone, joined as
/// `batch.format` says, written into one buffer; with the items that rendered (one that
/// does not is given up).
fn batch_body(
    webhook: &Webhook,
    items: Vec<Queued>,
    inflight: &mut InFlight,
) -> (Vec<u8>, Vec<Queued>) {
    // About the size of a default body, so the buffer rarely grows.
    const GUESS: usize = 512;
    let format = webhook.spec.batch.format;
    let mut body = Vec::with_capacity(items.len() * GUESS + 2);
    let mut rendered = Vec::with_capacity(items.len());
    if format == BatchFormat::JsonArray {
        body.push(b'[');
    }
    for item in items {
        let before = body.len();
        if format == BatchFormat::JsonArray && !rendered.is_empty() {
            body.push(b',');
        }
        match webhook.renderer.append_body(&item.event, &mut body) {
            Ok(()) => {
                if format == BatchFormat::Ndjson {
                    body.push(b'\n');
                }
                rendered.push(item);
            }
            Err(error) => {
                body.truncate(before);
                inflight.release_one();
                webhook.give_up(item, None, error.to_string(), &[]);
            }
        }
    }
    if format == BatchFormat::JsonArray {
        body.push(b']');
    }
    (body, rendered)
}

/// The `webhook-id` of a request carrying `items` (each has its id by now): one event's own
/// id, or for a batch one made from all of theirs, so a batch sent again with other
/// events (a retry takes what the lane holds then) is told apart from the first, and the
/// same batch again keeps its id.
fn request_id(items: &[Queued]) -> Option<MessageId> {
    match items {
        [] => None,
        [item] => item.id,
        _ => {
            // FNV-1a over the ids, 128 bits.
            let mut hash: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
            for id in items.iter().filter_map(|item| item.id) {
                for byte in id.0.to_be_bytes() {
                    hash ^= u128::from(byte);
                    hash = hash.wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013B);
                }
            }
            Some(MessageId(hash))
        }
    }
}

/// Whether `item` is older than the webhook's `request_ttl` (never, without one): counted
/// from when its event happened, or from when it was queued again by hand (a replayed dead
/// letter), whichever is later.
pub(super) fn expired(webhook: &Webhook, item: &Queued) -> bool {
    webhook.spec.request_ttl.is_some_and(|ttl| {
        let since = item.event.timestamp.max(item.requeued_at);
        Duration::from_millis(now_ms().saturating_sub(since)) > ttl
    })
}

/// Leaves out the items older than `request_ttl`: they are not sent, but dropped and
/// counted in `dropped.expired` (out of flight first, so the counts always add up).
pub(super) fn drop_expired(
    webhook: &Webhook,
    items: Vec<Queued>,
    inflight: &mut InFlight,
) -> Vec<Queued> {
    if webhook.spec.request_ttl.is_none() {
        return items;
    }
    let mut kept = Vec::with_capacity(items.len());
    for item in items {
        if expired(webhook, &item) {
            inflight.release_one();
            webhook.metrics.expired();
            webhook.queue.settle(&item);
        } else {
            kept.push(item);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::samples::sample;

    fn item(id: u128) -> Queued {
        Queued {
            id: Some(MessageId(id)),
            ..Queued::new(Arc::new(sample(
                hookmq_broker::hooks::EventKind::MessagePublish,
                "n@h",
            )))
        }
    }

    #[test]
    fn a_batch_is_named_by_all_its_events() {
        let (a, b, c) = (item(1), item(2), item(3));
        assert_eq!(request_id(std::slice::from_ref(&a)), Some(MessageId(1)));
        let ab = request_id(&[a.clone(), b.clone()]);
        assert_eq!(ab, request_id(&[item(1), item(2)]), "the same batch again");
        assert_ne!(ab, request_id(&[a.clone(), b, c]), "more events");
        assert_ne!(ab, Some(MessageId(1)), "not its first event's");
        assert_eq!(request_id(&[]), None);
    }
}
