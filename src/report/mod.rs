//! Report writers shared by every analysis (dissection now, SAE features later): atomic file
//! writes, JSON, Markdown and self-contained HTML pages with inline SVG charts (forest plot,
//! heatmap, bar and line charts — see [`svg`]) and tables.
//!
//! Generic building blocks only: this module knows nothing about factors, features or vectors,
//! and never loads external assets (no scripts, fonts, stylesheets or images from elsewhere).
pub mod atomic;
pub mod svg;

use std::path::{Path, PathBuf};

/// A report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// File-system failure.
    #[error("cannot write {path}: {source}", path = .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Serialisation failure.
    #[error("cannot serialise {path}: {source}", path = .path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
}

/// Writes `bytes` to `path` atomically (a temporary name unique to this writer, then a rename;
/// see [`atomic`]). Refuses to replace anything that is not a regular file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    atomic::write_bytes(path, bytes).map_err(|e| ReportError::Io {
        path: path.to_path_buf(),
        source: e,
    })
}

/// Writes `value` as pretty JSON, atomically.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), ReportError> {
    let s = serde_json::to_string_pretty(value).map_err(|e| ReportError::Json {
        path: path.to_path_buf(),
        source: e,
    })?;
    write_atomic(path, s.as_bytes())
}

/// Escapes `&`, `<`, `>`, `"` and `'` for HTML/SVG text and attributes.
pub fn escape_html(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            _ => o.push(c),
        }
    }
    o
}

/// Formats a number for tables: fixed `digits`, `n/a` for NaN/None-like values.
pub fn fmt_num(x: f64, digits: usize) -> String {
    if x.is_finite() {
        format!("{x:.digits$}")
    } else {
        "n/a".to_string()
    }
}

/// A simple table rendered to Markdown or HTML.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    /// Column headers.
    pub headers: Vec<String>,
    /// Rows of cells (same width as `headers`).
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these headers.
    pub fn new<S: Into<String>>(headers: impl IntoIterator<Item = S>) -> Self {
        Self {
            headers: headers.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row.
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    /// GitHub-flavoured Markdown (pipes in cells escaped).
    pub fn to_markdown(&self) -> String {
        let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
        let mut o = String::new();
        o.push_str(&format!(
            "| {} |\n",
            self.headers
                .iter()
                .map(|h| cell(h))
                .collect::<Vec<_>>()
                .join(" | ")
        ));
        o.push_str(&format!("|{}\n", " --- |".repeat(self.headers.len())));
        for r in &self.rows {
            o.push_str(&format!(
                "| {} |\n",
                r.iter().map(|c| cell(c)).collect::<Vec<_>>().join(" | ")
            ));
        }
        o
    }

    /// An HTML `<table>`.
    pub fn to_html(&self) -> String {
        let mut o = String::from("<table>\n<thead><tr>");
        for h in &self.headers {
            o.push_str(&format!("<th>{}</th>", escape_html(h)));
        }
        o.push_str("</tr></thead>\n<tbody>\n");
        for r in &self.rows {
            o.push_str("<tr>");
            for c in r {
                o.push_str(&format!("<td>{}</td>", escape_html(c)));
            }
            o.push_str("</tr>\n");
        }
        o.push_str("</tbody></table>\n");
        o
    }
}

/// A Markdown document builder.
#[derive(Debug, Clone, Default)]
pub struct Markdown {
    out: String,
}

impl Markdown {
    /// A document starting with a `#` title.
    pub fn new(title: &str) -> Self {
        Self {
            out: format!("# {title}\n\n"),
        }
    }
    /// A `##` heading.
    pub fn h2(&mut self, t: &str) -> &mut Self {
        self.out.push_str(&format!("## {t}\n\n"));
        self
    }
    /// A `###` heading.
    pub fn h3(&mut self, t: &str) -> &mut Self {
        self.out.push_str(&format!("### {t}\n\n"));
        self
    }
    /// A paragraph.
    pub fn p(&mut self, t: &str) -> &mut Self {
        self.out.push_str(t);
        self.out.push_str("\n\n");
        self
    }
    /// A table.
    pub fn table(&mut self, t: &Table) -> &mut Self {
        self.out.push_str(&t.to_markdown());
        self.out.push('\n');
        self
    }
    /// The document text.
    pub fn finish(&self) -> String {
        self.out.clone()
    }
}

/// A self-contained HTML page builder (inline CSS, inline SVG, no external assets).
#[derive(Debug, Clone)]
pub struct HtmlPage {
    title: String,
    body: String,
}

impl HtmlPage {
    /// A page with this title (also the `<h1>`).
    pub fn new(title: &str) -> Self {
        Self {
            title: title.to_string(),
            body: String::new(),
        }
    }
    /// A `<h2>`.
    pub fn h2(&mut self, t: &str) -> &mut Self {
        self.body
            .push_str(&format!("<h2>{}</h2>\n", escape_html(t)));
        self
    }
    /// A `<h3>`.
    pub fn h3(&mut self, t: &str) -> &mut Self {
        self.body
            .push_str(&format!("<h3>{}</h3>\n", escape_html(t)));
        self
    }
    /// A paragraph of plain text (escaped).
    pub fn p(&mut self, t: &str) -> &mut Self {
        self.body.push_str(&format!("<p>{}</p>\n", escape_html(t)));
        self
    }
    /// A table.
    pub fn table(&mut self, t: &Table) -> &mut Self {
        self.body.push_str(&t.to_html());
        self
    }
    /// An inline SVG (from [`svg`]) in a figure.
    pub fn svg(&mut self, svg: &str) -> &mut Self {
        self.body.push_str("<figure>");
        self.body.push_str(svg);
        self.body.push_str("</figure>\n");
        self
    }
    /// Preformatted text (escaped).
    pub fn pre(&mut self, t: &str) -> &mut Self {
        self.body
            .push_str(&format!("<pre>{}</pre>\n", escape_html(t)));
        self
    }
    /// The complete document.
    pub fn finish(&self) -> String {
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{t}</title>\n<style>\n{css}</style>\n</head>\n<body>\n<h1>{t}</h1>\n{body}</body>\n</html>\n",
            t = escape_html(&self.title),
            css = CSS,
            body = self.body
        )
    }
}

const CSS: &str = "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}\n\
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}\n\
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}\n\
th{background:#f0f0f0}\n\
td:first-child,th:first-child{text-align:left}\n\
figure{margin:1em 0;overflow-x:auto}\n\
pre{background:#f6f6f6;padding:0.8em;overflow-x:auto}\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_render_and_escape() {
        let mut t = Table::new(["name", "value"]);
        t.row(["a|b", "<1>"]);
        assert_eq!(
            t.to_markdown(),
            "| name | value |\n| --- | --- |\n| a\\|b | <1> |\n"
        );
        assert!(t.to_html().contains("<td>&lt;1&gt;</td>"));
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_tmp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub").join("r.json");
        write_json(&p, &vec![1, 2]).unwrap();
        write_atomic(&p, b"[3]").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "[3]");
        assert!(!dir.path().join("sub").join("r.json.tmp").exists());
        let mut page = HtmlPage::new("T<");
        page.p("x & y");
        let html = page.finish();
        assert!(html.contains("<title>T&lt;</title>") && html.contains("x &amp; y"));
        assert!(!html.contains("src=") && !html.contains("href="));
    }
}
