//! The wgpu backend: the device context shared by all batches, the WGSL preprocessor,
//! the uniform blocks and [`GpuBackend`], which executes step programs with the kernels
//! of `shaders/engine/ops.wgsl` and the model's RHS kernel.
//!
//! Getting a device ([`GpuContext::new`]) is separate from the work: build the context
//! once, wrap it in an `Arc` and hand it to every batch's [`GpuBackend`]; shader modules
//! and pipelines are cached in it. wgpu validation errors (shader compile failures,
//! out-of-memory) are caught with error scopes and returned as
//! [`NeqkinError::Gpu`].

mod backend;
mod fused;
pub mod layout;
mod map;
pub mod preprocess;
pub mod testing;
pub mod uniforms;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

pub use backend::{GpuBackend, LINCOMB_MAX_TERMS};
pub use layout::MemberLayout;
pub use map::GpuMap;

use crate::engine::backend::Precision;
use crate::engine::model::BatchLayout;
use crate::{NeqkinError, Result};

/// Environment variable selecting the adapter by a (case-insensitive) name substring.
pub const ADAPTER_ENV: &str = "NEQKIN_ADAPTER";

/// Threads per workgroup of every engine kernel (`WG` in the shaders).
pub const WG: u32 = 256;

/// On a CPU adapter (Mesa's llvmpipe/lavapipe), the state components one invocation of a
/// member kernel covers at most (see [`GpuContext::member_workgroup_size`]).
pub const CPU_CELLS_PER_INVOCATION: usize = 64;

/// Environment variable overriding [`GpuContext::member_workgroup_size`].
pub const MEMBER_WG_ENV: &str = "NEQKIN_MEMBER_WG";

/// Smallest member workgroup on a CPU adapter: one SIMD group of llvmpipe at 256 bits
/// (8 lanes of 32 bits); fewer threads leave lanes idle.
pub const CPU_MIN_WG: u32 = 8;

/// Loop iterations Mesa's llvmpipe (lavapipe) lets one shader invocation run per dispatch,
/// summed over all its loops (LP_MAX_TGSI_LOOP_ITERATIONS; see shared/rhs_bindings).
pub const LAVAPIPE_LOOP_BUDGET: usize = 65_535;

/// Whether `evaluations` right-hand sides, each with its stage combination (and 64 loop
/// iterations of reductions), fit lavapipe's loop budget in one invocation of a member
/// workgroup of `threads` over `state_len` components with `loops_per_component`
/// iterations each ([`crate::engine::model::BatchProblem::member_loops_per_component`]).
pub fn cpu_member_loops_fit(state_len: usize, loops_per_component: usize, threads: usize, evaluations: usize) -> bool {
    let per_invocation = state_len.div_ceil(threads.max(1));
    per_invocation * (loops_per_component + 1) * evaluations + evaluations * 64 <= LAVAPIPE_LOOP_BUDGET
}

/// [`GpuContext::member_workgroup_size`] on a CPU adapter (no override).
pub fn cpu_member_workgroup_size(state_len: usize, loops_per_component: usize) -> u32 {
    let fits = |threads: usize| cpu_member_loops_fit(state_len, loops_per_component, threads, fused::MAX_FUSED_RHS);
    let mut threads = (state_len.div_ceil(CPU_CELLS_PER_INVOCATION).next_power_of_two() as u32).clamp(CPU_MIN_WG, WG);
    while threads < WG && !fits(threads as usize) {
        threads *= 2;
    }
    threads
}

/// Graphics APIs the context looks for adapters on.
fn backends() -> wgpu::Backends {
    wgpu::Backends::VULKAN | wgpu::Backends::METAL | wgpu::Backends::DX12
}

/// One adapter as `neqkin devices` lists it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AdapterReport {
    /// Adapter name, e.g. `llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub name: String,
    /// Graphics API (`Vulkan`, `Metal`, `Dx12`).
    pub api: String,
    /// `DiscreteGpu`, `IntegratedGpu`, `VirtualGpu`, `Cpu` or `Other`.
    pub device_type: String,
    /// Whether f64 kernels can run (`SHADER_F64`).
    pub f64: bool,
    /// Largest storage buffer binding, bytes.
    pub max_storage_binding: u64,
    /// Largest buffer, bytes.
    pub max_buffer_size: u64,
    /// Driver name and version as the adapter reports them (may be empty).
    pub driver: String,
}

fn driver(info: &wgpu::AdapterInfo) -> String {
    format!("{} {}", info.driver, info.driver_info).trim().to_string()
}

fn report(adapter: &wgpu::Adapter) -> AdapterReport {
    let info = adapter.get_info();
    let limits = adapter.limits();
    AdapterReport {
        name: info.name.clone(),
        api: format!("{:?}", info.backend),
        device_type: format!("{:?}", info.device_type),
        f64: adapter.features().contains(wgpu::Features::SHADER_F64),
        max_storage_binding: limits.max_storage_buffer_binding_size,
        max_buffer_size: limits.max_buffer_size,
        driver: driver(&info),
    }
}

/// Every adapter wgpu finds on Vulkan, Metal and DX12, best first.
pub fn list_adapters() -> Vec<AdapterReport> {
    let instance = new_instance();
    let mut adapters = pollster::block_on(instance.enumerate_adapters(backends()));
    adapters.sort_by_key(|a| rank(a.get_info().device_type));
    adapters.iter().map(report).collect()
}

fn new_instance() -> wgpu::Instance {
    wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: backends(),
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    })
}

/// Preference order of device types (lower is better).
fn rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}

/// Key of a cached pipeline: preprocessed source and entry point.
type PipelineKey = (String, String);

/// A compute pipeline with its explicit bind group layout.
#[derive(Clone)]
pub(crate) struct Kernel {
    pub(crate) pipeline: wgpu::ComputePipeline,
    pub(crate) layout: wgpu::BindGroupLayout,
}

/// How a kernel binding is accessed.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Access {
    Uniform,
    Read,
    ReadWrite,
}

/// A wgpu device chosen once and reused across batches.
pub struct GpuContext {
    adapter_info: wgpu::AdapterInfo,
    limits: wgpu::Limits,
    f64: bool,
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    kernels: Mutex<HashMap<PipelineKey, Kernel>>,
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuContext").field("adapter", &self.adapter_info.name).field("f64", &self.f64).finish()
    }
}

impl GpuContext {
    /// Opens the best adapter (discrete > integrated > virtual > CPU), or the first whose
    /// name contains `$NEQKIN_ADAPTER` (case-insensitive) when that is set.
    pub fn new() -> Result<Self> {
        let wanted = std::env::var(ADAPTER_ENV).ok().filter(|s| !s.is_empty());
        Self::with_adapter(wanted.as_deref())
    }

    /// Opens the best adapter whose name contains `name` (case-insensitive), or the best
    /// of all when `name` is `None`. Requests `SHADER_F64` when the adapter has it and
    /// the adapter's own limits (not wgpu's defaults).
    pub fn with_adapter(name: Option<&str>) -> Result<Self> {
        let instance = new_instance();
        let mut adapters = pollster::block_on(instance.enumerate_adapters(backends()));
        let found: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
        if let Some(name) = name {
            let needle = name.to_lowercase();
            adapters.retain(|a| a.get_info().name.to_lowercase().contains(&needle));
        }
        adapters.sort_by_key(|a| rank(a.get_info().device_type));
        let Some(adapter) = adapters.into_iter().next() else {
            return Err(NeqkinError::NoAdapter(match name {
                Some(n) => format!("none matches {ADAPTER_ENV}={n:?} (found: {found:?})"),
                None => "wgpu found no Vulkan, Metal or DX12 adapter".into(),
            }));
        };
        let adapter_info = adapter.get_info();
        let limits = adapter.limits();
        let f64 = adapter.features().contains(wgpu::Features::SHADER_F64);
        let required_features = if f64 { wgpu::Features::SHADER_F64 } else { wgpu::Features::empty() };
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("neqkin"),
            required_features,
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| NeqkinError::Gpu {
            context: format!("opening device on {}", adapter_info.name),
            message: e.to_string(),
        })?;
        Ok(GpuContext { adapter_info, limits, f64, device, queue, kernels: Mutex::new(HashMap::new()) })
    }

    /// The adapter's name, API and type.
    pub fn info(&self) -> AdapterReport {
        AdapterReport {
            name: self.adapter_info.name.clone(),
            api: format!("{:?}", self.adapter_info.backend),
            device_type: format!("{:?}", self.adapter_info.device_type),
            f64: self.f64,
            max_storage_binding: self.limits.max_storage_buffer_binding_size,
            max_buffer_size: self.limits.max_buffer_size,
            driver: driver(&self.adapter_info),
        }
    }

    /// Threads per workgroup of a member kernel written as `rhs_member` (one workgroup per
    /// member, grid-strided over its `state_len` components: the model's `rhs` kernel and
    /// the fused step kernel of photoexcited, relaxation, interband and cavity). [`WG`] on GPUs. On a CPU
    /// adapter (lavapipe) the smallest power of two from [`CPU_MIN_WG`] to [`WG`] with at
    /// most [`CPU_CELLS_PER_INVOCATION`] components per invocation whose loop work fits
    /// lavapipe's loop budget ([`LAVAPIPE_LOOP_BUDGET`] iterations per invocation and
    /// dispatch, shared/rhs_bindings): `components per invocation ×
    /// (loops_per_component + 1) × MAX_FUSED_RHS + MAX_FUSED_RHS × 64` at most, i.e. an
    /// attempt of any fused step program (at most `MAX_FUSED_RHS` = 16 evaluations, each
    /// with its stage combination; 64 for the reductions) runs whole in one dispatch, and
    /// the op-by-op `rhs` kernel (one evaluation) has 16× margin. `loops_per_component` is
    /// the model's [`BatchProblem::member_loops_per_component`](crate::engine::model::BatchProblem::member_loops_per_component)
    /// (photoexcited: 1 + phonon lines). Where even [`WG`] threads do not fit, [`WG`]: the
    /// fused kernel then drops cut attempts (a member whose first attempt is cut fails) and
    /// the `rhs` kernels fail a cut member with NaN (docs/benchmarks.md section 11).
    /// Why small workgroups: llvmpipe runs a workgroup as one coroutine per 8-lane SIMD
    /// group and switches through all of them at every barrier, so a 256-thread workgroup
    /// pays 32 switches per barrier where the work fills far fewer lanes (docs/benchmarks.md
    /// section 11). A model whose `rhs_member` has O(n²) loops reports them through
    /// `member_loops_per_component` (cavity level 1: 1 + ⌊n/16⌋ + n mod 16); where even
    /// [`WG`] threads leave one fused attempt over the budget the backend runs the program
    /// op by op (`GpuBackend::fused_attempt_fits`).
    /// `NEQKIN_MEMBER_WG` (a power of two up to the adapter's invocations per workgroup)
    /// overrides the choice, e.g. `NEQKIN_MEMBER_WG=256` for the GPU layout on lavapipe
    /// when comparing the two.
    ///
    /// This is the threads-per-member part of [`GpuContext::member_layout`] for a kernel
    /// that is not packable.
    pub fn member_workgroup_size(&self, state_len: usize, loops_per_component: usize) -> u32 {
        let member = layout::MemberShape {
            batch: 1,
            state_len,
            parallel_width: state_len,
            loops_per_component,
            packable: false,
            splittable: false,
        };
        self.member_layout(member, Precision::F32).threads_per_member
    }

    /// The work layout of a batch's member kernels (threads per member, members per
    /// workgroup, workgroups per member): [`layout::choose`] with this adapter's type and
    /// limits (invocations per workgroup, workgroup memory) and the overrides
    /// `NEQKIN_MEMBER_WG`, `NEQKIN_MEMBERS_PER_WG` and `NEQKIN_WGS_PER_MEMBER`. The one
    /// place the layout is decided
    /// (ARCHITECTURE.md, "Work layouts").
    pub fn member_layout(&self, member: layout::MemberShape, precision: Precision) -> MemberLayout {
        let env = |name: &str| std::env::var(name).ok().and_then(|v| v.trim().parse::<u32>().ok());
        let adapter = layout::AdapterShape {
            cpu: self.adapter_info.device_type == wgpu::DeviceType::Cpu,
            // Workgroups are 1-D (x): both limits bound their threads.
            max_invocations: self
                .limits
                .max_compute_invocations_per_workgroup
                .min(self.limits.max_compute_workgroup_size_x),
            max_workgroup_bytes: self.limits.max_compute_workgroup_storage_size,
            real_bytes: Self::real_size(precision),
        };
        layout::choose(
            adapter,
            member,
            env(MEMBER_WG_ENV),
            env(layout::MEMBERS_PER_WG_ENV),
            env(layout::WGS_PER_MEMBER_ENV),
        )
    }
    /// Whether f64 kernels can run.
    pub fn supports_f64(&self) -> bool {
        self.f64
    }

    /// The device's limits (the adapter's own).
    pub fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }

    /// The precision to run at: `requested`, or F64 when the device has it and F32
    /// otherwise. Requesting F64 on a device without `SHADER_F64` is an error.
    pub fn resolve_precision(&self, requested: Option<Precision>) -> Result<Precision> {
        match requested {
            None if self.f64 => Ok(Precision::F64),
            None => Ok(Precision::F32),
            Some(Precision::F64) if !self.f64 => Err(NeqkinError::invalid(
                "precision",
                format!("adapter {} has no f64 shader support (SHADER_F64); use f32", self.adapter_info.name),
            )),
            Some(p) => Ok(p),
        }
    }

    /// Bytes per real at `precision`.
    pub fn real_size(precision: Precision) -> u64 {
        match precision {
            Precision::F32 => 4,
            Precision::F64 => 8,
        }
    }

    /// Largest buffer that can be bound as one storage binding, bytes.
    pub fn max_binding(&self) -> u64 {
        self.limits.max_storage_buffer_binding_size.min(self.limits.max_buffer_size)
    }

    /// Runs `f` inside validation and out-of-memory error scopes; a captured error
    /// becomes [`NeqkinError::Gpu`] with `context`.
    pub(crate) fn scoped<T>(&self, context: impl FnOnce() -> String, f: impl FnOnce() -> T) -> Result<T> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let value = f();
        let v = pollster::block_on(validation.pop());
        let o = pollster::block_on(oom.pop());
        match v.or(o) {
            None => Ok(value),
            Some(e) => Err(NeqkinError::Gpu { context: context(), message: e.to_string() }),
        }
    }

    /// The pipeline of entry point `entry` of `source` (already preprocessed), with an
    /// explicit layout of `bindings` (binding number, access) in group 0. Cached.
    pub(crate) fn kernel(&self, name: &str, source: &str, entry: &str, bindings: &[(u32, Access)]) -> Result<Kernel> {
        let key = (source.to_string(), entry.to_string());
        if let Some(k) = self.kernels.lock().expect("kernel cache poisoned").get(&key) {
            return Ok(k.clone());
        }
        let kernel = self.scoped(
            || format!("compiling kernel `{entry}` of {name}"),
            || {
                let module = self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(name),
                    source: wgpu::ShaderSource::Wgsl(source.into()),
                });
                let entries: Vec<wgpu::BindGroupLayoutEntry> = bindings
                    .iter()
                    .map(|&(binding, access)| wgpu::BindGroupLayoutEntry {
                        binding,
                        visibility: wgpu::ShaderStages::COMPUTE,
                        ty: wgpu::BindingType::Buffer {
                            ty: match access {
                                Access::Uniform => wgpu::BufferBindingType::Uniform,
                                Access::Read => wgpu::BufferBindingType::Storage { read_only: true },
                                Access::ReadWrite => wgpu::BufferBindingType::Storage { read_only: false },
                            },
                            has_dynamic_offset: false,
                            min_binding_size: None,
                        },
                        count: None,
                    })
                    .collect();
                let layout = self.device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                    label: Some(entry),
                    entries: &entries,
                });
                let pipeline_layout = self.device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                    label: Some(entry),
                    bind_group_layouts: &[Some(&layout)],
                    immediate_size: 0,
                });
                let pipeline = self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(entry),
                    layout: Some(&pipeline_layout),
                    module: &module,
                    entry_point: Some(entry),
                    compilation_options: Default::default(),
                    cache: None,
                });
                Kernel { pipeline, layout }
            },
        )?;
        self.kernels.lock().expect("kernel cache poisoned").insert(key, kernel.clone());
        Ok(kernel)
    }

    /// Workgroup grid `(x, y)` covering `groups` workgroups within the per-dimension
    /// limit (2-D when needed; kernels compute `wg.x + wg.y * num_wg.x` and skip the
    /// excess).
    pub(crate) fn grid(&self, groups: u64) -> (u32, u32) {
        let max = self.limits.max_compute_workgroups_per_dimension.max(1) as u64;
        let groups = groups.max(1);
        if groups <= max {
            return (groups as u32, 1);
        }
        let y = groups.div_ceil(max);
        (groups.div_ceil(y) as u32, y as u32)
    }
}

/// How many members of a batch with this `layout` fit on the device: every batch
/// vector, the parameter and scratch blocks, the per-member tables (unless shared,
/// `table_stride == 0`) and the scalar arena of `n_scalars` arrays must each fit in one
/// storage binding, and every dispatch in a 2-D grid. `layout.batch` is ignored.
///
/// Only per-binding limits are checked (wgpu does not report total device memory);
/// `n_vectors` is accepted so a total-memory cap can be added without changing callers.
pub fn max_batch(
    ctx: &GpuContext,
    layout: &BatchLayout,
    precision: Precision,
    n_vectors: usize,
    n_scalars: usize,
) -> usize {
    let _ = n_vectors;
    let reals = ctx.max_binding() / GpuContext::real_size(precision);
    let mut best = u64::from(u32::MAX);
    let mut cap = |per_member: usize| {
        if per_member > 0 {
            best = best.min(reals / per_member as u64);
        }
    };
    cap(layout.state_len);
    cap(layout.params_len);
    cap(layout.scratch_len);
    cap(n_scalars.max(1));
    if layout.table_stride > 0 {
        let rest = reals.saturating_sub(layout.table_len as u64);
        best = best.min(rest / layout.table_stride as u64 + 1);
    } else if layout.table_len as u64 > reals {
        best = 0;
    }
    // Element indices are u32 in the kernels, and every grid is at most 2-D.
    let max_groups = u64::from(ctx.limits.max_compute_workgroups_per_dimension).pow(2);
    best = best.min(max_groups);
    if layout.state_len > 0 {
        let elements = (u64::from(u32::MAX) + 1).min(max_groups * u64::from(WG));
        best = best.min(elements / layout.state_len as u64);
    }
    best as usize
}

/// Device-to-device copy bandwidth in GB/s (bytes read + bytes written per second) of
/// the plain copy kernel `shaders/engine/copy.wgsl` over `bytes` bytes (clamped to one
/// storage binding), the reference for the benchmark's achieved bandwidth.
pub fn copy_bandwidth(ctx: &GpuContext, bytes: u64, precision: Precision) -> Result<f64> {
    let precision = ctx.resolve_precision(Some(precision))?;
    let real = GpuContext::real_size(precision);
    let n = (bytes.min(ctx.max_binding()) / real).clamp(1, u64::from(u32::MAX));
    let source = preprocess::preprocess(
        "engine/copy.wgsl",
        preprocess::shader("engine/copy.wgsl").expect("embedded"),
        precision,
    )?;
    let kernel = ctx.kernel(
        "engine/copy.wgsl",
        &source,
        "copy",
        &[(0, Access::Uniform), (1, Access::Read), (2, Access::ReadWrite)],
    )?;
    let usage = wgpu::BufferUsages::STORAGE;
    let (params, src, dst, bind_group) = ctx.scoped(
        || format!("allocating 2 × {} bytes for the copy benchmark", n * real),
        || {
            let params = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("copy params"),
                size: std::mem::size_of::<uniforms::CopyParams>() as u64,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let src = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("copy src"),
                size: n * real,
                usage,
                mapped_at_creation: false,
            });
            let dst = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("copy dst"),
                size: n * real,
                usage,
                mapped_at_creation: false,
            });
            let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("copy"),
                layout: &kernel.layout,
                entries: &[
                    wgpu::BindGroupEntry { binding: 0, resource: params.as_entire_binding() },
                    wgpu::BindGroupEntry { binding: 1, resource: src.as_entire_binding() },
                    wgpu::BindGroupEntry { binding: 2, resource: dst.as_entire_binding() },
                ],
            });
            (params, src, dst, bind_group)
        },
    )?;
    let _keep = (&src, &dst);
    let p = uniforms::CopyParams { n: n as u32, ..Default::default() };
    ctx.queue.write_buffer(&params, 0, bytemuck::bytes_of(&p));
    let (gx, gy) = ctx.grid(n.div_ceil(u64::from(WG)));
    let run = |iterations: u32| -> Result<f64> {
        let start = Instant::now();
        ctx.scoped(
            || "running the copy benchmark".into(),
            || {
                let mut encoder = ctx.device.create_command_encoder(&Default::default());
                {
                    let mut pass = encoder.begin_compute_pass(&Default::default());
                    pass.set_pipeline(&kernel.pipeline);
                    pass.set_bind_group(0, &bind_group, &[]);
                    for _ in 0..iterations {
                        pass.dispatch_workgroups(gx, gy, 1);
                    }
                }
                ctx.queue.submit([encoder.finish()]);
            },
        )?;
        wait(ctx, "copy benchmark")?;
        Ok(start.elapsed().as_secs_f64())
    };
    run(1)?; // warm-up
    let iterations = 10;
    let secs = run(iterations)?;
    Ok(2.0 * (n * real) as f64 * f64::from(iterations) / secs / 1e9)
}

/// Blocks until all submitted work is done.
pub(crate) fn wait(ctx: &GpuContext, context: &str) -> Result<()> {
    ctx.device
        .poll(wgpu::PollType::wait_indefinitely())
        .map(|_| ())
        .map_err(|e| NeqkinError::Gpu { context: format!("waiting for {context}"), message: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_member_workgroup_counts_the_loops_per_component() {
        // Photoexcited N = 2048 (state 2051) without dispersion (1 line: 2 loops per cell):
        // the 64-components cap alone decides, 64 threads.
        assert_eq!(cpu_member_workgroup_size(2051, 2), 64);
        // ~100 lines still fit 16 evaluations at 33 cells per invocation.
        assert_eq!(cpu_member_workgroup_size(2051, 101), 64);
        // ~200 lines: 33 × 202 × 16 > 65 535, 17 × 202 × 16 fits.
        assert_eq!(cpu_member_workgroup_size(2051, 201), 128);
        // ~490 lines (tests/gpu_loop_budget.rs): nothing below 256 fits; 256 (the fused
        // kernel then runs fewer attempts per dispatch).
        assert_eq!(cpu_member_workgroup_size(2051, 494), WG);
        // Small states keep the floor of one SIMD group.
        assert_eq!(cpu_member_workgroup_size(240, 1), CPU_MIN_WG);
        // Every choice below WG fits the budget.
        for s in [16, 303, 2051, 8195, 65539] {
            for l in [1, 2, 10, 100, 500, 2000] {
                let t = cpu_member_workgroup_size(s, l) as usize;
                assert!(
                    t == WG as usize || s.div_ceil(t) * (l + 1) * 16 + 16 * 64 <= LAVAPIPE_LOOP_BUDGET,
                    "{s} {l} {t}"
                );
            }
        }
    }
}
