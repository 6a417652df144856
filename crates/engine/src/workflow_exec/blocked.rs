//! Threads blocked on something outside the run: a person's decision, a child run, or an
//! attempt whose effect is unknown after a crash.

use super::nodes::{Attempt, Failure};
use super::{Flow, FlowError, now_ms};
use agentry_store::Statement;
use agentry_store::approvals::{self, NewApproval};
use agentry_workflow::machine::{Record, ThreadId};
use agentry_workflow::{NodeKind, OnTimeout};
use serde_json::Value;
use uuid::Uuid;

impl Flow {
    /// The decision on an approval, if there is one yet (a passed deadline decides by the
    /// node's `on_timeout`).
    pub(super) async fn check_approval(
        &mut self,
        thread: ThreadId,
        node: &str,
        approval: &str,
    ) -> Result<Option<Record>, FlowError> {
        let Ok(id) = Uuid::parse_str(approval) else {
            return Ok(None);
        };
        let db = &self.platform.db;
        let Some(mut row) = approvals::get_for_execution(db, id).await? else {
            return Ok(None);
        };
        if row.status == approvals::PENDING {
            let deadline_passed = row
                .expires_at
                .is_some_and(|e| e.timestamp_millis() <= now_ms());
            if !deadline_passed {
                return Ok(None);
            }
            // Whoever flips the row first decides: a person just in time, or the timeout.
            approvals::expire(db, id, chrono::Utc::now()).await?;
            match approvals::get_for_execution(db, id).await? {
                Some(r) => row = r,
                None => return Ok(None),
            }
        }
        let timeout_approves = match self.def.workflow().spec.nodes.get(node).map(|n| &n.kind) {
            Some(NodeKind::Approval(a)) => a.on_timeout == OnTimeout::Approve,
            _ => false,
        };
        let (approved, by) = match row.status.as_str() {
            approvals::APPROVED => (true, row.decided_by.clone().unwrap_or_default()),
            approvals::REJECTED => (false, row.decided_by.clone().unwrap_or_default()),
            approvals::EXPIRED => (
                timeout_approves && row.kind == approvals::KIND_APPROVAL,
                "timeout".to_owned(),
            ),
            _ => return Ok(None),
        };
        Ok(Some(Record::ApprovalDecided {
            thread,
            node: node.to_owned(),
            approval: approval.to_owned(),
            approved,
            state_patch: row.state_patch.map(|p| p.0),
            by,
            comment: row.comment,
        }))
    }

    /// The outcome of a child run, once it ended.
    pub(super) async fn check_child(
        &mut self,
        thread: ThreadId,
        node: &str,
        child: &str,
    ) -> Result<Option<Record>, FlowError> {
        let Ok(id) = Uuid::parse_str(child) else {
            return Ok(None);
        };
        let def = self.def.clone();
        let Some(node_def) = def.workflow().spec.nodes.get(node) else {
            return Ok(None);
        };
        let failed_so_far = self.cursor.threads.get(&thread).map_or(0, |t| t.attempts);
        let attempt = Attempt::of_node(node_def, failed_so_far);
        let db = &self.platform.db;
        let result: Result<Value, Failure> = match &node_def.kind {
            NodeKind::Agent(_) => {
                let Some(run) = agentry_store::runs::load_for_execution(db, id).await? else {
                    return Ok(None);
                };
                if !run.status().is_terminal() {
                    return Ok(None);
                }
                match run.status() {
                    agentry_core::run::RunStatus::Completed => {
                        let text = run.output.unwrap_or_default();
                        Ok(serde_json::from_str::<Value>(&text)
                            .ok()
                            .filter(|v| v.is_object() || v.is_array())
                            .unwrap_or(Value::String(text)))
                    }
                    _ => Err(match run.error {
                        Some(e) => Failure::new(e.0.code.as_str(), e.0.message),
                        None => {
                            Failure::new("node_failed", format!("agent run {id} {}", run.status))
                        }
                    }),
                }
            }
            NodeKind::Workflow(_) => {
                let Some(run) = agentry_store::workflow_runs::load_for_execution(db, id).await?
                else {
                    return Ok(None);
                };
                if !agentry_store::workflow_runs::is_terminal(&run.status) {
                    return Ok(None);
                }
                if run.status == agentry_store::workflow_runs::COMPLETED {
                    Ok(run.output.map(|o| o.0).unwrap_or(Value::Null))
                } else {
                    let error = run.error.map(|e| e.0).unwrap_or(Value::Null);
                    Err(Failure::new(
                        error
                            .get("code")
                            .and_then(Value::as_str)
                            .unwrap_or("node_failed"),
                        format!(
                            "sub-workflow run {id} {}: {}",
                            run.status,
                            error.get("message").and_then(Value::as_str).unwrap_or("")
                        ),
                    ))
                }
            }
            _ => return Ok(None),
        };
        let input = Some(serde_json::json!({"child_run_id": child}));
        Ok(Some(attempt.settle(thread, node, input, result, None)))
    }

    /// A non-idempotent attempt whose outcome is unknown: a person decides (approve = run it
    /// again, reject = count it as failed).
    pub(super) fn ambiguous(
        &mut self,
        thread: ThreadId,
        node: &str,
        attempt: u32,
    ) -> (Record, Statement) {
        let id = Uuid::now_v7();
        let insert = approvals::insert_statement(
            self.scope,
            NewApproval {
                id,
                run_id: self.run.id,
                thread: i64::from(thread),
                node: node.to_owned(),
                kind: approvals::KIND_AMBIGUOUS,
                assignee_role: "member".into(),
                message: Some(format!(
                    "The server stopped while attempt {attempt} of `{node}` (not idempotent) was \
                     running, so it may or may not have taken effect. Approve to run it again; \
                     reject to treat it as failed."
                )),
                expires_at: None,
            },
            chrono::Utc::now(),
        );
        (
            Record::ApprovalRequested {
                thread,
                node: node.to_owned(),
                approval: id.to_string(),
                expires_at: None,
                ambiguous: true,
            },
            insert,
        )
    }
}
