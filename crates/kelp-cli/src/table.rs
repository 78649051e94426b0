//! Aligned text tables: kubectl's style (a header row, columns separated by three spaces, every
//! column but the last padded to its widest cell; a cell with newlines spans several lines, each
//! aligned in its column), for `kelp get`; and the kubeless CLI's ([`kubeless`]), for the
//! commands kubeless has.

pub(crate) mod kubeless;

/// A table being built.
#[derive(Clone, Debug, Default)]
pub(crate) struct Table {
    rows: Vec<Vec<String>>,
    /// Laid out as kubeless does, with columns at most this wide; kubectl's way when `None`.
    kubeless_width: Option<usize>,
}

const GAP: &str = "   ";

impl Table {
    /// A table with this header, laid out kubectl's way.
    pub(crate) fn new<S: AsRef<str>>(header: &[S]) -> Self {
        Self { rows: vec![header.iter().map(|h| h.as_ref().to_owned()).collect()], kubeless_width: None }
    }

    /// A table with this header, laid out as the kubeless CLI does with columns at most
    /// `max_width` wide ([`kubeless`]).
    pub(crate) fn kubeless<S: AsRef<str>>(header: &[S], max_width: usize) -> Self {
        Self { kubeless_width: Some(max_width), ..Self::new(header) }
    }

    /// Adds a row (missing cells are empty, extra cells are kept).
    pub(crate) fn row<I, S>(&mut self, cells: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.rows.push(cells.into_iter().map(Into::into).collect());
        self
    }

    /// The table as text, one line per physical line, each ending in `\n`.
    pub(crate) fn render(&self) -> String {
        match self.kubeless_width {
            Some(max_width) => kubeless::render(&self.rows, max_width),
            None => self.render_kubectl(),
        }
    }

    fn render_kubectl(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut widths = vec![0usize; columns];
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                let widest = cell.lines().map(|l| l.chars().count()).max().unwrap_or(0);
                widths[i] = widths[i].max(widest);
            }
        }
        let mut out = String::new();
        for row in &self.rows {
            let cells: Vec<Vec<&str>> = (0..columns)
                .map(|i| {
                    let lines: Vec<&str> = row.get(i).map(|c| c.lines().collect()).unwrap_or_default();
                    if lines.is_empty() { vec![""] } else { lines }
                })
                .collect();
            let height = cells.iter().map(Vec::len).max().unwrap_or(1);
            for line in 0..height {
                let mut text = String::new();
                for (i, cell) in cells.iter().enumerate() {
                    let part = cell.get(line).copied().unwrap_or("");
                    text.push_str(part);
                    if i + 1 < columns {
                        text.extend(std::iter::repeat_n(' ', widths[i] - part.chars().count()));
                        text.push_str(GAP);
                    }
                }
                out.push_str(text.trim_end());
                out.push('\n');
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_aligned() {
        let mut table = Table::new(&["NAME", "NAMESPACE", "STATUS"]);
        table.row(["hello", "default", "1/1 READY"]).row(["a-much-longer-name", "ns", "0/1 NOT READY"]);
        assert_eq!(
            table.render(),
            "NAME                 NAMESPACE   STATUS\n\
             hello                default     1/1 READY\n\
             a-much-longer-name   ns          0/1 NOT READY\n"
        );
    }

    #[test]
    fn multi_line_cells_stay_in_their_column() {
        let mut table = Table::new(&["NAME", "DEPENDENCIES", "STATUS"]);
        table.row(["fn", "express: ^4\nlodash: 4.17.21", "1/1 READY"]).row(["other", "", ""]);
        assert_eq!(
            table.render(),
            "NAME    DEPENDENCIES      STATUS\n\
             fn      express: ^4       1/1 READY\n\
             \x20       lodash: 4.17.21\n\
             other\n"
        );
        let header_only = Table::new(&["A", "B"]);
        assert_eq!(header_only.render(), "A   B\n");
    }

    #[test]
    fn unicode_widths_count_characters() {
        let mut table = Table::new(&["K", "V"]);
        table.row(["héllo", "x"]).row(["a", "y"]);
        assert_eq!(table.render(), "K       V\nhéllo   x\na       y\n");
    }
}
