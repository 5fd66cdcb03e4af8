//! Small SVG plots (no plotting dependency): distributions as box plots
//! and ratios as bars, both on a log10 axis, and curves (a value against
//! a linear x, on a log10 y axis).

use std::fmt::Write;

use crate::stats::quantile;

/// One row of a box plot: a label and its samples.
pub struct BoxRow {
    /// The row's label.
    pub label: String,
    /// Its samples, any order.
    pub samples: Vec<f64>,
}

const W: f64 = 900.0;
const LEFT: f64 = 250.0;
const RIGHT: f64 = 30.0;
const ROW: f64 = 26.0;
const TOP: f64 = 50.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A log10 axis from `lo` to `hi` (decades), mapped to [LEFT, W-RIGHT].
struct Axis {
    lo: f64,
    hi: f64,
}

impl Axis {
    fn new(min: f64, max: f64) -> Self {
        let lo = min.max(1e-9).log10().floor();
        let hi = max.max(min * 10.0).max(1e-9).log10().ceil().max(lo + 1.0);
        Self { lo, hi }
    }

    fn x(&self, v: f64) -> f64 {
        let l = v.max(1e-9).log10().clamp(self.lo, self.hi);
        LEFT + (l - self.lo) / (self.hi - self.lo) * (W - LEFT - RIGHT)
    }

    /// Grid lines and labels at each decade, for a plot `h` high.
    fn draw(&self, s: &mut String, h: f64, unit: &str) {
        let mut d = self.lo;
        while d <= self.hi + 1e-9 {
            let v = 10f64.powf(d);
            let x = self.x(v);
            let _ = write!(
                s,
                r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}</text>"##,
                h - 30.0,
                h - 14.0,
                esc(&format!("{} {unit}", fmt_num(v)))
            );
            d += 1.0;
        }
    }
}

/// A number for an axis label: 1, 10, 0.1, 1e6.
fn fmt_num(v: f64) -> String {
    if (1e-3..1e6).contains(&v) {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{v:.0e}")
    }
}

fn header(s: &mut String, h: f64, title: &str) {
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/><text x="10" y="22" font-size="14" font-weight="bold">{}</text>"##,
        esc(title)
    );
}

/// Box plots: whiskers p1..p99, box p25..p75, a line at the median.
pub fn boxplot(title: &str, unit: &str, rows: &[BoxRow]) -> String {
    let h = TOP + ROW * rows.len() as f64 + 40.0;
    let mut s = String::new();
    header(&mut s, h, title);
    let mut sorted: Vec<Vec<f64>> = rows
        .iter()
        .map(|r| {
            let mut v: Vec<f64> = r
                .samples
                .iter()
                .copied()
                .filter(|x| *x > 0.0 && x.is_finite())
                .collect();
            v.sort_by(f64::total_cmp);
            v
        })
        .collect();
    let min = sorted
        .iter()
        .filter_map(|v| v.first())
        .copied()
        .fold(f64::INFINITY, f64::min);
    let max = sorted
        .iter()
        .filter_map(|v| v.last())
        .copied()
        .fold(0.0, f64::max);
    if !min.is_finite() {
        s.push_str("</svg>\n");
        return s;
    }
    let ax = Axis::new(min, max);
    ax.draw(&mut s, h, unit);
    for (i, (r, v)) in rows.iter().zip(sorted.iter_mut()).enumerate() {
        let y = TOP + ROW * i as f64 + ROW / 2.0;
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="end">{}</text>"##,
            LEFT - 8.0,
            y + 4.0,
            esc(&r.label)
        );
        let q = |p: f64| quantile(v, p).map(|x| ax.x(x));
        let (Some(p1), Some(p25), Some(p50), Some(p75), Some(p99)) =
            (q(0.01), q(0.25), q(0.5), q(0.75), q(0.99))
        else {
            continue;
        };
        let _ = write!(
            s,
            r##"<line x1="{p1:.1}" y1="{y:.1}" x2="{p99:.1}" y2="{y:.1}" stroke="#555"/><rect x="{p25:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#9cf" stroke="#036"/><line x1="{p50:.1}" y1="{:.1}" x2="{p50:.1}" y2="{:.1}" stroke="#c00" stroke-width="2"/>"##,
            y - 8.0,
            (p75 - p25).max(1.0),
            16.0,
            y - 9.0,
            y + 9.0
        );
    }
    s.push_str("</svg>\n");
    s
}

/// One group of bars: a label and (series, value) pairs; `None` is drawn
/// as a note (the run did not finish).
pub struct BarGroup {
    /// The group's label.
    pub label: String,
    /// (series name, value).
    pub bars: Vec<(String, Option<f64>)>,
}

const COLORS: [&str; 4] = ["#4a90d9", "#e8743b", "#19a979", "#945ecf"];

/// Horizontal bars on a log axis, with a reference line at 1.
pub fn bars(title: &str, unit: &str, groups: &[BarGroup]) -> String {
    let nbars: usize = groups.iter().map(|g| g.bars.len()).sum();
    let h = TOP + 14.0 * nbars as f64 + 10.0 * groups.len() as f64 + 40.0;
    let mut s = String::new();
    header(&mut s, h, title);
    let vals = groups
        .iter()
        .flat_map(|g| g.bars.iter().filter_map(|b| b.1))
        .filter(|v| v.is_finite());
    let (min, max) = vals.fold((1.0f64, 1.0f64), |(a, b), v| (a.min(v), b.max(v)));
    let ax = Axis::new(min.min(0.5), max);
    ax.draw(&mut s, h, unit);
    let one = ax.x(1.0);
    let _ = write!(
        s,
        r##"<line x1="{one:.1}" y1="{TOP}" x2="{one:.1}" y2="{:.1}" stroke="#000" stroke-dasharray="4,3"/>"##,
        h - 30.0
    );
    let mut y = TOP;
    let mut series: Vec<String> = Vec::new();
    for g in groups {
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="end">{}</text>"##,
            LEFT - 8.0,
            y + 7.0 * g.bars.len() as f64 + 4.0,
            esc(&g.label)
        );
        for (name, v) in &g.bars {
            let k = match series.iter().position(|x| x == name) {
                Some(k) => k,
                None => {
                    series.push(name.clone());
                    series.len() - 1
                }
            };
            let color = COLORS[k % COLORS.len()];
            match v.filter(|v| v.is_finite()) {
                Some(v) => {
                    let x = ax.x(v);
                    let (x0, x1) = if x < LEFT { (x, LEFT) } else { (LEFT, x) };
                    let _ = write!(
                        s,
                        r##"<rect x="{x0:.1}" y="{:.1}" width="{:.1}" height="12" fill="{color}"/><text x="{:.1}" y="{:.1}" font-size="10">{}</text>"##,
                        y + 1.0,
                        (x1 - x0).max(1.0),
                        x1 + 4.0,
                        y + 11.0,
                        esc(&format!("{name} {v:.2}"))
                    );
                }
                None => {
                    let _ = write!(
                        s,
                        r##"<text x="{:.1}" y="{:.1}" font-size="10" fill="{color}">{} (no figure)</text>"##,
                        LEFT + 4.0,
                        y + 11.0,
                        esc(name)
                    );
                }
            }
            y += 14.0;
        }
        y += 10.0;
    }
    s.push_str("</svg>\n");
    s
}

/// One curve: its points (x, y), drawn in color `color` with dash style
/// `dash` (0: solid, 1: dashed, 2: dotted).
pub struct Series {
    /// The legend's text.
    pub label: String,
    pub color: usize,
    pub dash: usize,
    /// (x, y), any order.
    pub points: Vec<(f64, f64)>,
}

/// Curves on a linear x axis from 0 and a log10 y axis, with a legend.
pub fn lines(title: &str, xunit: &str, yunit: &str, series: &[Series]) -> String {
    const H: f64 = 520.0;
    const L: f64 = 90.0;
    const R: f64 = 230.0;
    const B: f64 = 60.0;
    let mut s = String::new();
    header(&mut s, H, title);
    let pts = || series.iter().flat_map(|c| c.points.iter().copied());
    let ys = pts().map(|p| p.1).filter(|y| *y > 0.0 && y.is_finite());
    let (ymin, ymax) = ys.fold((f64::INFINITY, 0.0f64), |(a, b), y| (a.min(y), b.max(y)));
    let xmax = pts().map(|p| p.0).fold(0.0f64, f64::max);
    if !ymin.is_finite() || xmax <= 0.0 {
        s.push_str("</svg>\n");
        return s;
    }
    let (lo, hi) = (
        ymin.log10().floor(),
        ymax.log10().ceil().max(ymin.log10().floor() + 1.0),
    );
    let xspan = if xmax <= 100.0 { 100.0 } else { xmax };
    let x = |v: f64| L + v / xspan * (W - L - R);
    let y = |v: f64| TOP + (hi - v.max(1e-9).log10()) / (hi - lo) * (H - TOP - B);
    let mut d = lo;
    while d <= hi + 1e-9 {
        let v = 10f64.powf(d);
        let _ = write!(
            s,
            r##"<line x1="{L}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"##,
            W - R,
            L - 6.0,
            y(v) + 4.0,
            esc(&format!("{} {yunit}", fmt_num(v))),
            yy = y(v),
        );
        d += 1.0;
    }
    let mut xs: Vec<f64> = pts().map(|p| p.0).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    for v in xs.iter().copied().chain([0.0, xspan]) {
        let _ = write!(
            s,
            r##"<line x1="{xx:.1}" y1="{TOP}" x2="{xx:.1}" y2="{:.1}" stroke="#eee"/><text x="{xx:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}</text>"##,
            H - B,
            H - B + 16.0,
            esc(&format!("{v:.0}{xunit}")),
            xx = x(v),
        );
    }
    for (k, c) in series.iter().enumerate() {
        let color = COLORS[c.color % COLORS.len()];
        let dash = ["", "8,4", "2,3"][c.dash % 3];
        let mut p = c.points.clone();
        // Not drawn: an infinity (requests that never completed).
        p.retain(|q| q.1 > 0.0 && q.1.is_finite());
        p.sort_by(|a, b| a.0.total_cmp(&b.0));
        let path: Vec<String> = p
            .iter()
            .map(|q| format!("{:.1},{:.1}", x(q.0), y(q.1)))
            .collect();
        let _ = write!(
            s,
            r##"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2" stroke-dasharray="{dash}"/>"##,
            path.join(" ")
        );
        for q in &p {
            let _ = write!(
                s,
                r##"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"/>"##,
                x(q.0),
                y(q.1)
            );
        }
        let ly = TOP + 18.0 * k as f64;
        let _ = write!(
            s,
            r##"<line x1="{:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{color}" stroke-width="2" stroke-dasharray="{dash}"/><text x="{:.1}" y="{:.1}" font-size="11">{}</text>"##,
            W - R + 15.0,
            W - R + 45.0,
            W - R + 50.0,
            ly + 4.0,
            esc(&c.label)
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plots_are_svg() {
        let b = boxplot(
            "t",
            "ns",
            &[
                BoxRow {
                    label: "a<b".into(),
                    samples: vec![100.0, 200.0, 300.0],
                },
                BoxRow {
                    label: "empty".into(),
                    samples: vec![],
                },
            ],
        );
        assert!(b.starts_with("<svg") && b.trim_end().ends_with("</svg>"));
        assert!(b.contains("a&lt;b"));
        let r = bars(
            "r",
            "x",
            &[BarGroup {
                label: "perf".into(),
                bars: vec![
                    ("fifo".into(), Some(2.5)),
                    ("central".into(), None),
                    ("inf".into(), Some(f64::INFINITY)),
                ],
            }],
        );
        assert!(r.contains("fifo 2.50") && r.contains("(no figure)"));
        assert_eq!(fmt_num(1000.0), "1000");
        let l = lines(
            "latency",
            "%",
            "us",
            &[Series {
                label: "cfs p99".into(),
                color: 0,
                dash: 1,
                points: vec![(60.0, 900.0), (30.0, 200.0), (85.0, f64::INFINITY)],
            }],
        );
        assert!(l.contains("<polyline") && l.contains("cfs p99"), "{l}");
        assert!(l.contains(">0%<") && l.contains(">60%<"), "{l}");
        assert_eq!(l.matches("<circle").count(), 2);
        assert!(l.trim_end().ends_with("</svg>"));
        assert_eq!(fmt_num(0.1), "0.1");
    }
}
