//! Migration 4: durable workflows. Versioned definitions, workflow runs (their journal and
//! events share `run_steps` / `run_events` with agent runs: ids are UUIDv7 and never collide),
//! approvals, triggers (schedules, webhooks, events) and the fires that make each trigger start
//! a run exactly once.

use crate::migrations::{
    Ddl, alter_add, id, index, int, json, json_null, text, text_null, time, time_null, unique,
    uuid_null,
};
use sea_query::{ColumnDef, Index, Table};

fn flag(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).boolean().not_null().to_owned()
}

pub(crate) fn workflows() -> Vec<Ddl> {
    vec![
        Ddl::table(
            Table::create()
                .table("workflows")
                .col(id("id").primary_key())
                .col(id("org_id"))
                .col(id("workspace_id"))
                .col(text("slug"))
                .col(int("latest_version"))
                .col(time("created_at"))
                .col(time("updated_at"))
                .to_owned(),
        ),
        unique("workflows_slug", "workflows", &["workspace_id", "slug"]),
        Ddl::table(
            Table::create()
                .table("workflow_versions")
                .col(id("workflow_id"))
                .col(int("version"))
                .col(id("org_id"))
                .col(id("workspace_id"))
                .col(json("definition"))
                // The YAML as written, so error lines and the author's comments survive.
                .col(text_null("source"))
                .col(time("created_at"))
                .primary_key(Index::create().col("workflow_id").col("version"))
                .to_owned(),
        ),
        Ddl::table(
            Table::create()
                .table("workflow_runs")
                .col(id("id").primary_key())
                .col(id("org_id"))
                .col(id("workspace_id"))
                .col(id("workflow_id"))
                .col(text("workflow_slug"))
                .col(int("workflow_version"))
                .col(text("status"))
                .col(json("input"))
                // A re-run's starting point: {node, state}.
                .col(json_null("start"))
                .col(json_null("output"))
                .col(json_null("error"))
                .col(text_null("idempotency_key"))
                .col(text_null("request_hash"))
                .col(flag("cancel_requested"))
                // Bumped by everything that may unblock a parked run (a decision, a child run
                // ending); a park commit only succeeds when it saw the latest value.
                .col(int("wakeups"))
                .col(uuid_null("parent_run_id"))
                .col(uuid_null("rerun_of"))
                .col(int("depth"))
                .col(json_null("trigger"))
                .col(uuid_null("api_key_id"))
                .col(uuid_null("user_id"))
                .col(time("created_at"))
                .col(time_null("started_at"))
                .col(time_null("ended_at"))
                .to_owned(),
        ),
        index(
            "workflow_runs_workspace",
            "workflow_runs",
            &["workspace_id", "id"],
        ),
        index(
            "workflow_runs_status",
            "workflow_runs",
            &["workspace_id", "status"],
        ),
        unique(
            "workflow_runs_idempotency",
            "workflow_runs",
            &["workspace_id", "idempotency_key"],
        ),
        // The workflow run that started an agent run (an `agent` node): its end wakes the parent.
        alter_add("runs", uuid_null("parent_run_id")),
        Ddl::table(
            Table::create()
                .table("approvals")
                .col(id("id").primary_key())
                .col(id("org_id"))
                .col(id("workspace_id"))
                .col(id("run_id"))
                .col(int("thread"))
                .col(text("node"))
                // `approval` (an approval node) or `ambiguous` (a non-idempotent node whose
                // attempt may or may not have happened before a crash).
                .col(text("kind"))
                .col(text("assignee_role"))
                .col(text_null("message"))
                .col(text("status"))
                .col(time_null("expires_at"))
                .col(text_null("decided_by"))
                .col(text_null("comment"))
                .col(json_null("state_patch"))
                .col(time("created_at"))
                .col(time_null("decided_at"))
                .to_owned(),
        ),
        index(
            "approvals_workspace",
            "approvals",
            &["workspace_id", "status", "id"],
        ),
        index("approvals_run", "approvals", &["run_id"]),
        Ddl::table(
            Table::create()
                .table("triggers")
                .col(id("id").primary_key())
                .col(id("org_id"))
                .col(id("workspace_id"))
                .col(text("name"))
                // schedule | webhook | event
                .col(text("kind"))
                // workflow | agent, and its slug
                .col(text("target_kind"))
                .col(text("target"))
                .col(json("config"))
                // Sealed webhook secrets (the vault), never returned.
                .col(text_null("secrets"))
                .col(json_null("input"))
                .col(flag("paused"))
                .col(time_null("next_fire_at"))
                .col(time_null("last_fired_at"))
                .col(time("created_at"))
                .col(time("updated_at"))
                .to_owned(),
        ),
        index("triggers_workspace", "triggers", &["workspace_id", "id"]),
        index("triggers_due", "triggers", &["kind", "next_fire_at"]),
        Ddl::table(
            Table::create()
                .table("trigger_fires")
                .col(id("trigger_id"))
                // The schedule tick (RFC 3339), the webhook-id, or the source run id.
                .col(text("fire_key"))
                .col(id("org_id"))
                .col(uuid_null("run_id"))
                .col(time("created_at"))
                .primary_key(Index::create().col("trigger_id").col("fire_key"))
                .to_owned(),
        ),
    ]
}
