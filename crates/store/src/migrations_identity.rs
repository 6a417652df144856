//! Migration 2: people, memberships, sessions, invitations, password resets, single sign-on,
//! the audit log and the per-organization data keys of the secrets vault.

use crate::migrations::{
    Ddl, alter_add, id, index, json_null, text, text_null, time, time_null, unique, uuid_null,
};
use sea_query::{ColumnDef, Index, Table};

pub(crate) fn identity() -> Vec<Ddl> {
    vec![
        Ddl::table(
            Table::create()
                .table("users")
                .col(id("id").primary_key())
                .col(text("email"))
                .col(text("name"))
                .col(text_null("password_hash"))
                .col(text_null("totp_secret_encrypted"))
                .col(ColumnDef::new("totp_last_step").big_integer().null())
                .col(time_null("disabled_at"))
                .col(time_null("erased_at"))
                .col(time("created_at"))
                .col(time("updated_at"))
                .to_owned(),
        ),
        unique("users_email", "users", &["email"]),
        // workspace_id is the nil UUID for an org-level membership, so the unique index holds on
        // both databases (NULLs never collide in a unique index).
        Ddl::table(
            Table::create()
                .table("memberships")
                .col(id("org_id"))
                .col(id("workspace_id"))
                .col(id("user_id"))
                .col(text("role"))
                .col(time("created_at"))
                .primary_key(
                    Index::create()
                        .col("org_id")
                        .col("workspace_id")
                        .col("user_id"),
                )
                .to_owned(),
        ),
        index("memberships_user", "memberships", &["user_id"]),
        Ddl::table(
            Table::create()
                .table("sessions")
                .col(id("id").primary_key())
                .col(text("token_hash"))
                .col(id("user_id"))
                .col(uuid_null("org_id"))
                .col(ColumnDef::new("mfa_pending").boolean().not_null())
                .col(text_null("ip"))
                .col(text_null("user_agent"))
                .col(time("created_at"))
                .col(time("last_seen_at"))
                .col(time("expires_at"))
                .col(time_null("revoked_at"))
                .to_owned(),
        ),
        unique("sessions_token", "sessions", &["token_hash"]),
        index("sessions_user", "sessions", &["user_id"]),
        Ddl::table(
            Table::create()
                .table("invitations")
                .col(id("id").primary_key())
                .col(id("org_id"))
                .col(id("workspace_id"))
                .col(text("email"))
                .col(text("role"))
                .col(text("token_hash"))
                .col(uuid_null("invited_by"))
                .col(time("created_at"))
                .col(time("expires_at"))
                .col(time_null("accepted_at"))
                .col(time_null("revoked_at"))
                .to_owned(),
        ),
        unique("invitations_token", "invitations", &["token_hash"]),
        index("invitations_org", "invitations", &["org_id"]),
        Ddl::table(
            Table::create()
                .table("password_resets")
                .col(id("id").primary_key())
                .col(id("user_id"))
                .col(text("token_hash"))
                .col(time("created_at"))
                .col(time("expires_at"))
                .col(time_null("used_at"))
                .to_owned(),
        ),
        unique("password_resets_token", "password_resets", &["token_hash"]),
        Ddl::table(
            Table::create()
                .table("sso_providers")
                .col(id("id").primary_key())
                .col(id("org_id"))
                .col(text("slug"))
                .col(text("display_name"))
                .col(text("discovery_url"))
                .col(text("client_id"))
                .col(text("client_secret_encrypted"))
                .col(text_null("auto_join_role"))
                .col(time("created_at"))
                .col(time("updated_at"))
                .to_owned(),
        ),
        unique("sso_providers_slug", "sso_providers", &["slug"]),
        Ddl::table(
            Table::create()
                .table("sso_logins")
                .col(text("state_hash").primary_key())
                .col(id("provider_id"))
                .col(text("nonce"))
                .col(text("code_verifier"))
                .col(time("created_at"))
                .col(time("expires_at"))
                .to_owned(),
        ),
        Ddl::table(
            Table::create()
                .table("user_identities")
                .col(text("issuer"))
                .col(text("subject"))
                .col(id("user_id"))
                .col(time("created_at"))
                .primary_key(Index::create().col("issuer").col("subject"))
                .to_owned(),
        ),
        Ddl::table(
            Table::create()
                .table("audit_log")
                .col(id("id").primary_key())
                .col(id("org_id"))
                .col(uuid_null("workspace_id"))
                .col(text("actor_type"))
                .col(uuid_null("actor_id"))
                .col(text("actor_label"))
                .col(text("action"))
                .col(text("target_type"))
                .col(text_null("target_id"))
                .col(json_null("before"))
                .col(json_null("after"))
                .col(text_null("ip"))
                .col(text_null("user_agent"))
                .col(text_null("request_id"))
                .col(time("at"))
                .to_owned(),
        ),
        index("audit_log_org", "audit_log", &["org_id", "id"]),
        Ddl::table(
            Table::create()
                .table("org_keys")
                .col(id("id").primary_key())
                .col(id("org_id"))
                .col(text("wrapped_key"))
                .col(text("master_key_id"))
                .col(time("created_at"))
                .to_owned(),
        ),
        unique("org_keys_org", "org_keys", &["org_id"]),
        Ddl::table(
            Table::create()
                .table("org_tasks")
                .col(id("id").primary_key())
                .col(id("org_id"))
                .col(text("kind"))
                .col(text("status"))
                .col(uuid_null("requested_by"))
                .col(json_null("result"))
                .col(text_null("error"))
                .col(time("created_at"))
                .col(time_null("ended_at"))
                .to_owned(),
        ),
        alter_add("api_keys", uuid_null("created_by")),
        alter_add("api_keys", time_null("expires_at")),
        // "org" keys act in every workspace of the org; "workspace" keys only in workspace_id.
        alter_add(
            "api_keys",
            ColumnDef::new("scope")
                .text()
                .not_null()
                .default("org")
                .to_owned(),
        ),
        alter_add("orgs", time_null("deleted_at")),
        alter_add("workspaces", time_null("deleted_at")),
        index("runs_org_status", "runs", &["org_id", "status"]),
    ]
}
