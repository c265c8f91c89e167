//! The `sark` binary: see `sark --help` and the README's CLI reference.

use std::process::ExitCode;

/// Caps glibc's malloc arenas at two per core. Evaluations run on tokio's blocking threads,
/// which come and go; glibc gives threads up to eight arenas per core, each keeping its own
/// high-water mark, so a long-running server's resident memory crept up to ~16 × 10 MiB of
/// fragments on a 2-core machine (measured with the soak test).
fn cap_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const M_ARENA_MAX: std::ffi::c_int = -8;
        unsafe extern "C" {
            fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
        }
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let arenas = std::ffi::c_int::try_from(cores * 2).unwrap_or(std::ffi::c_int::MAX);
        // SAFETY: called first thing in main, before any other thread exists; mallopt
        // only changes a tuning parameter of glibc's allocator.
        unsafe {
            mallopt(M_ARENA_MAX, arenas);
        }
    }
}

fn main() -> ExitCode {
    cap_malloc_arenas();
    sark::cli::init_tracing();
    match sark::cli::run() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
