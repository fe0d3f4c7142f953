//! The output folder: `results.csv`, `meta.json`, `results.zarr/` and `progress.txt`,
//! plus the marker `.neqkin` and the lock `.neqkin.lock` ([`crate::run::folder`]).
//!
//! Written as each batch finishes, in an order that makes a kill at any instant harmless:
//! arrays (each written atomically: temporary file, sync, rename), then the batch's CSV
//! rows (appended, synced), then one line per point appended to `progress.txt` (synced),
//! then `meta.json` (replaced atomically). A point counts as done only once its complete
//! line is in `progress.txt`. The line is `point rows arrays`: the point index, how many
//! CSV rows it wrote and the names of its arrays (`-` for none), so that `--resume` can
//! check that every finished point really has its rows and arrays in the folder; points
//! that do not (rows lost, a file truncated or deleted) are redone, and rows of points
//! that are not finished (a batch cut off mid-write) are dropped. A torn last line of
//! `progress.txt` is not read. `run` and `merge` hold the folder's lock while they write.
//!
//! `results.csv` has one row per sweep point and output time:
//! `point` (the global, shard-independent index), one column per sweep axis, `output`
//! (index of the output time), `t`, `t_reached`, `status` (running/reached/steady/failed),
//! `steps_accepted`, `steps_rejected`, the model's scalar observables, `message` (why a
//! point failed). Floats are written in Rust's shortest round-trip form (`NaN`, `inf`).
//! Rows are in point order once a run is complete.
//!
//! Arrays go to one Zarr v3 dataset, `results.zarr/` ([`crate::run::dataset`]): every
//! array stacked along `point`, with `time` and a grid dimension, sweep values as
//! coordinates, static arrays (grids) written once when they are the same for every point.
//!
//! `meta.json` records the config, its fingerprint (the parts that decide the results)
//! and `inputs`: the SHA-256 of every file the parameters name (a `dos_table`, an α²F
//! table), so a resume or a merge never mixes results of different input files.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::config::Plan;
use crate::engine::backend::BackendInfo;
use crate::run::dataset::{self, Layout, STORE};
use crate::run::folder::{self, FolderLock};
use crate::run::schedule::Shard;
use crate::{NeqkinError, Result};

pub use crate::run::folder::write_atomic;

/// File names inside an output folder.
pub const RESULTS: &str = "results.csv";
/// Metadata file.
pub const META: &str = "meta.json";
/// Finished points, one line each (`point rows arrays`).
pub const PROGRESS: &str = "progress.txt";
/// Array folder of older neqkin versions (one NPY file per point and array); removed by
/// `--force` and when a run starts afresh.
pub const ARRAYS: &str = "arrays";
/// The dataset (Zarr v3 store) of the arrays.
pub const DATASET: &str = STORE;

/// Version of this build.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Git commit of this build (`unknown` outside a git checkout).
pub const GIT_COMMIT: &str = env!("NEQKIN_GIT_COMMIT");
/// Whether the working tree had uncommitted changes when built (`true`/`false`/`unknown`).
pub const GIT_DIRTY: &str = env!("NEQKIN_GIT_DIRTY");

/// What to do with an existing output folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// The folder must be absent or empty.
    New,
    /// Continue the run recorded there (same config and shard), skipping finished points.
    /// An absent or empty folder, or one neqkin made but killed before its `meta.json`
    /// existed, starts the run afresh.
    Resume,
    /// Delete our results in a folder neqkin made and start over (refused elsewhere).
    Force,
}

/// Status of a member at an output time, as written in `results.csv`.
pub fn status_name(code: f64) -> &'static str {
    use crate::engine::program::status;
    if code == status::RUNNING {
        "running"
    } else if code == status::REACHED {
        "reached"
    } else if code == status::STEADY {
        "steady"
    } else if code == status::STOPPED {
        "stopped"
    } else {
        "failed"
    }
}

/// One row of `results.csv`.
#[derive(Clone, Debug)]
pub struct Row {
    /// Global point index.
    pub point: usize,
    /// Sweep-axis values of the point.
    pub axis_values: Vec<f64>,
    /// Output-time index.
    pub output: usize,
    /// Requested output time.
    pub t: f64,
    /// Time the member reached.
    pub t_reached: f64,
    /// `running`, `reached`, `steady` or `failed`.
    pub status: &'static str,
    /// Accepted steps so far.
    pub steps_accepted: u64,
    /// Rejected steps so far.
    pub steps_rejected: u64,
    /// Scalar observables (name, value); matched to the header by name.
    pub observables: Vec<(String, f64)>,
    /// Why the point failed (empty otherwise).
    pub message: String,
}

/// Arrays of one point over all output times.
#[derive(Clone, Debug, Default)]
pub struct PointArrays {
    /// Global point index.
    pub point: usize,
    /// (name, one vector per output time).
    pub arrays: Vec<(String, Vec<Vec<f64>>)>,
}

/// Wall time and contents of one finished batch, for `meta.json`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BatchRecord {
    /// First and last point index of the batch.
    pub points: (usize, usize),
    /// Number of points.
    pub size: usize,
    /// Seconds from build to last write.
    pub wall_s: f64,
    /// Points flagged failed.
    pub failed: usize,
    /// Batch-level error (build or integration), if any.
    pub error: Option<String>,
    /// Backend that ran it.
    pub backend: Option<String>,
    /// Work layout of the GPU backend's member kernels for it (threads per member, members
    /// per workgroup, workgroups per member; absent on the CPU).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layout: Option<String>,
    /// Compute dispatches the GPU backend issued for it (absent on the CPU).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dispatches: Option<u64>,
    /// Accepted steps of the batch, the most any member took (GPU batches).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accepted_steps: Option<u64>,
    /// Right-hand-side evaluations per point of the batch
    /// ([`crate::engine::solve::SolveStats::rhs_evaluations_per_member`]: Jacobian columns
    /// included; absent for direct evaluations).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rhs_evaluations_per_point: Option<f64>,
}

/// An open output folder, locked for this process until dropped.
pub struct OutputDir {
    root: PathBuf,
    columns: Vec<String>,
    observables: Vec<String>,
    csv: Option<File>,
    progress: File,
    done: BTreeSet<usize>,
    meta: Value,
    /// Finished points a resume found incomplete in the folder, with why; redone.
    repaired: Vec<(usize, String)>,
    _lock: FolderLock,
}

/// Checks, without writing anything, that `root` can be opened as `mode` asks: a new run
/// needs an absent or empty folder, `--resume` and `--force` a folder neqkin made (or an
/// empty one). Cheap, for the CLI to call before any work (usage error). The lock file
/// and the marker do not make a folder non-empty.
pub fn check_folder(root: &Path, mode: OpenMode) -> Result<()> {
    if root.exists() && !root.is_dir() {
        return Err(NeqkinError::output(root, "exists and is not a folder"));
    }
    let names = folder::entries(root)?;
    if names.is_empty() {
        return Ok(());
    }
    let ours = folder::is_ours(root);
    let shown = names.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    match mode {
        OpenMode::New if ours => Err(NeqkinError::output(
            root,
            "is not empty (it holds a neqkin run); use --resume to continue the run there or --force to \
             delete its results and start over",
        )),
        OpenMode::New => Err(NeqkinError::output(
            root,
            format!("is not empty and not a neqkin output folder (it holds {shown}); choose a new or empty folder"),
        )),
        OpenMode::Resume if !ours => Err(NeqkinError::output(
            root,
            format!(
                "is not a neqkin output folder (no {} marker and no {META}; it holds {shown}); cannot resume there",
                folder::MARKER
            ),
        )),
        OpenMode::Force if !ours => Err(NeqkinError::output(
            root,
            format!(
                "is not a neqkin output folder (no {} marker and no {META}; it holds {shown}): --force deletes \
                 results only in folders neqkin made; choose another folder or empty this one yourself",
                folder::MARKER
            ),
        )),
        _ => Ok(()),
    }
}

/// One line of `progress.txt`: a finished point, how many CSV rows it wrote and the
/// names of its arrays. Folders written before this record have the index alone
/// (`rows` and `arrays` `None`: only the presence of some rows is checked).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finished {
    /// Global point index.
    pub point: usize,
    /// Rows the point has in `results.csv`.
    pub rows: Option<usize>,
    /// Names of the arrays it wrote into `results.zarr`.
    pub arrays: Option<Vec<String>>,
}

impl Finished {
    /// Parses a complete line (without its newline); `None` for a malformed one.
    pub fn parse(line: &str) -> Option<Finished> {
        let mut it = line.split_whitespace();
        let point = it.next()?.parse().ok()?;
        let rows = match it.next() {
            None => return Some(Finished { point, rows: None, arrays: None }),
            Some(r) => Some(r.parse().ok()?),
        };
        let arrays = match it.next()? {
            "-" => Vec::new(),
            a => a.split(',').map(str::to_string).collect(),
        };
        if it.next().is_some() {
            return None;
        }
        Some(Finished { point, rows, arrays: Some(arrays) })
    }

    /// The line, with its newline.
    pub fn line(&self) -> String {
        match (&self.rows, &self.arrays) {
            (Some(r), Some(a)) => {
                format!("{} {r} {}\n", self.point, if a.is_empty() { "-".to_string() } else { a.join(",") })
            }
            _ => format!("{}\n", self.point),
        }
    }
}

/// Reads the finished points of a folder: complete lines only (a line torn by a kill has
/// no newline and is not read; nor is a malformed one). A point listed twice keeps its
/// last line.
pub fn read_finished(root: &Path) -> Result<BTreeMap<usize, Finished>> {
    let path = root.join(PROGRESS);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(NeqkinError::io(&path, e)),
    };
    Ok(text
        .split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .filter_map(|l| Finished::parse(l.trim()))
        .map(|f| (f.point, f))
        .collect())
}

/// Reads the finished point indices of a folder (see [`read_finished`]).
pub fn read_progress(root: &Path) -> Result<BTreeSet<usize>> {
    Ok(read_finished(root)?.into_keys().collect())
}

/// Reads `meta.json`.
pub fn read_meta(root: &Path) -> Result<Value> {
    let path = root.join(META);
    let text = std::fs::read_to_string(&path).map_err(|e| NeqkinError::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| NeqkinError::output(&path, format!("unreadable: {e}")))
}

/// A data line of `results.csv` with its point and output-time indices.
pub type CsvLine = (usize, usize, String);

/// Reads `results.csv`: the header and the complete data lines whose point is in `keep`
/// (all points when `keep` is `None`).
pub fn read_rows(root: &Path, keep: Option<&BTreeSet<usize>>) -> Result<(Option<String>, Vec<CsvLine>)> {
    let path = root.join(RESULTS);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((None, Vec::new())),
        Err(e) => return Err(NeqkinError::io(&path, e)),
    };
    let mut lines = text.split_inclusive('\n').filter(|l| l.ends_with('\n'));
    let Some(header) = lines.next() else {
        return Ok((None, Vec::new()));
    };
    let header = header.trim_end_matches('\n').to_string();
    let out_col = header
        .split(',')
        .position(|c| c == "output")
        .ok_or_else(|| NeqkinError::output(&path, "header has no `output` column"))?;
    let mut rows = Vec::new();
    for line in lines {
        let line = line.trim_end_matches('\n');
        let mut fields = line.split(',');
        let point: Option<usize> = fields.next().and_then(|p| p.parse().ok());
        let output: Option<usize> = line.split(',').nth(out_col).and_then(|p| p.parse().ok());
        if let (Some(p), Some(o)) = (point, output) {
            if keep.is_none_or(|k| k.contains(&p)) {
                rows.push((p, o, line.to_string()));
            }
        }
    }
    Ok((Some(header), rows))
}

/// Points with a `failed` row among the finished points of a folder.
pub fn failed_points(root: &Path) -> Result<BTreeSet<usize>> {
    let done = read_progress(root)?;
    let (header, rows) = read_rows(root, Some(&done))?;
    let Some(header) = header else {
        return Ok(BTreeSet::new());
    };
    let col = header.split(',').position(|c| c == "status");
    Ok(rows
        .iter()
        .filter(|(_, _, l)| col.is_some_and(|c| l.split(',').nth(c) == Some("failed")))
        .map(|(p, _, _)| *p)
        .collect())
}

/// Why the finished points of a folder are not all there: `(good, bad)`, where `bad`
/// holds each point to redo with the reason. A point is good when `results.csv` has
/// exactly its recorded rows (one per output index, none twice) and every array it
/// recorded is in `results.zarr` (its shard file whole, its chunk listed in the index).
pub fn verify_finished(
    root: &Path,
    finished: &BTreeMap<usize, Finished>,
    rows: &[CsvLine],
) -> (BTreeMap<usize, Finished>, Vec<(usize, String)>) {
    let mut per_point: BTreeMap<usize, (usize, BTreeSet<usize>, bool)> = BTreeMap::new();
    for (p, o, _) in rows {
        let e = per_point.entry(*p).or_insert((0, BTreeSet::new(), false));
        e.0 += 1;
        if !e.1.insert(*o) {
            e.2 = true;
        }
    }
    let mut good = BTreeMap::new();
    let mut bad: Vec<(usize, String)> = Vec::new();
    let store = root.join(STORE);
    let mut checker = dataset::Checker::default();
    for (&p, f) in finished {
        let (n, _, dup) = per_point.get(&p).cloned().unwrap_or_default();
        let why = match f.rows {
            _ if dup => Some(format!("{n} rows in {RESULTS} with an output index twice")),
            Some(r) if r != n => Some(format!("{n} of its {r} rows in {RESULTS}")),
            None if n == 0 => Some(format!("no rows in {RESULTS}")),
            _ => None,
        };
        let why = why.or_else(|| f.arrays.iter().flatten().find_map(|name| checker.check(&store, name, p)));
        match why {
            Some(w) => bad.push((p, w)),
            None => {
                good.insert(p, f.clone());
            }
        }
    }
    (good, bad)
}

/// SHA-256 of a file, lower-case hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The files the parameters of `plan` name, with their content hashes:
/// `{"params.dos_table": {"path": ..., "sha256": ..., "bytes": ...}}`. Every string
/// parameter (or string in a list parameter, `params.key[i]`) that names an existing
/// file counts, whatever the model; paths are as the model reads them (relative to the
/// working folder).
pub fn input_files(plan: &Plan) -> Value {
    let mut out = serde_json::Map::new();
    let mut add = |field: String, s: &str| {
        let path = Path::new(s);
        if !s.is_empty() && path.is_file() {
            let entry = match sha256_file(path) {
                Ok(h) => json!({ "path": s, "sha256": h, "bytes": path.metadata().map(|m| m.len()).unwrap_or(0) }),
                Err(e) => json!({ "path": s, "error": e.to_string() }),
            };
            out.insert(field, entry);
        }
    };
    for (k, v) in &plan.params {
        match v {
            Value::String(s) => add(format!("params.{k}"), s),
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    if let Value::String(s) = x {
                        add(format!("params.{k}[{i}]"), s);
                    }
                }
            }
            _ => {}
        }
    }
    Value::Object(out)
}

/// Dotted paths where two JSON trees differ, with the two values (shortened).
pub fn diff_fields(a: &Value, b: &Value) -> Vec<(String, String, String)> {
    fn short(v: Option<&Value>) -> String {
        let s = v.map_or("(absent)".to_string(), |v| v.to_string());
        if s.chars().count() > 60 {
            format!("{}…", s.chars().take(57).collect::<String>())
        } else {
            s
        }
    }
    fn walk(a: Option<&Value>, b: Option<&Value>, path: String, out: &mut Vec<(String, String, String)>) {
        match (a, b) {
            (Some(Value::Object(x)), Some(Value::Object(y))) => {
                let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for k in keys {
                    let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                    walk(x.get(k), y.get(k), p, out);
                }
            }
            (Some(Value::Array(x)), Some(Value::Array(y))) if x.len() == y.len() && x.iter().any(Value::is_object) => {
                for (i, (u, v)) in x.iter().zip(y).enumerate() {
                    walk(Some(u), Some(v), format!("{path}[{i}]"), out);
                }
            }
            _ if a == b => {}
            _ => out.push((if path.is_empty() { "(whole)".into() } else { path }, short(a), short(b))),
        }
    }
    let mut out = Vec::new();
    walk(Some(a), Some(b), String::new(), &mut out);
    out
}

/// Compares what a folder's `meta.json` records with what `plan` would write: the
/// fingerprint and the input files' hashes. `Err` names each field that differs.
fn same_run(meta: &Value, fingerprint: &str, inputs: &Value) -> std::result::Result<(), String> {
    let mut diffs: Vec<String> = Vec::new();
    if meta["fingerprint"].as_str() != Some(fingerprint) {
        let recorded: Value =
            meta["fingerprint"].as_str().and_then(|t| serde_json::from_str(t).ok()).unwrap_or_default();
        let now: Value = serde_json::from_str(fingerprint).unwrap_or_default();
        let d = diff_fields(&recorded, &now);
        if d.is_empty() {
            diffs.push("the fingerprint (a value that differs below the precision shown)".into());
        }
        diffs.extend(d.into_iter().map(|(f, x, y)| format!("{f} (folder: {x}, this config: {y})")));
    }
    let no_inputs = json!({});
    let recorded = meta.get("inputs").unwrap_or(&no_inputs);
    if recorded != inputs {
        let (empty, now) = (serde_json::Map::new(), inputs.as_object());
        let (r, n) = (recorded.as_object().unwrap_or(&empty), now.unwrap_or(&empty));
        let keys: BTreeSet<&String> = r.keys().chain(n.keys()).collect();
        for k in keys {
            let hash = |m: &serde_json::Map<String, Value>| {
                m.get(k).map(|e| e["sha256"].as_str().map_or("unreadable".to_string(), |h| h[..12].to_string()))
            };
            let (x, y) = (hash(r), hash(n));
            if x == y {
                continue;
            }
            let what = match (x, y) {
                (None, Some(_)) if meta.get("inputs").is_none() => {
                    "no content hash recorded (written by an older neqkin); cannot check the file is unchanged".into()
                }
                (None, Some(h)) => format!("file not recorded in the folder, now sha256 {h}…"),
                (Some(h), None) => format!("file recorded with sha256 {h}…, now not a readable file"),
                (Some(a), Some(b)) => format!("file content differs: folder sha256 {a}…, now {b}…"),
                (None, None) => continue,
            };
            diffs.push(format!("{k} ({what})"));
        }
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(diffs.join("; "))
    }
}

fn build_meta(plan: &Plan, shard: Shard, points_in_shard: usize, inputs: Value) -> Value {
    json!({
        "neqkin_version": VERSION,
        "git_commit": GIT_COMMIT,
        "git_dirty": GIT_DIRTY,
        "config": plan.raw,
        "resolved": plan.resolved(),
        "fingerprint": plan.fingerprint(),
        "inputs": inputs,
        "shard": { "index": shard.index, "count": shard.count },
        "points_total": plan.n_points(),
        "points_in_shard": points_in_shard,
        "backend": Value::Null,
        "batches": [],
        "sessions": [],
        "complete": false,
    })
}

/// Deletes what a run or merge writes in `root` (never other files): `meta.json`
/// first, so that a kill part-way leaves a folder with no finished point.
fn clear_results(root: &Path) -> Result<()> {
    folder::remove_file(&root.join(META))?;
    for f in [PROGRESS, RESULTS] {
        folder::remove_file(&root.join(f))?;
    }
    folder::remove_dir_all(&root.join(STORE))?;
    folder::remove_dir_all(&root.join(ARRAYS))?;
    remove_tmp_files(root)
}

/// Deletes temporary files left by a kill (`.<name>.tmp` in the folder and the dataset).
fn remove_tmp_files(root: &Path) -> Result<()> {
    let store = root.join(STORE);
    let mut dirs = vec![root.to_path_buf(), store.clone()];
    dirs.extend(dataset::var_names(&store).into_iter().map(|n| store.join(n)));
    if let Ok(it) = std::fs::read_dir(&store) {
        dirs.extend(it.flatten().map(|e| e.path()).filter(|p| p.is_dir() && !p.join("zarr.json").is_file()));
    }
    for dir in dirs {
        let Ok(it) = std::fs::read_dir(&dir) else { continue };
        for e in it.flatten() {
            if folder::is_tmp_name(&e.file_name().to_string_lossy()) {
                folder::remove_file(&e.path())?;
            }
        }
    }
    Ok(())
}

/// Writes `rows` (sorted by point and output index) under `header` as `results.csv`,
/// atomically.
fn write_rows(root: &Path, header: &str, rows: &mut [CsvLine]) -> Result<()> {
    rows.sort_by_key(|(p, o, _)| (*p, *o));
    let mut text = String::with_capacity(header.len() + 1 + rows.iter().map(|r| r.2.len() + 1).sum::<usize>());
    text.push_str(header);
    text.push('\n');
    for (_, _, l) in rows.iter() {
        text.push_str(l);
        text.push('\n');
    }
    write_atomic(&root.join(RESULTS), text.as_bytes())
}

impl OutputDir {
    /// Opens (creates, resumes or overwrites) `root` for `plan` run as `shard`, and takes
    /// its lock (refused, naming the holder, while another process has it).
    ///
    /// On [`OpenMode::Resume`] the recorded config, input files and shard must match
    /// (the error names each field that differs); finished points whose rows or arrays are
    /// not all in the folder are redone, and rows and arrays of unfinished points removed.
    pub fn open(root: &Path, plan: &Plan, shard: Shard, mode: OpenMode) -> Result<OutputDir> {
        check_folder(root, mode)?;
        let points_in_shard = (0..plan.n_points()).filter(|i| shard.contains(*i)).count();
        std::fs::create_dir_all(root).map_err(|e| NeqkinError::io(root, e))?;
        let lock = FolderLock::acquire(root, "run", true)?;
        // Again under the lock: another process may have written the folder meanwhile.
        check_folder(root, mode)?;
        folder::mark(root, "neqkin run")?;
        let has_meta = root.join(META).is_file();
        // Without meta.json no point can have finished (it is written before the first
        // batch and deleted first by --force): whatever is there is a start cut short.
        if mode == OpenMode::Force || !has_meta {
            clear_results(root)?;
        } else {
            remove_tmp_files(root)?;
        }
        let inputs = input_files(plan);
        let resuming = mode == OpenMode::Resume && has_meta;
        let mut repaired = Vec::new();
        let (meta, done) = if resuming {
            let meta = read_meta(root)?;
            if let Err(diffs) = same_run(&meta, &plan.fingerprint(), &inputs) {
                return Err(NeqkinError::output(
                    root,
                    format!(
                        "was written by a different config: {diffs}; resume with the original config and files, \
                         or use a new folder"
                    ),
                ));
            }
            let (i, n) = (meta["shard"]["index"].as_u64(), meta["shard"]["count"].as_u64());
            if (i, n) != (Some(shard.index as u64), Some(shard.count as u64)) {
                return Err(NeqkinError::output(
                    root,
                    format!("holds shard {}/{}, not {shard}", i.unwrap_or(0), n.unwrap_or(1)),
                ));
            }
            let finished = read_finished(root)?;
            let (header, all_rows) = read_rows(root, None)?;
            let (good, bad) = verify_finished(root, &finished, &all_rows);
            repaired = bad;
            let keep: BTreeSet<usize> = good.keys().copied().collect();
            // Keep only rows of points that are finished and whole; progress.txt gets
            // exactly those points (and loses a torn last line).
            if let Some(h) = header {
                let mut rows: Vec<CsvLine> = all_rows.into_iter().filter(|(p, _, _)| keep.contains(p)).collect();
                write_rows(root, &h, &mut rows)?;
            }
            let text: String = good.values().map(Finished::line).collect();
            write_atomic(&root.join(PROGRESS), text.as_bytes())?;
            // Arrays of points that are not finished (a batch cut short) go.
            dataset::prune(&root.join(STORE), &keep)?;
            (meta, keep)
        } else {
            (build_meta(plan, shard, points_in_shard, inputs), BTreeSet::new())
        };
        let progress_path = root.join(PROGRESS);
        let progress = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&progress_path)
            .map_err(|e| NeqkinError::io(&progress_path, e))?;
        let mut dir = OutputDir {
            root: root.to_path_buf(),
            columns: Vec::new(),
            observables: Vec::new(),
            csv: None,
            progress,
            done,
            meta,
            repaired,
            _lock: lock,
        };
        let now = utc_now();
        if dir.meta.get("started").is_none_or(Value::is_null) {
            dir.meta["started"] = Value::String(now.clone());
        }
        dir.meta["finished"] = Value::Null;
        dir.meta["complete"] = Value::Bool(false);
        let session = json!({ "started": now, "finished": Value::Null, "resumed": resuming });
        if !dir.meta["sessions"].is_array() {
            dir.meta["sessions"] = json!([]);
        }
        dir.meta["sessions"].as_array_mut().expect("meta.sessions is an array").push(session);
        dir.write_meta()?;
        Ok(dir)
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Points already finished (recorded in `progress.txt`, rows and arrays checked).
    pub fn done(&self) -> &BTreeSet<usize> {
        &self.done
    }

    /// Points recorded finished that a resume found incomplete (rows or arrays missing or
    /// damaged), with why; they are run again.
    pub fn repaired(&self) -> &[(usize, String)] {
        &self.repaired
    }

    /// Fixes the CSV columns (axes, observables) and writes the header, or on resume
    /// checks that the existing header is the same.
    pub fn set_columns(&mut self, axes: &[String], observables: &[String]) -> Result<()> {
        let cols = columns(axes, observables);
        let header = cols.iter().map(|c| csv_field(c)).collect::<Vec<_>>().join(",");
        let path = self.root.join(RESULTS);
        let existing = match std::fs::read_to_string(&path) {
            Ok(t) => t.split_inclusive('\n').next().filter(|l| l.ends_with('\n')).map(|l| l.trim_end().to_string()),
            Err(_) => None,
        };
        match existing {
            Some(h) if h != header => {
                return Err(NeqkinError::output(
                    &path,
                    format!("existing header `{h}` differs from this run's `{header}`"),
                ))
            }
            Some(_) => {}
            // No header yet (or one cut short): no finished point can have rows, so the
            // file starts afresh, atomically.
            None => write_atomic(&path, format!("{header}\n").as_bytes())?,
        }
        let f = OpenOptions::new().append(true).open(&path).map_err(|e| NeqkinError::io(&path, e))?;
        self.columns = cols;
        self.observables = observables.to_vec();
        self.csv = Some(f);
        Ok(())
    }

    /// Writes the dataset's metadata and coordinates (before the first batch; on resume
    /// the same layout again, keeping a static array that an earlier session stored shared).
    pub fn set_dataset(&mut self, layout: &Layout) -> Result<()> {
        dataset::write_layout(&self.root.join(STORE), layout)
    }

    /// Records the backend in `meta.json` (first batch; later ones keep the first).
    pub fn set_backend(&mut self, info: &BackendInfo) -> Result<()> {
        if self.meta["backend"].is_null() {
            self.meta["backend"] = serde_json::to_value(info).unwrap_or(Value::Null);
        }
        Ok(())
    }

    /// Writes one finished batch: its shards of `results.zarr` (each atomically), rows
    /// (synced), progress (synced), meta (atomically).
    pub fn write_batch(
        &mut self,
        rows: &[Row],
        arrays: &[PointArrays],
        record: BatchRecord,
        points: &[usize],
    ) -> Result<()> {
        let mut names: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        let store = self.root.join(STORE);
        let mut per_var: BTreeMap<String, Vec<dataset::PointValues>> = BTreeMap::new();
        for pa in arrays {
            for (name, frames) in &pa.arrays {
                if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == ',' || c == '/') {
                    return Err(NeqkinError::output(&self.root, format!("array name `{name}` is not a plain word")));
                }
                let m = dataset::var_meta(&store, name).ok_or_else(|| {
                    NeqkinError::output(
                        &self.root,
                        format!(
                            "point {} wrote array `{name}`, which the first point of its batch key did not \
                             (the dataset's layout is fixed before the run)",
                            pa.point
                        ),
                    )
                })?;
                let len = *m.shape.last().unwrap_or(&0);
                if frames.iter().any(|f| f.len() > len) {
                    return Err(NeqkinError::output(
                        &self.root,
                        format!(
                            "array `{name}` of point {} is longer than the dataset's {len} (from the first point \
                             of its batch key at t = 0): an array's length must be fixed by the parameters \
                             (pad a state-dependent one with NaN)",
                            pa.point
                        ),
                    ));
                }
                let padded = |f: &Vec<f64>| -> Vec<f64> {
                    let mut v = f.clone();
                    v.resize(len, f64::NAN);
                    v
                };
                let values: Vec<f64> = if m.is_static {
                    let differ = |a: &[f64], b: &[f64]| {
                        a.len() != b.len() || a.iter().zip(b).any(|(x, y)| x.to_bits() != y.to_bits())
                    };
                    if frames.windows(2).any(|w| differ(&w[0], &w[1])) {
                        return Err(NeqkinError::output(
                            &self.root,
                            format!("static array `{name}` of point {} changes between output times", pa.point),
                        ));
                    }
                    frames.first().map(padded).unwrap_or_else(|| vec![f64::NAN; len])
                } else {
                    let t = m.shape.get(1).copied().unwrap_or(1);
                    let first = frames.first().map_or(0, Vec::len);
                    if frames.iter().any(|f| f.len() != first) {
                        return Err(NeqkinError::output(
                            &self.root,
                            format!("array `{name}` of point {} changes length between output times", pa.point),
                        ));
                    }
                    let mut v: Vec<f64> = frames.iter().take(t).flat_map(padded).collect();
                    v.resize(t * len, f64::NAN);
                    v
                };
                names.entry(pa.point).or_default().push(name.clone());
                per_var.entry(name.clone()).or_default().push((pa.point, values));
            }
        }
        let mut files: Vec<(PathBuf, Vec<u8>)> = Vec::new();
        for (name, values) in &per_var {
            files.extend(dataset::shard_files(&store, name, values)?);
        }
        folder::write_many_atomic(&files)?;
        drop(files);
        let path = self.root.join(RESULTS);
        let csv =
            self.csv.as_mut().ok_or_else(|| NeqkinError::output(&path, "columns not set before the first batch"))?;
        let mut text = String::new();
        let mut n_rows: BTreeMap<usize, usize> = BTreeMap::new();
        for r in rows {
            *n_rows.entry(r.point).or_default() += 1;
            let mut f: Vec<String> = Vec::with_capacity(self.columns.len());
            f.push(r.point.to_string());
            f.extend(r.axis_values.iter().map(|v| fmt_f64(*v)));
            f.push(r.output.to_string());
            f.push(fmt_f64(r.t));
            f.push(fmt_f64(r.t_reached));
            f.push(r.status.to_string());
            f.push(r.steps_accepted.to_string());
            f.push(r.steps_rejected.to_string());
            for name in &self.observables {
                f.push(r.observables.iter().find(|(n, _)| n == name).map_or(String::new(), |(_, v)| fmt_f64(*v)));
            }
            f.push(csv_field(&r.message));
            text.push_str(&f.join(","));
            text.push('\n');
        }
        folder::append_synced(csv, text.as_bytes(), &path)?;
        let p: String = points
            .iter()
            .map(|&i| {
                Finished {
                    point: i,
                    rows: Some(n_rows.get(&i).copied().unwrap_or(0)),
                    arrays: Some(names.remove(&i).unwrap_or_default()),
                }
                .line()
            })
            .collect();
        let ppath = self.root.join(PROGRESS);
        folder::append_synced(&mut self.progress, p.as_bytes(), &ppath)?;
        self.done.extend(points.iter().copied());
        self.meta["batches"]
            .as_array_mut()
            .expect("meta.batches is an array")
            .push(serde_json::to_value(&record).unwrap_or(Value::Null));
        self.update_dispatches_per_step();
        self.update_rhs_evaluations_per_point();
        self.write_meta()
    }

    /// Marks the session finished; `complete` when every point of the shard is done.
    /// A complete folder gets its rows in point order (points redone by a resume were
    /// appended at the end).
    pub fn finish(&mut self, complete: bool) -> Result<()> {
        if complete {
            self.csv = None;
            let (header, mut rows) = read_rows(&self.root, Some(&self.done))?;
            let sorted = rows.windows(2).all(|w| (w[0].0, w[0].1) < (w[1].0, w[1].1));
            if let (Some(h), false) = (header, sorted) {
                write_rows(&self.root, &h, &mut rows)?;
            }
            let finished = read_finished(&self.root)?;
            let arrays: BTreeMap<usize, Vec<String>> = finished
                .into_iter()
                .filter(|(p, _)| self.done.contains(p))
                .map(|(p, f)| (p, f.arrays.unwrap_or_default()))
                .collect();
            let store = self.root.join(STORE);
            if store.is_dir() {
                dataset::settle_static(&store, &arrays, None)?;
            }
        }
        let now = utc_now();
        if let Some(s) = self.meta["sessions"].as_array_mut().and_then(|a| a.last_mut()) {
            s["finished"] = Value::String(now.clone());
        }
        self.meta["finished"] = Value::String(now);
        self.meta["complete"] = Value::Bool(complete);
        self.write_meta()
    }

    /// `dispatches_per_accepted_step` over every batch of the folder
    /// ([`dispatches_per_accepted_step`]); absent when no GPU batch ran.
    fn update_dispatches_per_step(&mut self) {
        if let Some(d) = dispatches_per_accepted_step(self.meta["batches"].as_array().into_iter().flatten()) {
            self.meta["dispatches_per_accepted_step"] = serde_json::json!(d);
        }
    }

    /// `rhs_evaluations_per_point` over every batch of the folder
    /// ([`rhs_evaluations_per_point`]).
    fn update_rhs_evaluations_per_point(&mut self) {
        if let Some(e) = rhs_evaluations_per_point(self.meta["batches"].as_array().into_iter().flatten()) {
            self.meta["rhs_evaluations_per_point"] = serde_json::json!(e);
        }
    }

    fn write_meta(&self) -> Result<()> {
        let text = serde_json::to_string_pretty(&self.meta).unwrap_or_default();
        write_atomic(&self.root.join(META), text.as_bytes())
    }
}

fn fmt_f64(x: f64) -> String {
    let a = x.abs();
    if x == 0.0 || !x.is_finite() || (1e-4..1e15).contains(&a) {
        format!("{x}")
    } else {
        format!("{x:e}")
    }
}

fn csv_field(s: &str) -> String {
    let s = s.replace(['\n', '\r'], " ");
    if s.contains([',', '"']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// Current UTC time as RFC 3339 (`2026-11-22T05:30:00Z`).
pub fn utc_now() -> String {
    let secs =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil-from-days (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Header columns of `results.csv` for these axes and observables.
pub fn columns(axes: &[String], observables: &[String]) -> Vec<String> {
    let mut c = vec!["point".to_string()];
    c.extend(axes.iter().cloned());
    c.extend(["output", "t", "t_reached", "status", "steps_accepted", "steps_rejected"].iter().map(|s| s.to_string()));
    c.extend(observables.iter().cloned());
    c.push("message".into());
    c
}

/// How `merge` treats its output folder and incomplete inputs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MergeOptions {
    /// Delete the results in a non-empty output folder that neqkin made.
    pub force: bool,
    /// Merge what there is: skip missing shard folders, take the finished points of
    /// incomplete shards, and allow shards of the sweep that are not given.
    pub allow_partial: bool,
}

/// Summary of a merge.
#[derive(Clone, Debug)]
pub struct MergeSummary {
    /// Points in the merged folder.
    pub points: usize,
    /// Points of the sweep that no shard finished.
    pub missing: usize,
    /// What `--allow-partial` let through (missing shards, incomplete ones).
    pub warnings: Vec<String>,
}

/// One input of a merge, read and checked.
struct MergeInput {
    dir: PathBuf,
    meta: Value,
    header: String,
    finished: BTreeMap<usize, Finished>,
    rows: Vec<CsvLine>,
}

/// The dataset of a merge: the layout (metadata and coordinates) of the first input, the
/// chunks of every input's finished points, shard by shard (the inputs share the layout,
/// so shard files have the same names), static arrays settled over all points.
fn merge_dataset(out: &Path, inputs: &[MergeInput]) -> Result<()> {
    let Some(first) = inputs.iter().find(|i| i.dir.join(STORE).join("zarr.json").is_file()) else {
        return Ok(());
    };
    let (src, dst) = (first.dir.join(STORE), out.join(STORE));
    std::fs::create_dir_all(&dst).map_err(|e| NeqkinError::io(&dst, e))?;
    let holders = |name: &str| -> Vec<(&MergeInput, Vec<usize>)> {
        inputs
            .iter()
            .map(|i| {
                let pts = i
                    .finished
                    .iter()
                    .filter(|(_, f)| f.arrays.as_ref().is_some_and(|a| a.iter().any(|n| n == name)))
                    .map(|(p, _)| *p)
                    .collect();
                (i, pts)
            })
            .collect()
    };
    let mut static_values: BTreeMap<String, BTreeMap<usize, Vec<f64>>> = BTreeMap::new();
    for name in dataset::var_names(&src) {
        let meta = dataset::var_meta(&src, &name);
        let dir = dst.join(&name);
        std::fs::create_dir_all(&dir).map_err(|e| NeqkinError::io(&dir, e))?;
        let read = |p: &Path| std::fs::read(p).map_err(|e| NeqkinError::io(p, e));
        match meta {
            Some(m) if m.is_static => {
                // Written by settle_static below, from every input's values.
                let values = static_values.entry(name.clone()).or_default();
                for (inp, pts) in holders(&name) {
                    for p in pts {
                        if let Some(v) = dataset::read_point(&inp.dir.join(STORE), &name, p) {
                            values.insert(p, v);
                        }
                    }
                }
                let len = *m.shape.last().unwrap_or(&0);
                let dim = m.dims.last().cloned().unwrap_or_default();
                let points = dataset::var_meta(&src, "point").map_or(0, |m| m.shape[0]);
                folder::write_atomic(&dir.join("zarr.json"), &dataset::per_point_bytes(points, len, &dim))?;
            }
            Some(m) if m.per_point => {
                folder::write_atomic(&dir.join("zarr.json"), &read(&src.join(&name).join("zarr.json"))?)?;
                let mut by_input = holders(&name);
                let mut values: Vec<dataset::PointValues> = Vec::new();
                // Shard by shard, to hold at most one shard's worth of every input.
                let mut pts: Vec<(usize, usize)> = Vec::new(); // (point, input)
                for (k, (_, p)) in by_input.iter_mut().enumerate() {
                    pts.extend(p.iter().map(|&p| (p, k)));
                }
                pts.sort();
                let mut i = 0;
                while i < pts.len() {
                    let shard = pts[i].0 / m.shard;
                    values.clear();
                    while i < pts.len() && pts[i].0 / m.shard == shard {
                        let (p, k) = pts[i];
                        let v = dataset::read_point(&by_input[k].0.dir.join(STORE), &name, p).ok_or_else(|| {
                            NeqkinError::output(&by_input[k].0.dir, format!("array `{name}` of point {p} unreadable"))
                        })?;
                        values.push((p, v));
                        i += 1;
                    }
                    folder::write_many_atomic(&dataset::shard_files(&dst, &name, &values)?)?;
                }
            }
            _ => {
                // Coordinates: copied as they are.
                let mut files = Vec::new();
                for f in ["zarr.json", "c.0"] {
                    let from = src.join(&name).join(f);
                    if from.is_file() {
                        files.push((dir.join(f), read(&from)?));
                    }
                }
                folder::write_many_atomic(&files)?;
            }
        }
    }
    let arrays: BTreeMap<usize, Vec<String>> = inputs
        .iter()
        .flat_map(|i| i.finished.iter().map(|(p, f)| (*p, f.arrays.clone().unwrap_or_default())))
        .collect();
    dataset::settle_static(&dst, &arrays, Some(&static_values))
}

/// GPU dispatches over accepted steps, summed over `batches` (`meta.json` batch records):
/// the steps-weighted mean of the batches' dispatches per step, each batch's steps counted
/// once, as the most any member took (one step program advances the whole batch). `None`
/// when no batch reports dispatches (no GPU batch ran). A run and a merge of its shards
/// both take it over every batch they hold.
pub fn dispatches_per_accepted_step<'a>(batches: impl Iterator<Item = &'a Value>) -> Option<f64> {
    let (mut dispatches, mut steps) = (0u64, 0u64);
    for b in batches {
        if let (Some(d), Some(s)) = (b["dispatches"].as_u64(), b["accepted_steps"].as_u64()) {
            dispatches += d;
            steps += s;
        }
    }
    (steps > 0).then(|| dispatches as f64 / steps as f64)
}

/// Right-hand-side evaluations per point: the points' mean over every batch of `batches`
/// that reported one (so that "fewer steps or cheaper steps" can be read off any run or
/// merge). `None` when none did.
pub fn rhs_evaluations_per_point<'a>(batches: impl Iterator<Item = &'a Value>) -> Option<f64> {
    let (mut evaluations, mut points) = (0.0f64, 0u64);
    for b in batches {
        if let (Some(e), Some(n)) = (b["rhs_evaluations_per_point"].as_f64(), b["size"].as_u64()) {
            evaluations += e * n as f64;
            points += n;
        }
    }
    (points > 0).then(|| evaluations / points as f64)
}

/// Joins shard folders into `out`: rows sorted by point and output time, arrays merged,
/// meta listing the shards. Takes the lock of `out` and of every input. Refused (nothing
/// written) when `out` is one of the inputs, an input is given twice, the shards ran
/// different configs or input files, overlap or have different CSV headers; and, unless
/// [`MergeOptions::allow_partial`], when a shard folder is missing, a shard is incomplete
/// (or a finished point lacks rows or arrays) or a shard of the sweep is not given.
/// `out` must be absent or empty, or with `force` a folder neqkin made.
pub fn merge(out: &Path, shards: &[PathBuf], opts: MergeOptions) -> Result<MergeSummary> {
    if shards.is_empty() {
        return Err(NeqkinError::output(out, "no shard folders given"));
    }
    let partial_hint = "; merge what there is with --allow-partial";
    let out_c = folder::canonical(out);
    let mut seen: BTreeMap<PathBuf, &PathBuf> = BTreeMap::new();
    let mut warnings = Vec::new();
    let mut dirs: Vec<PathBuf> = Vec::new();
    for dir in shards {
        let c = folder::canonical(dir);
        if c == out_c {
            return Err(NeqkinError::output(
                out,
                format!("is also one of the inputs ({}); merge into a new folder", dir.display()),
            ));
        }
        if let Some(first) = seen.insert(c, dir) {
            return Err(NeqkinError::output(dir, format!("is given twice (also as {})", first.display())));
        }
        let usable = dir.is_dir() && dir.join(META).is_file();
        if !usable {
            let why = if dir.is_dir() {
                format!("has no {META} (a shard that never started, or not a neqkin folder)")
            } else {
                "does not exist (a missing shard)".to_string()
            };
            if opts.allow_partial {
                warnings.push(format!("{} {why}; skipped", dir.display()));
                continue;
            }
            return Err(NeqkinError::output(dir, format!("{why}{partial_hint}")));
        }
        dirs.push(dir.clone());
    }
    if dirs.is_empty() {
        return Err(NeqkinError::output(out, "none of the shard folders given has results"));
    }
    check_folder(out, if opts.force { OpenMode::Force } else { OpenMode::New })?;
    // Hold every input's lock while reading it: no run writes it meanwhile.
    let mut locks = Vec::new();
    for dir in &dirs {
        locks.push(FolderLock::acquire(dir, "merge (reading)", false)?);
    }
    let mut inputs: Vec<MergeInput> = Vec::new();
    for dir in &dirs {
        let meta = read_meta(dir)?;
        let finished = read_finished(dir)?;
        let (header, rows) = read_rows(dir, None)?;
        let (good, bad) = verify_finished(dir, &finished, &rows);
        if let Some((p, why)) = bad.first() {
            let what = format!(
                "{} finished points lack rows or arrays (point {p}: {why}); resume the shard to redo them",
                bad.len()
            );
            if !opts.allow_partial {
                return Err(NeqkinError::output(dir, format!("{what}{partial_hint}")));
            }
            warnings.push(format!("{}: {what}; those points are left out", dir.display()));
        }
        let keep: BTreeSet<usize> = good.keys().copied().collect();
        let rows = rows.into_iter().filter(|(p, _, _)| keep.contains(p)).collect();
        inputs.push(MergeInput { dir: dir.clone(), meta, header: header.unwrap_or_default(), finished: good, rows });
    }
    // The shards must be of one run.
    let first = &inputs[0];
    let mut seen_shards = BTreeSet::new();
    let mut done_all: BTreeSet<usize> = BTreeSet::new();
    for inp in &inputs {
        let inputs0 = first.meta.get("inputs").cloned().unwrap_or(json!({}));
        if let Err(diffs) = same_run(&inp.meta, first.meta["fingerprint"].as_str().unwrap_or(""), &inputs0) {
            return Err(NeqkinError::output(
                &inp.dir,
                format!("was run with a different config than {}: {diffs}", first.dir.display()),
            ));
        }
        if first.meta["shard"]["count"] != inp.meta["shard"]["count"] {
            return Err(NeqkinError::output(
                &inp.dir,
                format!(
                    "is a shard of {} but {} is a shard of {}",
                    inp.meta["shard"]["count"],
                    first.dir.display(),
                    first.meta["shard"]["count"]
                ),
            ));
        }
        let idx = inp.meta["shard"]["index"].as_u64().unwrap_or(0);
        if !seen_shards.insert(idx) {
            return Err(NeqkinError::output(&inp.dir, format!("shard {idx} given twice")));
        }
        if let Some(p) = inp.finished.keys().find(|p| done_all.contains(*p)) {
            return Err(NeqkinError::output(&inp.dir, format!("point {p} is also in another shard")));
        }
        done_all.extend(inp.finished.keys().copied());
    }
    let header = inputs.iter().map(|i| &i.header).find(|h| !h.is_empty()).cloned().unwrap_or_default();
    if let Some(inp) = inputs.iter().find(|i| !i.header.is_empty() && i.header != header) {
        return Err(NeqkinError::output(
            &inp.dir,
            format!("results.csv header differs from that of the other shards (`{}` vs `{header}`)", inp.header),
        ));
    }
    // Completeness: every shard given, every point of each finished.
    let total = first.meta["points_total"].as_u64().unwrap_or(0) as usize;
    let count = first.meta["shard"]["count"].as_u64().unwrap_or(1).max(1) as usize;
    for inp in &inputs {
        let idx = inp.meta["shard"]["index"].as_u64().unwrap_or(0) as usize;
        let shard = Shard { index: idx, count };
        let in_shard = (0..total).filter(|i| shard.contains(*i)).count();
        let done = inp.finished.keys().filter(|p| shard.contains(**p)).count();
        if done < in_shard {
            let what = format!("is incomplete: {done} of its {in_shard} points are finished (shard {shard})");
            if !opts.allow_partial {
                return Err(NeqkinError::output(
                    &inp.dir,
                    format!(
                        "{what}; finish it with `neqkin run CONFIG --shard {shard} --resume --out {}`{partial_hint}",
                        inp.dir.display()
                    ),
                ));
            }
            warnings.push(format!("{} {what}", inp.dir.display()));
        }
    }
    let absent: Vec<String> =
        (0..count).filter(|i| !seen_shards.contains(&(*i as u64))).map(|i| format!("{i}/{count}")).collect();
    if !absent.is_empty() {
        let what = format!("shard{} {} not given", if absent.len() > 1 { "s" } else { "" }, absent.join(", "));
        if !opts.allow_partial {
            return Err(NeqkinError::output(out, format!("{what}{partial_hint}")));
        }
        warnings.push(what);
    }

    // Write: lock the output, mark it, clear it when forced, then arrays, rows, progress,
    // and meta.json last (a merge cut short leaves no meta.json: nothing counts as done).
    std::fs::create_dir_all(out).map_err(|e| NeqkinError::io(out, e))?;
    let _out_lock = FolderLock::acquire(out, "merge", true)?;
    check_folder(out, if opts.force { OpenMode::Force } else { OpenMode::New })?;
    folder::mark(out, "neqkin merge")?;
    clear_results(out)?;
    merge_dataset(out, &inputs)?;
    let mut all_rows: Vec<CsvLine> = inputs.iter().flat_map(|i| i.rows.iter().cloned()).collect();
    if !header.is_empty() {
        write_rows(out, &header, &mut all_rows)?;
    }
    let mut finished: Vec<&Finished> = inputs.iter().flat_map(|i| i.finished.values()).collect();
    finished.sort_by_key(|f| f.point);
    let prog: String = finished.iter().map(|f| f.line()).collect();
    write_atomic(&out.join(PROGRESS), prog.as_bytes())?;
    let missing = total.saturating_sub(done_all.len());
    let shard_meta: Vec<Value> = inputs
        .iter()
        .map(|i| {
            json!({
                "dir": i.dir.display().to_string(),
                "shard": i.meta["shard"],
                "points_done": i.finished.len(),
                "complete": i.meta["complete"],
                "backend": i.meta["backend"],
                "batches": i.meta["batches"],
                "sessions": i.meta["sessions"],
                "git_commit": i.meta["git_commit"],
                "neqkin_version": i.meta["neqkin_version"],
            })
        })
        .collect();
    let meta0 = &first.meta;
    let meta = json!({
        "neqkin_version": VERSION,
        "git_commit": GIT_COMMIT,
        "git_dirty": GIT_DIRTY,
        "merged": utc_now(),
        "config": meta0["config"],
        "resolved": meta0["resolved"],
        "fingerprint": meta0["fingerprint"],
        "inputs": meta0.get("inputs").cloned().unwrap_or(json!({})),
        "shard": { "index": 0, "count": 1 },
        "points_total": total,
        "points_in_shard": total,
        "points_missing": missing,
        "backend": meta0["backend"],
        "batches": [],
        "sessions": [],
        "shards": shard_meta,
        "warnings": warnings,
        "complete": missing == 0,
    });
    // The run's figures over every shard's batches, as a single run computes them.
    let mut meta = meta;
    let batches = || inputs.iter().flat_map(|i| i.meta["batches"].as_array().into_iter().flatten());
    if let Some(d) = dispatches_per_accepted_step(batches()) {
        meta["dispatches_per_accepted_step"] = json!(d);
    }
    if let Some(e) = rhs_evaluations_per_point(batches()) {
        meta["rhs_evaluations_per_point"] = json!(e);
    }
    write_atomic(&out.join(META), serde_json::to_string_pretty(&meta).unwrap_or_default().as_bytes())?;
    drop(locks);
    Ok(MergeSummary { points: done_all.len(), missing, warnings })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_now_is_rfc3339() {
        let s = utc_now();
        assert_eq!(s.len(), 20, "{s}");
        assert!(s.starts_with("20") && s.ends_with('Z'));
    }
}
