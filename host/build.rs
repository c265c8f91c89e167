//! Locates the evaluator component (built by `make guest`) that the `sark` binary embeds.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=SARK_EVALUATOR_WASM");
    let path = match std::env::var_os("SARK_EVALUATOR_WASM") {
        Some(p) => PathBuf::from(p),
        None => {
            let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| manifest.join("..").join("target"));
            target.join("wasm32-wasip2/guest/sark_guest.wasm")
        }
    };
    if !path.is_file() {
        panic!(
            "the evaluator component {} is missing: build it first with `make guest` \
             (cargo build -p sark-guest --target wasm32-wasip2 --profile guest)",
            path.display()
        );
    }
    println!("cargo:rerun-if-changed={}", path.display());
    println!("cargo:rustc-env=SARK_EVALUATOR_WASM={}", path.display());
    embed_example_policies();
}

/// Writes `example_policies.rs`: the bundle files of `../policies`, embedded so that
/// `sark health-check` works without any file.
fn embed_example_policies() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest
        .join("..")
        .join("policies")
        .canonicalize()
        .expect("policies/ exists");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        println!("cargo:rerun-if-changed={}", dir.display());
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".rego")
                || name == "data.json"
                || name == "data.yaml"
                || rel == ".manifest"
            {
                println!("cargo:rerun-if-changed={}", path.display());
                files.push((rel, path));
            }
        }
    }
    files.sort();
    let mut out = String::from(
        "/// Files of the example policy set, embedded at build time.\npub static EXAMPLE_POLICY_FILES: &[(&str, &[u8])] = &[\n",
    );
    for (rel, path) in files {
        out.push_str(&format!(
            "    ({rel:?}, include_bytes!({:?})),\n",
            path.display().to_string()
        ));
    }
    out.push_str("];\n");
    let dest = PathBuf::from(std::env::var_os("OUT_DIR").unwrap()).join("example_policies.rs");
    std::fs::write(dest, out).unwrap();
}
