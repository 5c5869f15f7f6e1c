//! The allocator of plugins built for `wasm32-unknown-unknown`.
//!
//! Rust's default allocator there (dlmalloc) gets every byte with
//! `memory.grow` and never uses the free part of the module's initial memory.
//! In the host's pooling allocator each grow costs an `mprotect` during the
//! call and another, with a TLB shootdown across cores, when the instance
//! slot is reset: about a third of a small call's cost.
//!
//! Since every call runs in a fresh instance, allocations are short-lived.
//! This allocator serves them first from the free initial memory
//! (`__heap_base` up to the initial size, 4 MiB with the workspace's linker
//! flags) by bumping a pointer, reusing space only when the latest block is
//! freed or resized. Once that arena is used up, everything else goes to the
//! system allocator, so a plugin that churns memory wastes at most the arena.
//! (On `wasm32-wasip2`, wasi-libc's `malloc` owns `__heap_base`, so this
//! allocator is not installed there.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;

extern "C" {
    /// Start of the heap, placed by the linker after the stack and data.
    static __heap_base: u8;
}

struct Arena {
    /// Next free byte; 0 until first use.
    next: usize,
    end: usize,
    /// Start of the latest allocation, which can be freed or grown in place.
    last: usize,
}

pub struct ArenaThenSystem {
    arena: UnsafeCell<Arena>,
}

// SAFETY: wasm32-unknown-unknown plugins are single-threaded.
unsafe impl Sync for ArenaThenSystem {}

impl ArenaThenSystem {
    pub const fn new() -> Self {
        ArenaThenSystem {
            arena: UnsafeCell::new(Arena {
                next: 0,
                end: 0,
                last: 0,
            }),
        }
    }

    fn in_arena(a: &Arena, ptr: *mut u8) -> bool {
        let p = ptr as usize;
        a.end != 0 && p < a.end && p >= unsafe { &__heap_base as *const u8 as usize }
    }
}

impl Default for ArenaThenSystem {
    fn default() -> Self {
        Self::new()
    }
}

unsafe impl GlobalAlloc for ArenaThenSystem {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let a = &mut *self.arena.get();
        if a.end == 0 {
            a.next = &__heap_base as *const u8 as usize;
            a.end = core::arch::wasm32::memory_size(0) * 65536;
        }
        let start = (a.next + layout.align() - 1) & !(layout.align() - 1);
        match start.checked_add(layout.size()) {
            Some(stop) if stop <= a.end => {
                a.last = start;
                a.next = stop;
                start as *mut u8
            }
            _ => System.alloc(layout),
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let a = &mut *self.arena.get();
        if Self::in_arena(a, ptr) {
            if ptr as usize == a.last {
                a.next = a.last;
            }
        } else {
            System.dealloc(ptr, layout)
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let a = &mut *self.arena.get();
        if !Self::in_arena(a, ptr) {
            return System.realloc(ptr, layout, new_size);
        }
        // The latest block grows or shrinks in place while the arena lasts.
        if ptr as usize == a.last {
            if let Some(stop) = a.last.checked_add(new_size) {
                if stop <= a.end {
                    a.next = stop;
                    return ptr;
                }
            }
        } else if new_size <= layout.size() {
            return ptr;
        }
        let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
        let new = self.alloc(new_layout);
        if !new.is_null() {
            core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
            self.dealloc(ptr, layout);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: ArenaThenSystem = ArenaThenSystem::new();
