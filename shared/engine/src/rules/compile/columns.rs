//! The `columns` section of a rule document: each column's declared type, `drop`, `rename`
//! and transforms (one function per transform kind that can fail), then the types that `type`
//! rules give to columns the section does not type.
//!
//! Not here: checks (see `checks`), the output layout (see `layout`).

use regex::Regex;

use super::super::compiled::CTransform;
use super::super::doc::*;
use super::super::mask::Tokenizer;
use super::super::validate::seg;
use super::super::value::Parser as ValParser;
use super::ctx::Ctx;

/// What the `columns` section compiles to, per source column (by index).
pub(super) struct Columns {
    /// The declared type's spec (to compare with `type` rules).
    pub(super) type_specs: Vec<Option<TypeSpec>>,
    /// The parser of the column's type, if it has one.
    pub(super) types: Vec<Option<ValParser>>,
    pub(super) transforms: Vec<Vec<CTransform>>,
    /// The token masks' keyed tokenizers (a `CTransform::Token` holds an index here).
    pub(super) tokenizers: Vec<Tokenizer>,
    pub(super) dropped: Vec<bool>,
    /// The clean output's name of each column (renamed or not).
    pub(super) out_names: Vec<String>,
}

/// Compiles every column spec, in the document's order.
pub(super) fn compile_columns(
    cx: &mut Ctx<'_>,
    doc: &RuleDocument,
    mask_key: Option<&[u8]>,
) -> Columns {
    let n = cx.columns.len();
    let mut cols = Columns {
        type_specs: vec![None; n],
        types: (0..n).map(|_| None).collect(),
        transforms: (0..n).map(|_| Vec::new()).collect(),
        tokenizers: Vec::new(),
        dropped: vec![false; n],
        out_names: cx.columns.to_vec(),
    };
    for (name, spec) in &doc.columns {
        let p = format!("/columns/{}", seg(name));
        if let Some(c) = cx.col(name, p.clone()) {
            column_spec(cx, &mut cols, c, &p, spec, mask_key);
        }
    }
    cols
}

fn column_spec(
    cx: &mut Ctx<'_>,
    cols: &mut Columns,
    c: usize,
    p: &str,
    spec: &ColumnSpec,
    mask_key: Option<&[u8]>,
) {
    if let Some(t) = &spec.ty {
        match ValParser::new(t) {
            Ok(vp) => {
                cols.types[c] = Some(vp);
                cols.type_specs[c] = Some(t.clone());
            }
            Err(e) => cx.err(format!("{p}/type"), e),
        }
    }
    cols.dropped[c] = spec.drop;
    if let Some(r) = &spec.rename {
        if r.is_empty() {
            cx.err(format!("{p}/rename"), "must not be empty");
        }
        cols.out_names[c] = r.clone();
    }
    for (j, t) in spec.transforms.iter().enumerate() {
        let tp = format!("{p}/transforms/{j}");
        if let Some(ct) = compile_transform(cx, &tp, t, mask_key, &mut cols.tokenizers) {
            cols.transforms[c].push(ct);
        }
    }
}

/// One transform at path `tp`; `None` (with the error recorded) when it cannot be compiled.
fn compile_transform(
    cx: &mut Ctx<'_>,
    tp: &str,
    t: &Transform,
    mask_key: Option<&[u8]>,
    tokenizers: &mut Vec<Tokenizer>,
) -> Option<CTransform> {
    match t {
        Transform::Trim => Some(CTransform::Trim),
        Transform::Case(CaseSpec::Upper) => Some(CTransform::Upper),
        Transform::Case(CaseSpec::Lower) => Some(CTransform::Lower),
        Transform::Replace(r) => compile_replace(cx, tp, r),
        Transform::Default(v) => Some(CTransform::Default(v.clone())),
        Transform::Normalize(ts) => match ValParser::new(ts) {
            Ok(vp) => Some(CTransform::Normalize(vp)),
            Err(e) => {
                cx.err(format!("{tp}/normalize"), e);
                None
            }
        },
        Transform::Mask(MaskSpec::Redact(r)) => Some(CTransform::Redact(
            r.with.clone().unwrap_or_else(|| "[REDACTED]".into()),
        )),
        Transform::Mask(MaskSpec::Partial) => Some(CTransform::Partial),
        Transform::Mask(MaskSpec::Token(t)) => compile_token(cx, tp, t, mask_key, tokenizers),
    }
}

fn compile_replace(cx: &mut Ctx<'_>, tp: &str, r: &ReplaceSpec) -> Option<CTransform> {
    match Regex::new(&r.pattern) {
        // A pattern that matches the empty string between characters (`x*`, ``) would put
        // `with` between every two characters of every value: outputs many times the input.
        // One empty match per value (`^`, `$`) stays allowed: it adds a prefix or suffix.
        Ok(re) if matches_between_characters(&re) => {
            cx.err(
                format!("{tp}/replace/pattern"),
                format!(
                    "the pattern {:?} matches the empty string between characters, so it would insert the replacement between every two characters; make it match at least one character (e.g. `+` instead of `*`)",
                    r.pattern
                ),
            );
            None
        }
        Ok(re) => Some(CTransform::Replace(re, r.with.clone())),
        Err(e) => {
            cx.err(
                format!("{tp}/replace/pattern"),
                format!("invalid regular expression: {e}"),
            );
            None
        }
    }
}

/// Whether `re` finds more than one empty match in a two-character probe, i.e. it would insert
/// between characters. Two probes, so a pattern that consumes one of them (`a?` on "ab") is
/// still caught on the other.
fn matches_between_characters(re: &Regex) -> bool {
    ["ab", "\u{0}\u{0}"]
        .iter()
        .any(|probe| re.find_iter(probe).filter(|m| m.is_empty()).count() > 1)
}

/// A keyed token mask: needs the configured key; its tokenizer is added to `tokenizers`.
fn compile_token(
    cx: &mut Ctx<'_>,
    tp: &str,
    t: &TokenSpec,
    mask_key: Option<&[u8]>,
    tokenizers: &mut Vec<Tokenizer>,
) -> Option<CTransform> {
    match mask_key {
        Some(k) if !k.is_empty() => {
            if t.length == 0 {
                cx.err(format!("{tp}/mask/token/length"), "must be at least 1");
            }
            tokenizers.push(Tokenizer::new(k, t.encoding, t.length as usize));
            Some(CTransform::Token(tokenizers.len() - 1))
        }
        _ => {
            cx.err(
                format!("{tp}/mask/token"),
                "a token mask needs a key, and none is configured; set the mask \
                 key in the configuration (`--mask-key-file` for `tessera process`)",
            );
            None
        }
    }
}

/// A column without a declared type takes the type of its first `type` rule; a `type` rule
/// that contradicts a declared type is an error.
pub(super) fn types_from_rules(cx: &mut Ctx<'_>, doc: &RuleDocument, cols: &mut Columns) {
    for (i, r) in doc.rules.iter().enumerate() {
        let (Check::Type(t), Some(c)) = (
            &r.check,
            r.column.as_deref().and_then(|n| cx.index.get(n).copied()),
        ) else {
            continue;
        };
        if cols.type_specs[c].is_none() {
            if let Ok(vp) = ValParser::new(t) {
                cols.types[c] = Some(vp);
                cols.type_specs[c] = Some(t.clone());
            }
        } else if cols.type_specs[c].as_ref() != Some(t)
            && doc
                .columns
                .get(&cx.columns[c])
                .is_some_and(|s| s.ty.is_some())
        {
            let declared = cols.type_specs[c].as_ref().expect("checked").name();
            if declared != t.name() {
                cx.err(
                    format!("/rules/{i}/check/type"),
                    format!(
                        "type mismatch: column `{}` is declared `{declared}` in /columns but this rule checks `{}`",
                        cx.columns[c],
                        t.name()
                    ),
                );
            }
        }
    }
}
