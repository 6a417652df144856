//! Migration 5: multi-agent runs. A crew manager's or network router's child run records the
//! agent run that started it and how deep in the delegation chain it is. (`parent_run_id`
//! already names the *workflow* run waiting for an agent run; this is a separate link.)

use crate::migrations::{Ddl, alter_add, index, uuid_null};
use sea_query::ColumnDef;

pub(crate) fn crews() -> Vec<Ddl> {
    vec![
        alter_add("runs", uuid_null("parent_agent_run_id")),
        // A default, so existing rows (top-level runs) read as depth 0 on both backends.
        alter_add(
            "runs",
            ColumnDef::new("delegation_depth")
                .big_integer()
                .not_null()
                .default(0)
                .to_owned(),
        ),
        index("runs_parent_agent", "runs", &["parent_agent_run_id"]),
    ]
}
