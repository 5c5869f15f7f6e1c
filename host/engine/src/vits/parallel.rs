//! Threading for the CPU kernels: how many workers a piece of work gets, the
//! work-sharing loop they run, and the persistent workers that run it.
//!
//! The convolutions ([`super::conv`]), the fused passes ([`super::cpu`]) and attention
//! ([`super::attention`]) all split their work the same way: items handed out through an
//! atomic counter to the calling thread and the pool's workers, and one place decides
//! whether a job is big enough to be worth a thread at all. Keeping that here means the
//! kernels depend on this module and never on each other for it.
//!
//! A sentence runs about a hundred parallel regions (one per convolution or pass), many
//! of them short. Spawning scoped threads for each cost tens of microseconds apiece,
//! which was most of a short sentence's fixed cost. The workers here live for the
//! process: after a region they spin for [`SPIN`] (the next region usually follows
//! within microseconds), then sleep on a condition variable until the next one.

use std::cell::Cell;
use std::cell::UnsafeCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Below this many multiply-adds a convolution (or attention) runs on the calling
/// thread only: sharing a region costs a few microseconds even with the workers
/// spinning, and more when they have gone to sleep. (The value was set when each region
/// spawned threads, at tens of microseconds; 1 M and 250 k measured no clearly better
/// on the shared 2-core machine, whose noise hid differences of a few per cent.)
pub(crate) const CONV_MIN_MACS: usize = 4_000_000;
/// Below this many elements an elementwise pass stays on the calling thread.
pub(crate) const ELEMENTWISE_MIN_ELEMS: usize = 1 << 16;

/// How long an idle worker spins, waiting for the next region, before it sleeps: the
/// gaps between a sentence's regions are mostly a few to a few hundred microseconds,
/// and waking a sleeping thread costs tens of microseconds on a virtual machine.
const SPIN: Duration = Duration::from_micros(300);

/// Upper bound on worker threads (benchmarks set it to 1 to measure one core).
pub(crate) static MAX_THREADS: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Worker threads for `work` units when `min` of them are worth a thread: one below
/// `min`, otherwise [`max_threads`].
pub(crate) fn threads_for(work: usize, min: usize) -> usize {
    if work < min {
        1
    } else {
        max_threads()
    }
}

/// The cores this process may use (read once: on Linux it reads cgroup files).
fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The cores this process may use, capped by [`MAX_THREADS`].
pub(crate) fn max_threads() -> usize {
    cores().min(MAX_THREADS.load(Ordering::Relaxed)).max(1)
}

/// Raw output pointer shared by the workers; each writes disjoint samples.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr(pub(crate) *mut f32);
// SAFETY: workers write disjoint (channel, time) ranges and the owner outlives them.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// The pointer (a method, so that closures capture the `Sync` wrapper, not the
    /// pointer inside it).
    pub(crate) fn get(self) -> *mut f32 {
        self.0
    }

    /// Row `row` of `len` floats.
    ///
    /// # Safety
    /// The row must be in bounds and written by one worker only.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn row(&self, row: usize, len: usize) -> &mut [f32] {
        std::slice::from_raw_parts_mut(self.0.add(row * len), len)
    }
}

thread_local! {
    /// The calling thread's scratch buffer, kept between regions (a conv's input
    /// window: tens to hundreds of KiB, allocated once per thread instead of per call).
    static SCRATCH: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// Runs `work(item, scratch)` for every item in `0..items` on `threads` threads (the
/// calling one included), handing items out one at a time. `scratch` is a buffer the
/// thread keeps between calls; its contents are unspecified.
pub(crate) fn run_items<F>(items: usize, threads: usize, work: F)
where
    F: Fn(usize, &mut Vec<f32>) + Sync,
{
    let threads = threads.min(items);
    if threads > 1 {
        if let Some(pool) = pool() {
            if pool.try_run(items, threads - 1, &work) {
                return;
            }
        }
    }
    // One thread, no pool, or the pool busy (another synthesis, or a region nested in
    // an item of this one): every item on this thread. The scratch buffer is taken, not
    // borrowed, so a nested region gets an empty one.
    let mut buf = SCRATCH.take();
    for i in 0..items {
        work(i, &mut buf);
    }
    SCRATCH.set(buf);
}

/// The process's workers (`cores − 1` of them; the caller is the last), started on
/// first use; `None` on a single core.
fn pool() -> Option<&'static Pool> {
    static POOL: OnceLock<Option<&'static Pool>> = OnceLock::new();
    *POOL.get_or_init(|| {
        let helpers = cores() - 1;
        if helpers == 0 {
            return None;
        }
        let pool: &'static Pool = Box::leak(Box::new(Pool {
            helpers,
            taken: AtomicBool::new(false),
            job: UnsafeCell::new(None),
            tickets: AtomicU64::new(0),
            done: AtomicUsize::new(0),
            seats: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            epoch: AtomicUsize::new(0),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        }));
        for i in 0..helpers {
            let spawned = std::thread::Builder::new()
                .name(format!("voxpipe-kernel-{i}"))
                .spawn(move || pool.serve());
            if spawned.is_err() {
                // The helpers that did start still serve; a region never waits for a
                // helper, only for items being run, so fewer of them is never a hang.
                break;
            }
        }
        Some(pool)
    })
}

/// A region's work as the helpers see it: the caller's closure with its lifetime
/// erased (see [`Pool::try_run`] for why that is sound).
type Job = &'static (dyn Fn(usize, &mut Vec<f32>) + Sync);

/// A ticket word: the region's item count in the high half, the next item in the low
/// half. One `fetch_add` hands out an item and says, from the same word, whether it
/// exists: an item of a region that has ended (or not begun) reads as past the end,
/// so no thread ever runs an item twice or runs one of a region it did not see begin.
fn ticket(items: usize, next: usize) -> u64 {
    ((items as u64) << 32) | next as u64
}

/// One region at a time: its closure, the tickets of its items, how many are done.
///
/// The caller waits only for items being run, never for a helper as such: a helper
/// that woke late, or was descheduled before it took an item, finds the tickets spent
/// and goes back to waiting. (Waiting for every helper that joined cost a scheduler
/// time slice whenever a helper was preempted on a busy machine.)
struct Pool {
    helpers: usize,
    /// Held by the thread whose region the pool runs; a region that finds it held runs
    /// on its own thread.
    taken: AtomicBool,
    /// Written only while `taken` is held and no item is being run.
    job: UnsafeCell<Option<Job>>,
    /// See [`ticket`]. A new region's store publishes `job` (release); taking a ticket
    /// acquires it.
    tickets: AtomicU64,
    /// Items of the current region whose `work` has returned (or that were given up).
    done: AtomicUsize,
    /// Helpers that may still join the current region (the caller's `threads − 1`).
    seats: AtomicUsize,
    /// Whether a helper's item panicked (the caller panics in turn).
    panicked: AtomicBool,
    /// Bumped for every region; idle helpers wait for it to change.
    epoch: AtomicUsize,
    /// Helpers asleep (or about to be) on `wake`.
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
}

// SAFETY: `job` is written only by the thread holding `taken`, while no item is being
// run, and read only by helpers holding a ticket of a live item (see `try_run`, `serve`).
unsafe impl Sync for Pool {}

impl Pool {
    /// Runs `work` for every item on the calling thread and up to `helpers` workers,
    /// returning when every item is done; `false` (nothing run) when the pool is busy.
    fn try_run(
        &self,
        items: usize,
        helpers: usize,
        work: &(dyn Fn(usize, &mut Vec<f32>) + Sync),
    ) -> bool {
        assert!(items < 1 << 31, "too many items for one region");
        if self
            .taken
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        // SAFETY: the lifetime is erased only for the helpers, who call `job` only with
        // a ticket of a live item; `Close` (also when the caller's own items unwind)
        // returns only when every item is done, i.e. no call is running or can start,
        // before this frame, and `work`, end.
        let job: Job = unsafe { std::mem::transmute(work) };
        // SAFETY: `taken` is ours and the last region's items are all done.
        unsafe { *self.job.get() = Some(job) };
        self.done.store(0, Ordering::Relaxed);
        self.seats
            .store(helpers.min(self.helpers), Ordering::Relaxed);
        self.tickets.store(ticket(items, 0), Ordering::Release);
        self.epoch.fetch_add(1, Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.wake.notify_all();
        }

        /// Ends the region: gives up the items nobody took (only after a panic), waits
        /// for the items being run. A guard, so that it runs however the caller's share
        /// ends.
        struct Close<'a> {
            pool: &'a Pool,
            items: usize,
            panicked: &'a Cell<bool>,
        }
        impl Drop for Close<'_> {
            fn drop(&mut self) {
                let pool = self.pool;
                let spent = ticket(self.items, self.items);
                let left = pool.tickets.swap(spent, Ordering::AcqRel);
                let next = (left & u64::from(u32::MAX)) as usize;
                if next < self.items {
                    pool.done.fetch_add(self.items - next, Ordering::Relaxed);
                }
                let mut spins = 0u32;
                while pool.done.load(Ordering::Acquire) < self.items {
                    // A helper's last item may take a while: spin briefly, then let
                    // other threads (another synthesis) have the core.
                    spins += 1;
                    if spins < 1 << 12 {
                        std::hint::spin_loop();
                    } else {
                        std::thread::yield_now();
                    }
                }
                // SAFETY: `taken` is ours and no item is being run.
                unsafe { *pool.job.get() = None };
                self.panicked
                    .set(pool.panicked.swap(false, Ordering::Relaxed));
                pool.taken.store(false, Ordering::Release);
            }
        }
        let panicked = Cell::new(false);
        let close = Close {
            pool: self,
            items,
            panicked: &panicked,
        };
        let mut buf = SCRATCH.take();
        let mut caught = None;
        while let Some(i) = self.take_item() {
            let run = catch_unwind(AssertUnwindSafe(|| work(i, &mut buf)));
            // Done even when it panicked: `Close` waits for every item taken.
            self.done.fetch_add(1, Ordering::Release);
            if let Err(payload) = run {
                caught = Some(payload);
                break;
            }
        }
        SCRATCH.set(buf);
        drop(close);
        if let Some(payload) = caught {
            std::panic::resume_unwind(payload);
        }
        assert!(!panicked.get(), "a CPU kernel worker panicked");
        true
    }

    /// The next item of the current region, if there is one left.
    fn take_item(&self) -> Option<usize> {
        let t = self.tickets.fetch_add(1, Ordering::Acquire);
        let (items, next) = ((t >> 32) as usize, (t & u64::from(u32::MAX)) as usize);
        (next < items).then_some(next)
    }

    /// A helper's life: wait for a region, take a seat if one is left, run items until
    /// none is left, repeat.
    fn serve(&self) {
        let mut buf = Vec::new();
        let mut seen = self.epoch.load(Ordering::Acquire);
        loop {
            seen = self.wait_for_region(seen);
            let seated = self
                .seats
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| s.checked_sub(1))
                .is_ok();
            if !seated {
                continue;
            }
            while let Some(i) = self.take_item() {
                // SAFETY: a live item's ticket: the region's owner set `job` before
                // publishing the tickets and changes it only once this item is done.
                let job = unsafe { *self.job.get() };
                if let Some(job) = job {
                    if catch_unwind(AssertUnwindSafe(|| job(i, &mut buf))).is_err() {
                        self.panicked.store(true, Ordering::Relaxed);
                    }
                }
                self.done.fetch_add(1, Ordering::Release);
            }
        }
    }

    /// Waits until `epoch` differs from `seen`: spinning for [`SPIN`], then asleep.
    fn wait_for_region(&self, seen: usize) -> usize {
        let start = Instant::now();
        let mut spins = 0u32;
        loop {
            let now = self.epoch.load(Ordering::Acquire);
            if now != seen {
                return now;
            }
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(64) && start.elapsed() > SPIN {
                let mut guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
                self.sleepers.fetch_add(1, Ordering::SeqCst);
                while self.epoch.load(Ordering::SeqCst) == seen {
                    guard = self.wake.wait(guard).unwrap_or_else(|e| e.into_inner());
                }
                self.sleepers.fetch_sub(1, Ordering::SeqCst);
                return self.epoch.load(Ordering::Acquire);
            }
            std::hint::spin_loop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `items` items on `threads` threads; returns how often each item ran.
    fn counts(items: usize, threads: usize) -> Vec<usize> {
        let hits: Vec<AtomicUsize> = (0..items).map(|_| AtomicUsize::new(0)).collect();
        run_items(items, threads, |i, buf| {
            buf.push(i as f32); // the scratch buffer is usable
            hits[i].fetch_add(1, Ordering::Relaxed);
        });
        hits.into_iter().map(AtomicUsize::into_inner).collect()
    }

    #[test]
    fn every_item_runs_once_region_after_region() {
        // Many short regions back to back: helpers spinning, joining late, or asleep.
        for round in 0..2000 {
            let items = 1 + round % 37;
            assert!(counts(items, 4).iter().all(|&c| c == 1), "round {round}");
        }
        std::thread::sleep(SPIN * 4); // helpers asleep now
        assert!(counts(100, 8).iter().all(|&c| c == 1));
    }

    #[test]
    fn concurrent_and_nested_regions_each_run_every_item() {
        // Several callers at once (one gets the pool, the others run on their own
        // threads), each with regions nested in its items.
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..200 {
                        let inner = AtomicUsize::new(0);
                        run_items(8, 4, |_, _| {
                            run_items(5, 4, |_, _| {
                                inner.fetch_add(1, Ordering::Relaxed);
                            });
                        });
                        assert_eq!(inner.into_inner(), 40);
                    }
                });
            }
        });
    }

    #[test]
    fn a_panicking_item_reaches_the_caller_and_the_pool_survives() {
        for _ in 0..20 {
            let caught = std::panic::catch_unwind(|| {
                run_items(64, 4, |i, _| {
                    if i == 37 {
                        panic!("item 37");
                    }
                    std::hint::black_box(i);
                })
            });
            assert!(caught.is_err());
            assert!(counts(50, 4).iter().all(|&c| c == 1));
        }
    }
}
