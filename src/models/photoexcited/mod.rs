//! The photoexcited metal with a pumped phonon mode (Chiriacò, Millis, Aleiner, "Negative
//! absolute conductivity in photoexcited metals"): electrons on an energy grid coupled to
//! one (optionally dispersive) phonon mode with non-equilibrium occupation ζ, a thermal
//! bath (St_in), a dc field (St_E) and optionally the self-consistent internal field E*.
//!
//! State per member: `[f_0 … f_{N-1}, ζ, pump_rate, E*²]`. The derivation of the discrete
//! equations and their conservation laws is in `docs/models/photoexcited.md`.

pub mod analytic;
pub mod collision;
pub mod dos;
pub mod observables;
pub mod p_band;
pub mod params;

use std::collections::HashMap;
use std::sync::Arc;

use rayon::prelude::*;

use crate::engine::model::{
    downcast_all, BatchLayout, BatchProblem, KernelSource, MapDevice, Model, Observables, ParsedParams,
};
use crate::engine::program::ToleranceBlock;
use crate::{NeqkinError, Result};

pub use dos::Band;
pub use params::{DosKind, PhotoexcitedParams, Transport};

use collision::*;

/// Number of quadrature points used to project a dispersive phonon onto grid lines.
const PHONON_QUADRATURE: usize = 4000;

/// The model as registered with the engine (`model = "photoexcited"`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Photoexcited;

/// Phonon spectrum projected on the grid: lines at shifts `k h` with weights summing to 1.
#[derive(Clone, Debug, PartialEq)]
pub struct PhononLines {
    /// Shifts in cells (k ≥ 1).
    pub shift: Vec<usize>,
    /// Weights (sum 1).
    pub weight: Vec<f64>,
}

impl PhononLines {
    /// Hat-function projection of a line at ω (width 0) or of a Gaussian of width δω
    /// truncated at ±4δω: a line at `ω = (m + θ) h` goes to k = m with weight 1-θ and to
    /// k = m+1 with weight θ, which keeps the total weight and the mean frequency.
    pub fn project(omega: f64, width: f64, h: f64) -> PhononLines {
        let mut acc: HashMap<usize, f64> = HashMap::new();
        let mut add = |w0: f64, om: f64| {
            let x = om / h;
            let m = x.floor();
            let theta = x - m;
            let m = m as usize;
            *acc.entry(m).or_default() += w0 * (1.0 - theta);
            *acc.entry(m + 1).or_default() += w0 * theta;
        };
        if width > 0.0 {
            let lo = omega - 4.0 * width;
            let d = 8.0 * width / PHONON_QUADRATURE as f64;
            for q in 0..PHONON_QUADRATURE {
                let om = lo + (q as f64 + 0.5) * d;
                let z = (om - omega) / width;
                add((-0.5 * z * z).exp(), om);
            }
        } else {
            add(1.0, omega);
        }
        let mut lines: Vec<(usize, f64)> = acc.into_iter().filter(|&(k, w)| k >= 1 && w > 1e-14).collect();
        lines.sort_by_key(|l| l.0);
        let total: f64 = lines.iter().map(|l| l.1).sum();
        PhononLines { shift: lines.iter().map(|l| l.0).collect(), weight: lines.iter().map(|l| l.1 / total).collect() }
    }

    /// Mean frequency `Σ w_k k h` of the projected spectrum.
    pub fn mean(&self, h: f64) -> f64 {
        self.shift.iter().zip(&self.weight).map(|(&k, &w)| w * k as f64 * h).sum()
    }
}

/// Host-side description of one member (what the observables need).
#[derive(Clone, Debug)]
pub struct Member {
    /// Parameters as given.
    pub params: PhotoexcitedParams,
    /// Cell width.
    pub h: f64,
    /// Cell centres.
    pub eps: Vec<f64>,
    /// DoS per cell.
    pub dos: Vec<f64>,
    /// Chemical potential of the initial state.
    pub mu: f64,
    /// σ0 = σ̃(μ) (table units).
    pub sigma0: f64,
    /// Eq (10) estimate of σ/σ0.
    pub sigma_eq10: f64,
    /// Large-ζ limit of σ/σ0: Eq (9) on the Eq (8) distribution (dispersionless phonon at
    /// ω_p, St_in = 0, E = 0).
    pub sigma_eq8: f64,
    /// Mean projected phonon frequency ω̄ (energy bookkeeping: E = Σ h ε D f + ω̄ ζ).
    pub omega_mean: f64,
    /// Applied E² (field units).
    pub applied_field_squared: f64,
    /// Gershgorin bound of the RHS Jacobian.
    pub spectral_radius: f64,
}

/// One batch of the photoexcited model.
#[derive(Clone, Debug)]
pub struct PhotoexcitedBatch {
    layout: BatchLayout,
    params: Vec<f64>,
    tables: Vec<f64>,
    initial: Vec<f64>,
    members: Vec<Member>,
}

impl PhotoexcitedBatch {
    /// Builds a batch from checked parameter sets (all with the same `grid_points`),
    /// sampling any p band on the CPU.
    pub fn new(points: &[PhotoexcitedParams]) -> Result<PhotoexcitedBatch> {
        Self::new_with(points, &crate::engine::model::CpuMap)
    }

    /// As [`PhotoexcitedBatch::new`], with Brillouin-zone sampling on `device`.
    pub fn new_with(points: &[PhotoexcitedParams], device: &dyn MapDevice) -> Result<PhotoexcitedBatch> {
        let first = points.first().ok_or_else(|| NeqkinError::invalid("params", "empty batch"))?;
        let n = first.grid_points;
        if let Some(p) = points.iter().find(|p| p.grid_points != n) {
            return Err(NeqkinError::invalid(
                "params.grid_points",
                format!("all points of a batch need the same grid_points ({n} vs {})", p.grid_points),
            ));
        }
        // Bands are built once per distinct band description within this batch, with what
        // every member on that band shares (the face sums of the spectral bound).
        let mut bands: HashMap<String, (Arc<Band>, Arc<BandFaces>)> = HashMap::new();
        let mut member_bands = Vec::with_capacity(points.len());
        let mut member_faces = Vec::with_capacity(points.len());
        let mut band_keys = Vec::with_capacity(points.len());
        for p in points {
            let key = format!(
                "{:?}|{:?}|{:?}|{}|{:?}|{}|{:?}|{}",
                p.dos,
                p.dos_table,
                p.dos_cap,
                p.k_points,
                p.p_band_hopping,
                p.p_band_smoothing,
                p.transport,
                p.band_width
            );
            let (band, faces) = match bands.get(&key) {
                Some(b) => b.clone(),
                None => {
                    let b = Arc::new(Band::build_with(p, device)?);
                    let f = Arc::new(BandFaces::new(&b));
                    bands.insert(key.clone(), (b.clone(), f.clone()));
                    (b, f)
                }
            };
            member_bands.push(band);
            member_faces.push(faces);
            band_keys.push(key);
        }
        // μ from a filling (a bisection over N Fermi functions) once per band, filling and T,
        // and the initial Fermi-Dirac occupation once per band, μ and T: a sweep over ω_p or
        // ζ shares both.
        let mut mu_cache: HashMap<(String, u64, u64), f64> = HashMap::new();
        let mut fermi_cache: HashMap<(String, u64, u64), Arc<Vec<f64>>> = HashMap::new();
        let mut member_mu = Vec::with_capacity(points.len());
        let mut member_fermi = Vec::with_capacity(points.len());
        for (m, p) in points.iter().enumerate() {
            let band = &member_bands[m];
            let t = p.temperature;
            let mu = match (p.chemical_potential, p.filling) {
                (Some(mu), _) => mu,
                (None, f) => {
                    let f = f.unwrap_or(0.5);
                    *mu_cache
                        .entry((band_keys[m].clone(), f.to_bits(), t.to_bits()))
                        .or_insert_with(|| band.chemical_potential(f, t))
                }
            };
            let d_f = band.interpolate(&band.dos, mu);
            let sigma0 = band.interpolate(&band.sigma_tilde, mu);
            // σ0 is the unit of σ and of the field (v_F²τ_F = σ0/D_F): a transport function
            // that vanishes at μ (a table with v² = 0 there) would make every derivative
            // 0·∞ = NaN and σ/σ0 meaningless; say so instead.
            if !(sigma0 > 0.0 && sigma0.is_finite()) {
                let field = if p.dos == DosKind::Table { "params.dos_table" } else { "params.transport" };
                return Err(NeqkinError::invalid(
                    field,
                    format!(
                        "the transport function σ̃ = v² D τ_tr is {sigma0} at the chemical potential μ = {mu}: \
                         σ0 = σ̃(μ) must be > 0 (it sets the units of σ and of the field)"
                    ),
                ));
            }
            let occupation = fermi_cache
                .entry((band_keys[m].clone(), mu.to_bits(), t.to_bits()))
                .or_insert_with(|| Arc::new(band.eps.iter().map(|&e| dos::fermi(e, mu, t)).collect()))
                .clone();
            member_mu.push((mu, d_f, sigma0));
            member_fermi.push(occupation);
        }
        let lines: Vec<PhononLines> =
            points.iter().map(|p| PhononLines::project(p.phonon_frequency, p.phonon_width, p.cell_width())).collect();
        let max_lines = lines.iter().map(|l| l.shift.len()).max().unwrap_or(0);
        let params_len = P_LINES + LINE_LEN * max_lines;
        let table_len = T_COUNT * n;
        let shared = member_bands.iter().all(|b| Arc::ptr_eq(b, &member_bands[0]));
        let table_stride = if shared { 0 } else { table_len };
        let state_len = n + 3;
        let layout =
            BatchLayout { batch: points.len(), state_len, params_len, table_len, table_stride, scratch_len: 1 };

        let mut tables = Vec::with_capacity(if shared { table_len } else { table_len * points.len() });
        for (m, band) in member_bands.iter().enumerate() {
            if m == 0 || !shared {
                tables.extend(band_tables(band));
            }
        }
        let mut params = vec![0.0; points.len() * params_len];
        let mut initial = vec![0.0; points.len() * state_len];
        // The rest is per point (the Eq 8 estimate, N·W/ω_p Fermi functions, dominates) and
        // independent between points: built in parallel, in member order.
        let members: Vec<Member> = params
            .par_chunks_mut(params_len)
            .zip(initial.par_chunks_mut(state_len))
            .enumerate()
            .map(|(m, (pb, y0))| {
                let p = &points[m];
                let band = &member_bands[m];
                let (mu, d_f, sigma0) = member_mu[m];
                let h = band.h;
                let t = p.temperature;
                let s_f = sigma0 / d_f; // v_F² τ_F in table units
                let w = p.band_width;
                pb[P_N] = n as f64;
                pb[P_H] = h;
                pb[P_INV_H] = 1.0 / h;
                pb[P_IN_PREF] = p.inelastic_rate / d_f * t / h;
                pb[P_TANH] = (0.5 * h / t).tanh();
                pb[P_FIELD_UNIT] = 1.0 / (3.0 * s_f);
                pb[P_FIELD] = p.electric_field * p.electric_field * pb[P_FIELD_UNIT];
                pb[P_SELF_CONSISTENT] = if p.self_consistent_field { 1.0 } else { 0.0 };
                pb[P_KAPPA] = p.field_growth_rate;
                pb[P_FIELD_SEED] = p.field_seed;
                pb[P_INV_SIGMA0] = 1.0 / sigma0;
                pb[P_ZETA_FREE] = if p.zeta_fixed() { 0.0 } else { 1.0 };
                pb[P_INV_TAU_PH] = p.phonon_lifetime.map_or(0.0, |x| 1.0 / x);
                pb[P_INV_TAU_PULSE] = 1.0 / p.pulse_duration;
                let l = &lines[m];
                let omega_mean = l.mean(h);
                pb[P_ZETA_SCALE] = h * h / omega_mean;
                pb[P_N_LINES] = l.shift.len() as f64;
                let mut bose_max: f64 = 0.0;
                for (q, (&k, &wk)) in l.shift.iter().zip(&l.weight).enumerate() {
                    let b = dos::bose(k as f64 * h, t);
                    bose_max = bose_max.max(b);
                    let base = P_LINES + LINE_LEN * q;
                    pb[base] = k as f64;
                    pb[base + 1] = p.coupling_rate * w * wk; // Γ/D0 · w_k with D0 = 1/W
                    pb[base + 2] = b;
                }
                // Initial state.
                y0[..n].copy_from_slice(&member_fermi[m]);
                let zeta_max = match p.zeta {
                    Some(z) => {
                        y0[n] = z;
                        z
                    }
                    None => {
                        y0[n] = p.zeta_initial;
                        y0[n + 1] = p.pump_strength / p.pulse_duration;
                        p.zeta_initial + p.pump_strength
                    }
                };
                let spectral_radius = spectral_bound(band, &member_faces[m], pb, zeta_max + bose_max, p);
                Member {
                    params: p.clone(),
                    h,
                    eps: band.eps.clone(),
                    dos: band.dos.clone(),
                    mu,
                    sigma0,
                    sigma_eq10: analytic::eq10_sigma(band, mu, p.phonon_frequency) / sigma0,
                    sigma_eq8: analytic::eq8_sigma(band, mu, t, p.phonon_frequency) / sigma0,
                    omega_mean,
                    applied_field_squared: p.electric_field * p.electric_field,
                    spectral_radius,
                }
            })
            .collect();
        Ok(PhotoexcitedBatch { layout, params, tables, initial, members })
    }

    /// Host description of member `m`.
    pub fn member(&self, m: usize) -> &Member {
        &self.members[m]
    }

    /// The table block of member `m`.
    pub fn member_tables(&self, m: usize) -> &[f64] {
        let l = self.layout;
        &self.tables[m * l.table_stride..m * l.table_stride + l.table_len]
    }

    /// The parameter block of member `m`.
    pub fn member_params(&self, m: usize) -> &[f64] {
        let l = self.layout;
        &self.params[m * l.params_len..(m + 1) * l.params_len]
    }
}

/// The five per-cell tables of a band (layout `T_*`).
fn band_tables(band: &Band) -> Vec<f64> {
    let n = band.len();
    let mut t = vec![0.0; T_COUNT * n];
    for i in 0..n {
        t[T_DOS * n + i] = band.dos[i];
        t[T_INV_DOS * n + i] = 1.0 / band.dos[i];
        t[T_EPS * n + i] = band.eps[i];
        if i + 1 < n {
            t[T_DOS2_FACE * n + i] = band.dos[i] * band.dos[i + 1];
            t[T_SIGMA_FACE * n + i] = (band.sigma_tilde[i] * band.sigma_tilde[i + 1]).sqrt();
        }
    }
    t
}

/// Face sums of the diffusion terms per cell, `D_{i-1}D_i + D_iD_{i+1}` (St_in) and
/// `σ̃_{i-½} + σ̃_{i+½}` (St_E), and the largest DoS: what the spectral bound of every
/// member on one band shares.
struct BandFaces {
    faces_in: Vec<f64>,
    faces_e: Vec<f64>,
    d_max: f64,
}

impl BandFaces {
    fn new(band: &Band) -> BandFaces {
        let n = band.len();
        let mut faces_in = vec![0.0; n];
        let mut faces_e = vec![0.0; n];
        for i in 0..n {
            if i + 1 < n {
                faces_in[i] += band.dos[i] * band.dos[i + 1];
                faces_e[i] += (band.sigma_tilde[i] * band.sigma_tilde[i + 1]).sqrt();
            }
            if i > 0 {
                faces_in[i] += band.dos[i - 1] * band.dos[i];
                faces_e[i] += (band.sigma_tilde[i - 1] * band.sigma_tilde[i]).sqrt();
            }
        }
        let d_max = band.dos.iter().cloned().fold(0.0, f64::max);
        BandFaces { faces_in, faces_e, d_max }
    }
}

/// Gershgorin bound of the Jacobian: diffusion parts (St_in, St_E with the applied field)
/// plus the electron-phonon rate bound `Σ_k 4 c_k (ζ_max + b_k + 1) max D` plus the
/// ζ/pump decay rates plus `4κ` for the internal-field equation. The diffusion due to the
/// internal field E*² is not known in advance and is not included.
fn spectral_bound(band: &Band, faces: &BandFaces, pb: &[f64], occupation_max: f64, p: &PhotoexcitedParams) -> f64 {
    let h = band.h;
    let d_max = faces.d_max;
    let tanh_h = pb[P_TANH];
    let mut diff: f64 = 0.0;
    for ((&faces_in, &faces_e), &d) in faces.faces_in.iter().zip(&faces.faces_e).zip(&band.dos) {
        let r_in = pb[P_IN_PREF] * 2.0 * (1.0 + tanh_h) * faces_in / (h * d);
        let r_e = pb[P_FIELD] * 2.0 * faces_e / (h * h * d);
        diff = diff.max(r_in + r_e);
    }
    let n_lines = pb[P_N_LINES] as usize;
    let coll: f64 = (0..n_lines).map(|l| 4.0 * pb[P_LINES + LINE_LEN * l + 1] * (occupation_max + 1.0) * d_max).sum();
    let phonon = pb[P_INV_TAU_PH] + if p.zeta_fixed() { 0.0 } else { pb[P_INV_TAU_PULSE] };
    let internal = if p.self_consistent_field { 4.0 * p.field_growth_rate } else { 0.0 };
    diff + coll + phonon + internal
}

impl BatchProblem for PhotoexcitedBatch {
    fn layout(&self) -> BatchLayout {
        self.layout
    }
    fn params(&self) -> &[f64] {
        &self.params
    }
    fn tables(&self) -> &[f64] {
        &self.tables
    }
    fn initial_state(&self) -> Vec<f64> {
        self.initial.clone()
    }
    fn rhs_member(
        &self,
        _member: usize,
        params: &[f64],
        tables: &[f64],
        t: f64,
        y: &[f64],
        dy: &mut [f64],
        scratch: &mut [f64],
    ) {
        collision::rhs(params, tables, t, y, dy, scratch);
    }
    fn kernel(&self) -> KernelSource {
        KernelSource { name: "photoexcited/collision".into(), source: KERNEL_SOURCE.into() }
    }
    /// Pass 1 of the kernel visits every cell once and, inside, every phonon line of the
    /// member (the batch's largest line count bounds every member's).
    fn member_loops_per_component(&self) -> usize {
        1 + (0..self.layout.batch).map(|m| self.member_params(m)[P_N_LINES] as usize).max().unwrap_or(0)
    }
    fn spectral_radius(&self) -> Option<Vec<f64>> {
        Some(self.members.iter().map(|m| m.spectral_radius).collect())
    }
    /// Energy cell i couples to i ± k for every phonon line (pair rates), to i ± 1 when
    /// St_in or St_E can be on (face fluxes); the border is `[ζ, pump, E*²]`, whose rows
    /// depend on the cells only when ζ evolves (phonon production) or the internal field is
    /// on (σ), and vanish when ζ is fixed and the internal field off. The RHS does not
    /// depend on t explicitly.
    fn jacobian_pattern(&self, member: usize) -> Option<crate::engine::rosenbrock::JacobianPattern> {
        let n = self.layout.state_len - 3;
        let pb = self.member_params(member);
        let p = &self.members[member].params;
        let mut offsets: Vec<isize> = Vec::new();
        for l in 0..pb[P_N_LINES] as usize {
            let k = pb[P_LINES + LINE_LEN * l] as isize;
            offsets.extend([k, -k]);
        }
        if p.inelastic_rate != 0.0 || p.electric_field != 0.0 || p.self_consistent_field {
            offsets.extend([1, -1]);
        }
        let coupled = !p.zeta_fixed() || p.self_consistent_field;
        let mut pattern = crate::engine::rosenbrock::JacobianPattern::stencil(n, &offsets, coupled, true);
        // With ζ held fixed and no internal field, ζ, the pump rate and E*² never change.
        pattern.border_constant = p.zeta_fixed() && !p.self_consistent_field;
        Some(pattern)
    }
    fn tolerance_blocks(&self, atol: f64, rtol: f64) -> Vec<ToleranceBlock> {
        let n = self.layout.state_len - 3;
        vec![
            ToleranceBlock { start: 0, end: n, atol, rtol },
            ToleranceBlock { start: n, end: n + 2, atol, rtol },
            ToleranceBlock { start: n + 2, end: n + 3, atol, rtol },
        ]
    }
    /// Issue 10 audit: the pair rate `(a+1) f_u(1−f_l) − a f_l(1−f_u)`, a = ζ + b, subtracts
    /// two terms of size a·f(1−f) to leave one of size f(1−f) (the spontaneous emission
    /// that drives f towards Eq 8): its relative rounding error is about a·u. Refused where
    /// that exceeds 1e-3 (f32: ζ + b ≳ 1.7e4; f64: ≳ 4.5e12), naming the occupation.
    fn check_precision(&self, unit_roundoff: f64) -> Result<()> {
        for m in &self.members {
            let p = &m.params;
            let occupation = match p.zeta {
                Some(z) => z,
                None => p.zeta_initial + p.pump_strength,
            };
            let bose = dos::bose(p.phonon_frequency, p.temperature);
            let a = occupation + bose;
            if a * unit_roundoff > 1e-3 {
                let field = if p.zeta.is_some() { "params.zeta" } else { "params.pump_strength" };
                return Err(NeqkinError::invalid(
                    field,
                    format!(
                        "phonon occupation ζ + b ≈ {a:.3e} at unit roundoff {unit_roundoff:.1e}: the pair rate \
                         (a+1)f_u(1−f_l) − a f_l(1−f_u) would lose {:.1e} of its size to rounding; \
                         use f64 (--precision f64) or a smaller ζ",
                        a * unit_roundoff
                    ),
                ));
            }
        }
        Ok(())
    }
    fn observables(&self, member: usize, t: f64, y: &[f64]) -> Observables {
        observables::observables(&self.members[member], self.member_params(member), self.member_tables(member), t, y)
    }
}

/// Source of `shaders/photoexcited/collision.wgsl`.
pub const KERNEL_SOURCE: &str = include_str!("../../../shaders/photoexcited/collision.wgsl");

impl Model for Photoexcited {
    fn name(&self) -> &'static str {
        "photoexcited"
    }
    fn parameters(&self) -> Vec<crate::engine::model::ParamDoc> {
        params::docs()
    }
    fn starter(&self) -> crate::engine::model::Starter {
        use serde_json::json;
        crate::engine::model::Starter {
            what: "σ/σ0 after 10/Γ_eph at fixed phonon occupation ζ, half filling (a column of Fig 2a)",
            solver: "method = \"dopri5\"\nt_end = 10.0\noutput_times = [10.0]\nrtol = 1e-6\natol = 1e-9",
            params: vec![("filling", json!(0.5)), ("zeta", json!(5.0))],
            sweep: Some(("phonon_frequency", vec![0.2, 0.5, 0.8])),
        }
    }
    fn parse(&self, params: &serde_json::Value) -> Result<ParsedParams> {
        let p = PhotoexcitedParams::from_json(params)?;
        if p.dos == DosKind::Table {
            // Builds the band and checks σ̃(μ) > 0 (cheap for a table; a p band is sampled
            // only when its batch is built).
            PhotoexcitedBatch::new(std::slice::from_ref(&p))?;
        }
        Ok(ParsedParams::new(p))
    }
    fn static_arrays(&self) -> Vec<String> {
        ["energy_grid", "dos"].map(String::from).to_vec()
    }
    fn batch_key(&self, params: &ParsedParams) -> Result<String> {
        Ok(format!("grid_points={}", params.downcast::<PhotoexcitedParams>()?.grid_points))
    }
    fn footprint(&self, params: &ParsedParams) -> Result<Option<crate::engine::model::Footprint>> {
        let p = params.downcast::<PhotoexcitedParams>()?;
        let n = p.grid_points as u64;
        let shifts = PhononLines::project(p.phonon_frequency, p.phonon_width, p.cell_width()).shift;
        let lines = shifts.len() as u64;
        // The p band samples k_points³ momenta, OUTPUTS reals each, while the batch is built.
        let k = p.k_points as u64;
        let work = if p.dos == DosKind::PBand { k * k * k * p_band::OUTPUTS as u64 * 8 } else { 0 };
        Ok(Some(crate::engine::model::Footprint {
            state_len: n + 3,
            params_len: P_LINES as u64 + LINE_LEN as u64 * lines,
            table_len: T_COUNT as u64 * n,
            table_shared: true,
            scratch_len: 1,
            work_bytes: work,
            array_reals: 3 * n,
            // energy_grid and dos.
            static_array_reals: 2 * n,
            jacobian_band: None,
            // Filled from `jacobian_pattern_band` when the method is implicit.
            jacobian_pattern_band: None,
        }))
    }
    fn jacobian_pattern_band(&self, params: &ParsedParams) -> Result<Option<(u64, u64)>> {
        let p = params.downcast::<PhotoexcitedParams>()?;
        let shifts = PhononLines::project(p.phonon_frequency, p.phonon_width, p.cell_width()).shift;
        // The cells couple at the phonon shifts (and ±1 through the face fluxes), as
        // `jacobian_pattern` declares.
        let fluxes = p.inelastic_rate != 0.0 || p.electric_field != 0.0 || p.self_consistent_field;
        let mut offsets: Vec<isize> = shifts.iter().flat_map(|&k| [k as isize, -(k as isize)]).collect();
        if fluxes {
            offsets.extend([1, -1]);
        }
        let coupled = !p.zeta_fixed() || p.self_consistent_field;
        Ok(Some(reordered_band(p.grid_points, offsets, coupled)))
    }
    fn build(&self, points: &[ParsedParams]) -> Result<Arc<dyn BatchProblem>> {
        self.build_with(points, &crate::engine::model::CpuMap)
    }
    fn build_with(&self, points: &[ParsedParams], device: &dyn MapDevice) -> Result<Arc<dyn BatchProblem>> {
        let parsed: Vec<PhotoexcitedParams> =
            downcast_all::<PhotoexcitedParams>(points)?.into_iter().cloned().collect();
        Ok(Arc::new(PhotoexcitedBatch::new_with(&parsed, device)?))
    }
}

/// Band `(lower, upper)` of the cells' stencil pattern (`offsets`) after reverse
/// Cuthill–McKee, as `bdf` and `rosenbrock` store its LU: far narrower than the largest
/// offset (a phonon shift ≈ N/2 couples cells that the reordering puts side by side).
/// Remembered per pattern: sweeps ask once per point.
fn reordered_band(cells: usize, mut offsets: Vec<isize>, coupled: bool) -> (u64, u64) {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    type Key = (usize, Vec<isize>, bool);
    static BANDS: OnceLock<Mutex<HashMap<Key, (u64, u64)>>> = OnceLock::new();
    offsets.sort_unstable();
    offsets.dedup();
    let key = (cells, offsets, coupled);
    let bands = BANDS.get_or_init(Default::default);
    if let Some(&b) = bands.lock().unwrap().get(&key) {
        return b;
    }
    let pattern = crate::engine::rosenbrock::JacobianPattern::stencil(cells, &key.1, coupled, true);
    let (kl, ku) = crate::engine::sparse_jacobian::Prepared::band(&pattern, cells + 3);
    let band = (kl as u64, ku as u64);
    bands.lock().unwrap().insert(key, band);
    band
}
