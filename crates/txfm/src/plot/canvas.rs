//! An RGB pixel canvas with lines, rectangles and bitmap text, saved as PNG. PNG is a zlib stream of
//! filtered pixel rows, and `flate2` is already a dependency, so no image crate is needed.

use std::io::Write;
use std::path::Path;

use flate2::write::ZlibEncoder;
use flate2::Compression;

use super::font::{ink, text_width, ADVANCE, GLYPH_H, GLYPH_W};
use crate::atomic::write_atomic_with;
use crate::Result;

pub type Rgb = [u8; 3];

pub const WHITE: Rgb = [255, 255, 255];
pub const BLACK: Rgb = [30, 30, 30];
pub const GREY: Rgb = [150, 150, 150];
pub const LIGHT: Rgb = [225, 225, 225];

/// Matplotlib's "tab10" cycle: series colours readers already know.
pub const PALETTE: [Rgb; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];

/// Where a text's anchor point sits on the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    /// The anchor is the text's top-left corner.
    TopLeft,
    /// Centred horizontally, the anchor on the top edge.
    TopCenter,
    /// Right-aligned, centred vertically (y tick labels).
    RightMiddle,
    /// Centred both ways.
    Center,
}

/// An RGB image. Pixels row-major `[height, width, 3]`.
#[derive(Debug, Clone)]
pub struct Canvas {
    pub width: usize,
    pub height: usize,
    pixels: Vec<u8>,
}

impl Canvas {
    pub fn new(width: usize, height: usize) -> Self {
        Canvas { width, height, pixels: vec![255; width * height * 3] }
    }

    /// `canvases` one below the other, left-aligned on a white canvas as wide as the widest.
    pub fn stack(canvases: &[Canvas]) -> Canvas {
        let width = canvases.iter().map(|c| c.width).max().unwrap_or(0);
        let mut out = Canvas::new(width, canvases.iter().map(|c| c.height).sum());
        let mut top = 0;
        for c in canvases {
            for y in 0..c.height {
                let row = &c.pixels[y * c.width * 3..(y + 1) * c.width * 3];
                let at = (top + y) * width * 3;
                out.pixels[at..at + row.len()].copy_from_slice(row);
            }
            top += c.height;
        }
        out
    }

    /// The colour at `(x, y)`. Panics outside the canvas.
    pub fn get(&self, x: usize, y: usize) -> Rgb {
        let i = (y * self.width + x) * 3;
        [self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]]
    }

    /// Sets a pixel; points outside the canvas are clipped.
    pub fn set(&mut self, x: i64, y: i64, c: Rgb) {
        if (0..self.width as i64).contains(&x) && (0..self.height as i64).contains(&y) {
            let i = (y as usize * self.width + x as usize) * 3;
            self.pixels[i..i + 3].copy_from_slice(&c);
        }
    }

    /// Fills the rectangle with corners `(x0, y0)` and `(x1, y1)`, both included, in any order.
    pub fn fill_rect(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), c: Rgb) {
        for y in y0.min(y1)..=y0.max(y1) {
            for x in x0.min(x1)..=x0.max(x1) {
                self.set(x, y, c);
            }
        }
    }

    /// A line `width` pixels thick (Bresenham, thickened downwards and rightwards).
    pub fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), c: Rgb, width: i64) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        loop {
            for w in 0..width {
                if dx >= -dy {
                    self.set(x, y + w, c);
                } else {
                    self.set(x + w, y, c);
                }
            }
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

    pub fn polyline(&mut self, points: &[(i64, i64)], c: Rgb, width: i64) {
        for pair in points.windows(2) {
            self.line(pair[0], pair[1], c, width);
        }
    }

    /// Draws `text` at `scale` canvas pixels per font pixel, placed by `anchor` at `(x, y)`.
    pub fn text(&mut self, (x, y): (i64, i64), text: &str, scale: usize, c: Rgb, anchor: Anchor) {
        let (w, h) = ((text_width(text) * scale) as i64, (GLYPH_H * scale) as i64);
        let (left, top) = match anchor {
            Anchor::TopLeft => (x, y),
            Anchor::TopCenter => (x - w / 2, y),
            Anchor::RightMiddle => (x - w, y - h / 2),
            Anchor::Center => (x - w / 2, y - h / 2),
        };
        self.glyphs(text, scale, c, |col, row| (left + col, top + row));
    }

    /// Draws `text` rotated a quarter turn anticlockwise (reading bottom to top, as y-axis labels
    /// do), centred on `(x, y)`.
    pub fn text_up(&mut self, (x, y): (i64, i64), text: &str, scale: usize, c: Rgb) {
        let (w, h) = ((text_width(text) * scale) as i64, (GLYPH_H * scale) as i64);
        let (left, bottom) = (x - h / 2, y + w / 2);
        self.glyphs(text, scale, c, |col, row| (left + row, bottom - col));
    }

    /// Inks every font pixel of `text` through `place`, which maps unrotated text coordinates
    /// (column, row, in canvas pixels from the text's top-left) to the canvas.
    fn glyphs(&mut self, text: &str, scale: usize, c: Rgb, place: impl Fn(i64, i64) -> (i64, i64)) {
        for (i, ch) in text.chars().enumerate() {
            for row in 0..GLYPH_H {
                for col in 0..GLYPH_W {
                    if !ink(ch, col, row) {
                        continue;
                    }
                    for sy in 0..scale {
                        for sx in 0..scale {
                            let tx = ((i * ADVANCE + col) * scale + sx) as i64;
                            let ty = (row * scale + sy) as i64;
                            let (px, py) = place(tx, ty);
                            self.set(px, py, c);
                        }
                    }
                }
            }
        }
    }

    /// The image as an 8-bit RGB PNG.
    pub fn to_png(&self) -> Vec<u8> {
        let mut rows = Vec::with_capacity(self.height * (1 + 3 * self.width));
        for row in self.pixels.chunks_exact(3 * self.width) {
            rows.push(0); // filter type "none"
            rows.extend_from_slice(row);
        }
        let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
        z.write_all(&rows).expect("writing to memory");
        let idat = z.finish().expect("writing to memory");
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&(self.width as u32).to_be_bytes());
        ihdr.extend_from_slice(&(self.height as u32).to_be_bytes());
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

    /// Writes the PNG to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let png = self.to_png();
        write_atomic_with(path, |f| f.write_all(&png))
    }
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

    #[test]
    fn text_lands_where_anchored() {
        let mut c = Canvas::new(40, 20);
        c.text((0, 0), "L", 2, BLACK, Anchor::TopLeft);
        // 'L' at scale 2: the left column spans rows 0..14, the bottom row columns 0..10.
        assert_eq!(c.get(0, 0), BLACK);
        assert_eq!(c.get(1, 13), BLACK);
        assert_eq!(c.get(9, 13), BLACK);
        assert_eq!(c.get(9, 0), WHITE);
        assert_eq!(c.get(0, 14), WHITE);
        let mut up = Canvas::new(20, 20);
        up.text_up((10, 10), "L", 1, BLACK);
        // Rotated anticlockwise: L's bottom row becomes the right column, its left column the
        // bottom row.
        let inked: Vec<(usize, usize)> = (0..20).flat_map(|y| (0..20).map(move |x| (x, y))).filter(|&(x, y)| up.get(x, y) == BLACK).collect();
        assert_eq!(inked.len(), 7 + 5 - 1);
        let max_x = inked.iter().map(|p| p.0).max().unwrap();
        assert_eq!(inked.iter().filter(|p| p.0 == max_x).count(), 5);
    }

    #[test]
    fn stack_puts_canvases_one_below_the_other_on_white() {
        let (mut a, mut b) = (Canvas::new(3, 2), Canvas::new(2, 1));
        a.set(2, 1, [1, 2, 3]);
        b.set(1, 0, [4, 5, 6]);
        let s = Canvas::stack(&[a, b]);
        assert_eq!((s.width, s.height), (3, 3));
        assert_eq!(s.get(2, 1), [1, 2, 3]);
        assert_eq!(s.get(1, 2), [4, 5, 6]);
        assert_eq!(s.get(2, 2), WHITE);
    }

    #[test]
    fn png_has_the_signature_and_decodes_to_its_size() {
        let mut c = Canvas::new(3, 2);
        c.set(1, 1, [1, 2, 3]);
        let png = c.to_png();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), 3);
        assert_eq!(u32::from_be_bytes(png[20..24].try_into().unwrap()), 2);
        let idat_len = u32::from_be_bytes(png[33..37].try_into().unwrap()) as usize;
        let mut raw = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::ZlibDecoder::new(&png[41..41 + idat_len]), &mut raw).unwrap();
        assert_eq!(raw.len(), 2 * (1 + 9));
        assert_eq!(&raw[10 + 1 + 3..10 + 1 + 6], &[1, 2, 3]);
    }
}
