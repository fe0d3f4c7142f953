//! The model-agnostic engine: batched state, step programs, backends, integrators,
//! sweep scheduling and output.
//!
//! Data flow: a [`model::BatchProblem`] (built by a model from a batch of sweep points)
//! is handed to a [`backend::Backend`]; an [`integrators`] method compiles one *step
//! program* (a fixed list of [`program::Op`]s) that the backend replays many times
//! without the host looking at the state; the host reads back only per-member status
//! scalars and, at requested output times, the state.

pub mod backend;
pub mod bdf;
pub mod cpu;
pub mod dense;
pub mod gpu;
pub mod implicit;
pub mod integrators;
pub mod model;
pub mod program;
pub mod rosenbrock;
pub mod simd;
pub mod solve;
pub mod sparse_jacobian;
pub mod steady;
