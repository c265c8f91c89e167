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

    /// glibc's `struct mallinfo2` (glibc 2.33 and later); every field is there for the
    /// layout, two are read.
    #[repr(C)]
    #[allow(dead_code)]
    pub struct MallInfo2 {
        pub arena: usize,
        pub ordblks: usize,
        pub smblks: usize,
        pub hblks: usize,
        pub hblkhd: usize,
        pub usmblks: usize,
        pub fsmblks: usize,
        pub uordblks: usize,
        pub fordblks: usize,
        pub keepcost: usize,
    }

    unsafe extern "C" {
        pub fn mallopt(param: c_int, value: c_int) -> c_int;
        pub fn malloc_trim(pad: usize) -> c_int;
        pub fn mallinfo2() -> MallInfo2;
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

/// Heap bytes allocated and not yet freed, all arenas and mapped blocks together (glibc's
/// `mallinfo2`); `None` where the global allocator is not glibc's (other targets, or the
/// `jemalloc` build). `sark bench` uses it to report what a native engine clone holds.
pub fn heap_in_use_bytes() -> Option<usize> {
    #[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "jemalloc")))]
    {
        // SAFETY: mallinfo2 only reads the allocator's statistics under its own locks.
        let info = unsafe { glibc::mallinfo2() };
        Some(info.uordblks + info.hblkhd)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu", not(feature = "jemalloc"))))]
    None
}

/// The process's resident memory in bytes (`VmRSS` of `/proc/self/status`); `None` where
/// there is no procfs.
pub fn resident_bytes() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
