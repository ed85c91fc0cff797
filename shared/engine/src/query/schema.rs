//! The column types a query reads: each column keeps the type most of its non-null values
//! have (by family: numbers, dates and times, booleans, text; ties go to text), and inside a
//! family the narrowest type that holds all of the family's values (integer, else decimal;
//! date, else timestamp). Values that do not parse as the chosen type are `unparsed`.
//!
//! The server decides from the job's profile ([`Schema::from_profile`]); the local command
//! from the records in the file's first [`crate::file::SNIFF_BYTES`] ([`TypeTally`]). Either
//! way the types are fixed before any range is read, so every range reads alike.
//!
//! Not here: per-value parsing (`value`).

use serde::{Deserialize, Serialize};

use super::doc::ValueType;
use super::value::is_null;
use crate::profile::classify::{classify, Class};
use crate::profile::ProfileReport;

/// Column names (header order) and their types.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schema {
    /// Column names.
    pub columns: Vec<String>,
    /// One type per column.
    pub types: Vec<ValueType>,
}

/// Per-column counts of value classes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TypeTally {
    counts: Vec<[u64; 6]>,
}

const INT: usize = 0;
const DEC: usize = 1;
const BOOL: usize = 2;
const DATE: usize = 3;
const TS: usize = 4;
const STR: usize = 5;

impl TypeTally {
    /// A tally for `n` columns.
    pub fn new(n: usize) -> Self {
        TypeTally {
            counts: vec![[0; 6]; n],
        }
    }

    /// Counts one record's fields (fields past the column count are ignored).
    pub fn observe<'a>(&mut self, fields: impl Iterator<Item = &'a str>) {
        for (c, t) in self.counts.iter_mut().zip(fields) {
            if is_null(t) {
                continue;
            }
            let k = match classify(t) {
                Class::Int(_) => INT,
                Class::Dec(_) => DEC,
                Class::Bool(_) => BOOL,
                Class::Date(_) => DATE,
                Class::Timestamp(..) => TS,
                Class::Str => STR,
            };
            c[k] += 1;
        }
    }

    /// The chosen type of each column.
    pub fn types(&self) -> Vec<ValueType> {
        self.counts.iter().map(|c| choose(*c)).collect()
    }
}

/// The majority family, then the narrowest type holding the family (see the module docs).
fn choose(c: [u64; 6]) -> ValueType {
    let num = c[INT] + c[DEC];
    let time = c[DATE] + c[TS];
    let best = num.max(time).max(c[BOOL]);
    if best == 0
        || best <= c[STR]
        || [num, time, c[BOOL]].iter().filter(|&&x| x == best).count() > 1
    {
        ValueType::String
    } else if best == num {
        if c[DEC] == 0 {
            ValueType::Integer
        } else {
            ValueType::Decimal
        }
    } else if best == time {
        if c[TS] == 0 {
            ValueType::Date
        } else {
            ValueType::Timestamp
        }
    } else {
        ValueType::Boolean
    }
}

impl Schema {
    /// Types from a job's profile: its `type_counts` count each value under every type it
    /// fits (wider includes narrower), so the classes are recovered by difference.
    pub fn from_profile(p: &ProfileReport) -> Schema {
        let mut columns = Vec::new();
        let mut types = Vec::new();
        for c in &p.columns {
            let t = &c.type_counts;
            let int = t.integer;
            let dec = t.decimal.saturating_sub(t.integer);
            let date = t.date;
            let ts = t.timestamp.saturating_sub(t.date);
            let b = t.boolean;
            let s = c.count.saturating_sub(int + dec + date + ts + b);
            columns.push(c.name.clone());
            types.push(choose([int, dec, b, date, ts, s]));
        }
        Schema { columns, types }
    }

    /// Fixes the types of the derived columns the profile names (`derived`): a sentiment score
    /// is `decimal`, its label `string`, whatever the records sampled for the types hold (a
    /// first 4 MiB of empty texts would otherwise make the score column text, and `avg` of it
    /// a type error).
    pub fn with_derived(mut self, p: &ProfileReport) -> Schema {
        for (score, d) in &p.derived {
            for (name, t) in [
                (score, ValueType::Decimal),
                (&d.label_column, ValueType::String),
            ] {
                if let Some(i) = self.columns.iter().position(|c| c == name) {
                    self.types[i] = t;
                }
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majority_family_then_narrowest() {
        let t = |vals: &[&str]| {
            let mut tally = TypeTally::new(1);
            for v in vals {
                tally.observe(std::iter::once(*v));
            }
            tally.types()[0]
        };
        assert_eq!(t(&["1", "2", "x"]), ValueType::Integer);
        assert_eq!(t(&["1", "2.5", "x"]), ValueType::Decimal);
        assert_eq!(t(&["1", "x"]), ValueType::String);
        assert_eq!(t(&["", "NULL"]), ValueType::String);
        assert_eq!(
            t(&["2024-01-01", "2024-01-02 10:00", "7"]),
            ValueType::Timestamp
        );
        assert_eq!(t(&["2024-01-01", "true", "false"]), ValueType::Boolean);
        assert_eq!(t(&["2024-01-01", "true"]), ValueType::String);
    }
}
