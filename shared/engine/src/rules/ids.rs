//! What a rule document asks of its caller before compiling (the references to load, whether
//! a mask key is needed) and its rule ids: a pure function of the document, so every worker
//! and the finaliser name the rules the same way.
//!
//! Not here: compiling (see `compile`), thresholds (see `threshold`).

use super::doc::*;
use crate::names::UniqueNames;

impl RuleDocument {
    /// Every reference the document names (the caller loads them before compiling).
    pub fn references(&self) -> Vec<RefSpec> {
        let mut v: Vec<RefSpec> = self
            .rules
            .iter()
            .filter_map(|r| match &r.check {
                Check::OneOf(o) => o.reference.clone(),
                _ => None,
            })
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Whether a transform needs the token key.
    pub fn needs_mask_key(&self) -> bool {
        self.columns.values().any(|c| {
            c.transforms
                .iter()
                .any(|t| matches!(t, Transform::Mask(MaskSpec::Token(_))))
        })
    }

    /// The rule ids in document order: given ids, or `<column>_<check>` (`<left>_<right>_compare`
    /// for compares), with `_2`, `_3`... for repeats. A pure function of the document.
    pub fn rule_ids(&self) -> Vec<String> {
        // Given ids are reserved up front: a generated id never takes one given later.
        let mut taken = UniqueNames::with_capacity(self.rules.len());
        for id in self.rules.iter().filter_map(|r| r.id.as_deref()) {
            taken.reserve(id);
        }
        self.rules
            .iter()
            .map(|r| {
                if let Some(id) = &r.id {
                    return id.clone();
                }
                let base = match &r.check {
                    Check::Compare(c) => format!("{}_{}_compare", c.left, c.right),
                    c => format!("{}_{}", r.column.as_deref().unwrap_or("row"), c.name()),
                };
                let base: String = base
                    .chars()
                    .map(|c| if valid_id_char(c) { c } else { '_' })
                    .collect();
                taken.claim(base)
            })
            .collect()
    }
}

pub(super) fn valid_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.'
}
