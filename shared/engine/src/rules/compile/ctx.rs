//! What the compile steps share: the header and its name index, the problems found so far,
//! and the reference lists the caller loaded.
//!
//! Not here: any compile step (see `columns`, `checks`, `layout`).

use std::collections::HashMap;

use super::super::doc::RefSpec;
use super::super::validate::ValidationError;

/// Reference lists the caller loaded for `one_of` rules with a `ref`, keyed by the ref.
#[derive(Debug, Clone, Default)]
pub struct ResolvedRefs {
    /// The values of each referenced column.
    pub values: HashMap<RefSpec, Vec<String>>,
}

impl ResolvedRefs {
    /// No references.
    pub fn none() -> Self {
        Self::default()
    }

    /// Adds the values of one reference.
    pub fn insert(&mut self, r: RefSpec, values: Vec<String>) {
        self.values.insert(r, values);
    }
}

/// What every compile step shares: the header, its name index, and the problems found so far
/// (in the order they are found, which is the order they are reported in).
pub(super) struct Ctx<'a> {
    pub(super) columns: &'a [String],
    pub(super) index: HashMap<&'a str, usize>,
    pub(super) errs: Vec<ValidationError>,
}

impl<'a> Ctx<'a> {
    pub(super) fn new(columns: &'a [String]) -> Self {
        let index = columns
            .iter()
            .enumerate()
            .map(|(i, c)| (c.as_str(), i))
            .collect();
        Ctx {
            columns,
            index,
            errs: Vec::new(),
        }
    }

    pub(super) fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errs.push(ValidationError::new(path, message));
    }

    /// The index of column `name`, or an error at `path` that suggests the right name.
    pub(super) fn col(&mut self, name: &str, path: String) -> Option<usize> {
        let i = self.index.get(name).copied();
        if i.is_none() {
            let hint = suggest(name, self.columns);
            self.err(path, format!("unknown column `{name}`{hint}"));
        }
        i
    }
}

fn suggest(name: &str, columns: &[String]) -> String {
    let lower = name.to_lowercase();
    match columns.iter().find(|c| c.to_lowercase() == lower.trim()) {
        Some(c) => format!("; did you mean `{c}`?"),
        None => format!("; the columns are: {}", columns.join(", ")),
    }
}
