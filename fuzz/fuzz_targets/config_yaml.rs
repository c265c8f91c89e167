//! Config YAML → the parser and validator: a config or a message, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = sark::config::Config::from_yaml(text);
    }
});
