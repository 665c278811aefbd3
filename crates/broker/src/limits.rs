//! Per-client limits of `[mqtt]`: connections per source address, and the publish rate of
//! one connection (a token bucket that pauses its reading).

use std::{collections::HashMap, net::IpAddr, sync::Arc, time::Duration};

use parking_lot::Mutex;
use tokio::time::Instant;

/// Open connections by source address, for `mqtt.max_connections_per_address`.
#[derive(Debug, Default)]
pub(crate) struct PerAddress {
    /// Taken for an increment at accept and a decrement at close; never across `.await`.
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One open connection counted against its address; dropping it frees the place.
#[derive(Debug)]
pub(crate) struct AddressSlot {
    owner: Arc<PerAddress>,
    key: IpAddr,
}

impl PerAddress {
    /// What a connection from `ip` counts against: the address, or its /64 for IPv6 (one
    /// host often holds a whole /64).
    fn key(ip: IpAddr) -> IpAddr {
        match ip.to_canonical() {
            IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
            v4 => v4,
        }
    }

    /// A place for one more connection from `ip`, if fewer than `limit` are open.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr, limit: usize) -> Option<AddressSlot> {
        let key = Self::key(ip);
        let mut open = self.open.lock();
        let count = open.entry(key).or_insert(0);
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            owner: Arc::clone(self),
            key,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.owner.open.lock();
        if let Some(count) = open.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// PUBLISH packets a connection may still send now, refilled at `rate` per second up to a
/// burst of `rate`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PublishRate {
    rate: f64,
    tokens: f64,
    refilled: Instant,
}

impl PublishRate {
    /// A full bucket for `rate` PUBLISHes per second.
    pub(crate) fn new(rate: u32, now: Instant) -> Self {
        let rate = f64::from(rate);
        Self {
            rate,
            tokens: rate,
            refilled: now,
        }
    }

    /// `Ok` if a PUBLISH may be read now (it is not taken yet: see [`PublishRate::take`]);
    /// else how long until one may.
    pub(crate) fn ready(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        self.refilled = now;
        if self.tokens >= 1.0 {
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }

    /// One PUBLISH was read.
    pub(crate) fn take(&mut self) {
        self.tokens -= 1.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_limit_and_its_places_back() {
        let places = Arc::new(PerAddress::default());
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        let first = places.admit(ip, 2).expect("first");
        let _second = places.admit(ip, 2).expect("second");
        assert!(places.admit(ip, 2).is_none());
        assert!(places.admit("192.0.2.2".parse().expect("ip"), 2).is_some());
        drop(first);
        assert!(places.admit(ip, 2).is_some());
        // A /64 is one address.
        let _a = places
            .admit("2001:db8::1".parse().expect("ip"), 1)
            .expect("a");
        assert!(
            places
                .admit("2001:db8::2".parse().expect("ip"), 1)
                .is_none()
        );
    }

    #[test]
    fn the_rate_allows_a_burst_then_one_per_interval() {
        let start = Instant::now();
        let mut rate = PublishRate::new(10, start);
        for _ in 0..10 {
            assert_eq!(rate.ready(start), Ok(()));
            rate.take();
        }
        let wait = rate.ready(start).expect_err("empty");
        assert_eq!(wait, Duration::from_millis(100));
        assert_eq!(rate.ready(start + wait), Ok(()));
        rate.take();
        // Idle time refills only up to the burst.
        let later = start + Duration::from_secs(60);
        for _ in 0..10 {
            assert_eq!(rate.ready(later), Ok(()));
            rate.take();
        }
        assert!(rate.ready(later).is_err());
    }
}
