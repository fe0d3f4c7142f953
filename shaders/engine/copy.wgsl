// Plain copy kernel: the bandwidth reference of the benchmark (`copy_bandwidth` in
// src/engine/gpu/mod.rs). Reads and writes each element once, like the engine's
// element-wise ops. `CopyParams` is kept in sync with src/engine/gpu/uniforms.rs.

const WG: u32 = 256u;

struct CopyParams {
    n: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> copy_params: CopyParams;
@group(0) @binding(1) var<storage, read> copy_src: array<Real>;
@group(0) @binding(2) var<storage, read_write> copy_dst: array<Real>;

@compute @workgroup_size(WG)
fn copy(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) num_wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wg.x + wg.y * num_wg.x) * WG + lid;
    if i < copy_params.n {
        copy_dst[i] = copy_src[i];
    }
}
