//! The component's global allocator: small blocks from free lists by size class, the rest
//! from wasi-libc's `malloc`.
//!
//! Evaluations allocate and free many small values (Regorus's `Value`s, their `Rc`s, map
//! nodes, strings). wasi-libc's dlmalloc spends tens of instructions on each; a free list
//! per 16-byte size class takes one load and one store, since Rust passes the block's size
//! back on free. Freed small blocks stay on their list (for the next block of their class)
//! rather than going back to `malloc`: an instance keeps its peak of small blocks per
//! class. The component has one thread, so the lists need no lock.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;

/// Sizes up to this many bytes (alignment up to [`GRAIN`]) come from the free lists.
const MAX_SMALL: usize = 512;
/// The size classes' step and the blocks' alignment.
const GRAIN: usize = 16;
/// Bytes taken from `malloc` at a time to cut new small blocks from.
const CHUNK: usize = 64 << 10;
const CLASSES: usize = MAX_SMALL / GRAIN + 1;

struct Lists {
    /// Head of each class's free list; a free block's first word links to the next.
    heads: [*mut u8; CLASSES],
    /// The unused part of the current chunk.
    next: *mut u8,
    end: *mut u8,
}

/// Free lists in front of [`System`].
pub struct SmallAlloc(UnsafeCell<Lists>);

// SAFETY: the component is single-threaded (wasm32-wasip2 without threads).
unsafe impl Sync for SmallAlloc {}

impl SmallAlloc {
    const fn new() -> Self {
        Self(UnsafeCell::new(Lists {
            heads: [std::ptr::null_mut(); CLASSES],
            next: std::ptr::null_mut(),
            end: std::ptr::null_mut(),
        }))
    }
}

/// The class of a small layout, or `None` for `malloc`.
fn class(layout: &Layout) -> Option<usize> {
    (layout.size() <= MAX_SMALL && layout.align() <= GRAIN)
        .then(|| layout.size().div_ceil(GRAIN).max(1))
}

// SAFETY: small blocks are `class * GRAIN` bytes, `GRAIN`-aligned (chunks are, and every
// block's size is a multiple of it), handed out once until freed; the rest is `System`'s.
unsafe impl GlobalAlloc for SmallAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(c) = class(&layout) else {
            // SAFETY: forwarded as received.
            return unsafe { System.alloc(layout) };
        };
        // SAFETY: single-threaded, and no reference to the lists outlives this call.
        let lists = unsafe { &mut *self.0.get() };
        let head = lists.heads[c];
        if !head.is_null() {
            // SAFETY: a free block holds the next free block's address in its first word.
            lists.heads[c] = unsafe { head.cast::<*mut u8>().read() };
            return head;
        }
        let size = c * GRAIN;
        if (lists.end as usize) - (lists.next as usize) < size {
            // The rest of the old chunk is left unused (less than one block of this class).
            // SAFETY: a valid, non-zero layout.
            let chunk = unsafe { System.alloc(Layout::from_size_align_unchecked(CHUNK, GRAIN)) };
            if chunk.is_null() {
                return chunk;
            }
            lists.next = chunk;
            // SAFETY: one past the end of the chunk.
            lists.end = unsafe { chunk.add(CHUNK) };
        }
        let block = lists.next;
        // SAFETY: `size` bytes are left in the chunk.
        lists.next = unsafe { block.add(size) };
        block
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some(c) = class(&layout) else {
            // SAFETY: a block `System` gave for this layout.
            return unsafe { System.dealloc(ptr, layout) };
        };
        // SAFETY: single-threaded; `ptr` is a small block of class `c`, at least one word.
        let lists = unsafe { &mut *self.0.get() };
        unsafe { ptr.cast::<*mut u8>().write(lists.heads[c]) };
        lists.heads[c] = ptr;
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's layout with the size it asks for.
        let new = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (class(&layout), class(&new)) {
            (Some(a), Some(b)) if a == b => ptr,
            // SAFETY: both are `System`'s.
            (None, None) => unsafe { System.realloc(ptr, layout, new_size) },
            _ => {
                // SAFETY: a new block, the old one's bytes copied, the old one freed.
                unsafe {
                    let block = self.alloc(new);
                    if !block.is_null() {
                        std::ptr::copy_nonoverlapping(ptr, block, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                    block
                }
            }
        }
    }
}

#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: SmallAlloc = SmallAlloc::new();

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn small_blocks_are_aligned_distinct_and_reused_by_class() {
        let a = SmallAlloc::new();
        unsafe {
            let blocks: Vec<*mut u8> = (1..=MAX_SMALL).map(|n| a.alloc(layout(n, 1))).collect();
            for (i, &b) in blocks.iter().enumerate() {
                assert_eq!(b as usize % GRAIN, 0);
                std::ptr::write_bytes(b, i as u8, i + 1);
            }
            for (i, &b) in blocks.iter().enumerate() {
                assert!(
                    std::slice::from_raw_parts(b, i + 1)
                        .iter()
                        .all(|&x| x == i as u8)
                );
            }
            // A freed block is the next one of its class, whatever the exact size asked.
            a.dealloc(blocks[40], layout(41, 1));
            assert_eq!(a.alloc(layout(33, 8)), blocks[40]);
            a.dealloc(blocks[40], layout(33, 8));
            assert_ne!(
                a.alloc(layout(64, 8)),
                blocks[40],
                "64 bytes is another class"
            );
        }
    }

    #[test]
    fn realloc_keeps_the_bytes_across_classes_and_large_blocks_go_to_malloc() {
        let a = SmallAlloc::new();
        unsafe {
            let p = a.alloc(layout(10, 8));
            std::ptr::copy_nonoverlapping(b"0123456789".as_ptr(), p, 10);
            assert_eq!(a.realloc(p, layout(10, 8), 16), p, "same class: same block");
            let q = a.realloc(p, layout(16, 8), 4000);
            assert_eq!(std::slice::from_raw_parts(q, 10), b"0123456789");
            let r = a.realloc(q, layout(4000, 8), 20);
            assert_eq!(std::slice::from_raw_parts(r, 10), b"0123456789");
            a.dealloc(r, layout(20, 8));
            // Over-aligned and large layouts are malloc's.
            let big = a.alloc(layout(64, 64));
            assert_eq!(big as usize % 64, 0);
            a.dealloc(big, layout(64, 64));
        }
    }
}
