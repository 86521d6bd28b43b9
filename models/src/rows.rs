//! Feature rows from CSV: a header of feature names, one row per line, an empty cell,
//! `NA` or `NaN` for a missing value. Read in batches so memory stays flat.

use std::io::Read;
use std::path::Path;

/// Why rows could not be read. Every variant names the file, and the line and column
/// where one is at fault.
#[derive(Debug, thiserror::Error)]
pub enum RowsError {
    /// The file could not be opened or read.
    #[error("{file}: cannot read: {message}")]
    Io {
        /// The CSV file.
        file: String,
        /// What the system said.
        message: String,
    },
    /// The header lacks a feature the model needs.
    #[error("{file}: line 1: missing feature column `{name}` (the model needs: {needed})")]
    MissingColumn {
        /// The CSV file.
        file: String,
        /// The missing feature.
        name: String,
        /// All the model's features, comma separated.
        needed: String,
    },
    /// The header names a column twice.
    #[error("{file}: line 1, column {column}: duplicate column `{name}`")]
    DuplicateColumn {
        /// The CSV file.
        file: String,
        /// The repeated name.
        name: String,
        /// 1-based column of the second occurrence.
        column: usize,
    },
    /// A row has more or fewer cells than the header.
    #[error("{file}: line {line}: {found} cells, the header has {expected}")]
    WrongWidth {
        /// The CSV file.
        file: String,
        /// 1-based line.
        line: u64,
        /// Cells in the header.
        expected: usize,
        /// Cells in the row.
        found: usize,
    },
    /// A feature cell is not a number.
    #[error("{file}: line {line}, column {column} (`{name}`): not a number: \"{value}\"")]
    NotANumber {
        /// The CSV file.
        file: String,
        /// 1-based line.
        line: u64,
        /// 1-based column.
        column: usize,
        /// The column's name.
        name: String,
        /// The cell as written (cut to 40 characters).
        value: String,
    },
    /// A feature cell is a number no model reads: an infinity, or beyond f32 (xgboost
    /// refuses such input too: "Input data contains `inf` or a value too large").
    #[error("{file}: line {line}, column {column} (`{name}`): \"{value}\" is infinite or too large for a model's float32 input")]
    NotFinite {
        /// The CSV file.
        file: String,
        /// 1-based line.
        line: u64,
        /// 1-based column.
        column: usize,
        /// The column's name.
        name: String,
        /// The cell as written (cut to 40 characters).
        value: String,
    },
    /// The CSV itself is malformed (for example an unterminated quote or invalid UTF-8 in the header).
    #[error("{file}: line {line}: {message}")]
    Malformed {
        /// The CSV file.
        file: String,
        /// 1-based line.
        line: u64,
        /// What is wrong.
        message: String,
    },
}

/// Reads feature rows in the model's column order, in batches.
pub struct RowReader<R: Read> {
    reader: csv::Reader<R>,
    file: String,
    header_len: usize,
    /// For each model feature, its column in the file.
    columns: Vec<usize>,
    names: Vec<String>,
    ignored: Vec<String>,
    record: csv::ByteRecord,
}

impl RowReader<std::fs::File> {
    /// Opens a CSV file and matches its header to `features`.
    pub fn open(path: &Path, features: &[String]) -> Result<Self, RowsError> {
        let file = path.display().to_string();
        let f = std::fs::File::open(path).map_err(|e| RowsError::Io { file: file.clone(), message: e.to_string() })?;
        RowReader::new(f, &file, features)
    }
}

impl<R: Read> RowReader<R> {
    /// Reads the header from `input` and matches it to `features`; `file` names the input in errors.
    pub fn new(input: R, file: &str, features: &[String]) -> Result<Self, RowsError> {
        let mut reader =
            csv::ReaderBuilder::new().has_headers(false).flexible(true).buffer_capacity(1 << 16).from_reader(input);
        let mut header = csv::ByteRecord::new();
        let got = reader.read_byte_record(&mut header).map_err(|e| csv_error(file, e))?;
        if !got {
            return Err(RowsError::Malformed {
                file: file.to_string(),
                line: 1,
                message: "empty file: expected a header of feature names".into(),
            });
        }
        // Linear in the header's width: a file may have a million columns.
        let mut names = Vec::with_capacity(header.len());
        let mut seen = std::collections::HashMap::with_capacity(header.len());
        for (i, cell) in header.iter().enumerate() {
            let name = std::str::from_utf8(cell)
                .map_err(|_| RowsError::Malformed {
                    file: file.to_string(),
                    line: 1,
                    message: format!("column {} of the header is not UTF-8", i + 1),
                })?
                .trim()
                .to_string();
            if seen.insert(name.clone(), i).is_some() {
                return Err(RowsError::DuplicateColumn {
                    file: file.to_string(),
                    name: crate::shown(&name),
                    column: i + 1,
                });
            }
            names.push(name);
        }
        let mut columns = Vec::with_capacity(features.len());
        for f in features {
            let col = *seen.get(f).ok_or_else(|| RowsError::MissingColumn {
                file: file.to_string(),
                name: f.clone(),
                needed: features.join(", "),
            })?;
            columns.push(col);
        }
        let wanted: std::collections::HashSet<&String> = features.iter().collect();
        let ignored = names.iter().filter(|n| !wanted.contains(n)).cloned().collect();
        Ok(RowReader {
            reader,
            file: file.to_string(),
            header_len: names.len(),
            columns,
            names,
            ignored,
            record: csv::ByteRecord::new(),
        })
    }

    /// Header columns that are not model features (an `id`, say); they are skipped.
    pub fn ignored_columns(&self) -> &[String] {
        &self.ignored
    }

    /// The ignored columns in one short line: how many, and the first five by name
    /// (`3 columns: id, note, label`; `100000 columns: c0, c1, c2, c3, c4 and 99995 more`).
    pub fn ignored_summary(&self) -> Option<String> {
        let n = self.ignored.len();
        let first: Vec<String> = self.ignored.iter().take(5).map(|c| crate::shown(c)).collect();
        let more = if n > 5 { format!(" and {} more", n - 5) } else { String::new() };
        (n > 0).then(|| format!("{n} column{}: {}{more}", if n == 1 { "" } else { "s" }, first.join(", ")))
    }

    /// Clears `out` and fills it with up to `max_rows` rows, row-major in the model's
    /// feature order, as f32 (the f64 value rounded once, as XGBoost casts its input).
    /// Returns the number of rows read; 0 at the end of the file.
    pub fn read_batch(&mut self, out: &mut Vec<f32>, max_rows: usize) -> Result<usize, RowsError> {
        out.clear();
        let mut n = 0;
        while n < max_rows {
            if !self.reader.read_byte_record(&mut self.record).map_err(|e| csv_error(&self.file, e))? {
                break;
            }
            let line = self.record.position().map_or(0, |p| p.line());
            if self.record.len() != self.header_len {
                if self.record.len() == 1 && self.record[0].is_empty() {
                    continue; // a blank line
                }
                return Err(RowsError::WrongWidth {
                    file: self.file.clone(),
                    line,
                    expected: self.header_len,
                    found: self.record.len(),
                });
            }
            for &col in &self.columns {
                let cell = &self.record[col];
                let shown = || crate::shown(&String::from_utf8_lossy(cell));
                let value = parse_cell(cell).ok_or_else(|| RowsError::NotANumber {
                    file: self.file.clone(),
                    line,
                    column: col + 1,
                    name: crate::shown(&self.names[col]),
                    value: shown(),
                })?;
                if value.is_infinite() || (value as f32).is_infinite() {
                    return Err(RowsError::NotFinite {
                        file: self.file.clone(),
                        line,
                        column: col + 1,
                        name: crate::shown(&self.names[col]),
                        value: shown(),
                    });
                }
                out.push(value as f32);
            }
            n += 1;
        }
        Ok(n)
    }
}

/// A cell as f64: empty, `NA` or `NaN` is missing (NaN); anything else must be a number.
pub fn parse_cell(cell: &[u8]) -> Option<f64> {
    let cell = cell.trim_ascii();
    match cell {
        b"" | b"NA" | b"NaN" | b"nan" => Some(f64::NAN),
        _ => fast_float2::parse::<f64, _>(cell).ok(),
    }
}

fn csv_error(file: &str, e: csv::Error) -> RowsError {
    let line = e.position().map_or(0, |p| p.line());
    match e.into_kind() {
        csv::ErrorKind::Io(io) => RowsError::Io { file: file.to_string(), message: io.to_string() },
        kind => RowsError::Malformed { file: file.to_string(), line, message: format!("{kind:?}") },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn read(text: &str, features: &[&str]) -> Result<(Vec<f32>, Vec<String>), RowsError> {
        let mut r = RowReader::new(text.as_bytes(), "in.csv", &names(features))?;
        let mut out = Vec::new();
        let mut all = Vec::new();
        while r.read_batch(&mut out, 2)? > 0 {
            all.extend_from_slice(&out);
        }
        Ok((all, r.ignored_columns().to_vec()))
    }

    #[test]
    fn reorders_columns_and_reads_missing_values() {
        let (rows, ignored) = read("id,b,a\n7,1.5,2\n8,,NA\n9,NaN,-3e2\n", &["a", "b"]).unwrap();
        assert_eq!(ignored, ["id"]);
        assert_eq!(rows[..2], [2.0, 1.5]);
        assert!(rows[2].is_nan() && rows[3].is_nan() && rows[5].is_nan());
        assert_eq!(rows[4], -300.0);
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let e = read("a,b\n1,2\n3,x\n", &["a", "b"]).unwrap_err().to_string();
        assert_eq!(e, "in.csv: line 3, column 2 (`b`): not a number: \"x\"");
        let e = read("a,b\n1,2,3\n", &["a", "b"]).unwrap_err().to_string();
        assert_eq!(e, "in.csv: line 2: 3 cells, the header has 2");
        let e = read("a\n1\n", &["a", "b"]).unwrap_err().to_string();
        assert!(e.starts_with("in.csv: line 1: missing feature column `b`"), "{e}");
        let e = read("a,a\n1,2\n", &["a"]).unwrap_err().to_string();
        assert_eq!(e, "in.csv: line 1, column 2: duplicate column `a`");
        assert!(read("", &["a"]).unwrap_err().to_string().contains("empty file"));
    }

    #[test]
    fn rounds_through_f64_once() {
        // 1 + 2^-24 + 2^-60 rounds up to 1 + 2^-23 in f32 only when read as f64 first
        // would round it to the tie 1 + 2^-24 and then to even (1.0); XGBoost reads f64.
        let (rows, _) = read("a\n1.00000005960464477539062500000001\n", &["a"]).unwrap();
        let via_f64 = "1.00000005960464477539062500000001".parse::<f64>().unwrap() as f32;
        assert_eq!(rows[0], via_f64);
    }
}
