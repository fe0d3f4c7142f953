//! Parameters of the cavity model (issue 3): raw serde struct, validation, and the derived
//! quantities every level shares (grid, photon prefactor κ, Lorentzians).

use serde::Deserialize;

use crate::engine::model::check_finite;
use crate::{NeqkinError, Result};

/// Which equation a member solves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// Level 1: general steady-state equation (Eq 5 / S56) with Lorentzian electron and
    /// photon spectral functions, relaxed in pseudo-time. Kernel `collision`.
    Collision,
    /// Level 1, printed Eq 5: photon spectral function even in ω (constant γ_ph) and no
    /// sign(ω̃−ω): the emission channel (ω̃ < ω) enters with the wrong sign. Its γ_ph → 0
    /// limit is [`Scheme::ShiftS71Reading`]. Kernel `collision`.
    CollisionEq5,
    /// Level 2, consistent: photon spectral function a delta at ±ν0 (S69 with S67's signed
    /// ν0, both channels relaxing). Kernel `shift`.
    ShiftConsistent,
    /// Level 2, the reading of S65–S67 whose ν0 → 0 limit is the printed S71: the ω−ν0
    /// channel enters with the wrong sign (anti-relaxing). Kernel `shift`.
    ShiftS71Reading,
    /// Level 3, consistent: the ν0 → 0 limit of level 2 at fixed cavity length, a
    /// drift-diffusion (Fokker–Planck) equation in ω in finite-volume form on a uniform or
    /// graded grid; steady state by Newton (`solver.method = "newton"`) or pseudo-time.
    /// Kernel `flux`.
    FokkerPlanck,
    /// Level 3, printed: the Riccati ODE S71 / Eq 6 integrated along ω (ω is the engine's
    /// time). Kernel `riccati`.
    RiccatiS71,
}

/// Raw parameter set of one sweep point (the config's `[params]` with sweep values
/// substituted). Energies in one common unit, ħ = k_B = c = 1.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CavityParams {
    /// 1 (general), 2 (delta photon), 3 (ν0 → 0 limit).
    #[serde(default = "default_level")]
    pub level: u32,
    /// Level 1: `consistent` | `eq5_printed`. Level 2: `consistent` | `s71_reading`.
    /// Level 3: `fokker_planck` (consistent) | `riccati_s71` (printed Eq 6 / S71).
    #[serde(default)]
    pub variant: Option<String>,
    /// Light-matter coupling g.
    pub coupling_g: f64,
    /// Cryostat temperature T_cry (electron bath).
    pub t_cry: f64,
    /// Mirror (photon bath) temperature T_mir.
    pub t_mir: f64,
    /// Cavity fundamental frequency ν0.
    pub nu0: f64,
    /// Photon damping γ_ph (level 1 only; photon width ≈ γ_ph at ν0).
    #[serde(default)]
    pub gamma_ph: Option<f64>,
    /// Electron damping γ (constant).
    pub gamma: f64,
    /// Bare chemical potential μ0.
    pub mu0: f64,
    /// Single-particle energy ε_k of the member's momentum (default μ0: k = k_F⁰).
    #[serde(default)]
    pub eps_k: Option<f64>,
    /// On-shell ε_k axis (S84–S86; grid levels): the member solves F(k, ω) at every listed
    /// ε_k (increasing, ≥ 2 values; one independent block each) and reports the on-shell
    /// ΔO = ∫dε O D (F(k_ε, ω = ε) − F0(ε))/2 over the axis (trapezoid). Excludes `eps_k`;
    /// the scalar observables then refer to the block with ε_k nearest μ0.
    #[serde(default)]
    pub on_shell_eps_k: Option<Vec<f64>>,
    /// Spatial dimension d ∈ {1, 2, 3}; enters through S_{d−1} = 2π^{d/2}/Γ(d/2).
    #[serde(default = "default_dim")]
    pub dim: u32,
    /// Cavity length L (1/energy). Default π/ν0, the fundamental Fabry–Perot mode with
    /// c = 1; this is the normalisation of the paper's figures (π/(Lν0) = 1).
    #[serde(default)]
    pub cavity_length: Option<f64>,
    /// Number of ω grid points (uniform grid levels) or of ω output points (Riccati);
    /// default 801. Not allowed with `grid = "graded"`, whose size follows from its spacings.
    #[serde(default)]
    pub n_omega: Option<usize>,
    /// ω grid: `uniform` (default) or `graded` (level 1 and level 3 `fokker_planck`): spacing `h_fine` within
    /// `fine_halfwidth` of μ0, growing geometrically (5 % per point) to `h_coarse` outside,
    /// symmetric about μ0. Resolves T_cry ≪ T_mir in a window of many T_mir (Fig S4).
    #[serde(default)]
    pub grid: Option<String>,
    /// Graded grid: spacing near μ0 (resolves T_cry; ≤ 2·min(T_cry, T_mir)).
    #[serde(default)]
    pub h_fine: Option<f64>,
    /// Graded grid: spacing far from μ0 (≤ gamma_ph and ≤ 2·T_mir).
    #[serde(default)]
    pub h_coarse: Option<f64>,
    /// Graded grid: half-width of the fine zone around μ0 (default 20·T_cry).
    #[serde(default)]
    pub fine_halfwidth: Option<f64>,
    /// Graded grid: spacing growth factor per point in the ramp, in (1, 1.5] (default 1.05;
    /// smaller is more accurate: the ramp is where the graded grid loses accuracy).
    #[serde(default)]
    pub grid_growth: Option<f64>,
    /// Lower end of the ω window (default min(μ0, ε_k) − W, W = 10·max(T) + 5γ).
    #[serde(default)]
    pub omega_min: Option<f64>,
    /// Upper end of the ω window (default max(μ0, ε_k) + W).
    #[serde(default)]
    pub omega_max: Option<f64>,
    /// Riccati only: `backward` (from ω_max down, the stable direction; default) or
    /// `forward` (from ω_min up starting at F = −1: runs away, kept to show it).
    #[serde(default)]
    pub riccati_direction: Option<String>,
    /// Observable O(ε) = Σ c_n εⁿ for ΔO (default O = 1).
    #[serde(default = "default_poly")]
    pub observable_coeffs: Vec<f64>,
    /// Density of states D(ε) = Σ d_n εⁿ for ΔO (default D = 1, the 2-D free electron gas).
    #[serde(default = "default_poly")]
    pub dos_coeffs: Vec<f64>,
}

fn default_level() -> u32 {
    2
}
fn default_dim() -> u32 {
    2
}
/// Default number of uniform grid points.
pub const DEFAULT_N_OMEGA: usize = 801;
/// Most ω points of a level-1 grid: its kernel sums a dense quadrature, n² per
/// right-hand side (Fig S4's graded level 1 has 4239 points).
pub const MAX_DENSE_POINTS: usize = 20_000;

/// Most ω points of one grid (uniform `n_omega` or graded): 10⁷ reals per block is already
/// 80 MB of state per member.
pub const MAX_GRID_POINTS: usize = 10_000_000;
/// Graded grid: default growth of the spacing per point between the fine and the coarse zone.
pub const GRID_GROWTH: f64 = 1.05;

/// Nodes of the graded grid on [lo, hi] ∋ μ0: spacing `h_fine` within `w` of μ0, then
/// growing by `growth` per point up to `h_coarse`; each side marched out from μ0
/// and scaled (by a factor in (1 − h_coarse/|side|, 1]) so the last node is the window end.
/// Symmetric about μ0 when the window is.
pub fn graded_nodes(mu0: f64, lo: f64, hi: f64, h_fine: f64, h_coarse: f64, w: f64, growth: f64) -> Vec<f64> {
    let side = |len: f64| -> Vec<f64> {
        let mut x = vec![0.0];
        let mut h = h_fine;
        while *x.last().unwrap() < len {
            let last = *x.last().unwrap();
            if last >= w {
                h = (h * growth).min(h_coarse);
            }
            x.push(last + h);
        }
        let scale = len / *x.last().unwrap();
        x.iter().map(|v| v * scale).collect()
    };
    let left = side(mu0 - lo);
    let right = side(hi - mu0);
    let mut nodes: Vec<f64> = left.iter().rev().map(|x| mu0 - x).collect();
    nodes.extend(right.iter().skip(1).map(|x| mu0 + x));
    nodes
}
fn default_poly() -> Vec<f64> {
    vec![1.0]
}

/// Surface area of the unit sphere in d dimensions, 2π^{d/2}/Γ(d/2) (d = 1, 2, 3).
/// The supplement prints (2π)^{d/2}/Γ(d/2), which agrees at d = 2 only.
pub fn sphere_area(dim: u32) -> f64 {
    match dim {
        1 => 2.0,
        2 => 2.0 * std::f64::consts::PI,
        _ => 4.0 * std::f64::consts::PI,
    }
}

/// Checked and derived parameters of one member.
#[derive(Clone, Debug)]
pub struct Derived {
    /// Raw values.
    pub raw: CavityParams,
    /// Which equation.
    pub scheme: Scheme,
    /// ε_k (with an on-shell axis: the axis value nearest μ0).
    pub eps_k: f64,
    /// The member's ε_k values, one state block each: the on-shell axis, or [ε_k].
    pub eps_axis: Vec<f64>,
    /// S_{d−1}.
    pub s_d: f64,
    /// L.
    pub cavity_length: f64,
    /// κ = π g² S_{d−1} / (2 L ν0): weight of each delta channel (level 2) and the paper's
    /// Ã0 = κ / ((ω−ε)² + γ²).
    pub kappa: f64,
    /// Uniform grid: ω_i = omega0 + i·h, i < n.
    pub omega0: f64,
    /// Grid spacing (graded grid: the finest spacing, h_fine).
    pub h: f64,
    /// Graded grid: the nodes ω_i (None: uniform).
    pub nodes: Option<Vec<f64>>,
    /// Grid points.
    pub n: usize,
    /// Level 2: ν0 = shift·h.
    pub shift: usize,
    /// Riccati: +1 forward, −1 backward.
    pub direction: f64,
}

impl Derived {
    /// ω of grid point i.
    pub fn omega(&self, i: usize) -> f64 {
        match &self.nodes {
            Some(x) => x[i],
            None => self.omega0 + i as f64 * self.h,
        }
    }
    /// Electron spectral function A_e(ω) = γ / ((ω − ε_k)² + γ²) (no 1/π, as in S61).
    pub fn spectral(&self, w: f64) -> f64 {
        let x = w - self.eps_k;
        self.raw.gamma / (x * x + self.raw.gamma * self.raw.gamma)
    }
    /// Thermal cryostat distribution F0(ω) = tanh((ω − μ0)/2T_cry).
    pub fn f0(&self, w: f64) -> f64 {
        ((w - self.raw.mu0) / (2.0 * self.raw.t_cry)).tanh()
    }
    /// g̃² := 2κ/γ², equal to S_{d−1}g²/γ² (the paper's g̃²) when L = π/ν0.
    pub fn g_tilde_sq(&self) -> f64 {
        2.0 * self.kappa / (self.raw.gamma * self.raw.gamma)
    }
}

fn positive(field: &str, v: f64) -> Result<f64> {
    check_finite(&format!("params.{field}"), v)?;
    if v <= 0.0 {
        return Err(NeqkinError::invalid(format!("params.{field}"), format!("must be > 0, got {v}")));
    }
    Ok(v)
}

/// Parses and checks one parameter set.
pub fn derive(value: &serde_json::Value) -> Result<Derived> {
    derive_from(crate::engine::model::parse_params(value)?)
}

/// Checks one parameter set already parsed into its struct and derives the grid.
pub fn derive_from(raw: CavityParams) -> Result<Derived> {
    let scheme = match (raw.level, raw.variant.as_deref()) {
        (1, None | Some("consistent")) => Scheme::Collision,
        (1, Some("eq5_printed")) => Scheme::CollisionEq5,
        (2, None | Some("consistent")) => Scheme::ShiftConsistent,
        (2, Some("s71_reading")) => Scheme::ShiftS71Reading,
        (3, None | Some("fokker_planck")) => Scheme::FokkerPlanck,
        (3, Some("riccati_s71")) => Scheme::RiccatiS71,
        (1..=3, Some(v)) => {
            return Err(NeqkinError::invalid(
                "params.variant",
                format!(
                    "unknown variant `{v}` for level {}: level 1: consistent | eq5_printed; level 2: \
                     consistent | s71_reading; level 3: fokker_planck | riccati_s71",
                    raw.level
                ),
            ))
        }
        (l, _) => return Err(NeqkinError::invalid("params.level", format!("must be 1, 2 or 3, got {l}"))),
    };
    check_finite("params.coupling_g", raw.coupling_g)?;
    if raw.coupling_g < 0.0 {
        return Err(NeqkinError::invalid("params.coupling_g", "must be >= 0"));
    }
    let t_cry = positive("t_cry", raw.t_cry)?;
    let t_mir = positive("t_mir", raw.t_mir)?;
    let nu0 = positive("nu0", raw.nu0)?;
    let gamma = positive("gamma", raw.gamma)?;
    check_finite("params.mu0", raw.mu0)?;
    if !(1..=3).contains(&raw.dim) {
        return Err(NeqkinError::invalid("params.dim", "must be 1, 2 or 3"));
    }
    if matches!(scheme, Scheme::Collision | Scheme::CollisionEq5) {
        match raw.gamma_ph {
            Some(g) => {
                positive("gamma_ph", g)?;
            }
            None => return Err(NeqkinError::invalid("params.gamma_ph", "level 1 needs the photon damping gamma_ph")),
        }
    }
    let eps_axis = match &raw.on_shell_eps_k {
        None => {
            let e = raw.eps_k.unwrap_or(raw.mu0);
            check_finite("params.eps_k", e)?;
            vec![e]
        }
        Some(axis) => {
            if raw.eps_k.is_some() {
                return Err(NeqkinError::invalid(
                    "params.on_shell_eps_k",
                    "give either eps_k or on_shell_eps_k, not both",
                ));
            }
            if scheme == Scheme::RiccatiS71 {
                return Err(NeqkinError::invalid(
                    "params.on_shell_eps_k",
                    "not available for riccati_s71 (grid levels only: 1, 2, 3 fokker_planck)",
                ));
            }
            if axis.len() < 2 {
                return Err(NeqkinError::invalid("params.on_shell_eps_k", "needs at least 2 values"));
            }
            for (k, e) in axis.iter().enumerate() {
                check_finite(&format!("params.on_shell_eps_k[{k}]"), *e)?;
            }
            if axis.windows(2).any(|p| p[1] <= p[0]) {
                return Err(NeqkinError::invalid("params.on_shell_eps_k", "must be strictly increasing"));
            }
            axis.clone()
        }
    };
    let eps_k =
        *eps_axis.iter().min_by(|a, b| (*a - raw.mu0).abs().partial_cmp(&(*b - raw.mu0).abs()).unwrap()).unwrap();
    let (eps_lo, eps_hi) = (eps_axis[0], eps_axis[eps_axis.len() - 1]);
    let cavity_length = match raw.cavity_length {
        Some(l) => positive("cavity_length", l)?,
        None => std::f64::consts::PI / nu0,
    };
    let s_d = sphere_area(raw.dim);
    let kappa = std::f64::consts::PI * raw.coupling_g * raw.coupling_g * s_d / (2.0 * cavity_length * nu0);
    if !kappa.is_finite() {
        return Err(NeqkinError::invalid(
            "params.coupling_g",
            format!("the photon weight κ = πg²S/(2Lν0) overflows (g = {:e})", raw.coupling_g),
        ));
    }
    let graded = match raw.grid.as_deref() {
        None | Some("uniform") => false,
        Some("graded") => true,
        Some(v) => {
            return Err(NeqkinError::invalid("params.grid", format!("must be `uniform` or `graded`, got `{v}`")))
        }
    };
    if graded && !matches!(scheme, Scheme::Collision | Scheme::CollisionEq5 | Scheme::FokkerPlanck) {
        return Err(NeqkinError::invalid(
            "params.grid",
            "the graded grid is implemented for level 1 and level 3 fokker_planck (level 2's \
             ω ± ν0 partners would need interpolation, which breaks its exact fixed points; \
             level 2 is O(n) per step and runs a uniform grid at Fig S4 resolution)",
        ));
    }
    if graded && raw.n_omega.is_some() {
        return Err(NeqkinError::invalid(
            "params.n_omega",
            "a graded grid's size follows from h_fine, h_coarse and fine_halfwidth; omit n_omega",
        ));
    }
    if !graded {
        for (field, v) in [
            ("h_fine", raw.h_fine),
            ("h_coarse", raw.h_coarse),
            ("fine_halfwidth", raw.fine_halfwidth),
            ("grid_growth", raw.grid_growth),
        ] {
            if v.is_some() {
                return Err(NeqkinError::invalid(format!("params.{field}"), "only used with grid = \"graded\""));
            }
        }
    }
    let n_uniform = raw.n_omega.unwrap_or(DEFAULT_N_OMEGA);
    if !(8..=MAX_GRID_POINTS).contains(&n_uniform) {
        return Err(NeqkinError::invalid("params.n_omega", format!("must lie in [8, {MAX_GRID_POINTS}]")));
    }
    if raw.observable_coeffs.is_empty() || raw.dos_coeffs.is_empty() {
        return Err(NeqkinError::invalid("params.observable_coeffs", "polynomial coefficient lists must not be empty"));
    }
    for (k, c) in raw.observable_coeffs.iter().chain(&raw.dos_coeffs).enumerate() {
        check_finite(&format!("params.observable_coeffs[{k}]"), *c)?;
    }
    let w = 10.0 * t_cry.max(t_mir) + 5.0 * gamma;
    let lo = raw.omega_min.unwrap_or(raw.mu0.min(eps_lo) - w);
    let hi = raw.omega_max.unwrap_or(raw.mu0.max(eps_hi) + w);
    if raw.on_shell_eps_k.is_some() && (eps_lo < lo || eps_hi > hi) {
        return Err(NeqkinError::invalid("params.on_shell_eps_k", format!("must lie inside the window [{lo}, {hi}]")));
    }
    check_finite("params.omega_min", lo)?;
    check_finite("params.omega_max", hi)?;
    if hi <= lo {
        return Err(NeqkinError::invalid("params.omega_max", format!("must exceed omega_min ({lo}), got {hi}")));
    }
    let mut n = n_uniform;
    let h_nom = (hi - lo) / (n - 1) as f64;
    let (omega0, h, shift) = match scheme {
        Scheme::ShiftConsistent | Scheme::ShiftS71Reading => {
            // Commensurate grid: ν0 = shift·h exactly, so the delta channels land on grid
            // points and no interpolation breaks the exact equilibrium fixed point.
            let ratio = nu0 / h_nom;
            if ratio < 0.5 {
                return Err(NeqkinError::invalid(
                    "params.n_omega",
                    format!(
                        "level 2 needs grid spacing <= nu0 = {nu0}; the window [{lo}, {hi}] \
                         needs n_omega >= {}",
                        ((hi - lo) / nu0).ceil() as usize + 1
                    ),
                ));
            }
            let shift = ratio.round().max(1.0) as usize;
            let h = nu0 / shift as f64;
            let centre = 0.5 * (lo + hi);
            (centre - 0.5 * (n - 1) as f64 * h, h, shift)
        }
        _ => (lo, h_nom, 0),
    };
    // Level 2's commensurate grid spans (n − 1)·ν0/shift around the window's centre, which
    // is narrower than the window when ν0/h rounds up: an on-shell ε_k outside it would be
    // read off the clamped end of the grid (extrapolated), silently.
    let (grid_lo, grid_hi) = (omega0, omega0 + (n - 1) as f64 * h);
    if raw.on_shell_eps_k.is_some() && (eps_lo < grid_lo || eps_hi > grid_hi) {
        return Err(NeqkinError::invalid(
            "params.on_shell_eps_k",
            format!(
                "must lie inside the grid [{grid_lo}, {grid_hi}] (level 2 makes the grid commensurate with \
                 nu0, narrowing the window [{lo}, {hi}]; raise n_omega)"
            ),
        ));
    }
    let mut nodes = None;
    let mut h = h;
    if graded {
        let field = |name: &str, v: Option<f64>| -> Result<f64> {
            let v = v.ok_or_else(|| NeqkinError::invalid(format!("params.{name}"), "required by grid = \"graded\""))?;
            positive(name, v)
        };
        let h_fine = field("h_fine", raw.h_fine)?;
        let h_coarse = field("h_coarse", raw.h_coarse)?;
        let w = match raw.fine_halfwidth {
            Some(w) => positive("fine_halfwidth", w)?,
            None => 20.0 * t_cry,
        };
        if h_coarse < h_fine {
            return Err(NeqkinError::invalid("params.h_coarse", format!("must be >= h_fine = {h_fine}")));
        }
        if !(lo < raw.mu0 && raw.mu0 < hi) {
            return Err(NeqkinError::invalid("params.omega_min", "a graded grid needs mu0 inside the window"));
        }
        if h_coarse > 2.0 * t_mir {
            return Err(NeqkinError::invalid(
                "params.h_coarse",
                format!("{h_coarse} does not resolve T_mir = {t_mir} (needs <= 2·T_mir)"),
            ));
        }
        if scheme == Scheme::FokkerPlanck && h_coarse > gamma {
            return Err(NeqkinError::invalid(
                "params.h_coarse",
                format!("{h_coarse} does not resolve the electron spectral width gamma = {gamma} (needs <= gamma)"),
            ));
        }
        // The level-1 kernel builds coth((ω_i−ω_j)/2T_mir) from per-node factors
        // e^{±(ω−μ0)/T_mir}; keep them inside the f32 range. (The flux kernel's coth per
        // edge comes from the host.)
        let reach = (raw.mu0 - lo).max(hi - raw.mu0) / t_mir;
        if reach > 80.0 && scheme != Scheme::FokkerPlanck {
            return Err(NeqkinError::invalid(
                "params.omega_max",
                format!("a graded window may reach at most 80·T_mir from mu0 (it reaches {reach:.1}·T_mir)"),
            ));
        }
        let growth = raw.grid_growth.unwrap_or(GRID_GROWTH);
        check_finite("params.grid_growth", growth)?;
        if !(growth > 1.0 && growth <= 1.5) {
            return Err(NeqkinError::invalid("params.grid_growth", format!("must lie in (1, 1.5], got {growth}")));
        }
        // Node count before building the nodes: a tiny h_fine would otherwise march out
        // billions of nodes (memory, or a hang) before any check could see them.
        let side = |len: f64| {
            let fine = len.min(w) / h_fine;
            let ramp = (h_coarse / h_fine).ln() / growth.ln();
            fine + ramp + len / h_coarse
        };
        let estimate = side(raw.mu0 - lo) + side(hi - raw.mu0);
        if estimate.is_nan() || estimate > MAX_GRID_POINTS as f64 {
            return Err(NeqkinError::invalid(
                "params.h_fine",
                format!("the graded grid would have ~{estimate:.2e} nodes (at most {MAX_GRID_POINTS})"),
            ));
        }
        let x = graded_nodes(raw.mu0, lo, hi, h_fine, h_coarse, w, growth);
        n = x.len();
        h = h_fine;
        nodes = Some(x);
    }
    if matches!(scheme, Scheme::Collision | Scheme::CollisionEq5) && n > MAX_DENSE_POINTS {
        return Err(NeqkinError::invalid(
            if graded { "params.h_fine" } else { "params.n_omega" },
            format!(
                "level 1 sums a dense ω̃ quadrature (n² work per right-hand side): {n} points, at most \
                 {MAX_DENSE_POINTS} (a graded grid resolves μ0 with fewer points)"
            ),
        ));
    }
    let min_t = t_cry.min(t_mir);
    if scheme != Scheme::RiccatiS71 && h > 2.0 * min_t {
        let field = if graded { "params.h_fine" } else { "params.n_omega" };
        // F0 varies on the scale of T_cry and F on that of the smaller temperature; two
        // points per scale is the least that means anything.
        return Err(NeqkinError::invalid(
            field,
            format!(
                "grid spacing {h:.3e} does not resolve T = {min_t}; increase n_omega or \
                 narrow the window"
            ),
        ));
    }
    if matches!(scheme, Scheme::Collision | Scheme::CollisionEq5) {
        let gph = raw.gamma_ph.unwrap();
        let (field, hmax) = match raw.h_coarse {
            Some(hc) if graded => ("params.h_coarse", hc),
            _ => ("params.n_omega", h),
        };
        if hmax > gph {
            return Err(NeqkinError::invalid(
                field,
                format!("level 1 needs grid spacing {hmax:.3e} <= gamma_ph = {gph}"),
            ));
        }
    }
    let direction = match raw.riccati_direction.as_deref() {
        None | Some("backward") => -1.0,
        Some("forward") => 1.0,
        Some(v) => {
            return Err(NeqkinError::invalid(
                "params.riccati_direction",
                format!("must be `backward` or `forward`, got `{v}`"),
            ))
        }
    };
    Ok(Derived { scheme, eps_k, eps_axis, s_d, cavity_length, kappa, omega0, h, nodes, n, shift, direction, raw })
}

/// Every key of [`CavityParams`] with its default, unit, range and meaning
/// (`neqkin params cavity`). Energies and temperatures share one unit E (ħ = k_B = c = 1).
#[rustfmt::skip]
pub fn docs() -> Vec<crate::engine::model::ParamDoc> {
    use crate::engine::model::ParamDoc as P;
    use serde_json::json;
    vec![
        P::new("level", json!(default_level()), "—", "1 | 2 | 3", "equation solved: 1 general (Eq 5/S56), 2 delta photon (S69), 3 the ν0 → 0 limit"),
        P::unset("variant", "consistent (level 1, 2), fokker_planck (level 3)", "—", "1: consistent | eq5_printed; 2: consistent | s71_reading; 3: fokker_planck | riccati_s71", "the consistent equation or the printed reading"),
        P::required("coupling_g", "E", "≥ 0", "light-matter coupling g"),
        P::required("t_cry", "E", "> 0", "cryostat (electron bath) temperature T_cry"),
        P::required("t_mir", "E", "> 0", "mirror (photon bath) temperature T_mir"),
        P::required("nu0", "E", "> 0", "cavity fundamental frequency ν0"),
        P::unset("gamma_ph", "required at level 1, unused otherwise", "E", "> 0, ≥ grid spacing", "photon damping γ_ph (level 1)"),
        P::required("gamma", "E", "> 0", "electron damping γ (width of the spectral function)"),
        P::required("mu0", "E", "finite", "bare chemical potential μ0"),
        P::unset("eps_k", "mu0 (k = k_F⁰)", "E", "finite; excludes on_shell_eps_k", "single-particle energy ε_k of the member's momentum"),
        P::unset("on_shell_eps_k", "one block at eps_k", "E", "≥ 2 increasing values inside the ω window; grid levels", "ε_k axis of the on-shell ΔO (S84–S86)"),
        P::new("dim", json!(default_dim()), "—", "1 | 2 | 3", "spatial dimension d (through S_{d−1})"),
        P::unset("cavity_length", "π/ν0 (the figures' normalisation)", "1/E", "> 0", "cavity length L"),
        P::unset("n_omega", "801 (uniform grid)", "—", "≥ 8; not with grid = \"graded\"", "ω grid points (Riccati: ω output points)"),
        P::new("grid", json!("uniform"), "—", "uniform | graded (levels 1 and 3 fokker_planck)", "ω grid: uniform, or fine near μ0 and coarse outside"),
        P::unset("h_fine", "required with grid = \"graded\"", "E", "> 0, ≤ 2·min(T_cry, T_mir)", "graded grid spacing near μ0"),
        P::unset("h_coarse", "required with grid = \"graded\"", "E", "≥ h_fine, ≤ 2·T_mir (≤ gamma_ph level 1, ≤ gamma level 3)", "graded grid spacing far from μ0"),
        P::unset("fine_halfwidth", "20·T_cry", "E", "> 0; graded grid", "half-width of the fine zone around μ0"),
        P::unset("grid_growth", "1.05", "—", "(1, 1.5]; graded grid", "spacing growth factor per point between the zones"),
        P::unset("omega_min", "min(μ0, ε_k) − (10·max(T) + 5γ)", "E", "< omega_max", "lower end of the ω window"),
        P::unset("omega_max", "max(μ0, ε_k) + (10·max(T) + 5γ)", "E", "> omega_min", "upper end of the ω window"),
        P::unset("riccati_direction", "backward", "—", "backward | forward; riccati_s71 only", "direction of the Riccati integration along ω"),
        P::new("observable_coeffs", json!(default_poly()), "—", "non-empty list of finite numbers", "O(ε) = Σ c_n εⁿ of the on-shell ΔO"),
        P::new("dos_coeffs", json!(default_poly()), "—", "non-empty list of finite numbers", "D(ε) = Σ d_n εⁿ of the on-shell ΔO"),
    ]
}
