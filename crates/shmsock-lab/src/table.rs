//! One description of a table (a title, headers, rows of cells, notes) rendered two ways: padded
//! text for the terminal and Markdown for `report.md`. Every table of the report is a [`Table`];
//! nothing else formats rows.

use std::fmt::Write as _;

/// One table: what the terminal and `report.md` show for one experiment.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Table {
    /// The heading.
    pub(crate) title: String,
    /// Plot file shown under the heading in `report.md`, if any.
    pub(crate) plot: Option<&'static str>,
    /// Sentences printed between the heading and the rows.
    pub(crate) intro: Vec<String>,
    /// Column headers.
    pub(crate) headers: Vec<&'static str>,
    /// Columns (by index) whose cells are text, aligned left; column 0 always is, the others
    /// are numbers, aligned right.
    pub(crate) text_columns: Vec<usize>,
    /// The rows, in groups, each under an optional sub-heading.
    pub(crate) groups: Vec<Group>,
    /// Sentences printed under the table (a note may span lines: the terminal keeps its line
    /// breaks, Markdown joins them).
    pub(crate) notes: Vec<String>,
}

/// Rows of a [`Table`] under one sub-heading (or none).
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Group {
    /// The sub-heading, if any.
    pub(crate) heading: Option<String>,
    /// Cells, one `Vec` per row, as many as the table's headers.
    pub(crate) rows: Vec<Vec<String>>,
}

impl Table {
    /// A table of one group of `rows` under `headers`, with no plot, intro or notes.
    pub(crate) fn new(
        title: impl Into<String>,
        headers: Vec<&'static str>,
        rows: Vec<Vec<String>>,
    ) -> Self {
        Self {
            title: title.into(),
            headers,
            groups: vec![Group {
                heading: None,
                rows,
            }],
            ..Self::default()
        }
    }

    fn is_text(&self, column: usize) -> bool {
        column == 0 || self.text_columns.contains(&column)
    }

    /// The heading, the intro indented, each group (its sub-heading, the headers, the rows in
    /// padded columns), then the notes indented.
    pub(crate) fn to_text(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in self.groups.iter().flat_map(|g| &g.rows) {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: &mut dyn Iterator<Item = &str>| {
            let mut text = String::new();
            for (i, (cell, w)) in cells.zip(&widths).enumerate() {
                let pad = " ".repeat(w.saturating_sub(cell.chars().count()));
                let gap = if i == 0 { "" } else { "  " };
                if self.is_text(i) {
                    let _ = write!(text, "{gap}{cell}{pad}");
                } else {
                    let _ = write!(text, "{gap}{pad}{cell}");
                }
            }
            text.trim_end().to_string()
        };
        let mut out = format!("{}\n", self.title);
        for sentence in &self.intro {
            indent(&mut out, sentence);
        }
        for group in &self.groups {
            if let Some(heading) = &group.heading {
                let _ = writeln!(out, "{heading}");
            }
            let _ = writeln!(out, "{}", line(&mut self.headers.iter().copied()));
            for row in &group.rows {
                let _ = writeln!(out, "{}", line(&mut row.iter().map(String::as_str)));
            }
        }
        for note in &self.notes {
            indent(&mut out, note);
        }
        out
    }

    /// A Markdown section: heading, plot, intro, each group (`###` sub-heading, table), notes.
    pub(crate) fn to_markdown(&self) -> String {
        let mut out = format!("## {}\n\n", self.title);
        if let Some(plot) = self.plot {
            let _ = writeln!(out, "![{}]({plot})\n", plot.trim_end_matches(".svg"));
        }
        for sentence in &self.intro {
            let _ = writeln!(out, "{}\n", sentence.replace('\n', " "));
        }
        let align: Vec<&str> = (0..self.headers.len())
            .map(|i| if self.is_text(i) { "---" } else { "---:" })
            .collect();
        for group in &self.groups {
            if let Some(heading) = &group.heading {
                let _ = writeln!(out, "### {heading}\n");
            }
            let _ = writeln!(out, "| {} |", self.headers.join(" | "));
            let _ = writeln!(out, "|{}|", align.join("|"));
            for row in &group.rows {
                // A cell may quote a table of a document, `|` and all.
                let cells: Vec<String> = row.iter().map(|c| c.replace('|', "\\|")).collect();
                let _ = writeln!(out, "| {} |", cells.join(" | "));
            }
            let _ = writeln!(out);
        }
        for note in &self.notes {
            let _ = writeln!(out, "{}\n", note.replace('\n', " "));
        }
        out
    }
}

impl Table {
    /// An HTML `<section>` (for `report.html`): heading, the plot inlined from `plots` (the
    /// report's `(file name, SVG)` pairs) when the table has one, intro, each group as a
    /// `<table>` (numbers right-aligned), notes. Every text is escaped.
    pub(crate) fn to_html(&self, plots: &[(&'static str, String)]) -> String {
        let mut out = format!(
            "<section id=\"{}\">\n<h2>{}</h2>\n",
            html_id(&self.title),
            html_escape(&self.title)
        );
        if let Some((_, svg)) = self
            .plot
            .and_then(|name| plots.iter().find(|(file, _)| *file == name))
        {
            let _ = writeln!(
                out,
                "<figure class=\"plot\">{}</figure>",
                strip_xml_prolog(svg)
            );
        }
        for sentence in &self.intro {
            let _ = writeln!(out, "<p>{}</p>", html_escape(sentence));
        }
        let class = |i: usize| if self.is_text(i) { "t" } else { "n" };
        for group in &self.groups {
            if let Some(heading) = &group.heading {
                let _ = writeln!(out, "<h3>{}</h3>", html_escape(heading));
            }
            out.push_str("<div class=\"scroll\"><table>\n<thead><tr>");
            for (i, h) in self.headers.iter().enumerate() {
                let _ = write!(out, "<th class=\"{}\">{}</th>", class(i), html_escape(h));
            }
            out.push_str("</tr></thead>\n<tbody>\n");
            for row in &group.rows {
                out.push_str("<tr>");
                for (i, cell) in row.iter().enumerate() {
                    let _ = write!(
                        out,
                        "<td class=\"{}{}\">{}</td>",
                        class(i),
                        verdict_class(cell),
                        html_escape(cell)
                    );
                }
                out.push_str("</tr>\n");
            }
            out.push_str("</tbody></table></div>\n");
        }
        for note in &self.notes {
            let _ = writeln!(
                out,
                "<p class=\"note\">{}</p>",
                html_escape(&note.replace('\n', " "))
            );
        }
        out.push_str("</section>\n");
        out
    }
}

/// `text` with `&`, `<`, `>` and `"` escaped for HTML text and attribute values.
pub(crate) fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// An id for an HTML anchor: the lowercase letters and digits of `title`, dashes between.
pub(crate) fn html_id(title: &str) -> String {
    let mut id = String::new();
    for c in title.chars().take_while(|&c| c != ':' && c != '(') {
        if c.is_ascii_alphanumeric() {
            id.push(c.to_ascii_lowercase());
        } else if !id.ends_with('-') && !id.is_empty() {
            id.push('-');
        }
    }
    id.trim_end_matches('-').to_owned()
}

/// An SVG file's text without its `<?xml ...?>` line, to inline in HTML.
pub(crate) fn strip_xml_prolog(svg: &str) -> &str {
    match svg.strip_prefix("<?xml") {
        Some(rest) => rest
            .find("?>")
            .map_or(svg, |end| rest[end + 2..].trim_start()),
        None => svg,
    }
}

/// A CSS class for cells holding a verdict, so the page can colour them.
fn verdict_class(cell: &str) -> &'static str {
    match cell {
        "agrees" | "met" => " ok",
        c if c.ends_with("than claimed") || c.ends_with("the claim") => " off",
        _ => "",
    }
}

/// Appends `text` with every line indented by two spaces.
fn indent(out: &mut String, text: &str) {
    for line in text.lines() {
        let _ = writeln!(out, "  {line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        let mut t = Table::new(
            "Title",
            vec!["name", "kind", "rate"],
            vec![
                vec!["a".into(), "x".into(), "1".into()],
                vec!["bbb".into(), "yy".into(), "100".into()],
            ],
        );
        t.text_columns = vec![1];
        t.plot = Some("t.svg");
        t.intro = vec!["Before.".into()];
        t.notes = vec!["One\ntwo.".into()];
        t
    }

    #[test]
    fn text_pads_numbers_right_and_text_left() {
        let text = table().to_text();
        assert_eq!(
            text,
            "Title\n  Before.\nname  kind  rate\na     x        1\nbbb   yy     100\n  One\n  two.\n"
        );
    }

    #[test]
    fn markdown_aligns_the_same_columns() {
        let md = table().to_markdown();
        assert_eq!(
            md,
            "## Title\n\n![t](t.svg)\n\nBefore.\n\n| name | kind | rate |\n|---|---|---:|\n\
             | a | x | 1 |\n| bbb | yy | 100 |\n\nOne two.\n\n"
        );
        let mut quoting = table();
        quoting.groups[0].rows[0][1] = "Pipe | ~2-5 μs".into();
        assert!(
            quoting
                .to_markdown()
                .contains("| a | Pipe \\| ~2-5 μs | 1 |"),
            "a quoted | stays in its cell"
        );
    }

    #[test]
    fn html_escapes_and_inlines_the_plot() {
        let mut t = table();
        t.groups[0].rows[0][0] = "<b>&\"".into();
        let plots = [("t.svg", "<?xml version=\"1.0\"?>\n<svg>x</svg>".to_string())];
        let html = t.to_html(&plots);
        assert!(
            html.starts_with("<section id=\"title\">\n<h2>Title</h2>"),
            "{html}"
        );
        assert!(
            html.contains("<figure class=\"plot\"><svg>x</svg></figure>"),
            "{html}"
        );
        assert!(
            html.contains("<td class=\"t\">&lt;b&gt;&amp;&quot;</td>"),
            "{html}"
        );
        assert!(html.contains("<td class=\"n\">100</td>"), "{html}");
        assert!(html.contains("<p class=\"note\">One two.</p>"), "{html}");
        assert!(!html.contains("<b>"), "{html}");
        assert_eq!(html_id("Setup: connect (x)"), "setup");
        assert_eq!(html_id("Latency (round trip)"), "latency");
        assert_eq!(
            html_id("Reference claims vs this machine"),
            "reference-claims-vs-this-machine"
        );
    }

    #[test]
    fn groups_have_sub_headings_in_both() {
        let mut t = table();
        t.groups[0].heading = Some("64 B".into());
        t.groups.push(Group {
            heading: Some("4 KiB".into()),
            rows: vec![vec!["c".into(), "z".into(), "7".into()]],
        });
        assert!(t.to_markdown().contains("### 4 KiB\n\n| name |"));
        assert!(t
            .to_text()
            .contains("4 KiB\nname  kind  rate\nc     z        7\n"));
    }
}
