// Brillouin-zone sampling of the K3C60-like p band (supplement Sec. I): per k-point the
// three band energies and Hellmann-Feynman velocities squared |⟨u|∂H/∂k|u⟩|².
// CPU twin: `p_band_sample` in src/models/photoexcited/p_band.rs (same structure, same
// constants). Host passes cos(k/2), sin(k/2) tables, so no trigonometry runs here.
//
// params: [t1, t2, t3, nk, cos_half[nk], sin_half[nk]]
// out per item: [e0, e1, e2, v2_0, v2_1, v2_2]
//! import shared/map_bindings

const P_T1: u32 = 0u;
const P_NK: u32 = 3u;
const P_TABLES: u32 = 4u;
const OUTPUTS: u32 = 6u;

@compute @workgroup_size(WG)
fn map(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) num_wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let item = map_item(wg, num_wg, lid);
    if item >= map_dims.item_end {
        return;
    }
    let t1 = map_params[P_T1];
    let t2 = map_params[P_T1 + 1u];
    let t3 = map_params[P_T1 + 2u];
    let nk = u32(map_params[P_NK]);
    let idx = vec3<u32>(item / (nk * nk), (item / nk) % nk, item % nk);
    var c: array<Real, 3>;
    var s: array<Real, 3>;
    for (var d = 0u; d < 3u; d++) {
        c[d] = map_params[P_TABLES + idx[d]];
        s[d] = map_params[P_TABLES + nk + idx[d]];
    }
    // H and dH[a] = ∂H/∂k_a.
    var hm: array<array<Real, 3>, 3>;
    var dh: array<array<array<Real, 3>, 3>, 3>;
    for (var a = 0u; a < 3u; a++) {
        let b = (a + 1u) % 3u;
        let g = (a + 2u) % 3u;
        hm[a][a] = t1 * c[a] * (c[b] + c[g]) + t2 * c[b] * c[g];
        dh[a][a][a] += -0.5 * t1 * s[a] * (c[b] + c[g]);
        dh[b][a][a] += -0.5 * t1 * c[a] * s[b] - 0.5 * t2 * s[b] * c[g];
        dh[g][a][a] += -0.5 * t1 * c[a] * s[g] - 0.5 * t2 * c[b] * s[g];
        let off = t3 * s[a] * s[b];
        hm[a][b] = off;
        hm[b][a] = off;
        let da = 0.5 * t3 * c[a] * s[b];
        let db = 0.5 * t3 * s[a] * c[b];
        dh[a][a][b] += da;
        dh[a][b][a] += da;
        dh[b][a][b] += db;
        dh[b][b][a] += db;
    }
    // Cyclic Jacobi rotations (twin of `jacobi3`).
    var v: array<array<Real, 3>, 3>;
    v[0][0] = 1.0;
    v[1][1] = 1.0;
    v[2][2] = 1.0;
    let pairs = array<vec2<u32>, 3>(vec2<u32>(0u, 1u), vec2<u32>(0u, 2u), vec2<u32>(1u, 2u));
    for (var sweep = 0u; sweep < 50u; sweep++) {
        let off = hm[0][1] * hm[0][1] + hm[0][2] * hm[0][2] + hm[1][2] * hm[1][2];
        let scale = hm[0][0] * hm[0][0] + hm[1][1] * hm[1][1] + hm[2][2] * hm[2][2] + off;
        if off <= 1e-30 * max(scale, 1e-30) {
            break;
        }
        for (var r = 0u; r < 3u; r++) {
            let p = pairs[r].x;
            let q = pairs[r].y;
            if abs(hm[p][q]) < 1e-30 {
                continue;
            }
            let theta = (hm[q][q] - hm[p][p]) / (2.0 * hm[p][q]);
            var t = sign(theta) / (abs(theta) + sqrt(theta * theta + 1.0));
            if theta == 0.0 {
                t = 1.0;
            }
            let cr = 1.0 / sqrt(t * t + 1.0);
            let sr = t * cr;
            for (var k = 0u; k < 3u; k++) {
                let akp = hm[k][p];
                let akq = hm[k][q];
                hm[k][p] = cr * akp - sr * akq;
                hm[k][q] = sr * akp + cr * akq;
            }
            let rp = hm[p];
            let rq = hm[q];
            for (var k = 0u; k < 3u; k++) {
                hm[p][k] = cr * rp[k] - sr * rq[k];
                hm[q][k] = sr * rp[k] + cr * rq[k];
            }
            for (var k = 0u; k < 3u; k++) {
                let vp = v[k][p];
                let vq = v[k][q];
                v[k][p] = cr * vp - sr * vq;
                v[k][q] = sr * vp + cr * vq;
            }
        }
    }
    let base = (item - map_dims.item_offset) * OUTPUTS;
    for (var band = 0u; band < 3u; band++) {
        map_out[base + band] = hm[band][band];
        var vel2: Real = 0.0;
        for (var a = 0u; a < 3u; a++) {
            var x: Real = 0.0;
            for (var r = 0u; r < 3u; r++) {
                for (var col = 0u; col < 3u; col++) {
                    x += v[r][band] * dh[a][r][col] * v[col][band];
                }
            }
            vel2 += x * x;
        }
        map_out[base + 3u + band] = vel2;
    }
}
