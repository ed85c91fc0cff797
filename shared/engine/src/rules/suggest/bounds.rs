//! Range bounds with a margin around a column's observed extremes, rounded outward so the
//! bounds read well and every profiled value stays inside.
//!
//! The margin (docs/rules.md, "Suggested rules"): `share` (10 %) of the observed span on each
//! side; numbers with no negative value keep a lower bound of at least 0; a constant number
//! gets 10 % of its magnitude (1 for 0); dates at least 1 day, timestamps at least 1 day and
//! whole days. An ID column (unique integers) gets a lower bound only: IDs grow.
//!
//! Not here: deciding whether a column gets a range (the caller), parsing values (the rules'
//! own parsers in `value`).

use crate::profile::classify::civil_from_days;
use crate::profile::{ColumnReport, ColumnType, Scalar};
use crate::rules::doc::{Bound, RangeCheck, TypeSpec};
use crate::rules::value::{Parser, Val};

const DAY: i64 = 86_400;

/// The range check for a typed column, with its reason; `None` when the extremes are unknown.
pub(super) fn range(c: &ColumnReport, share: f64, open_top: bool) -> Option<(RangeCheck, String)> {
    let name = &c.name;
    match (c.r#type, c.min.as_ref()?, c.max.as_ref()?) {
        (ColumnType::Integer | ColumnType::Decimal, lo, hi) => {
            let (lo, hi) = (number(lo)?, number(hi)?);
            let integer = c.r#type == ColumnType::Integer;
            let (a, b, step) = numeric(lo, hi, share, integer)?;
            let shown = |x: f64| {
                if integer {
                    format!("{x:.0}")
                } else {
                    x.to_string()
                }
            };
            let floor = if lo >= 0.0 {
                ", not below 0 since no value is negative"
            } else {
                ""
            };
            let why = if open_top {
                format!(
                    "`{name}` runs from {} to {} and looks like an ID: a lower bound only (the smallest minus {} of the span, rounded down to a multiple of {}{floor}); IDs grow, so no upper bound",
                    shown(lo), shown(hi), pct(share), shown(step)
                )
            } else {
                format!(
                    "`{name}` runs from {} to {}; the bounds add {} of that span on each side, rounded outward to a multiple of {}{floor}",
                    shown(lo), shown(hi), pct(share), shown(step)
                )
            };
            Some((
                RangeCheck {
                    min: Some(Bound::Number(a)),
                    max: (!open_top).then_some(Bound::Number(b)),
                    min_inclusive: true,
                    max_inclusive: true,
                },
                why,
            ))
        }
        (ColumnType::Date, Scalar::Text(lo), Scalar::Text(hi)) => {
            let ty = TypeSpec::Date(Default::default());
            let (Val::Date(a), Val::Date(b)) = (parse_time(&ty, lo)?, parse_time(&ty, hi)?) else {
                return None;
            };
            let m = margin_days(i64::from(b) - i64::from(a), share);
            let (from, to) = (
                civil_from_days(i64::from(a) - m),
                civil_from_days(i64::from(b) + m),
            );
            Some((
                RangeCheck {
                    min: Some(Bound::Text(from.clone())),
                    max: Some(Bound::Text(to.clone())),
                    min_inclusive: true,
                    max_inclusive: true,
                },
                format!(
                    "`{name}` runs from {lo} to {hi}; the bounds add {m} days on each side ({} of the span, at least 1 day): {from} to {to}",
                    pct(share)
                ),
            ))
        }
        (ColumnType::Timestamp, Scalar::Text(lo), Scalar::Text(hi)) => {
            let ty = TypeSpec::Timestamp(Default::default());
            let (Val::Ts(a, _), Val::Ts(b, bn)) = (parse_time(&ty, lo)?, parse_time(&ty, hi)?)
            else {
                return None;
            };
            // A fraction of a second past `b` still sorts before the next whole second.
            let b = b + i64::from(bn > 0);
            let span = b - a;
            let m = ((span as f64 * share).ceil() as i64).max(DAY);
            let from = (a - m).div_euclid(DAY);
            let to = (b + m + DAY - 1).div_euclid(DAY);
            let (from, to) = (
                format!("{}T00:00:00Z", civil_from_days(from)),
                format!("{}T00:00:00Z", civil_from_days(to)),
            );
            Some((
                RangeCheck {
                    min: Some(Bound::Text(from.clone())),
                    max: Some(Bound::Text(to.clone())),
                    min_inclusive: true,
                    max_inclusive: true,
                },
                format!(
                    "`{name}` runs from {lo} to {hi}; the bounds add {} of the span (at least 1 day) on each side, rounded out to whole days (UTC): {from} to {to}",
                    pct(share)
                ),
            ))
        }
        _ => None,
    }
}

/// `value` parsed as the rules will parse it (dates and timestamps).
pub(super) fn parse_time(ty: &TypeSpec, value: &str) -> Option<Val> {
    Parser::new(ty).ok()?.parse(value)
}

fn pct(share: f64) -> String {
    format!("{}%", (share * 100.0 * 1e6).round() / 1e6)
}

fn number(s: &Scalar) -> Option<f64> {
    match s {
        Scalar::Int(i) => Some(*i as f64),
        Scalar::Float(f) => Some(*f),
        _ => None,
    }
}

fn margin_days(span: i64, share: f64) -> i64 {
    ((span as f64 * share).ceil() as i64).max(1)
}

/// `(lower, upper, step)`: `lo`/`hi` moved out by the margin, rounded outward to a multiple of
/// the power of ten one decade below the margin (at least 1 for integers), the lower bound kept at
/// 0 or above when `lo` is; always `lower <= lo` and `upper >= hi`.
pub(super) fn numeric(lo: f64, hi: f64, share: f64, integer: bool) -> Option<(f64, f64, f64)> {
    let span = hi - lo;
    let margin = if span > 0.0 {
        span * share
    } else if lo != 0.0 {
        lo.abs() * share
    } else {
        1.0
    };
    if !margin.is_finite() || margin <= 0.0 {
        return None;
    }
    // One decade below the margin: rounding adds at most a tenth of the margin.
    let exp = margin.log10().floor() as i32 - 1;
    let step = if integer && exp < 0 {
        1.0
    } else {
        10f64.powi(exp)
    };
    let decimals = (-exp).max(0) as usize;
    let tidy = |x: f64| -> f64 {
        // Print and re-read, so the JSON shows `0.35`, not `0.35000000000000003`.
        format!("{x:.decimals$}").parse().unwrap_or(x)
    };
    let mut a = tidy(((lo - margin) / step).floor() * step);
    let mut b = tidy(((hi + margin) / step).ceil() * step);
    if lo >= 0.0 {
        a = a.max(0.0);
    }
    if !(a.is_finite() && b.is_finite()) {
        return None;
    }
    // Rounding in floating point must never move a bound inside the data.
    if a > lo {
        a = lo;
    }
    if b < hi {
        b = hi;
    }
    Some((a, b, step))
}
