//! The output folder: `results.csv`, `meta.json`, `arrays/*.npy` and `progress.txt`.
//!
//! Written as each batch finishes, in an order that makes a kill at any instant harmless:
//! arrays, then the batch's CSV rows (flushed and synced), then the batch's point indices
//! appended to `progress.txt` (flushed and synced), then `meta.json` (replaced
//! atomically). A point counts as done only once it is in `progress.txt`; `--resume`
//! drops every CSV row of a point that is not (a batch cut off mid-write) and redoes it.
//!
//! `results.csv` has one row per sweep point and output time:
//! `point` (the global, shard-independent index), one column per sweep axis, `output`
//! (index of the output time), `t`, `t_reached`, `status` (running/reached/steady/failed),
//! `steps_accepted`, `steps_rejected`, the model's scalar observables, `message` (why a
//! point failed). Floats are written in Rust's shortest round-trip form (`NaN`, `inf`).
//!
//! Arrays are NPY v1.0 files numpy loads directly: `arrays/point_000123_<name>.npy` of
//! shape `(n_outputs, len)` per point; arrays whose name starts with `grid_` are the
//! same for every point and written once as `arrays/<name>.npy` (1-D).

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::config::Plan;
use crate::engine::backend::BackendInfo;
use crate::engine::schedule::Shard;
use crate::{NeqkinError, Result};

/// File names inside an output folder.
pub const RESULTS: &str = "results.csv";
/// Metadata file.
pub const META: &str = "meta.json";
/// Finished point indices, one per line.
pub const PROGRESS: &str = "progress.txt";
/// Array folder.
pub const ARRAYS: &str = "arrays";

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
    Resume,
    /// Delete what our files are there and start over.
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
}

/// An open output folder.
pub struct OutputDir {
    root: PathBuf,
    columns: Vec<String>,
    observables: Vec<String>,
    csv: Option<File>,
    progress: File,
    done: BTreeSet<usize>,
    meta: Value,
}

/// Rejects a non-empty folder unless resuming or forcing; cheap, for the CLI to call
/// before any work (usage error).
pub fn check_folder(root: &Path, mode: OpenMode) -> Result<()> {
    let non_empty = match std::fs::read_dir(root) {
        Ok(mut it) => it.next().is_some(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(NeqkinError::io(root, e)),
    };
    if root.exists() && !root.is_dir() {
        return Err(NeqkinError::output(root, "exists and is not a folder"));
    }
    match mode {
        OpenMode::New if non_empty => Err(NeqkinError::output(
            root,
            "is not empty; use --resume to continue the run there or --force to overwrite it",
        )),
        OpenMode::Resume if non_empty && !root.join(META).exists() => {
            Err(NeqkinError::output(root, format!("has no {META}; it is not a neqkin output folder, cannot resume")))
        }
        _ => Ok(()),
    }
}

/// Writes `text` to `path` atomically (temporary file, then rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).map_err(|e| NeqkinError::io(&tmp, e))?;
    f.write_all(bytes).map_err(|e| NeqkinError::io(&tmp, e))?;
    f.sync_data().map_err(|e| NeqkinError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| NeqkinError::io(path, e))
}

/// Reads the finished point indices of a folder (complete lines only).
pub fn read_progress(root: &Path) -> Result<BTreeSet<usize>> {
    let path = root.join(PROGRESS);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(e) => return Err(NeqkinError::io(&path, e)),
    };
    let mut done = BTreeSet::new();
    for line in text.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
        let l = line.trim();
        if l.is_empty() {
            continue;
        }
        done.insert(l.parse().map_err(|_| NeqkinError::output(&path, format!("bad line `{l}`")))?);
    }
    Ok(done)
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

/// Shortest round-trip form; exponent notation outside `[1e-4, 1e15)` so that small
/// and large values stay short (`3.1e-10`, not `0.00000000031`).
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

fn build_meta(plan: &Plan, shard: Shard, points_in_shard: usize) -> Value {
    json!({
        "neqkin_version": VERSION,
        "git_commit": GIT_COMMIT,
        "git_dirty": GIT_DIRTY,
        "config": plan.raw,
        "resolved": plan.resolved(),
        "fingerprint": plan.fingerprint(),
        "shard": { "index": shard.index, "count": shard.count },
        "points_total": plan.n_points(),
        "points_in_shard": points_in_shard,
        "backend": Value::Null,
        "batches": [],
        "sessions": [],
        "complete": false,
    })
}

impl OutputDir {
    /// Opens (creates, resumes or overwrites) `root` for `plan` run as `shard`.
    ///
    /// On [`OpenMode::Resume`] the recorded config and shard must match; rows of points
    /// not recorded finished are removed from `results.csv`.
    pub fn open(root: &Path, plan: &Plan, shard: Shard, mode: OpenMode) -> Result<OutputDir> {
        check_folder(root, mode)?;
        let points_in_shard = (0..plan.n_points()).filter(|i| shard.contains(*i)).count();
        if mode == OpenMode::Force && root.exists() {
            for f in [RESULTS, META, PROGRESS] {
                let p = root.join(f);
                if p.exists() {
                    std::fs::remove_file(&p).map_err(|e| NeqkinError::io(&p, e))?;
                }
            }
            let a = root.join(ARRAYS);
            if a.exists() {
                std::fs::remove_dir_all(&a).map_err(|e| NeqkinError::io(&a, e))?;
            }
        }
        std::fs::create_dir_all(root.join(ARRAYS)).map_err(|e| NeqkinError::io(root, e))?;
        let resuming = mode == OpenMode::Resume && root.join(META).exists();
        let (meta, done) = if resuming {
            let meta = read_meta(root)?;
            if meta["fingerprint"].as_str() != Some(plan.fingerprint().as_str()) {
                return Err(NeqkinError::output(
                    root,
                    "was written by a different config (model, solver, params or sweep differ); \
                     resume with the original config or use a new folder",
                ));
            }
            let (i, n) = (meta["shard"]["index"].as_u64(), meta["shard"]["count"].as_u64());
            if (i, n) != (Some(shard.index as u64), Some(shard.count as u64)) {
                return Err(NeqkinError::output(
                    root,
                    format!("holds shard {}/{}, not {shard}", i.unwrap_or(0), n.unwrap_or(1)),
                ));
            }
            let done = read_progress(root)?;
            // Drop rows of unfinished points (a batch cut off between rows and progress).
            let (header, rows) = read_rows(root, Some(&done))?;
            if let Some(h) = header {
                let mut text = h + "\n";
                for (_, _, l) in &rows {
                    text.push_str(l);
                    text.push('\n');
                }
                write_atomic(&root.join(RESULTS), text.as_bytes())?;
            }
            (meta, done)
        } else {
            (build_meta(plan, shard, points_in_shard), BTreeSet::new())
        };
        let progress_path = root.join(PROGRESS);
        // Complete a line cut off by a kill so the next append starts on its own line.
        let progress = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&progress_path)
            .map_err(|e| NeqkinError::io(&progress_path, e))?;
        if resuming {
            let text = std::fs::read_to_string(&progress_path).map_err(|e| NeqkinError::io(&progress_path, e))?;
            if !text.is_empty() && !text.ends_with('\n') {
                let mut p = &progress;
                p.write_all(b"\n").map_err(|e| NeqkinError::io(&progress_path, e))?;
            }
        }
        let mut dir = OutputDir {
            root: root.to_path_buf(),
            columns: Vec::new(),
            observables: Vec::new(),
            csv: None,
            progress,
            done,
            meta,
        };
        let now = utc_now();
        if dir.meta.get("started").is_none_or(Value::is_null) {
            dir.meta["started"] = Value::String(now.clone());
        }
        dir.meta["finished"] = Value::Null;
        let session = json!({ "started": now, "finished": Value::Null, "resumed": resuming });
        dir.meta["sessions"].as_array_mut().expect("meta.sessions is an array").push(session);
        dir.write_meta()?;
        Ok(dir)
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Points already finished (recorded in `progress.txt`).
    pub fn done(&self) -> &BTreeSet<usize> {
        &self.done
    }

    /// Fixes the CSV columns (axes, observables) and writes the header, or on resume
    /// checks that the existing header is the same.
    pub fn set_columns(&mut self, axes: &[String], observables: &[String]) -> Result<()> {
        let cols = columns(axes, observables);
        let header = cols.iter().map(|c| csv_field(c)).collect::<Vec<_>>().join(",");
        let path = self.root.join(RESULTS);
        let existing = match std::fs::read_to_string(&path) {
            Ok(t) => t.lines().next().map(str::to_string),
            Err(_) => None,
        };
        let mut f = OpenOptions::new().create(true).append(true).open(&path).map_err(|e| NeqkinError::io(&path, e))?;
        match existing {
            Some(h) if h != header => {
                return Err(NeqkinError::output(
                    &path,
                    format!("existing header `{h}` differs from this run's `{header}`"),
                ))
            }
            Some(_) => {}
            None => {
                f.write_all(format!("{header}\n").as_bytes())
                    .and_then(|_| f.sync_data())
                    .map_err(|e| NeqkinError::io(&path, e))?;
            }
        }
        self.columns = cols;
        self.observables = observables.to_vec();
        self.csv = Some(f);
        Ok(())
    }

    /// Records the backend in `meta.json` (first batch; later ones keep the first).
    pub fn set_backend(&mut self, info: &BackendInfo) -> Result<()> {
        if self.meta["backend"].is_null() {
            self.meta["backend"] = serde_json::to_value(info).unwrap_or(Value::Null);
        }
        Ok(())
    }

    /// Writes one finished batch: arrays, rows (synced), progress (synced), meta.
    pub fn write_batch(
        &mut self,
        rows: &[Row],
        arrays: &[PointArrays],
        record: BatchRecord,
        points: &[usize],
    ) -> Result<()> {
        for pa in arrays {
            for (name, frames) in &pa.arrays {
                if name.starts_with("grid_") {
                    let path = self.root.join(ARRAYS).join(format!("{name}.npy"));
                    if !path.exists() {
                        if let Some(first) = frames.first() {
                            write_npy(&path, &[first.len()], first)?;
                        }
                    }
                    continue;
                }
                let len = frames.first().map_or(0, Vec::len);
                if frames.iter().any(|f| f.len() != len) {
                    return Err(NeqkinError::output(
                        &self.root,
                        format!("array `{name}` of point {} changes length between output times", pa.point),
                    ));
                }
                let flat: Vec<f64> = frames.iter().flatten().copied().collect();
                let path = self.root.join(ARRAYS).join(format!("point_{:06}_{name}.npy", pa.point));
                write_npy(&path, &[frames.len(), len], &flat)?;
            }
        }
        let path = self.root.join(RESULTS);
        let csv =
            self.csv.as_mut().ok_or_else(|| NeqkinError::output(&path, "columns not set before the first batch"))?;
        let mut text = String::new();
        for r in rows {
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
        csv.write_all(text.as_bytes()).and_then(|_| csv.sync_data()).map_err(|e| NeqkinError::io(&path, e))?;
        let mut p = String::new();
        for i in points {
            p.push_str(&format!("{i}\n"));
        }
        let ppath = self.root.join(PROGRESS);
        self.progress
            .write_all(p.as_bytes())
            .and_then(|_| self.progress.sync_data())
            .map_err(|e| NeqkinError::io(&ppath, e))?;
        self.done.extend(points.iter().copied());
        self.meta["batches"]
            .as_array_mut()
            .expect("meta.batches is an array")
            .push(serde_json::to_value(&record).unwrap_or(Value::Null));
        self.write_meta()
    }

    /// Marks the session finished; `complete` when every point of the shard is done.
    pub fn finish(&mut self, complete: bool) -> Result<()> {
        let now = utc_now();
        if let Some(s) = self.meta["sessions"].as_array_mut().and_then(|a| a.last_mut()) {
            s["finished"] = Value::String(now.clone());
        }
        self.meta["finished"] = Value::String(now);
        self.meta["complete"] = Value::Bool(complete);
        self.write_meta()
    }

    fn write_meta(&self) -> Result<()> {
        let text = serde_json::to_string_pretty(&self.meta).unwrap_or_default();
        write_atomic(&self.root.join(META), text.as_bytes())
    }
}

/// Encodes an NPY v1.0 little-endian f64 array of `shape`, C order.
pub fn npy_bytes(shape: &[usize], data: &[f64]) -> Vec<u8> {
    let dims = match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!("({})", shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    };
    let mut header = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {dims}, }}");
    // magic (6) + version (2) + header length (2) + header + '\n', a multiple of 64.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + 8 * data.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for x in data {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

/// Writes an NPY file (see [`npy_bytes`]).
pub fn write_npy(path: &Path, shape: &[usize], data: &[f64]) -> Result<()> {
    debug_assert_eq!(shape.iter().product::<usize>(), data.len());
    std::fs::write(path, npy_bytes(shape, data)).map_err(|e| NeqkinError::io(path, e))
}

/// Parses an NPY v1.0 `<f8` C-order file: (shape, data). Used by tests and `merge`.
pub fn read_npy(bytes: &[u8]) -> std::result::Result<(Vec<usize>, Vec<f64>), String> {
    if bytes.len() < 10 || &bytes[..8] != b"\x93NUMPY\x01\x00" {
        return Err("not an NPY v1.0 file".into());
    }
    let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    if !(10 + hlen).is_multiple_of(64) || bytes.len() < 10 + hlen {
        return Err(format!("header length {hlen} not 64-byte aligned"));
    }
    let header = std::str::from_utf8(&bytes[10..10 + hlen]).map_err(|e| e.to_string())?;
    if !header.ends_with('\n') || !header.contains("'descr': '<f8'") || !header.contains("'fortran_order': False") {
        return Err(format!("unexpected header {header:?}"));
    }
    let shape_txt = header.split("'shape': (").nth(1).and_then(|s| s.split(')').next()).ok_or("no shape")?;
    let shape: Vec<usize> = shape_txt
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| format!("bad shape {shape_txt}")))
        .collect::<std::result::Result<_, _>>()?;
    let body = &bytes[10 + hlen..];
    let n: usize = shape.iter().product();
    if body.len() != 8 * n {
        return Err(format!("{} data bytes for shape {shape:?}", body.len()));
    }
    let data = body.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))).collect();
    Ok((shape, data))
}

/// Summary of a merge.
#[derive(Clone, Debug)]
pub struct MergeSummary {
    /// Points in the merged folder.
    pub points: usize,
    /// Points of the sweep that no shard finished.
    pub missing: usize,
}

/// Joins shard folders into `out`: rows sorted by point and output time, arrays copied,
/// meta listing the shards. Errors if the shards ran different configs, overlap, or have
/// different CSV headers. `out` must be absent or empty (unless `force`).
pub fn merge(out: &Path, shards: &[PathBuf], force: bool) -> Result<MergeSummary> {
    if shards.is_empty() {
        return Err(NeqkinError::output(out, "no shard folders given"));
    }
    check_folder(out, if force { OpenMode::Force } else { OpenMode::New })?;
    let mut first: Option<(PathBuf, Value, String)> = None;
    let mut all_rows: Vec<CsvLine> = Vec::new();
    let mut done_all = BTreeSet::new();
    let mut shard_meta = Vec::new();
    let mut seen_shards = BTreeSet::new();
    for dir in shards {
        let meta = read_meta(dir)?;
        let done = read_progress(dir)?;
        let (header, rows) = read_rows(dir, Some(&done))?;
        let header = header.unwrap_or_default();
        match &first {
            None => first = Some((dir.clone(), meta.clone(), header.clone())),
            Some((d0, m0, h0)) => {
                if m0["fingerprint"] != meta["fingerprint"] {
                    return Err(NeqkinError::output(
                        dir,
                        format!(
                            "was run with a different config than {} (model, solver, params or sweep differ)",
                            d0.display()
                        ),
                    ));
                }
                if m0["shard"]["count"] != meta["shard"]["count"] {
                    return Err(NeqkinError::output(
                        dir,
                        format!(
                            "is a shard of {} but {} is a shard of {}",
                            meta["shard"]["count"],
                            d0.display(),
                            m0["shard"]["count"]
                        ),
                    ));
                }
                if !header.is_empty() && !h0.is_empty() && *h0 != header {
                    return Err(NeqkinError::output(dir, format!("results.csv header differs from {}", d0.display())));
                }
                if h0.is_empty() {
                    first = Some((d0.clone(), m0.clone(), header.clone()));
                }
            }
        }
        let idx = meta["shard"]["index"].as_u64().unwrap_or(0);
        if !seen_shards.insert(idx) {
            return Err(NeqkinError::output(dir, format!("shard {idx} given twice")));
        }
        if let Some(p) = done.iter().find(|p| done_all.contains(*p)) {
            return Err(NeqkinError::output(dir, format!("point {p} is also in another shard")));
        }
        done_all.extend(done.iter().copied());
        all_rows.extend(rows);
        shard_meta.push(json!({
            "dir": dir.display().to_string(),
            "shard": meta["shard"],
            "points_done": done.len(),
            "complete": meta["complete"],
            "backend": meta["backend"],
            "batches": meta["batches"],
            "sessions": meta["sessions"],
            "git_commit": meta["git_commit"],
            "neqkin_version": meta["neqkin_version"],
        }));
    }
    let (_, meta0, header) = first.expect("at least one shard");
    if force && out.exists() {
        for f in [RESULTS, META, PROGRESS] {
            let _ = std::fs::remove_file(out.join(f));
        }
        let _ = std::fs::remove_dir_all(out.join(ARRAYS));
    }
    std::fs::create_dir_all(out.join(ARRAYS)).map_err(|e| NeqkinError::io(out, e))?;
    for dir in shards {
        let src = dir.join(ARRAYS);
        let Ok(entries) = std::fs::read_dir(&src) else { continue };
        for e in entries {
            let e = e.map_err(|e| NeqkinError::io(&src, e))?;
            let name = e.file_name().to_string_lossy().to_string();
            let keep = match name.strip_prefix("point_").and_then(|r| r.split('_').next()) {
                Some(idx) => idx.parse::<usize>().is_ok_and(|i| done_all.contains(&i)),
                None => true,
            };
            if keep && name.ends_with(".npy") {
                let dst = out.join(ARRAYS).join(&name);
                std::fs::copy(e.path(), &dst).map_err(|err| NeqkinError::io(&dst, err))?;
            }
        }
    }
    all_rows.sort_by_key(|(p, o, _)| (*p, *o));
    let mut text = String::new();
    if !header.is_empty() {
        text.push_str(&header);
        text.push('\n');
    }
    for (_, _, l) in &all_rows {
        text.push_str(l);
        text.push('\n');
    }
    write_atomic(&out.join(RESULTS), text.as_bytes())?;
    let mut prog = String::new();
    for p in &done_all {
        prog.push_str(&format!("{p}\n"));
    }
    write_atomic(&out.join(PROGRESS), prog.as_bytes())?;
    let total = meta0["points_total"].as_u64().unwrap_or(0) as usize;
    let missing = total.saturating_sub(done_all.len());
    let meta = json!({
        "neqkin_version": VERSION,
        "git_commit": GIT_COMMIT,
        "git_dirty": GIT_DIRTY,
        "merged": utc_now(),
        "config": meta0["config"],
        "resolved": meta0["resolved"],
        "fingerprint": meta0["fingerprint"],
        "shard": { "index": 0, "count": 1 },
        "points_total": total,
        "points_in_shard": total,
        "points_missing": missing,
        "backend": meta0["backend"],
        "batches": [],
        "sessions": [],
        "shards": shard_meta,
        "complete": missing == 0,
    });
    write_atomic(&out.join(META), serde_json::to_string_pretty(&meta).unwrap_or_default().as_bytes())?;
    Ok(MergeSummary { points: done_all.len(), missing })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_header_is_aligned_and_parses() {
        for shape in [vec![3usize], vec![2, 5], vec![0, 7], vec![1234567, 1]] {
            let n: usize = shape.iter().product();
            let data: Vec<f64> = (0..n.min(20)).map(|i| i as f64 * 0.5).collect();
            if data.len() != n {
                continue;
            }
            let b = npy_bytes(&shape, &data);
            let (s, d) = read_npy(&b).unwrap();
            assert_eq!(s, shape);
            assert_eq!(d, data);
        }
    }

    #[test]
    fn utc_now_is_rfc3339() {
        let s = utc_now();
        assert_eq!(s.len(), 20, "{s}");
        assert!(s.starts_with("20") && s.ends_with('Z'));
    }
}
