//! Nonlinear kinetic equation (stub).
use super::Params;
use crate::engine::model::{BatchLayout, BatchProblem, KernelSource, Observables};
use crate::{NeqkinError, Result};

/// Principal-value rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PvRule {
    /// Product integration against piecewise-linear f.
    Product,
    /// Drop the singular points.
    Drop,
}

/// Batch of kinetic problems.
pub struct KineticProblem;

impl KineticProblem {
    /// Builds.
    pub fn new(_ps: &[Params]) -> Result<Self> {
        Err(NeqkinError::invalid("params.task", "not yet"))
    }
}

impl BatchProblem for KineticProblem {
    fn layout(&self) -> BatchLayout {
        unimplemented!()
    }
    fn params(&self) -> &[f64] {
        &[]
    }
    fn tables(&self) -> &[f64] {
        &[]
    }
    fn initial_state(&self) -> Vec<f64> {
        vec![]
    }
    fn rhs_member(&self, _: usize, _: &[f64], _: &[f64], _: f64, _: &[f64], _: &mut [f64], _: &mut [f64]) {}
    fn kernel(&self) -> KernelSource {
        KernelSource { name: String::new(), source: String::new() }
    }
    fn observables(&self, _: usize, _: f64, _: &[f64]) -> Observables {
        Observables::default()
    }
}
