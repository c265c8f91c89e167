//! Downloaded bundle bytes → what the bundle downloader does with them before it builds:
//! the artifact sniff, then for an OPA `.tar.gz` the tarball reader, OPA's
//! `.signatures.json` verification (`Verifier::verified_sources`, OPA's rules: a `signing`
//! block requires a signature, a signature needs keys) and the payload assembly (manifest,
//! data, entrypoint annotations); for a sark `.wasm`, `Verifier::prepare` itself (read and
//! signature checks, no build). The tarball path stops before the Rego is compiled into a
//! component (seconds per input). Each input goes through four verifiers built from YAML
//! configs: no keys; an HS256 key without a `signing` block; the key required
//! (`signing: { keyid }`); the key required with a scope and excluded files. Asserted: no
//! panic; a refusal is a message; an assembled bundle has policies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sark::bundle::{BuildOptions, assemble, encode_payload};
use sark::config::Config;
use sark::management::{ArtifactKind, Verifier};
use std::sync::OnceLock;

/// The verifiers' configurations, as `sark.yaml` sections (the seeds are signed with
/// `fuzz-secret` under key id `fuzz`).
const CONFIGS: &[&str] = &[
    "",
    "keys:\n  fuzz: { algorithm: HS256, key: fuzz-secret }\n",
    "services:\n  s: { url: 'http://127.0.0.1:8282' }\n\
     bundles:\n  fuzz: { service: s, signing: { keyid: fuzz } }\n\
     keys:\n  fuzz: { algorithm: HS256, key: fuzz-secret }\n",
    "services:\n  s: { url: 'http://127.0.0.1:8282' }\n\
     bundles:\n  fuzz: { service: s, signing: { keyid: fuzz, scope: write, exclude_files: ['*.md', 'fuzz/extra/*'] } }\n\
     keys:\n  fuzz: { algorithm: HS256, key: fuzz-secret, scope: read }\n",
];

/// The verifier `RemoteBundle::from_config` builds for each configuration.
fn verifiers() -> &'static [Verifier] {
    static VERIFIERS: OnceLock<Vec<Verifier>> = OnceLock::new();
    VERIFIERS.get_or_init(|| {
        CONFIGS
            .iter()
            .map(|yaml| {
                let config = Config::from_yaml(yaml).expect("the fuzz configs are valid");
                Verifier {
                    signing: config.bundles.values().next().and_then(|b| b.signing.clone()),
                    keys: config.keys.clone(),
                    sark_key: None,
                }
            })
            .collect()
    })
}

/// `Verifier::prepare` of a tarball, up to the build: read and verify
/// (`Verifier::verified_sources`), then assemble and encode.
fn tarball(verifier: &Verifier, bytes: &[u8]) -> Result<(), String> {
    let sources = verifier.verified_sources(bytes)?;
    let assembled = assemble(&sources, &BuildOptions::default()).map_err(|e| e.to_string())?;
    assert!(
        !assembled.payload.modules.is_empty(),
        "a bundle without policies was assembled"
    );
    encode_payload(&assembled).map_err(|e| e.to_string())?;
    Ok(())
}

fuzz_target!(
    init: {
        verifiers();
    },
    |data: &[u8]| {
    let kind = match ArtifactKind::sniff(data) {
        Ok(kind) => kind,
        Err(_) => return,
    };
    for verifier in verifiers() {
        let _ = match kind {
            // No build for a component: the whole of `prepare`.
            ArtifactKind::Wasm => verifier.prepare(data.to_vec()).map(drop),
            ArtifactKind::Tarball => tarball(verifier, data),
        };
    }
    }
);
