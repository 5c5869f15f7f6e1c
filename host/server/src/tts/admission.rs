//! Admission control: at most `concurrency` syntheses run, at most `queue`
//! more wait, and anything beyond is refused at once (503 + Retry-After) so an
//! overloaded server answers fast instead of piling up latency.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::TtsError;

/// The gate in front of the voice model.
#[derive(Debug)]
pub struct Admission {
    permits: Arc<Semaphore>,
    concurrency: usize,
    queue: usize,
    waiting: AtomicUsize,
    running: AtomicUsize,
}

/// Held while a synthesis runs; releases its slot when dropped.
#[derive(Debug)]
pub struct Admitted {
    _permit: OwnedSemaphorePermit,
    gate: Arc<Admission>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.gate.running.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Decrements the waiting count however the wait ends (admitted, timed out,
/// or the client went away and the future was dropped).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Admission {
    pub fn new(concurrency: usize, queue: usize) -> Arc<Admission> {
        let concurrency = concurrency.max(1);
        Arc::new(Admission {
            permits: Arc::new(Semaphore::new(concurrency)),
            concurrency,
            queue,
            waiting: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
        })
    }

    /// Waits for a slot until `deadline`. Fails with `Overloaded` at once when
    /// the queue is full, and with `Timeout` when the deadline passes in it.
    pub async fn enter(
        self: &Arc<Self>,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Admitted, TtsError> {
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            return Ok(self.admitted(permit));
        }
        let queued = self.waiting.fetch_add(1, Ordering::Relaxed);
        let _waiting = Waiting(&self.waiting);
        if queued >= self.queue {
            return Err(TtsError::Overloaded {
                queued,
                retry_after: Duration::from_secs(1),
            });
        }
        match tokio::time::timeout_at(deadline, self.permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(self.admitted(permit)),
            Ok(Err(_)) => Err(TtsError::Cancelled("the server is shutting down".into())),
            Err(_) => Err(TtsError::Timeout(timeout)),
        }
    }

    fn admitted(self: &Arc<Self>, permit: OwnedSemaphorePermit) -> Admitted {
        self.running.fetch_add(1, Ordering::Relaxed);
        Admitted {
            _permit: permit,
            gate: self.clone(),
        }
    }

    /// Requests waiting for a slot now.
    pub fn queued(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Syntheses running now.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::Relaxed)
    }

    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    pub fn queue_capacity(&self) -> usize {
        self.queue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On Tokio's paused clock: waits and deadlines are exact, and "refused at
    /// once" means the refusal is ready on the first poll.
    #[tokio::test(start_paused = true)]
    async fn refuses_beyond_the_queue_and_times_out_in_it() {
        use futures_util::FutureExt as _;
        let gate = Admission::new(1, 1);
        let far = Instant::now() + Duration::from_secs(60);
        let first = gate.enter(far, Duration::from_secs(60)).await.unwrap();
        assert_eq!(gate.running(), 1);
        // One may wait…
        let g = gate.clone();
        let waiter = tokio::spawn(async move {
            g.enter(
                Instant::now() + Duration::from_millis(300),
                Duration::from_millis(300),
            )
            .await
            .map(|_| ())
        });
        while gate.queued() == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(gate.queued(), 1);
        // …the next is refused immediately, without waiting.
        let refused = gate.enter(far, Duration::from_secs(60)).now_or_never();
        let err = refused.expect("refused on the first poll").unwrap_err();
        assert_eq!(err.kind(), "overloaded");
        // The waiter's deadline passes while the first still runs.
        let err = waiter.await.unwrap().unwrap_err();
        assert_eq!(err.kind(), "timeout");
        assert_eq!(gate.queued(), 0);
        drop(first);
        assert_eq!(gate.running(), 0);
        let _again = gate.enter(far, Duration::from_secs(60)).await.unwrap();
    }
}
