//! Physics models. Each owns its parameters, state layout, CPU reference right-hand side, observables and WGSL kernels.

pub mod eliashberg;

/// Every model known to the CLI.
pub fn registry() -> Vec<Box<dyn crate::engine::model::Model>> {
    vec![Box::new(eliashberg::Eliashberg)]
}
