//! `GET /v1/usage[?day=YYYY-MM-DD]`: the caller's model usage on a UTC day (today by default)
//! against the daily budget: tokens, calls, estimated cost of settled calls, what admitted calls
//! not yet settled hold, what is left, and when the budget resets. The figures the
//! `budget_exceeded` error quotes, before it happens.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tessera_shared::error::ApiError;
use tessera_shared::http::{Caller, QueryParams};
use tessera_shared::rate::{day_string, format_usd, parse_day, resets_at, today};

use crate::AgentState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    #[serde(default)]
    pub day: Option<String>,
}

pub async fn get(
    State(st): State<AgentState>,
    caller: Caller,
    QueryParams(q): QueryParams<UsageQuery>,
) -> Result<Json<Value>, ApiError> {
    let today = today();
    let day = match q.day.as_deref() {
        None => today,
        Some(s) => parse_day(s).ok_or_else(|| {
            ApiError::unprocessable(
                "invalid_day",
                format!(
                    "`day` must be a UTC date as YYYY-MM-DD (e.g. {}).",
                    day_string(today)
                ),
            )
        })?,
    };
    let u = st.usage.day_usage(&caller.owner, day).await?;
    let budget = st.agent.config.model_limits.daily_budget_micro_usd;
    let committed = u.cost_micro_usd.saturating_add(u.held_micro_usd);
    Ok(Json(json!({
        "day": u.day,
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "calls": u.calls,
        "cost_micro_usd": u.cost_micro_usd,
        "held_micro_usd": u.held_micro_usd,
        "budget_micro_usd": budget,
        "remaining_micro_usd": budget.saturating_sub(committed),
        "cost": format_usd(u.cost_micro_usd),
        "budget": format_usd(budget),
        "remaining": format_usd(budget.saturating_sub(committed)),
        "resets_at": resets_at(day),
        "model_configured": st.agent.model().is_some(),
    })))
}
