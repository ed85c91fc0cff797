//! Exports of a job's output (clean.csv or rejected.csv) as CSV or JSON Lines, with a column
//! selection and CSV formula-injection escaping. [`Converter`] is pure and push-based (feed it
//! bytes in any pieces, it writes converted rows to the caller's buffer); [`export_object`]
//! streams an object through it into a new object in bounded memory (one 8 MiB buffer, then
//! multipart).
//!
//! Formula escaping (OWASP "CSV Injection"): a cell that starts with `=`, `+`, `-`, `@`, tab or
//! CR gets a leading `'`, so a spreadsheet shows it as text instead of evaluating it. One
//! deliberate exception: a cell that is entirely a number (`-12`, `+3.5`, `-1e3`) is left as
//! it is — a spreadsheet reads it as that number, not a formula, and escaping would turn every
//! negative amount into text. Callers who want OWASP's "escape all" can still filter, and
//! `formula_escape: false` turns escaping off.
//!
//! Not here: HTTP (the api's `exports` module), presigning.

use tessera_engine::error::EngineError;
use tessera_engine::parse::{Outcome, Parser, ParserConfig, RecordBuf};

pub mod job;

pub use job::{export_tasks, ExportJob, ExportState};

use crate::ports::StoreError;

/// Which output of a job an export converts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Output {
    Clean,
    Rejected,
}

impl Output {
    pub fn as_str(self) -> &'static str {
        match self {
            Output::Clean => "clean",
            Output::Rejected => "rejected",
        }
    }
}

/// Length of the header record at the start of an output (terminator included), or `None`
/// when `head` does not reach its end (read more). `at_eof`: `head` is the whole object.
pub fn header_len(head: &[u8], at_eof: bool) -> Result<Option<u64>, ExportError> {
    let mut parser = Parser::from_start(ParserConfig::default());
    let mut rec = RecordBuf::default();
    let (o, _) = parser.parse(head, &mut rec);
    let end = match o {
        Outcome::Record => rec.content_end as usize,
        _ if at_eof => {
            return match parser.finish(&mut rec)? {
                Outcome::Record => Ok(Some(head.len() as u64)),
                _ => Ok(None),
            }
        }
        _ => return Ok(None),
    };
    let term = match (head.get(end), head.get(end + 1)) {
        (Some(b'\r'), Some(b'\n')) => 2,
        (Some(b'\r'), None) if !at_eof => return Ok(None),
        _ => 1,
    };
    Ok(Some((end + term).min(head.len()) as u64))
}

/// Output format of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
    Jsonl,
}

impl Format {
    pub fn ext(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
        }
    }
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv",
            Format::Jsonl => "application/x-ndjson",
        }
    }
}

/// Why an export cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A requested column is not in the output's header.
    #[error("unknown column `{column}`; the columns are: {columns}")]
    UnknownColumn { column: String, columns: String },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Writes one CSV cell, prefixed with `'` when `escape` is on and a spreadsheet would read it
/// as a formula.
pub fn write_cell(out: &mut Vec<u8>, scratch: &mut Vec<u8>, v: &[u8], escape: bool) {
    if escape && needs_formula_escape(v) {
        scratch.clear();
        scratch.push(b'\'');
        scratch.extend_from_slice(v);
        tessera_engine::chunk::write_field(out, scratch);
    } else {
        tessera_engine::chunk::write_field(out, v);
    }
}

/// The first column named more than once in an export's `columns` (each may be picked once: a
/// repeated pick would let one request multiply the output's size without bound).
pub fn repeated_column(columns: &[String]) -> Option<&str> {
    let mut seen = std::collections::HashSet::new();
    columns
        .iter()
        .find(|c| !seen.insert(c.as_str()))
        .map(String::as_str)
}

/// Whether `v` would be read as a formula by a spreadsheet (see the module docs).
pub fn needs_formula_escape(v: &[u8]) -> bool {
    match v.first() {
        Some(b'=' | b'@' | b'\t' | b'\r') => true,
        Some(b'+' | b'-') => !is_number(v),
        _ => false,
    }
}

/// A plain decimal number with an optional sign, fraction and exponent.
fn is_number(v: &[u8]) -> bool {
    std::str::from_utf8(v)
        .ok()
        .filter(|s| {
            let t = s.trim_start_matches(['+', '-']);
            !t.is_empty()
                && t.bytes()
                    .next()
                    .is_some_and(|b| b.is_ascii_digit() || b == b'.')
                && t.bytes()
                    .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
        })
        .is_some_and(|s| s.parse::<f64>().is_ok())
}

/// Converts a `,`-delimited, `"`-quoted CSV (the outputs' dialect) record by record.
pub struct Converter {
    format: Format,
    columns: Option<Vec<String>>,
    formula_escape: bool,
    parser: Parser,
    rec: RecordBuf,
    /// Header names and the selected indexes, once the header has been read.
    header: Option<(Vec<String>, Vec<usize>)>,
    scratch: Vec<u8>,
    /// Data rows written.
    pub rows: u64,
}

impl Converter {
    pub fn new(format: Format, columns: Option<Vec<String>>, formula_escape: bool) -> Self {
        Converter {
            format,
            columns,
            formula_escape,
            parser: Parser::from_start(ParserConfig::default()),
            rec: RecordBuf::default(),
            header: None,
            scratch: Vec::new(),
            rows: 0,
        }
    }

    /// Feeds the next bytes of the input; converted rows are appended to `out`.
    pub fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), ExportError> {
        while !input.is_empty() {
            let (o, used) = self.parser.parse(input, &mut self.rec);
            input = &input[used..];
            if o == Outcome::Record {
                self.own_record(out)?;
            }
        }
        Ok(())
    }

    /// Ends the input.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), ExportError> {
        if self.parser.finish(&mut self.rec)? == Outcome::Record {
            self.own_record(out)?;
        }
        if self.header.is_none() {
            return Err(ExportError::Engine(EngineError::InvalidOption {
                detail: "the output has no header".into(),
            }));
        }
        Ok(())
    }

    /// Whether the header has been read (by [`Self::feed`]: an export job's range converter is
    /// fed the output's header line first, then given the range's records).
    pub fn has_header(&self) -> bool {
        self.header.is_some()
    }

    /// Converts one record parsed elsewhere (an export job's range, read with the engine's
    /// `range::RangeReader`); the first record a converter sees is the header.
    pub fn push_record(&mut self, rec: &RecordBuf, out: &mut Vec<u8>) -> Result<(), ExportError> {
        self.record(rec, out)
    }

    fn own_record(&mut self, out: &mut Vec<u8>) -> Result<(), ExportError> {
        let rec = std::mem::take(&mut self.rec);
        let res = self.record(&rec, out);
        self.rec = rec;
        res
    }

    fn record(&mut self, rec: &RecordBuf, out: &mut Vec<u8>) -> Result<(), ExportError> {
        let Some((names, sel)) = &self.header else {
            let names: Vec<String> = (0..rec.ends.len())
                .map(|i| String::from_utf8_lossy(field(rec, i)).into_owned())
                .collect();
            let sel = match &self.columns {
                None => (0..names.len()).collect(),
                Some(want) => want
                    .iter()
                    .map(|c| {
                        names.iter().position(|n| n == c).ok_or_else(|| {
                            ExportError::UnknownColumn {
                                column: c.clone(),
                                columns: names.join(", "),
                            }
                        })
                    })
                    .collect::<Result<Vec<usize>, _>>()?,
            };
            if self.format == Format::Csv {
                for (k, &i) in sel.iter().enumerate() {
                    if k > 0 {
                        out.push(b',');
                    }
                    // Header cells come from the uploader too: escaped like any other cell.
                    write_cell(
                        out,
                        &mut self.scratch,
                        names[i].as_bytes(),
                        self.formula_escape,
                    );
                }
                out.push(b'\n');
            }
            self.header = Some((names, sel));
            return Ok(());
        };
        self.rows += 1;
        match self.format {
            Format::Csv => {
                for (k, &i) in sel.iter().enumerate() {
                    if k > 0 {
                        out.push(b',');
                    }
                    write_cell(out, &mut self.scratch, field(rec, i), self.formula_escape);
                }
                out.push(b'\n');
            }
            Format::Jsonl => {
                out.push(b'{');
                for (k, &i) in sel.iter().enumerate() {
                    if k > 0 {
                        out.push(b',');
                    }
                    let key = serde_json::to_string(&names[i]).unwrap_or_default();
                    let val = serde_json::to_string(&String::from_utf8_lossy(field(rec, i)))
                        .unwrap_or_default();
                    out.extend_from_slice(key.as_bytes());
                    out.push(b':');
                    out.extend_from_slice(val.as_bytes());
                }
                out.extend_from_slice(b"}\n");
            }
        }
        Ok(())
    }
}

/// Field `i` of a record (empty when the record is shorter).
fn field(rec: &RecordBuf, i: usize) -> &[u8] {
    let ends = &rec.ends;
    if i >= ends.len() {
        return b"";
    }
    let s = if i == 0 { 0 } else { ends[i - 1] };
    &rec.text[s..ends[i]]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert(input: &str, format: Format, cols: Option<&[&str]>, piece: usize) -> String {
        let mut c = Converter::new(
            format,
            cols.map(|c| c.iter().map(|s| s.to_string()).collect()),
            true,
        );
        let mut out = Vec::new();
        for p in input.as_bytes().chunks(piece) {
            c.feed(p, &mut out).unwrap();
        }
        c.finish(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn csv_escapes_formulas_but_not_numbers() {
        let input = "a,b\n=1+2,-12\n@x,\"-cmd,y\"\n+3.5,\ttab\n";
        for piece in [1, 3, 100] {
            assert_eq!(
                convert(input, Format::Csv, None, piece),
                "a,b\n'=1+2,-12\n'@x,\"'-cmd,y\"\n+3.5,'\ttab\n"
            );
        }
    }

    #[test]
    fn header_cells_are_escaped_like_data_cells() {
        let input = "=1+2,@b,c\n1,2,3\n";
        assert_eq!(convert(input, Format::Csv, None, 3), "'=1+2,'@b,c\n1,2,3\n");
        let mut off = Converter::new(Format::Csv, None, false);
        let mut out = Vec::new();
        off.feed(input.as_bytes(), &mut out).unwrap();
        off.finish(&mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), input);
    }

    #[test]
    fn a_column_may_be_picked_once() {
        let cols = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(repeated_column(&cols(&["a", "b", "c"])), None);
        assert_eq!(repeated_column(&cols(&["a", "b", "a", "b"])), Some("a"));
    }

    #[test]
    fn header_length_includes_the_terminator() {
        assert_eq!(header_len(b"a,b\n1,2\n", false).unwrap(), Some(4));
        assert_eq!(header_len(b"\"a\nx\",b\r\n1,2\n", false).unwrap(), Some(9));
        assert_eq!(header_len(b"a,b\r", false).unwrap(), None);
        assert_eq!(header_len(b"a,b", false).unwrap(), None);
        assert_eq!(header_len(b"a,b", true).unwrap(), Some(3));
    }

    #[test]
    fn records_pushed_from_outside_convert_like_fed_bytes() {
        let input = "a,b\n\"x\ny\",=2\n3,4\n";
        let mut fed = Converter::new(Format::Csv, Some(vec!["b".into(), "a".into()]), true);
        let mut want = Vec::new();
        fed.feed(input.as_bytes(), &mut want).unwrap();
        fed.finish(&mut want).unwrap();
        let mut pushed = Converter::new(Format::Csv, Some(vec!["b".into(), "a".into()]), true);
        let mut got = Vec::new();
        let mut p = Parser::from_start(ParserConfig::default());
        let mut rec = RecordBuf::default();
        let mut rest = input.as_bytes();
        while !rest.is_empty() {
            let (o, used) = p.parse(rest, &mut rec);
            rest = &rest[used..];
            if o == Outcome::Record {
                pushed.push_record(&rec, &mut got).unwrap();
            }
        }
        assert!(pushed.has_header());
        assert_eq!(got, want);
        assert_eq!(pushed.rows, 2);
    }

    #[test]
    fn jsonl_with_selection_and_unknown_column() {
        let input = "a,b,c\n1,\"x\"\"y\",3\n";
        assert_eq!(
            convert(input, Format::Jsonl, Some(&["c", "b"]), 2),
            "{\"c\":\"3\",\"b\":\"x\\\"y\"}\n"
        );
        let mut c = Converter::new(Format::Csv, Some(vec!["zz".into()]), true);
        let e = c.feed(input.as_bytes(), &mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("`zz`"), "{e}");
    }
}
