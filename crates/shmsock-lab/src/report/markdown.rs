//! `report.md`: the same tables as the terminal, as Markdown, with the method notes.

use super::Report;

impl Report {
    /// The report as Markdown.
    pub fn render_markdown(&self) -> String {
        format!("# shmsock lab report\n\n```text\n{}```\n", self.render())
    }
}
