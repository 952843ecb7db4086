//! PNG charts with titles, labelled axes, tick values and legends, drawn without a plotting crate
//! or a font file (a 5×7 bitmap font covers ASCII): loss curves of training runs and the bar
//! charts of benchmark reports.

pub mod font;
pub mod canvas;
pub mod axes;
pub mod line;
pub mod bars;

pub use bars::{BarChart, BarSeries};
pub use canvas::{Canvas, PALETTE};
pub use line::{LineChart, Series};
