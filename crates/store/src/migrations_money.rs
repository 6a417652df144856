//! Migration 3: money. Who started a run (for cost attribution), one cost event per model call,
//! per-organization price overrides, budgets with their per-period counters, reservations and
//! the thresholds already announced.

use crate::migrations::{Ddl, alter_add, id, index, int, json, text, text_null, time, uuid_null};
use sea_query::{ColumnDef, Index, Table};

fn int_null(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).big_integer().null().to_owned()
}

pub(crate) fn money() -> Vec<Ddl> {
    vec![
        // Attribution: the API key or the person that started the run, and the caller's own
        // end-user id when it passed one.
        alter_add("runs", uuid_null("api_key_id")),
        alter_add("runs", uuid_null("user_id")),
        alter_add("runs", text_null("end_user")),
        // Costs are integers in pico-USD (1e-12 USD): a price in micro-USD per million tokens
        // times a token count is exactly that, so the ledger never rounds.
        Ddl::table(
            Table::create()
                .table("cost_events")
                .col(id("id").primary_key())
                .col(id("org_id"))
                .col(id("workspace_id"))
                .col(id("run_id"))
                .col(int("step"))
                .col(int("attempt"))
                .col(id("agent_id"))
                .col(int("agent_version"))
                .col(uuid_null("api_key_id"))
                .col(uuid_null("user_id"))
                .col(text_null("end_user"))
                .col(text("provider"))
                .col(text("model"))
                .col(int("input_tokens"))
                .col(int("cache_read_tokens"))
                .col(int("cache_write_tokens"))
                .col(int("output_tokens"))
                .col(int_null("cost_pico"))
                .col(ColumnDef::new("cache_hit").boolean().not_null())
                .col(text("outcome"))
                .col(text("day"))
                .col(time("created_at"))
                .to_owned(),
        ),
        crate::migrations::unique(
            "cost_events_call",
            "cost_events",
            &["run_id", "step", "attempt"],
        ),
        index("cost_events_org_day", "cost_events", &["org_id", "day"]),
        Ddl::table(
            Table::create()
                .table("model_prices")
                .col(id("id").primary_key())
                .col(id("org_id"))
                // '' = every provider of the org.
                .col(text("provider"))
                .col(text("model"))
                .col(int("input_micro"))
                .col(int("output_micro"))
                .col(int_null("cache_read_micro"))
                .col(int_null("cache_write_micro"))
                .col(time("effective_from"))
                .col(time("created_at"))
                .to_owned(),
        ),
        index("model_prices_org", "model_prices", &["org_id", "model"]),
        Ddl::table(
            Table::create()
                .table("budgets")
                .col(id("id").primary_key())
                .col(id("org_id"))
                .col(text("name"))
                .col(text("scope_kind"))
                // '' for the org itself; else the workspace, agent or API key id, or the
                // end-user id the caller passes.
                .col(text("scope_ref"))
                .col(text("period"))
                .col(text("timezone"))
                .col(text("unit"))
                .col(int("limit_amount"))
                .col(json("thresholds"))
                .col(text_null("notify_url"))
                .col(text_null("notify_secret_encrypted"))
                .col(text_null("notify_email"))
                .col(time("created_at"))
                .col(time("updated_at"))
                .to_owned(),
        ),
        index("budgets_org", "budgets", &["org_id"]),
        Ddl::table(
            Table::create()
                .table("budget_periods")
                .col(id("budget_id"))
                .col(text("period_start"))
                .col(id("org_id"))
                .col(int("spent"))
                .col(int("reserved"))
                .primary_key(Index::create().col("budget_id").col("period_start"))
                .to_owned(),
        ),
        Ddl::table(
            Table::create()
                .table("budget_reservations")
                .col(id("id").primary_key())
                .col(id("budget_id"))
                .col(text("period_start"))
                .col(id("run_id"))
                .col(int("step"))
                .col(int("amount"))
                .col(time("expires_at"))
                .to_owned(),
        ),
        index(
            "budget_reservations_run",
            "budget_reservations",
            &["run_id", "step"],
        ),
        index(
            "budget_reservations_expiry",
            "budget_reservations",
            &["expires_at"],
        ),
        Ddl::table(
            Table::create()
                .table("budget_alerts")
                .col(id("id").primary_key())
                .col(id("budget_id"))
                .col(id("org_id"))
                .col(text("period_start"))
                .col(int("threshold"))
                .col(text("action"))
                .col(int("spent"))
                .col(text("delivery"))
                .col(text_null("delivery_error"))
                .col(time("created_at"))
                .to_owned(),
        ),
        // Per-organization settings documents: `guardrails` (the org's policy; agents add
        // theirs), `routing` (model tiers and aliases).
        Ddl::table(
            Table::create()
                .table("org_settings")
                .col(id("org_id"))
                .col(text("key"))
                .col(json("value"))
                .col(time("updated_at"))
                .primary_key(Index::create().col("org_id").col("key"))
                .to_owned(),
        ),
        // Values of the installation itself (e.g. a random id that keeps two installations'
        // keys apart in a shared Redis).
        Ddl::table(
            Table::create()
                .table("instance_settings")
                .col(text("key").primary_key())
                .col(text("value"))
                .to_owned(),
        ),
        crate::migrations::unique(
            "budget_alerts_once",
            "budget_alerts",
            &["budget_id", "period_start", "threshold"],
        ),
    ]
}
