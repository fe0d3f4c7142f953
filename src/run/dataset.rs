//! The run's dataset: `results.zarr/`, a Zarr v3 group that xarray opens in one line
//! (`xr.open_zarr(folder / "results.zarr")`), written by hand (metadata JSON and
//! uncompressed little-endian chunks; no Zarr crate).
//!
//! Layout, fixed from the plan before the first batch ([`Layout`]):
//! - coordinates `point` (the global index, `int64`), `time` (output times; `[0]` for a
//!   direct evaluation) and one `float64` array per sweep axis along `point`;
//! - each array a model writes per output time: `float64 (point, time, grid)`, one inner
//!   chunk per point (`(1, T, L)`), inner chunks of consecutive points held together in
//!   shard files of at most [`SHARD_BYTES`] (`sharding_indexed` codec, index at the end, no
//!   compression), so a 64 × 64 sweep writes a few hundred files, not tens of thousands;
//! - each array the model declares static ([`crate::engine::model::Model::static_arrays`],
//!   and every `grid_*` array): `float64 (point, grid)` while the run goes, and once every
//!   point of the folder is finished, if every point's copy is the same, one 1-D array
//!   `(grid)` (the coordinate of its grid dimension) — written once;
//! - when a sweep changes an array's length (a swept `grid_points`, one batch key per
//!   length), the grid dimension has the largest length, shorter points are padded with
//!   NaN, and `int64 n_<dim> (point)` holds each point's own length.
//!
//! Missing inner chunks (points not finished, failed points) read as NaN. Every file is
//! written as a temporary file renamed over the target, so a kill leaves the old or the
//! new shard; the shard bytes depend only on which points it holds and their values, so
//! a folder written in any order (batches, shards, resume, merge) is the same byte for
//! byte.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::run::folder;
use crate::{NeqkinError, Result};

/// The store's folder name inside an output folder.
pub const STORE: &str = "results.zarr";
/// Upper bound of a shard file (inner chunks of consecutive points), in bytes; a shard
/// holds at least one point.
pub const SHARD_BYTES: usize = 4 << 20;
/// Most points in one shard.
pub const SHARD_POINTS_MAX: usize = 4096;

const MISSING: u64 = u64::MAX;

/// A grid dimension: its name, its length (the largest over the sweep) and, when points
/// differ, each point's length.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Dim {
    /// `grid`, `grid_1`, ...
    pub name: String,
    /// Length of the dimension (the largest any point has).
    pub len: usize,
    /// Each point's length when they differ (`n_<name>`), else `None`.
    pub per_point: Option<Vec<i64>>,
}

/// An array variable of the dataset.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Var {
    /// The model's array name.
    pub name: String,
    /// Index into [`Layout::dims`].
    pub dim: usize,
    /// Static: one value per point (no time dimension), shared when equal for all.
    pub is_static: bool,
}

/// What the dataset holds, fixed from the plan before anything runs.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Layout {
    /// Points of the whole sweep (every shard has the full `point` dimension).
    pub points: usize,
    /// Output times (`[0]` for a direct evaluation).
    pub times: Vec<f64>,
    /// Sweep axes: name and each point's value.
    pub axes: Vec<(String, Vec<f64>)>,
    /// Grid dimensions.
    pub dims: Vec<Dim>,
    /// Array variables.
    pub vars: Vec<Var>,
}

/// One group of points with its probed arrays (name, length), `None` when its probe failed.
pub type Probe = (Vec<usize>, Option<Vec<(String, usize)>>);

impl Layout {
    /// Builds the layout from one probe per batch-key group (its points and the arrays its
    /// first point writes). `is_static` tells the static arrays.
    pub fn new(
        points: usize,
        times: Vec<f64>,
        axes: Vec<(String, Vec<f64>)>,
        probes: &[Probe],
        is_static: &dyn Fn(&str) -> bool,
    ) -> Layout {
        let times = if times.is_empty() { vec![0.0] } else { times };
        // Dimensions: one per distinct length in the first probe that has the array.
        let mut vars: Vec<Var> = Vec::new();
        let mut dim_lens: Vec<BTreeMap<usize, usize>> = Vec::new(); // per dim: group → length
        for (g, (_, arrays)) in probes.iter().enumerate() {
            let Some(arrays) = arrays else { continue };
            let mut new_dims: BTreeMap<usize, usize> = BTreeMap::new(); // length → dim, this group
            for (name, len) in arrays {
                let d = match vars.iter().find(|v| &v.name == name) {
                    Some(v) => v.dim,
                    None => {
                        let same_group = (0..dim_lens.len())
                            .find(|&d| dim_lens[d].get(&g) == Some(len))
                            .or(new_dims.get(len).copied());
                        let d = same_group.unwrap_or_else(|| {
                            dim_lens.push(BTreeMap::new());
                            dim_lens.len() - 1
                        });
                        new_dims.insert(*len, d);
                        vars.push(Var { name: name.clone(), dim: d, is_static: is_static(name) });
                        d
                    }
                };
                let e = dim_lens[d].entry(g).or_insert(0);
                *e = (*e).max(*len);
            }
        }
        let dims = dim_lens
            .iter()
            .enumerate()
            .map(|(d, lens)| {
                let name = if d == 0 { "grid".to_string() } else { format!("grid_{d}") };
                let len = lens.values().copied().max().unwrap_or(0);
                let varies = probes.iter().enumerate().any(|(g, _)| lens.get(&g).copied().unwrap_or(0) != len);
                let per_point = varies.then(|| {
                    let mut v = vec![0i64; points];
                    for (g, (pts, _)) in probes.iter().enumerate() {
                        for &p in pts {
                            if p < points {
                                v[p] = lens.get(&g).copied().unwrap_or(0) as i64;
                            }
                        }
                    }
                    v
                });
                Dim { name, len, per_point }
            })
            .collect();
        Layout { points, times, axes, dims, vars }
    }
}

/// Points per shard for inner chunks of `chunk_bytes`.
fn shard_points(chunk_bytes: usize, points: usize) -> usize {
    (SHARD_BYTES / chunk_bytes.max(1)).clamp(1, SHARD_POINTS_MAX).min(points.max(1))
}

fn bytes_codec() -> Value {
    json!({ "name": "bytes", "configuration": { "endian": "little" } })
}

fn array_json(
    shape: &[usize],
    dtype: &str,
    chunk: &[usize],
    inner: Option<&[usize]>,
    dims: &[&str],
    attrs: Value,
) -> Value {
    let codecs = match inner {
        Some(inner) => json!([{
            "name": "sharding_indexed",
            "configuration": {
                "chunk_shape": inner,
                "codecs": [bytes_codec()],
                "index_codecs": [bytes_codec()],
                "index_location": "end",
            }
        }]),
        None => json!([bytes_codec()]),
    };
    json!({
        "zarr_format": 3,
        "node_type": "array",
        "shape": shape,
        "data_type": dtype,
        "chunk_grid": { "name": "regular", "configuration": { "chunk_shape": chunk } },
        "chunk_key_encoding": { "name": "default", "configuration": { "separator": "." } },
        "fill_value": if dtype == "float64" { json!("NaN") } else { json!(0) },
        "codecs": codecs,
        "attributes": attrs,
        "dimension_names": dims,
    })
}

fn pretty(v: &Value) -> Vec<u8> {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s.into_bytes()
}

/// What a variable's `zarr.json` says, as far as the writers and readers need it.
#[derive(Clone, Debug, PartialEq)]
pub struct VarMeta {
    /// Dimension names.
    pub dims: Vec<String>,
    /// Shape.
    pub shape: Vec<usize>,
    /// Points per shard (per-point variables).
    pub shard: usize,
    /// Reals per point (`T·L` or `L`).
    pub point_len: usize,
    /// A per-point variable (`point` first) rather than a shared 1-D one.
    pub per_point: bool,
    /// A static array variable: a grid dimension and no `time` (coordinates such as
    /// `point`, `time` or a sweep axis are not).
    pub is_static: bool,
}

impl VarMeta {
    fn parse(v: &Value) -> Option<VarMeta> {
        let dims: Vec<String> =
            v["dimension_names"].as_array()?.iter().map(|d| d.as_str().map(str::to_string)).collect::<Option<_>>()?;
        let shape: Vec<usize> =
            v["shape"].as_array()?.iter().map(|d| d.as_u64().map(|x| x as usize)).collect::<Option<_>>()?;
        let chunk: Vec<usize> = v["chunk_grid"]["configuration"]["chunk_shape"]
            .as_array()?
            .iter()
            .map(|d| d.as_u64().map(|x| x as usize))
            .collect::<Option<_>>()?;
        let per_point = dims.first().map(String::as_str) == Some("point") && dims.len() > 1;
        Some(VarMeta {
            is_static: !dims.iter().any(|d| d == "time") && dims.iter().any(|d| d.starts_with("grid")),
            point_len: if per_point { shape[1..].iter().product() } else { shape.iter().product() },
            shard: if per_point { chunk[0] } else { 1 },
            dims,
            shape,
            per_point,
        })
    }

    fn chunk_bytes(&self) -> usize {
        8 * self.point_len
    }

    /// Shard file key of `point` (`c.<s>.0.0`).
    fn shard_key(&self, point: usize) -> String {
        let mut k = format!("c.{}", point / self.shard);
        for _ in 1..self.dims.len() {
            k.push_str(".0");
        }
        k
    }
}

/// Reads a variable's metadata (`None` when absent or not ours).
pub fn var_meta(store: &Path, name: &str) -> Option<VarMeta> {
    let text = std::fs::read_to_string(store.join(name).join("zarr.json")).ok()?;
    VarMeta::parse(&serde_json::from_str(&text).ok()?)
}

/// The inner chunks of a shard file: slot → byte range. `None` when the file is not a
/// whole shard of `slots` chunks of `chunk_bytes` (truncated, damaged).
fn shard_index(bytes: &[u8], slots: usize, chunk_bytes: usize) -> Option<BTreeMap<usize, (usize, usize)>> {
    let index_len = 16 * slots;
    if bytes.len() < index_len {
        return None;
    }
    let data_len = bytes.len() - index_len;
    let mut out = BTreeMap::new();
    for (slot, e) in bytes[data_len..].chunks_exact(16).enumerate() {
        let off = u64::from_le_bytes(e[..8].try_into().ok()?);
        let n = u64::from_le_bytes(e[8..].try_into().ok()?);
        if off == MISSING && n == MISSING {
            continue;
        }
        let (off, n) = (off as usize, n as usize);
        if n != chunk_bytes || off.checked_add(n)? > data_len {
            return None;
        }
        out.insert(slot, (off, n));
    }
    Some(out)
}

/// A shard file holding `chunks` (slot → bytes), in slot order, index at the end.
fn shard_bytes(slots: usize, chunks: &BTreeMap<usize, Vec<u8>>) -> Vec<u8> {
    let data: usize = chunks.values().map(Vec::len).sum();
    let mut out = Vec::with_capacity(data + 16 * slots);
    let mut index = vec![(MISSING, MISSING); slots];
    for (&slot, c) in chunks {
        index[slot] = (out.len() as u64, c.len() as u64);
        out.extend_from_slice(c);
    }
    for (o, n) in index {
        out.extend_from_slice(&o.to_le_bytes());
        out.extend_from_slice(&n.to_le_bytes());
    }
    out
}

/// The inner chunks of the shard file at `path` (empty when absent or damaged).
fn read_shard(path: &Path, m: &VarMeta) -> BTreeMap<usize, Vec<u8>> {
    let Ok(bytes) = std::fs::read(path) else { return BTreeMap::new() };
    shard_index(&bytes, m.shard, m.chunk_bytes())
        .map(|idx| idx.into_iter().map(|(s, (o, n))| (s, bytes[o..o + n].to_vec())).collect())
        .unwrap_or_default()
}

fn f64_bytes(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn i64_bytes(v: &[i64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Writes the metadata and the coordinates of `layout` into `store` (created when absent).
/// A static variable already made shared by an earlier session is left as it is.
pub fn write_layout(store: &Path, layout: &Layout) -> Result<()> {
    std::fs::create_dir_all(store).map_err(|e| NeqkinError::io(store, e))?;
    let p = layout.points;
    let t = layout.times.len();
    let mut files: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    let mut coord = |name: &str, dtype: &str, dim: &str, bytes: Vec<u8>, n: usize| -> Result<()> {
        let dir = store.join(name);
        std::fs::create_dir_all(&dir).map_err(|e| NeqkinError::io(&dir, e))?;
        let meta = array_json(&[n], dtype, &[n.max(1)], None, &[dim], json!({}));
        files.push((dir.join("zarr.json"), pretty(&meta)));
        files.push((dir.join("c.0"), bytes));
        Ok(())
    };
    coord("point", "int64", "point", i64_bytes(&(0..p as i64).collect::<Vec<_>>()), p)?;
    coord("time", "float64", "time", f64_bytes(&layout.times), t)?;
    for (name, values) in &layout.axes {
        coord(name, "float64", "point", f64_bytes(values), p)?;
    }
    for d in &layout.dims {
        if let Some(lens) = &d.per_point {
            coord(&format!("n_{}", d.name), "int64", "point", i64_bytes(lens), p)?;
        }
    }
    // Every static variable, axis and length is a coordinate of every array variable.
    let mut coords: Vec<String> = layout.axes.iter().map(|a| a.0.clone()).collect();
    coords.extend(layout.dims.iter().filter(|d| d.per_point.is_some()).map(|d| format!("n_{}", d.name)));
    coords.extend(layout.vars.iter().filter(|v| v.is_static).map(|v| v.name.clone()));
    let attrs = if coords.is_empty() { json!({}) } else { json!({ "coordinates": coords.join(" ") }) };
    for v in &layout.vars {
        let dim = &layout.dims[v.dim];
        let dir = store.join(&v.name);
        std::fs::create_dir_all(&dir).map_err(|e| NeqkinError::io(&dir, e))?;
        let meta = if v.is_static {
            if var_meta(store, &v.name).is_some_and(|m| !m.per_point) {
                continue;
            }
            let s = shard_points(8 * dim.len, p);
            array_json(&[p, dim.len], "float64", &[s, dim.len], Some(&[1, dim.len]), &["point", &dim.name], json!({}))
        } else {
            let s = shard_points(8 * t * dim.len, p);
            array_json(
                &[p, t, dim.len],
                "float64",
                &[s, t, dim.len],
                Some(&[1, t, dim.len]),
                &["point", "time", &dim.name],
                attrs.clone(),
            )
        };
        files.push((dir.join("zarr.json"), pretty(&meta)));
    }
    folder::write_many_atomic(&files)?;
    write_root(store)
}

/// Rewrites the group's `zarr.json` with every array's metadata inline (what xarray
/// reads first: the store opens without listing folders and without a warning).
pub fn write_root(store: &Path) -> Result<()> {
    let mut nodes = serde_json::Map::new();
    for name in var_names(store) {
        let path = store.join(&name).join("zarr.json");
        if let Ok(v) = std::fs::read_to_string(&path)
            .map_err(|_| ())
            .and_then(|t| serde_json::from_str::<Value>(&t).map_err(|_| ()))
        {
            nodes.insert(name, v);
        }
    }
    let root = json!({
        "zarr_format": 3,
        "node_type": "group",
        "attributes": {},
        "consolidated_metadata": { "kind": "inline", "must_understand": false, "metadata": nodes },
    });
    folder::write_atomic(&store.join("zarr.json"), &pretty(&root))
}

/// Names of the arrays in the store (folders with a `zarr.json`), sorted.
pub fn var_names(store: &Path) -> Vec<String> {
    let Ok(it) = std::fs::read_dir(store) else { return Vec::new() };
    let mut v: Vec<String> = it
        .flatten()
        .filter(|e| e.path().join("zarr.json").is_file())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    v.sort();
    v
}

/// One point's values of one variable: `T·L` reals (static: `L`), padded with NaN.
pub type PointValues = (usize, Vec<f64>);

/// The shard files that hold `values` of variable `name` (each merged with what its shard
/// already holds), for [`folder::write_many_atomic`].
pub fn shard_files(store: &Path, name: &str, values: &[PointValues]) -> Result<Vec<(PathBuf, Vec<u8>)>> {
    let m = var_meta(store, name)
        .ok_or_else(|| NeqkinError::output(store, format!("array `{name}` is not in the dataset's layout")))?;
    let m = if m.per_point { m } else { per_point_meta(store, name, &m)? };
    let mut by_shard: BTreeMap<String, Vec<&PointValues>> = BTreeMap::new();
    for pv in values {
        by_shard.entry(m.shard_key(pv.0)).or_default().push(pv);
    }
    let mut files = Vec::new();
    for (key, pvs) in by_shard {
        let path = store.join(name).join(&key);
        let mut chunks = read_shard(&path, &m);
        for (p, v) in pvs {
            if v.len() != m.point_len {
                return Err(NeqkinError::output(
                    store,
                    format!("array `{name}` of point {p} has {} values, the dataset {}", v.len(), m.point_len),
                ));
            }
            chunks.insert(p % m.shard, f64_bytes(v));
        }
        files.push((path, shard_bytes(m.shard, &chunks)));
    }
    Ok(files)
}

/// The per-point form of a static variable that is stored shared.
fn per_point_meta(store: &Path, name: &str, shared: &VarMeta) -> Result<VarMeta> {
    let p = var_meta(store, "point").map(|m| m.shape[0]).unwrap_or(0);
    let len = shared.shape.first().copied().unwrap_or(0);
    let dim = shared.dims.first().cloned().unwrap_or_else(|| "grid".into());
    VarMeta::parse(&per_point_json(p, len, &dim))
        .ok_or_else(|| NeqkinError::output(store, format!("array `{name}`: unusable metadata")))
}

/// `zarr.json` of a static variable stored per point (`points` × `len` along `dim`).
pub fn per_point_bytes(points: usize, len: usize, dim: &str) -> Vec<u8> {
    pretty(&per_point_json(points, len, dim))
}

fn per_point_json(p: usize, len: usize, dim: &str) -> Value {
    let s = shard_points(8 * len, p);
    array_json(&[p, len], "float64", &[s, len], Some(&[1, len]), &["point", dim], json!({}))
}

/// Caches parsed shard indices while checking many points.
#[derive(Default)]
pub struct Checker {
    shards: BTreeMap<PathBuf, Option<BTreeSet<usize>>>,
    metas: BTreeMap<String, Option<VarMeta>>,
    damaged_shared: BTreeSet<String>,
}

impl Checker {
    /// Why array `name` of `point` is not whole in the store (`None`: it is). A static
    /// variable stored shared counts for every point when its one chunk is whole; when it
    /// is damaged, only the first point asked about is sent back (its batch writes the
    /// values again, and the run's end stores them shared once more).
    pub fn check(&mut self, store: &Path, name: &str, point: usize) -> Option<String> {
        let m = self.metas.entry(name.to_string()).or_insert_with(|| var_meta(store, name)).clone();
        let Some(m) = m else { return Some(format!("{STORE}/{name}: no such array")) };
        let one = |path: PathBuf, shard: &mut BTreeMap<PathBuf, Option<BTreeSet<usize>>>, m: &VarMeta| {
            shard
                .entry(path.clone())
                .or_insert_with(|| {
                    let bytes = std::fs::read(&path).ok()?;
                    Some(shard_index(&bytes, m.shard, m.chunk_bytes())?.into_keys().collect())
                })
                .clone()
        };
        if !m.per_point {
            let path = store.join(name).join("c.0");
            let whole = std::fs::metadata(&path).is_ok_and(|f| f.len() as usize == m.chunk_bytes());
            if whole {
                return None;
            }
            let pm = per_point_meta(store, name, &m).ok()?;
            let slots = one(store.join(name).join(pm.shard_key(point)), &mut self.shards, &pm);
            return match slots {
                Some(s) if s.contains(&(point % pm.shard)) => None,
                _ if !self.damaged_shared.insert(name.to_string()) => None,
                _ => Some(format!("{STORE}/{name}/c.0: missing or truncated")),
            };
        }
        let key = m.shard_key(point);
        match one(store.join(name).join(&key), &mut self.shards, &m) {
            None => Some(format!("{STORE}/{name}/{key}: missing or damaged")),
            Some(s) if !s.contains(&(point % m.shard)) => {
                Some(format!("{STORE}/{name}/{key}: point {point} not in it"))
            }
            Some(_) => None,
        }
    }
}

/// Removes from every per-point shard the points not in `keep` (a batch cut short), and
/// temporary files.
pub fn prune(store: &Path, keep: &BTreeSet<usize>) -> Result<()> {
    for name in var_names(store) {
        let dir = store.join(&name);
        let Some(m) = var_meta(store, &name) else { continue };
        let Ok(it) = std::fs::read_dir(&dir) else { continue };
        let mut entries: Vec<String> = it.flatten().map(|e| e.file_name().to_string_lossy().to_string()).collect();
        entries.sort();
        for f in entries {
            let path = dir.join(&f);
            if folder::is_tmp_name(&f) {
                folder::remove_file(&path)?;
                continue;
            }
            let Some(s) = f.strip_prefix("c.").and_then(|r| r.split('.').next()).and_then(|s| s.parse::<usize>().ok())
            else {
                continue;
            };
            let pm = if m.per_point {
                m.clone()
            } else if m.is_static && f != "c.0" {
                per_point_meta(store, &name, &m)?
            } else {
                continue;
            };
            let chunks = read_shard(&path, &pm);
            let kept: BTreeMap<usize, Vec<u8>> = chunks
                .iter()
                .filter(|(slot, _)| keep.contains(&(s * pm.shard + **slot)))
                .map(|(k, v)| (*k, v.clone()))
                .collect();
            if kept.is_empty() {
                folder::remove_file(&path)?;
            } else if kept.len() != chunks.len() {
                folder::write_atomic(&path, &shard_bytes(pm.shard, &kept))?;
            }
        }
    }
    Ok(())
}

/// One point's values of variable `name` (`T·L` reals, or `L` for a static one), `None`
/// when the store does not hold them.
pub fn read_point(store: &Path, name: &str, point: usize) -> Option<Vec<f64>> {
    let m = var_meta(store, name)?;
    let bytes = if m.per_point {
        read_shard(&store.join(name).join(m.shard_key(point)), &m).remove(&(point % m.shard))?
    } else {
        match std::fs::read(store.join(name).join("c.0")) {
            Ok(b) if b.len() == m.chunk_bytes() => b,
            _ => {
                let pm = per_point_meta(store, name, &m).ok()?;
                read_shard(&store.join(name).join(pm.shard_key(point)), &pm).remove(&(point % pm.shard))?
            }
        }
    };
    Some(bytes.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))).collect())
}

/// Each point's length along the grid dimension of `name` (`None`: all have the full one).
pub fn point_len(store: &Path, name: &str, point: usize) -> Option<usize> {
    let m = var_meta(store, name)?;
    let dim = m.dims.last()?;
    let bytes = std::fs::read(store.join(format!("n_{dim}")).join("c.0")).ok()?;
    let b = bytes.get(8 * point..8 * point + 8)?;
    Some(i64::from_le_bytes(b.try_into().ok()?).max(0) as usize)
}

/// Static variables: once `points` (finished points with the variables they wrote) are
/// all the folder will hold, stores each static variable shared (`(grid)`, one chunk) when
/// every point that wrote it wrote the same values, else per point. `values` overrides
/// what the store holds for some points (merge: values read from the inputs).
pub fn settle_static(
    store: &Path,
    points: &BTreeMap<usize, Vec<String>>,
    values: Option<&BTreeMap<String, BTreeMap<usize, Vec<f64>>>>,
) -> Result<()> {
    for name in var_names(store) {
        let Some(m) = var_meta(store, &name) else { continue };
        if !m.is_static {
            continue;
        }
        let holders: Vec<usize> = points.iter().filter(|(_, a)| a.contains(&name)).map(|(p, _)| *p).collect();
        let mut vals: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
        for &p in &holders {
            let v = match values.and_then(|v| v.get(&name)).and_then(|v| v.get(&p)) {
                Some(v) => Some(v.clone()),
                None => read_point(store, &name, p),
            };
            if let Some(v) = v {
                vals.insert(p, v);
            }
        }
        let first = vals.values().next().cloned();
        let same = first.as_ref().is_some_and(|f| vals.values().all(|v| f64_bytes(v) == f64_bytes(f)));
        let dir = store.join(&name);
        let pm = if m.per_point { m.clone() } else { per_point_meta(store, &name, &m)? };
        let len = pm.point_len;
        let dim = pm.dims.last().cloned().unwrap_or_else(|| "grid".into());
        let old: Vec<String> = std::fs::read_dir(&dir)
            .map(|it| {
                it.flatten()
                    .map(|e| e.file_name().to_string_lossy().to_string())
                    .filter(|f| f.starts_with("c."))
                    .collect()
            })
            .unwrap_or_default();
        if same {
            let f = first.expect("same implies a value");
            folder::write_atomic(&dir.join("c.0"), &f64_bytes(&f))?;
            let meta = array_json(&[len], "float64", &[len.max(1)], None, &[&dim], json!({}));
            folder::write_atomic(&dir.join("zarr.json"), &pretty(&meta))?;
            for f in old.iter().filter(|f| f.as_str() != "c.0") {
                folder::remove_file(&dir.join(f))?;
            }
        } else {
            let p_total = pm.shape[0];
            folder::write_atomic(&dir.join("zarr.json"), &pretty(&per_point_json(p_total, len, &dim)))?;
            let pv: Vec<PointValues> = vals.into_iter().collect();
            let mut files = Vec::new();
            let mut by_shard: BTreeMap<String, BTreeMap<usize, Vec<u8>>> = BTreeMap::new();
            for (p, v) in &pv {
                by_shard.entry(pm.shard_key(*p)).or_default().insert(p % pm.shard, f64_bytes(v));
            }
            for (key, chunks) in &by_shard {
                files.push((dir.join(key), shard_bytes(pm.shard, chunks)));
            }
            folder::write_many_atomic(&files)?;
            for f in old.iter().filter(|f| !by_shard.contains_key(f.as_str())) {
                folder::remove_file(&dir.join(f))?;
            }
        }
    }
    write_root(store)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_round_trip_and_damage() {
        let mut chunks = BTreeMap::new();
        chunks.insert(0, f64_bytes(&[1.0, 2.0]));
        chunks.insert(2, f64_bytes(&[3.0, f64::NAN]));
        let b = shard_bytes(4, &chunks);
        assert_eq!(b.len(), 32 + 64);
        let idx = shard_index(&b, 4, 16).unwrap();
        assert_eq!(idx.keys().copied().collect::<Vec<_>>(), vec![0, 2]);
        assert_eq!(idx[&2], (16, 16));
        assert!(shard_index(&b[..b.len() - 1], 4, 16).is_none());
        assert!(shard_index(&b[1..], 4, 16).is_none());
        assert!(shard_index(&[], 4, 16).is_none());
    }

    #[test]
    fn layout_pads_varying_grids() {
        let probes: Vec<Probe> = vec![
            (vec![0, 2], Some(vec![("y".into(), 8), ("grid_x".into(), 8)])),
            (vec![1], Some(vec![("y".into(), 16), ("grid_x".into(), 16)])),
        ];
        let l = Layout::new(3, vec![1.0], vec![], &probes, &|n: &str| n.starts_with("grid_"));
        assert_eq!(l.dims.len(), 1);
        assert_eq!(l.dims[0].len, 16);
        assert_eq!(l.dims[0].per_point, Some(vec![8, 16, 8]));
        assert!(l.vars.iter().any(|v| v.name == "grid_x" && v.is_static));
        let same = Layout::new(3, vec![], vec![], &probes[..1], &|_: &str| false);
        assert_eq!(same.dims[0].per_point, None);
        assert_eq!(same.times, vec![0.0]);
    }
}
