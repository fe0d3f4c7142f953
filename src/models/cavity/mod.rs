//! Electrons between a cryostat bath and a cavity-photon bath (issue 3, paper
//! `shared/seeds/002`): the non-thermal steady-state distribution F(k, ω) = 1 − 2n.
//!
//! One model, `cavity`, with three levels chosen by `params.level` (and named variants
//! keeping the paper's printed signs, `params.variant`); derivation and sign analysis in
//! `docs/models/cavity.md`. One batch member is one sweep point at one momentum (ε_k).
//!
//! * Level 1 (`collision`): γ(F−F0) = g²S ∫dω̃ A_e(ω̃) B(ω−ω̃) K(ω, ω̃) with finite γ_ph,
//!   the ω̃ integral a dense quadrature in the kernel; steady state of a Jacobi-preconditioned
//!   pseudo-time relaxation (use `steady_tol`).
//! * Level 2 (`shift`): B → delta peaks at ±ν0 (S69), grid commensurate with ν0.
//! * Level 3: `fokker_planck` (the consistent ν0 → 0 limit in finite-volume form, `flux`
//!   kernel, uniform or graded grid, tridiagonal: Newton converges in O(10) steps) or
//!   `riccati_s71` (the printed Eq 6 / S71 integrated along ω, `riccati` kernel).
//!
//! `K(ω, ω̃) = 1 − F(ω)F(ω̃) − coth((ω−ω̃)/2T_mir)(F(ω) − F(ω̃))` vanishes for
//! F = tanh((ω−μ)/2T_mir) at any μ; with the odd photon spectral function B it relaxes F.

pub mod cpu;
pub mod observe;
pub mod params;

use std::sync::Arc;

use crate::engine::model::{downcast_all, BatchLayout, BatchProblem, KernelSource, Model, Observables, ParsedParams};
use crate::{NeqkinError, Result};
pub use params::{derive, derive_from, CavityParams, Derived, Scheme};

/// WGSL of the level-1 kernel.
pub const COLLISION_WGSL: &str = include_str!("../../../shaders/cavity/collision.wgsl");
/// WGSL of the level-1 kernel on a graded grid.
pub const COLLISION_GRADED_WGSL: &str = include_str!("../../../shaders/cavity/collision_graded.wgsl");
/// WGSL of the level-2 / Fokker–Planck kernel.
pub const SHIFT_WGSL: &str = include_str!("../../../shaders/cavity/shift.wgsl");
/// WGSL of the Fokker–Planck (level 3) kernel.
pub const FLUX_WGSL: &str = include_str!("../../../shaders/cavity/flux.wgsl");
/// WGSL of the printed-Riccati kernel.
pub const RICCATI_WGSL: &str = include_str!("../../../shaders/cavity/riccati.wgsl");

/// The cavity model (`model = "cavity"`).
pub struct Cavity;

/// One point as [`Cavity`]'s `parse` leaves it: the checked parameters and the grid's
/// shape. The grid itself (a graded grid's nodes, up to
/// [`params::MAX_GRID_POINTS`]) is not kept, since a plan holds one of these per sweep
/// point; a batch derives it again ([`derive_from`]).
#[derive(Clone, Debug)]
pub struct ParsedPoint {
    /// The parameters, checked.
    pub raw: CavityParams,
    /// Which equation.
    pub scheme: Scheme,
    /// Grid points.
    pub n: usize,
    /// Whether the grid is graded.
    pub graded: bool,
    /// ε_k blocks per member (the on-shell axis' length, or 1).
    pub blocks: usize,
    /// Level 2: ν0 = shift·h.
    pub shift: usize,
}

/// The riccati_s71 checks on a derived point (its RHS divides by Ã0).
fn check_riccati(d: &Derived) -> Result<()> {
    if d.scheme == Scheme::RiccatiS71 {
        if d.raw.coupling_g == 0.0 {
            return Err(NeqkinError::invalid("params.coupling_g", "riccati_s71 divides by Ã0 ∝ g²: needs g > 0"));
        }
        // 1/(2Ã0) = ((ω−ε)² + γ²)/(2κ) over the window must be a finite f64 (κ ∝ g² can
        // underflow to a subnormal or zero, and the RHS would then be inf/NaN).
        let (lo, hi) = (d.omega(0), d.omega(d.n - 1));
        let x = (lo - d.eps_k).abs().max((hi - d.eps_k).abs());
        let inv_2a = (x * x + d.raw.gamma * d.raw.gamma) / (2.0 * d.kappa);
        if !(d.kappa >= f64::MIN_POSITIVE && inv_2a.is_finite()) {
            return Err(NeqkinError::invalid(
                "params.coupling_g",
                format!(
                    "riccati_s71: κ = πg²S/(2Lν0) = {:e} makes 1/(2Ã0) = {inv_2a:e} over the window: out of the f64 range",
                    d.kappa
                ),
            ));
        }
    }
    Ok(())
}

impl Model for Cavity {
    fn name(&self) -> &'static str {
        "cavity"
    }
    fn parameters(&self) -> Vec<crate::engine::model::ParamDoc> {
        params::docs()
    }
    fn starter(&self) -> crate::engine::model::Starter {
        use serde_json::json;
        crate::engine::model::Starter {
            what: "steady photon-dressed distribution F(ω) of the Fokker-Planck limit (level 3), Newton solve",
            solver: "method = \"newton\"\nsteady_tol = 1e-10",
            params: vec![
                ("level", json!(3)),
                ("coupling_g", json!(0.3)),
                ("t_cry", json!(1.0)),
                ("t_mir", json!(10.0)),
                ("nu0", json!(1.0)),
                ("gamma", json!(1.0)),
                ("mu0", json!(1.0)),
            ],
            sweep: Some(("coupling_g", vec![0.1, 0.3, 0.5])),
        }
    }
    fn parse(&self, params: &serde_json::Value) -> Result<ParsedParams> {
        let d = derive(params)?;
        check_riccati(&d)?;
        let (scheme, n, graded, blocks, shift) = (d.scheme, d.n, d.nodes.is_some(), d.eps_axis.len(), d.shift);
        Ok(ParsedParams::new(ParsedPoint { raw: d.raw, scheme, n, graded, blocks, shift }))
    }
    fn batch_key(&self, params: &ParsedParams) -> Result<String> {
        let d = params.downcast::<ParsedPoint>()?;
        Ok(format!("scheme={:?} n={} graded={} blocks={}", d.scheme, d.n, d.graded, d.blocks))
    }
    fn footprint(&self, params: &ParsedParams) -> Result<Option<crate::engine::model::Footprint>> {
        let d = params.downcast::<ParsedPoint>()?;
        let (n, k) = (d.n as u64, d.blocks as u64);
        let graded = d.graded;
        let (state, params_len, table) = match d.scheme {
            Scheme::Collision | Scheme::CollisionEq5 if graded => {
                (n, cpu::G_PARAMS_LEN, cpu::collision_graded_table_len(d.n))
            }
            Scheme::Collision | Scheme::CollisionEq5 => (n, cpu::C_PARAMS_LEN, cpu::collision_table_len(d.n)),
            Scheme::ShiftConsistent | Scheme::ShiftS71Reading => (n, cpu::S_PARAMS_LEN, cpu::shift_table_len(d.n)),
            Scheme::FokkerPlanck => (n, cpu::F_PARAMS_LEN, cpu::flux_table_len(d.n)),
            Scheme::RiccatiS71 => (1, cpu::R_PARAMS_LEN, cpu::riccati_table_len()),
        };
        let riccati = d.scheme == Scheme::RiccatiS71;
        Ok(Some(crate::engine::model::Footprint {
            state_len: state * k,
            params_len: params_len as u64 + 1,
            table_len: table as u64 * if riccati { 1 } else { k },
            table_shared: riccati,
            scratch_len: 0,
            // Observables: ω, F, F0 and the symmetric parts per block evaluated.
            work_bytes: 8 * 6 * n,
            array_reals: if riccati { 0 } else { 5 * n + if k > 1 { k + n * k } else { 0 } },
            static_array_reals: 0,
            jacobian_band: match d.scheme {
                Scheme::FokkerPlanck => Some((1, 1)),
                Scheme::ShiftConsistent | Scheme::ShiftS71Reading => Some((d.shift as u64, d.shift as u64)),
                _ => None,
            },
            jacobian_pattern_band: None,
        }))
    }
    fn build(&self, points: &[ParsedParams]) -> Result<Arc<dyn BatchProblem>> {
        let members = downcast_all::<ParsedPoint>(points)?
            .into_iter()
            .map(|p| derive_from(p.raw.clone()))
            .collect::<Result<Vec<_>>>()?;
        Ok(Arc::new(CavityBatch::new(members)?))
    }
}

/// One batch of cavity members (all with the same scheme and grid size).
pub struct CavityBatch {
    members: Vec<Derived>,
    scheme: Scheme,
    graded: bool,
    n: usize,
    params: Vec<f64>,
    tables: Vec<f64>,
    layout: BatchLayout,
}

/// Every value finite, or an error naming `field` (the parameter that drove it out of range).
fn check_finite_values(field: &str, values: &[f64]) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(k) => Err(NeqkinError::invalid(
            field,
            format!("leaves the f64 range: a derived parameter or table entry is {} (index {k})", values[k]),
        )),
    }
}

/// Photon spectral function of level 1, odd in ν (S60 with γ_ph(ν) = γ_ph ν):
/// `B(ν) = γ_ph ν / (L ((ν² − ν0²)² + γ_ph² ν²))`; → (π/2Lν0)(δ(ν−ν0) − δ(ν+ν0)) as γ_ph → 0.
pub fn photon_spectral(nu: f64, nu0: f64, gamma_ph: f64, cavity_length: f64) -> f64 {
    let d = nu * nu - nu0 * nu0;
    gamma_ph * nu / (cavity_length * (d * d + gamma_ph * gamma_ph * nu * nu))
}

impl CavityBatch {
    /// Builds params and tables for every member.
    pub fn new(members: Vec<Derived>) -> Result<Self> {
        let first = members.first().ok_or_else(|| NeqkinError::invalid("params", "empty batch"))?;
        let (scheme, n, graded) = (first.scheme, first.n, first.nodes.is_some());
        let n_k = first.eps_axis.len();
        for d in &members {
            if d.eps_axis.len() != n_k {
                return Err(NeqkinError::invalid(
                    "params.on_shell_eps_k",
                    "all points of a batch must share its length",
                ));
            }
            if d.nodes.is_some() != graded {
                return Err(NeqkinError::invalid("params.grid", "all points of a batch must share the grid kind"));
            }
            if d.scheme != scheme {
                return Err(NeqkinError::invalid("params.level", "all points of a batch must share level and variant"));
            }
            if d.n != n {
                return Err(NeqkinError::invalid("params.n_omega", "all points of a batch must share n_omega"));
            }
        }
        let mut params = vec![];
        let mut tables = vec![];
        let (state_len, params_len, table_len) = match scheme {
            Scheme::Collision | Scheme::CollisionEq5 if graded => {
                (n, cpu::G_PARAMS_LEN, cpu::collision_graded_table_len(n))
            }
            Scheme::Collision | Scheme::CollisionEq5 => (n, cpu::C_PARAMS_LEN, cpu::collision_table_len(n)),
            Scheme::ShiftConsistent | Scheme::ShiftS71Reading => (n, cpu::S_PARAMS_LEN, cpu::shift_table_len(n)),
            Scheme::FokkerPlanck => (n, cpu::F_PARAMS_LEN, cpu::flux_table_len(n)),
            Scheme::RiccatiS71 => (1, cpu::R_PARAMS_LEN, cpu::riccati_table_len()),
        };
        for d in &members {
            for (blk, &e) in d.eps_axis.iter().enumerate() {
                // One block per ε_k of the on-shell axis (one block without one): same grid and
                // params, tables with the block's electron spectral function.
                let block = Derived { eps_k: e, ..d.clone() };
                let d = &block;
                let mut p_out: Vec<f64> = vec![];
                let r = &d.raw;
                let omega: Vec<f64> = (0..n).map(|i| d.omega(i)).collect();
                let f0: Vec<f64> = omega.iter().map(|&w| d.f0(w)).collect();
                let coth = |x: f64| 1.0 / (x / (2.0 * r.t_mir)).tanh();
                match scheme {
                    Scheme::Collision | Scheme::CollisionEq5 if graded => {
                        let gph = r.gamma_ph.unwrap();
                        let even = if scheme == Scheme::CollisionEq5 { 1.0 } else { 0.0 };
                        let c = r.coupling_g * r.coupling_g * d.s_d / d.cavity_length;
                        let p = [r.gamma, r.nu0, gph, c, r.t_mir, even];
                        p_out.extend_from_slice(&p);
                        // Trapezoidal weights of the non-uniform nodes.
                        let aw: Vec<f64> = (0..n)
                            .map(|j| {
                                let w = 0.5 * (omega[(j + 1).min(n - 1)] - omega[j.saturating_sub(1)]);
                                d.spectral(omega[j]) * w
                            })
                            .collect();
                        let ep: Vec<f64> = omega.iter().map(|&w| ((w - r.mu0) / r.t_mir).exp()).collect();
                        let em: Vec<f64> = omega.iter().map(|&w| (-(w - r.mu0) / r.t_mir).exp()).collect();
                        let prec: Vec<f64> = (0..n)
                            .map(|i| {
                                let off: f64 = (0..n)
                                    .filter(|&j| j != i)
                                    .map(|j| {
                                        let (b, coth) =
                                            cpu::graded_pair(&p, omega[i] - omega[j], ep[i], em[i], ep[j], em[j]);
                                        aw[j] * b.abs() * (1.0 + coth.abs())
                                    })
                                    .sum();
                                1.0 / (r.gamma + off)
                            })
                            .collect();
                        tables.extend_from_slice(&f0);
                        tables.extend_from_slice(&aw);
                        tables.extend_from_slice(&prec);
                        tables.extend_from_slice(&omega);
                        tables.extend_from_slice(&ep);
                        tables.extend_from_slice(&em);
                    }
                    Scheme::Collision | Scheme::CollisionEq5 => {
                        p_out.push(r.gamma);
                        let a: Vec<f64> = omega.iter().map(|&w| d.spectral(w)).collect();
                        let gph = r.gamma_ph.unwrap();
                        let pref = r.coupling_g * r.coupling_g * d.s_d * d.h;
                        let mut b = vec![0.0; 2 * n - 1];
                        let mut bd = vec![0.0; 2 * n - 1];
                        for k in 0..2 * n - 1 {
                            let nu = (k as f64 - (n - 1) as f64) * d.h;
                            if scheme == Scheme::CollisionEq5 {
                                // Printed Eq 5: −A_ph,even(ν) in place of B(ν) (same delta weight
                                // π/2Lν0 at ±ν0); the ν = 0 point is dropped (measure zero; keeps F0
                                // an exact discrete fixed point at equal temperatures).
                                if k != n - 1 {
                                    let dd = nu * nu - r.nu0 * r.nu0;
                                    b[k] = -pref * gph / (d.cavity_length * (dd * dd + gph * gph));
                                    bd[k] = b[k] * coth(nu);
                                }
                            } else if k == n - 1 {
                                // ν = 0: B = 0; B·coth → 2T_mir γ_ph/(L ν0⁴) (multiplies F_i − F_i = 0).
                                bd[k] = pref * gph * 2.0 * r.t_mir / (d.cavity_length * r.nu0.powi(4));
                            } else {
                                b[k] = pref * photon_spectral(nu, r.nu0, gph, d.cavity_length);
                                bd[k] = b[k] * coth(nu);
                            }
                        }
                        let prec: Vec<f64> = (0..n)
                            .map(|i| {
                                let off: f64 =
                                    (0..n).map(|j| a[j] * (b[i + n - 1 - j].abs() + bd[i + n - 1 - j].abs())).sum();
                                1.0 / (r.gamma + off)
                            })
                            .collect();
                        // bd at ν = 0 multiplies F_i − F_i = 0: dropped once the
                        // preconditioner (which counts it) is built.
                        bd[n - 1] = 0.0;
                        let (node_b, node_bd) = cpu::collision_node_sums(&a, &b, &bd);
                        tables.extend_from_slice(&f0);
                        tables.extend_from_slice(&a);
                        tables.extend_from_slice(&prec);
                        tables.extend_from_slice(&b);
                        tables.extend_from_slice(&bd);
                        tables.extend_from_slice(&node_b);
                        tables.extend_from_slice(&node_bd);
                    }
                    Scheme::ShiftConsistent | Scheme::ShiftS71Reading => {
                        let m = d.shift;
                        let dd = coth(r.nu0);
                        let sign = if scheme == Scheme::ShiftConsistent { 1.0 } else { -1.0 };
                        p_out.extend_from_slice(&[r.gamma, dd, m as f64, sign]);
                        let cm: Vec<f64> =
                            (0..n).map(|i| if i >= m { d.kappa * d.spectral(omega[i] - r.nu0) } else { 0.0 }).collect();
                        let cp: Vec<f64> = (0..n)
                            .map(|i| if i + m < n { d.kappa * d.spectral(omega[i] + r.nu0) } else { 0.0 })
                            .collect();
                        let prec: Vec<f64> = (0..n).map(|i| 1.0 / (r.gamma + (cm[i] + cp[i]) * (dd + 1.0))).collect();
                        tables.extend_from_slice(&f0);
                        tables.extend_from_slice(&cm);
                        tables.extend_from_slice(&cp);
                        tables.extend_from_slice(&prec);
                    }
                    Scheme::FokkerPlanck => {
                        p_out.push(r.gamma);
                        let eta = d.kappa * r.nu0;
                        // Cell widths: half the distance between the neighbours inside, the
                        // one spacing at the window's ends (the uniform grid's h everywhere).
                        let width = |i: usize| {
                            if i == 0 {
                                omega[1] - omega[0]
                            } else if i == n - 1 {
                                omega[n - 1] - omega[n - 2]
                            } else {
                                0.5 * (omega[i + 1] - omega[i - 1])
                            }
                        };
                        // Edge i+½ between nodes i and i+1: weight A_e² at the midpoint, and
                        // coth(h_e/2T_mir), which makes the discrete flux vanish exactly for the
                        // mirror tanh (and for F0 at equal temperatures).
                        let edge = |i: usize| {
                            let am = d.spectral(0.5 * (omega[i] + omega[i + 1]));
                            (eta * am * am, coth(omega[i + 1] - omega[i]))
                        };
                        let (mut cm, mut dm, mut cp, mut dp) = (vec![0.0; n], vec![0.0; n], vec![0.0; n], vec![0.0; n]);
                        for i in 0..n {
                            let node = d.spectral(omega[i]) * width(i);
                            if i >= 1 {
                                let (w, dd) = edge(i - 1);
                                cm[i] = w / node;
                                dm[i] = cm[i] * dd;
                            }
                            if i + 1 < n {
                                let (w, dd) = edge(i);
                                cp[i] = w / node;
                                dp[i] = cp[i] * dd;
                            }
                        }
                        let prec: Vec<f64> = (0..n).map(|i| 1.0 / (r.gamma + cm[i] + dm[i] + cp[i] + dp[i])).collect();
                        for t in [&f0, &cm, &dm, &cp, &dp, &prec] {
                            tables.extend_from_slice(t);
                        }
                    }
                    Scheme::RiccatiS71 => {
                        let start = if d.direction < 0.0 { omega[n - 1] } else { omega[0] };
                        p_out.extend_from_slice(&[
                            start,
                            d.direction,
                            r.t_mir,
                            r.t_cry,
                            d.eps_k,
                            r.gamma,
                            d.kappa,
                            r.mu0,
                        ]);
                        // One table of e^{−k/4} for the whole batch (table_stride 0).
                        if tables.is_empty() {
                            tables = cpu::riccati_table();
                        }
                    }
                }
                if blk == 0 {
                    params.extend_from_slice(&p_out);
                    if scheme != Scheme::RiccatiS71 {
                        params.push(n as f64);
                    }
                }
            }
        }
        let shared_tables = scheme == Scheme::RiccatiS71;
        let layout = BatchLayout {
            batch: members.len(),
            state_len: state_len * n_k,
            params_len,
            table_len: table_len * n_k,
            table_stride: if shared_tables { 0 } else { table_len * n_k },
            scratch_len: 0,
        };
        // Host-side overflow/underflow (a coupling so large or small that κ, Ã0⁻¹ or a table
        // entry leaves the f64 range) must not reach a kernel as inf/NaN or a frozen zero.
        check_finite_values("params.coupling_g", &params)?;
        check_finite_values("params.omega_max", &tables)?;
        Ok(CavityBatch { members, scheme, graded, n, params, tables, layout })
    }

    /// The members' derived parameters.
    pub fn members(&self) -> &[Derived] {
        &self.members
    }

    /// Whether the batch runs on a graded (non-uniform) ω grid.
    pub fn graded(&self) -> bool {
        self.graded
    }

    /// Which equation the batch solves.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The ω grid of member `m`.
    pub fn omega(&self, m: usize) -> Vec<f64> {
        (0..self.n).map(|i| self.members[m].omega(i)).collect()
    }

    /// Riccati: output times t_i = i·h (i = 1 … n−1), so outputs land on the ω grid
    /// (ω = ω_max − t backward, ω_min + t forward). Same for every member when the windows
    /// agree; uses member 0.
    pub fn riccati_output_times(&self) -> Vec<f64> {
        let d = &self.members[0];
        (1..self.n).map(|i| i as f64 * d.h).collect()
    }

    /// Unpreconditioned residual R(F) of the steady-state equation of member `m`, all its
    /// ε_k blocks (grid levels; zero length for Riccati).
    pub fn residual(&self, m: usize, y: &[f64]) -> Vec<f64> {
        if self.scheme == Scheme::RiccatiS71 {
            return vec![];
        }
        let n = self.n;
        let mut dy = vec![0.0; y.len()];
        self.rhs_member(m, self.member_params(m), self.member_tables(m), 0.0, y, &mut dy, &mut []);
        let prec_off = match self.scheme {
            Scheme::Collision | Scheme::CollisionEq5 => 2 * n,
            Scheme::FokkerPlanck => 5 * n,
            _ => 3 * n,
        };
        let t = self.member_tables(m);
        let block_len = self.layout.table_len / self.n_blocks();
        (0..y.len()).map(|i| dy[i] / t[(i / n) * block_len + prec_off + i % n]).collect()
    }

    /// ε_k blocks per member (the on-shell axis length; 1 without one).
    pub fn n_blocks(&self) -> usize {
        self.members[0].eps_axis.len()
    }

    /// Index of the block the scalar observables describe (ε_k nearest μ0).
    pub fn main_block(&self, m: usize) -> usize {
        let d = &self.members[m];
        d.eps_axis.iter().position(|&e| e == d.eps_k).unwrap_or(0)
    }

    /// On-shell analysis of member `m` (S84–S86): per axis value ε the deviation
    /// F(k_ε, ω = ε) − F0(ε) (ω-interpolated, cubic), and ΔO = ∫dε O D (F − F0)/2 over the
    /// axis (trapezoid). `None` without an on-shell axis.
    pub fn on_shell(&self, m: usize, y: &[f64]) -> Option<(Vec<f64>, f64)> {
        let d = &self.members[m];
        d.raw.on_shell_eps_k.as_ref()?;
        let omega = self.omega(m);
        let df: Vec<f64> = d
            .eps_axis
            .iter()
            .enumerate()
            .map(|(b, &e)| observe::interp_cubic(&omega, &y[b * self.n..(b + 1) * self.n], e) - d.f0(e))
            .collect();
        let r = &d.raw;
        let g: Vec<f64> = d
            .eps_axis
            .iter()
            .zip(&df)
            .map(|(&e, x)| observe::poly(&r.observable_coeffs, e) * observe::poly(&r.dos_coeffs, e) * x / 2.0)
            .collect();
        let e = &d.eps_axis;
        let integral = (1..e.len()).map(|i| 0.5 * (e[i] - e[i - 1]) * (g[i] + g[i - 1])).sum();
        Some((df, integral))
    }

    fn member_params(&self, m: usize) -> &[f64] {
        let p = self.layout.params_len;
        &self.params[m * p..(m + 1) * p]
    }

    fn member_tables(&self, m: usize) -> &[f64] {
        let (t, stride) = (self.layout.table_len, self.layout.table_stride);
        &self.tables[m * stride..m * stride + t]
    }
}

impl BatchProblem for CavityBatch {
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
        let mut y = Vec::with_capacity(self.layout.batch * self.layout.state_len);
        for (m, d) in self.members.iter().enumerate() {
            if self.scheme == Scheme::RiccatiS71 {
                let start = self.member_params(m)[cpu::R_P_OMEGA];
                // Backward: start on F0 (the slow manifold far above μ). Forward: filled
                // Fermi sea F = −1, as the paper states the boundary condition.
                y.push(if d.direction < 0.0 { d.f0(start) } else { -1.0 });
            } else {
                for _ in 0..d.eps_axis.len() {
                    y.extend((0..self.n).map(|i| d.f0(d.omega(i))));
                }
            }
        }
        y
    }
    fn rhs_member(
        &self,
        _member: usize,
        params: &[f64],
        tables: &[f64],
        t: f64,
        y: &[f64],
        dy: &mut [f64],
        _scratch: &mut [f64],
    ) {
        match self.scheme {
            Scheme::Collision | Scheme::CollisionEq5 if self.graded => cpu::collision_graded(params, tables, t, y, dy),
            Scheme::Collision | Scheme::CollisionEq5 => cpu::collision(params, tables, t, y, dy),
            Scheme::RiccatiS71 => cpu::riccati(params, tables, t, y, dy),
            Scheme::FokkerPlanck => cpu::flux(params, tables, t, y, dy),
            _ => cpu::shift(params, tables, t, y, dy),
        }
    }
    fn kernel(&self) -> KernelSource {
        let (name, source) = match self.scheme {
            Scheme::Collision | Scheme::CollisionEq5 if self.graded => {
                ("cavity/collision_graded", COLLISION_GRADED_WGSL)
            }
            Scheme::Collision | Scheme::CollisionEq5 => ("cavity/collision", COLLISION_WGSL),
            Scheme::RiccatiS71 => ("cavity/riccati", RICCATI_WGSL),
            Scheme::FokkerPlanck => ("cavity/flux", FLUX_WGSL),
            _ => ("cavity/shift", SHIFT_WGSL),
        };
        KernelSource { name: name.into(), source: source.into() }
    }
    /// Level 1 (both grids): each component visits every node of its block in blocks of 16
    /// written out, then the remainder one by one (shaders/cavity/collision*.wgsl): 1 (the
    /// component) + ⌊n/16⌋ + n mod 16 loop iterations. The other kernels: one pass.
    fn member_loops_per_component(&self) -> usize {
        match self.scheme {
            Scheme::Collision | Scheme::CollisionEq5 => 1 + self.n / 16 + self.n % 16,
            _ => 1,
        }
    }
    /// Riccati: one component, written by one invocation; the grid kernels share out all
    /// their components.
    fn member_parallel_width(&self) -> usize {
        if self.scheme == Scheme::RiccatiS71 {
            1
        } else {
            self.layout.state_len
        }
    }
    fn jacobian_band(&self) -> Option<(usize, usize)> {
        // Blocks (on-shell ε_k values) do not couple, so each block's band is the member's.
        match self.scheme {
            Scheme::FokkerPlanck => Some((1, 1)),
            Scheme::ShiftConsistent | Scheme::ShiftS71Reading => {
                let m = self.members.iter().map(|d| d.shift).max().unwrap_or(1);
                Some((m, m))
            }
            // Level 1 couples every pair of frequencies; Riccati is an ODE in ω (1 × 1).
            Scheme::Collision | Scheme::CollisionEq5 | Scheme::RiccatiS71 => None,
        }
    }
    fn check_precision(&self, unit_roundoff: f64) -> Result<()> {
        // The largest magnitude the precision holds (f32: 3.4e38; f64: 1.8e308).
        let max = if unit_roundoff > f64::EPSILON { f32::MAX as f64 } else { f64::MAX };
        if let Some(k) = self.params.iter().chain(&self.tables).position(|v| v.abs() > max) {
            return Err(NeqkinError::invalid(
                "params.coupling_g",
                format!(
                    "a derived parameter or table entry (index {k}) overflows at unit roundoff {unit_roundoff:.1e}"
                ),
            ));
        }
        if self.scheme != Scheme::RiccatiS71 {
            return Ok(());
        }
        for d in &self.members {
            let r = &d.raw;
            // The kernel's ω = ω_start ± t carries an absolute error ~ u·(|ω_start| + span),
            // which moves F0's step (width T_cry) by that much: F0 near μ0 is wrong by
            // about half of it over T_cry. Refuse where that exceeds 1e-3.
            let (lo, hi) = (d.omega(0), d.omega(d.n - 1));
            let shift = unit_roundoff * (lo.abs().max(hi.abs()) + (hi - lo)) / r.t_cry;
            if shift > 1e-3 {
                return Err(NeqkinError::invalid(
                    "params.omega_max",
                    format!(
                        "riccati_s71 at unit roundoff {unit_roundoff:.1e}: ω over [{lo}, {hi}] is only known to \
                         {:.1e}, which moves the cryostat step (T_cry = {}) by {shift:.1e}·T_cry (> 1e-3): \
                         narrow the window or use f64",
                        shift * r.t_cry,
                        r.t_cry
                    ),
                ));
            }
            let x = (lo - d.eps_k).abs().max((hi - d.eps_k).abs());
            let inv_2a = (x * x + r.gamma * r.gamma) / (2.0 * d.kappa);
            if d.kappa < (if max < f64::MAX { f32::MIN_POSITIVE as f64 } else { f64::MIN_POSITIVE }) || inv_2a > max {
                return Err(NeqkinError::invalid(
                    "params.coupling_g",
                    format!(
                        "riccati_s71 at unit roundoff {unit_roundoff:.1e}: κ = {:.2e} (Ã0⁻¹ up to {inv_2a:.2e}) \
                         leaves the precision's range",
                        d.kappa
                    ),
                ));
            }
        }
        Ok(())
    }
    fn spectral_radius(&self) -> Option<Vec<f64>> {
        // Grid levels are Jacobi-preconditioned with a diagonal that bounds every row's
        // absolute sum (Gershgorin): radius ≤ 2.
        Some(
            self.members
                .iter()
                .map(|d| match self.scheme {
                    Scheme::RiccatiS71 => {
                        let r = &d.raw;
                        let x = (d.omega(0) - d.eps_k).abs().max((d.omega(self.n - 1) - d.eps_k).abs());
                        let inv_2a = (x * x + r.gamma * r.gamma) / (2.0 * d.kappa);
                        (2.0 + inv_2a) / (2.0 * r.t_mir)
                    }
                    _ => 2.0,
                })
                .collect(),
        )
    }
    fn observables(&self, member: usize, t: f64, y: &[f64]) -> Observables {
        let d = &self.members[member];
        let r = &d.raw;
        if self.scheme == Scheme::RiccatiS71 {
            let omega = self.member_params(member)[cpu::R_P_OMEGA] + d.direction * t;
            return Observables {
                scalars: vec![("omega".into(), omega), ("f".into(), y[0]), ("f0".into(), d.f0(omega))],
                arrays: vec![],
            };
        }
        let omega = self.omega(member);
        let f0: Vec<f64> = omega.iter().map(|&w| d.f0(w)).collect();
        let res = self.residual(member, y);
        let on_shell = self.on_shell(member, y);
        let main = self.main_block(member);
        let y = &y[main * self.n..(main + 1) * self.n];
        let residual = (res.iter().map(|x| x * x).sum::<f64>() / res.len() as f64).sqrt();
        let mu = observe::chemical_potential(&omega, y, r.mu0).unwrap_or(f64::NAN);
        let t_eff = if mu.is_finite() { observe::effective_temperature(&omega, y, mu) } else { f64::NAN };
        // Their length depends on μ (offsets inside the grid), so they are NaN-padded to the
        // grid's: an array's length is fixed by the parameters (results.zarr's layout).
        let padded = |mut v: Vec<f64>| {
            v.resize(omega.len().max(v.len()), f64::NAN);
            v
        };
        let f_sym = padded(if mu.is_finite() { observe::symmetric_part(&omega, y, mu) } else { vec![] });
        let x_sym = padded(if mu.is_finite() { observe::symmetric_offsets(&omega, mu) } else { vec![] });
        let delta_o = observe::delta_observable(&omega, y, &f0, &r.observable_coeffs, &r.dos_coeffs);
        let pred = observe::paper_predictions(
            r.mu0,
            r.t_cry,
            r.t_mir,
            d.g_tilde_sq(),
            if mu.is_finite() { mu } else { r.mu0 },
            &r.observable_coeffs,
            &r.dos_coeffs,
        );
        Observables {
            scalars: vec![
                ("mu".into(), mu),
                ("t_eff".into(), t_eff),
                ("residual".into(), residual),
                ("delta_o".into(), delta_o),
                ("g_tilde_sq".into(), d.g_tilde_sq()),
                ("mu_s95".into(), pred.mu_s95),
                ("t_eff_s97".into(), pred.t_eff_s97),
                ("delta_o_eq9".into(), pred.delta_o_eq9),
                ("h".into(), d.h),
                ("shift".into(), d.shift as f64),
                ("eps_k".into(), d.eps_k),
                // S84–S86 on the member's ε_k axis (NaN without `on_shell_eps_k`).
                ("delta_o_on_shell".into(), on_shell.as_ref().map_or(f64::NAN, |o| o.1)),
            ],
            arrays: {
                let mut a = vec![
                    ("omega".into(), omega),
                    ("f".into(), y.to_vec()),
                    ("f0".into(), f0),
                    ("f_sym".into(), f_sym),
                    ("x_sym".into(), x_sym),
                ];
                if let Some((df, _)) = on_shell {
                    a.push(("on_shell_eps_k".into(), d.eps_axis.clone()));
                    a.push(("on_shell_df".into(), df));
                }
                a
            },
        }
    }
}
