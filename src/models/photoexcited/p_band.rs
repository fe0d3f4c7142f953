//! Brillouin-zone sampling of the K3C60-like p band (supplement Sec. I) as a map job:
//! the CPU twin of `shaders/photoexcited/p_band.wgsl`, and the job description that runs
//! it on whatever [`MapDevice`] the engine hands the model (the GPU for large k-grids).

use super::dos::jacobi3;
use crate::engine::model::{KernelSource, MapDevice, MapJob};
use crate::Result;

/// Kernel source of the sampler.
pub const KERNEL_SOURCE: &str = include_str!("../../../shaders/photoexcited/p_band.wgsl");
/// Reals written per k-point: three energies, three velocities squared.
pub const OUTPUTS: usize = 6;
const P_NK: usize = 3;
const P_TABLES: usize = 4;

/// Parameter block `[t1, t2, t3, nk, cos(k/2)[nk], sin(k/2)[nk]]` for the cell-centred
/// grid `k = (i + ½)·4π/nk` of the period cube `[0, 4π)³` (the hoppings depend on k/2).
pub fn params(nk: usize, hopping: [f64; 3]) -> Vec<f64> {
    let step = 4.0 * std::f64::consts::PI / nk as f64;
    let half: Vec<f64> = (0..nk).map(|i| 0.5 * (i as f64 + 0.5) * step).collect();
    let mut p = vec![hopping[0], hopping[1], hopping[2], nk as f64];
    p.extend(half.iter().map(|x| x.cos()));
    p.extend(half.iter().map(|x| x.sin()));
    p
}

/// CPU twin of the `map` entry point: energies and |v|² of the three bands at k-point
/// `item` (row-major `ix, iy, iz`).
pub fn p_band_sample(item: usize, params: &[f64], out: &mut [f64]) {
    let [t1, t2, t3] = [params[0], params[1], params[2]];
    let nk = params[P_NK] as usize;
    let idx = [item / (nk * nk), (item / nk) % nk, item % nk];
    let c: [f64; 3] = std::array::from_fn(|d| params[P_TABLES + idx[d]]);
    let s: [f64; 3] = std::array::from_fn(|d| params[P_TABLES + nk + idx[d]]);
    let mut hm = [[0.0; 3]; 3];
    let mut dh = [[[0.0; 3]; 3]; 3];
    for a in 0..3 {
        let b = (a + 1) % 3;
        let g = (a + 2) % 3;
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
    let (e, v) = jacobi3(hm);
    for band in 0..3 {
        out[band] = e[band];
        let mut vel2 = 0.0;
        for d in &dh {
            let mut x = 0.0;
            for r in 0..3 {
                for col in 0..3 {
                    x += v[r][band] * d[r][col] * v[col][band];
                }
            }
            vel2 += x * x;
        }
        out[3 + band] = vel2;
    }
}

/// Samples `nk³` k-points on `device`: `(energy, |v|²)` of every band at every k.
pub fn sample(device: &dyn MapDevice, nk: usize, hopping: [f64; 3]) -> Result<Vec<(f64, f64)>> {
    let p = params(nk, hopping);
    let out = device.map(&MapJob {
        kernel: KernelSource { name: "photoexcited/p_band.wgsl".into(), source: KERNEL_SOURCE.into() },
        params: &p,
        items: nk * nk * nk,
        outputs_per_item: OUTPUTS,
        cpu_twin: &p_band_sample,
    })?;
    Ok(out.chunks(OUTPUTS).flat_map(|o| (0..3).map(move |b| (o[b], o[3 + b]))).collect())
}
