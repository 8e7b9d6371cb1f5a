//! Tabular data: CSV loading with errors that name the row and column, seeded splits, and
//! standardisation with training statistics.

use std::path::Path;

use keel_core::random::{uniform, Xoshiro256PlusPlus};

use crate::error::{Error, Result};

/// What the target column holds.
#[derive(Clone, Debug, PartialEq)]
pub enum Targets {
    /// Class indices into `classes`.
    Classes {
        /// Per-row class index.
        labels: Vec<usize>,
        /// Class names as they appear in the file, in index order (numeric order when all
        /// labels are numbers).
        classes: Vec<String>,
    },
    /// Real-valued targets.
    Values(Vec<f64>),
}

/// A table of numeric features and one target column.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// Feature names (the non-target columns, in file order).
    pub features: Vec<String>,
    /// Row-major features `[rows, features]`.
    pub x: Vec<f64>,
    /// Targets.
    pub y: Targets,
}

impl Dataset {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.x.len() / self.features.len().max(1)
    }

    /// Number of feature columns.
    pub fn cols(&self) -> usize {
        self.features.len()
    }

    /// The rows `idx` as a new dataset.
    pub fn subset(&self, idx: &[usize]) -> Dataset {
        let c = self.cols();
        let mut x = Vec::with_capacity(idx.len() * c);
        for &i in idx {
            x.extend_from_slice(&self.x[i * c..(i + 1) * c]);
        }
        let y = match &self.y {
            Targets::Classes { labels, classes } => Targets::Classes {
                labels: idx.iter().map(|&i| labels[i]).collect(),
                classes: classes.clone(),
            },
            Targets::Values(v) => Targets::Values(idx.iter().map(|&i| v[i]).collect()),
        };
        Dataset {
            features: self.features.clone(),
            x,
            y,
        }
    }
}

/// A CSV file of numbers only: column names and row-major values.
#[derive(Clone, Debug, PartialEq)]
pub struct NumericTable {
    /// Column names from the header row.
    pub names: Vec<String>,
    /// Row-major values `[rows, names.len()]`.
    pub values: Vec<f64>,
}

impl NumericTable {
    /// Number of data rows.
    pub fn rows(&self) -> usize {
        self.values.len() / self.names.len().max(1)
    }
}

/// A CSV file's text, its column names, and its non-empty data lines.
struct CsvFile<'a> {
    path: &'a Path,
    text: &'a str,
}

/// A file's text, or an error naming it.
fn read_text(path: &Path) -> Result<String> {
    String::from_utf8(crate::output::read(path)?).map_err(|e| Error::Malformed {
        path: path.to_path_buf(),
        reason: format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
    })
}

impl CsvFile<'_> {
    fn bad(&self, reason: String) -> Error {
        Error::Malformed {
            path: self.path.to_path_buf(),
            reason,
        }
    }

    /// The header's names and the data rows as (1-based row number, trimmed cells), each row
    /// checked to have as many cells as the header when it is reached.
    #[allow(clippy::type_complexity)]
    fn split(
        &self,
    ) -> Result<(
        Vec<String>,
        impl Iterator<Item = Result<(usize, Vec<&str>)>>,
    )> {
        let mut lines = self
            .text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty());
        let (_, header) = lines
            .next()
            .ok_or_else(|| self.bad("empty file (no header row)".into()))?;
        let names: Vec<String> = header
            .split(',')
            .map(|s| s.trim().trim_matches('"').to_string())
            .collect();
        let width = names.len();
        let rows = lines.map(move |(line_no, line)| {
            let row = line_no + 1;
            let cells: Vec<&str> = line
                .split(',')
                .map(|s| s.trim().trim_matches('"'))
                .collect();
            if cells.len() != width {
                return Err(self.bad(format!(
                    "row {row}: {} fields, the header has {width}",
                    cells.len()
                )));
            }
            Ok((row, cells))
        });
        Ok((names, rows))
    }

    /// A cell as a finite number, or an error naming its row and column.
    fn number(&self, cell: &str, row: usize, column: &str) -> Result<f64> {
        let v: f64 = cell.parse().map_err(|_| {
            self.bad(format!(
                "row {row}, column '{column}': '{cell}' is not a number"
            ))
        })?;
        if !v.is_finite() {
            return Err(self.bad(format!(
                "row {row}, column '{column}': '{cell}' is not finite"
            )));
        }
        Ok(v)
    }
}

/// Reads a CSV file with a header row whose every cell is a finite number.
///
/// # Errors
/// [`Error::Io`]; [`Error::Malformed`] naming the row (1-based, the header is row 1) and the
/// column for ragged rows, empty cells, non-numbers and NaN/∞, or a file without data rows.
pub fn read_numeric_csv(path: &Path) -> Result<NumericTable> {
    parse_numeric_csv(&read_text(path)?, path)
}

/// As [`read_numeric_csv`], from the file's text (`path` names it in errors).
///
/// # Errors
/// As [`read_numeric_csv`], less the I/O errors.
pub fn parse_numeric_csv(text: &str, path: &Path) -> Result<NumericTable> {
    let file = CsvFile { path, text };
    let (names, rows) = file.split()?;
    let mut values = Vec::new();
    for r in rows {
        let (row, cells) = r?;
        for (cell, name) in cells.iter().zip(&names) {
            values.push(file.number(cell, row, name)?);
        }
    }
    if values.is_empty() {
        return Err(file.bad("no data rows".into()));
    }
    Ok(NumericTable { names, values })
}

/// Reads a CSV file with a header row; `target` names the target column, every other column
/// must be numeric. With `classify`, target values are class labels (any text); otherwise
/// numbers.
///
/// # Errors
/// [`Error::Io`] for an unreadable file; [`Error::Malformed`] naming the row (1-based, counting
/// the header as row 1) and column for empty files, ragged rows, empty cells, non-numbers and
/// NaN/∞; [`Error::InvalidInput`] for an unknown target column (listing the columns) or a
/// classification target with a single class.
pub fn read_csv(path: &Path, target: &str, classify: bool) -> Result<Dataset> {
    parse_csv(&read_text(path)?, path, target, classify)
}

/// As [`read_csv`], from the file's text (`path` names it in errors).
///
/// # Errors
/// As [`read_csv`], less the I/O errors.
pub fn parse_csv(text: &str, path: &Path, target: &str, classify: bool) -> Result<Dataset> {
    let file = CsvFile { path, text };
    let bad = |reason: String| file.bad(reason);
    let (names, rows) = file.split()?;
    let t = names.iter().position(|n| n == target).ok_or_else(|| {
        Error::invalid(
            "target",
            target,
            format!("no such column; columns are: {}", names.join(", ")),
        )
    })?;
    if names.len() < 2 {
        return Err(bad(
            "need at least one feature column besides the target".into()
        ));
    }
    let mut seen = std::collections::HashSet::with_capacity(names.len());
    if let Some(dup) = names.iter().find(|n| !seen.insert(n.as_str())) {
        return Err(bad(format!("duplicate column name '{dup}'")));
    }
    let features: Vec<String> = names
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != t)
        .map(|(_, n)| n.clone())
        .collect();
    let mut x = Vec::new();
    let mut raw_targets = Vec::new();
    for r in rows {
        let (row, cells) = r?;
        for (c, cell) in cells.iter().enumerate() {
            if cell.is_empty() {
                return Err(bad(format!(
                    "row {row}, column '{}': empty value",
                    names[c]
                )));
            }
            if c == t {
                raw_targets.push(cell.to_string());
                continue;
            }
            x.push(file.number(cell, row, &names[c])?);
        }
    }
    if raw_targets.is_empty() {
        return Err(bad("no data rows".into()));
    }
    let y = if classify {
        let mut classes: Vec<String> = raw_targets.clone();
        classes.sort();
        classes.dedup();
        if classes.iter().all(|c| c.parse::<f64>().is_ok()) {
            classes.sort_by(|a, b| {
                a.parse::<f64>()
                    .unwrap_or(0.0)
                    .total_cmp(&b.parse::<f64>().unwrap_or(0.0))
            });
        }
        if classes.len() < 2 {
            return Err(Error::invalid(
                "target",
                target,
                format!(
                    "only one class ('{}') in the data; classification needs at least two",
                    classes[0]
                ),
            ));
        }
        let index: std::collections::HashMap<&str, usize> = classes
            .iter()
            .enumerate()
            .map(|(i, c)| (c.as_str(), i))
            .collect();
        let labels = raw_targets
            .iter()
            .map(|v| index.get(v.as_str()).copied().unwrap_or(0))
            .collect();
        Targets::Classes { labels, classes }
    } else {
        let mut values = Vec::with_capacity(raw_targets.len());
        for (i, v) in raw_targets.iter().enumerate() {
            let f: f64 = v.parse().map_err(|_| bad(format!("row {}, column '{target}': '{v}' is not a number (class labels need classification)", i + 2)))?;
            if !f.is_finite() {
                return Err(bad(format!(
                    "row {}, column '{target}': '{v}' is not finite",
                    i + 2
                )));
            }
            values.push(f);
        }
        Targets::Values(values)
    };
    Ok(Dataset { features, x, y })
}

/// A seeded permutation of `0..n` (Fisher–Yates).
pub fn permutation(n: usize, rng: &mut Xoshiro256PlusPlus) -> Vec<usize> {
    let mut p: Vec<usize> = (0..n).collect();
    shuffle(&mut p, rng);
    p
}

/// Shuffles `v` in place (Fisher–Yates, the same draws as [`permutation`]).
pub fn shuffle<T>(v: &mut [T], rng: &mut Xoshiro256PlusPlus) {
    for i in (1..v.len()).rev() {
        let j = ((uniform::<f64, _>(rng) * (i + 1) as f64) as usize).min(i);
        v.swap(i, j);
    }
}

/// Per-column mean and standard deviation (population; a constant column gets std 1 so it
/// maps to 0 rather than NaN).
pub fn column_stats(x: &[f64], cols: usize) -> (Vec<f64>, Vec<f64>) {
    let rows = x.len() / cols.max(1);
    let mut mean = vec![0.0; cols];
    for r in 0..rows {
        for c in 0..cols {
            mean[c] += x[r * cols + c];
        }
    }
    for m in &mut mean {
        *m /= rows.max(1) as f64;
    }
    let mut var = vec![0.0; cols];
    for r in 0..rows {
        for c in 0..cols {
            var[c] += (x[r * cols + c] - mean[c]).powi(2);
        }
    }
    let std = var
        .iter()
        .map(|v| (v / rows.max(1) as f64).sqrt())
        .map(|s| if s > 1e-12 { s } else { 1.0 })
        .collect();
    (mean, std)
}

/// `(x − mean)/std` per column.
pub fn standardize(x: &[f64], mean: &[f64], std: &[f64]) -> Vec<f64> {
    let c = mean.len();
    x.iter()
        .enumerate()
        .map(|(i, v)| (v - mean[i % c]) / std[i % c])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv(text: &str) -> tempfile::NamedTempFile {
        use std::io::Write;
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn reads_classes_in_numeric_order() {
        let f = csv("a,b,label\n1,2,10\n3,4,2\n5,6,10\n");
        let d = read_csv(f.path(), "label", true).unwrap();
        assert_eq!(d.features, vec!["a", "b"]);
        assert_eq!(d.x, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(
            d.y,
            Targets::Classes {
                labels: vec![1, 0, 1],
                classes: vec!["2".into(), "10".into()]
            }
        );
    }

    #[test]
    fn errors_name_row_and_column() {
        let e = read_csv(csv("a,b,y\n1,2,3\n1,x,3\n").path(), "y", false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("row 3") && e.contains("'b'") && e.contains("'x'"),
            "{e}"
        );
        let e = read_csv(csv("a,b,y\n1,nan,3\n").path(), "y", false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("row 2") && e.contains("not finite"), "{e}");
        let e = read_csv(csv("a,b,y\n1,2\n").path(), "y", false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("row 2") && e.contains("2 fields"), "{e}");
        let e = read_csv(csv("a,b,y\n1,2,3\n").path(), "z", false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("target") && e.contains("a, b, y"), "{e}");
        let e = read_csv(csv("a,y\n1,7\n2,7\n").path(), "y", true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("one class"), "{e}");
        assert!(read_csv(csv("").path(), "y", true)
            .unwrap_err()
            .to_string()
            .contains("empty"));
        assert!(read_csv(csv("a,y\n").path(), "y", true)
            .unwrap_err()
            .to_string()
            .contains("no data rows"));
        let e = read_csv(csv("a,y\n1,\n").path(), "y", false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("empty value") && e.contains("'y'"), "{e}");
    }

    #[test]
    fn permutation_is_a_seeded_permutation() {
        let mut r = Xoshiro256PlusPlus::seed_from_u64(3);
        let mut p = permutation(100, &mut r);
        assert_eq!(
            p,
            permutation(100, &mut Xoshiro256PlusPlus::seed_from_u64(3)),
            "same seed, same order"
        );
        assert_ne!(p, permutation(100, &mut r), "the generator advanced");
        p.sort();
        assert_eq!(p, (0..100).collect::<Vec<_>>());
    }
}
