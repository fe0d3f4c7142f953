//! Reading an output folder back for drawing: `meta.json` (the config as given, with its
//! `[plot]` panels), `results.csv` (finished points only) and `results.zarr`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::config::raw::{self, RawConfig};
use crate::config::SweepAxis;
use crate::run::{dataset, output};
use crate::{NeqkinError, Result};

/// One line of `results.csv`.
#[derive(Clone, Debug)]
pub struct Row {
    /// Global point index.
    pub point: usize,
    /// Output-time index.
    pub output: usize,
    /// `reached`, `steady`, `stopped`, `failed`, ...
    pub status: String,
    /// Every column parsed as a number (NaN where it is not one), in header order.
    pub values: Vec<f64>,
}

/// An output folder, read.
#[derive(Clone, Debug)]
pub struct RunData {
    /// The folder.
    pub root: PathBuf,
    /// The config as given (from `meta.json`).
    pub config: RawConfig,
    /// Sweep axes with their values (from `meta.json`'s resolved config).
    pub axes: Vec<SweepAxis>,
    /// Output times of a time integration (empty for a direct evaluation).
    pub output_times: Vec<f64>,
    /// `results.csv` header.
    pub header: Vec<String>,
    /// Rows of finished points, sorted by (point, output).
    pub rows: Vec<Row>,
}

/// Columns of `results.csv` that are bookkeeping, not observables.
pub const BOOKKEEPING: &[&str] =
    &["point", "output", "t", "t_reached", "status", "steps_accepted", "steps_rejected", "message"];

impl RunData {
    /// Reads the folder `root`; an error names the folder when it is not a neqkin output.
    pub fn read(root: &Path) -> Result<RunData> {
        let not_output = |why: String| NeqkinError::output(root, format!("not a neqkin output folder: {why}"));
        if !root.is_dir() {
            return Err(not_output("no such folder".into()));
        }
        if !root.join(output::META).is_file() {
            return Err(not_output(format!("it has no {}", output::META)));
        }
        let meta = output::read_meta(root)?;
        let config_tree = meta.get("config").cloned().ok_or_else(|| not_output("meta.json has no `config`".into()))?;
        let config = raw::from_tree(config_tree)
            .map_err(|e| not_output(format!("the config recorded in meta.json does not parse: {e}")))?;
        let axes: Vec<SweepAxis> = serde_json::from_value(meta["resolved"]["sweep"].clone())
            .map_err(|e| not_output(format!("meta.json has no resolved sweep: {e}")))?;
        let output_times: Vec<f64> =
            serde_json::from_value(meta["resolved"]["solver"]["output_times"].clone()).unwrap_or_default();
        let done = output::read_progress(root)?;
        let (header, lines) = output::read_rows(root, Some(&done))?;
        let Some(header) = header else {
            return Err(not_output(format!("it has no {} with a header", output::RESULTS)));
        };
        let header: Vec<String> = split_csv(&header);
        let status_col = header.iter().position(|c| c == "status");
        let mut rows: Vec<Row> = lines
            .into_iter()
            .map(|(point, out, line)| {
                let fields = split_csv(&line);
                Row {
                    point,
                    output: out,
                    status: status_col.and_then(|c| fields.get(c).cloned()).unwrap_or_default(),
                    values: fields.iter().map(|f| f.parse::<f64>().unwrap_or(f64::NAN)).collect(),
                }
            })
            .collect();
        rows.sort_by_key(|r| (r.point, r.output));
        if rows.is_empty() {
            return Err(NeqkinError::output(root, "no finished points to draw (is the run still going?)"));
        }
        Ok(RunData { root: root.to_path_buf(), config, axes, output_times, header, rows })
    }

    /// Index of a column.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|c| c == name)
    }

    /// Scalar observable columns (header minus bookkeeping and sweep axes).
    pub fn observables(&self) -> Vec<String> {
        self.header
            .iter()
            .filter(|c| !BOOKKEEPING.contains(&c.as_str()) && !self.axes.iter().any(|a| &a.name == *c))
            .cloned()
            .collect()
    }

    /// The finished points, in order.
    pub fn points(&self) -> Vec<usize> {
        self.rows.iter().map(|r| r.point).collect::<BTreeSet<_>>().into_iter().collect()
    }

    /// Rows per point, in output order.
    pub fn by_point(&self) -> BTreeMap<usize, Vec<&Row>> {
        let mut m: BTreeMap<usize, Vec<&Row>> = BTreeMap::new();
        for r in &self.rows {
            m.entry(r.point).or_default().push(r);
        }
        m
    }

    /// The last row of every point (the value a sweep plot shows).
    pub fn last_rows(&self) -> Vec<&Row> {
        self.by_point().into_values().filter_map(|v| v.last().copied()).collect()
    }

    /// Sweep values of a point, in axis order (row-major, last axis fastest).
    pub fn axis_values(&self, point: usize) -> Vec<f64> {
        let mut rest = point;
        let mut v = vec![0.0; self.axes.len()];
        for (k, a) in self.axes.iter().enumerate().rev() {
            let n = a.values.len().max(1);
            v[k] = a.values.get(rest % n).copied().unwrap_or(f64::NAN);
            rest /= n;
        }
        v
    }

    /// A model parameter as given in the config (base value; sweeps not applied).
    pub fn param_str(&self, key: &str) -> Option<&str> {
        self.config.params.get(key).and_then(|v| v.as_str())
    }

    /// Reads array `name` of `point` from `results.zarr`: one row per output time (one
    /// row for a static array), cut to the point's own grid length where the sweep changes it.
    pub fn array(&self, point: usize, name: &str) -> Result<Vec<Vec<f64>>> {
        let store = self.root.join(dataset::STORE);
        let missing = || NeqkinError::output(&store, format!("no array `{name}` for point {point}"));
        let m = dataset::var_meta(&store, name).ok_or_else(missing)?;
        let data = dataset::read_point(&store, name, point).ok_or_else(missing)?;
        let len = *m.shape.last().unwrap_or(&0);
        let keep = dataset::point_len(&store, name, point).unwrap_or(len).min(len);
        Ok(data.chunks(len.max(1)).map(|r| r[..keep].to_vec()).collect())
    }

    /// True when array `name` exists for `point` (its own, or a static one shared by all).
    pub fn has_array(&self, point: usize, name: &str) -> bool {
        dataset::read_point(&self.root.join(dataset::STORE), name, point).is_some()
    }
}

/// Splits one CSV line (fields quoted with `"` when they hold a comma or a quote).
pub fn split_csv(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    fields.push(cur);
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_with_quotes_and_commas() {
        assert_eq!(split_csv(r#"1,2.5,"a, ""b""",x"#), vec!["1", "2.5", r#"a, "b""#, "x"]);
        assert_eq!(split_csv("a,,b"), vec!["a", "", "b"]);
    }
}
