//! `neqkin plot`: the standard picture of a run, drawn from its output folder alone.
//!
//! The picture is a list of panels: the config's `[plot]` (one panel) or `[[plot]]`
//! (several), recorded in `meta.json`, or, without one, the model's standard picture chosen
//! from the sweep shape ([`spec::default_panels`]). Panel kinds ([`crate::config::raw::PlotKind`]):
//! `sweep` (observables at the last output time against a sweep axis, one curve per value
//! of the other axes), `time` (observables against time or another column), `profile`
//! (arrays such as f(ε) against their grid), `heatmap` (one observable over two sweep axes)
//! and `table` (numbers). Drawing uses plotters' bitmap backend with an embedded font, so
//! it needs neither Python nor system fonts.

pub mod data;
pub mod draw;
pub mod spec;

use std::path::{Path, PathBuf};

use crate::config::raw::RawPlot;
use crate::Result;

pub use data::RunData;
pub use draw::figure_size;

/// What [`plot`] drew.
#[derive(Clone, Debug)]
pub struct PlotReport {
    /// The PNG written.
    pub png: PathBuf,
    /// Its panels.
    pub panels: Vec<RawPlot>,
    /// Its size in pixels.
    pub size: (u32, u32),
}

/// Draws the picture of the output folder `out` into `png` (default `out/plot.png`).
pub fn plot(out: &Path, png: Option<&Path>) -> Result<PlotReport> {
    let run = RunData::read(out)?;
    let panels = spec::panels(&run);
    let png = png.map(Path::to_path_buf).unwrap_or_else(|| out.join("plot.png"));
    draw::draw(&run, &panels, &png)?;
    Ok(PlotReport { size: figure_size(panels.len()), png, panels })
}
