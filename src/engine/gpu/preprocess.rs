//! The host-side WGSL preprocessor: `//! import shared/<name>` lines and the `Real` alias.
//!
//! The engine's own kernels and the shared include files are embedded in [`SHADERS`],
//! keyed by their path relative to `shaders/`, so the binary needs no files at run time.
//! Models embed their kernels themselves and pass the source (from [`crate::engine::model::BatchProblem::kernel`]) through [`preprocess`]
//! the same way. Nothing cleverer than textual inclusion happens here.

use crate::engine::backend::Precision;
use crate::{NeqkinError, Result};

/// Every WGSL file under `shaders/engine/` and `shaders/shared/`, keyed by its path
/// relative to `shaders/` (model kernels are not listed: the engine knows no model).
///
/// `tests/shaders_validate.rs` checks that this table matches those files on disk.
pub const SHADERS: &[(&str, &str)] = &[
    ("shared/rhs_bindings.wgsl", include_str!("../../../shaders/shared/rhs_bindings.wgsl")),
    ("shared/map_bindings.wgsl", include_str!("../../../shaders/shared/map_bindings.wgsl")),
    ("shared/fused_bindings.wgsl", include_str!("../../../shaders/shared/fused_bindings.wgsl")),
    ("shared/control.wgsl", include_str!("../../../shaders/shared/control.wgsl")),
    ("engine/ops.wgsl", include_str!("../../../shaders/engine/ops.wgsl")),
    ("engine/copy.wgsl", include_str!("../../../shaders/engine/copy.wgsl")),
];

/// Prefix of an import line: `//! import shared/<name>` inlines `shaders/shared/<name>.wgsl`.
const IMPORT: &str = "//! import ";

/// Looks up an embedded shader by its path relative to `shaders/` (e.g. `engine/ops.wgsl`).
pub fn shader(path: &str) -> Option<&'static str> {
    SHADERS.iter().find(|(p, _)| *p == path).map(|(_, s)| *s)
}

/// The lines prepended to every shader for `precision`: the `Real` alias and
/// `REAL_MAX`, the largest finite `Real` (kernels test finiteness as
/// `abs(x) <= REAL_MAX`, which is false for NaN and infinities).
///
/// f64 needs no `enable` directive in naga's WGSL; the device must have
/// `Features::SHADER_F64` (naga's `Capabilities::FLOAT64`).
pub fn prelude(precision: Precision) -> &'static str {
    match precision {
        Precision::F32 => "alias Real = f32;\nconst REAL_MAX: Real = 3.40282346638528859812e+38;\n",
        Precision::F64 => "alias Real = f64;\nconst REAL_MAX: Real = 1.7976931348623157e+308;\n",
    }
}

/// Preprocesses `source` (named `name` in error messages) for `precision`: prepends the
/// [`prelude`] and replaces each `//! import shared/<name>` line by the embedded file
/// `shared/<name>.wgsl` (itself preprocessed; each file is inlined at most once).
pub fn preprocess(name: &str, source: &str, precision: Precision) -> Result<String> {
    let mut out = String::from(prelude(precision));
    let mut seen = Vec::new();
    expand(name, source, &mut out, &mut seen)?;
    Ok(out)
}

fn expand(name: &str, source: &str, out: &mut String, seen: &mut Vec<String>) -> Result<()> {
    for (line_no, line) in source.lines().enumerate() {
        let Some(target) = line.trim_start().strip_prefix(IMPORT) else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        let target = target.trim();
        let path = format!("{target}.wgsl");
        let included = (target.starts_with("shared/") && !target.contains(".."))
            .then(|| shader(&path))
            .flatten()
            .ok_or_else(|| NeqkinError::Gpu {
                context: format!("preprocessing shader {name}, line {}", line_no + 1),
                message: format!("unknown import `{target}` (expected shared/<name> of a file in shaders/shared/)"),
            })?;
        if seen.contains(&path) {
            continue;
        }
        seen.push(path.clone());
        out.push_str(&format!("// ---- begin {path} ----\n"));
        expand(&path, included, out, seen)?;
        out.push_str(&format!("// ---- end {path} ----\n"));
    }
    Ok(())
}

/// The line of `shared/rhs_bindings.wgsl` and `shared/fused_bindings.wgsl` that sets the
/// threads per member workgroup (`WG`), rewritten by [`with_workgroup_size`].
pub const MEMBER_WG_LINE: &str = "const WG: u32 = 256u;";

/// `text` (a preprocessed member kernel: a model's `rhs` kernel or a fused step kernel)
/// with `WG = wg` instead of 256. The kernels' loops are grid-strided and their reductions
/// are trees over `WG`, so any power of two works. Errors when `text` does not contain
/// [`MEMBER_WG_LINE`] exactly once.
pub fn with_workgroup_size(name: &str, text: &str, wg: u32) -> Result<String> {
    if !wg.is_power_of_two() || text.matches(MEMBER_WG_LINE).count() != 1 {
        return Err(NeqkinError::Gpu {
            context: format!("setting the workgroup size of {name}"),
            message: format!("need one `{MEMBER_WG_LINE}` line and a power of two, got {wg}"),
        });
    }
    Ok(text.replacen(MEMBER_WG_LINE, &format!("const WG: u32 = {wg}u;"), 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inlines_imports_once_and_defines_real() {
        let src = "//! import shared/rhs_bindings\n//! import shared/rhs_bindings\nfn f() {}\n";
        let out = preprocess("test", src, Precision::F64).unwrap();
        assert!(out.starts_with("alias Real = f64;"));
        assert_eq!(out.matches("struct RhsDims").count(), 1);
        assert!(out.ends_with("fn f() {}\n"));
    }

    #[test]
    fn member_workgroup_size_is_rewritten_once() {
        let src = "//! import shared/rhs_bindings\nfn f() {}\n";
        let out = preprocess("test", src, Precision::F64).unwrap();
        let small = with_workgroup_size("test", &out, 16).unwrap();
        assert!(small.contains("const WG: u32 = 16u;") && !small.contains(MEMBER_WG_LINE));
        assert!(with_workgroup_size("test", &out, 12).is_err());
        assert!(with_workgroup_size("test", "fn f() {}", 16).is_err());
    }

    #[test]
    fn unknown_import_is_an_error() {
        let err = preprocess("test", "//! import shared/nope\n", Precision::F32).unwrap_err();
        assert!(err.to_string().contains("shared/nope"), "{err}");
    }
}
