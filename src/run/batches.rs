//! From a checked plan to uniform batches, and the limits checked before anything runs.
//!
//! Points are grouped by the model's [`Model::batch_key`] (grid size, shapes), so any
//! parameter can be swept: each group runs in batches of its own size. The model's
//! [`Model::footprint`] (sizes from the parameters alone, nothing allocated) gives the
//! memory of a batch and the size of the output; a run whose largest batch or whose
//! output exceeds its cap ([`Limits`]) is refused with the estimate in the message, before
//! the output folder exists. `neqkin run --dry-run` prints the same [`Estimate`].

use crate::config::{Plan, SolverPlan};
use crate::engine::model::{BatchLayout, Footprint, Model};
use crate::engine::solve::Method;
use crate::run::schedule::{BatchGroup, Shard, CPU_DEFAULT_BATCH};
use crate::{NeqkinError, Result};

/// Caps a run must fit under; `None` = the default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// Bytes one batch may need (default [`default_max_memory`]: half the machine's memory).
    pub max_memory: Option<u64>,
    /// Bytes the output folder may grow by (default: the free space where it is written).
    pub max_output: Option<u64>,
    /// Sweep points (default [`crate::config::plan::DEFAULT_MAX_POINTS`]).
    pub max_points: Option<u64>,
}

/// Half of the machine's memory (`MemTotal` of `/proc/meminfo`), or 8 GiB where that
/// cannot be read.
pub fn default_max_memory() -> u64 {
    total_memory().map(|m| m / 2).unwrap_or(8 << 30)
}

/// The machine's memory in bytes, where the system says.
pub fn total_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Free bytes on the file system that holds `path` (or its nearest existing ancestor).
pub fn free_space(path: &std::path::Path) -> Option<u64> {
    let mut p = if path.is_absolute() { path.to_path_buf() } else { std::env::current_dir().ok()?.join(path) };
    while !p.exists() {
        p = p.parent()?.to_path_buf();
    }
    free_space_at(&p)
}

#[cfg(unix)]
fn free_space_at(p: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a writable statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    (st.f_bavail as u64).checked_mul(st.f_frsize as u64)
}

#[cfg(not(unix))]
fn free_space_at(_p: &std::path::Path) -> Option<u64> {
    None
}

/// Parses a byte count: `123`, `512K`, `16M`, `1.5G`, `2T` (powers of 1024; a trailing
/// `B`/`iB` is accepted).
pub fn parse_bytes(s: &str) -> Result<u64> {
    let bad = || NeqkinError::invalid("size", format!("`{s}`: expected a byte count such as 512M, 16G or 2T"));
    let t = s.trim();
    let t = t.strip_suffix("iB").or_else(|| t.strip_suffix('B')).unwrap_or(t);
    let (num, mult) = match t.chars().last() {
        Some('K' | 'k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M' | 'm') => (&t[..t.len() - 1], 1 << 20),
        Some('G' | 'g') => (&t[..t.len() - 1], 1 << 30),
        Some('T' | 't') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let x: f64 = num.trim().parse().map_err(|_| bad())?;
    let v = x * mult as f64;
    if !(v.is_finite() && v >= 1.0 && v < 1.8e19) {
        return Err(bad());
    }
    Ok(v as u64)
}

/// `12.3 MiB` (`> 16 EiB` for a saturated count).
pub fn human(bytes: u64) -> String {
    if bytes == u64::MAX {
        return "> 16 EiB".into();
    }
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut x = bytes as f64;
    let mut k = 0;
    while x >= 1024.0 && k + 1 < units.len() {
        x /= 1024.0;
        k += 1;
    }
    if k == 0 {
        format!("{bytes} B")
    } else {
        format!("{x:.1} {}", units[k])
    }
}

/// Points of one batch key.
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    /// The model's key (empty: the model does not distinguish).
    pub key: String,
    /// Global indices, in index order.
    pub points: Vec<usize>,
    /// The largest footprint of the group's points (`None`: the model gives none).
    pub footprint: Option<Footprint>,
    /// Members per batch.
    pub batch_size: usize,
    /// Estimated bytes of one member while its batch runs.
    pub member_bytes: u64,
    /// Estimated bytes shared by the members of a batch (shared tables).
    pub shared_bytes: u64,
}

impl Group {
    /// Batches this group runs in.
    pub fn batches(&self) -> usize {
        self.points.len().div_ceil(self.batch_size.max(1))
    }
    /// Estimated bytes of its largest batch.
    pub fn batch_bytes(&self) -> u64 {
        let members = self.batch_size.min(self.points.len()) as u64;
        self.shared_bytes.saturating_add(self.member_bytes.saturating_mul(members))
    }
}

/// What a run would do and need (the `--dry-run` report).
#[derive(Clone, Debug, PartialEq)]
pub struct Estimate {
    /// Points in the whole sweep.
    pub points_total: usize,
    /// Points of this shard.
    pub points_in_shard: usize,
    /// Groups of equal batch keys, in run order.
    pub groups: Vec<Group>,
    /// Bytes of the largest batch.
    pub max_batch_bytes: u64,
    /// Bytes of `results.csv` (estimated from the row count).
    pub csv_bytes: u64,
    /// Bytes of the arrays (0 without `output.arrays` or footprints).
    pub array_bytes: u64,
    /// The memory cap applied.
    pub max_memory: u64,
    /// The output cap applied (`None`: unknown free space).
    pub max_output: Option<u64>,
}

impl Estimate {
    /// Batches in all.
    pub fn batches(&self) -> usize {
        self.groups.iter().map(Group::batches).sum()
    }
    /// Output bytes in all.
    pub fn output_bytes(&self) -> u64 {
        self.csv_bytes.saturating_add(self.array_bytes)
    }
    /// The groups as the scheduler takes them.
    pub fn batch_groups(&self) -> Vec<BatchGroup> {
        self.groups.iter().map(|g| BatchGroup { points: g.points.clone(), batch_size: g.batch_size }).collect()
    }
    /// The report printed by `neqkin run --dry-run`, one fact per line.
    pub fn report(&self) -> String {
        let mut s = String::new();
        s += &format!("points: {} ({} in this shard)\n", self.points_total, self.points_in_shard);
        s += &format!("batches: {} in {} group(s) by batch key\n", self.batches(), self.groups.len());
        for g in &self.groups {
            let key = if g.key.is_empty() { "(one key)" } else { &g.key };
            s += &format!(
                "  {key}: {} points, {} batch(es) of ≤ {}, ≈ {} per batch\n",
                g.points.len(),
                g.batches(),
                g.batch_size,
                human(g.batch_bytes())
            );
        }
        s += &format!("memory: largest batch ≈ {} (cap {})\n", human(self.max_batch_bytes), human(self.max_memory));
        s += &format!(
            "output: ≈ {} (results.csv ≈ {}, arrays ≈ {}; cap {})\n",
            human(self.output_bytes()),
            human(self.csv_bytes),
            human(self.array_bytes),
            self.max_output.map_or("unknown free space".into(), human)
        );
        s
    }
}

/// Vectors of the state's length an explicit integrator and the driver hold per member
/// (DOPRI5: state, FSAL derivative, 9 work vectors, error weights, reference, output copy).
const STATE_VECTORS: u64 = 16;
/// Bytes assumed per `results.csv` row beyond the numbers of the footprint: fixed columns,
/// observables (about 16 numbers of ~22 characters), axis values.
const CSV_ROW_BYTES: u64 = 64 + 16 * 22;

/// Bytes of one member: state vectors, params, tables (when not shared), scratch, the
/// model's set-up work, the method's matrices and the arrays kept until the batch is
/// written; and the bytes shared by a batch.
fn member_bytes(plan: &Plan, f: &Footprint, outputs: u64) -> (u64, u64) {
    let m = |a: u64, b: u64| a.saturating_mul(b);
    let n = f.state_len;
    let method_bytes = match &plan.solver {
        SolverPlan::Direct => 0,
        SolverPlan::Integrate(o) => match o.method {
            // BDF and Rosenbrock (and auto, which may pick either) with a declared sparsity:
            // the coloured Jacobian (≤ one band row per component), the band LU of `I − cJ`
            // (lower + upper + 1 reals per row, padded to 8), BDF's Jacobi split of `J`
            // (diagonal, reciprocal pivots, each off-diagonal and its scaled copy: ≤ 2·band
            // + 2 reals per row) and the method's own vectors (BDF: 8 difference rows, 14
            // work vectors, 6 rescaling rows; Rosenbrock: stages and work), all O(N·band). Without one: a dense J, its LU and A(y), N² each.
            Method::Bdf | Method::Rosenbrock | Method::Auto => {
                // `auto` picks bdf or rosenbrock only for a declared pattern, else dopri5.
                let band = match o.method {
                    Method::Auto => f.jacobian_pattern_band,
                    _ => f.jacobian_pattern_band.or(f.jacobian_band),
                };
                match (band, o.method) {
                    (Some((l, u)), _) => m(n, m(2 * (l + u + 1 + 8) + 2 * (l + u + 1) + 32, 8)),
                    (None, Method::Bdf) => m(m(n, n), 8 * 3),
                    (None, Method::Rosenbrock) => m(m(n, n), 8 * 2),
                    (None, _) => 0,
                }
            }
            // Newton: a band or dense difference Jacobian and its LU.
            Method::Newton => match f.jacobian_band {
                Some((l, u)) => m(n, m(2 * l + u + 1, 8 * 2)),
                None => m(m(n, n), 8 * 2),
            },
            _ => 0,
        },
    };
    let vectors = if matches!(plan.solver, SolverPlan::Direct) { 0 } else { m(n, 8 * STATE_VECTORS) };
    let table = m(f.table_len, 8);
    let arrays = if plan.output.arrays { m(m(f.array_reals, outputs), 8) } else { 0 };
    let own = vectors
        .saturating_add(m(f.params_len + f.scratch_len, 8))
        .saturating_add(if f.table_shared { 0 } else { table })
        .saturating_add(method_bytes)
        .saturating_add(arrays);
    // Set-up and direct-evaluation work is transient: one member at a time per thread.
    let work = m(f.work_bytes, rayon::current_num_threads() as u64);
    (own.max(1), work.saturating_add(if f.table_shared { table } else { 0 }))
}

/// Groups the shard's points by batch key, sizes each group's batches (the plan's
/// `batch_size`, else the backend's `capacity` for the group's layout, lowered to fit the
/// memory cap) and checks the caps. `probe` gives the one-member layout of a point for
/// models without a footprint. Errors (exit code 2) carry the estimate.
pub fn estimate(
    plan: &Plan,
    model: &dyn Model,
    shard: Shard,
    limits: &Limits,
    out: &std::path::Path,
    capacity: &dyn Fn(&BatchLayout) -> usize,
) -> Result<Estimate> {
    let points_total = plan.n_points();
    let max_memory = limits.max_memory.unwrap_or_else(default_max_memory);
    let max_output = limits.max_output.or_else(|| free_space(out));
    let outputs = plan.output_times().len().max(1) as u64;
    let mut groups: Vec<Group> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut points_in_shard = 0;
    // Only the implicit methods' estimate uses the reordered pattern band, a reordering per
    // point (most of the plan check's time for a photoexcited sweep otherwise).
    let pattern_band_needed = matches!(
        &plan.solver,
        SolverPlan::Integrate(o) if matches!(o.method, Method::Bdf | Method::Rosenbrock | Method::Auto)
    );
    for p in crate::run::schedule::points(plan).filter(|p| shard.contains(p.index)) {
        points_in_shard += 1;
        let at = |e: NeqkinError| match e {
            NeqkinError::InvalidParameter { field, reason } => NeqkinError::InvalidParameter {
                field,
                reason: format!("{reason} (at sweep point {}{})", p.index, p.describe(plan)),
            },
            other => other,
        };
        let key = model.batch_key(&p.parsed).map_err(at)?;
        let mut fp = model.footprint(&p.parsed).map_err(at)?;
        if pattern_band_needed {
            if let Some(f) = fp.as_mut() {
                f.jacobian_pattern_band = model.jacobian_pattern_band(&p.parsed).map_err(at)?;
            }
        }
        let g = match index.get(&key) {
            Some(&g) => g,
            None => {
                index.insert(key.clone(), groups.len());
                groups.push(Group {
                    key,
                    points: Vec::new(),
                    footprint: fp,
                    batch_size: 1,
                    member_bytes: 0,
                    shared_bytes: 0,
                });
                groups.len() - 1
            }
        };
        let grp = &mut groups[g];
        grp.points.push(p.index);
        grp.footprint = match (grp.footprint, fp) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        };
    }
    let mut csv_bytes: u64 = 0;
    let mut array_bytes: u64 = 0;
    let axes_bytes = 24 * plan.axes.len() as u64;
    for g in &mut groups {
        let n = g.points.len() as u64;
        csv_bytes = csv_bytes.saturating_add(n.saturating_mul(outputs).saturating_mul(CSV_ROW_BYTES + axes_bytes));
        let Some(f) = g.footprint else {
            g.batch_size = plan.output.batch_size.unwrap_or(CPU_DEFAULT_BATCH);
            continue;
        };
        if plan.output.arrays {
            // results.zarr stores a static array (grid, DoS) once per point, the others
            // once per output time (an upper bound: settled static arrays are stored once).
            let stat = f.static_array_reals.min(f.array_reals);
            let per_point = outputs.saturating_mul(f.array_reals - stat).saturating_add(stat);
            array_bytes = array_bytes.saturating_add(n.saturating_mul(per_point).saturating_mul(8));
        }
        let (own, shared) = member_bytes(plan, &f, outputs);
        g.member_bytes = own;
        g.shared_bytes = shared;
        let key = if g.key.is_empty() { String::new() } else { format!(" ({})", g.key) };
        let fits = (max_memory.saturating_sub(shared) / own) as usize;
        if fits == 0 {
            return Err(NeqkinError::TooLarge(format!(
                "one sweep point{key} needs ≈ {} of memory (state {} reals, tables {} reals, set-up/evaluation work {} \
                 per thread), more than the cap {} (--max-memory); make the grid coarser or raise the cap",
                human(own.saturating_add(shared)),
                f.state_len,
                f.table_len,
                human(f.work_bytes),
                human(max_memory)
            )));
        }
        g.batch_size = match plan.output.batch_size {
            Some(b) => {
                let bytes = shared.saturating_add(own.saturating_mul(b.min(g.points.len()) as u64));
                if bytes > max_memory {
                    return Err(NeqkinError::TooLarge(format!(
                        "a batch of output.batch_size = {b} points{key} needs ≈ {}, more than the cap {} \
                         (--max-memory); at most {fits} points fit",
                        human(bytes),
                        human(max_memory)
                    )));
                }
                b
            }
            None => capacity(&f.layout()).min(fits).max(1),
        };
    }
    let max_batch_bytes = groups.iter().map(Group::batch_bytes).max().unwrap_or(0);
    let e = Estimate {
        points_total,
        points_in_shard,
        groups,
        max_batch_bytes,
        csv_bytes,
        array_bytes,
        max_memory,
        max_output,
    };
    if let Some(cap) = max_output {
        if e.output_bytes() > cap {
            return Err(NeqkinError::TooLarge(format!(
                "the output would take ≈ {} (results.csv ≈ {}, arrays ≈ {}), more than {} ({}); \
                 fewer points or outputs, output.arrays = false, or --max-output",
                human(e.output_bytes()),
                human(e.csv_bytes),
                human(e.array_bytes),
                human(cap),
                if limits.max_output.is_some() { "--max-output" } else { "the free space there" }
            )));
        }
    }
    Ok(e)
}
