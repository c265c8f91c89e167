//! Tuning of glibc's allocator for a long-running server (no-ops elsewhere). Evaluations run
//! on tokio's blocking threads, which come and go; glibc gives threads up to eight arenas per
//! core, each keeping its own high-water mark, and keeps freed pages. The soak test showed
//! resident memory creeping up through ~16 arenas of ~10 MiB each on a 2-core machine.
//!
//! glibc also raises its mmap threshold each time it frees a large mapped block, up to
//! 32 MiB; after the first reload, the next reload's multi-megabyte buffers (the bundle
//! file, compiled code) then came from the heap, and freeing them left holes that moved
//! between arenas from one reload to the next (+11 MiB resident, on and off, in the soak).
//! A fixed threshold keeps every large block in its own mapping, returned when freed.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod glibc {
    use std::ffi::c_int;

    pub const M_ARENA_MAX: c_int = -8;
    pub const M_MMAP_THRESHOLD: c_int = -3;

    unsafe extern "C" {
        pub fn mallopt(param: c_int, value: c_int) -> c_int;
        pub fn malloc_trim(pad: usize) -> c_int;
    }
}

/// Blocks of this size or more get their own mapping, unmapped when freed. Requests and
/// decisions stay far below it; bundles, compiled code and large inputs are above it.
pub const MMAP_THRESHOLD_BYTES: std::ffi::c_int = 1 << 20;

/// Caps malloc arenas at two per core and fixes the mmap threshold at
/// [`MMAP_THRESHOLD_BYTES`]. Call first thing in `main`, before other threads.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let arenas = std::ffi::c_int::try_from(cores * 2).unwrap_or(std::ffi::c_int::MAX);
        // SAFETY: mallopt only changes a tuning parameter of glibc's allocator; called
        // before any other thread exists.
        unsafe {
            glibc::mallopt(glibc::M_ARENA_MAX, arenas);
            glibc::mallopt(glibc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
        }
    }
}

/// Returns free heap pages to the system (after a reload, and periodically in `serve`).
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of glibc's allocator; it has no
    // preconditions and is thread-safe.
    unsafe {
        glibc::malloc_trim(0);
    }
}
