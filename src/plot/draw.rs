//! Drawing the panels with plotters into a PNG (bitmap backend, the embedded DejaVu Sans).

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::config::raw::{PlotKind, PlotOutputs, RawPlot};
use crate::{NeqkinError, Result};

use super::data::{Row, RunData, BOOKKEEPING};
use super::spec::label;

/// DejaVu Sans (Bitstream Vera licence, `assets/fonts/DejaVuSans-LICENSE.txt`), so that
/// drawing needs no system fonts.
static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for style in [FontStyle::Normal, FontStyle::Bold, FontStyle::Italic, FontStyle::Oblique] {
            // The embedded file is a valid TrueType font; a failure here is a build defect
            // that the plot tests catch (no text would be drawn).
            let _ = plotters::style::register_font(FAMILY, style, FONT);
        }
    });
}

/// Pixel size of a picture with `panels` panels: one panel 1000 × 690, more in two
/// columns of 800 × 580 cells, plus a 40-pixel heading.
pub fn figure_size(panels: usize) -> (u32, u32) {
    if panels <= 1 {
        (1000, 690)
    } else {
        (1600, 40 + 580 * panels.div_ceil(2) as u32)
    }
}

/// Ten distinguishable colours (matplotlib's tab10).
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Palette index of grey (references shared by all curves).
const GREY: usize = 7;

/// Same abscissae and values to 1e-12 relative.
fn same_points(a: &[(f64, f64)], b: &[(f64, f64)]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(p, q)| p.0 == q.0 && (p.1 == q.1 || (p.1 - q.1).abs() <= 1e-12 * p.1.abs().max(q.1.abs())))
}

/// Curves at most per panel; more points are thinned evenly (said in the panel title).
const MAX_CURVES: usize = 10;

/// One curve.
struct Series {
    label: Option<String>,
    points: Vec<(f64, f64)>,
    colour: usize,
    dashed: bool,
    markers: bool,
}

fn plot_err(e: impl std::fmt::Display) -> NeqkinError {
    NeqkinError::Output { path: "<picture>".into(), reason: format!("drawing failed: {e}") }
}

/// Numbers in labels: four significant digits, exponent form outside [1e-3, 1e5).
pub fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 {
        "0".into()
    } else if !(1e-3..1e5).contains(&a) {
        format!("{v:.3e}")
    } else {
        let digits = (3 - a.log10().floor() as i32).max(0) as usize;
        let s = format!("{v:.digits$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    }
}

/// A tick label on an axis spanning `(lo, hi)`: values within 1e-9 of the span of zero are
/// rounding residue of the tick arithmetic (`-1.110e-16`) and shown as `0`.
fn tick(v: f64, (lo, hi): (f64, f64)) -> String {
    if v.abs() <= 1e-9 * (hi - lo).abs() {
        "0".into()
    } else {
        fmt_num(v)
    }
}

/// Evenly spaced choice of at most `n` items, keeping the first and the last.
fn thin<T: Clone>(items: &[T], n: usize) -> Vec<T> {
    if items.len() <= n {
        return items.to_vec();
    }
    (0..n).map(|i| items[i * (items.len() - 1) / (n - 1)].clone()).collect()
}

struct Ctx<'a> {
    run: &'a RunData,
    model: String,
    unit: String,
}

impl Ctx<'_> {
    fn label(&self, name: &str) -> String {
        label(&self.model, &self.unit, name)
    }
    /// Symbol part of a label (without a trailing unit in parentheses; an equation
    /// reference such as "(Eq. 10)" stays), for legends.
    fn symbol(&self, name: &str) -> String {
        if let Some(l) = super::spec::legend(&self.model, name) {
            return l;
        }
        let l = self.label(name);
        let Some(i) = l.rfind(" (").filter(|_| l.ends_with(')')) else { return l };
        let inner = &l[i + 2..];
        let reference = inner.starts_with("Eq")
            || inner.starts_with(|c: char| c.is_ascii_digit())
            || (inner.starts_with('S') && inner[1..].starts_with(|c: char| c.is_ascii_digit()));
        if reference {
            l
        } else {
            l[..i].to_string()
        }
    }
    /// "ζ = 20, T / W = 0.003" for a point, skipping the axes in `skip`.
    fn point_label(&self, point: usize, skip: &[&str]) -> String {
        let values = self.run.axis_values(point);
        let parts: Vec<String> = self
            .run
            .axes
            .iter()
            .zip(values)
            .filter(|(a, _)| !skip.contains(&a.name.as_str()))
            .map(|(a, v)| format!("{} = {}", self.symbol(&a.name), fmt_num(v)))
            .collect();
        if parts.is_empty() {
            format!("point {point}")
        } else {
            parts.join(", ")
        }
    }
    fn col(&self, field: &str, name: &str) -> Result<usize> {
        self.run.column(name).ok_or_else(|| {
            NeqkinError::invalid(
                field,
                format!(
                    "`{name}` is not a column of {} (observables: {})",
                    self.run.root.join("results.csv").display(),
                    self.run.observables().join(", ")
                ),
            )
        })
    }
}

/// Draws `panels` of `run` into `png`.
pub fn draw(run: &RunData, panels: &[RawPlot], png: &Path) -> Result<()> {
    register_font();
    let (w, h) = figure_size(panels.len());
    let root = BitMapBackend::new(png, (w, h)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let unit = match run.param_str("units") {
        Some("input") => "input unit".to_string(),
        _ => "units of g".to_string(),
    };
    let ctx = Ctx { run, model: run.config.model.clone(), unit };
    let heading = format!(
        "{} — model {}{}",
        run.config.title.clone().unwrap_or_else(|| run
            .root
            .file_name()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default()),
        run.config.model,
        failed_note(run)
    );
    let body = if panels.len() > 1 {
        let (head, body) = root.split_vertically(40);
        head.draw(&Text::new(heading, (20, 10), (FAMILY, 22).into_font())).map_err(plot_err)?;
        body
    } else {
        root.clone()
    };
    let cells = if panels.len() > 1 { body.split_evenly((panels.len().div_ceil(2), 2)) } else { vec![body] };
    for (i, (panel, area)) in panels.iter().zip(cells.iter()).enumerate() {
        let field = if panels.len() > 1 { format!("plot[{i}]") } else { "plot".to_string() };
        let title = panel.title.clone().unwrap_or_default();
        let title = if panels.len() == 1 {
            let run_title = run.config.title.clone().unwrap_or_else(|| run.config.model.clone());
            if title.is_empty() {
                format!("{run_title}{}", failed_note(run))
            } else {
                format!("{run_title}: {title}{}", failed_note(run))
            }
        } else {
            title
        };
        match panel.kind {
            PlotKind::Sweep => {
                let series = sweep_series(&ctx, panel, &field)?;
                xy_panel(&ctx, area, panel, &title, &series)?
            }
            PlotKind::Time => {
                let (series, note) = time_series(&ctx, panel, &field)?;
                xy_panel(&ctx, area, panel, &format!("{title}{note}"), &series)?
            }
            PlotKind::Profile => {
                let (series, note) = profile_series(&ctx, panel, &field)?;
                xy_panel(&ctx, area, panel, &format!("{title}{note}"), &series)?
            }
            PlotKind::Heatmap => heatmap(&ctx, area, panel, &title, &field)?,
            PlotKind::Table => table(&ctx, area, panel, &title, &field)?,
        }
    }
    root.present().map_err(|e| NeqkinError::output(png, format!("cannot write the picture: {e}")))?;
    Ok(())
}

fn failed_note(run: &RunData) -> String {
    let failed = run.last_rows().iter().filter(|r| r.status == "failed").count();
    if failed == 0 {
        String::new()
    } else {
        format!(" ({failed} of {} points failed)", run.points().len())
    }
}

/// Scalar observables at the last output time against the sweep axis `x`.
fn sweep_series(ctx: &Ctx, panel: &RawPlot, field: &str) -> Result<Vec<Series>> {
    let run = ctx.run;
    let x = panel.x.as_deref().unwrap_or_default();
    let xi =
        run.axes.iter().position(|a| a.name == x).ok_or_else(|| {
            NeqkinError::invalid(format!("{field}.x"), format!("`{x}` is not a sweep axis of this run"))
        })?;
    // Curves: one per combination of the other axes, the hue axis first in the label.
    let mut others: Vec<usize> = (0..run.axes.len()).filter(|&k| k != xi).collect();
    if let Some(h) = &panel.hue {
        if let Some(hk) = run.axes.iter().position(|a| &a.name == h) {
            others.retain(|&k| k != hk);
            others.insert(0, hk);
        }
    }
    let last = run.last_rows();
    let mut groups: Vec<(Vec<f64>, Vec<&Row>)> = Vec::new();
    for r in last {
        let v = run.axis_values(r.point);
        let key: Vec<f64> = others.iter().map(|&k| v[k]).collect();
        match groups.iter_mut().find(|(k, _)| k == &key) {
            Some((_, rows)) => rows.push(r),
            None => groups.push((key, vec![r])),
        }
    }
    let groups = thin(&groups, MAX_CURVES);
    let mut out: Vec<Series> = Vec::new();
    let mut shared_refs: Vec<(String, Vec<(f64, f64)>, usize)> = Vec::new();
    let n_y = panel.y.len();
    for (gi, (key, rows)) in groups.iter().enumerate() {
        let group_label: Vec<String> = others
            .iter()
            .zip(key)
            .map(|(&k, v)| format!("{} = {}", ctx.symbol(&run.axes[k].name), fmt_num(*v)))
            .collect();
        for (yi, y) in panel.y.iter().enumerate() {
            let colour = if groups.len() > 1 { gi } else { yi };
            let mut lines = vec![(y.clone(), false)];
            if let Some(r) = panel.reference.get(y) {
                lines.push((r.clone(), true));
            }
            for (name, dashed) in lines {
                let c = ctx.col(&format!("{field}.{}", if dashed { "reference" } else { "y" }), &name)?;
                let mut pts: Vec<(f64, f64)> = rows
                    .iter()
                    .filter(|r| r.status != "failed")
                    .map(|r| (run.axis_values(r.point)[xi], r.values[c]))
                    .collect();
                pts.sort_by(|a, b| a.0.total_cmp(&b.0));
                // A reference that does not depend on the other axes (Eq 10 is the large-ζ
                // estimate, the same for every ζ) is drawn once, in grey, without the group.
                if dashed && groups.len() > 1 {
                    if let Some((_, _, k)) = shared_refs.iter().find(|(n, p, _)| *n == name && same_points(p, &pts)) {
                        out[*k].colour = GREY;
                        out[*k].label = Some(ctx.symbol(&name));
                        continue;
                    }
                    shared_refs.push((name.clone(), pts.clone(), out.len()));
                }
                let mut parts = Vec::new();
                if n_y > 1 || dashed || groups.len() == 1 {
                    parts.push(ctx.symbol(&name));
                }
                parts.extend(group_label.iter().cloned());
                out.push(Series {
                    label: Some(parts.join(", ")),
                    markers: pts.len() <= 40,
                    points: pts,
                    colour,
                    dashed,
                });
            }
        }
    }
    Ok(out)
}

/// Scalar observables against time (or against another column, `x`), one curve per point.
fn time_series(ctx: &Ctx, panel: &RawPlot, field: &str) -> Result<(Vec<Series>, String)> {
    let run = ctx.run;
    let x = panel.x.clone().unwrap_or_else(|| "t".to_string());
    let xc = ctx.col(&format!("{field}.x"), &x)?;
    let by_point = run.by_point();
    let points: Vec<usize> = by_point.keys().copied().collect();
    let shown = thin(&points, MAX_CURVES);
    let mut out = Vec::new();
    for (pi, p) in shown.iter().enumerate() {
        for (yi, y) in panel.y.iter().enumerate() {
            let colour = if shown.len() > 1 { pi } else { yi };
            let mut lines = vec![(y.clone(), false)];
            if let Some(r) = panel.reference.get(y) {
                lines.push((r.clone(), true));
            }
            for (name, dashed) in lines {
                let c = ctx.col(&format!("{field}.{}", if dashed { "reference" } else { "y" }), &name)?;
                let pts: Vec<(f64, f64)> =
                    by_point[p].iter().filter(|r| r.status != "failed").map(|r| (r.values[xc], r.values[c])).collect();
                let mut parts = Vec::new();
                if panel.y.len() > 1 || dashed || shown.len() == 1 {
                    parts.push(ctx.symbol(&name));
                }
                if shown.len() > 1 || !run.axes.is_empty() {
                    parts.push(ctx.point_label(*p, &[]));
                }
                out.push(Series {
                    label: Some(parts.join(", ")),
                    markers: pts.len() <= 3,
                    points: pts,
                    colour,
                    dashed,
                });
            }
        }
    }
    let note = if shown.len() < points.len() {
        format!(" ({} of {} points)", shown.len(), points.len())
    } else {
        String::new()
    };
    Ok((out, note))
}

/// Arrays against an array (`x`, or `index`), per point, at the chosen output times.
fn profile_series(ctx: &Ctx, panel: &RawPlot, field: &str) -> Result<(Vec<Series>, String)> {
    let run = ctx.run;
    let x = panel.x.as_deref().unwrap_or("index");
    let points = run.points();
    let shown = thin(&points, MAX_CURVES);
    let all = panel.outputs.unwrap_or(if shown.len() == 1 { PlotOutputs::All } else { PlotOutputs::Last })
        == PlotOutputs::All;
    let by_point = run.by_point();
    let mut out: Vec<Series> = Vec::new();
    let mut shared_refs: Vec<(String, Vec<(f64, f64)>, usize)> = Vec::new();
    let mut colour = 0;
    let mut thinned_outputs = false;
    for p in &shown {
        let rows = &by_point[p];
        let failed = rows.iter().any(|r| r.status == "failed");
        let outputs: Vec<usize> = if all { (0..rows.len()).collect() } else { vec![rows.len().saturating_sub(1)] };
        let per_output = MAX_CURVES.max(1) / (shown.len() * panel.y.len()).max(1);
        let outputs_shown = thin(&outputs, per_output.clamp(1, 8));
        thinned_outputs |= outputs_shown.len() < outputs.len();
        for k in outputs_shown {
            for y in &panel.y {
                let mut lines = vec![(y.clone(), false)];
                if let Some(r) = panel.reference.get(y) {
                    lines.push((r.clone(), true));
                }
                for (name, dashed) in lines {
                    if !run.has_array(*p, &name) {
                        return Err(NeqkinError::invalid(
                            format!("{field}.{}", if dashed { "reference" } else { "y" }),
                            format!("no array `{name}` for point {p} in {}/arrays", run.root.display()),
                        ));
                    }
                    let ys = run.array(*p, &name)?;
                    let yrow = ys.get(k).or(ys.last()).cloned().unwrap_or_default();
                    let xrow: Vec<f64> = if x == "index" {
                        (0..yrow.len()).map(|i| i as f64).collect()
                    } else {
                        if !run.has_array(*p, x) {
                            return Err(NeqkinError::invalid(
                                format!("{field}.x"),
                                format!("no array `{x}` for point {p} in {}/arrays", run.root.display()),
                            ));
                        }
                        let xs = run.array(*p, x)?;
                        xs.get(k).or(xs.last()).cloned().unwrap_or_default()
                    };
                    let pts: Vec<(f64, f64)> = xrow.into_iter().zip(yrow).collect();
                    // A reference the same for every point (F0 does not depend on ε_k) is
                    // drawn once, in grey.
                    if dashed {
                        if let Some((_, _, k)) = shared_refs.iter().find(|(n, p, _)| *n == name && same_points(p, &pts))
                        {
                            out[*k].colour = GREY;
                            out[*k].label = Some(ctx.symbol(&name));
                            continue;
                        }
                        shared_refs.push((name.clone(), pts.clone(), out.len()));
                    }
                    let mut parts = Vec::new();
                    if panel.y.len() > 1 || dashed {
                        parts.push(ctx.symbol(&name));
                    }
                    if !run.axes.is_empty() && (shown.len() > 1 || !all) {
                        parts.push(ctx.point_label(*p, &[]));
                    }
                    if all && run.output_times.len() > 1 {
                        let t = rows.get(k).and_then(|r| run.column("t").map(|c| r.values[c])).unwrap_or(f64::NAN);
                        parts.push(format!("{} = {}", ctx.symbol("t"), fmt_num(t)));
                    }
                    if failed {
                        parts.push("failed".into());
                    }
                    if parts.is_empty() {
                        parts.push(ctx.symbol(&name));
                    }
                    out.push(Series { label: Some(parts.join(", ")), markers: false, points: pts, colour, dashed });
                }
                colour += 1;
            }
        }
    }
    let mut note = String::new();
    if shown.len() < points.len() {
        note.push_str(&format!(" ({} of {} points)", shown.len(), points.len()));
    }
    if thinned_outputs {
        note.push_str(" (output times thinned)");
    }
    Ok((out, note))
}

/// Finite range of the values, padded by 5 % (never empty).
fn range(vals: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in vals.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo <= 1e-12 * hi.abs().max(lo.abs()).max(1e-300) {
        let d = if lo == 0.0 { 1.0 } else { 0.1 * lo.abs() };
        return (lo - d, hi + d);
    }
    let pad = 0.05 * (hi - lo);
    (lo - pad, hi + pad)
}

fn log_values(series: &mut [Series], log_x: bool, log_y: bool) {
    for s in series {
        for p in &mut s.points {
            if log_x {
                p.0 = if p.0 > 0.0 { p.0.log10() } else { f64::NAN };
            }
            if log_y {
                p.1 = if p.1 > 0.0 { p.1.log10() } else { f64::NAN };
            }
        }
    }
}

/// Corner of the plot with the fewest data points, for the legend.
fn legend_corner(series: &[Series], (x0, x1): (f64, f64), (y0, y1): (f64, f64)) -> SeriesLabelPosition {
    let mut count = [0usize; 4];
    for s in series {
        for &(x, y) in &s.points {
            if !(x.is_finite() && y.is_finite()) {
                continue;
            }
            let right = x > x0 + 0.55 * (x1 - x0);
            let left = x < x0 + 0.45 * (x1 - x0);
            let top = y > y0 + 0.5 * (y1 - y0);
            let bottom = !top;
            for (i, hit) in [top && right, top && left, bottom && right, bottom && left].iter().enumerate() {
                if *hit {
                    count[i] += 1;
                }
            }
        }
    }
    let best = (0..4).min_by_key(|&i| (count[i], i)).unwrap_or(0);
    [
        SeriesLabelPosition::UpperRight,
        SeriesLabelPosition::UpperLeft,
        SeriesLabelPosition::LowerRight,
        SeriesLabelPosition::LowerLeft,
    ][best]
        .clone()
}

fn axis_label(ctx: &Ctx, names: &[String], log: bool) -> String {
    let mut seen: Vec<String> = Vec::new();
    for n in names {
        let l = ctx.label(n);
        if !seen.contains(&l) {
            seen.push(l);
        }
    }
    let l = seen.join(";  ");
    if log {
        format!("log₁₀ {l}")
    } else {
        l
    }
}

fn xy_panel(
    ctx: &Ctx,
    area: &DrawingArea<BitMapBackend, Shift>,
    panel: &RawPlot,
    title: &str,
    series: &[Series],
) -> Result<()> {
    let mut series: Vec<Series> = series
        .iter()
        .map(|s| Series {
            label: s.label.clone(),
            points: s.points.clone(),
            colour: s.colour,
            dashed: s.dashed,
            markers: s.markers,
        })
        .collect();
    if let Some([lo, hi]) = panel.x_range {
        for s in &mut series {
            s.points.retain(|p| p.0 >= lo && p.0 <= hi);
        }
    }
    log_values(&mut series, panel.log_x, panel.log_y);
    let xr = match panel.x_range {
        Some([lo, hi]) if !panel.log_x => (lo, hi),
        Some([lo, hi]) if lo > 0.0 => (lo.log10(), hi.log10()),
        _ => range(series.iter().flat_map(|s| s.points.iter().map(|p| p.0))),
    };
    let yr = range(series.iter().flat_map(|s| s.points.iter().map(|p| p.1)));
    let x_name =
        panel.x.clone().unwrap_or_else(|| if panel.kind == PlotKind::Profile { "index".into() } else { "t".into() });
    let x_label = if x_name == "index" && panel.y.iter().all(|y| y == "gamma") {
        "eigenvalue index i (γ ascending)".to_string()
    } else {
        axis_label(ctx, std::slice::from_ref(&x_name), panel.log_x)
    };
    let y_label = axis_label(ctx, &panel.y, panel.log_y);
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FAMILY, 22))
        .margin(18)
        .x_label_area_size(55)
        .y_label_area_size(85)
        .build_cartesian_2d(xr.0..xr.1, yr.0..yr.1)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .x_label_formatter(&|v| tick(*v, xr))
        .y_label_formatter(&|v| tick(*v, yr))
        .label_style((FAMILY, 16))
        .axis_desc_style((FAMILY, 19))
        .light_line_style(RGBColor(235, 235, 235))
        .bold_line_style(RGBColor(215, 215, 215))
        .draw()
        .map_err(plot_err)?;
    // A zero line when the range crosses zero (negative conductivity, Δ re/im, …).
    if yr.0 < 0.0 && yr.1 > 0.0 {
        chart
            .draw_series(LineSeries::new(vec![(xr.0, 0.0), (xr.1, 0.0)], BLACK.mix(0.5).stroke_width(1)))
            .map_err(plot_err)?;
    }
    let mut labelled = 0;
    for s in &series {
        let colour = PALETTE[s.colour % PALETTE.len()];
        // Break lines at non-finite values.
        let segments: Vec<Vec<(f64, f64)>> = s
            .points
            .split(|p| !(p.0.is_finite() && p.1.is_finite()))
            .filter(|seg| !seg.is_empty())
            .map(<[(f64, f64)]>::to_vec)
            .collect();
        let style = colour.stroke_width(if s.dashed { 2 } else { 3 });
        let mut first = true;
        for seg in segments {
            let anno = if s.dashed {
                chart.draw_series(DashedLineSeries::new(seg.clone(), 10, 6, style)).map_err(plot_err)?
            } else {
                chart.draw_series(LineSeries::new(seg.clone(), style)).map_err(plot_err)?
            };
            if first && labelled < 14 {
                if let Some(l) = &s.label {
                    let dashed = s.dashed;
                    anno.label(l.clone()).legend(move |(x, y)| {
                        // Two dashes and a gap for a dashed curve (one element type for both).
                        let (a, b, w) = if dashed { (9, 14, 2) } else { (23, 0, 3) };
                        EmptyElement::at((x, y))
                            + PathElement::new(vec![(0, 0), (a, 0)], colour.stroke_width(w))
                            + PathElement::new(vec![(b, 0), (23, 0)], colour.stroke_width(w))
                    });
                    labelled += 1;
                }
            }
            first = false;
            if s.markers {
                chart.draw_series(seg.iter().map(|p| Circle::new(*p, 4, colour.filled()))).map_err(plot_err)?;
            }
        }
    }
    if labelled > 0 {
        chart
            .configure_series_labels()
            .position(legend_corner(&series, xr, yr))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(180, 180, 180))
            .label_font((FAMILY, 15))
            .draw()
            .map_err(plot_err)?;
    }
    Ok(())
}

/// Viridis, sampled at nine points and interpolated linearly.
fn viridis(t: f64) -> RGBColor {
    const C: [(u8, u8, u8); 9] = [
        (68, 1, 84),
        (71, 44, 122),
        (59, 81, 139),
        (44, 113, 142),
        (33, 144, 141),
        (39, 173, 129),
        (92, 200, 99),
        (170, 220, 50),
        (253, 231, 37),
    ];
    let t = t.clamp(0.0, 1.0) * (C.len() - 1) as f64;
    let i = (t.floor() as usize).min(C.len() - 2);
    let f = t - i as f64;
    let mix = |a: u8, b: u8| (a as f64 + f * (b as f64 - a as f64)).round() as u8;
    RGBColor(mix(C[i].0, C[i + 1].0), mix(C[i].1, C[i + 1].1), mix(C[i].2, C[i + 1].2))
}

/// Cell edges around sorted axis values (midpoints, end cells mirrored).
fn edges(values: &[f64]) -> Vec<f64> {
    let n = values.len();
    if n == 1 {
        return vec![values[0] - 0.5, values[0] + 0.5];
    }
    let mut e = Vec::with_capacity(n + 1);
    e.push(values[0] - 0.5 * (values[1] - values[0]));
    for w in values.windows(2) {
        e.push(0.5 * (w[0] + w[1]));
    }
    e.push(values[n - 1] + 0.5 * (values[n - 1] - values[n - 2]));
    e
}

fn heatmap(
    ctx: &Ctx,
    area: &DrawingArea<BitMapBackend, Shift>,
    panel: &RawPlot,
    title: &str,
    field: &str,
) -> Result<()> {
    let run = ctx.run;
    let axis = |key: &str, name: &Option<String>| -> Result<usize> {
        let name = name.clone().unwrap_or_default();
        run.axes.iter().position(|a| a.name == name).ok_or_else(|| {
            NeqkinError::invalid(format!("{field}.{key}"), format!("`{name}` is not a sweep axis of this run"))
        })
    };
    let (xi, yi) = (axis("x", &panel.x)?, axis("hue", &panel.hue)?);
    let z_name = panel.y.first().cloned().unwrap_or_default();
    let zc = ctx.col(&format!("{field}.y"), &z_name)?;
    let cells: Vec<(f64, f64, f64)> = run
        .last_rows()
        .iter()
        .map(|r| {
            let v = run.axis_values(r.point);
            (v[xi], v[yi], if r.status == "failed" { f64::NAN } else { r.values[zc] })
        })
        .collect();
    let (z0, z1) = {
        let (lo, hi) = range(cells.iter().map(|c| c.2));
        let pad = (hi - lo) / 1.1 * 0.05;
        (lo + pad, hi - pad)
    };
    let mut xs = run.axes[xi].values.clone();
    let mut ys = run.axes[yi].values.clone();
    xs.sort_by(f64::total_cmp);
    ys.sort_by(f64::total_cmp);
    let (xe, ye) = (edges(&xs), edges(&ys));
    let find = |vals: &[f64], v: f64| vals.iter().position(|&a| a == v);
    let (plot_area, bar_area) = area.split_horizontally(area.dim_in_pixel().0 - 150);
    let total = xs.len() * ys.len();
    let title = if cells.len() < total {
        format!("{title} ({} of {total} points finished; blank: not run)", cells.len())
    } else {
        title.to_string()
    };
    let mut chart = ChartBuilder::on(&plot_area)
        .caption(title, (FAMILY, 22))
        .margin(18)
        .x_label_area_size(55)
        .y_label_area_size(85)
        .build_cartesian_2d(xe[0]..xe[xe.len() - 1], ye[0]..ye[ye.len() - 1])
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc(ctx.label(&run.axes[xi].name))
        .y_desc(ctx.label(&run.axes[yi].name))
        .x_label_formatter(&|v| tick(*v, (xe[0], xe[xe.len() - 1])))
        .y_label_formatter(&|v| tick(*v, (ye[0], ye[ye.len() - 1])))
        .label_style((FAMILY, 16))
        .axis_desc_style((FAMILY, 19))
        .draw()
        .map_err(plot_err)?;
    chart
        .draw_series(cells.iter().filter_map(|&(x, y, z)| {
            let (i, j) = (find(&xs, x)?, find(&ys, y)?);
            let colour = if z.is_finite() { viridis((z - z0) / (z1 - z0)) } else { RGBColor(200, 200, 200) };
            Some(Rectangle::new([(xe[i], ye[j]), (xe[i + 1], ye[j + 1])], colour.filled()))
        }))
        .map_err(plot_err)?;
    // Colour bar.
    let mut bar = ChartBuilder::on(&bar_area)
        .margin_top(60)
        .margin_bottom(73)
        .margin_right(10)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..1.0, z0..z1)
        .map_err(plot_err)?;
    bar.configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_desc(ctx.label(&z_name))
        .y_label_formatter(&|v| tick(*v, (z0, z1)))
        .label_style((FAMILY, 14))
        .axis_desc_style((FAMILY, 16))
        .draw()
        .map_err(plot_err)?;
    let n = 200;
    bar.draw_series((0..n).map(|k| {
        let a = z0 + (z1 - z0) * k as f64 / n as f64;
        let b = z0 + (z1 - z0) * (k + 1) as f64 / n as f64;
        Rectangle::new([(0.0, a), (1.0, b)], viridis(k as f64 / (n - 1) as f64).filled())
    }))
    .map_err(plot_err)?;
    Ok(())
}

fn table(ctx: &Ctx, area: &DrawingArea<BitMapBackend, Shift>, panel: &RawPlot, title: &str, field: &str) -> Result<()> {
    let run = ctx.run;
    let names: Vec<String> = if panel.y.is_empty() {
        run.header.iter().filter(|c| !BOOKKEEPING.contains(&c.as_str())).cloned().fold(Vec::new(), |mut v, c| {
            if !v.contains(&c) {
                v.push(c);
            }
            v
        })
    } else {
        panel.y.clone()
    };
    let cols: Vec<usize> = names.iter().map(|n| ctx.col(&format!("{field}.y"), n)).collect::<Result<Vec<_>>>()?;
    let last = run.last_rows();
    let shown = thin(&last, 8);
    let (w, _) = area.dim_in_pixel();
    let font = (FAMILY, 17).into_font();
    area.draw(&Text::new(title.to_string(), (20, 15), (FAMILY, 22).into_font())).map_err(plot_err)?;
    let label_w = 380;
    let col_w = ((w as i32 - label_w - 40) / shown.len().max(1) as i32).max(90);
    let row_h = 28;
    let top = 65;
    for (j, r) in shown.iter().enumerate() {
        let head = ctx.point_label(r.point, &[]);
        area.draw(&Text::new(head, (20 + label_w + j as i32 * col_w, top), font.clone())).map_err(plot_err)?;
    }
    area.draw(&PathElement::new(vec![(20, top + row_h - 4), (w as i32 - 20, top + row_h - 4)], BLACK.stroke_width(1)))
        .map_err(plot_err)?;
    let status_row = names.len();
    for (i, (name, &c)) in
        names.iter().zip(&cols).enumerate().chain(std::iter::once((status_row, (&"status".to_string(), &usize::MAX))))
    {
        let y = top + row_h * (i as i32 + 1);
        if i % 2 == 1 {
            area.draw(&Rectangle::new([(15, y - 4), (w as i32 - 15, y + row_h - 6)], RGBColor(242, 242, 242).filled()))
                .map_err(plot_err)?;
        }
        area.draw(&Text::new(ctx.label(name), (20, y), font.clone())).map_err(plot_err)?;
        for (j, r) in shown.iter().enumerate() {
            let text = if c == usize::MAX { r.status.clone() } else { fmt_num(r.values[c]) };
            area.draw(&Text::new(text, (20 + label_w + j as i32 * col_w, y), font.clone())).map_err(plot_err)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_labels_show_rounding_residue_as_zero() {
        assert_eq!(tick(-1.1102230246251565e-16, (-0.6, 1.0)), "0");
        assert_eq!(tick(0.25, (-0.6, 1.0)), "0.25");
        // A genuinely small value on a small axis is kept.
        assert_eq!(tick(2e-6, (0.0, 1e-5)), "2.000e-6");
    }

    #[test]
    fn shared_references_are_recognised() {
        let a = vec![(0.1, 0.5), (0.2, -0.25)];
        assert!(same_points(&a, &[(0.1, 0.5), (0.2, -0.25 * (1.0 + 1e-14))]));
        assert!(!same_points(&a, &[(0.1, 0.5), (0.2, -0.2)]));
        assert!(!same_points(&a, &a[..1]));
    }

    #[test]
    fn legends_keep_equation_references_and_name_eigenvectors() {
        let run = RunData {
            root: "x".into(),
            config: crate::config::raw::from_tree(
                serde_json::json!({"model": "photoexcited", "solver": {"method": "dopri5", "t_end": 1.0}}),
            )
            .unwrap(),
            axes: vec![],
            output_times: vec![],
            header: vec![],
            rows: vec![],
        };
        let ctx = Ctx { run: &run, model: "photoexcited".into(), unit: String::new() };
        assert_eq!(ctx.symbol("sigma_eq10"), "σ / σ₀ of Eq. (10)");
        assert_eq!(ctx.symbol("electric_field"), "E");
        let ctx = Ctx { run: &run, model: "eliashberg".into(), unit: "units of g".into() };
        assert_eq!(ctx.symbol("lambda_c_zinv"), "λ_c from Z₀⁻¹ = 0 (Eq. 24)");
        assert_eq!(ctx.symbol("energy"), "E");
        assert_eq!(ctx.symbol("phi_unstable_smallest_2"), "φ of the 2nd smallest |γ|, γ < 0");
        assert_eq!(ctx.label("phi_stable_smallest_1"), ctx.label("phi_stable_smallest_3"));
    }
}
