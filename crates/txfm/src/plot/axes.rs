//! The frame every chart shares: a title, a plot area with a y axis of "nice" ticks, axis labels
//! and a legend. Charts map data into the plot area through [`Frame::y_px`].

use super::canvas::{Anchor, Canvas, Rgb, BLACK, GREY, LIGHT};
use super::font::{text_width, GLYPH_H};

/// Text scale (canvas pixels per font pixel) of titles, labels and ticks.
pub const TITLE_SCALE: usize = 2;
pub const LABEL_SCALE: usize = 2;
pub const TICK_SCALE: usize = 1;

/// The canvas width a title needs to fit with a margin on each side.
pub fn title_room(title: &str) -> usize {
    text_width(title) * TITLE_SCALE + 40
}

/// Tick positions covering `[lo, hi]` at a 1, 2 or 5 × 10^k step, about `target` of them.
pub fn nice_ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo {
        return vec![lo];
    }
    let raw = (hi - lo) / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

/// A tick value printed with as few digits as its step needs.
pub fn tick_label(v: f64, step: f64) -> String {
    let v = if v.abs() < step * 1e-9 { 0.0 } else { v };
    if v.abs() >= 1e5 || (v != 0.0 && v.abs() < 1e-3) {
        return format!("{v:.1e}");
    }
    let decimals = if step >= 1.0 { 0 } else { (-step.log10().floor()) as usize };
    format!("{v:.decimals$}")
}

/// `[lo, hi]` widened by `pad` of its span on each side; a point span becomes ±0.5 (or ±5%).
pub fn padded_range(lo: f64, hi: f64, pad: f64) -> (f64, f64) {
    if !(lo.is_finite() && hi.is_finite()) {
        return (0.0, 1.0);
    }
    if hi <= lo {
        let d = if lo == 0.0 { 0.5 } else { lo.abs() * 0.05 };
        return (lo - d, hi + d);
    }
    let d = (hi - lo) * pad;
    (lo - d, hi + d)
}

/// A chart's frame after drawing: where the plot area is and how y maps onto it.
#[derive(Debug, Clone, Copy)]
pub struct Frame {
    pub left: i64,
    pub right: i64,
    pub top: i64,
    pub bottom: i64,
    pub y_lo: f64,
    pub y_hi: f64,
}

impl Frame {
    /// Canvas row of value `v`.
    pub fn y_px(&self, v: f64) -> i64 {
        let t = (v - self.y_lo) / (self.y_hi - self.y_lo);
        (self.bottom as f64 - t * (self.bottom - self.top) as f64).round() as i64
    }

    /// Canvas column of `t` in [0, 1] across the plot area.
    pub fn x_px(&self, t: f64) -> i64 {
        (self.left as f64 + t * (self.right - self.left) as f64).round() as i64
    }
}

/// Draws the title, y axis (ticks, grid, label), x axis line and x label, and returns the frame.
/// `bottom_room` is the space under the plot area for x tick labels.
pub fn draw_frame(canvas: &mut Canvas, title: &str, x_label: &str, y_label: &str, (y_lo, y_hi): (f64, f64), bottom_room: i64) -> Frame {
    let ticks = nice_ticks(y_lo, y_hi, 6);
    let step = if ticks.len() > 1 { ticks[1] - ticks[0] } else { 1.0 };
    let labels: Vec<String> = ticks.iter().map(|&t| tick_label(t, step)).collect();
    let widest = labels.iter().map(|l| text_width(l)).max().unwrap_or(0) * TICK_SCALE;
    let label_h = (GLYPH_H * LABEL_SCALE) as i64;
    let left = 12 + label_h + 8 + widest as i64 + 6;
    let top = 16 + (GLYPH_H * TITLE_SCALE) as i64 + 14;
    let x_label_room = if x_label.is_empty() { 0 } else { label_h + 10 };
    let frame = Frame {
        left,
        right: canvas.width as i64 - 20,
        top,
        bottom: canvas.height as i64 - 12 - x_label_room - bottom_room,
        y_lo,
        y_hi,
    };
    canvas.text((canvas.width as i64 / 2, 12), title, TITLE_SCALE, BLACK, Anchor::TopCenter);
    for (t, l) in ticks.iter().zip(&labels) {
        let y = frame.y_px(*t);
        canvas.line((frame.left, y), (frame.right, y), LIGHT, 1);
        canvas.line((frame.left - 4, y), (frame.left, y), BLACK, 1);
        canvas.text((frame.left - 7, y), l, TICK_SCALE, BLACK, Anchor::RightMiddle);
    }
    canvas.line((frame.left, frame.top), (frame.left, frame.bottom), BLACK, 1);
    canvas.line((frame.left, frame.bottom), (frame.right, frame.bottom), BLACK, 1);
    canvas.text_up((12 + label_h / 2, (frame.top + frame.bottom) / 2), y_label, LABEL_SCALE, BLACK);
    if !x_label.is_empty() {
        let y = canvas.height as i64 - 10 - label_h;
        canvas.text(((frame.left + frame.right) / 2, y), x_label, LABEL_SCALE, BLACK, Anchor::TopCenter);
    }
    frame
}

/// A legend box in the plot area's top-right corner: a colour swatch and a name per entry.
pub fn draw_legend(canvas: &mut Canvas, frame: &Frame, entries: &[(String, Rgb)]) {
    if entries.is_empty() {
        return;
    }
    let line_h = (GLYPH_H * TICK_SCALE) as i64 + 6;
    let widest = entries.iter().map(|(n, _)| text_width(n)).max().unwrap_or(0) as i64 * TICK_SCALE as i64;
    let (w, h) = (widest + 28, entries.len() as i64 * line_h + 8);
    let (x0, y0) = (frame.right - w - 6, frame.top + 6);
    canvas.fill_rect((x0, y0), (x0 + w, y0 + h), [255, 255, 255]);
    for (x, y) in [((x0, y0), (x0 + w, y0)), ((x0, y0 + h), (x0 + w, y0 + h)), ((x0, y0), (x0, y0 + h)), ((x0 + w, y0), (x0 + w, y0 + h))] {
        canvas.line(x, y, GREY, 1);
    }
    for (i, (name, colour)) in entries.iter().enumerate() {
        let y = y0 + 4 + i as i64 * line_h;
        canvas.fill_rect((x0 + 6, y + 1), (x0 + 16, y + line_h - 6), *colour);
        canvas.text((x0 + 22, y + 1), name, TICK_SCALE, BLACK, Anchor::TopLeft);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_inside_the_range() {
        assert_eq!(nice_ticks(0.0, 1.0, 5), vec![0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]);
        assert_eq!(nice_ticks(-103.0, -96.0, 6), vec![-102.0, -100.0, -98.0, -96.0]);
        assert_eq!(nice_ticks(0.0, 87.0, 6), vec![0.0, 20.0, 40.0, 60.0, 80.0]);
        assert_eq!(nice_ticks(2.0, 2.0, 6), vec![2.0]);
    }

    #[test]
    fn tick_labels_use_the_steps_digits() {
        assert_eq!(tick_label(0.6000000000000001, 0.2), "0.6");
        assert_eq!(tick_label(40.0, 20.0), "40");
        assert_eq!(tick_label(1e-17, 0.05), "0.00");
        assert_eq!(tick_label(250000.0, 50000.0), "2.5e5");
    }

    #[test]
    fn frame_maps_the_range_onto_the_plot_area() {
        let mut c = Canvas::new(400, 300);
        let f = draw_frame(&mut c, "t", "x", "y", (0.0, 10.0), 20);
        assert_eq!(f.y_px(0.0), f.bottom);
        assert_eq!(f.y_px(10.0), f.top);
        assert!(f.left > 20 && f.right < 400 && f.top > 20 && f.bottom < 300 - 40);
        assert_eq!(f.x_px(1.0), f.right);
    }
}
