//! The `sark` binary: see `sark --help` and the README's CLI reference.

use std::process::ExitCode;

/// `--features jemalloc`: jemalloc with background purging (see `bench/allocators.sh`).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    sark::allocator::tune();
    sark::cli::init_tracing();
    match sark::cli::run() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
