//! The `rules` section of a rule document: each rule's id, action and column, and each check
//! kind compiled in its own function (columns resolved, types, regexes, bounds and value sets
//! built). Every problem is recorded with its path; a rule with a problem is left out.
//!
//! Not here: the `columns` section (see `columns`), evaluating checks (see `run`).

use std::collections::HashMap;

use regex::Regex;

use super::super::compiled::{Act, CCheck, CRule};
use super::super::doc::*;
use super::super::fixed::Fixed;
use super::super::ids::valid_id_char;
use super::super::validate::seg;
use super::super::value::{Family, Parser as ValParser, Val};
use super::ctx::{Ctx, ResolvedRefs};

/// What a check needs besides its own spec: the column types (a `range` on an untyped column
/// with numeric bounds types it as decimal), the references, and the count of `unique` rules
/// so far (each gets its own slot of keys).
struct CheckEnv<'r> {
    types: &'r mut [Option<ValParser>],
    refs: &'r ResolvedRefs,
    unique_count: usize,
}

/// Compiles every rule, in document order. Returns the compiled rules and how many of them
/// are `unique` rules.
pub(super) fn compile_rules(
    cx: &mut Ctx<'_>,
    doc: &RuleDocument,
    types: &mut [Option<ValParser>],
    refs: &ResolvedRefs,
) -> (Vec<CRule>, usize) {
    let ids = doc.rule_ids();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut env = CheckEnv {
        types,
        refs,
        unique_count: 0,
    };
    let mut rules = Vec::new();
    for (i, (r, id)) in doc.rules.iter().zip(&ids).enumerate() {
        let p = format!("/rules/{i}");
        check_id(cx, &p, id, i, &mut seen);
        let act = rule_action(cx, &p, r.on_violation.as_ref().unwrap_or(&doc.on_violation));
        let column = rule_column(cx, &p, r);
        let cp = format!("{p}/check/{}", r.check.name());
        if let Some(check) = compile_check(cx, &mut env, &p, &cp, &r.check, column) {
            rules.push(CRule {
                id: id.clone(),
                act,
                check,
                message: r.message.clone(),
            });
        }
    }
    (rules, env.unique_count)
}

fn check_id<'d>(
    cx: &mut Ctx<'_>,
    p: &str,
    id: &'d str,
    i: usize,
    seen: &mut HashMap<&'d str, usize>,
) {
    if id.is_empty() || !id.chars().all(valid_id_char) {
        cx.err(
            format!("{p}/id"),
            format!("`{id}` is not a valid id: use letters, digits, `_`, `-` and `.`"),
        );
    }
    if let Some(prev) = seen.insert(id, i) {
        cx.err(
            format!("{p}/id"),
            format!("duplicate id `{id}` (also /rules/{prev}); ids must be unique"),
        );
    }
}

fn rule_action(cx: &mut Ctx<'_>, p: &str, action: &Action) -> Act {
    match action {
        Action::Reject => Act::Reject,
        Action::Flag => Act::Flag,
        Action::Fail(t) => {
            if t.max_percent.is_some_and(|x| !(0.0..=100.0).contains(&x)) {
                cx.err(
                    format!("{p}/on_violation/fail/max_percent"),
                    "must be between 0 and 100",
                );
            }
            Act::Fail
        }
    }
}

/// The column a (non-compare) rule applies to; a compare names its columns itself.
fn rule_column(cx: &mut Ctx<'_>, p: &str, r: &Rule) -> Option<usize> {
    match (&r.check, &r.column) {
        (Check::Compare(_), Some(_)) => {
            cx.err(
                format!("{p}/column"),
                "a compare rule names its columns in `left` and `right`; remove `column`",
            );
            None
        }
        (Check::Compare(_), None) => None,
        (_, None) => {
            cx.err(
                format!("{p}/column"),
                format!(
                    "missing; a `{}` check needs the column it applies to",
                    r.check.name()
                ),
            );
            None
        }
        (_, Some(name)) => cx.col(name, format!("{p}/column")),
    }
}

/// One check of rule `p` (its path `cp`) on `column`.
fn compile_check(
    cx: &mut Ctx<'_>,
    env: &mut CheckEnv<'_>,
    p: &str,
    cp: &str,
    check: &Check,
    column: Option<usize>,
) -> Option<CCheck> {
    match (check, column) {
        (Check::Compare(c), _) => compile_compare(cx, env, cp, c),
        (_, None) => None,
        (Check::NotNull, Some(c)) => Some(CCheck::NotNull(c)),
        (Check::Type(t), Some(c)) => compile_type(cx, env, p, t, c),
        (Check::Range(rc), Some(c)) => compile_range(cx, env, cp, rc, c),
        (Check::Length(l), Some(c)) => compile_length(cx, cp, l, c),
        (Check::Matches(m), Some(c)) => compile_matches(cx, cp, m, c),
        (Check::OneOf(o), Some(c)) => compile_one_of(cx, env, cp, o, c),
        (Check::Unique, Some(c)) => {
            env.unique_count += 1;
            Some(CCheck::Unique(c, env.unique_count - 1))
        }
    }
}

/// `left <op> right`: both columns must have types of the same family.
fn compile_compare(
    cx: &mut Ctx<'_>,
    env: &CheckEnv<'_>,
    cp: &str,
    c: &CompareCheck,
) -> Option<CCheck> {
    let l = cx.col(&c.left, format!("{cp}/left"));
    let rr = cx.col(&c.right, format!("{cp}/right"));
    let (l, rr) = (l?, rr?);
    match (&env.types[l], &env.types[rr]) {
        (Some(a), Some(b)) if a.family() == b.family() => {}
        (Some(a), Some(b)) => cx.err(
            cp,
            format!(
                "type mismatch: `{}` is {:?} and `{}` is {:?}; compare columns of the same kind",
                c.left,
                a.family(),
                c.right,
                b.family()
            ),
        ),
        (a, _) => {
            let missing = if a.is_none() { &c.left } else { &c.right };
            cx.err(
                cp,
                format!(
                    "column `{missing}` has no type; declare it in /columns/{}/type \
                     or add a `type` rule so the comparison is typed",
                    seg(missing)
                ),
            );
        }
    }
    Some(CCheck::Compare(l, c.op, rr))
}

/// `type`: uses the column's cached typed value when the rule checks the column's own type.
fn compile_type(
    cx: &mut Ctx<'_>,
    env: &CheckEnv<'_>,
    p: &str,
    t: &TypeSpec,
    c: usize,
) -> Option<CCheck> {
    let vp = match ValParser::new(t) {
        Ok(vp) => vp,
        Err(e) => {
            cx.err(format!("{p}/check/type"), e);
            return None;
        }
    };
    let own = if env.types[c].as_ref() == Some(&vp) {
        None
    } else {
        Some(vp)
    };
    let what = match t {
        TypeSpec::Date(f) | TypeSpec::Timestamp(f) if f.format.is_some() => format!(
            "{} in the format {}",
            t.name(),
            f.format.as_deref().unwrap_or("")
        ),
        _ => t.name().to_string(),
    };
    Some(CCheck::Type(c, own, what))
}

/// `range`: bounds parsed as values of the column's type (an untyped column with numeric
/// bounds becomes decimal); booleans have no range.
fn compile_range(
    cx: &mut Ctx<'_>,
    env: &mut CheckEnv<'_>,
    cp: &str,
    rc: &RangeCheck,
    c: usize,
) -> Option<CCheck> {
    if env.types[c].is_none() {
        let numeric = [&rc.min, &rc.max]
            .into_iter()
            .flatten()
            .all(|b| matches!(b, Bound::Number(_)));
        if numeric {
            env.types[c] = Some(ValParser::Decimal);
        } else {
            cx.err(
                cp,
                format!(
                    "column `{}` has no type and the bounds are not numbers; declare \
                     its type in /columns/{}/type (e.g. {{\"date\": {{}}}})",
                    cx.columns[c],
                    seg(&cx.columns[c])
                ),
            );
        }
    }
    if rc.min.is_none() && rc.max.is_none() {
        cx.err(cp, "give `min`, `max` or both");
    }
    let vp = env.types[c].as_ref()?;
    if vp.family() == Family::Boolean {
        cx.err(
            cp,
            format!(
                "type mismatch: column `{}` is boolean; a range needs numbers or dates",
                cx.columns[c]
            ),
        );
        return None;
    }
    let lo = range_bound(cx, vp, cp, &rc.min, rc.min_inclusive, "min");
    let hi = range_bound(cx, vp, cp, &rc.max, rc.max_inclusive, "max");
    Some(CCheck::Range {
        col: c,
        lo,
        hi,
        text: range_text(rc),
    })
}

/// One bound of a range as a value of the column's type, with whether it is inclusive.
fn range_bound(
    cx: &mut Ctx<'_>,
    vp: &ValParser,
    cp: &str,
    b: &Option<Bound>,
    incl: bool,
    name: &str,
) -> Option<(Val, bool)> {
    let b = b.as_ref()?;
    let v = match (b, vp.family()) {
        (Bound::Number(n), Family::Number) => Some(Val::Dec(*n)),
        (Bound::Text(s), _) => vp.parse_bound(s),
        (Bound::Number(_), _) => None,
    };
    if v.is_none() {
        cx.err(
            format!("{cp}/{name}"),
            format!(
                "type mismatch: {} is not a value of the column's type (write dates as YYYY-MM-DD)",
                serde_json::to_string(b).unwrap_or_default()
            ),
        );
    }
    v.map(|v| (v, incl))
}

/// The range in interval notation, for violation details: `[1, 10)`, `(-inf, 5]`.
fn range_text(rc: &RangeCheck) -> String {
    let show = |b: &Option<Bound>, none: &str| match b {
        Some(Bound::Number(n)) => n.to_string(),
        Some(Bound::Text(s)) => s.clone(),
        None => none.to_string(),
    };
    format!(
        "{}{}, {}{}",
        if rc.min_inclusive { '[' } else { '(' },
        show(&rc.min, "-inf"),
        show(&rc.max, "+inf"),
        if rc.max_inclusive { ']' } else { ')' },
    )
}

fn compile_length(cx: &mut Ctx<'_>, cp: &str, l: &LengthCheck, c: usize) -> Option<CCheck> {
    if let (Some(a), Some(b)) = (l.min, l.max) {
        if a > b {
            cx.err(cp, format!("min {a} is greater than max {b}"));
        }
    }
    Some(CCheck::Length(c, l.min, l.max))
}

/// `matches`: the regex, plus the fast matcher when the pattern is in its subset.
fn compile_matches(cx: &mut Ctx<'_>, cp: &str, m: &MatchesCheck, c: usize) -> Option<CCheck> {
    match Regex::new(&m.pattern) {
        Ok(re) => Some(CCheck::Matches(c, re, Fixed::parse(&m.pattern))),
        Err(e) => {
            cx.err(
                format!("{cp}/pattern"),
                format!("invalid regular expression: {e}"),
            );
            None
        }
    }
}

/// `one_of`: the listed values or a loaded reference, lowercased for `ignore_case`.
fn compile_one_of(
    cx: &mut Ctx<'_>,
    env: &CheckEnv<'_>,
    cp: &str,
    o: &OneOfCheck,
    c: usize,
) -> Option<CCheck> {
    let values: &Vec<String> = match (&o.values, &o.reference) {
        (Some(v), None) => v,
        (None, Some(r)) => match env.refs.values.get(r) {
            Some(v) => v,
            None => {
                cx.err(
                    format!("{cp}/ref"),
                    format!(
                        "the reference column `{}` of `{}` was not loaded; check that the file exists and has that column",
                        r.column, r.key
                    ),
                );
                return None;
            }
        },
        _ => {
            cx.err(cp, "give exactly one of `values` and `ref`");
            return None;
        }
    };
    let set = values
        .iter()
        .map(|s| {
            if o.ignore_case {
                s.to_lowercase()
            } else {
                s.clone()
            }
            .into_boxed_str()
        })
        .collect::<Vec<_>>()
        .into();
    Some(CCheck::OneOf {
        col: c,
        set,
        ignore_case: o.ignore_case,
    })
}
