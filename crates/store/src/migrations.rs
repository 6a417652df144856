//! Schema migrations, defined once in Rust with sea-query and rendered per dialect, then applied
//! by sqlx's migrator (checksums, a lock on PostgreSQL). Append new migrations; never edit an
//! applied one (its checksum would change and startup would refuse).

use crate::db::Dialect;
use sea_query::{
    ColumnDef, Index, IndexCreateStatement, PostgresQueryBuilder, SqliteQueryBuilder, Table,
    TableAlterStatement, TableCreateStatement,
};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AssertSqlSafe, SqlSafeStr};

type MigrationFn = fn() -> Vec<Ddl>;

/// The ordered list of migrations: (version, description, statements).
const MIGRATIONS: &[(i64, &str, MigrationFn)] = &[
    (1, "foundation", foundation),
    (2, "identity", crate::migrations_identity::identity),
    (3, "money", crate::migrations_money::money),
    (4, "workflows", crate::migrations_workflows::workflows),
    (5, "crews", crate::migrations_crews::crews),
];

pub(crate) fn count() -> usize {
    MIGRATIONS.len()
}

pub(crate) enum Ddl {
    Table(Box<TableCreateStatement>),
    Index(Box<IndexCreateStatement>),
    /// One column added to an existing table (SQLite allows one change per statement).
    Alter(Box<TableAlterStatement>),
}

impl Ddl {
    pub(crate) fn table(t: TableCreateStatement) -> Ddl {
        Ddl::Table(Box::new(t))
    }

    fn render(&self, dialect: Dialect) -> String {
        match (self, dialect) {
            (Ddl::Table(t), Dialect::Sqlite) => t.to_string(SqliteQueryBuilder),
            (Ddl::Table(t), Dialect::Postgres) => t.to_string(PostgresQueryBuilder),
            (Ddl::Index(i), Dialect::Sqlite) => i.to_string(SqliteQueryBuilder),
            (Ddl::Index(i), Dialect::Postgres) => i.to_string(PostgresQueryBuilder),
            (Ddl::Alter(a), Dialect::Sqlite) => a.to_string(SqliteQueryBuilder),
            (Ddl::Alter(a), Dialect::Postgres) => a.to_string(PostgresQueryBuilder),
        }
    }
}

pub(crate) fn migrator(dialect: Dialect) -> Migrator {
    let migrations = MIGRATIONS
        .iter()
        .map(|(version, description, statements)| {
            let sql = statements()
                .iter()
                .map(|ddl| ddl.render(dialect))
                .collect::<Vec<_>>()
                .join(";\n");
            Migration::new(
                *version,
                (*description).into(),
                MigrationType::Simple,
                AssertSqlSafe(format!("{sql};")).into_sql_str(),
                false,
            )
        })
        .collect();
    Migrator::with_migrations(migrations)
}

pub(crate) fn id(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).uuid().not_null().to_owned()
}
pub(crate) fn uuid_null(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).uuid().null().to_owned()
}
pub(crate) fn text(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).text().not_null().to_owned()
}
pub(crate) fn text_null(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).text().null().to_owned()
}
pub(crate) fn json(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).json_binary().not_null().to_owned()
}
pub(crate) fn json_null(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).json_binary().null().to_owned()
}
pub(crate) fn int(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).big_integer().not_null().to_owned()
}
pub(crate) fn time(name: &'static str) -> ColumnDef {
    ColumnDef::new(name)
        .timestamp_with_time_zone()
        .not_null()
        .to_owned()
}
pub(crate) fn time_null(name: &'static str) -> ColumnDef {
    ColumnDef::new(name)
        .timestamp_with_time_zone()
        .null()
        .to_owned()
}

/// One column added to an existing table.
pub(crate) fn alter_add(table: &'static str, column: ColumnDef) -> Ddl {
    Ddl::Alter(Box::new(
        Table::alter()
            .table(table)
            .add_column(column.to_owned())
            .to_owned(),
    ))
}

pub(crate) fn index(name: &str, table: &str, columns: &[&str]) -> Ddl {
    let mut i = Index::create();
    i.name(name).table(table.to_string()).if_not_exists();
    for c in columns {
        i.col(c.to_string());
    }
    Ddl::Index(Box::new(i.to_owned()))
}

pub(crate) fn unique(name: &str, table: &str, columns: &[&str]) -> Ddl {
    match index(name, table, columns) {
        Ddl::Index(mut i) => Ddl::Index(Box::new(i.unique().to_owned())),
        other => other,
    }
}

fn foundation() -> Vec<Ddl> {
    vec![
        Ddl::table(
            Table::create()
                .table("orgs")
                .col(id("id").primary_key())
                .col(text("name"))
                .col(time("created_at"))
                .to_owned(),
        ),
        Ddl::table(
            Table::create()
                .table("workspaces")
                .col(id("id").primary_key())
                .col(id("org_id"))
                .col(text("name"))
                .col(time("created_at"))
                .to_owned(),
        ),
        index("workspaces_org", "workspaces", &["org_id"]),
        Ddl::table(
            Table::create()
                .table("api_keys")
                .col(id("id").primary_key())
                .col(id("org_id"))
                .col(uuid_null("workspace_id"))
                .col(text("name"))
                .col(text("key_hash"))
                .col(text("prefix"))
                .col(text("role"))
                .col(time("created_at"))
                .col(time_null("last_used_at"))
                .col(time_null("revoked_at"))
                .to_owned(),
        ),
        unique("api_keys_hash", "api_keys", &["key_hash"]),
        index("api_keys_org", "api_keys", &["org_id"]),
        Ddl::table(
            Table::create()
                .table("providers")
                .col(id("id").primary_key())
                .col(id("org_id"))
                .col(text("name"))
                .col(text("kind"))
                .col(text("base_url"))
                .col(text_null("api_key_encrypted"))
                .col(time("created_at"))
                .col(time("updated_at"))
                .to_owned(),
        ),
        unique("providers_org_name", "providers", &["org_id", "name"]),
        Ddl::table(
            Table::create()
                .table("agents")
                .col(id("id").primary_key())
                .col(id("org_id"))
                .col(id("workspace_id"))
                .col(text("slug"))
                .col(int("version"))
                .col(time("created_at"))
                .col(time("updated_at"))
                .to_owned(),
        ),
        unique("agents_workspace_slug", "agents", &["workspace_id", "slug"]),
        Ddl::table(
            Table::create()
                .table("agent_versions")
                .col(id("agent_id"))
                .col(int("version"))
                .col(id("org_id"))
                .col(id("workspace_id"))
                .col(json("spec"))
                .col(time("created_at"))
                .primary_key(Index::create().col("agent_id").col("version"))
                .to_owned(),
        ),
        Ddl::table(
            Table::create()
                .table("runs")
                .col(id("id").primary_key())
                .col(id("org_id"))
                .col(id("workspace_id"))
                .col(id("agent_id"))
                .col(text("agent_slug"))
                .col(int("agent_version"))
                .col(text_null("thread_id"))
                .col(text("status"))
                .col(json("input"))
                .col(text_null("output"))
                .col(json_null("error"))
                .col(int("input_tokens"))
                .col(int("output_tokens"))
                .col(text_null("idempotency_key"))
                .col(text_null("request_hash"))
                .col(ColumnDef::new("cancel_requested").boolean().not_null())
                .col(time("created_at"))
                .col(time_null("started_at"))
                .col(time_null("ended_at"))
                .to_owned(),
        ),
        index("runs_workspace", "runs", &["workspace_id", "id"]),
        index("runs_thread", "runs", &["workspace_id", "thread_id", "id"]),
        unique(
            "runs_idempotency",
            "runs",
            &["workspace_id", "idempotency_key"],
        ),
        Ddl::table(
            Table::create()
                .table("run_steps")
                .col(id("run_id"))
                .col(int("idx"))
                .col(id("org_id"))
                .col(text("kind"))
                .col(json("record"))
                .col(time("started_at"))
                .col(time("ended_at"))
                .primary_key(Index::create().col("run_id").col("idx"))
                .to_owned(),
        ),
        Ddl::table(
            Table::create()
                .table("run_events")
                .col(id("run_id"))
                .col(int("seq"))
                .col(id("org_id"))
                .col(text("name"))
                .col(json("data"))
                .col(time("created_at"))
                .primary_key(Index::create().col("run_id").col("seq"))
                .to_owned(),
        ),
        Ddl::table(
            Table::create()
                .table("jobs")
                .col(id("id").primary_key())
                .col(id("org_id"))
                .col(text("kind"))
                .col(id("target_id"))
                .col(text("status"))
                .col(time("run_at"))
                .col(text_null("lease_owner"))
                .col(time_null("lease_until"))
                .col(int("lease_token"))
                .col(int("attempts"))
                .col(time("created_at"))
                .col(time("updated_at"))
                .to_owned(),
        ),
        index("jobs_claim", "jobs", &["status", "run_at"]),
        index("jobs_target", "jobs", &["target_id"]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_native_types_per_dialect() {
        let pg: String = foundation()
            .iter()
            .map(|d| d.render(Dialect::Postgres))
            .collect();
        assert!(pg.contains("uuid"), "{pg}");
        assert!(pg.contains("jsonb"), "{pg}");
        assert!(pg.contains("timestamp with time zone"), "{pg}");
        let lite: String = foundation()
            .iter()
            .map(|d| d.render(Dialect::Sqlite))
            .collect();
        assert!(lite.contains("CREATE TABLE"), "{lite}");
    }
}
