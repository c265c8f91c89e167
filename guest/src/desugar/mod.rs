//! Source rewrites that run before Regorus parses a module or a query: newer OPA syntax
//! Regorus 0.14 does not parse (string interpolation, keywords as ref roots), desugared
//! into forms it does, and OPA's output-argument calls of our builtins. Each pass works on
//! the source text and keeps the row of every token.

mod interpolation;

pub(crate) use interpolation::TEMPLATE_BUILTIN;

use crate::error::{Location, PolicyError};

/// The source Regorus parses for module (or query) `path`: `source` after every rewrite.
pub(crate) fn module(path: &str, source: &str) -> Result<String, PolicyError> {
    let source = match interpolation::desugar(source) {
        Ok(Some(s)) => s,
        Ok(None) => source.to_string(),
        Err(e) => {
            return Err(PolicyError::Compile {
                message: e.message.to_string(),
                location: Some(Location {
                    file: path.to_string(),
                    row: e.row,
                    col: e.col,
                }),
            });
        }
    };
    Ok(crate::builtins::rewrite_output_arguments(path, &source).unwrap_or(source))
}
