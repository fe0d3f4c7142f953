// Binding convention of map kernels (`MapJob` in src/engine/model.rs): a data-parallel
// set-up computation a model runs while building a batch (e.g. Brillouin-zone sampling).
// `MapDims` is kept in sync with `MapDims` in src/engine/gpu/uniforms.rs.
// Dispatch: one invocation per item, WG per workgroup, item = item_offset +
// (wg.x + wg.y * num_wg.x) * WG + lid; items ≥ item_end do nothing.

struct MapDims {
    item_offset: u32,
    item_end: u32,
    outputs_per_item: u32,
    params_len: u32,
}

@group(0) @binding(0) var<uniform> map_dims: MapDims;
@group(0) @binding(1) var<storage, read> map_params: array<Real>;
// Outputs of items [item_offset, item_end), item-major, starting at item_offset.
@group(0) @binding(2) var<storage, read_write> map_out: array<Real>;

const WG: u32 = 256u;

fn map_item(wg_id: vec3<u32>, num_wg: vec3<u32>, lid: u32) -> u32 {
    return map_dims.item_offset + (wg_id.x + wg_id.y * num_wg.x) * WG + lid;
}
