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
    ("shared/member_reduce.wgsl", include_str!("../../../shaders/shared/member_reduce.wgsl")),
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

/// The line of shared/rhs_bindings and shared/fused_bindings that sets the members per
/// workgroup (`MPW`), rewritten by [`with_member_layout`].
pub const MEMBERS_PER_WG_LINE: &str = "const MPW: u32 = 1u;";

/// `text` (a preprocessed member kernel: a model's `rhs` kernel or a fused step kernel)
/// with `WG = wg` instead of 256. The kernels' loops are grid-strided and their reductions
/// are trees over `WG`, so any power of two works. Errors when `text` does not contain
/// [`MEMBER_WG_LINE`] exactly once.
pub fn with_workgroup_size(name: &str, text: &str, wg: u32) -> Result<String> {
    with_member_layout(name, text, wg, 1)
}

/// `text` with `WG = threads` threads per member and `MPW = members` members per
/// workgroup (see [`crate::engine::gpu::MemberLayout`]). Errors when `threads` is not a
/// power of two, `members` is 0, or `text` does not contain [`MEMBER_WG_LINE`] exactly
/// once (and [`MEMBERS_PER_WG_LINE`] exactly once when `members > 1`).
pub fn with_member_layout(name: &str, text: &str, threads: u32, members: u32) -> Result<String> {
    let mpw_lines = text.matches(MEMBERS_PER_WG_LINE).count();
    if !threads.is_power_of_two()
        || members == 0
        || text.matches(MEMBER_WG_LINE).count() != 1
        || (members > 1 && mpw_lines != 1)
    {
        return Err(NeqkinError::Gpu {
            context: format!("setting the member layout of {name}"),
            message: format!(
                "need one `{MEMBER_WG_LINE}` line (and one `{MEMBERS_PER_WG_LINE}` line to pack members), a power \
                 of two threads and at least one member per workgroup, got {threads} × {members}"
            ),
        });
    }
    let mut out = text.replacen(MEMBER_WG_LINE, &format!("const WG: u32 = {threads}u;"), 1);
    if members > 1 {
        out = out.replacen(MEMBERS_PER_WG_LINE, &format!("const MPW: u32 = {members}u;"), 1);
    }
    Ok(out)
}

/// The line of shared/rhs_bindings that sets the workgroups per member (`WPM`), rewritten by
/// [`with_workgroups_per_member`].
pub const WGS_PER_MEMBER_LINE: &str = "const WPM: u32 = 1u;";

/// `text` (a preprocessed `rhs` kernel of a splittable model with the split entry points,
/// [`crate::engine::gpu::layout::SPLIT_RHS_ENTRIES`]) with `WPM = groups` workgroups per
/// member. Errors when `groups` is 0 or `text` does not contain [`WGS_PER_MEMBER_LINE`]
/// exactly once.
pub fn with_workgroups_per_member(name: &str, text: &str, groups: u32) -> Result<String> {
    if groups == 0 || text.matches(WGS_PER_MEMBER_LINE).count() != 1 {
        return Err(NeqkinError::Gpu {
            context: format!("setting the workgroups per member of {name}"),
            message: format!("need one `{WGS_PER_MEMBER_LINE}` line and at least one workgroup, got {groups}"),
        });
    }
    Ok(text.replacen(WGS_PER_MEMBER_LINE, &format!("const WPM: u32 = {groups}u;"), 1))
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
        let packed = with_member_layout("test", &out, 32, 8).unwrap();
        assert!(packed.contains("const WG: u32 = 32u;") && packed.contains("const MPW: u32 = 8u;"));
        assert!(with_member_layout("test", &out, 32, 0).is_err());
        let split = with_workgroups_per_member("test", &out, 3).unwrap();
        assert!(split.contains("const WPM: u32 = 3u;") && !split.contains(WGS_PER_MEMBER_LINE));
        assert!(with_workgroups_per_member("test", &out, 0).is_err());
        assert!(with_workgroups_per_member("test", "fn f() {}", 3).is_err());
    }

    #[test]
    fn unknown_import_is_an_error() {
        let err = preprocess("test", "//! import shared/nope\n", Precision::F32).unwrap_err();
        assert!(err.to_string().contains("shared/nope"), "{err}");
    }
}
