//! PNG plots of simulated trajectories (plotters with a vendored DejaVu Sans, so no system
//! fonts or libraries are needed).

use std::path::Path;
use std::sync::Once;

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::error::{Error, Result};
use crate::output::write_atomic_with;
use crate::simulate::Trajectory;

static FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

fn register_font() {
    REGISTER.call_once(|| {
        // The font is compiled in; failing to parse it would be a build defect caught by tests.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// Smallest value drawn on the log-scale error axes.
const FLOOR: f64 = 1e-17;

fn plot_err(path: &Path) -> impl Fn(String) -> Error + '_ {
    move |reason| Error::Plot {
        path: path.to_path_buf(),
        reason,
    }
}

/// Relative energy error `|E − E₀| / |E₀|` per row (floored for log axes).
fn energy_error(t: &Trajectory) -> Vec<(f64, f64)> {
    let e0 = t.energy.first().copied().unwrap_or(0.0);
    let scale = if e0 == 0.0 { 1.0 } else { e0.abs() };
    t.t.iter()
        .zip(&t.energy)
        .map(|(&ti, &e)| (ti, ((e - e0).abs() / scale).max(FLOOR)))
        .collect()
}

/// The two coordinates shown in a trajectory panel: (x, y) in 2-D, the side view (x, z) in 3-D.
fn view_axes(t: &Trajectory) -> (usize, usize, &'static str, &'static str) {
    if t.dim == 2 {
        (0, 1, "x (m)", "y (m)")
    } else {
        (0, 2, "x (m)", "z (m)")
    }
}

fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() || !hi.is_finite() {
        return (-1.0, 1.0);
    }
    let pad = ((hi - lo) * 0.08).max(1e-3);
    (lo - pad, hi + pad)
}

/// Size of the legend font, in pixels.
const LEGEND_FONT: u32 = 13;

/// Draws the legend of the series labelled so far, at the place [`legend_position`] picks for
/// `labels` over `lines`.
fn draw_legend<'a, DB: DrawingBackend + 'a, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    labels: &[&str],
    lines: &[&[(f64, f64)]],
    preferred: SeriesLabelPosition,
) -> std::result::Result<(), String>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let position = legend_position(chart, labels, lines, preferred);
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", LEGEND_FONT))
        .position(position)
        .draw()
        .map_err(|e| e.to_string())
}

/// Where to draw the legend of `labels` so that it hides as little of `lines` as it can: of
/// the eight places along the plotting area's edge, the one whose box (sized as plotters lays it
/// out: the text, a 30-pixel sample and 10-pixel margins) covers the fewest points of the lines,
/// sampled every 2 pixels along each segment; `preferred` wins ties, then the order below.
fn legend_position<DB: DrawingBackend, X, Y>(
    chart: &ChartContext<'_, DB, Cartesian2d<X, Y>>,
    labels: &[&str],
    lines: &[&[(f64, f64)]],
    preferred: SeriesLabelPosition,
) -> SeriesLabelPosition
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let font = ("sans-serif", LEGEND_FONT).into_font();
    let (mut w, mut h) = (0i32, 0i32);
    let line_height = (f64::from(LEGEND_FONT) * 1.25).round() as i32;
    for (i, label) in labels.iter().enumerate() {
        let (dx, dy) = font
            .box_size(label)
            .unwrap_or((7 * label.len() as u32, LEGEND_FONT));
        w = w.max(dx as i32);
        h = h.max(i as i32 * line_height + dy as i32);
    }
    let (w, h) = (w + 30 + 20, h + 20);
    let (bx, by) = chart.plotting_area().get_base_pixel();
    let (aw, ah) = chart.plotting_area().dim_in_pixel();
    let (aw, ah) = (aw as i32, ah as i32);
    let mut samples = Vec::new();
    for line in lines {
        let px: Vec<(i32, i32)> = line
            .iter()
            .filter(|p| p.0.is_finite() && p.1.is_finite())
            .map(|p| chart.backend_coord(p))
            .collect();
        samples.extend(px.first());
        for seg in px.windows(2) {
            let (a, b) = (seg[0], seg[1]);
            let n = ((b.0 - a.0).abs().max((b.1 - a.1).abs()) / 2).max(1);
            samples.extend((1..=n).map(|k| (a.0 + (b.0 - a.0) * k / n, a.1 + (b.1 - a.1) * k / n)));
        }
    }
    use SeriesLabelPosition::*;
    let hidden = |pos: &SeriesLabelPosition| {
        let x = match pos {
            UpperLeft | MiddleLeft | LowerLeft => 5,
            UpperMiddle | LowerMiddle => (aw - w) / 2,
            _ => aw - w - 5,
        } + bx;
        let y = match pos {
            UpperLeft | UpperMiddle | UpperRight => 5,
            MiddleLeft | MiddleRight => (ah - h) / 2,
            _ => ah - h - 5,
        } + by;
        samples
            .iter()
            .filter(|p| p.0 >= x && p.0 <= x + w && p.1 >= y && p.1 <= y + h)
            .count()
    };
    let mut best = (hidden(&preferred), preferred);
    for pos in [
        UpperRight,
        UpperLeft,
        LowerRight,
        LowerLeft,
        UpperMiddle,
        LowerMiddle,
        MiddleRight,
        MiddleLeft,
    ] {
        let n = hidden(&pos);
        if n < best.0 {
            best = (n, pos);
        }
    }
    best.1
}

/// Stroke widths for series drawn in order: a series that a later one covers (at least two of
/// its points, and half of them, within 0.4 % of the y range of a later series' point at the
/// same x) is drawn wider, so that it shows around the later line instead of vanishing under it.
fn stroke_widths(series: &Series) -> Vec<u32> {
    let ys = || series.iter().flat_map(|(_, s)| s.iter().map(|p| p.1));
    let span = ys().fold(f64::NEG_INFINITY, f64::max) - ys().fold(f64::INFINITY, f64::min);
    let tol = 0.004
        * if span.is_finite() && span > 0.0 {
            span
        } else {
            1.0
        };
    let covers = |under: &[(f64, f64)], over: &[(f64, f64)]| {
        let shared = under
            .iter()
            .filter(|p| over.iter().any(|q| q.0 == p.0 && (q.1 - p.1).abs() <= tol))
            .count();
        shared >= 2 && 2 * shared >= under.len()
    };
    series
        .iter()
        .enumerate()
        .map(|(i, (_, s))| {
            let later = series[i + 1..].iter().filter(|(_, o)| covers(s, o)).count() as u32;
            2 + 3 * later
        })
        .collect()
}

/// `lo..hi` widened by 3 % on each side (a point on an edge is not cut in half), or by 1
/// around a single value.
fn padded(lo: f64, hi: f64) -> std::ops::Range<f64> {
    let pad = if hi > lo { 0.03 * (hi - lo) } else { 1.0 };
    lo - pad..hi + pad
}

fn draw_paths(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    t: &Trajectory,
    title: &str,
) -> std::result::Result<(), String> {
    let (a, b, la, lb) = view_axes(t);
    let (x0, x1) = bounds(
        t.x.iter()
            .flat_map(|row| row.chunks(t.dim).map(move |n| n[a]))
            .chain([0.0]),
    );
    let (y0, y1) = bounds(
        t.x.iter()
            .flat_map(|row| row.chunks(t.dim).map(move |n| n[b]))
            .chain([0.0]),
    );
    // Equal aspect: widen the narrower range.
    let (cx, cy) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
    let (w, h) = area.dim_in_pixel();
    let span = ((x1 - x0) / w as f64).max((y1 - y0) / h as f64);
    let (hx, hy) = (span * w as f64 / 2.0, span * h as f64 / 2.0);
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(8)
        .x_label_area_size(30)
        .y_label_area_size(45)
        .build_cartesian_2d(cx - hx..cx + hx, cy - hy..cy + hy)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc(la)
        .y_desc(lb)
        .light_line_style(WHITE)
        .draw()
        .map_err(|e| e.to_string())?;
    for node in 0..t.nodes {
        let color = Palette99::pick(node).to_rgba();
        chart
            .draw_series(LineSeries::new(
                t.x.iter()
                    .map(|row| (row[node * t.dim + a], row[node * t.dim + b])),
                color.stroke_width(1),
            ))
            .map_err(|e| e.to_string())?;
    }
    // Final configuration as dots.
    if let Some(last) = t.x.last() {
        chart
            .draw_series(
                last.chunks(t.dim)
                    .map(|n| Circle::new((n[a], n[b]), 4, BLACK.filled())),
            )
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn draw_errors(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    series: &[(String, Vec<(f64, f64)>)],
    title: &str,
    y_desc: &str,
) -> std::result::Result<(), String> {
    draw_log_series(area, series, title, "t (s)", y_desc)
}

fn draw_log_series(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    series: &[(String, Vec<(f64, f64)>)],
    title: &str,
    x_desc: &str,
    y_desc: &str,
) -> std::result::Result<(), String> {
    let t_max = series
        .iter()
        .flat_map(|(_, s)| s.iter().map(|p| p.0))
        .fold(0.0f64, f64::max)
        .max(1e-9);
    let hi = series
        .iter()
        .flat_map(|(_, s)| s.iter().map(|p| p.1))
        .fold(FLOOR * 10.0, f64::max)
        * 10.0;
    let lo = series
        .iter()
        .flat_map(|(_, s)| s.iter().map(|p| p.1))
        .fold(f64::INFINITY, f64::min)
        .max(FLOOR)
        / 10.0;
    let lo = if lo.is_finite() && lo < hi { lo } else { FLOOR };
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(8)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..t_max * 1.03, (lo..hi).log_scale())
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .y_label_formatter(&|v| format!("{v:.0e}"))
        .draw()
        .map_err(|e| e.to_string())?;
    let widths = stroke_widths(series);
    for (i, (label, s)) in series.iter().enumerate() {
        let (color, width) = (Palette99::pick(i).to_rgba(), widths[i]);
        chart
            .draw_series(LineSeries::new(
                s.iter().copied(),
                color.stroke_width(width),
            ))
            .map_err(|e| e.to_string())?
            .label(label.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(width))
            });
        // A single point draws no line.
        if s.len() == 1 {
            chart
                .draw_series(s.iter().map(|&p| Circle::new(p, 4, color.filled())))
                .map_err(|e| e.to_string())?;
        }
    }
    let labels: Vec<&str> = series.iter().map(|(l, _)| l.as_str()).collect();
    let lines: Vec<&[(f64, f64)]> = series.iter().map(|(_, s)| s.as_slice()).collect();
    draw_legend(&mut chart, &labels, &lines, SeriesLabelPosition::LowerRight)
}

/// A reliability diagram: for each named set, accuracy against mean confidence per
/// confidence bin (points where bins are non-empty), with the diagonal of perfect calibration.
///
/// # Errors
/// [`Error::Plot`]; the file is written atomically.
pub fn plot_reliability(path: &Path, series: &Series, title: &str) -> Result<()> {
    register_font();
    write_atomic_with(path, |tmp| {
        let root = BitMapBackend::new(tmp, (700, 650)).into_drawing_area();
        let err = |e: String| plot_err(path)(e);
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let lo = series
            .iter()
            .flat_map(|(_, s)| s.iter().flat_map(|p| [p.0, p.1]))
            .fold(1.0f64, f64::min)
            .clamp(0.0, 0.9)
            - 0.02;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(50)
            .build_cartesian_2d(lo..1.0, lo..1.0)
            .map_err(|e| err(e.to_string()))?;
        chart
            .configure_mesh()
            .x_desc("confidence (top-label, bin mean)")
            .y_desc("accuracy in the bin")
            .draw()
            .map_err(|e| err(e.to_string()))?;
        chart
            .draw_series(LineSeries::new([(lo, lo), (1.0, 1.0)], BLACK.mix(0.4)))
            .map_err(|e| err(e.to_string()))?
            .label("calibrated")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLACK.mix(0.4)));
        let diagonal = [(lo, lo), (1.0, 1.0)];
        draw_labelled(
            &mut chart,
            series,
            |_| true,
            SeriesLabelPosition::UpperLeft,
            &["calibrated"],
            &[&diagonal[..]],
        )
        .map_err(err)?;
        root.present().map_err(|e| err(e.to_string()))
    })
}

/// One trajectory: node paths (left) and the relative energy error and constraint violation
/// over time on a log scale (right).
///
/// # Errors
/// [`Error::Plot`]; the file is written atomically.
pub fn plot_trajectory(path: &Path, t: &Trajectory, title: &str) -> Result<()> {
    register_font();
    write_atomic_with(path, |tmp| {
        let root = BitMapBackend::new(tmp, (1400, 600)).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|e| plot_err(path)(e.to_string()))?;
        let (left, right) = root.split_horizontally(620);
        draw_paths(&left, t, title).map_err(plot_err(path))?;
        let violation: Vec<(f64, f64)> =
            t.t.iter()
                .zip(&t.constraint_violation)
                .map(|(&a, &b)| (a, b.max(FLOOR)))
                .collect();
        draw_errors(
            &right,
            &[
                ("|E − E₀| / |E₀|".to_string(), energy_error(t)),
                ("max(|Φ|, |Φ̇|)".to_string(), violation),
            ],
            "Energy error and constraint violation",
            "relative error / residual",
        )
        .map_err(plot_err(path))?;
        root.present().map_err(|e| plot_err(path)(e.to_string()))
    })
}

/// A grid of trajectory panels (one per system) above one panel with every system's relative
/// energy error.
///
/// # Errors
/// [`Error::Plot`]; the file is written atomically.
pub fn plot_overview(path: &Path, runs: &[(String, Trajectory)]) -> Result<()> {
    register_font();
    let cols = 4usize;
    let rows = runs.len().div_ceil(cols).max(1);
    let (w, panel_h, bottom_h) = (1600u32, 380u32, 420u32);
    write_atomic_with(path, |tmp| {
        let root =
            BitMapBackend::new(tmp, (w, panel_h * rows as u32 + bottom_h)).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|e| plot_err(path)(e.to_string()))?;
        let (top, bottom) = root.split_vertically(panel_h * rows as u32);
        for (area, (label, t)) in top.split_evenly((rows, cols)).iter().zip(runs) {
            draw_paths(area, t, label).map_err(plot_err(path))?;
        }
        let series: Vec<(String, Vec<(f64, f64)>)> = runs
            .iter()
            .map(|(l, t)| (l.clone(), energy_error(t)))
            .collect();
        draw_errors(
            &bottom,
            &series,
            "Relative energy error (dopri5)",
            "|E − E₀| / |E₀|",
        )
        .map_err(plot_err(path))?;
        root.present().map_err(|e| plot_err(path)(e.to_string()))
    })
}

/// Learning curves: training and validation loss per epoch (log scale), and the validation
/// accuracy when given.
///
/// # Errors
/// [`Error::Plot`]; the file is written atomically.
pub fn plot_learning_curves(
    path: &Path,
    history: &[crate::fit::EpochStats],
    title: &str,
) -> Result<()> {
    register_font();
    write_atomic_with(path, |tmp| {
        let root = BitMapBackend::new(tmp, (1200, 500)).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|e| plot_err(path)(e.to_string()))?;
        let has_acc = history.iter().any(|h| h.val_accuracy.is_some());
        let (left, right) = if has_acc {
            root.split_horizontally(700)
        } else {
            (root.clone(), root.clone())
        };
        let losses: Vec<(String, Vec<(f64, f64)>)> = vec![
            (
                "train".into(),
                history
                    .iter()
                    .map(|h| (h.epoch as f64, h.train_loss.max(FLOOR)))
                    .collect(),
            ),
            (
                "validation".into(),
                history
                    .iter()
                    .map(|h| (h.epoch as f64, h.val_loss.max(FLOOR)))
                    .collect(),
            ),
        ];
        draw_log_series(&left, &losses, title, "epoch", "loss").map_err(plot_err(path))?;
        if has_acc {
            let pts: Vec<(f64, f64)> = history
                .iter()
                .filter_map(|h| h.val_accuracy.map(|a| (h.epoch as f64, a)))
                .collect();
            let lo = pts.iter().map(|p| p.1).fold(1.0f64, f64::min).min(0.9);
            let mut chart = ChartBuilder::on(&right)
                .caption("Validation accuracy", ("sans-serif", 18))
                .margin(8)
                .x_label_area_size(30)
                .y_label_area_size(50)
                .build_cartesian_2d(0.0..history.len().max(1) as f64, lo..1.0)
                .map_err(|e| plot_err(path)(e.to_string()))?;
            chart
                .configure_mesh()
                .x_desc("epoch")
                .y_desc("accuracy")
                .draw()
                .map_err(|e| plot_err(path)(e.to_string()))?;
            chart
                .draw_series(LineSeries::new(pts, BLUE.stroke_width(2)))
                .map_err(|e| plot_err(path)(e.to_string()))?;
        }
        root.present().map_err(|e| plot_err(path)(e.to_string()))
    })
}

/// Named `(x, y)` series.
pub type Series = [(String, Vec<(f64, f64)>)];

/// One panel: title, x label, y label, series.
pub type Panel<'a> = (&'a str, &'a str, &'a str, &'a Series);

/// Two log-scale panels side by side.
///
/// # Errors
/// [`Error::Plot`]; the file is written atomically.
pub fn plot_log_panels(path: &Path, panels: [Panel<'_>; 2]) -> Result<()> {
    register_font();
    write_atomic_with(path, |tmp| {
        let root = BitMapBackend::new(tmp, (1200, 500)).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|e| plot_err(path)(e.to_string()))?;
        let (left, right) = root.split_horizontally(600);
        for (area, (title, xd, yd, series)) in [left, right].iter().zip(panels) {
            let clamped: Vec<(String, Vec<(f64, f64)>)> = series
                .iter()
                .map(|(n, pts)| {
                    (
                        n.clone(),
                        pts.iter().map(|&(x, y)| (x, y.max(FLOOR))).collect(),
                    )
                })
                .collect();
            draw_log_series(area, &clamped, title, xd, yd).map_err(plot_err(path))?;
        }
        root.present().map_err(|e| plot_err(path)(e.to_string()))
    })
}

/// Log-scale panels followed by one panel of paths in the plane (equal axes; e.g. a learned
/// rollout against the truth).
///
/// # Errors
/// [`Error::Plot`]; the file is written atomically.
pub fn plot_log_panels_and_paths(
    path: &Path,
    panels: &[Panel<'_>],
    paths: Panel<'_>,
) -> Result<()> {
    register_font();
    write_atomic_with(path, |tmp| {
        let width = 550 * (panels.len() as u32 + 1);
        let root = BitMapBackend::new(tmp, (width, 500)).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|e| plot_err(path)(e.to_string()))?;
        let areas = root.split_evenly((1, panels.len() + 1));
        for (area, (title, xd, yd, series)) in areas.iter().zip(panels) {
            let clamped: Vec<(String, Vec<(f64, f64)>)> = series
                .iter()
                .filter(|(_, pts)| !pts.is_empty())
                .map(|(n, pts)| {
                    (
                        n.clone(),
                        pts.iter().map(|&(x, y)| (x, y.max(FLOOR))).collect(),
                    )
                })
                .collect();
            draw_log_series(area, &clamped, title, xd, yd).map_err(plot_err(path))?;
        }
        let (title, xd, yd, series) = paths;
        let all = || series.iter().flat_map(|(_, s)| s.iter());
        let (x0, x1) = bounds(all().map(|p| p.0));
        let (y0, y1) = bounds(all().map(|p| p.1));
        let half = 0.5 * (x1 - x0).max(y1 - y0) * 1.05;
        let (cx, cy) = (0.5 * (x0 + x1), 0.5 * (y0 + y1));
        let area = &areas[panels.len()];
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 18))
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(cx - half..cx + half, cy - half..cy + half)
            .map_err(|e| plot_err(path)(e.to_string()))?;
        chart
            .configure_mesh()
            .x_desc(xd)
            .y_desc(yd)
            .draw()
            .map_err(|e| plot_err(path)(e.to_string()))?;
        for (i, (label, s)) in series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(s.iter().copied(), color.stroke_width(2)))
                .map_err(|e| plot_err(path)(e.to_string()))?
                .label(label.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
        }
        let labels: Vec<&str> = series.iter().map(|(l, _)| l.as_str()).collect();
        let lines: Vec<&[(f64, f64)]> = series.iter().map(|(_, s)| s.as_slice()).collect();
        draw_legend(
            &mut chart,
            &labels,
            &lines,
            SeriesLabelPosition::MiddleRight,
        )
        .map_err(plot_err(path))?;
        root.present().map_err(|e| plot_err(path)(e.to_string()))
    })
}

/// The posterior of a 1-D GP stream at several points of the stream: the points seen so far,
/// the predictive mean and a ±2σ band of f, one panel per snapshot, each with a legend in the
/// headroom left above the data.
///
/// # Errors
/// [`Error::Plot`]; the file is written atomically.
pub fn plot_gp_stream(
    path: &Path,
    data: &crate::gp::TrainData,
    line: &[f64],
    report: &crate::gp::StreamReport,
) -> Result<()> {
    register_font();
    let snaps = &report.snapshots;
    if snaps.is_empty() || line.is_empty() {
        return Err(Error::Plot {
            path: path.to_path_buf(),
            reason: "no snapshots to draw".into(),
        });
    }
    let (xlo, xhi) = (line[0], line[line.len() - 1]);
    let (ylo, yhi) = bounds(data.y.iter().copied());
    let pad = 0.1 * (yhi - ylo).max(1e-9);
    // A third more room above the data for the legend.
    let (ylo, yhi) = (ylo - pad, yhi + pad + 0.33 * (yhi - ylo));
    write_atomic_with(path, |tmp| {
        let root = BitMapBackend::new(tmp, (420 * snaps.len() as u32, 420)).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|e| plot_err(path)(e.to_string()))?;
        let panels = root.split_evenly((1, snaps.len()));
        for (panel, s) in panels.iter().zip(snaps) {
            let mut chart = ChartBuilder::on(panel)
                .caption(
                    format!("{} after {} points", report.method, s.seen),
                    ("sans-serif", 18),
                )
                .margin(8)
                .x_label_area_size(30)
                .y_label_area_size(45)
                .build_cartesian_2d(xlo..xhi, ylo..yhi)
                .map_err(|e| plot_err(path)(e.to_string()))?;
            chart
                .configure_mesh()
                .x_desc("x")
                .y_desc("y")
                .draw()
                .map_err(|e| plot_err(path)(e.to_string()))?;
            // At most 2000 of the points seen, evenly spaced in arrival order.
            let stride = (s.seen / 2000).max(1);
            let shown: Vec<[(f64, f64); 1]> = (0..s.seen)
                .step_by(stride)
                .map(|i| [(data.x[i], data.y[i])])
                .collect();
            let seen_label = if stride > 1 {
                format!("points seen (1 in {stride} drawn)")
            } else {
                "points seen".to_string()
            };
            chart
                .draw_series(
                    shown
                        .iter()
                        .map(|p| Circle::new(p[0], 2, BLACK.mix(0.3).filled())),
                )
                .map_err(|e| plot_err(path)(e.to_string()))?
                .label(seen_label.as_str())
                .legend(|(x, y)| Circle::new((x + 8, y), 3, BLACK.mix(0.3).filled()));
            let band: Vec<(f64, f64)> = line
                .iter()
                .zip(s.mean.iter().zip(&s.std_f))
                .map(|(&x, (&m, &sd))| (x, m + 2.0 * sd))
                .chain(
                    line.iter()
                        .zip(s.mean.iter().zip(&s.std_f))
                        .rev()
                        .map(|(&x, (&m, &sd))| (x, m - 2.0 * sd)),
                )
                .map(|(x, y)| (x, y.clamp(ylo, yhi)))
                .collect();
            chart
                .draw_series(std::iter::once(Polygon::new(
                    band.clone(),
                    BLUE.mix(0.2).filled(),
                )))
                .map_err(|e| plot_err(path)(e.to_string()))?
                .label("mean ± 2σ of f")
                .legend(|(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 16, y + 5)], BLUE.mix(0.2).filled())
                });
            let mean: Vec<(f64, f64)> = line
                .iter()
                .zip(&s.mean)
                .map(|(&x, &m)| (x, m.clamp(ylo, yhi)))
                .collect();
            chart
                .draw_series(LineSeries::new(mean.iter().copied(), BLUE.stroke_width(2)))
                .map_err(|e| plot_err(path)(e.to_string()))?
                .label("posterior mean")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE.stroke_width(2)));
            let labels = [seen_label.as_str(), "mean ± 2σ of f", "posterior mean"];
            let mut lines: Vec<&[(f64, f64)]> = shown.iter().map(|p| &p[..]).collect();
            lines.push(&band);
            lines.push(&mean);
            draw_legend(&mut chart, &labels, &lines, SeriesLabelPosition::UpperLeft)
                .map_err(plot_err(path))?;
        }
        root.present().map_err(|e| plot_err(path)(e.to_string()))
    })
}

/// Bayesian-optimisation runs side by side: seconds per step (model update + acquisition, log
/// scale) against the number of evaluations, and the best value found minus the function's
/// minimum (log scale).
///
/// # Errors
/// [`Error::Plot`]; the file is written atomically.
pub fn plot_bo(path: &Path, runs: &[crate::gp::bo::BoReport]) -> Result<()> {
    register_font();
    let time: Vec<(String, Vec<(f64, f64)>)> = runs
        .iter()
        .map(|r| {
            (
                format!("{} (time per step)", r.method),
                r.history
                    .iter()
                    .map(|s| {
                        (
                            s.evaluations as f64,
                            (s.model_seconds + s.acquisition_seconds).max(FLOOR),
                        )
                    })
                    .collect(),
            )
        })
        .collect();
    let regret: Vec<(String, Vec<(f64, f64)>)> = runs
        .iter()
        .map(|r| {
            (
                format!("{} (best − minimum)", r.method),
                r.history
                    .iter()
                    .map(|s| (s.evaluations as f64, (s.best_latent - r.minimum).max(FLOOR)))
                    .collect(),
            )
        })
        .collect();
    let title = runs
        .first()
        .map(|r| format!("{} in {}-D", r.function, r.dim))
        .unwrap_or_default();
    write_atomic_with(path, |tmp| {
        let root = BitMapBackend::new(tmp, (1200, 500)).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|e| plot_err(path)(e.to_string()))?;
        let (left, right) = root.split_horizontally(600);
        draw_log_series(
            &left,
            &time,
            &format!("{title}: seconds per step"),
            "evaluations",
            "s",
        )
        .map_err(plot_err(path))?;
        draw_log_series(
            &right,
            &regret,
            &format!("{title}: best found − minimum"),
            "evaluations",
            "regret",
        )
        .map_err(plot_err(path))?;
        root.present().map_err(|e| plot_err(path)(e.to_string()))
    })
}

/// Panels of named series on linear axes side by side (learning curves of returns, rollouts),
/// the points of series whose label starts with `eval` marked.
///
/// # Errors
/// [`Error::Plot`] (also for a panel with nothing to plot); the file is written atomically.
pub fn plot_line_panels(path: &Path, panels: &[Panel<'_>]) -> Result<()> {
    plot_line_and_log_panels(path, panels, &[])
}

/// As [`plot_line_panels`], followed by panels on a log scale (positive values; empty series
/// left out).
///
/// # Errors
/// As [`plot_line_panels`].
pub fn plot_line_and_log_panels(
    path: &Path,
    panels: &[Panel<'_>],
    log_panels: &[Panel<'_>],
) -> Result<()> {
    register_font();
    write_atomic_with(path, |tmp| {
        let count = (panels.len() + log_panels.len()).max(1);
        let width = 900 * count as u32;
        let root = BitMapBackend::new(tmp, (width, 550)).into_drawing_area();
        let err = |e: String| plot_err(path)(e);
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let areas = root.split_evenly((1, count));
        for (area, (title, x, y, series)) in areas.iter().skip(panels.len()).zip(log_panels) {
            let kept: Vec<(String, Vec<(f64, f64)>)> = series
                .iter()
                .filter(|(_, pts)| !pts.is_empty())
                .map(|(n, pts)| {
                    (
                        n.clone(),
                        pts.iter().map(|&(a, b)| (a, b.max(FLOOR))).collect(),
                    )
                })
                .collect();
            draw_log_series(area, &kept, title, x, y).map_err(err)?;
        }
        for (area, (title, x, y, series)) in areas.iter().zip(panels) {
            let pts = || series.iter().flat_map(|(_, s)| s.iter().copied());
            let (x0, x1) = pts().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
            let (y0, y1) = pts().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
            if !(x0 <= x1 && y0 <= y1) {
                return Err(err(format!("nothing to plot in `{title}`")));
            }
            let pad = 0.05 * (y1 - y0).max(1e-9);
            let mut chart = ChartBuilder::on(area)
                .caption(*title, ("sans-serif", 18))
                .margin(10)
                .x_label_area_size(35)
                .y_label_area_size(60)
                .build_cartesian_2d(padded(x0, x1), (y0 - pad)..(y1 + pad))
                .map_err(|e| err(e.to_string()))?;
            chart
                .configure_mesh()
                .x_desc(*x)
                .y_desc(*y)
                .draw()
                .map_err(|e| err(e.to_string()))?;
            let marked = |label: &str| label.starts_with("eval");
            draw_labelled(
                &mut chart,
                series,
                marked,
                SeriesLabelPosition::LowerRight,
                &[],
                &[],
            )
            .map_err(err)?;
        }
        root.present().map_err(|e| err(e.to_string()))
    })
}

/// Draws each series as a line in its palette colour with a legend entry (wider where a later
/// series would cover it), marks the points of those `marked` accepts and of single points, and
/// draws the legend where it hides least, `preferred` on ties, counting the `drawn_labels` and
/// `drawn_lines` already on the chart.
fn draw_labelled<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    series: &Series,
    marked: impl Fn(&str) -> bool,
    preferred: SeriesLabelPosition,
    drawn_labels: &[&str],
    drawn_lines: &[&[(f64, f64)]],
) -> std::result::Result<(), String> {
    let widths = stroke_widths(series);
    for (i, (label, pts)) in series.iter().enumerate() {
        let (color, width) = (Palette99::pick(i).to_rgba(), widths[i]);
        chart
            .draw_series(LineSeries::new(
                pts.iter().copied(),
                color.stroke_width(width),
            ))
            .map_err(|e| e.to_string())?
            .label(label.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(width))
            });
        if marked(label) || pts.len() == 1 {
            chart
                .draw_series(
                    pts.iter()
                        .map(|&p| Circle::new(p, 3 + width / 2, color.filled())),
                )
                .map_err(|e| e.to_string())?;
        }
    }
    let labels: Vec<&str> = drawn_labels
        .iter()
        .copied()
        .chain(series.iter().map(|(l, _)| l.as_str()))
        .collect();
    let lines: Vec<&[(f64, f64)]> = drawn_lines
        .iter()
        .copied()
        .chain(series.iter().map(|(_, s)| s.as_slice()))
        .collect();
    draw_legend(chart, &labels, &lines, preferred)
}

/// Augerino's training picture: the learned widths θ over the epochs (left) and a grid of
/// transformed samples (right; each a `[h, w]` image in [0, 1], drawn in grey levels, channels
/// averaged by the caller), `columns` per row.
///
/// # Errors
/// [`Error::Plot`]; the file is written atomically.
pub fn plot_widths_and_samples(
    path: &Path,
    widths: &Series,
    samples: &[Vec<f64>],
    [h, w]: [usize; 2],
    columns: usize,
    title: &str,
) -> Result<()> {
    register_font();
    write_atomic_with(path, |tmp| {
        let root = BitMapBackend::new(tmp, (1500, 600)).into_drawing_area();
        let err = |e: String| plot_err(path)(e);
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let (left, right) = root.split_horizontally(800);
        let pts = || widths.iter().flat_map(|(_, s)| s.iter().copied());
        let (x0, x1) = pts().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
        let y1 = pts().fold(0.0f64, |a, p| a.max(p.1));
        if !(x0 <= x1) {
            return Err(err("no widths to plot".into()));
        }
        let mut chart = ChartBuilder::on(&left)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(60)
            .build_cartesian_2d(padded(x0, x1), 0.0..(y1 * 1.08).max(0.1))
            .map_err(|e| err(e.to_string()))?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc("width θ = softplus(w)")
            .draw()
            .map_err(|e| err(e.to_string()))?;
        draw_labelled(
            &mut chart,
            widths,
            |_| false,
            SeriesLabelPosition::UpperLeft,
            &[],
            &[],
        )
        .map_err(err)?;
        let right = right
            .titled("transformed training samples", ("sans-serif", 18))
            .map_err(|e| err(e.to_string()))?;
        let columns = columns.max(1);
        let rows = samples.len().div_ceil(columns).max(1);
        let (aw, ah) = right.dim_in_pixel();
        let cell = ((aw as usize / columns).min(ah as usize / rows)).max(1);
        let px = (cell.saturating_sub(4) / h.max(w).max(1)).max(1) as i32;
        for (k, img) in samples.iter().enumerate() {
            let (r, c) = (k / columns, k % columns);
            let (ox, oy) = ((c * cell) as i32 + 2, (r * cell) as i32 + 2);
            for i in 0..h {
                for j in 0..w {
                    let v = img.get(i * w + j).copied().unwrap_or(0.0).clamp(0.0, 1.0);
                    let g = (255.0 * (1.0 - v)) as u8;
                    let (x, y) = (ox + j as i32 * px, oy + i as i32 * px);
                    right
                        .draw(&Rectangle::new(
                            [(x, y), (x + px, y + px)],
                            RGBColor(g, g, g).filled(),
                        ))
                        .map_err(|e| err(e.to_string()))?;
                }
            }
        }
        root.present().map_err(|e| err(e.to_string()))
    })
}

/// A scalar field on a grid for [`plot_fields`]: `values[i][j]` at `(xs[j], ys[i])`.
pub struct Field<'a> {
    /// Panel title.
    pub title: &'a str,
    /// Grid abscissae (increasing).
    pub xs: &'a [f64],
    /// Grid ordinates (increasing).
    pub ys: &'a [f64],
    /// The values.
    pub values: &'a [Vec<f64>],
}

/// A three-stop colour map (dark blue → pale yellow → dark red) of `t` in [0, 1].
fn diverging(t: f64) -> RGBColor {
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        1.0
    };
    let stops = [
        (33.0, 102.0, 172.0),
        (255.0, 255.0, 191.0),
        (178.0, 24.0, 43.0),
    ];
    let (a, b, u) = if t < 0.5 {
        (stops[0], stops[1], t * 2.0)
    } else {
        (stops[1], stops[2], t * 2.0 - 1.0)
    };
    let mix = |x: f64, y: f64| (x + (y - x) * u).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Panels of scalar fields side by side, coloured from `range.0` (blue) to `range.1` (red),
/// with labelled points (class 0 white, class 1 black, as `(x, y, class)`) and marked corners
/// (green) drawn over every panel — decision regions of classifiers, or a loss surface.
///
/// # Errors
/// [`Error::Plot`]; the file is written atomically.
pub fn plot_fields(
    path: &Path,
    fields: &[Field<'_>],
    range: (f64, f64),
    points: &[(f64, f64, usize)],
    marks: &[(f64, f64)],
) -> Result<()> {
    register_font();
    write_atomic_with(path, |tmp| {
        let err = |e: String| plot_err(path)(e);
        let n = fields.len().max(1);
        let root = BitMapBackend::new(tmp, (560 * n as u32, 560)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let panels = root.split_evenly((1, n));
        for (area, f) in panels.iter().zip(fields) {
            let (x0, x1) = (f.xs[0], f.xs[f.xs.len() - 1]);
            let (y0, y1) = (f.ys[0], f.ys[f.ys.len() - 1]);
            let mut chart = ChartBuilder::on(area)
                .caption(f.title, ("sans-serif", 17))
                .margin(10)
                .x_label_area_size(30)
                .y_label_area_size(45)
                .build_cartesian_2d(x0..x1, y0..y1)
                .map_err(|e| err(e.to_string()))?;
            chart
                .configure_mesh()
                .disable_mesh()
                .draw()
                .map_err(|e| err(e.to_string()))?;
            let half = |v: &[f64], i: usize| -> (f64, f64) {
                let lo = if i == 0 {
                    v[0]
                } else {
                    0.5 * (v[i - 1] + v[i])
                };
                let hi = if i + 1 == v.len() {
                    v[i]
                } else {
                    0.5 * (v[i] + v[i + 1])
                };
                (lo, hi)
            };
            let span = (range.1 - range.0).max(1e-300);
            let mut cells = Vec::with_capacity(f.xs.len() * f.ys.len());
            for (i, row) in f.values.iter().enumerate() {
                let (ya, yb) = half(f.ys, i);
                for (j, &v) in row.iter().enumerate() {
                    let (xa, xb) = half(f.xs, j);
                    let c = diverging((v - range.0) / span);
                    cells.push(Rectangle::new([(xa, ya), (xb, yb)], c.filled()));
                }
            }
            chart.draw_series(cells).map_err(|e| err(e.to_string()))?;
            chart
                .draw_series(points.iter().map(|&(x, y, c)| {
                    let fill = if c == 0 { WHITE } else { BLACK };
                    Circle::new((x, y), 3, fill.filled())
                }))
                .map_err(|e| err(e.to_string()))?;
            chart
                .draw_series(
                    points
                        .iter()
                        .map(|&(x, y, _)| Circle::new((x, y), 3, BLACK)),
                )
                .map_err(|e| err(e.to_string()))?;
            if !marks.is_empty() {
                let mut ring = marks.to_vec();
                ring.push(marks[0]);
                chart
                    .draw_series(LineSeries::new(ring, GREEN.stroke_width(2)))
                    .map_err(|e| err(e.to_string()))?;
                chart
                    .draw_series(marks.iter().map(|&p| Circle::new(p, 6, GREEN.filled())))
                    .map_err(|e| err(e.to_string()))?;
            }
        }
        root.present().map_err(|e| err(e.to_string()))
    })
}

/// Checks a [`crate::gan::variance::GanLossSeries`] for the GAN plots, reporting as
/// [`Error::Plot`].
fn check_gan_losses(path: &Path, losses: &crate::gan::variance::GanLossSeries) -> Result<()> {
    losses.validate().map_err(|e| Error::Plot {
        path: path.to_path_buf(),
        reason: format!("losses: {e}"),
    })
}

/// The two loss panels of the GAN plots: the critic and generator losses over the iterations
/// (linear scale) on `left`, and their rolling variance over `losses.window` logged entries
/// (log scale, floored at 1e-17) on `right`.
fn draw_gan_losses(
    left: &DrawingArea<BitMapBackend<'_>, Shift>,
    right: &DrawingArea<BitMapBackend<'_>, Shift>,
    losses: &crate::gan::variance::GanLossSeries,
) -> std::result::Result<(), String> {
    let line = |v: &[f64]| -> Vec<(f64, f64)> {
        losses
            .iterations
            .iter()
            .zip(v)
            .map(|(&i, &y)| (i as f64, y))
            .collect()
    };
    let series = [
        ("critic".to_string(), line(&losses.critic)),
        ("generator".to_string(), line(&losses.generator)),
    ];
    let pts = || series.iter().flat_map(|(_, s)| s.iter().copied());
    let (x0, x1) = pts().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (y0, y1) = pts().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let pad = 0.05 * (y1 - y0).max(1e-9);
    let mut chart = ChartBuilder::on(left)
        .caption("Losses", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(padded(x0, x1), (y0 - pad)..(y1 + pad))
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("outer iteration")
        .y_desc("loss")
        .draw()
        .map_err(|e| e.to_string())?;
    draw_labelled(
        &mut chart,
        &series,
        |_| false,
        SeriesLabelPosition::UpperRight,
        &[],
        &[],
    )?;
    let var = |v: Vec<(usize, f64)>| -> Vec<(f64, f64)> {
        v.into_iter()
            .map(|(i, y)| (i as f64, y.max(FLOOR)))
            .collect()
    };
    let variance = [
        ("critic".to_string(), var(losses.critic_variance())),
        ("generator".to_string(), var(losses.generator_variance())),
    ];
    let title = if variance[0].1.is_empty() {
        format!(
            "Rolling variance (window {}: fewer entries logged)",
            losses.window
        )
    } else {
        format!("Rolling variance (window {} entries)", losses.window)
    };
    draw_log_series(right, &variance, &title, "outer iteration", "variance")
}

/// The GAN on 2-D ring data over training: a row of scatter panels (at most 6 per row), one per
/// snapshot `(iteration, samples)` with the samples row-major `[n, 2]` (blue dots) and the
/// mixture's `centres` marked with red crosses, above two panels: the critic and generator
/// losses, and their rolling variance on a log scale. The scatter axes are equal and fixed by the centres
/// (their extent widened by half the largest centre's distance from the origin, at least ±1);
/// a sample outside them is not drawn, and the panel's title says how many were not.
///
/// # Errors
/// [`Error::Plot`]: no snapshots, an empty or odd-length snapshot, a non-finite sample, no
/// centres, or losses that [`crate::gan::variance::GanLossSeries::validate`] refuses; the file
/// is written atomically.
pub fn plot_gan_ring(
    path: &Path,
    snapshots: &[(usize, Vec<f64>)],
    centres: &[[f64; 2]],
    losses: &crate::gan::variance::GanLossSeries,
) -> Result<()> {
    register_font();
    let err = |e: String| plot_err(path)(e);
    if snapshots.is_empty() {
        return Err(err("no sample snapshots to draw".into()));
    }
    if centres.is_empty() || centres.iter().flatten().any(|v| !v.is_finite()) {
        return Err(err("the centres must be finite and at least one".into()));
    }
    for (it, s) in snapshots {
        if s.is_empty() || !s.len().is_multiple_of(2) {
            return Err(err(format!(
                "snapshot at iteration {it}: {} values, not [n ≥ 1, 2] row-major",
                s.len()
            )));
        }
        if s.iter().any(|v| !v.is_finite()) {
            return Err(err(format!(
                "snapshot at iteration {it}: a non-finite sample"
            )));
        }
    }
    check_gan_losses(path, losses)?;
    let reach = centres
        .iter()
        .map(|c| c[0].hypot(c[1]))
        .fold(0.0f64, f64::max);
    let margin = (0.5 * reach).max(1.0);
    let (x0, x1) = centres
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), c| (a.min(c[0]), b.max(c[0])));
    let (y0, y1) = centres
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), c| (a.min(c[1]), b.max(c[1])));
    let half = 0.5 * (x1 - x0).max(y1 - y0) + margin;
    let (cx, cy) = (0.5 * (x0 + x1), 0.5 * (y0 + y1));
    let (xr, yr) = (cx - half..cx + half, cy - half..cy + half);
    let cols = snapshots.len().min(6);
    let rows = snapshots.len().div_ceil(cols);
    let (panel, bottom_h) = (380u32, 450u32);
    let width = (panel * cols as u32).max(1400);
    write_atomic_with(path, |tmp| {
        let root =
            BitMapBackend::new(tmp, (width, panel * rows as u32 + bottom_h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let (top, bottom) = root.split_vertically(panel * rows as u32);
        let side = width.saturating_sub(panel * cols as u32) / 2;
        let top = top.margin(0, 0, side, side);
        for (area, (it, s)) in top.split_evenly((rows, cols)).iter().zip(snapshots) {
            let inside: Vec<(f64, f64)> = s
                .chunks_exact(2)
                .map(|p| (p[0], p[1]))
                .filter(|p| xr.contains(&p.0) && yr.contains(&p.1))
                .collect();
            let outside = s.len() / 2 - inside.len();
            let title = if outside > 0 {
                format!("iteration {it} ({outside} outside)")
            } else {
                format!("iteration {it}")
            };
            let mut chart = ChartBuilder::on(area)
                .caption(title, ("sans-serif", 18))
                .margin(8)
                .x_label_area_size(30)
                .y_label_area_size(40)
                .build_cartesian_2d(xr.clone(), yr.clone())
                .map_err(|e| err(e.to_string()))?;
            chart
                .configure_mesh()
                .light_line_style(WHITE)
                .draw()
                .map_err(|e| err(e.to_string()))?;
            // Centres first, thin, so that samples on them stay visible.
            chart
                .draw_series(
                    centres
                        .iter()
                        .map(|c| Cross::new((c[0], c[1]), 7, RED.mix(0.8).stroke_width(1))),
                )
                .map_err(|e| err(e.to_string()))?;
            chart
                .draw_series(
                    inside
                        .iter()
                        .map(|&p| Circle::new(p, 1, BLUE.mix(0.5).filled())),
                )
                .map_err(|e| err(e.to_string()))?;
        }
        let (left, right) = bottom.split_horizontally(width / 2);
        draw_gan_losses(&left, &right, losses).map_err(err)?;
        root.present().map_err(|e| err(e.to_string()))
    })
}

/// Generated images in a grid of `grid_cols` columns (each image `[channels, height, width]`
/// row-major, consecutive in `images`, pixels in [−1, 1] — the generator's tanh range — drawn
/// as grey levels for one channel and RGB for three, black at −1), above (with `losses`) two panels: the critic
/// and generator losses, and their rolling variance on a log scale. Pixels outside [−1, 1] are
/// clamped.
///
/// # Errors
/// [`Error::Plot`]: no images, `channels` not 1 or 3, a zero `height`, `width` or `grid_cols`,
/// a length that is not a whole number of images, a non-finite pixel, or losses that
/// [`crate::gan::variance::GanLossSeries::validate`] refuses; the file is written atomically.
pub fn plot_gan_images(
    path: &Path,
    images: &[f64],
    channels: usize,
    height: usize,
    width: usize,
    grid_cols: usize,
    losses: Option<&crate::gan::variance::GanLossSeries>,
) -> Result<()> {
    register_font();
    let err = |e: String| plot_err(path)(e);
    if channels != 1 && channels != 3 {
        return Err(err(format!(
            "{channels} channels: images are drawn with 1 (grey) or 3 (RGB)"
        )));
    }
    if height == 0 || width == 0 || grid_cols == 0 {
        return Err(err(format!(
            "height {height}, width {width} and grid columns {grid_cols} must all be positive"
        )));
    }
    let size = channels * height * width;
    if images.is_empty() || !images.len().is_multiple_of(size) {
        return Err(err(format!(
            "{} pixel values are not a whole number (≥ 1) of {channels}×{height}×{width} images",
            images.len()
        )));
    }
    if let Some(i) = images.iter().position(|v| !v.is_finite()) {
        return Err(err(format!("image {}: a non-finite pixel", i / size)));
    }
    if let Some(l) = losses {
        check_gan_losses(path, l)?;
    }
    let count = images.len() / size;
    let cols = grid_cols.min(count);
    let rows = count.div_ceil(cols);
    let plot_w = 1400u32;
    // Pixels per image pixel: the grid fills the width, at most 12, at least 1; one image
    // pixel of gap between images.
    let scale = (plot_w as usize / (cols * (width + 1))).clamp(1, 12);
    let (cell_w, cell_h) = ((width + 1) * scale, (height + 1) * scale);
    let title_h = 40u32;
    let grid_h = (rows * cell_h) as u32 + title_h + 10;
    let total_w = plot_w.max((cols * cell_w) as u32 + 20);
    let bottom_h = if losses.is_some() { 450u32 } else { 0 };
    write_atomic_with(path, |tmp| {
        let root = BitMapBackend::new(tmp, (total_w, grid_h + bottom_h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let (top, bottom) = root.split_vertically(grid_h);
        let top = top
            .titled(&format!("{count} generated samples"), ("sans-serif", 18))
            .map_err(|e| err(e.to_string()))?;
        let ox0 = (total_w as i32 - (cols * cell_w) as i32) / 2;
        let level = |v: f64| (255.0 * 0.5 * (v.clamp(-1.0, 1.0) + 1.0)).round() as u8;
        let plane = height * width;
        for (k, img) in images.chunks_exact(size).enumerate() {
            let (r, c) = (k / cols, k % cols);
            let (ox, oy) = (ox0 + (c * cell_w) as i32, (r * cell_h) as i32);
            for i in 0..height {
                for j in 0..width {
                    let at = i * width + j;
                    let color = if channels == 1 {
                        let g = level(img[at]);
                        RGBColor(g, g, g)
                    } else {
                        RGBColor(
                            level(img[at]),
                            level(img[plane + at]),
                            level(img[2 * plane + at]),
                        )
                    };
                    let s = scale as i32;
                    let (x, y) = (ox + j as i32 * s, oy + i as i32 * s);
                    top.draw(&Rectangle::new([(x, y), (x + s, y + s)], color.filled()))
                        .map_err(|e| err(e.to_string()))?;
                }
            }
        }
        if let Some(losses) = losses {
            let (left, right) = bottom.split_horizontally(total_w / 2);
            draw_gan_losses(&left, &right, losses).map_err(err)?;
        }
        root.present().map_err(|e| err(e.to_string()))
    })
}

/// The paper's Figure 1 (left): the generator's objective along the straight line
/// `θ(t) = θ_old + t·(θ_new − θ_old)` through one update, the clipped surrogate against the
/// plain WGAN objective (both maximised), with θ_old (t = 0) and θ_new (t = 1) marked by
/// vertical lines and each curve's maximum by a dot. Wu et al. report that the surrogate peaks
/// near θ_new while the plain objective keeps increasing.
///
/// # Errors
/// [`Error::Plot`]: empty input, lengths that differ, or a non-finite value; the file is
/// written atomically.
pub fn plot_surrogate_curve(
    path: &Path,
    t: &[f64],
    surrogate: &[f64],
    plain: &[f64],
) -> Result<()> {
    register_font();
    let err = |e: String| plot_err(path)(e);
    if t.is_empty() || t.len() != surrogate.len() || t.len() != plain.len() {
        return Err(err(format!(
            "need one surrogate and one plain value per t, at least one: {} t, {} surrogate, \
             {} plain",
            t.len(),
            surrogate.len(),
            plain.len()
        )));
    }
    if t.iter()
        .chain(surrogate)
        .chain(plain)
        .any(|v| !v.is_finite())
    {
        return Err(err("a non-finite t or objective value".into()));
    }
    let series = [
        (
            "clipped surrogate".to_string(),
            t.iter()
                .copied()
                .zip(surrogate.iter().copied())
                .collect::<Vec<_>>(),
        ),
        (
            "plain WGAN objective".to_string(),
            t.iter()
                .copied()
                .zip(plain.iter().copied())
                .collect::<Vec<_>>(),
        ),
    ];
    let (tx0, tx1) = t
        .iter()
        .chain([0.0, 1.0].iter())
        .fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    let (y0, y1) = surrogate
        .iter()
        .chain(plain)
        .fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    let pad = 0.08 * (y1 - y0).max(1e-9);
    let (y0, y1) = (y0 - pad, y1 + pad);
    write_atomic_with(path, |tmp| {
        let root = BitMapBackend::new(tmp, (900, 550)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Generator objective along θ_old + t·(θ_new − θ_old)",
                ("sans-serif", 18),
            )
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(60)
            .build_cartesian_2d(padded(tx0, tx1), y0..y1)
            .map_err(|e| err(e.to_string()))?;
        chart
            .configure_mesh()
            .x_desc("t")
            .y_desc("objective (maximised)")
            .draw()
            .map_err(|e| err(e.to_string()))?;
        let marks = [(0.0, "θ_old"), (1.0, "θ_new")];
        for (at, name) in marks {
            chart
                .draw_series(DashedLineSeries::new(
                    [(at, y0), (at, y1)],
                    6,
                    4,
                    BLACK.mix(0.5).stroke_width(1),
                ))
                .map_err(|e| err(e.to_string()))?;
            chart
                .draw_series(std::iter::once(Text::new(
                    name,
                    (at, y1),
                    ("sans-serif", 14).into_font(),
                )))
                .map_err(|e| err(e.to_string()))?;
        }
        let guides: Vec<[(f64, f64); 2]> = marks.iter().map(|m| [(m.0, y0), (m.0, y1)]).collect();
        let guide_lines: Vec<&[(f64, f64)]> = guides.iter().map(|g| &g[..]).collect();
        draw_labelled(
            &mut chart,
            &series,
            |_| false,
            SeriesLabelPosition::LowerLeft,
            &[],
            &guide_lines,
        )
        .map_err(err)?;
        for (i, (_, s)) in series.iter().enumerate() {
            let best = s
                .iter()
                .copied()
                .fold((f64::NAN, f64::MIN), |b, p| if p.1 > b.1 { p } else { b });
            chart
                .draw_series(std::iter::once(Circle::new(
                    best,
                    5,
                    Palette99::pick(i).to_rgba().filled(),
                )))
                .map_err(|e| err(e.to_string()))?;
        }
        root.present().map_err(|e| err(e.to_string()))
    })
}

/// The linearized network's adaptation to new tasks, one panel per task (at most 6): the
/// task's function, the adaptation points, the network trained on the first task, the network
/// with its last layer retrained, and the NTK-GP posterior mean with its 95 % band of f.
///
/// # Errors
/// [`Error::Plot`]; the file is written atomically.
pub fn plot_ntk_tasks(path: &Path, report: &crate::ntk::tasks::AdaptReport) -> Result<()> {
    register_font();
    let tasks: Vec<_> = report
        .tasks
        .iter()
        .filter(|t| !t.grid.x.is_empty())
        .take(6)
        .collect();
    if tasks.is_empty() {
        return Err(Error::Plot {
            path: path.to_path_buf(),
            reason: "no task curves to draw (the grid is empty)".into(),
        });
    }
    let cols = tasks.len().min(3);
    let rows = tasks.len().div_ceil(cols);
    let space = report.config.space.name();
    write_atomic_with(path, |tmp| {
        let root =
            BitMapBackend::new(tmp, (440 * cols as u32, 400 * rows as u32)).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|e| plot_err(path)(e.to_string()))?;
        let panels = root.split_evenly((rows, cols));
        for (k, (panel, t)) in panels.iter().zip(&tasks).enumerate() {
            let g = &t.grid;
            let (ylo, yhi) = bounds(g.truth.iter().chain(&g.mean).chain(&t.adapt.1).copied());
            let (ylo, yhi) = (ylo, yhi + 0.35 * (yhi - ylo));
            let mut chart = ChartBuilder::on(panel)
                .caption(
                    format!(
                        "task {}: MSE {:.3} (network {:.2})",
                        k + 1,
                        t.metrics.test_mse_adapted,
                        t.metrics.test_mse_unadapted
                    ),
                    ("sans-serif", 16),
                )
                .margin(8)
                .x_label_area_size(30)
                .y_label_area_size(45)
                .build_cartesian_2d(g.x[0]..g.x[g.x.len() - 1], ylo..yhi)
                .map_err(|e| plot_err(path)(e.to_string()))?;
            chart
                .configure_mesh()
                .x_desc("x")
                .y_desc("y")
                .draw()
                .map_err(|e| plot_err(path)(e.to_string()))?;
            let clamp = |v: f64| v.clamp(ylo, yhi);
            let band: Vec<(f64, f64)> =
                g.x.iter()
                    .zip(g.mean.iter().zip(&g.sd))
                    .map(|(&x, (&m, &s))| (x, clamp(m + 1.96 * s)))
                    .chain(
                        g.x.iter()
                            .zip(g.mean.iter().zip(&g.sd))
                            .rev()
                            .map(|(&x, (&m, &s))| (x, clamp(m - 1.96 * s))),
                    )
                    .collect();
            chart
                .draw_series(std::iter::once(Polygon::new(
                    band.clone(),
                    BLUE.mix(0.2).filled(),
                )))
                .map_err(|e| plot_err(path)(e.to_string()))?
                .label(format!("NTK-GP ({space}) ± 1.96σ"))
                .legend(|(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 16, y + 5)], BLUE.mix(0.2).filled())
                });
            let line = |ys: &[f64]| -> Vec<(f64, f64)> {
                g.x.iter().zip(ys).map(|(&x, &y)| (x, clamp(y))).collect()
            };
            let curves = [
                (line(&g.truth), BLACK.stroke_width(2), "task"),
                (
                    line(&g.network),
                    RGBColor(140, 140, 140).stroke_width(2),
                    "network (task 0)",
                ),
                (
                    line(&g.last_layer),
                    RGBColor(230, 140, 20).stroke_width(2),
                    "last layer retrained",
                ),
                (line(&g.mean), BLUE.stroke_width(2), "NTK-GP mean"),
            ];
            for (pts, style, label) in &curves {
                let style = *style;
                chart
                    .draw_series(LineSeries::new(pts.iter().copied(), style))
                    .map_err(|e| plot_err(path)(e.to_string()))?
                    .label(*label)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], style));
            }
            let pts: Vec<(f64, f64)> = t
                .adapt
                .0
                .iter()
                .zip(&t.adapt.1)
                .map(|(&x, &y)| (x, clamp(y)))
                .collect();
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 4, RED.filled())))
                .map_err(|e| plot_err(path)(e.to_string()))?
                .label("adaptation points")
                .legend(|(x, y)| Circle::new((x + 8, y), 4, RED.filled()));
            let labels = [
                "NTK-GP ± 1.96σ",
                "task",
                "network (task 0)",
                "last layer retrained",
                "NTK-GP mean",
                "adaptation points",
            ];
            let mut lines: Vec<&[(f64, f64)]> = vec![&band];
            lines.extend(curves.iter().map(|c| &c.0[..]));
            lines.push(&pts);
            draw_legend(&mut chart, &labels, &lines, SeriesLabelPosition::UpperLeft)
                .map_err(plot_err(path))?;
        }
        root.present().map_err(|e| plot_err(path)(e.to_string()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_covered_series_is_drawn_wider() {
        let long: Vec<(f64, f64)> = (0..20).map(|i| (f64::from(i), f64::from(i * i))).collect();
        let short = long[..10].to_vec();
        let apart: Vec<(f64, f64)> = long.iter().map(|p| (p.0, p.1 + 100.0)).collect();
        // The short run's curve lies under the long run's (issue 19: `rl curves`).
        let s = [
            ("short".to_string(), short.clone()),
            ("long".to_string(), long.clone()),
        ];
        assert_eq!(stroke_widths(&s), [5, 2]);
        // Drawn the other way round, half of the long one is under the short one: still wider.
        let s = [
            ("long".to_string(), long.clone()),
            ("short".to_string(), short.clone()),
        ];
        assert_eq!(stroke_widths(&s), [5, 2]);
        // Less than half covered, or apart: the usual width.
        let s = [
            ("long".to_string(), long.clone()),
            ("short".to_string(), short[..5].to_vec()),
        ];
        assert_eq!(stroke_widths(&s), [2, 2]);
        let s = [("a".to_string(), apart), ("long".to_string(), long)];
        assert_eq!(stroke_widths(&s), [2, 2]);
    }

    #[test]
    fn the_legend_goes_where_it_hides_nothing() {
        register_font();
        let mut buf = vec![0u8; 600 * 400 * 3];
        let root = BitMapBackend::with_buffer(&mut buf, (600, 400)).into_drawing_area();
        let chart = ChartBuilder::on(&root)
            .build_cartesian_2d(0.0..1.0, 0.0..1.0)
            .unwrap();
        let labels = ["a line along the top", "a line down the right side"];
        let top = [(0.0, 0.95), (1.0, 0.95)];
        let right = [(0.95, 1.0), (0.95, 0.0)];
        // Upper right, the preferred place, would cover both lines, upper left and lower right
        // one each: lower left is the first free place; a free preferred place wins.
        let lines = [&top[..], &right[..]];
        let p = legend_position(&chart, &labels, &lines, SeriesLabelPosition::UpperRight);
        assert_eq!(p, SeriesLabelPosition::LowerLeft);
        let p = legend_position(&chart, &labels, &lines, SeriesLabelPosition::MiddleLeft);
        assert_eq!(p, SeriesLabelPosition::MiddleLeft);
        // With nothing drawn the preferred place stays.
        let p = legend_position(&chart, &labels, &[], SeriesLabelPosition::UpperRight);
        assert_eq!(p, SeriesLabelPosition::UpperRight);
    }
}
