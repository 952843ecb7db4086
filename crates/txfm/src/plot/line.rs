//! Line charts (e.g. training and validation loss against step).

use std::path::Path;

use super::axes::{draw_frame, draw_legend, nice_ticks, padded_range, tick_label, title_room, TICK_SCALE};
use super::canvas::{Anchor, Canvas, Rgb, BLACK};
use crate::Result;

/// One curve: points in x order; `markers` draws a dot at each point (sparse series such as
/// validation evaluations).
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub colour: Rgb,
    pub points: Vec<(f64, f64)>,
    pub markers: bool,
}

#[derive(Debug, Clone)]
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    pub width: usize,
    pub height: usize,
}

impl LineChart {
    pub fn new(title: &str, x_label: &str, y_label: &str) -> Self {
        LineChart { title: title.into(), x_label: x_label.into(), y_label: y_label.into(), series: vec![], width: 800.max(title_room(title)), height: 480 }
    }

    pub fn render(&self) -> Canvas {
        let finite = || self.series.iter().flat_map(|s| s.points.iter()).filter(|(x, y)| x.is_finite() && y.is_finite());
        let (x_lo, x_hi) = finite().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.0), b.max(p.0)));
        let (y_lo, y_hi) = finite().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.1), b.max(p.1)));
        let (x_lo, x_hi) = if x_lo < x_hi { (x_lo, x_hi) } else { padded_range(x_lo, x_hi, 0.0) };
        let mut canvas = Canvas::new(self.width, self.height);
        let frame = draw_frame(&mut canvas, &self.title, &self.x_label, &self.y_label, padded_range(y_lo, y_hi, 0.05), 16);
        let x_t = |x: f64| (x - x_lo) / (x_hi - x_lo);
        let ticks = nice_ticks(x_lo, x_hi, 8);
        let step = if ticks.len() > 1 { ticks[1] - ticks[0] } else { 1.0 };
        for t in &ticks {
            let x = frame.x_px(x_t(*t));
            canvas.line((x, frame.bottom), (x, frame.bottom + 4), BLACK, 1);
            canvas.text((x, frame.bottom + 7), &tick_label(*t, step), TICK_SCALE, BLACK, Anchor::TopCenter);
        }
        for s in &self.series {
            let pts: Vec<(i64, i64)> = s.points.iter().filter(|(x, y)| x.is_finite() && y.is_finite()).map(|&(x, y)| (frame.x_px(x_t(x)), frame.y_px(y))).collect();
            canvas.polyline(&pts, s.colour, 2);
            if s.markers {
                for &(x, y) in &pts {
                    canvas.fill_rect((x - 2, y - 2), (x + 2, y + 2), s.colour);
                }
            }
        }
        let legend: Vec<(String, Rgb)> = self.series.iter().map(|s| (s.name.clone(), s.colour)).collect();
        draw_legend(&mut canvas, &frame, &legend);
        canvas
    }

    /// Renders and writes the PNG atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        self.render().save(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::canvas::PALETTE;

    #[test]
    fn a_falling_curve_is_drawn_from_top_left_to_bottom_right() {
        let mut chart = LineChart::new("loss", "step", "loss");
        chart.series.push(Series { name: "train".into(), colour: PALETTE[0], points: (0..=10).map(|i| (i as f64, 10.0 - i as f64)).collect(), markers: false });
        let c = chart.render();
        let blue: Vec<(usize, usize)> = (0..c.height).flat_map(|y| (0..c.width).map(move |x| (x, y))).filter(|&(x, y)| c.get(x, y) == PALETTE[0]).collect();
        // The legend swatch is blue too; the curve's pixels are the ones left of the legend box.
        let curve: Vec<&(usize, usize)> = blue.iter().filter(|p| p.0 < c.width / 2).collect();
        let first = curve.iter().min_by_key(|p| p.0).unwrap();
        let last = blue.iter().filter(|p| p.1 > c.height / 2).max_by_key(|p| p.0).unwrap();
        assert!(first.1 < c.height / 3, "the curve starts high: {first:?}");
        assert!(last.1 > c.height / 2, "the curve ends low: {last:?}");
    }
}
