//! The backend interface: storage for batch vectors and scalars, and execution of step
//! programs. Implemented by [`crate::engine::cpu::CpuBackend`] (the reference) and by the
//! wgpu backend in `engine::gpu`.

use crate::engine::program::{ScalarId, StepProgram, VecId};
use crate::Result;

/// Handle of a compiled step program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgramId(pub usize);

/// Numeric precision used by a backend's kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit floats.
    F32,
    /// 64-bit floats.
    F64,
}

impl Precision {
    /// Unit roundoff: 2⁻²⁴ (f32), 2⁻⁵³ (f64).
    pub fn unit_roundoff(self) -> f64 {
        match self {
            Precision::F32 => f32::EPSILON as f64 / 2.0,
            Precision::F64 => f64::EPSILON / 2.0,
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::F64 => "f64",
        })
    }
}

/// Description of a backend for `meta.json` and `neqkin devices`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BackendInfo {
    /// `cpu` or `gpu`.
    pub backend: String,
    /// Adapter name (GPU) or CPU description.
    pub adapter: String,
    /// Graphics API / driver (`Vulkan`, `Metal`, ..., or `rayon` for CPU).
    pub api: String,
    /// Kernel precision.
    pub precision: Precision,
    /// Worker threads (CPU) or 0.
    pub threads: usize,
    /// Compute dispatches this backend has issued so far (GPU; `None` on the CPU). Not
    /// written with the backend in `meta.json`, where it would be the count before the first
    /// batch: the schedule records it per batch and as `dispatches_per_accepted_step`.
    #[serde(skip)]
    pub dispatches: Option<u64>,
    /// GPU: the work layout of the model's member kernels (threads per member, members per
    /// workgroup, workgroups per member; [`crate::engine::gpu::MemberLayout`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layout: Option<String>,
}

/// Executes step programs over one batch problem.
///
/// All methods that take ids refer to storage created by this backend. Uploads and
/// downloads are in f64 whatever the kernel precision.
pub trait Backend {
    /// Allocates a batch vector (zeroed).
    fn new_vector(&mut self) -> Result<VecId>;
    /// Allocates a per-member scalar array (zeroed).
    fn new_scalars(&mut self) -> Result<ScalarId>;
    /// Writes a whole batch vector.
    fn write_vector(&mut self, v: VecId, data: &[f64]) -> Result<()>;
    /// Reads a whole batch vector.
    fn read_vector(&mut self, v: VecId) -> Result<Vec<f64>>;
    /// Writes a per-member scalar array.
    fn write_scalars(&mut self, s: ScalarId, data: &[f64]) -> Result<()>;
    /// Reads a per-member scalar array.
    fn read_scalars(&mut self, s: ScalarId) -> Result<Vec<f64>>;
    /// Prepares a program for repeated execution.
    fn compile(&mut self, program: &StepProgram) -> Result<ProgramId>;
    /// Runs a compiled program `repeats` times in a row (one submission on the GPU).
    fn run(&mut self, program: ProgramId, repeats: usize) -> Result<()>;
    /// Description for output metadata.
    fn info(&self) -> BackendInfo;
}
