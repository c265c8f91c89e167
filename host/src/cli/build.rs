//! `sark build`: a policy directory or OPA bundle into one signed or unsigned `.wasm` bundle.

use super::build_in_memory;
use crate::bundle::signing;
use crate::bundle::{BuildOptions, Bundle, SourceSet};
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::ExitCode;

/// Build a policy directory (or OPA bundle .tar.gz) into one self-contained .wasm bundle.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory with *.rego, data.json/data.yaml and an optional .manifest, or a .tar.gz.
    dir: PathBuf,
    /// Output bundle file.
    #[arg(short, long)]
    output: PathBuf,
    /// Entrypoint (data.a.b or a/b); adds to METADATA `entrypoint: true` annotations.
    #[arg(short, long = "entrypoint")]
    entrypoints: Vec<String>,
    /// Revision (overrides the manifest's).
    #[arg(long)]
    revision: Option<String>,
    /// Ed25519 private key (PKCS#8 PEM, from `sark keygen`) to sign the bundle with.
    #[arg(long)]
    signing_key: Option<PathBuf>,
    /// Parse modules as Rego v0 (OPA's flag), unless the `.manifest` gives `rego_version`
    /// or `file_rego_versions`.
    #[arg(long)]
    v0_compatible: bool,
}

impl Args {
    /// Builds, signs when asked, and writes the bundle atomically.
    pub fn run(self) -> Result<ExitCode> {
        // Read the key first: a bad key must not cost a build.
        let key = match &self.signing_key {
            Some(p) => Some(signing::read_signing_key(p)?),
            None => None,
        };
        let options = BuildOptions {
            entrypoints: self.entrypoints,
            revision: self.revision,
            v0_compatible: self.v0_compatible,
        };
        let sources = SourceSet::read(&self.dir)?;
        let mut bundle = build_in_memory(&sources, &options)?;
        if let Some(key) = &key {
            let signed = signing::sign(&bundle, key);
            bundle = Bundle::from_bytes(signed)?;
            signing::verify(&bundle, &key.verifying_key())?;
            eprintln!("signed with key {}", signing::key_id(&key.verifying_key()));
        }
        let output = &self.output;
        let tmp = output.with_extension("wasm.tmp");
        std::fs::write(&tmp, bundle.bytes())
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, output).with_context(|| format!("writing {}", output.display()))?;
        let m = bundle.manifest();
        eprintln!(
            "built {} ({} bytes): revision {:?}, {} modules, entrypoints: {}",
            output.display(),
            bundle.bytes().len(),
            m.revision,
            m.modules.len(),
            m.entrypoints.join(", ")
        );
        Ok(ExitCode::SUCCESS)
    }
}
