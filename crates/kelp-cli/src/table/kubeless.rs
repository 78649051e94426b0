//! Tables as the kubeless CLI v1.0.8 prints them (its `uitable` package, as vendored): every
//! cell padded with spaces to its column's width and cells separated by a tab, the last column
//! padded too. A column is as wide as its widest line, at most the table's maximum; a longer cell
//! is wrapped at white space, and a line still longer (one long word) is cut to the width with
//! `...`. A cell with newlines spans several lines; a row's shorter cells fill its extra lines with
//! spaces. Widths are display widths (a wide character counts two, a control character none).

use unicode_width::UnicodeWidthChar;

/// The widest column of kubeless's lists (`function ls`, `trigger … list`, `autoscale list`,
/// `function top`).
pub(crate) const LIST_WIDTH: usize = 50;
/// The widest column of kubeless's `function describe`.
pub(crate) const DESCRIBE_WIDTH: usize = 80;

/// `rows` laid out with columns at most `max_width` wide, each line ending in `\n`.
pub(crate) fn render(rows: &[Vec<String>], max_width: usize) -> String {
    let mut widths: Vec<usize> = Vec::new();
    for row in rows {
        if widths.len() < row.len() {
            widths.resize(row.len(), 0);
        }
        for (width, cell) in widths.iter_mut().zip(row) {
            let widest = cell.split('\n').map(display_width).max().unwrap_or(0);
            *width = (*width).max(widest.min(max_width));
        }
    }
    let mut out = String::new();
    for row in rows {
        let fitted: Vec<String> = row.iter().zip(&widths).map(|(cell, &width)| fit(cell, width)).collect();
        let cells: Vec<Vec<&str>> = fitted.iter().map(|c| c.split('\n').collect()).collect();
        let height = cells.iter().map(Vec::len).max().unwrap_or(1);
        for line in 0..height {
            let parts: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(lines, &width)| match lines.get(line) {
                    Some(part) if width > 0 => resize(part, width),
                    Some(part) => (*part).to_owned(),
                    // A line past the cell's own: blank, one space at least.
                    None => " ".repeat(width.max(1)),
                })
                .collect();
            out.push_str(&parts.join("\t"));
            out.push('\n');
        }
    }
    out
}

/// The display width of `text`.
fn display_width(text: &str) -> usize {
    text.chars().map(char_width).sum()
}

/// The display width of `c`: none for a control character (a tab, say), two for a wide one.
fn char_width(c: char) -> usize {
    if c.is_control() { 0 } else { c.width().unwrap_or(0) }
}

/// A number as kubeless's tables print one (Go's `%v` of a `float64`: its shortest digits, in
/// exponent form, `1.5e-05` or `1e+06`, below 0.0001 or from a million on).
pub(crate) fn number(value: f64) -> String {
    if value.is_infinite() {
        return if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    let scientific = format!("{value:e}");
    let Some((mantissa, exponent)) = scientific.split_once('e') else { return value.to_string() };
    match exponent.parse::<i32>() {
        Ok(exponent) if value != 0.0 && !(-4..6).contains(&exponent) => {
            let sign = if exponent < 0 { '-' } else { '+' };
            format!("{mantissa}e{sign}{:02}", exponent.unsigned_abs())
        }
        _ => value.to_string(),
    }
}

/// A cell's text in a column `width` wide: wrapped when longer (in bytes, as kubeless measures it
/// here), else padded or cut.
fn fit(cell: &str, width: usize) -> String {
    match width {
        0 => cell.to_owned(),
        _ if cell.len() > width => wrap(cell, width),
        _ => resize(cell, width),
    }
}

/// `text` padded with spaces to `width`, or cut to it with `...` when wider.
fn resize(text: &str, width: usize) -> String {
    let actual = display_width(text);
    if actual <= width {
        return format!("{text}{}", " ".repeat(width - actual));
    }
    let mut cut = String::new();
    let mut taken = 0;
    for c in text.chars() {
        cut.push(c);
        let w = char_width(c);
        // (At least one character is kept, however narrow the column.)
        if taken + w + 3 >= width {
            break;
        }
        taken += w;
    }
    cut + "..."
}

/// `text` wrapped at white space into lines of at most `limit` columns where its words allow, as
/// kubeless's word wrap does it (a word longer than the limit stays whole; white space at a break
/// is dropped; existing line breaks are kept).
fn wrap(text: &str, limit: usize) -> String {
    let mut out = String::with_capacity(text.len());
    let mut current = 0usize;
    let (mut word, mut space) = (Run::default(), Run::default());
    for c in text.chars() {
        if c == '\n' {
            // The white space before a line break is kept when it fits; the line starts over.
            if !word.is_empty() || current + space.width <= limit {
                space.move_to(&mut out);
            }
            space.clear();
            word.move_to(&mut out);
            out.push(c);
            current = 0;
        } else if c.is_whitespace() {
            if space.is_empty() || !word.is_empty() {
                current += space.move_to(&mut out) + word.move_to(&mut out);
            }
            space.push(c);
        } else {
            word.push(c);
            if current + space.width + word.width > limit && word.width < limit {
                out.push('\n');
                current = 0;
                space.clear();
            }
        }
    }
    if !word.is_empty() || current + space.width <= limit {
        space.move_to(&mut out);
    }
    word.move_to(&mut out);
    out
}

/// A run of characters the word wrap holds back (a word, or the white space before one), and its
/// display width.
#[derive(Default)]
struct Run {
    text: String,
    width: usize,
}

impl Run {
    fn push(&mut self, c: char) {
        self.text.push(c);
        self.width += char_width(c);
    }

    fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    fn clear(&mut self) {
        self.text.clear();
        self.width = 0;
    }

    /// Appends the run to `out` and empties it; returns its width.
    fn move_to(&mut self, out: &mut String) -> usize {
        out.push_str(&self.text);
        let width = self.width;
        self.clear();
        width
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(rows: &[&[&str]]) -> Vec<Vec<String>> {
        rows.iter().map(|r| r.iter().map(|c| (*c).to_owned()).collect()).collect()
    }

    #[test]
    fn cells_are_padded_and_separated_by_tabs() {
        let table = rows(&[&["NAME", "NAMESPACE", "FUNCTION NAME"], &["h", "default", "hello"]]);
        assert_eq!(render(&table, LIST_WIDTH), "NAME\tNAMESPACE\tFUNCTION NAME\nh   \tdefault  \thello        \n");
    }

    #[test]
    fn multi_line_cells_fill_the_other_cells_with_spaces() {
        let table = rows(&[&["NAME", "DEPENDENCIES", "STATUS"], &["fn", "express: ^4\nlodash: 4", "1/1 READY"]]);
        assert_eq!(
            render(&table, LIST_WIDTH),
            "NAME\tDEPENDENCIES\tSTATUS   \n\
             fn  \texpress: ^4 \t1/1 READY\n\
             \x20   \tlodash: 4   \t         \n"
        );
        // A cell ending in a newline (kubeless's ENV and LABEL cells) has an empty last line.
        let table = rows(&[&["ENV", "X"], &["A = 1\n", "x"]]);
        assert_eq!(render(&table, LIST_WIDTH), "ENV  \tX\nA = 1\tx\n     \t \n");
    }

    #[test]
    fn long_cells_wrap_at_white_space_and_long_words_are_cut() {
        let table = rows(&[&["K", "V"], &["k", "one two three four"]]);
        assert_eq!(render(&table, 9), "K\tV        \nk\tone two  \n \tthree    \n \tfour     \n");
        let table = rows(&[&["K", "V"], &["k", "abcdefghijklmnop"]]);
        assert_eq!(render(&table, 10), "K\tV         \nk\tabcdefg...\n");
    }

    #[test]
    fn empty_columns_and_short_rows() {
        // An empty column stays empty; a blank filler is one space at least.
        let table = rows(&[&["A", "", "C"], &["a", "", "c"], &["b"]]);
        assert_eq!(render(&table, LIST_WIDTH), "A\t\tC\na\t\tc\nb\n");
        let table = rows(&[&["A", ""], &["a\nb", ""]]);
        assert_eq!(render(&table, LIST_WIDTH), "A\t\na\t\nb\t \n");
    }

    #[test]
    fn numbers_print_as_go_does() {
        let cases = [
            (0.0, "0"),
            (4.0, "4"),
            (0.125, "0.125"),
            (0.0001, "0.0001"),
            (0.00001234, "1.234e-05"),
            (999_999.0, "999999"),
            (1_000_000.0, "1e+06"),
            (123_456_789.0, "1.23456789e+08"),
            (1e100, "1e+100"),
            (-0.5, "-0.5"),
            (f64::INFINITY, "+Inf"),
            (f64::NAN, "NaN"),
        ];
        for (value, printed) in cases {
            assert_eq!(number(value), printed, "{value}");
        }
    }

    #[test]
    fn wide_characters_count_two_columns() {
        let table = rows(&[&["K", "V"], &["日本", "x"]]);
        assert_eq!(render(&table, LIST_WIDTH), "K   \tV\n日本\tx\n");
    }
}
