//! SVG plots of the report (plotters, SVG backend only: no fonts or system libraries).

use super::Report;

impl Report {
    /// The plots: (file name, SVG text).
    pub fn plots(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }
}
