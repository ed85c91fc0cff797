//! The `derive` steps of the `columns` section: which source columns get a sentiment score,
//! and the two output columns each adds at the end of the clean output (`<column>_sentiment`,
//! `<column>_sentiment_label`, named after the source column, whatever its `rename`).
//!
//! Not here: the structural checks of the step (see `validate`), scoring (see `clean_row` and
//! `crate::sentiment`).

use std::collections::HashSet;

use super::super::doc::{RuleDocument, SentimentEngine, SENTIMENT_SUFFIXES};
use super::super::validate::seg;
use super::ctx::Ctx;

/// The source columns with a sentiment step and its engine, in document order, with their two
/// column names appended to `output_columns`. Whether a `model` step can run (a model is
/// configured, the job carries a cost limit) is the caller's to decide
/// (`validate::refuse_model_engine`); here it is a step like the other. A derived name already in the clean output (a
/// kept header column, a rename, or another step's column) is an error at the step's path;
/// a header column that is dropped or renamed away frees its name.
pub(super) fn derived_columns(
    cx: &mut Ctx<'_>,
    doc: &RuleDocument,
    output_columns: &mut Vec<String>,
) -> Vec<(usize, SentimentEngine)> {
    let mut taken: HashSet<String> = output_columns.iter().cloned().collect();
    let mut derives = Vec::new();
    for (name, spec) in &doc.columns {
        let Some(d) = &spec.derive else { continue };
        let p = format!("/columns/{}/derive/sentiment", seg(name));
        // An unknown column was reported at `/columns/<name>` by the columns step.
        let Some(&c) = cx.index.get(name.as_str()) else {
            continue;
        };
        let mut ok = true;
        for suffix in SENTIMENT_SUFFIXES {
            let out = format!("{name}{suffix}");
            if !taken.insert(out.clone()) {
                ok = false;
                cx.err(
                    p.clone(),
                    format!(
                        "the derived column `{out}` would have the name of a column already in \
                         the clean output; drop that column or give it another name \
                         (\"rename\" in its column settings)"
                    ),
                );
            }
            output_columns.push(out);
        }
        if ok {
            derives.push((c, d.sentiment.engine));
        }
    }
    derives
}
