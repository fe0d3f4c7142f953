//! neqkin: batched solver for non-equilibrium kinetic equations of electrons coupled to
//! driven phonons and photons.
//!
//! The crate is split in two halves that never import each other's internals:
//! [`engine`] (backends, integrators, sweep scheduler, output) knows no physics model;
//! [`models`] own their parameters, state layout, CPU reference right-hand sides,
//! observables and WGSL kernels. See `ARCHITECTURE.md`.
#![warn(missing_docs)]

pub mod config;
pub mod engine;
pub mod error;
pub mod models;
pub mod plot;
pub mod run;

pub use error::{NeqkinError, Result};
