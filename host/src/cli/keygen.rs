//! `sark keygen`: an Ed25519 key pair for signing bundles.

use crate::bundle::signing;
use anyhow::Result;
use std::path::PathBuf;
use std::process::ExitCode;

/// Write an Ed25519 key pair for signing bundles: `<output>` (private, mode 0600) and
/// `<output>.pub` (public).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Private key file to create (must not exist).
    #[arg(short, long)]
    output: PathBuf,
}

impl Args {
    /// Writes both files and prints the key id.
    pub fn run(self) -> Result<ExitCode> {
        let public = signing::generate(&self.output)?;
        let key = signing::read_verification_key(&public)?;
        eprintln!(
            "wrote {} (private, keep it secret) and {} (public); key id {}",
            self.output.display(),
            public.display(),
            signing::key_id(&key)
        );
        Ok(ExitCode::SUCCESS)
    }
}
