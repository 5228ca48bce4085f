//! Counting the bytes a piece of code allocates, to check "decoding never
//! allocates more than the input's size" (`docs/record-format.md`, common
//! rules).
//!
//! A binary that wants the check installs [`CountingAllocator`] as its
//! global allocator (the `record_decode` and `record_roundtrip` fuzz targets
//! and the corpus replay test do):
//!
//! ```
//! use atmostonce_fuzz_check::alloc::{CountingAllocator, is_counting, measure};
//!
//! #[global_allocator]
//! static ALLOCATOR: CountingAllocator = CountingAllocator;
//!
//! fn main() {
//!     assert!(is_counting());
//!     let (_, allocated) = measure(|| vec![0u8; 64]);
//!     assert_eq!(allocated.bytes, 64);
//! }
//! ```
//!
//! Counters are per thread, so tests running in parallel do not see each
//! other's allocations. In a binary without the allocator nothing is
//! counted; [`is_counting`] tells the two apart, so no check passes
//! vacuously by accident.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    // `const` initialisation and `Cell<usize>` (no destructor): reading or
    // writing these never allocates, so the allocator may use them.
    static BYTES_REQUESTED: Cell<usize> = const { Cell::new(0) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

/// The system allocator, counting on each thread the bytes requested by
/// `alloc`, `alloc_zeroed` and the growth of `realloc`.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAllocator;

fn count(bytes: usize) {
    // `try_with` fails only while the thread's locals are being torn down;
    // an allocation then simply goes uncounted.
    let _ = BYTES_REQUESTED.try_with(|total| total.set(total.get().saturating_add(bytes)));
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get().saturating_add(1)));
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees carry over; the counting only touches
// const-initialised thread locals, which never allocate or unwind.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: the caller upholds `GlobalAlloc::alloc_zeroed`'s contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size.saturating_sub(layout.size()));
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// What a closure allocated on the current thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Allocated {
    /// Bytes requested (a `realloc` counts its growth only).
    pub bytes: usize,
    /// Number of allocation calls.
    pub calls: usize,
}

fn snapshot() -> Allocated {
    Allocated {
        bytes: BYTES_REQUESTED.with(Cell::get),
        calls: ALLOCATIONS.with(Cell::get),
    }
}

/// Runs `f` and reports what it allocated on this thread.
pub fn measure<T>(f: impl FnOnce() -> T) -> (T, Allocated) {
    let before = snapshot();
    let value = f();
    let after = snapshot();
    let allocated = Allocated {
        bytes: after.bytes - before.bytes,
        calls: after.calls - before.calls,
    };
    (value, allocated)
}

/// True when [`CountingAllocator`] is this binary's global allocator.
#[must_use]
pub fn is_counting() -> bool {
    let (_, allocated) = measure(|| std::hint::black_box(Box::new(0u64)));
    allocated.bytes > 0
}
