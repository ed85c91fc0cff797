//! The owner's daily model budget: UTC days, the usage of one day, and the check that one
//! more call fits it.

use serde::{Deserialize, Serialize};

use super::Limits;

/// A UTC day (`2026-12-03`), the unit of usage and budget.
pub fn day_of(ms: i64) -> time::Date {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .date()
}

/// `day` as `YYYY-MM-DD` (its key and its form in a [`Reservation`]).
pub fn day_string(day: time::Date) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    day.format(&fmt).unwrap_or_default()
}

/// `YYYY-MM-DD` as a day (`None` if it is not one).
pub fn parse_day(s: &str) -> Option<time::Date> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, &fmt).ok()
}

/// Today, UTC.
pub fn today() -> time::Date {
    time::OffsetDateTime::now_utc().date()
}

/// When `day`'s budget resets: the next UTC midnight, RFC 3339.
pub fn resets_at(day: time::Date) -> String {
    let next = day.next_day().unwrap_or(day);
    format!("{}T00:00:00Z", day_string(next))
}
/// An owner's model usage on one UTC day.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DayUsage {
    /// `YYYY-MM-DD`.
    pub day: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Settled calls.
    pub calls: u64,
    /// Estimated cost of the settled calls, micro-dollars.
    pub cost_micro_usd: u64,
    /// Held for admitted calls not yet settled, micro-dollars (their worst case).
    pub held_micro_usd: u64,
}

/// An owner's daily model budget would be exceeded by one more call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BudgetExceeded {
    /// Spent today by settled calls.
    pub spent_micro_usd: u64,
    /// Held for calls admitted and not yet settled.
    pub held_micro_usd: u64,
    /// The most this call could cost.
    pub needed_micro_usd: u64,
    pub budget_micro_usd: u64,
    /// The next UTC midnight (RFC 3339).
    pub resets_at: String,
}

/// Whether one more call that may cost `needed` fits an owner's day: refused when what is spent,
/// what is held for calls in flight and `needed` together pass the budget.
pub fn check_budget(
    limits: &Limits,
    usage: &DayUsage,
    needed: u64,
    day: time::Date,
) -> Result<(), BudgetExceeded> {
    let committed = usage.cost_micro_usd.saturating_add(usage.held_micro_usd);
    if committed.saturating_add(needed) <= limits.daily_budget_micro_usd {
        Ok(())
    } else {
        Err(BudgetExceeded {
            spent_micro_usd: usage.cost_micro_usd,
            held_micro_usd: usage.held_micro_usd,
            needed_micro_usd: needed,
            budget_micro_usd: limits.daily_budget_micro_usd,
            resets_at: resets_at(day),
        })
    }
}
