//! The answered step: output guardrails, the structured-output check (repair turns), the
//! journal entry with its cost events and settlement, and what follows from the answer.

use super::*;

/// The answer as JSON matching the agent's schema (a Markdown code fence around it is
/// tolerated), or what is wrong with it.
pub(super) fn check_structured(spec: &AgentSpec, output: &str) -> Result<String, Vec<String>> {
    let Some(schema) = &spec.output_schema else {
        return Ok(output.to_string());
    };
    let text = output.trim();
    let text = text
        .strip_prefix("```json")
        .or_else(|| text.strip_prefix("```"))
        .and_then(|t| t.strip_suffix("```"))
        .map(str::trim)
        .unwrap_or(text);
    let value: Value =
        serde_json::from_str(text).map_err(|e| vec![format!("the answer is not JSON ({e})")])?;
    let validator = agentry_tools::schema::compile(schema).map_err(|e| vec![e])?;
    let violations = agentry_tools::schema::violations(&validator, &value);
    if violations.is_empty() {
        Ok(text.to_string())
    } else {
        Err(violations)
    }
}

/// A model step's answer and what it needs to be journaled.
pub(super) struct Answered<'a> {
    pub(super) step: i64,
    pub(super) started_at: chrono::DateTime<Utc>,
    pub(super) response: ChatResponse,
    pub(super) candidate: &'a Candidate,
    pub(super) budgets: &'a RunBudgets,
}

/// Journals the answered call with its cost event and settlement, and what follows from it.
pub(super) async fn finish_model_step(
    exec: &mut Execution,
    spec: &AgentSpec,
    mut events: Vec<NewEvent>,
    answered: Answered<'_>,
) -> Result<Flow, ExecError> {
    let Answered {
        step,
        started_at,
        response,
        candidate,
        budgets,
    } = answered;
    events.append(&mut exec.pending_events);
    let extra = std::mem::take(&mut exec.pending_extra);
    let mut response = response;
    let mut output_blocked = None;
    if exec.guard.has_output_rules()
        && let Some(text) = &response.content
    {
        let checked = exec.guard.check_output(text);
        response.content = Some(checked.text);
        let found = guardrail_events(exec, Some(step), &checked.events);
        events.extend(found);
        if checked.blocked {
            output_blocked = Some(rule_names(&checked.events));
        }
    }
    let call = exec.last_call.take();
    let usage = response.usage.unwrap_or_default();
    metrics::counter!("agentry_model_tokens_total", "direction" => "input")
        .increment(usage.input_tokens);
    metrics::counter!("agentry_model_tokens_total", "direction" => "output")
        .increment(usage.output_tokens);
    exec.usage.add(usage);
    let record = StepRecord::Llm {
        model: response.model.clone(),
        content: response.content.clone(),
        tool_calls: response.tool_calls.clone(),
        finish_reason: response.finish_reason.as_str().to_string(),
        usage,
        usage_reported: response.usage.is_some(),
    };
    let (cost, source, duration) = match &call {
        Some(c) => (
            json!(c.cost.map(crate::pricing::format_pico)),
            json!(c.price_source.map(PriceSource::as_str)),
            c.duration.as_millis() as u64,
        ),
        // Answered from the cache: free.
        None => (json!("0"), json!("cache"), 0),
    };
    let mut data = json!({
        "step": step,
        "model": response.model,
        "provider": candidate.provider,
        "usage": usage,
        "finish_reason": response.finish_reason.as_str(),
        "duration_ms": duration,
        "cost_usd": cost,
        "price_source": source,
    });
    if call.as_ref().is_some_and(|c| c.cost.is_none()) {
        data["warning"] = json!(format!(
            "no price is known for {}: the cost is recorded as unknown",
            candidate.label()
        ));
    }
    events.push(exec.event(event::LLM_COMPLETED, data));
    let step_row = NewStep {
        idx: step,
        kind: "llm",
        record: serde_json::to_value(&record).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        started_at,
        ended_at: Utc::now(),
    };
    exec.journal.push(JournalEntry { step, record });
    // What the reply leads to is committed with it: one transaction instead of two.
    let action = match output_blocked {
        Some(rules) => NextAction::Fail {
            code: ErrorCode::GuardrailBlocked,
            message: format!("the answer was blocked by guardrail rule(s): {rules}"),
        },
        // A network's router reply is routed by `network.rs`, whatever it says.
        None if spec.network.is_some() => NextAction::RunTools { calls: Vec::new() },
        None => next_action(&exec.journal, spec.max_steps),
    };
    // Structured output: an answer that does not match the schema goes back to the model with
    // the violations (a journaled repair turn), a bounded number of times.
    let mut steps = vec![step_row];
    let action = match action {
        NextAction::Complete { output } if spec.output_schema.is_some() => {
            match check_structured(spec, &output) {
                Ok(json) => NextAction::Complete { output: json },
                Err(violations) => {
                    let used = exec
                        .journal
                        .iter()
                        .filter(|e| matches!(e.record, StepRecord::Feedback { .. }))
                        .count() as u32;
                    if used < spec.max_repair_turns {
                        let content = format!(
                            "Your answer does not match the required JSON Schema: {}. Answer again with only a JSON value that matches this schema: {}",
                            violations.join("; "),
                            spec.output_schema.clone().unwrap_or_default()
                        );
                        let record = StepRecord::Feedback { content };
                        events.push(exec.event(
                            event::OUTPUT_REPAIR,
                            json!({"step": step + 1, "attempt": used + 1, "violations": violations}),
                        ));
                        steps.push(NewStep {
                            idx: step + 1,
                            kind: "feedback",
                            record: serde_json::to_value(&record)
                                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                            started_at: Utc::now(),
                            ended_at: Utc::now(),
                        });
                        exec.journal.push(JournalEntry {
                            step: step + 1,
                            record,
                        });
                        NextAction::CallModel { step: step + 2 }
                    } else {
                        NextAction::Fail {
                            code: ErrorCode::OutputSchemaMismatch,
                            message: format!(
                                "the answer does not match the output schema after {used} repair turn(s): {}",
                                violations.join("; ")
                            ),
                        }
                    }
                }
            }
        }
        other => other,
    };
    let (flow, change) = match action {
        NextAction::RunTools { calls } => {
            let announced = exec.announce(&calls);
            events.extend(announced);
            (Flow::Continue, usage_change(exec))
        }
        NextAction::Complete { output } => {
            let (ev, change) = exec.ending(RunStatus::Completed, Some(output), None);
            events.push(ev);
            (Flow::Ended, change)
        }
        NextAction::Fail { code, message } => {
            let (ev, change) =
                exec.ending(RunStatus::Failed, None, Some(RunError { code, message }));
            events.push(ev);
            (Flow::Ended, change)
        }
        NextAction::CallModel { .. } => (Flow::Continue, usage_change(exec)),
    };
    let settled = !extra.is_empty();
    exec.commit_with(steps, events, change, extra).await?;
    if settled {
        budgets.announce_thresholds(&exec.platform).await?;
    }
    Ok(flow)
}
