//! The `sark` binary: see `sark --help` and the README's CLI reference.

use std::process::ExitCode;

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
