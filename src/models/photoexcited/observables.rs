//! Host-side observables of one member: conductivity, phonon occupation, conserved
//! quantities, the self-consistent field and the distribution itself.

use super::collision;
use super::Member;
use crate::engine::model::Observables;

/// Names of the scalar observables, in output order.
pub const SCALARS: &[&str] = &[
    "sigma_over_sigma0",
    "zeta_t",
    "particle_number",
    "energy_electrons",
    "energy_total",
    "field_squared",
    "chemical_potential",
    "sigma_eq10",
    "sigma_eq8",
];

/// Observables of one member from its parameter block, table block and state.
pub fn observables(m: &Member, params: &[f64], tables: &[f64], t: f64, y: &[f64]) -> Observables {
    let n = m.eps.len();
    let mut dy = vec![0.0; y.len()];
    let mut scratch = vec![0.0; n];
    let s = collision::rhs(params, tables, t, y, &mut dy, &mut scratch);
    let f = &y[..n];
    let h = m.h;
    let number: f64 = f.iter().zip(&m.dos).map(|(f, d)| h * d * f).sum();
    let energy: f64 = f.iter().zip(&m.dos).zip(&m.eps).map(|((f, d), e)| h * e * d * f).sum();
    let zeta = y[n];
    Observables {
        scalars: vec![
            ("sigma_over_sigma0".into(), s.sigma / m.sigma0),
            ("zeta_t".into(), zeta),
            ("particle_number".into(), number),
            ("energy_electrons".into(), energy),
            ("energy_total".into(), energy + m.omega_mean * zeta),
            ("field_squared".into(), m.applied_field_squared + s.field_squared),
            ("chemical_potential".into(), m.mu),
            ("sigma_eq10".into(), m.sigma_eq10),
            ("sigma_eq8".into(), m.sigma_eq8),
        ],
        arrays: vec![("f".into(), f.to_vec()), ("energy_grid".into(), m.eps.clone()), ("dos".into(), m.dos.clone())],
    }
}
