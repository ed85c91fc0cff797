//! Compiling a rule document against a file's header: columns resolved to indexes, types,
//! regexes and formats compiled, reference lists turned into value sets, rule ids fixed, the
//! clean row planned. Every problem is reported (not only the first), each with its JSON path.
//!
//! [`CompiledRules::compile`] runs the steps in order, each in its own module:
//! - [`columns`]: the `columns` section (types, drop, rename, each transform kind), then the
//!   types that `type` rules give to undeclared columns;
//! - [`checks`]: each rule (id, action, column) and each check kind;
//! - [`layout`]: the clean output's columns and the plan that writes a clean row;
//! - [`derive`]: the columns `derive` steps add at the end of the clean output;
//! - [`ctx`]: what the steps share (the header, the references, the problems found so far).
//!
//! Not here: the compiled form itself (see `compiled`), evaluating it (see `run`).

mod checks;
mod columns;
mod ctx;
mod derive;
mod layout;

use super::compiled::{Act, CompiledRules};
use super::doc::*;
use super::validate::ValidationError;
use ctx::Ctx;
pub use ctx::ResolvedRefs;

impl CompiledRules {
    /// Validates `doc` against the header `columns` and compiles it. `refs` holds the values of
    /// every `one_of` reference ([`RuleDocument::references`]); `mask_key` is the key of `token`
    /// masks (from configuration). Returns every problem found, each with its JSON path.
    pub fn compile(
        doc: &RuleDocument,
        columns: &[String],
        refs: &ResolvedRefs,
        mask_key: Option<&[u8]>,
    ) -> Result<CompiledRules, Vec<ValidationError>> {
        let mut cx = Ctx::new(columns);
        if doc.version != RULES_VERSION {
            cx.err(
                "/version",
                format!(
                    "unsupported version {}; this engine reads version {RULES_VERSION}",
                    doc.version
                ),
            );
        }
        let mut cols = columns::compile_columns(&mut cx, doc, mask_key);
        columns::types_from_rules(&mut cx, doc, &mut cols);
        let (rules, unique_count) = checks::compile_rules(&mut cx, doc, &mut cols.types, refs);
        let flag_column = rules.iter().any(|r| r.act == Act::Flag);
        let (layout, mut output_columns) =
            layout::output_columns(&mut cx, &cols.dropped, &cols.out_names, flag_column);
        let derives = derive::derived_columns(&mut cx, doc, &mut output_columns);
        if !cx.errs.is_empty() {
            return Err(cx.errs);
        }
        let types = cols.types;
        let transforms = cols.transforms;
        let typed_cols = (0..columns.len()).filter(|&c| types[c].is_some()).collect();
        let passthrough = !flag_column
            && derives.is_empty()
            && layout.len() == columns.len()
            && transforms.iter().all(Vec::is_empty);
        Ok(CompiledRules {
            doc: doc.clone(),
            columns: columns.to_vec(),
            rules,
            types,
            typed_cols,
            plan: layout::row_plan(&layout, &transforms),
            keeps_plain: layout::keeps_plain(&transforms),
            transforms,
            tokenizers: cols.tokenizers,
            layout,
            output_columns,
            flag_column,
            derives,
            unique_count,
            passthrough,
        })
    }
}
