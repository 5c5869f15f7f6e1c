//! Admission control: at most `concurrency` syntheses run, at most `queue`
//! more wait, and anything beyond is refused at once (503 + Retry-After) so an
//! overloaded server answers fast instead of piling up latency.
//!
//! Memory is admitted too (the seeds' "low-memory mode"): every synthesis
//! holds an estimate of its working memory ([`super::estimate`]) out of one
//! budget (`[limits] memory_mb`). A request whose estimate is over the whole
//! budget is refused (`RequestTooLarge`); one that does not fit now waits in
//! the queue like any other.

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
    /// The memory budget, one permit per MiB.
    memory: Arc<Semaphore>,
    memory_mib: u32,
    concurrency: usize,
    queue: usize,
    waiting: AtomicUsize,
    running: AtomicUsize,
}

/// Held while a synthesis runs; releases its slot when dropped.
#[derive(Debug)]
pub struct Admitted {
    _permit: OwnedSemaphorePermit,
    /// The MiB of the budget this synthesis holds.
    memory: OwnedSemaphorePermit,
    gate: Arc<Admission>,
}

impl Admitted {
    /// Holds `mib` of the budget in all (a synthesis whose size is known
    /// better once its text is phonemized). Waits, polling, for memory that
    /// others hold, while `wait` says to; fails with `RequestTooLarge` when
    /// `mib` is over the whole budget. Never gives memory back early.
    pub fn grow_to(
        &mut self,
        mib: u32,
        wait: &dyn Fn() -> Result<(), TtsError>,
    ) -> Result<(), TtsError> {
        self.gate.fits(mib)?;
        let held = self.memory.num_permits() as u32;
        if mib <= held {
            return Ok(());
        }
        loop {
            if let Ok(more) = self.gate.memory.clone().try_acquire_many_owned(mib - held) {
                self.memory.merge(more);
                return Ok(());
            }
            wait()?;
            std::thread::sleep(Duration::from_millis(5));
        }
    }
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
    pub fn new(concurrency: usize, queue: usize, memory_mib: u32) -> Arc<Admission> {
        let concurrency = concurrency.max(1);
        let memory_mib = memory_mib.max(1);
        Arc::new(Admission {
            permits: Arc::new(Semaphore::new(concurrency)),
            memory: Arc::new(Semaphore::new(memory_mib as usize)),
            memory_mib,
            concurrency,
            queue,
            waiting: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
        })
    }

    /// Waits for a slot and `mib` of the memory budget until `deadline`.
    /// Fails with `RequestTooLarge` when `mib` is over the whole budget, with
    /// `Overloaded` at once when the queue is full, and with `Timeout` when the
    /// deadline passes in it.
    pub async fn enter(
        self: &Arc<Self>,
        deadline: Instant,
        timeout: Duration,
        mib: u32,
    ) -> Result<Admitted, TtsError> {
        self.fits(mib)?;
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            if let Ok(memory) = self.memory.clone().try_acquire_many_owned(mib) {
                return Ok(self.admitted(permit, memory));
            }
            drop(permit);
        }
        let queued = self.waiting.fetch_add(1, Ordering::Relaxed);
        let _waiting = Waiting(&self.waiting);
        if queued >= self.queue {
            return Err(TtsError::Overloaded {
                queued,
                retry_after: Duration::from_secs(1),
            });
        }
        let both = async {
            let permit = self.permits.clone().acquire_owned().await?;
            let memory = self.memory.clone().acquire_many_owned(mib).await?;
            Ok::<_, tokio::sync::AcquireError>((permit, memory))
        };
        match tokio::time::timeout_at(deadline, both).await {
            Ok(Ok((permit, memory))) => Ok(self.admitted(permit, memory)),
            Ok(Err(_)) => Err(TtsError::Cancelled("the server is shutting down".into())),
            Err(_) => Err(TtsError::Timeout(timeout)),
        }
    }

    /// `RequestTooLarge` when `mib` could not fit even with nothing else running.
    pub fn fits(&self, mib: u32) -> Result<(), TtsError> {
        if mib > self.memory_mib {
            return Err(TtsError::RequestTooLarge(format!(
                "the request needs about {mib} MiB of working memory, over this server's \
                 budget of {} MiB for syntheses ([limits] memory_mb)",
                self.memory_mib
            )));
        }
        Ok(())
    }

    fn admitted(
        self: &Arc<Self>,
        permit: OwnedSemaphorePermit,
        memory: OwnedSemaphorePermit,
    ) -> Admitted {
        self.running.fetch_add(1, Ordering::Relaxed);
        Admitted {
            _permit: permit,
            memory,
            gate: self.clone(),
        }
    }

    /// The memory budget, MiB.
    pub fn memory_budget(&self) -> u32 {
        self.memory_mib
    }

    /// MiB of the budget held by running syntheses now.
    pub fn memory_in_use(&self) -> u32 {
        self.memory_mib - self.memory.available_permits() as u32
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
        let gate = Admission::new(1, 1, 100);
        let far = Instant::now() + Duration::from_secs(60);
        let first = gate.enter(far, Duration::from_secs(60), 10).await.unwrap();
        assert_eq!(gate.running(), 1);
        // One may wait…
        let g = gate.clone();
        let waiter = tokio::spawn(async move {
            g.enter(
                Instant::now() + Duration::from_millis(300),
                Duration::from_millis(300),
                10,
            )
            .await
            .map(|_| ())
        });
        while gate.queued() == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(gate.queued(), 1);
        // …the next is refused immediately, without waiting.
        let refused = gate.enter(far, Duration::from_secs(60), 10).now_or_never();
        let err = refused.expect("refused on the first poll").unwrap_err();
        assert_eq!(err.kind(), "overloaded");
        // The waiter's deadline passes while the first still runs.
        let err = waiter.await.unwrap().unwrap_err();
        assert_eq!(err.kind(), "timeout");
        assert_eq!(gate.queued(), 0);
        drop(first);
        assert_eq!(gate.running(), 0);
        let _again = gate.enter(far, Duration::from_secs(60), 10).await.unwrap();
    }
}

#[cfg(test)]
mod memory_tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn memory_is_admitted_from_one_budget() {
        let gate = Admission::new(4, 4, 100);
        let far = Instant::now() + Duration::from_secs(60);
        let timeout = Duration::from_secs(60);
        // Over the whole budget: refused, whatever else runs.
        let err = gate.enter(far, timeout, 101).await.unwrap_err();
        assert_eq!(err.kind(), "request_too_large");
        assert!(err.to_string().contains("100 MiB"), "{err}");
        // Two that fit together run at once; a third waits for memory.
        let a = gate.enter(far, timeout, 60).await.unwrap();
        let mut b = gate.enter(far, timeout, 30).await.unwrap();
        assert_eq!(gate.memory_in_use(), 90);
        let g = gate.clone();
        let c = tokio::spawn(async move { g.enter(far, timeout, 50).await.map(|_| ()) });
        while gate.queued() == 0 {
            tokio::task::yield_now().await;
        }
        assert!(!c.is_finished());
        drop(a);
        c.await.unwrap().unwrap();
        // Growing: within what is free at once; over the budget refused.
        b.grow_to(40, &|| Ok(())).unwrap();
        assert_eq!(gate.memory_in_use(), 40);
        assert_eq!(
            b.grow_to(101, &|| Ok(())).unwrap_err().kind(),
            "request_too_large"
        );
        // Waiting for memory ends when the caller's wait says so.
        let hog = gate.enter(far, timeout, 60).await.unwrap();
        let stop = || Err(TtsError::Timeout(Duration::from_secs(1)));
        assert_eq!(b.grow_to(80, &stop).unwrap_err().kind(), "timeout");
        drop(hog);
        b.grow_to(80, &stop).unwrap();
        drop(b);
        assert_eq!(gate.memory_in_use(), 0);
    }
}
