// Binding convention of every model right-hand-side kernel.
// Kept in sync with `RhsDims` in src/engine/gpu (Rust side) and with the argument order
// of `BatchProblem::rhs_member` (CPU twin): params, tables, t, y, dy, scratch.
//
// `Real` is defined by the host preprocessor as f32 or f64.
// Dispatch: one workgroup of WG threads per member; member = wg.x + wg.y * num_wg.x
// (2-D when the batch exceeds the per-dimension workgroup limit).

struct RhsDims {
    batch: u32,
    state_len: u32,
    params_len: u32,
    table_len: u32,
    table_stride: u32,
    scratch_len: u32,
    t_offset: u32,   // member m's time is scalars[t_offset + m]
    _pad: u32,
}

@group(0) @binding(0) var<uniform> dims: RhsDims;
@group(0) @binding(1) var<storage, read> params: array<Real>;
@group(0) @binding(2) var<storage, read> tables: array<Real>;
@group(0) @binding(3) var<storage, read> scalars: array<Real>;
@group(0) @binding(4) var<storage, read> y: array<Real>;
@group(0) @binding(5) var<storage, read_write> dy: array<Real>;
@group(0) @binding(6) var<storage, read_write> scratch: array<Real>;

const WG: u32 = 256u;

fn member_index(wg_id: vec3<u32>, num_wg: vec3<u32>) -> u32 {
    return wg_id.x + wg_id.y * num_wg.x;
}
