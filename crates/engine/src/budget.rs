//! Budget enforcement around one model call: reserve the call's maximum before it starts,
//! settle the actual amount in the step's commit, announce thresholds after.

use crate::platform::Platform;
use agentry_core::chat::{ChatRequest, Usage};
use agentry_store::StoreError;
use agentry_store::budgets::{self, AlertRow, BudgetRow, Reservation, Settlement, Subject};
use chrono::{DateTime, Datelike, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How long an unsettled reservation holds (a crashed worker's call): longer than any model
/// call may take.
const RESERVATION_TTL_MINUTES: i64 = 30;

/// What a budget does when its spend reaches a percentage of its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    pub percent: u32,
    pub action: ThresholdAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdAction {
    Notify,
    Block,
}

impl ThresholdAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ThresholdAction::Notify => "notify",
            ThresholdAction::Block => "block",
        }
    }
}

pub fn thresholds_of(row: &BudgetRow) -> Vec<Threshold> {
    serde_json::from_value(row.thresholds.0.clone()).unwrap_or_default()
}

/// The local date that starts the period containing `now`, as `YYYY-MM-DD`.
pub fn period_start(period: &str, timezone: &str, now: DateTime<Utc>) -> String {
    let tz: chrono_tz::Tz = timezone.parse().unwrap_or(chrono_tz::UTC);
    let local = now.with_timezone(&tz).date_naive();
    let start = match period {
        "week" => local - Duration::days(i64::from(local.weekday().num_days_from_monday())),
        "month" => local.with_day(1).unwrap_or(local),
        _ => local,
    };
    start.format("%Y-%m-%d").to_string()
}

/// The amount a call adds to a budget, in the budget's unit.
fn amount(unit: &str, cost_pico: Option<i64>, tokens: i64) -> i64 {
    if unit == "tokens" {
        tokens
    } else {
        cost_pico.unwrap_or(0)
    }
}

/// The most a request can cost: every byte of the prompt as a token (BPE tokens are at least a
/// byte; plus a few tokens of framing per message) and every allowed output token.
pub fn max_tokens_of(request: &ChatRequest, max_output: u32) -> (u64, u64) {
    let mut input = 0u64;
    for m in &request.messages {
        input += 8 + m.content.as_deref().map_or(0, |c| c.len() as u64);
        for call in &m.tool_calls {
            input += (call.name.len() + call.arguments.len()) as u64 + 8;
        }
    }
    for t in &request.tools {
        input += t.name.len() as u64
            + t.description.len() as u64
            + t.parameters.to_string().len() as u64
            + 8;
    }
    (input, u64::from(max_output))
}

/// Budgets that apply to one run, with their current periods.
pub struct RunBudgets {
    entries: Vec<(BudgetRow, String)>,
}

/// Reservations a call holds until it settles.
#[derive(Default)]
pub struct Held {
    reserved: Vec<(Uuid, String, i64)>,
}

/// A budget refused the call.
#[derive(Debug, Clone)]
pub struct Blocked {
    pub budget_id: Uuid,
    pub name: String,
    pub unit: String,
    pub limit: i64,
    pub spent: i64,
    pub reserved: i64,
}

impl RunBudgets {
    pub async fn load(
        platform: &Platform,
        org_id: Uuid,
        subject: &Subject,
        now: DateTime<Utc>,
    ) -> Result<RunBudgets, StoreError> {
        let rows = budgets::applicable(&platform.db, org_id, subject).await?;
        let entries = rows
            .into_iter()
            .map(|row| {
                let start = period_start(&row.period, &row.timezone, now);
                (row, start)
            })
            .collect();
        Ok(RunBudgets { entries })
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether any budget can block (then the call's output must be bounded).
    pub fn can_block(&self) -> bool {
        self.entries.iter().any(|(row, _)| {
            thresholds_of(row)
                .iter()
                .any(|t| t.action == ThresholdAction::Block)
        })
    }

    /// Reserves the call's maximum on every budget that can block it.
    pub async fn reserve(
        &self,
        platform: &Platform,
        run_id: Uuid,
        step: i64,
        max_cost_pico: Option<i64>,
        max_tokens: i64,
    ) -> Result<Result<Held, Blocked>, StoreError> {
        let expires_at = Utc::now() + Duration::minutes(RESERVATION_TTL_MINUTES);
        let mut reservations = Vec::new();
        for (row, start) in &self.entries {
            let Some(block_at) = thresholds_of(row)
                .iter()
                .filter(|t| t.action == ThresholdAction::Block)
                .map(|t| t.percent)
                .min()
            else {
                continue;
            };
            let cap = (i128::from(row.limit_amount) * i128::from(block_at) / 100)
                .clamp(0, i128::from(i64::MAX)) as i64;
            reservations.push(Reservation {
                budget_id: row.id,
                org_id: row.org_id,
                period_start: start.clone(),
                amount: amount(&row.unit, max_cost_pico, max_tokens),
                cap,
                run_id,
                step,
                expires_at,
            });
        }
        if reservations.is_empty() {
            return Ok(Ok(Held::default()));
        }
        match budgets::reserve(&platform.db, run_id, step, &reservations).await? {
            Ok(()) => Ok(Ok(Held {
                reserved: reservations
                    .into_iter()
                    .map(|r| (r.budget_id, r.period_start, r.amount))
                    .collect(),
            })),
            Err(refused) => {
                let row = self
                    .entries
                    .iter()
                    .find(|(row, _)| row.id == refused.budget_id)
                    .map(|(row, _)| row);
                Ok(Err(Blocked {
                    budget_id: refused.budget_id,
                    name: row.map(|r| r.name.clone()).unwrap_or_default(),
                    unit: row.map(|r| r.unit.clone()).unwrap_or_default(),
                    limit: row.map_or(0, |r| r.limit_amount),
                    spent: refused.spent,
                    reserved: refused.reserved,
                }))
            }
        }
    }

    /// Statements adding the call's actual amount to every budget and releasing its
    /// reservations; part of the step's commit.
    pub fn settle(
        &self,
        run_id: Uuid,
        step: i64,
        held: &Held,
        cost_pico: Option<i64>,
        usage: &Usage,
    ) -> Vec<agentry_store::Statement> {
        let tokens = i64::try_from(usage.total_tokens()).unwrap_or(i64::MAX);
        let settlements: Vec<Settlement> = self
            .entries
            .iter()
            .map(|(row, start)| Settlement {
                budget_id: row.id,
                org_id: row.org_id,
                period_start: start.clone(),
                spent: amount(&row.unit, cost_pico, tokens),
            })
            .collect();
        budgets::settle_statements(run_id, step, &settlements, &held.reserved)
    }

    /// After a settled call: records each threshold the spend has reached (once per period)
    /// and queues its notification.
    pub async fn announce_thresholds(&self, platform: &Platform) -> Result<(), StoreError> {
        for (row, start) in &self.entries {
            let Some(period) = budgets::period(&platform.db, row.id, start).await? else {
                continue;
            };
            for t in thresholds_of(row) {
                let at = i128::from(row.limit_amount) * i128::from(t.percent) / 100;
                if i128::from(period.spent) < at {
                    continue;
                }
                let deliver = row.notify_url.is_some() || row.notify_email.is_some();
                let alert = AlertRow {
                    id: Uuid::now_v7(),
                    budget_id: row.id,
                    org_id: row.org_id,
                    period_start: start.clone(),
                    threshold: i64::from(t.percent),
                    action: t.action.as_str().to_string(),
                    spent: period.spent,
                    delivery: if deliver { "pending" } else { "none" }.to_string(),
                    delivery_error: None,
                    created_at: Utc::now(),
                };
                if budgets::record_alert(&platform.db, &alert, deliver).await? {
                    metrics::counter!("agentry_budget_thresholds_total", "action" => t.action.as_str())
                        .increment(1);
                    if deliver {
                        platform.notifier.job_enqueued();
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn periods_start_in_the_budgets_time_zone() {
        // 23:30 UTC on Sunday 2026-11-29 is already Monday 30 November in Berlin.
        let t = Utc.with_ymd_and_hms(2026, 11, 29, 23, 30, 0).unwrap();
        assert_eq!(period_start("day", "UTC", t), "2026-11-29");
        assert_eq!(period_start("day", "Europe/Berlin", t), "2026-11-30");
        assert_eq!(period_start("week", "UTC", t), "2026-11-23");
        assert_eq!(period_start("week", "Europe/Berlin", t), "2026-11-30");
        assert_eq!(period_start("month", "Europe/Berlin", t), "2026-11-01");
        let new_year = Utc.with_ymd_and_hms(2026, 12, 31, 23, 30, 0).unwrap();
        assert_eq!(period_start("month", "Asia/Tokyo", new_year), "2027-01-01");
        assert_eq!(
            period_start("month", "America/New_York", new_year),
            "2026-12-01"
        );
    }

    #[test]
    fn the_maximum_covers_prompt_bytes_tools_and_output() {
        let request = ChatRequest {
            model: "m".into(),
            messages: vec![agentry_core::chat::Message::user("hello")],
            ..Default::default()
        };
        let (input, output) = max_tokens_of(&request, 100);
        assert_eq!(input, 8 + 5);
        assert_eq!(output, 100);
    }
}
