//! Grouped bar charts: one group per category (a metric, a database), one bar per series (an
//! embedding), with optional ± error bars (e.g. sd over seeds).

use std::path::Path;

use super::axes::{draw_frame, draw_legend, padded_range, title_room, TICK_SCALE};
use super::canvas::{Anchor, Canvas, Rgb, BLACK, PALETTE};
use super::font::text_width;
use crate::Result;

#[derive(Debug, Clone)]
pub struct BarSeries {
    pub name: String,
    /// One value per category; NaN leaves a gap.
    pub values: Vec<f64>,
    /// Half-heights of error bars, one per category (NaN or 0: none).
    pub errors: Option<Vec<f64>>,
}

#[derive(Debug, Clone)]
pub struct BarChart {
    pub title: String,
    pub y_label: String,
    pub categories: Vec<String>,
    pub series: Vec<BarSeries>,
    /// Fixed y range; by default from 0 (or the lowest value, if negative) to the highest bar.
    pub y_range: Option<(f64, f64)>,
    pub width: usize,
    pub height: usize,
}

impl BarChart {
    pub fn new(title: &str, y_label: &str, categories: Vec<String>) -> Self {
        let width = (200 + categories.len() * 110).clamp(640, 1400).max(title_room(title));
        BarChart { title: title.into(), y_label: y_label.into(), categories, series: vec![], y_range: None, width, height: 480 }
    }

    fn range(&self) -> (f64, f64) {
        if let Some(r) = self.y_range {
            return r;
        }
        let mut lo: f64 = 0.0;
        let mut hi: f64 = f64::NEG_INFINITY;
        for s in &self.series {
            for (i, v) in s.values.iter().enumerate() {
                let e = s.errors.as_ref().and_then(|e| e.get(i)).copied().filter(|e| e.is_finite()).unwrap_or(0.0);
                if v.is_finite() {
                    lo = lo.min(v - e);
                    hi = hi.max(v + e);
                }
            }
        }
        // Headroom above the tallest bar for the legend box in the top-right corner.
        let (_, hi) = padded_range(lo, if hi.is_finite() { hi } else { 1.0 }, 0.08 + 0.05 * self.series.len() as f64);
        (lo, hi)
    }

    pub fn render(&self) -> Canvas {
        let mut canvas = Canvas::new(self.width, self.height);
        let (lo, hi) = self.range();
        let frame = draw_frame(&mut canvas, &self.title, "", &self.y_label, (lo, hi), 24);
        let n_cat = self.categories.len().max(1) as f64;
        let n_ser = self.series.len().max(1) as f64;
        let group_w = 1.0 / n_cat;
        let bar_w = group_w * 0.8 / n_ser;
        let zero = frame.y_px(0.0f64.clamp(lo, hi));
        for (c, name) in self.categories.iter().enumerate() {
            let centre = frame.x_px((c as f64 + 0.5) * group_w);
            let max_chars = ((frame.right - frame.left) as f64 * group_w / 6.0) as usize;
            let shown: String = if name.chars().count() > max_chars.max(3) { name.chars().take(max_chars.max(3) - 1).chain(['.']).collect() } else { name.clone() };
            debug_assert!(text_width(&shown) > 0 || shown.is_empty());
            canvas.text((centre, frame.bottom + 8), &shown, TICK_SCALE, BLACK, Anchor::TopCenter);
            for (s, series) in self.series.iter().enumerate() {
                let v = series.values.get(c).copied().unwrap_or(f64::NAN);
                if !v.is_finite() {
                    continue;
                }
                let colour = PALETTE[s % PALETTE.len()];
                let x0 = frame.x_px(c as f64 * group_w + group_w * 0.1 + s as f64 * bar_w);
                let x1 = frame.x_px(c as f64 * group_w + group_w * 0.1 + (s as f64 + 1.0) * bar_w) - 1;
                canvas.fill_rect((x0, zero), (x1.max(x0), frame.y_px(v.clamp(lo, hi))), colour);
                let e = series.errors.as_ref().and_then(|e| e.get(c)).copied().unwrap_or(f64::NAN);
                if e.is_finite() && e > 0.0 {
                    let xm = (x0 + x1) / 2;
                    let (top, bottom) = (frame.y_px((v + e).min(hi)), frame.y_px((v - e).max(lo)));
                    canvas.line((xm, top), (xm, bottom), BLACK, 1);
                    canvas.line((xm - 3, top), (xm + 3, top), BLACK, 1);
                    canvas.line((xm - 3, bottom), (xm + 3, bottom), BLACK, 1);
                }
            }
        }
        let legend: Vec<(String, Rgb)> = self.series.iter().enumerate().map(|(i, s)| (s.name.clone(), PALETTE[i % PALETTE.len()])).collect();
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

    fn colour_height(c: &Canvas, colour: Rgb) -> usize {
        // The tallest run of `colour` in any column left of the legend: the bar's height.
        (0..c.width * 2 / 3).map(|x| (0..c.height).filter(|&y| c.get(x, y) == colour).count()).max().unwrap_or(0)
    }

    #[test]
    fn bar_heights_are_proportional_to_values() {
        let mut chart = BarChart::new("scores", "score", vec!["a".into(), "b".into()]);
        chart.series.push(BarSeries { name: "one".into(), values: vec![10.0, f64::NAN], errors: None });
        chart.series.push(BarSeries { name: "two".into(), values: vec![40.0, 20.0], errors: Some(vec![2.0, 0.0]) });
        let c = chart.render();
        assert_eq!(BarChart::new(&"long title ".repeat(10), "y", vec![]).width, title_room(&"long title ".repeat(10)));
        let (h1, h2) = (colour_height(&c, PALETTE[0]), colour_height(&c, PALETTE[1]));
        assert!(h1 > 10, "{h1}");
        let ratio = h2 as f64 / h1 as f64;
        assert!((ratio - 4.0).abs() < 0.15, "40 vs 10 drawn {h2} vs {h1} px");
    }
}
