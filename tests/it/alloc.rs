//! The binary's global allocator: the system allocator, with two per-thread counters.
//!
//! A `#[tokio::test]` runs on a current-thread runtime, so every allocation made while a request
//! is served is counted on the test's own thread, whatever the other tests of this binary do at
//! the same time. Formerly two allocators, one per test binary:
//! - `allocs()`, the number of allocations and reallocations (`attack_cookie_bytes`: tells a
//!   cache hit, a fingerprint and a lookup, from the full path, base64, AES-GCM, JSON, token
//!   verification, without timing);
//! - `live_bytes()`, the bytes allocated and not yet freed (`attack_webhook`: memory held by
//!   replayed deliveries).
//!
//! (`tests/soak.rs` counts live bytes over all threads, so it stays a binary of its own.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    /// Allocations and reallocations made on this thread.
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
    /// Bytes allocated on this thread minus bytes freed on it.
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

fn count() {
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
}

fn add(n: isize) {
    let _ = LIVE.try_with(|c| c.set(c.get() + n));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            add(layout.size() as isize);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // Counted as one allocation, as the default `alloc_zeroed` (which calls `alloc`) was.
        count();
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            add(layout.size() as isize);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        add(-(layout.size() as isize));
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            add(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations and reallocations made so far on the calling thread.
pub(crate) fn allocs() -> u64 {
    ALLOCS.with(Cell::get)
}

/// Live heap bytes allocated (and not freed) so far on the calling thread.
pub(crate) fn live_bytes() -> isize {
    LIVE.with(Cell::get)
}
