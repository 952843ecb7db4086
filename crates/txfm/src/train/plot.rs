//! `loss.png`: the run's loss curves, drawn without a plotting crate (a PNG is a zlib stream of
//! pixel rows, and `flate2` is already here). Training loss per step in blue, validation loss in
//! red, the per-gene-mean baseline's validation loss in grey; steps run left to right over the
//! whole run, the y axis spans the losses shown. The numbers themselves are in `metrics.jsonl`.

use std::io::Write;
use std::path::Path;

use flate2::write::ZlibEncoder;
use flate2::Compression;

use super::metrics::StepRecord;
use crate::atomic::write_atomic_with;
use crate::Result;

const W: usize = 640;
const H: usize = 400;
const MARGIN: usize = 20;
const BLUE: [u8; 3] = [31, 119, 180];
const RED: [u8; 3] = [214, 39, 40];
const GREY: [u8; 3] = [150, 150, 150];
const AXIS: [u8; 3] = [60, 60, 60];

/// An RGB canvas. `[H, W, 3]`
struct Canvas(Vec<u8>);

impl Canvas {
    fn set(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if (0..W as i64).contains(&x) && (0..H as i64).contains(&y) {
            let i = (y as usize * W + x as usize) * 3;
            self.0[i..i + 3].copy_from_slice(&c);
        }
    }

    /// A 2-pixel-wide line (Bresenham).
    fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), c: [u8; 3]) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        loop {
            self.set(x, y, c);
            self.set(x, y + 1, c);
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    fn polyline(&mut self, points: &[(i64, i64)], c: [u8; 3]) {
        for pair in points.windows(2) {
            self.line(pair[0], pair[1], c);
        }
    }
}

/// Draws the curves of `records` (steps `1..=total_steps`) into `path`, atomically.
pub fn write_loss_curve(path: &Path, records: &[StepRecord], total_steps: u64) -> Result<()> {
    let val: Vec<&StepRecord> = records.iter().filter(|r| r.val_loss.is_some()).collect();
    let all = records.iter().map(|r| r.train_loss).chain(val.iter().flat_map(|r| [r.val_loss, r.val_baseline]).flatten());
    let (lo, hi) = all.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    let span = if hi > lo { hi - lo } else { 1.0 };
    let (pw, ph) = ((W - 2 * MARGIN) as f64, (H - 2 * MARGIN) as f64);
    let at = |step: u64, v: f64| -> (i64, i64) {
        let x = MARGIN as f64 + pw * step as f64 / total_steps.max(1) as f64;
        let y = MARGIN as f64 + ph * (hi - v) / span;
        (x.round() as i64, y.round() as i64)
    };
    let mut canvas = Canvas(vec![255; W * H * 3]);
    let (left, right, bottom) = (MARGIN as i64, (W - MARGIN) as i64, (H - MARGIN) as i64);
    canvas.line((left, MARGIN as i64), (left, bottom), AXIS);
    canvas.line((left, bottom), (right, bottom), AXIS);
    let train: Vec<(i64, i64)> = records.iter().filter(|r| r.train_loss.is_finite()).map(|r| at(r.step, r.train_loss)).collect();
    canvas.polyline(&train, BLUE);
    let baseline: Vec<(i64, i64)> = val.iter().filter_map(|r| Some(at(r.step, r.val_baseline?))).collect();
    canvas.polyline(&baseline, GREY);
    let validation: Vec<(i64, i64)> = val.iter().filter_map(|r| Some(at(r.step, r.val_loss?))).collect();
    canvas.polyline(&validation, RED);
    for &(x, y) in baseline.iter().chain(&validation) {
        for (dx, dy) in [(-1, -1), (-1, 1), (1, -1), (1, 1), (0, 0)] {
            canvas.set(x + dx, y + dy, AXIS);
        }
    }
    write_atomic_with(path, |f| f.write_all(&png(&canvas.0)))
}

/// An 8-bit RGB PNG of `pixels` (`[H, W, 3]`).
fn png(pixels: &[u8]) -> Vec<u8> {
    let mut rows = Vec::with_capacity(H * (1 + 3 * W));
    for row in pixels.chunks_exact(3 * W) {
        rows.push(0); // filter type "none"
        rows.extend_from_slice(row);
    }
    let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
    z.write_all(&rows).expect("writing to memory");
    let idat = z.finish().expect("writing to memory");
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&(W as u32).to_be_bytes());
    ihdr.extend_from_slice(&(H as u32).to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8 bits, RGB, deflate, no filter, no interlace
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [(b"IHDR", ihdr.as_slice()), (b"IDAT", idat.as_slice()), (b"IEND", &[])] {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let crc = crc32(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }
    out
}

/// The CRC-32 (IEEE) that PNG chunks end with.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }
}
