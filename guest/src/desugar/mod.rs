//! Source rewrites that run before Regorus parses a module or a query: newer OPA syntax
//! Regorus 0.14 does not parse (string interpolation, keywords as ref roots), desugared
//! into forms it does, and OPA's output-argument calls of our builtins. Each pass works on
//! the source text and keeps the row of every token.

mod interpolation;
mod keywords;
mod metadata;

pub(crate) use metadata::{
    Annotations, collect as collect_annotations, mentioned as mentions_metadata,
};

pub(crate) use interpolation::TEMPLATE_BUILTIN;
pub use metadata::{MetadataBlock, metadata_blocks};

use crate::error::{Location, PolicyError};

/// What Regorus parses for module `path`: `source` after every rewrite, first, and the
/// modules the rewrites split off it (`(path, source)`).
pub(crate) fn module(
    path: &str,
    source: &str,
    annotations: &Annotations,
) -> Result<Vec<(String, String)>, PolicyError> {
    let source = query(path, source)?;
    let source = if metadata::mentioned(&source) {
        metadata::desugar(path, &source, annotations).unwrap_or(source)
    } else {
        source
    };
    let Some((main, extra)) = keywords::desugar(path, &source) else {
        return Ok(vec![(path.to_string(), output_arguments(path, source))]);
    };
    let mut out = vec![(path.to_string(), output_arguments(path, main))];
    for (p, s) in extra {
        let s = output_arguments(&p, s);
        out.push((p, s));
    }
    Ok(out)
}

fn output_arguments(path: &str, source: String) -> String {
    crate::builtins::rewrite_output_arguments(path, &source).unwrap_or(source)
}

/// What Regorus parses for a query (or, before the module-level passes, a module):
/// template strings desugared.
pub(crate) fn query(path: &str, source: &str) -> Result<String, PolicyError> {
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
    Ok(source)
}
