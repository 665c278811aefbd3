//! The delivery threads: a tokio runtime of their own, at a lower priority than the broker's.

/// How much lower than the broker's threads the delivery threads run (Linux nice; 19 is the
/// lowest). When the machine is saturated, each busy broker thread gets about 70× the CPU of
/// a delivery thread (weights 1024 and 15), so publishers keep their rate and webhook queues
/// absorb the difference (and count what overflows); on a machine with spare CPU delivery
/// runs at full speed. Measured with `bench/webhook.sh` (BENCHMARKS.md): at nice 10 an
/// all-events webhook cost saturated publishers about 21%, at 19 about 10%.
const DELIVERY_NICE: i32 = 19;

/// The runtime lane workers and their connections run on: its own threads, at a lower
/// priority than the broker's, so delivery work never competes with sessions on equal terms.
pub(super) struct DeliveryRuntime(Option<tokio::runtime::Runtime>);

impl DeliveryRuntime {
    pub(super) fn new() -> Self {
        let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("hookmq-webhooks")
            .on_thread_start(lower_priority)
            .enable_all()
            .build();
        match runtime {
            Ok(runtime) => Self(Some(runtime)),
            Err(error) => {
                // Without threads to spare, delivery shares the broker's runtime.
                tracing::warn!(%error, "no separate webhook delivery threads");
                Self(None)
            }
        }
    }

    pub(super) fn handle(&self) -> tokio::runtime::Handle {
        self.0
            .as_ref()
            .map_or_else(tokio::runtime::Handle::current, |runtime| {
                runtime.handle().clone()
            })
    }
}

impl Drop for DeliveryRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            // Lane workers were stopped by `shutdown`; do not block whoever drops the engine.
            runtime.shutdown_background();
        }
    }
}

/// Lowers the calling thread's priority by [`DELIVERY_NICE`].
fn lower_priority() {
    // On Linux, setpriority(PRIO_PROCESS, 0) applies to the calling thread alone.
    if let Err(error) = rustix::process::setpriority_process(None, DELIVERY_NICE) {
        tracing::debug!(%error, "could not lower the webhook delivery threads' priority");
    }
}
