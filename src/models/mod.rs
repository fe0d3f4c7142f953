//! Physics models. Each owns its parameters, state layout, CPU reference right-hand side, observables and WGSL kernels.

pub mod cavity;

/// Every model the CLI knows, by `Model::name`.
pub fn registry() -> Vec<Box<dyn crate::engine::model::Model>> {
    vec![Box::new(cavity::Cavity)]
}
