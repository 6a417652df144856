//! One attempt at one model: response cache, price, budget reservation, circuit breaker, the
//! streamed call with live deltas, and the attempt's cost event and settlement. Also the
//! classifier calls (guardrail and routing) billed the same way.

use super::*;

/// Collects streamed text between flushes.
#[derive(Default)]
pub(super) struct DeltaBuffer(Mutex<String>);

impl DeltaSink for DeltaBuffer {
    fn text_delta(&self, text: &str) {
        if let Ok(mut buf) = self.0.lock() {
            buf.push_str(text);
        }
    }
}

impl DeltaBuffer {
    fn take(&self) -> String {
        self.0
            .lock()
            .map(|mut b| std::mem::take(&mut *b))
            .unwrap_or_default()
    }
}

/// Asks a small model one classification question (the input guardrail's or the router's
/// classifier). The call is billed to the run like any other (a cost event at `step`; `-1`
/// before the first step), never streamed, and any failure yields `None`: the rules' verdict
/// stands.
pub(super) async fn ask_classifier(
    exec: &mut Execution,
    step: i64,
    model: &str,
    instruction: &str,
    text: &str,
) -> Result<Option<String>, ExecError> {
    let Some(candidate) = Candidate::parse(model) else {
        return Ok(None);
    };
    let chat = match exec.models.get(&candidate.provider) {
        Some(m) => Arc::clone(m),
        None => match exec
            .platform
            .chat_model(exec.scope.org(), &candidate.provider)
            .await
        {
            Ok(m) => {
                exec.models.insert(candidate.provider.clone(), m.clone());
                m
            }
            Err(e) => {
                tracing::warn!(model, error = %e.message, "classifier model unavailable");
                return Ok(None);
            }
        },
    };
    // A classifier sees a bounded sample: the start of the text carries the request.
    let sample: String = text.chars().take(8_000).collect();
    let request = ChatRequest {
        model: candidate.model.clone(),
        messages: vec![Message::system(instruction), Message::user(sample)],
        temperature: Some(0.0),
        max_tokens: Some(16),
        ..Default::default()
    };
    let result = chat.chat(&request, &agentry_core::chat::NoDeltas).await;
    let usage = match &result {
        Ok(r) => r.usage,
        Err(e) => e.usage,
    };
    if let Some(billed) = usage {
        let price = price_of(exec, &candidate).await?;
        let cost = price.map(|(p, _)| p.cost_pico(&billed));
        let attempt = costs::next_attempt(&exec.platform.db, exec.run_id, step).await?;
        let outcome = if result.is_ok() { "ok" } else { "error" };
        let ledger = cost_event(
            exec, step, attempt, &candidate, &billed, cost, false, outcome,
        );
        exec.commit_with(vec![], vec![], RunChange::None, vec![ledger])
            .await?;
    }
    match result {
        Ok(r) => Ok(r.content),
        Err(e) => {
            tracing::warn!(model, error = %e.message, "classifier call failed; the rules decide");
            Ok(None)
        }
    }
}

/// The price of a candidate model, looked up once per execution.
pub(super) async fn price_of(
    exec: &mut Execution,
    candidate: &Candidate,
) -> Result<Option<(Price, PriceSource)>, ExecError> {
    let label = candidate.label();
    if let Some(p) = exec.prices.get(&label) {
        return Ok(*p);
    }
    let p = exec
        .platform
        .price_for(exec.scope.org(), &candidate.provider, &candidate.model)
        .await?;
    if p.is_none() {
        tracing::warn!(model = %label, "no price known for this model: its costs are recorded as unknown");
    }
    exec.prices.insert(label, p);
    Ok(p)
}

/// Breakers are per org: two orgs' providers named alike are different services.
pub(super) fn breaker_provider(org: uuid::Uuid, provider: &str) -> String {
    format!("{org}:{provider}")
}

/// Exposes a breaker's state as a gauge (0 closed, 1 half-open, 2 open).
pub(super) fn publish_breaker(platform: &Platform, key: &str, provider: &str, model: &str) {
    let now = std::time::Instant::now();
    if let Some(state) = platform
        .breakers
        .snapshot(now)
        .into_iter()
        .find(|s| s.provider == key && s.model == model)
    {
        let value = match state.state {
            agentry_llm::CircuitState::Closed => 0.0,
            agentry_llm::CircuitState::HalfOpen => 1.0,
            agentry_llm::CircuitState::Open => 2.0,
        };
        metrics::gauge!("agentry_circuit_state", "provider" => provider.to_string(), "model" => model.to_string())
            .set(value);
    }
}

/// One call to one model: cache lookup, budget reservation, the streamed call, and the
/// attempt's cost event and budget settlement (committed here for a failed attempt, so the
/// next attempt reserves afresh; returned to the step's commit for a successful one).
pub(super) async fn attempt_model(
    exec: &mut Execution,
    spec: &AgentSpec,
    step: i64,
    attempt: i64,
    candidate: &Candidate,
    request: &ChatRequest,
    budgets: &RunBudgets,
) -> Result<AttemptResult, ExecError> {
    let label = candidate.label();
    exec.last_call = None;
    let chat = match exec.models.get(&candidate.provider) {
        Some(m) => Arc::clone(m),
        None => match exec
            .platform
            .chat_model(exec.scope.org(), &candidate.provider)
            .await
        {
            Ok(m) => {
                exec.models.insert(candidate.provider.clone(), m.clone());
                m
            }
            Err(e) => return Ok(AttemptResult::Failed(ProviderError::new(e.code, e.message))),
        },
    };
    let cache_key = match spec.cache {
        Some(c) => Some((
            response_cache::cache_key(
                exec.platform.instance_id().await?,
                exec.org_id,
                &candidate.provider,
                request,
            ),
            c,
        )),
        None => None,
    };
    let cached = match &cache_key {
        Some((key, _)) => exec.platform.response_cache.get(key).await,
        None => None,
    };
    if let Some(response) = cached {
        metrics::counter!("agentry_response_cache_total", "outcome" => "hit").increment(1);
        let ledger = cost_event(
            exec,
            step,
            attempt,
            candidate,
            &Usage::default(),
            Some(0),
            true,
            "ok",
        );
        exec.pending_extra.push(ledger);
        return Ok(AttemptResult::Answered {
            response,
            cache_hit: true,
        });
    }
    let price = price_of(exec, candidate).await?;
    let held = if budgets.is_empty() {
        Held::default()
    } else {
        let (max_in, max_out) = budget::max_tokens_of(
            request,
            request.max_tokens.unwrap_or(DEFAULT_MAX_OUTPUT_TOKENS),
        );
        let max_usage = Usage {
            input_tokens: max_in,
            output_tokens: max_out,
            ..Default::default()
        };
        let max_cost = price.map(|(p, _)| p.cost_pico(&max_usage));
        let max_tokens = i64::try_from(max_in + max_out).unwrap_or(i64::MAX);
        match budgets
            .reserve(&exec.platform, exec.run_id, step, max_cost, max_tokens)
            .await?
        {
            Ok(held) => held,
            Err(blocked) => return Ok(AttemptResult::Blocked(blocked)),
        }
    };

    // A provider that keeps failing is not called until its breaker lets a probe through.
    let breaker_key = breaker_provider(exec.org_id, &candidate.provider);
    let permit = match exec.platform.breakers.acquire(
        &breaker_key,
        &candidate.model,
        std::time::Instant::now(),
    ) {
        Ok(permit) => permit,
        Err(open) => {
            let settle = budgets.settle(exec.run_id, step, &held, None, &Usage::default());
            if !settle.is_empty() {
                exec.commit_with(vec![], vec![], RunChange::None, settle)
                    .await?;
            }
            return Ok(AttemptResult::Failed(ProviderError::new(
                ErrorCode::ProviderCircuitOpen,
                format!(
                    "{label} failed repeatedly; calls are paused for {}s until a probe succeeds",
                    open.retry_in.as_secs().max(1)
                ),
            )));
        }
    };
    // With output rules nobody sees unchecked text: the answer is shown once it is checked.
    let live = !exec.guard.has_output_rules();
    let clock = Instant::now();
    let buffer = DeltaBuffer::default();
    let result = {
        let call = chat.chat(request, &buffer);
        tokio::pin!(call);
        // The first flush is one period away. (A fresh `interval`'s immediate first tick still
        // waits for the timer wheel — up to a millisecond per model call.)
        let mut ticker =
            tokio::time::interval_at(tokio::time::Instant::now() + DELTA_FLUSH, DELTA_FLUSH);
        loop {
            tokio::select! {
                result = &mut call => break result,
                _ = ticker.tick(), if live => {
                    let text = buffer.take();
                    if !text.is_empty() {
                        let ev = exec.event(event::MESSAGE_DELTA, json!({"step": step, "text": text}));
                        exec.commit(vec![], vec![ev], RunChange::None).await?;
                    }
                }
            }
        }
    };
    let elapsed = clock.elapsed();
    let outcome_kind = agentry_llm::outcome_of(&result);
    exec.platform
        .breakers
        .record(permit, outcome_kind, std::time::Instant::now());
    publish_breaker(
        &exec.platform,
        &breaker_key,
        &candidate.provider,
        &candidate.model,
    );
    metrics::histogram!("agentry_model_call_duration_seconds", "provider" => candidate.provider.clone())
        .record(elapsed.as_secs_f64());
    let rest = buffer.take();
    let mut events = Vec::new();
    if live && !rest.is_empty() {
        events.push(exec.event(event::MESSAGE_DELTA, json!({"step": step, "text": rest})));
    }
    let (usage, outcome) = match &result {
        Ok(r) => (r.usage, "ok"),
        Err(e) => (e.usage, "error"),
    };
    let billed = usage.unwrap_or_default();
    let cost = price.map(|(p, _)| p.cost_pico(&billed));
    let mut extra = budgets.settle(exec.run_id, step, &held, cost, &billed);
    if usage.is_some() {
        extra.push(cost_event(
            exec, step, attempt, candidate, &billed, cost, false, outcome,
        ));
    }
    exec.last_call = Some(CallCost {
        cost,
        price_source: price.map(|(_, s)| s),
        duration: elapsed,
    });
    match result {
        Ok(response) => {
            metrics::counter!("agentry_model_calls_total", "provider" => candidate.provider.clone(), "outcome" => "ok").increment(1);
            if let Some((key, cache)) = cache_key {
                exec.platform
                    .response_cache
                    .put(key, &response, Duration::from_secs(cache.ttl_seconds))
                    .await;
                metrics::counter!("agentry_response_cache_total", "outcome" => "miss").increment(1);
            }
            exec.pending_extra.extend(extra);
            exec.pending_events.extend(events);
            Ok(AttemptResult::Answered {
                response,
                cache_hit: false,
            })
        }
        Err(e) => {
            metrics::counter!("agentry_model_calls_total", "provider" => candidate.provider.clone(), "outcome" => "error").increment(1);
            events.push(exec.event(
                event::LLM_FAILED,
                json!({"step": step, "model": label, "code": e.code, "message": e.message,
                       "attempts": e.attempts, "usage": usage,
                       "cost_usd": cost.map(crate::pricing::format_pico)}),
            ));
            exec.commit_with(vec![], events, RunChange::None, extra)
                .await?;
            if usage.is_some() {
                budgets.announce_thresholds(&exec.platform).await?;
            }
            Ok(AttemptResult::Failed(e))
        }
    }
}

/// The cost of the last answered call, for its `llm.completed` event.
pub(super) struct CallCost {
    pub(super) cost: Option<i64>,
    pub(super) price_source: Option<PriceSource>,
    pub(super) duration: Duration,
}

#[allow(clippy::too_many_arguments)]
pub(super) fn cost_event(
    exec: &Execution,
    step: i64,
    attempt: i64,
    candidate: &Candidate,
    usage: &Usage,
    cost: Option<i64>,
    cache_hit: bool,
    outcome: &'static str,
) -> agentry_store::Statement {
    let t = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    costs::insert_statement(&costs::CostEvent {
        org_id: exec.org_id,
        workspace_id: exec.subject.workspace_id,
        run_id: exec.run_id,
        step,
        attempt,
        agent_id: exec.subject.agent_id,
        agent_version: exec.subject.agent_version,
        api_key_id: exec.subject.api_key_id,
        user_id: exec.subject.user_id,
        end_user: exec.subject.end_user.clone(),
        provider: candidate.provider.clone(),
        model: candidate.model.clone(),
        input_tokens: t(usage.input_tokens),
        cache_read_tokens: t(usage.cache_read_tokens),
        cache_write_tokens: t(usage.cache_write_tokens),
        output_tokens: t(usage.output_tokens),
        cost_pico: cost,
        cache_hit,
        outcome,
        at: Utc::now(),
    })
}
