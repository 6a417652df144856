//! One model step: the chain of candidate models (fallbacks, context fallback, routed
//! escalation) tried in order until one answers (`attempt.rs`), then the answer's commit
//! (`answer.rs`).

use super::*;

/// One model the step may use: the agent's model, then its fallbacks (and, on a context
/// overflow, its larger-context model).
pub(super) struct Candidate {
    pub(super) provider: String,
    pub(super) model: String,
}

impl Candidate {
    pub(super) fn parse(full: &str) -> Option<Candidate> {
        split_model(full).map(|(p, m)| Candidate {
            provider: p.to_string(),
            model: m.to_string(),
        })
    }
    pub(super) fn label(&self) -> String {
        format!("{}/{}", self.provider, self.model)
    }
}

/// Whether a failure before any text reached the caller should move on to the next model.
/// Problems of the request itself (rejected, content filtered) would fail anywhere.
pub(super) fn fails_over(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::ProviderUnavailable
            | ErrorCode::ProviderRateLimited
            | ErrorCode::ProviderTimeout
            | ErrorCode::ProviderBadResponse
            | ErrorCode::ProviderAuthFailed
            | ErrorCode::ProviderQuotaExhausted
            | ErrorCode::ProviderCircuitOpen
            | ErrorCode::AgentUnavailable
    )
}

/// What one attempt produced.
pub(super) enum AttemptResult {
    Answered {
        response: ChatResponse,
        cache_hit: bool,
    },
    Failed(ProviderError),
    /// A budget refused the call: the run ends.
    Blocked(budget::Blocked),
}

/// Calls the model (falling over to the next candidate before any text was streamed) and
/// commits its reply together with what follows from it: the announcement of the tool calls it
/// asked for, or the end of the run. Every attempt the provider bills writes a cost event and
/// settles the budgets in the same transaction as the step it belongs to.
pub(super) async fn call_model(
    exec: &mut Execution,
    spec: &AgentSpec,
    base: &[Message],
    step: i64,
) -> Result<Flow, ExecError> {
    let mut messages = base.to_vec();
    let mut history = journal_messages(&exec.journal);
    guard_tool_messages(&exec.guard, &exec.journal, &mut history);
    messages.extend(history);
    let budgets = RunBudgets::load(
        &exec.platform,
        exec.org_id,
        &exec.subject.budget_subject(),
        Utc::now(),
    )
    .await?;
    // A budget that can block needs a bounded call to reserve its maximum.
    let max_tokens = match spec.max_tokens {
        Some(n) => Some(n),
        None if budgets.can_block() => Some(DEFAULT_MAX_OUTPUT_TOKENS),
        None => None,
    };
    let mut request = ChatRequest {
        model: String::new(),
        messages,
        tools: {
            let mut tools = exec.platform.tools.specs(&spec.tools);
            tools.extend(exec.member_tools.iter().cloned());
            tools
        },
        temperature: spec.temperature,
        max_tokens,
        response_schema: spec.output_schema.clone(),
        prompt_cache: spec.prompt_cache,
    };
    let started_at = Utc::now();
    let mut events = Vec::new();
    let route = match plan_route(exec, spec, step, &request, &mut events).await? {
        Ok(route) => route,
        Err(message) => {
            exec.fail_with(events, ErrorCode::AgentUnavailable, message)
                .await?;
            return Ok(Flow::Ended);
        }
    };
    let mut queue = route.candidates;
    let mut routed = route.routed;
    let mut context_fallback_used = false;
    let mut attempt = costs::next_attempt(&exec.platform.db, exec.run_id, step).await?;
    let mut last_error: Option<ProviderError> = None;
    let (response, candidate) = loop {
        let Some(candidate) = queue.pop_front() else {
            let e = last_error.unwrap_or_else(|| {
                ProviderError::new(
                    ErrorCode::AgentUnavailable,
                    format!("invalid model '{}'", spec.model),
                )
            });
            exec.fail_with(events, e.code, e.message).await?;
            return Ok(Flow::Ended);
        };
        request.model = candidate.model.clone();
        let result =
            attempt_model(exec, spec, step, attempt, &candidate, &request, &budgets).await?;
        attempt += 1;
        match result {
            AttemptResult::Answered {
                response,
                cache_hit,
            } => {
                if cache_hit {
                    events.push(exec.event(
                        event::LLM_CACHE_HIT,
                        json!({"step": step, "model": candidate.label()}),
                    ));
                }
                // A routed answer that declines or misses the schema goes to a stronger tier;
                // the weaker attempt stays billed and visible.
                if let Some(r) = routed.as_mut()
                    && let Some(reason) = escalation_reason(spec, &response)
                    && let Some((next_tier, target)) =
                        r.tier.next().and_then(|t| r.config.model_for(t))
                    && let Some(next) = Candidate::parse(target)
                {
                    events.append(&mut exec.pending_events);
                    let extra = std::mem::take(&mut exec.pending_extra);
                    exec.last_call = None;
                    events.push(exec.event(
                        event::ROUTE_ESCALATED,
                        json!({"step": step, "from": r.tier.as_str(), "to": next_tier.as_str(),
                               "from_model": candidate.label(), "to_model": next.label(), "reason": reason}),
                    ));
                    metrics::counter!("agentry_route_escalations_total", "reason" => reason)
                        .increment(1);
                    exec.commit_with(vec![], std::mem::take(&mut events), RunChange::None, extra)
                        .await?;
                    r.tier = next_tier;
                    queue.push_front(next);
                    continue;
                }
                break (response, candidate);
            }
            AttemptResult::Blocked(blocked) => {
                let limit = budget_amount(&blocked.unit, blocked.limit);
                let message = format!(
                    "budget '{}' reached its limit for this period ({} of {} {} spent)",
                    blocked.name,
                    budget_amount(&blocked.unit, blocked.spent),
                    limit,
                    if blocked.unit == "tokens" {
                        "tokens"
                    } else {
                        "USD"
                    },
                );
                events.push(exec.event(
                    event::BUDGET_BLOCKED,
                    json!({"step": step, "budget_id": blocked.budget_id, "name": blocked.name,
                           "unit": blocked.unit, "limit": limit,
                           "spent": budget_amount(&blocked.unit, blocked.spent),
                           "reserved": budget_amount(&blocked.unit, blocked.reserved)}),
                ));
                metrics::counter!("agentry_budget_blocked_total").increment(1);
                exec.fail_with(events, ErrorCode::BudgetExceeded, message)
                    .await?;
                return Ok(Flow::Ended);
            }
            AttemptResult::Failed(e) => {
                let next = if e.streamed {
                    None
                } else if e.code == ErrorCode::ProviderContextOverflow && !context_fallback_used {
                    context_fallback_used = true;
                    let fallback = spec.context_fallback.as_deref().and_then(Candidate::parse);
                    if let Some(f) = &fallback {
                        queue.push_front(Candidate {
                            provider: f.provider.clone(),
                            model: f.model.clone(),
                        });
                    }
                    fallback.map(|f| f.label())
                } else if fails_over(e.code) {
                    queue.front().map(Candidate::label)
                } else {
                    None
                };
                let Some(to) = next else {
                    exec.fail_with(events, e.code, e.message).await?;
                    return Ok(Flow::Ended);
                };
                events.push(exec.event(
                    event::MODEL_FAILOVER,
                    json!({"step": step, "from": candidate.label(), "to": to, "code": e.code, "message": e.message}),
                ));
                last_error = Some(e);
            }
        }
    };
    let answered = Answered {
        step,
        started_at,
        response,
        candidate: &candidate,
        budgets: &budgets,
    };
    finish_model_step(exec, spec, events, answered).await
}

pub(super) fn budget_amount(unit: &str, amount: i64) -> Value {
    if unit == "tokens" {
        json!(amount)
    } else {
        json!(crate::pricing::format_pico(amount))
    }
}
