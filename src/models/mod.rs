//! Physics models. Each owns its parameters, state layout, CPU reference right-hand side, observables and WGSL kernels.
//!
//! [`registry`] lists every model by name; configs pick one with `model = "<name>"`.

pub mod cavity;
pub mod eliashberg;
pub mod interband;
pub mod photoexcited;
pub mod relaxation;

use crate::engine::model::Model;
use crate::{NeqkinError, Result};

/// Every model neqkin knows, in the order `neqkin devices`/errors list them.
pub fn registry() -> Vec<Box<dyn crate::engine::model::Model>> {
    vec![
        Box::new(photoexcited::Photoexcited),
        Box::new(cavity::Cavity),
        Box::new(interband::Interband),
        Box::new(relaxation::Relaxation),
        Box::new(eliashberg::Eliashberg),
    ]
}

/// The model named `name`, or [`NeqkinError::UnknownModel`] listing the known names.
pub fn find(name: &str) -> Result<Box<dyn Model>> {
    let all = registry();
    let known: Vec<&str> = all.iter().map(|m| m.name()).collect();
    let known = known.join(", ");
    all.into_iter().find(|m| m.name() == name).ok_or_else(|| NeqkinError::UnknownModel(name.to_string(), known))
}
