//! Uniform blocks of the engine kernels, byte for byte.
//!
//! Each struct is kept in sync with the WGSL struct of the same name in
//! `shaders/engine/ops.wgsl`, `shaders/engine/copy.wgsl` or
//! `shaders/shared/rhs_bindings.wgsl`; `tests/shaders_validate.rs` checks the sizes
//! against naga's reflection of the WGSL side ([`LAYOUTS`]). All fields are `u32` so one
//! layout serves both precisions: offsets into the scalar arena (`scalars`) and into the
//! program's constant array (`consts`, where real coefficients live).

use bytemuck::{Pod, Zeroable};

/// Uniform of `begin_step`. Kept in sync with `BeginStepParams` in shaders/engine/ops.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct BeginStepParams {
    /// Members.
    pub batch: u32,
    /// Arena offset of `t`.
    pub t: u32,
    /// Arena offset of `h`.
    pub h: u32,
    /// Arena offset of `h_max`.
    pub h_max: u32,
    /// Arena offset of `t_end`.
    pub t_end: u32,
    /// Arena offset of `status`.
    pub status: u32,
    /// Arena offset of `h_used` (output).
    pub h_used: u32,
    /// Padding.
    pub _pad: u32,
}

/// Uniform of `lincomb`. Kept in sync with `LincombParams` in shaders/engine/ops.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct LincombParams {
    /// Elements (`batch × state_len`).
    pub n: u32,
    /// Reals per member.
    pub state_len: u32,
    /// Arena offset of the per-member step.
    pub h: u32,
    /// Offset in `consts` of this dispatch's coefficients.
    pub coef: u32,
    /// Leading terms without `h`.
    pub n_plain: u32,
    /// Terms in this dispatch (at most `LINCOMB_MAX_TERMS`).
    pub n_terms: u32,
    /// 1: add to the destination (chained dispatch), 0: overwrite.
    pub accumulate: u32,
    /// Padding.
    pub _pad: u32,
}

/// Uniform of `scalar_axpy`. Kept in sync with `ScalarAxpyParams` in shaders/engine/ops.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct ScalarAxpyParams {
    /// Members.
    pub batch: u32,
    /// Arena offset of the destination.
    pub out: u32,
    /// Arena offset of `a`.
    pub a: u32,
    /// Arena offset of `h`.
    pub h: u32,
    /// Offset in `consts` of `c`.
    pub coef: u32,
    /// Padding.
    pub _pad0: u32,
    /// Padding.
    pub _pad1: u32,
    /// Padding.
    pub _pad2: u32,
}

/// Uniform of `error_norm`. Kept in sync with `ErrorNormParams` in shaders/engine/ops.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct ErrorNormParams {
    /// Members.
    pub batch: u32,
    /// Reals per member.
    pub state_len: u32,
    /// Arena offset of the output norm.
    pub out: u32,
    /// Tolerance blocks.
    pub n_blocks: u32,
    /// Offset in `consts` of the blocks, 4 reals each: start, end, atol, rtol.
    pub blocks: u32,
    /// 1: weights from the deviation from the reference state (binding 6); 0: from the state.
    pub deviation: u32,
    /// Workgroups per member of `error_norm_partial` (1 for `error_norm`).
    pub groups: u32,
    /// Padding.
    pub _pad2: u32,
}

/// Uniform of `control`. Kept in sync with `ControlParams` in shaders/engine/ops.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct ControlParams {
    /// Members.
    pub batch: u32,
    /// Arena offset of `t`.
    pub t: u32,
    /// Arena offset of `h`.
    pub h: u32,
    /// Arena offset of `t_end`.
    pub t_end: u32,
    /// Arena offset of `status`.
    pub status: u32,
    /// Arena offset of `accept`.
    pub accept: u32,
    /// Arena offset of `n_accept`.
    pub n_accept: u32,
    /// Arena offset of `n_reject`.
    pub n_reject: u32,
    /// Arena offset of `h_used`.
    pub h_used: u32,
    /// Arena offset of `err`.
    pub err: u32,
    /// `LAW_FIXED` (0) or `LAW_ADAPTIVE` (1).
    pub law: u32,
    /// Order of the adaptive law.
    pub order: u32,
    /// Offset in `consts` of safety, min_factor, max_factor, h_min.
    pub coef: u32,
    /// Padding.
    pub _pad0: u32,
    /// Padding.
    pub _pad1: u32,
    /// Padding.
    pub _pad2: u32,
}

/// Uniform of `select`. Kept in sync with `SelectParams` in shaders/engine/ops.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct SelectParams {
    /// Elements (`batch × state_len`).
    pub n: u32,
    /// Reals per member.
    pub state_len: u32,
    /// Arena offset of the per-member flag.
    pub flag: u32,
    /// Padding.
    pub _pad: u32,
}

/// Uniform of `steady_check`. Kept in sync with `SteadyCheckParams` in shaders/engine/ops.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct SteadyCheckParams {
    /// Members.
    pub batch: u32,
    /// Reals per member.
    pub state_len: u32,
    /// First measured component.
    pub range_start: u32,
    /// End of the measured range (exclusive).
    pub range_end: u32,
    /// Arena offset of `status`.
    pub status: u32,
    /// Arena offset of `accept`.
    pub accept: u32,
    /// Offset in `consts` of the tolerance.
    pub tol: u32,
    /// Workgroups per member of `steady_check_partial` (1 for `steady_check`).
    pub groups: u32,
}

/// Uniform of `copy`. Kept in sync with `CopyParams` in shaders/engine/copy.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct CopyParams {
    /// Elements to copy.
    pub n: u32,
    /// Padding.
    pub _pad0: u32,
    /// Padding.
    pub _pad1: u32,
    /// Padding.
    pub _pad2: u32,
}

/// Uniform of every model RHS kernel. Kept in sync with `RhsDims` in
/// shaders/shared/rhs_bindings.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct RhsDims {
    /// Members.
    pub batch: u32,
    /// Reals per member in the state.
    pub state_len: u32,
    /// Reals per member in the parameter block.
    pub params_len: u32,
    /// Reals in one member's table block.
    pub table_len: u32,
    /// Distance between members' table blocks (0: shared).
    pub table_stride: u32,
    /// Reals per member of scratch.
    pub scratch_len: u32,
    /// Arena offset of the time array: member `m`'s time is `scalars[t_offset + m]`.
    pub t_offset: u32,
    /// Padding.
    pub _pad: u32,
}

/// Uniform of map kernels. Kept in sync with `MapDims` in shaders/shared/map_bindings.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct MapDims {
    /// First item of this dispatch.
    pub item_offset: u32,
    /// One past the last item of this dispatch.
    pub item_end: u32,
    /// Reals written per item.
    pub outputs_per_item: u32,
    /// Length of the shared parameter array.
    pub params_len: u32,
}

/// Uniform of a fused step kernel (binding 8). Kept in sync with `FusedParams` in
/// shaders/shared/fused_bindings.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct FusedParams {
    /// `batch × state_len`: reals per vector slot of the work buffer.
    pub slot_len: u32,
    /// Vectors of the program (slots per member).
    pub n_vectors: u32,
    /// Most attempts one dispatch makes.
    pub max_attempts: u32,
    /// Padding.
    pub _pad: u32,
    /// Arena offset of each of the program's scalar arrays (`MAX_FUSED_SCALARS`).
    pub scalar_offsets: [[u32; 4]; 8],
}

/// `(file relative to shaders/, WGSL struct name, Rust size in bytes)` of every uniform
/// block, for the size check in `tests/shaders_validate.rs`.
pub const LAYOUTS: &[(&str, &str, usize)] = &[
    ("engine/ops.wgsl", "BeginStepParams", std::mem::size_of::<BeginStepParams>()),
    ("engine/ops.wgsl", "LincombParams", std::mem::size_of::<LincombParams>()),
    ("engine/ops.wgsl", "ScalarAxpyParams", std::mem::size_of::<ScalarAxpyParams>()),
    ("engine/ops.wgsl", "ErrorNormParams", std::mem::size_of::<ErrorNormParams>()),
    ("engine/ops.wgsl", "ControlParams", std::mem::size_of::<ControlParams>()),
    ("engine/ops.wgsl", "SelectParams", std::mem::size_of::<SelectParams>()),
    ("engine/ops.wgsl", "SteadyCheckParams", std::mem::size_of::<SteadyCheckParams>()),
    ("engine/copy.wgsl", "CopyParams", std::mem::size_of::<CopyParams>()),
    ("shared/rhs_bindings.wgsl", "RhsDims", std::mem::size_of::<RhsDims>()),
    ("shared/map_bindings.wgsl", "MapDims", std::mem::size_of::<MapDims>()),
    ("shared/fused_bindings.wgsl", "RhsDims", std::mem::size_of::<RhsDims>()),
    ("shared/fused_bindings.wgsl", "FusedParams", std::mem::size_of::<FusedParams>()),
];
