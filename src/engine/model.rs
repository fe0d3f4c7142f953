//! What the engine needs from a physics model, and nothing more.
//!
//! A model turns a batch of sweep points into a [`BatchProblem`]: flat per-member
//! parameter blocks and tables (host-computed, including every transcendental function,
//! so kernels do arithmetic and `sqrt` only), an initial state, a CPU reference
//! right-hand side, and the WGSL source of the same right-hand side. The engine never
//! interprets these numbers.

use crate::Result;

/// Sizes of one batch; every per-member array is laid out member-major with these strides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchLayout {
    /// Number of members (sweep points) in the batch.
    pub batch: usize,
    /// Reals per member in the state vector.
    pub state_len: usize,
    /// Reals per member in the parameter block.
    pub params_len: usize,
    /// Reals in one member's table block.
    pub table_len: usize,
    /// Distance between consecutive members' table blocks: `table_len`, or 0 when every
    /// member shares one block (a sweep that leaves the density of states alone), which
    /// keeps large batches within a storage binding.
    pub table_stride: usize,
    /// Reals per member of scratch space the RHS may use freely.
    pub scratch_len: usize,
}

/// WGSL source of a model's right-hand-side kernel.
///
/// The kernel follows the binding convention of `shaders/shared/rhs_bindings.wgsl`
/// (imported with `//! import shared/rhs_bindings`) and has entry point `rhs` with
/// `@workgroup_size(WG)`; it is dispatched with one workgroup per member.
#[derive(Clone, Debug)]
pub struct KernelSource {
    /// Name used in error messages and pipeline labels, e.g. `photoexcited/collision`.
    pub name: String,
    /// Source text before preprocessing (imports, `Real`).
    pub source: String,
}

/// One batch of a model, ready to integrate.
pub trait BatchProblem: Send + Sync {
    /// Array sizes.
    fn layout(&self) -> BatchLayout;
    /// `batch × params_len` reals.
    fn params(&self) -> &[f64];
    /// `table_len + (batch - 1) × table_stride` reals.
    fn tables(&self) -> &[f64];
    /// `batch × state_len` reals: the state at `t = 0`.
    fn initial_state(&self) -> Vec<f64>;
    /// CPU twin of the RHS kernel for one member. Arguments follow the kernel's bindings:
    /// that member's params, tables, time, state, derivative (output) and scratch.
    #[allow(clippy::too_many_arguments)]
    fn rhs_member(
        &self,
        member: usize,
        params: &[f64],
        tables: &[f64],
        t: f64,
        y: &[f64],
        dy: &mut [f64],
        scratch: &mut [f64],
    );
    /// The RHS kernel's WGSL source.
    fn kernel(&self) -> KernelSource;
    /// Loop iterations one invocation of the kernel's `rhs_member` runs per state component
    /// it covers, in one evaluation, inner loops included (photoexcited: one per cell plus
    /// one per phonon line). The GPU backend sizes a CPU adapter's member workgroup with it
    /// so that lavapipe's loop budget holds ([`crate::engine::gpu::GpuContext::member_workgroup_size`]).
    /// Default 1: one pass over the components.
    fn member_loops_per_component(&self) -> usize {
        1
    }
    /// Items the threads of one member share out in the kernel's `rhs_member` (its
    /// grid-strided loops run over them): the most threads per member that can have work.
    /// The GPU backend sizes a member's share of a workgroup with it
    /// ([`crate::engine::gpu::GpuContext::member_layout`]). Default: the state length.
    fn member_parallel_width(&self) -> usize {
        self.layout().state_len
    }
    /// Upper bound of the spectral radius of the RHS Jacobian per member (used by the
    /// stabilised explicit method to pick its stage count). `None` if unknown.
    fn spectral_radius(&self) -> Option<Vec<f64>> {
        None
    }
    /// Tolerance blocks over the state for the adaptive error norm: `(start, end, atol, rtol)`
    /// given the user's tolerances. Default: one block over the whole state.
    fn tolerance_blocks(&self, atol: f64, rtol: f64) -> Vec<crate::engine::program::ToleranceBlock> {
        vec![crate::engine::program::ToleranceBlock { start: 0, end: self.layout().state_len, atol, rtol }]
    }
    /// `batch × state_len` reals: the state deviations are measured from under
    /// `solver.error_scale = "deviation"` (e.g. the equilibrium a perturbation relaxes to).
    /// `None` (default): the initial state.
    fn reference_state(&self) -> Option<Vec<f64>> {
        None
    }
    /// The problem in linearly-implicit form `A(y) y′ = F(y)` for the implicit method
    /// ([`crate::engine::implicit`]); `None` (default): `y′ = rhs` with `A = I`.
    fn linearly_implicit(&self) -> Option<&dyn crate::engine::implicit::LinearlyImplicit> {
        None
    }
    /// Whether the batch's kernel can give a trustworthy answer at a precision whose unit
    /// roundoff is `unit_roundoff` (2⁻²⁴ for f32, 2⁻⁵³ for f64). A backend that runs the
    /// kernel in that precision calls it before anything runs; an error (naming the field
    /// that makes the precision insufficient) fails the batch's points with that reason
    /// instead of returning numbers the precision cannot carry. Default: any precision.
    fn check_precision(&self, unit_roundoff: f64) -> Result<()> {
        let _ = unit_roundoff;
        Ok(())
    }
    /// Band `(lower, upper)` of the RHS Jacobian `∂rhs_i/∂y_j` (nonzero only for
    /// `−lower ≤ j − i ≤ upper`), used by the Newton steady-state method to colour its
    /// difference Jacobian; `None` (default): dense.
    fn jacobian_band(&self) -> Option<(usize, usize)> {
        None
    }
    /// Sparsity of member `member`'s RHS Jacobian for the Rosenbrock method
    /// ([`crate::engine::rosenbrock`]): a sparse core and a small dense border; `None`
    /// (default): the band of [`BatchProblem::jacobian_band`], else dense.
    fn jacobian_pattern(&self, member: usize) -> Option<crate::engine::rosenbrock::JacobianPattern> {
        let _ = member;
        None
    }
    /// Range of state components whose derivative decides steadiness.
    fn steady_range(&self) -> (usize, usize) {
        (0, self.layout().state_len)
    }
    /// Observables of member `member` at time `t` from its state `y` (host side, f64).
    fn observables(&self, member: usize, t: f64, y: &[f64]) -> Observables;
    /// Names of per-point summaries computed from a member's whole history of scalar
    /// observables (e.g. mean and spread over a late window and a steady/oscillating
    /// verdict, so that a single end-time value is never presented as steady). They are
    /// written on the row of the last output time. Empty by default.
    fn summary_names(&self) -> Vec<String> {
        Vec::new()
    }
    /// Whether [`BatchProblem::answer_known`] may stop members of this batch (the driver
    /// then evaluates observables at every output time for it). Default: no.
    fn has_stop_criterion(&self) -> bool {
        false
    }
    /// Host-side per-member stop criterion, evaluated by the driver at every output time
    /// that member `member` reached: `y` is its state at `t`, `history` its scalar
    /// observables `(t, scalars)` at every output so far, this one included. Returning
    /// `true` means the member's answer is known (e.g. a settled state, or one proven to
    /// stay where it is): the engine stops integrating it (status
    /// [`crate::engine::program::status::STOPPED`]) and later output frames repeat its
    /// final state with `time_reached` = the stop time. Only called when
    /// [`BatchProblem::has_stop_criterion`] is true. Default: never.
    fn answer_known(&self, member: usize, t: f64, y: &[f64], history: &[(f64, Vec<(String, f64)>)]) -> bool {
        let _ = (member, t, y, history);
        false
    }
    /// Why [`BatchProblem::answer_known`] stopped member `member`, for the `message`
    /// column of its `stopped` rows.
    fn stop_reason(&self, member: usize) -> String {
        let _ = member;
        "the model's stop criterion says the answer is known".into()
    }
    /// The summaries of [`BatchProblem::summary_names`], in that order, from `history`:
    /// `(time reached, scalar observables)` at every output time.
    fn summary(&self, member: usize, history: &[(f64, Vec<(String, f64)>)]) -> Vec<f64> {
        let _ = (member, history);
        Vec::new()
    }
}

/// One sweep point's parameters as its model parsed and checked them ([`Model::parse`]):
/// the model's own typed struct behind an opaque handle, so the engine and the run layer
/// stay model-agnostic while the batch builder works on validated values and never on
/// JSON. Cheap to clone (an `Arc`); the model gets its struct back with
/// [`ParsedParams::downcast`].
#[derive(Clone)]
pub struct ParsedParams {
    value: std::sync::Arc<dyn std::any::Any + Send + Sync>,
    type_name: &'static str,
}

impl ParsedParams {
    /// Wraps a model's checked parameter struct.
    pub fn new<T: std::any::Any + Send + Sync>(params: T) -> Self {
        ParsedParams { value: std::sync::Arc::new(params), type_name: std::any::type_name::<T>() }
    }
    /// The model's struct; an internal error (a bug: parameters parsed by one model handed
    /// to another) when it holds another type.
    pub fn downcast<T: std::any::Any>(&self) -> Result<&T> {
        self.value.downcast_ref::<T>().ok_or_else(|| {
            crate::NeqkinError::Internal(format!(
                "parsed parameters of type `{}` handed to a model that expects `{}`",
                self.type_name,
                std::any::type_name::<T>()
            ))
        })
    }
    /// Name of the type it holds (for messages).
    pub fn type_name(&self) -> &'static str {
        self.type_name
    }
}

impl std::fmt::Debug for ParsedParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ParsedParams<{}>", self.type_name)
    }
}

/// [`ParsedParams::downcast`] of every point of a batch.
pub fn downcast_all<T: std::any::Any>(points: &[ParsedParams]) -> Result<Vec<&T>> {
    points.iter().map(ParsedParams::downcast::<T>).collect()
}

/// A physics model as the sweep scheduler sees it: it parses and checks parameter sets
/// once ([`Model::parse`]) and builds batches from the parsed sets. Parameter sets arrive
/// as JSON objects (the config's `[params]` table with one sweep point's values
/// substituted), so the engine needs no model types; every later call takes the
/// [`ParsedParams`] handle `parse` returned, so nothing downstream re-reads JSON.
pub trait Model: Send + Sync {
    /// Name used in configs (`model = "..."`).
    fn name(&self) -> &'static str;
    /// Parses one resolved parameter set into the model's typed struct (with
    /// [`parse_params`], so a type error names its key) and checks it: unknown keys, wrong
    /// types, out-of-range or non-finite values, grids too coarse, referenced files.
    /// Errors name the field as `params.<key>`. The handle is what [`Model::build`] and
    /// the other per-point calls take; it must not hold arrays at the point's grid size
    /// (a plan keeps one per sweep point).
    fn parse(&self, params: &serde_json::Value) -> Result<ParsedParams>;
    /// [`Model::parse`] without keeping the result.
    fn validate(&self, params: &serde_json::Value) -> Result<()> {
        self.parse(params).map(|_| ())
    }
    /// [`Model::parse`] of each set, in order (for callers holding JSON: tests, benches).
    fn parse_all(&self, points: &[serde_json::Value]) -> Result<Vec<ParsedParams>> {
        points.iter().map(|p| self.parse(p)).collect()
    }
    /// Whether this point is a direct computation ([`Model::evaluate`], `solver.method =
    /// "direct"`: `Some(true)`) or a time integration (any other method: `Some(false)`);
    /// `None` (default): the model does not say. The config layer refuses a mismatch
    /// before anything runs, naming the field.
    fn requires_direct(&self, params: &ParsedParams) -> Result<Option<bool>> {
        let _ = params;
        Ok(None)
    }
    /// Which points may share a batch: points whose keys are equal have the same grid
    /// size and array shapes (e.g. `grid_points`, `n_omega`, level), so a sweep over
    /// any parameter is grouped by key into uniform batches by the run layer (the
    /// engine never calls it). It must not allocate at the point's size. Default: one key
    /// for every point (the model pads what differs).
    fn batch_key(&self, params: &ParsedParams) -> Result<String> {
        let _ = params;
        Ok(String::new())
    }
    /// Arrays that depend on the parameters only, not on time or the state (grids,
    /// densities of states): `results.zarr` stores them once per point rather than per
    /// output time, and once for the run when every point has the same (arrays named
    /// `grid_*` count as static too). Default: none.
    fn static_arrays(&self) -> Vec<String> {
        Vec::new()
    }
    /// Sizes of one member of this point, from its parameters alone (nothing allocated at
    /// the point's size), so that the run layer can refuse a run whose batches or output
    /// would not fit before anything runs. `None` (default): unknown; the run layer then
    /// checks no memory or output size for the point and uses the plan's batch size (or
    /// the CPU default).
    fn footprint(&self, params: &ParsedParams) -> Result<Option<Footprint>> {
        let _ = params;
        Ok(None)
    }
    /// [`Footprint::jacobian_pattern_band`] of this point: the band of the declared sparse
    /// Jacobian pattern after reverse Cuthill–McKee. Asked only when the planned method can
    /// use it (`bdf`, `rosenbrock`, `auto`): it is the costly part of a footprint (a
    /// reordering per point), so explicit runs do not pay for it. Default: none declared.
    fn jacobian_pattern_band(&self, params: &ParsedParams) -> Result<Option<(u64, u64)>> {
        let _ = params;
        Ok(None)
    }
    /// Builds one batch from parsed parameter sets (all with the same
    /// [`Model::batch_key`]).
    fn build(&self, points: &[ParsedParams]) -> Result<std::sync::Arc<dyn BatchProblem>>;
    /// Builds one batch, offloading bulk set-up work (e.g. sampling a Brillouin zone) to
    /// `device`. Models without such work keep the default, which ignores the device.
    fn build_with(&self, points: &[ParsedParams], device: &dyn MapDevice) -> Result<std::sync::Arc<dyn BatchProblem>> {
        let _ = device;
        self.build(points)
    }
    /// Direct computations that are not a time integration (thresholds, eigenproblems,
    /// closed forms), selected with `solver.method = "direct"`: one [`Observables`] per
    /// point. Models without any return `None`.
    fn evaluate(&self, points: &[ParsedParams]) -> Option<Result<Vec<Observables>>> {
        let _ = points;
        None
    }
    /// Every key the model accepts in `[params]`, with its default, unit, allowed range
    /// and meaning (`neqkin params MODEL`, Python's `neqkin.models()`). A test checks the
    /// list against the keys `parse` accepts.
    fn parameters(&self) -> Vec<ParamDoc> {
        Vec::new()
    }
    /// A small run that `neqkin init MODEL` writes out as a starter config: the
    /// `[solver]` table and the parameters set explicitly (every required one).
    fn starter(&self) -> Starter {
        Starter::default()
    }
}

/// Sizes of one batch member as a model estimates them from its parameters
/// ([`Model::footprint`]); counts of reals (f64) unless said otherwise.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Footprint {
    /// Reals of the member's state vector.
    pub state_len: u64,
    /// Reals of its parameter block.
    pub params_len: u64,
    /// Reals of its table block.
    pub table_len: u64,
    /// Whether members of one batch usually share one table block (counted once).
    pub table_shared: bool,
    /// Reals of RHS scratch space.
    pub scratch_len: u64,
    /// Bytes of transient set-up, RHS or direct-evaluation work for one member beyond the
    /// arrays above (dense matrices, eigenproblems, sampled Brillouin zones); counted once
    /// per worker thread of a batch, not per member.
    pub work_bytes: u64,
    /// Reals of the arrays the member writes per output time (`output.arrays = true`),
    /// static arrays included.
    pub array_reals: u64,
    /// The part of `array_reals` in static arrays ([`Model::static_arrays`] and `grid_*`):
    /// held per output time while the batch runs, but written to `results.zarr` once per
    /// point (once per run when every point has the same), not per output time.
    pub static_array_reals: u64,
    /// Band `(lower, upper)` of the RHS Jacobian ([`BatchProblem::jacobian_band`]);
    /// `None`: dense (the Newton and BDF memory estimates use it).
    pub jacobian_band: Option<(u64, u64)>,
    /// Band `(lower, upper)` of the core of the declared sparse Jacobian pattern
    /// ([`BatchProblem::jacobian_pattern`]) after reverse Cuthill–McKee, as the band LU of
    /// `bdf` and `rosenbrock` stores it (the memory estimate uses it). `None`: no pattern
    /// declared (they fall back to `jacobian_band`, else dense). Filled by the run layer from
    /// [`Model::jacobian_pattern_band`] when the planned method is implicit.
    pub jacobian_pattern_band: Option<(u64, u64)>,
}

impl Footprint {
    /// The larger of each field (a batch holds its largest member).
    pub fn max(self, o: Footprint) -> Footprint {
        Footprint {
            state_len: self.state_len.max(o.state_len),
            params_len: self.params_len.max(o.params_len),
            table_len: self.table_len.max(o.table_len),
            table_shared: self.table_shared && o.table_shared,
            scratch_len: self.scratch_len.max(o.scratch_len),
            work_bytes: self.work_bytes.max(o.work_bytes),
            array_reals: self.array_reals.max(o.array_reals),
            static_array_reals: self.static_array_reals.max(o.static_array_reals),
            jacobian_band: match (self.jacobian_band, o.jacobian_band) {
                (Some(a), Some(b)) => Some((a.0.max(b.0), a.1.max(b.1))),
                _ => None,
            },
            jacobian_pattern_band: match (self.jacobian_pattern_band, o.jacobian_pattern_band) {
                (Some(a), Some(b)) => Some((a.0.max(b.0), a.1.max(b.1))),
                _ => None,
            },
        }
    }
    /// The one-member [`BatchLayout`] these sizes describe (for backend capacity
    /// functions), saturated at `usize::MAX`.
    pub fn layout(&self) -> BatchLayout {
        let u = |x: u64| usize::try_from(x).unwrap_or(usize::MAX);
        BatchLayout {
            batch: 1,
            state_len: u(self.state_len),
            params_len: u(self.params_len),
            table_len: u(self.table_len),
            table_stride: if self.table_shared { 0 } else { u(self.table_len) },
            scratch_len: u(self.scratch_len),
        }
    }
}

/// Parameter sets [`parse_params`] has deserialised in this process (a relaxed counter).
static PARAMS_PARSED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Test hook: how many parameter sets [`parse_params`] has deserialised from JSON in this
/// process so far (`tests/parse_once.rs` checks that a run parses each point once, when
/// its plan is checked, and the run layer never again).
pub fn params_parsed() -> u64 {
    PARAMS_PARSED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Parses a model's parameter table into its typed struct; a type error names the key by
/// its path (`params.temperature: invalid type: string "hot", expected f64`,
/// `params.comb.count: ...`), via `serde_path_to_error`. Models call it from
/// [`Model::parse`] only.
pub fn parse_params<T: serde::de::DeserializeOwned>(value: &serde_json::Value) -> Result<T> {
    PARAMS_PARSED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let mut field = if path == "." || path.is_empty() { "params".to_string() } else { format!("params.{path}") };
        // Missing and unknown keys are reported at their parent's path: name the key.
        for pre in ["missing field `", "unknown field `"] {
            if let Some(rest) = inner.strip_prefix(pre) {
                if let Some(key) = rest.split('`').next() {
                    if !field.ends_with(&format!(".{key}")) {
                        field = format!("{field}.{key}");
                    }
                }
            }
        }
        let hint = if inner.contains("null") { " (NaN and infinity are not allowed)" } else { "" };
        crate::NeqkinError::invalid(field, format!("{inner}{hint}"))
    })
}

/// What a parameter is when the config leaves it out.
#[derive(Clone, Debug, PartialEq)]
pub enum ParamDefault {
    /// This value is used.
    Value(serde_json::Value),
    /// Nothing is used: the feature is off or the value follows from other parameters;
    /// the text says which.
    Unset(&'static str),
    /// The key must be given.
    Required,
}

/// One model parameter as documented to the user.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamDoc {
    /// Key in `[params]`.
    pub name: &'static str,
    /// What an absent key means.
    pub default: ParamDefault,
    /// Unit (`W`, `1/Γ_eph`, `g`, ... or `—` for pure numbers and choices).
    pub unit: &'static str,
    /// Allowed values, as the model's checks enforce them.
    pub range: &'static str,
    /// One line of physics.
    pub meaning: &'static str,
}

impl ParamDoc {
    /// A parameter with a default value.
    pub fn new(
        name: &'static str,
        default: serde_json::Value,
        unit: &'static str,
        range: &'static str,
        meaning: &'static str,
    ) -> Self {
        ParamDoc { name, default: ParamDefault::Value(default), unit, range, meaning }
    }
    /// An optional parameter without a default value (`absent` says what absence means).
    pub fn unset(
        name: &'static str,
        absent: &'static str,
        unit: &'static str,
        range: &'static str,
        meaning: &'static str,
    ) -> Self {
        ParamDoc { name, default: ParamDefault::Unset(absent), unit, range, meaning }
    }
    /// A required parameter.
    pub fn required(name: &'static str, unit: &'static str, range: &'static str, meaning: &'static str) -> Self {
        ParamDoc { name, default: ParamDefault::Required, unit, range, meaning }
    }
    /// The default as text for tables (`required`, `unset: <why>`, or the JSON value).
    pub fn default_text(&self) -> String {
        match &self.default {
            ParamDefault::Value(v) => v.to_string(),
            ParamDefault::Unset(why) => format!("unset ({why})"),
            ParamDefault::Required => "required".into(),
        }
    }
}

/// The starter run of a model (see [`Model::starter`]).
#[derive(Clone, Debug)]
pub struct Starter {
    /// One line on what the starter computes.
    pub what: &'static str,
    /// Body of the `[solver]` table, TOML.
    pub solver: &'static str,
    /// Parameters set explicitly, in order.
    pub params: Vec<(&'static str, serde_json::Value)>,
    /// An optional `[[sweep]]` axis: name and values.
    pub sweep: Option<(&'static str, Vec<f64>)>,
}

impl Default for Starter {
    fn default() -> Self {
        Starter {
            what: "one point, integrated to t_end",
            solver: "method = \"dopri5\"\nt_end = 10.0\nn_outputs = 10\nrtol = 1e-6\natol = 1e-9",
            params: Vec::new(),
            sweep: None,
        }
    }
}

/// Observables of one member at one output time.
#[derive(Clone, Debug, Default)]
pub struct Observables {
    /// Scalar observables, in a fixed order per model (columns of `results.csv`).
    pub scalars: Vec<(String, f64)>,
    /// Arrays to save in `results.zarr` (name, values).
    pub arrays: Vec<(String, Vec<f64>)>,
}

/// Validates that every value is finite, naming the field otherwise.
pub fn check_finite(field: &str, value: f64) -> Result<f64> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(crate::NeqkinError::invalid(field, format!("must be a finite number, got {value}")))
    }
}

/// A data-parallel map a model runs while building a batch: `items` independent work
/// items, each reading the shared `params` and writing `outputs_per_item` reals.
///
/// The WGSL kernel (entry point `map`, `@workgroup_size(256)`) follows
/// `shaders/shared/map_bindings.wgsl`; `cpu_twin(item, params, out)` is its CPU twin.
pub struct MapJob<'a> {
    /// Kernel source (preprocessed like RHS kernels).
    pub kernel: KernelSource,
    /// Parameters and tables shared by every item (transcendentals precomputed).
    pub params: &'a [f64],
    /// Number of work items.
    pub items: usize,
    /// Reals written per item.
    pub outputs_per_item: usize,
    /// CPU twin of the kernel for one item.
    pub cpu_twin: &'a (dyn Fn(usize, &[f64], &mut [f64]) + Sync),
}

/// Where [`MapJob`]s run: the CPU (rayon) or a GPU adapter.
pub trait MapDevice: Send + Sync {
    /// Runs the job, returning `items × outputs_per_item` reals, item-major.
    fn map(&self, job: &MapJob<'_>) -> Result<Vec<f64>>;
    /// Short description for logs.
    fn describe(&self) -> String;
}

/// Runs map jobs with their CPU twins on the rayon pool.
pub struct CpuMap;

impl MapDevice for CpuMap {
    fn map(&self, job: &MapJob<'_>) -> Result<Vec<f64>> {
        use rayon::prelude::*;
        let mut out = vec![0.0; job.items * job.outputs_per_item];
        out.par_chunks_mut(job.outputs_per_item.max(1))
            .enumerate()
            .for_each(|(item, o)| (job.cpu_twin)(item, job.params, o));
        Ok(out)
    }
    fn describe(&self) -> String {
        "cpu".into()
    }
}
