//! Allocator tuning for synthesis.
//!
//! The decoder's full-rate activations are tens of MiB per tensor (44 MB for 15 s of
//! audio at 22 kHz and 32 channels). glibc serves blocks above its mmap threshold (at
//! most 32 MiB) with a fresh `mmap` and unmaps them on `free`, so every such tensor
//! was faulted in and zeroed page by page by the kernel, once per convolution:
//! measured, a quarter of a long sentence's synthesis time went to page faults.
//! [`keep_freed_memory`] makes glibc serve them from its heaps instead, where freed
//! blocks are reused by the next convolution.
//!
//! The price is that freed memory stays resident. [`IdleTrim`] hands it back to the
//! kernel once no synthesis has run for a while, so an idle server shrinks again.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Blocks below this come from glibc's heaps (and are reused) instead of `mmap`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 256 << 20;
/// The largest mmap threshold older glibc accepts.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD_OLD_MAX: libc::c_int = 32 << 20;
/// Free memory at the top of a heap is only returned when it exceeds this.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: libc::c_int = 512 << 20;

/// Syntheses running now.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);
/// Syntheses ended since start-up.
static ENDED: AtomicUsize = AtomicUsize::new(0);

/// Call once at start-up, before threads allocate: large blocks are recycled by the
/// allocator instead of being unmapped on every `free` (see the module docs). A no-op
/// off glibc.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; the options are valid.
    unsafe {
        // Older glibc refuses thresholds above 32 MiB (and returns 0); fall back to its
        // maximum. Setting the trim threshold also freezes the mmap threshold, so it is
        // only set once an mmap threshold has been accepted: otherwise glibc would stay
        // at its 128 KiB default instead of raising it dynamically.
        let accepted = libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
            || libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_OLD_MAX) == 1;
        if accepted {
            libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
        }
    }
}

/// Returns freed heap memory to the kernel now. A no-op off glibc.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Marks a synthesis as running for as long as it lives.
pub struct Busy(());

impl Busy {
    pub fn enter() -> Self {
        ACTIVE.fetch_add(1, Ordering::SeqCst);
        Busy(())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        ENDED.fetch_add(1, Ordering::SeqCst);
        ACTIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A background thread that calls [`release_free_memory`] when syntheses have ended
/// and none has run for a whole `period`.
pub struct IdleTrim;

impl IdleTrim {
    /// Starts the thread; it lives as long as the process.
    pub fn start(period: Duration) -> std::io::Result<()> {
        std::thread::Builder::new()
            .name("voxpipe-idle-trim".into())
            .spawn(move || {
                let mut clock = TrimClock::new(ENDED.load(Ordering::SeqCst));
                loop {
                    std::thread::sleep(period);
                    let idle = ACTIVE.load(Ordering::SeqCst) == 0;
                    if clock.tick(ENDED.load(Ordering::SeqCst), idle) {
                        release_free_memory();
                    }
                }
            })
            .map(|_| ())
    }
}

/// When to trim, one tick per period: only after a whole quiet period (work that
/// ended just now is likely to be followed by more), and only once per burst.
#[derive(Debug)]
struct TrimClock {
    /// `ENDED` at the previous tick.
    seen: usize,
    /// `ENDED` at the last trim.
    trimmed: usize,
}

impl TrimClock {
    fn new(ended: usize) -> Self {
        Self {
            seen: ended,
            trimmed: ended,
        }
    }

    /// `ended`: syntheses ended so far; `idle`: none is running.
    fn tick(&mut self, ended: usize, idle: bool) -> bool {
        let trim = idle && ended == self.seen && ended != self.trimmed;
        if trim {
            self.trimmed = ended;
        }
        self.seen = ended;
        trim
    }
}

#[cfg(test)]
mod tests {
    use super::TrimClock;

    #[test]
    fn trims_once_after_a_quiet_period() {
        let mut clock = TrimClock::new(0);
        assert!(!clock.tick(0, true), "nothing ran yet");
        assert!(!clock.tick(2, true), "work ended during this period");
        assert!(clock.tick(2, true), "a whole quiet period after it");
        assert!(!clock.tick(2, true), "already trimmed");
        assert!(!clock.tick(3, false), "busy");
        assert!(!clock.tick(3, false), "still busy");
        assert!(
            clock.tick(3, true),
            "idle, nothing ended in the last period"
        );
    }
}
