//! What arrived against what was acknowledged: every event delivered, each client's first
//! deliveries in order, duplicates only with the `webhook-id` of the first delivery.

use std::collections::{HashMap, HashSet};

use super::receiver::Arrival;

/// The verdict on one scenario's deliveries.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Check {
    /// Events the publishers got acknowledged.
    pub expected: usize,
    /// Of those, delivered (answered 2xx) at least once.
    pub delivered: usize,
    /// Acknowledged and never delivered.
    pub missing: usize,
    /// Deliveries of an event delivered before.
    pub duplicates: usize,
    /// Duplicates whose `webhook-id` differs from the first delivery's.
    pub duplicates_with_another_id: usize,
    /// Clients whose events first arrived out of order.
    pub clients_out_of_order: usize,
}

impl Check {
    /// Whether nothing was lost, reordered, or duplicated under another id.
    #[must_use]
    pub const fn passed(&self) -> bool {
        self.missing == 0 && self.duplicates_with_another_id == 0 && self.clients_out_of_order == 0
    }
}

/// Checks `arrivals` (2xx ones count as delivered) against `acked` (per client, in order).
#[must_use]
pub fn check(acked: &[Vec<String>], arrivals: &[Arrival]) -> Check {
    let expected: HashSet<&str> = acked.iter().flatten().map(String::as_str).collect();
    let mut first_id: HashMap<&str, &str> = HashMap::new();
    let mut order: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut result = Check {
        expected: expected.len(),
        ..Check::default()
    };
    for arrival in arrivals.iter().filter(|a| (200..300).contains(&a.status)) {
        match first_id.get(arrival.payload.as_str()) {
            Some(id) => {
                result.duplicates += 1;
                if *id != arrival.id {
                    result.duplicates_with_another_id += 1;
                }
            }
            None => {
                first_id.insert(&arrival.payload, &arrival.id);
                order
                    .entry(&arrival.client)
                    .or_default()
                    .push(&arrival.payload);
            }
        }
    }
    result.delivered = expected
        .iter()
        .filter(|p| first_id.contains_key(*p))
        .count();
    result.missing = result.expected - result.delivered;
    for (k, payloads) in acked.iter().enumerate() {
        let seen: Vec<&str> = order
            .get(format!("c{k}").as_str())
            .map(|v| v.iter().copied().filter(|p| expected.contains(p)).collect())
            .unwrap_or_default();
        let wanted: Vec<&str> = payloads
            .iter()
            .map(String::as_str)
            .filter(|p| first_id.contains_key(p))
            .collect();
        if seen != wanted {
            result.clients_out_of_order += 1;
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arrival(client: &str, payload: &str, id: &str) -> Arrival {
        Arrival {
            id: id.into(),
            client: client.into(),
            payload: payload.into(),
            status: 200,
        }
    }

    #[test]
    fn losses_reorders_and_foreign_duplicates_are_found() {
        let acked = vec![
            vec!["c0-0".to_owned(), "c0-1".to_owned(), "c0-2".to_owned()],
            vec!["c1-0".to_owned()],
        ];
        let good = [
            arrival("c0", "c0-0", "a"),
            arrival("c1", "c1-0", "d"),
            arrival("c0", "c0-1", "b"),
            arrival("c0", "c0-1", "b"),
            arrival("c0", "c0-2", "c"),
        ];
        let result = check(&acked, &good);
        assert!(result.passed(), "{result:?}");
        assert_eq!((result.delivered, result.duplicates), (4, 1));
        let bad = [
            arrival("c0", "c0-1", "b"),
            arrival("c0", "c0-0", "a"),
            arrival("c0", "c0-0", "x"),
        ];
        let result = check(&acked, &bad);
        assert_eq!(
            (
                result.missing,
                result.clients_out_of_order,
                result.duplicates_with_another_id
            ),
            (2, 1, 1)
        );
        assert!(!result.passed());
    }
}
