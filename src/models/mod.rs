//! Physics models. Each owns its parameters, state layout, CPU reference right-hand side, observables and WGSL kernels.

pub mod interband;

/// Every model the CLI knows, by config name.
pub fn registry() -> Vec<Box<dyn crate::engine::model::Model>> {
    vec![Box::new(interband::Interband)]
}
