//! Starting one node. Instant kinds (transform, switch, end, parallel, map, wait, approval,
//! and the child-run kinds, whose child is created in the record's own transaction) produce
//! their record at once; kinds that do I/O (tool, http, llm) return a task whose record is
//! committed when it finishes.

use super::{Finished, Flow, FlowError, MAX_DEPTH, MAX_MAP_ITEMS, MAX_NODE_OUTPUT_BYTES, now_ms};
use agentry_core::chat::{ChatRequest, Message, NoDeltas};
use agentry_core::run::RunInput;
use agentry_core::tool::ToolContext;
use agentry_store::Statement;
use agentry_store::approvals::{self, NewApproval};
use agentry_workflow::machine::{Record, ThreadId};
use agentry_workflow::{
    EvalError, HttpMethod, Node, NodeKind, eval_condition, eval_expression, render_template,
    render_value, run_jq,
};
use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;

pub(crate) enum Started {
    /// The record (and the rows it implies), to commit now.
    Now(Record, Vec<Statement>),
    /// A task to spawn once the batch commits; with an intent record for non-idempotent work.
    Later(BoxFuture<'static, Finished>, Option<Record>),
}

/// A node's failure before it is turned into a record.
pub(crate) struct Failure {
    pub code: String,
    pub message: String,
}

impl Failure {
    pub(crate) fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }
}

impl From<EvalError> for Failure {
    fn from(e: EvalError) -> Self {
        Failure::new("expression_failed", e.to_string())
    }
}

/// A node's retry policy and where the attempt stands.
#[derive(Clone, Copy)]
pub(crate) struct Attempt {
    pub number: u32,
    pub allowed: u32,
    pub backoff_ms: u64,
}

impl Attempt {
    pub(crate) fn of_node(node: &Node, failed_so_far: u32) -> Self {
        let retry = node.common.retry.as_ref();
        Attempt {
            number: failed_so_far + 1,
            allowed: retry.map_or(1, |r| r.attempts.max(1)),
            backoff_ms: retry.map_or(0, |r| r.backoff_ms),
        }
    }

    /// The record of this attempt's outcome.
    pub(crate) fn settle(
        self,
        thread: ThreadId,
        node: &str,
        input: Option<Value>,
        result: Result<Value, Failure>,
        next: Option<String>,
    ) -> Record {
        let result = result.and_then(|output| {
            let bytes = output.to_string().len();
            if bytes > MAX_NODE_OUTPUT_BYTES {
                Err(Failure::new(
                    "workflow_limit_exceeded",
                    format!(
                        "the node's output is {bytes} bytes; the limit is {MAX_NODE_OUTPUT_BYTES}"
                    ),
                ))
            } else {
                Ok(output)
            }
        });
        match result {
            Ok(output) => Record::Completed {
                thread,
                node: node.to_owned(),
                input,
                output,
                next,
            },
            Err(f) => {
                let retry_at = (self.number < self.allowed).then(|| {
                    let factor = 1u64 << (self.number - 1).min(20);
                    now_ms() + self.backoff_ms.saturating_mul(factor).min(86_400_000) as i64
                });
                Record::Failed {
                    thread,
                    node: node.to_owned(),
                    input,
                    code: f.code,
                    message: f.message,
                    attempt: self.number,
                    retry_at,
                }
            }
        }
    }
}

impl Flow {
    pub(super) async fn start_node(
        &mut self,
        thread: ThreadId,
        node_id: &str,
    ) -> Result<Started, FlowError> {
        let def = self.def.clone();
        let Some(node) = def.workflow().spec.nodes.get(node_id) else {
            return Ok(Started::Now(
                Record::Aborted {
                    code: "workflow_unavailable".into(),
                    message: format!("node `{node_id}` is not in this version"),
                },
                Vec::new(),
            ));
        };
        let failed_so_far = self.cursor.threads.get(&thread).map_or(0, |t| t.attempts);
        let attempt = Attempt::of_node(node, failed_so_far);
        let visits = self.cursor.visits.get(node_id).copied().unwrap_or(0);
        if let Some(max) = node.common.max_visits
            && visits >= max
        {
            let failure = Failure::new(
                "workflow_limit_exceeded",
                format!("node `{node_id}` already ran {visits} times, its max_visits"),
            );
            let no_retry = Attempt {
                allowed: attempt.number,
                ..attempt
            };
            return Ok(Started::Now(
                no_retry.settle(thread, node_id, None, Err(failure), None),
                Vec::new(),
            ));
        }
        let ctx = self.cursor.context(thread);
        let now = |r: Record| Ok(Started::Now(r, Vec::new()));
        match &node.kind {
            NodeKind::Transform(t) => {
                let result = match (&t.jq, &t.template) {
                    (Some(program), _) => run_jq(program, &ctx)
                        .map(|mut out| match out.len() {
                            0 => Value::Null,
                            1 => out.swap_remove(0),
                            _ => Value::Array(out),
                        })
                        .map_err(Failure::from),
                    (None, Some(tpl)) => render_template(tpl, &ctx)
                        .map(Value::String)
                        .map_err(Failure::from),
                    (None, None) => Err(Failure::new("invalid_node", "transform has no program")),
                };
                now(attempt.settle(thread, node_id, None, result, None))
            }
            NodeKind::Switch(s) => {
                let mut chosen = None;
                for case in &s.cases {
                    match eval_condition(&case.when, &ctx) {
                        Ok(true) => {
                            chosen = Some(case.next.clone());
                            break;
                        }
                        Ok(false) => {}
                        Err(e) => {
                            return now(attempt.settle(thread, node_id, None, Err(e.into()), None));
                        }
                    }
                }
                let next = chosen.unwrap_or_else(|| s.default.clone());
                now(attempt.settle(
                    thread,
                    node_id,
                    None,
                    Ok(json!({"next": next})),
                    Some(next.clone()),
                ))
            }
            NodeKind::End(e) => {
                let result = match &e.output {
                    Some(template) => render_value(template, &ctx).map_err(Failure::from),
                    None => {
                        let mut state = self.cursor.state.clone();
                        state.remove("input");
                        Ok(Value::Object(state))
                    }
                };
                now(attempt.settle(thread, node_id, None, result, None))
            }
            NodeKind::Parallel(_) => now(Record::Forked {
                thread,
                node: node_id.to_owned(),
                items: None,
            }),
            NodeKind::Map(m) => match eval_expression(&m.items, &ctx) {
                Ok(Value::Array(items)) if items.len() <= MAX_MAP_ITEMS => now(Record::Forked {
                    thread,
                    node: node_id.to_owned(),
                    items: Some(items),
                }),
                Ok(Value::Array(items)) => {
                    let failure = Failure::new(
                        "workflow_limit_exceeded",
                        format!(
                            "map over {} items; the limit is {MAX_MAP_ITEMS}",
                            items.len()
                        ),
                    );
                    now(attempt.settle(thread, node_id, None, Err(failure), None))
                }
                Ok(other) => {
                    let failure = Failure::new(
                        "expression_failed",
                        format!("`items` must give a list; it gave {other}"),
                    );
                    now(attempt.settle(thread, node_id, None, Err(failure), None))
                }
                Err(e) => now(attempt.settle(thread, node_id, None, Err(e.into()), None)),
            },
            NodeKind::Wait(w) => {
                let until = if let Some(seconds) = w.seconds {
                    Ok(now_ms() + (seconds as i64).saturating_mul(1000))
                } else {
                    let text = match (&w.until, &w.until_expr) {
                        (Some(t), _) => Ok(t.clone()),
                        (None, Some(expr)) => eval_expression(expr, &ctx)
                            .map_err(Failure::from)
                            .and_then(|v| {
                                v.as_str().map(str::to_owned).ok_or_else(|| {
                                    Failure::new(
                                        "expression_failed",
                                        format!(
                                            "`until_expr` must give an RFC 3339 time; it gave {v}"
                                        ),
                                    )
                                })
                            }),
                        (None, None) => Err(Failure::new("invalid_node", "wait has no time")),
                    };
                    text.and_then(|t| {
                        chrono::DateTime::parse_from_rfc3339(&t)
                            .map(|d| d.timestamp_millis())
                            .map_err(|e| {
                                Failure::new(
                                    "expression_failed",
                                    format!("`{t}` is not RFC 3339: {e}"),
                                )
                            })
                    })
                };
                match until {
                    Ok(until) => now(Record::Sleeping {
                        thread,
                        node: node_id.to_owned(),
                        until,
                    }),
                    Err(f) => now(attempt.settle(thread, node_id, None, Err(f), None)),
                }
            }
            NodeKind::Approval(a) => {
                let message = match &a.message {
                    Some(tpl) => match render_template(tpl, &ctx) {
                        Ok(m) => Some(m),
                        Err(e) => {
                            return now(attempt.settle(thread, node_id, None, Err(e.into()), None));
                        }
                    },
                    None => None,
                };
                let id = uuid::Uuid::now_v7();
                let expires_at = node
                    .common
                    .timeout_seconds
                    .map(|s| now_ms() + (s as i64).saturating_mul(1000));
                let insert = approvals::insert_statement(
                    self.scope,
                    NewApproval {
                        id,
                        run_id: self.run.id,
                        thread: i64::from(thread),
                        node: node_id.to_owned(),
                        kind: approvals::KIND_APPROVAL,
                        assignee_role: a.assignee_role.clone(),
                        message,
                        expires_at: expires_at.map(super::at_ms),
                    },
                    chrono::Utc::now(),
                );
                Ok(Started::Now(
                    Record::ApprovalRequested {
                        thread,
                        node: node_id.to_owned(),
                        approval: id.to_string(),
                        expires_at,
                        ambiguous: false,
                    },
                    vec![insert],
                ))
            }
            NodeKind::Agent(a) => {
                let input = match a.input.as_ref().map(|i| render_value(i, &ctx)).transpose() {
                    Ok(i) => i.unwrap_or(Value::Null),
                    Err(e) => {
                        return now(attempt.settle(thread, node_id, None, Err(e.into()), None));
                    }
                };
                let Some(agent) =
                    agentry_store::agents::get(&self.platform.db, self.scope, &a.agent).await?
                else {
                    let failure = Failure::new(
                        "agent_not_found",
                        format!("no agent `{}` exists in this workspace", a.agent),
                    );
                    return now(attempt.settle(thread, node_id, Some(input), Err(failure), None));
                };
                let text = match &input {
                    Value::String(s) => s.clone(),
                    Value::Null => self
                        .cursor
                        .state
                        .get("input")
                        .map(Value::to_string)
                        .unwrap_or_default(),
                    other => other.to_string(),
                };
                let run_input = serde_json::to_value(RunInput::Text(text))
                    .map_err(|e| crate::ServiceError::internal("serializing an agent input", e))?;
                let (child, statements) = agentry_store::runs::create_statements(
                    self.scope,
                    agentry_store::runs::NewRun {
                        agent_id: agent.id,
                        agent_slug: agent.spec.slug.clone(),
                        agent_version: agent.version,
                        thread_id: None,
                        input: run_input,
                        idempotency_key: None,
                        request_hash: None,
                        api_key_id: self.run.api_key_id,
                        user_id: self.run.user_id,
                        end_user: None,
                        parent_run_id: Some(self.run.id),
                    },
                    chrono::Utc::now(),
                );
                self.platform.notifier.job_enqueued();
                Ok(Started::Now(
                    Record::ChildStarted {
                        thread,
                        node: node_id.to_owned(),
                        child: child.id.to_string(),
                    },
                    statements,
                ))
            }
            NodeKind::Workflow(w) => {
                let input = match w.input.as_ref().map(|i| render_value(i, &ctx)).transpose() {
                    Ok(i) => i.unwrap_or_else(|| json!({})),
                    Err(e) => {
                        return now(attempt.settle(thread, node_id, None, Err(e.into()), None));
                    }
                };
                if self.run.depth + 1 > MAX_DEPTH {
                    let failure = Failure::new(
                        "workflow_limit_exceeded",
                        format!("sub-workflows nest deeper than {MAX_DEPTH} levels"),
                    );
                    return now(attempt.settle(thread, node_id, Some(input), Err(failure), None));
                }
                let child_def = crate::service::workflows::version(
                    &self.platform,
                    self.scope,
                    &w.workflow,
                    None,
                )
                .await;
                let (row, version) = match child_def {
                    Ok(found) => found,
                    Err(e) if e.code == agentry_core::ErrorCode::WorkflowNotFound => {
                        let failure = Failure::new("workflow_not_found", e.message);
                        return now(attempt.settle(
                            thread,
                            node_id,
                            Some(input),
                            Err(failure),
                            None,
                        ));
                    }
                    Err(e) => return Err(e.into()),
                };
                let validated = self
                    .platform
                    .workflow_definition(row.id, version.version)
                    .await?;
                if let Err(e) = crate::service::workflow_runs::check_input(
                    validated.workflow().spec.input.as_ref(),
                    &input,
                ) {
                    let failure = Failure::new("workflow_input_invalid", e.message);
                    return now(attempt.settle(thread, node_id, Some(input), Err(failure), None));
                }
                let (child, statements) = agentry_store::workflow_runs::create_statements(
                    self.scope,
                    agentry_store::workflow_runs::NewWorkflowRun {
                        workflow_id: row.id,
                        workflow_slug: row.slug.clone(),
                        workflow_version: version.version,
                        input,
                        start: None,
                        idempotency_key: None,
                        request_hash: None,
                        parent_run_id: Some(self.run.id),
                        rerun_of: None,
                        depth: self.run.depth + 1,
                        trigger: Some(
                            json!({"kind": "parent", "run_id": self.run.id, "node": node_id}),
                        ),
                        api_key_id: self.run.api_key_id,
                        user_id: self.run.user_id,
                    },
                    chrono::Utc::now(),
                );
                self.platform.notifier.job_enqueued();
                Ok(Started::Now(
                    Record::ChildStarted {
                        thread,
                        node: node_id.to_owned(),
                        child: child.id.to_string(),
                    },
                    statements,
                ))
            }
            NodeKind::Tool(_) | NodeKind::Http(_) | NodeKind::Llm(_) => {
                self.start_io(thread, node_id, node, attempt, ctx, visits)
            }
        }
    }

    /// Tool, HTTP and model calls: rendered now, performed by a spawned task under the node's
    /// timeout.
    fn start_io(
        &mut self,
        thread: ThreadId,
        node_id: &str,
        node: &Node,
        attempt: Attempt,
        ctx: Value,
        visits: u32,
    ) -> Result<Started, FlowError> {
        let key = idempotency_key(self.run.id, thread, node_id, visits);
        let platform = self.platform.clone();
        let org = self.scope.org();
        let timeout = Duration::from_secs(node.common.timeout_seconds.unwrap_or(300));
        let node_name = node_id.to_owned();
        let mut intent = None;
        let work: BoxFuture<'static, (Option<Value>, Result<Value, Failure>)> = match &node.kind {
            NodeKind::Tool(t) => {
                let args = match t.args.as_ref().map(|a| render_value(a, &ctx)).transpose() {
                    Ok(a) => a.unwrap_or_else(|| json!({})),
                    Err(e) => {
                        return Ok(Started::Now(
                            attempt.settle(thread, node_id, None, Err(e.into()), None),
                            Vec::new(),
                        ));
                    }
                };
                let tool = t.tool.clone();
                Box::pin(async move {
                    let raw = args.to_string();
                    let result = platform
                        .tools
                        .invoke(
                            &tool,
                            &raw,
                            &ToolContext {
                                idempotency_key: key,
                            },
                        )
                        .await
                        .map_err(|e| Failure::new(&format!("tool_{}", e.code), e.message));
                    (Some(args), result)
                })
            }
            NodeKind::Http(h) => {
                let rendered = render_http(h, &ctx);
                let (url, headers, body) = match rendered {
                    Ok(r) => r,
                    Err(f) => {
                        return Ok(Started::Now(
                            attempt.settle(thread, node_id, None, Err(f), None),
                            Vec::new(),
                        ));
                    }
                };
                // POST and PATCH are not idempotent: record the intent first, so a crash
                // mid-request is recognised as ambiguous instead of silently repeated.
                if matches!(h.method, HttpMethod::Post | HttpMethod::Patch) {
                    intent = Some(Record::Intent {
                        thread,
                        node: node_id.to_owned(),
                        attempt: attempt.number,
                    });
                }
                let method = h.method;
                Box::pin(async move {
                    let input = json!({"method": method, "url": url, "body": body});
                    let result = send_http(&platform, method, &url, headers, body, &key).await;
                    (Some(input), result)
                })
            }
            NodeKind::Llm(l) => {
                let prompt = render_template(&l.prompt, &ctx);
                let system = l
                    .system
                    .as_ref()
                    .map(|s| render_template(s, &ctx))
                    .transpose();
                let (prompt, system) = match (prompt, system) {
                    (Ok(p), Ok(s)) => (p, s),
                    (Err(e), _) | (_, Err(e)) => {
                        return Ok(Started::Now(
                            attempt.settle(thread, node_id, None, Err(e.into()), None),
                            Vec::new(),
                        ));
                    }
                };
                let model = l.model.clone().unwrap_or_default();
                let schema = l.output_schema.clone();
                Box::pin(async move {
                    let input = json!({"model": model, "prompt": prompt, "system": system});
                    let result = call_model(&platform, org, &model, system, prompt, schema).await;
                    (Some(input), result)
                })
            }
            _ => {
                return Err(crate::ServiceError::internal(
                    "start_io",
                    format!("node `{node_id}` does no I/O"),
                )
                .into());
            }
        };
        let task = Box::pin(async move {
            let (input, result) = match tokio::time::timeout(timeout, work).await {
                Ok(done) => done,
                Err(_) => (
                    None,
                    Err(Failure::new(
                        "timeout",
                        format!("the node did not finish within {} s", timeout.as_secs()),
                    )),
                ),
            };
            Finished {
                thread,
                record: attempt.settle(thread, &node_name, input, result, None),
                node: node_name,
                extra: Vec::new(),
            }
        });
        Ok(Started::Later(task, intent))
    }
}

/// Stable across re-executions of the same visit of a node (after a crash, or a retry).
fn idempotency_key(run: uuid::Uuid, thread: ThreadId, node: &str, visit: u32) -> String {
    let mut h = Sha256::new();
    h.update(run.as_bytes());
    h.update(thread.to_be_bytes());
    h.update(node.as_bytes());
    h.update([0]);
    h.update(visit.to_be_bytes());
    format!("wf_{}", &hex::encode(h.finalize())[..32])
}

type Rendered = (String, Vec<(String, String)>, Option<Value>);

fn render_http(h: &agentry_workflow::HttpNode, ctx: &Value) -> Result<Rendered, Failure> {
    let url = render_template(&h.url, ctx)?;
    let mut headers = Vec::new();
    for (k, v) in &h.headers {
        headers.push((k.clone(), render_template(v, ctx)?));
    }
    let body = h.body.as_ref().map(|b| render_value(b, ctx)).transpose()?;
    Ok((url, headers, body))
}

async fn send_http(
    platform: &Arc<crate::platform::Platform>,
    method: HttpMethod,
    url: &str,
    headers: Vec<(String, String)>,
    body: Option<Value>,
    key: &str,
) -> Result<Value, Failure> {
    use reqwest::header::{HeaderName, HeaderValue};
    let method = match method {
        HttpMethod::Get => reqwest::Method::GET,
        HttpMethod::Post => reqwest::Method::POST,
        HttpMethod::Put => reqwest::Method::PUT,
        HttpMethod::Patch => reqwest::Method::PATCH,
        HttpMethod::Delete => reqwest::Method::DELETE,
        HttpMethod::Head => reqwest::Method::HEAD,
    };
    let mut map = reqwest::header::HeaderMap::new();
    for (k, v) in headers {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| Failure::new("invalid_header", format!("`{k}` is not a header name")))?;
        let value = HeaderValue::from_str(&v).map_err(|_| {
            Failure::new(
                "invalid_header",
                format!("header `{k}` has an invalid value"),
            )
        })?;
        map.insert(name, value);
    }
    if let Ok(v) = HeaderValue::from_str(key) {
        map.insert("idempotency-key", v);
    }
    let body_bytes = body.as_ref().map(|b| b.to_string().into_bytes());
    if body_bytes.is_some() {
        map.insert(
            reqwest::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    let response = platform
        .egress
        .send(agentry_tools::guard::GuardedRequest {
            method,
            url: url.to_owned(),
            headers: map,
            body: body_bytes,
        })
        .await
        .map_err(|e| Failure::new(&format!("http_{}", e.code()), e.to_string()))?;
    let text = String::from_utf8_lossy(&response.body).into_owned();
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if response.status >= 400 {
        return Err(Failure::new(
            &format!("http_{}", response.status),
            format!(
                "{url} answered {}: {}",
                response.status,
                truncate(&body.to_string(), 500)
            ),
        ));
    }
    Ok(json!({"status": response.status, "body": body}))
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

async fn call_model(
    platform: &Arc<crate::platform::Platform>,
    org: agentry_core::scope::OrgScope,
    model: &str,
    system: Option<String>,
    prompt: String,
    schema: Option<Value>,
) -> Result<Value, Failure> {
    let Some((provider, name)) = agentry_core::agent::split_model(model) else {
        return Err(Failure::new(
            "invalid_node",
            format!("`model` must be provider/model, not `{model}`"),
        ));
    };
    let chat = platform
        .chat_model(org, provider)
        .await
        .map_err(|e| Failure::new(e.code.as_str(), e.message))?;
    let mut messages = Vec::new();
    if let Some(s) = system {
        messages.push(Message::system(s));
    }
    messages.push(Message::user(prompt));
    let request = ChatRequest {
        model: name.to_owned(),
        messages,
        tools: Vec::new(),
        temperature: None,
        max_tokens: None,
        response_schema: schema.clone(),
        prompt_cache: false,
    };
    let response = chat
        .chat(&request, &NoDeltas)
        .await
        .map_err(|e| Failure::new(e.code.as_str(), e.message))?;
    let text = response.content.unwrap_or_default();
    let Some(schema) = schema else {
        return Ok(Value::String(text));
    };
    let trimmed = text
        .trim()
        .trim_start_matches("```json")
        .trim_start_matches("```")
        .trim_end_matches("```")
        .trim();
    let value: Value = serde_json::from_str(trimmed).map_err(|e| {
        Failure::new(
            "output_schema_mismatch",
            format!("the answer is not JSON: {e}"),
        )
    })?;
    let validator =
        agentry_tools::schema::compile(&schema).map_err(|e| Failure::new("invalid_node", e))?;
    let violations = agentry_tools::schema::violations(&validator, &value);
    if violations.is_empty() {
        Ok(value)
    } else {
        Err(Failure::new(
            "output_schema_mismatch",
            format!(
                "the answer does not match the schema: {}",
                violations.join("; ")
            ),
        ))
    }
}
