//! The clean output's shape: its columns (source columns minus dropped ones, renamed, plus
//! `_violations` when a rule flags; two columns of one name are an error) and the plan that
//! writes an unquoted record's clean row from slices of the source.
//!
//! Not here: writing rows (see `clean_row`).

use std::collections::HashMap;

use super::super::compiled::{transform_keeps_plain, CTransform, OutOp, VIOLATIONS_COLUMN};
use super::super::validate::seg;
use super::ctx::Ctx;

/// The source columns kept in the clean output, in order, and the clean output's header.
pub(super) fn output_columns(
    cx: &mut Ctx<'_>,
    dropped: &[bool],
    out_names: &[String],
    flag_column: bool,
) -> (Vec<usize>, Vec<String>) {
    let columns = cx.columns;
    let layout: Vec<usize> = (0..columns.len()).filter(|&c| !dropped[c]).collect();
    let mut output_columns: Vec<String> = layout.iter().map(|&c| out_names[c].clone()).collect();
    if flag_column {
        output_columns.push(VIOLATIONS_COLUMN.to_string());
    }
    let mut names: HashMap<&str, usize> = HashMap::new();
    for (i, n) in output_columns.iter().enumerate() {
        if let Some(j) = names.insert(n.as_str(), i) {
            let src = |k: usize| {
                layout
                    .get(k)
                    .map(|&c| columns[c].clone())
                    .unwrap_or_default()
            };
            cx.err(
                format!("/columns/{}/rename", seg(&src(i))),
                format!(
                    "the clean output would have two columns named `{n}` (also `{}`); choose another name",
                    src(j)
                ),
            );
        }
    }
    (layout, output_columns)
}

/// The clean row of an unquoted record as steps (see [`OutOp`]): runs of adjacent
/// untransformed columns become one copy; the common single transforms get their own step.
pub(super) fn row_plan(layout: &[usize], transforms: &[Vec<CTransform>]) -> Vec<OutOp> {
    let mut plan: Vec<OutOp> = Vec::new();
    for &c in layout {
        if !transforms[c].is_empty() {
            plan.push(match transforms[c].as_slice() {
                [CTransform::Token(i)] => OutOp::Token(c, *i),
                [CTransform::Partial] => OutOp::Partial(c),
                [CTransform::Trim] => OutOp::Trim(c),
                _ => OutOp::Col(c),
            });
            continue;
        }
        match plan.last_mut() {
            Some(OutOp::Run(_, last)) if *last + 1 == c => *last = c,
            _ => plan.push(OutOp::Run(c, c)),
        }
    }
    plan
}

/// Per column: whether its transforms keep a plain value plain (no quoting scan needed).
pub(super) fn keeps_plain(transforms: &[Vec<CTransform>]) -> Vec<bool> {
    transforms
        .iter()
        .map(|ts| ts.iter().all(transform_keeps_plain))
        .collect()
}
