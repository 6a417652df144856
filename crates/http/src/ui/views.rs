//! How runs and their steps look on a page: the wire types of [`crate::dto`] reshaped for
//! templates (formatted times, JSON pretty-printed as text for the template to escape).

use crate::dto::{Run, RunErrorOut, Step};
use agentry_store::runs::{RunRow, StepRow};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

/// How much of a run's input the runs list shows.
const PREVIEW_CHARS: usize = 80;

pub fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn duration(ms: i64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.2} s", ms as f64 / 1000.0)
    }
}

/// JSON as readable text. A string is shown as itself, not as a quoted JSON string.
fn pretty(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    }
}

/// A run as a row of a list.
#[derive(Debug, Serialize)]
pub struct RunSummary {
    pub id: String,
    pub agent: String,
    pub agent_version: i64,
    pub status: String,
    pub thread_id: Option<String>,
    pub created_at: String,
    pub duration: Option<String>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub preview: String,
}

impl RunSummary {
    pub fn from_row(row: RunRow) -> Self {
        Self::from_run(&Run::from_row(row, None))
    }

    fn from_run(run: &Run) -> Self {
        let input = pretty(&run.input);
        let mut preview: String = input.chars().take(PREVIEW_CHARS).collect();
        if preview.len() < input.len() {
            preview.push('…');
        }
        Self {
            id: run.id.clone(),
            agent: run.agent.clone(),
            agent_version: run.agent_version,
            status: run.status.clone(),
            thread_id: run.thread_id.clone(),
            created_at: time(run.created_at),
            duration: run
                .started_at
                .zip(run.ended_at)
                .map(|(s, e)| duration((e - s).num_milliseconds())),
            input_tokens: run.usage.input_tokens,
            output_tokens: run.usage.output_tokens,
            preview,
        }
    }
}

/// A run with everything the run page shows.
#[derive(Debug, Serialize)]
pub struct RunDetail {
    #[serde(flatten)]
    pub summary: RunSummary,
    pub input: String,
    pub output: Option<String>,
    pub error: Option<RunErrorOut>,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    pub terminal: bool,
    pub steps: Vec<StepView>,
    /// Indexes of the steps already on the page, for the live view to skip their events.
    pub done_steps: String,
}

impl RunDetail {
    pub fn from_rows(row: RunRow, steps: Vec<StepRow>) -> Self {
        let run = Run::from_row(row, Some(steps));
        let steps: Vec<StepView> = run
            .steps
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(StepView::from_step)
            .collect();
        let done_steps = steps
            .iter()
            .map(|s| s.index.to_string())
            .collect::<Vec<_>>()
            .join(",");
        Self {
            summary: RunSummary::from_run(&run),
            input: pretty(&run.input),
            terminal: run.is_terminal(),
            started_at: run.started_at.map(time),
            ended_at: run.ended_at.map(time),
            output: run.output,
            error: run.error,
            steps,
            done_steps,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct StepView {
    pub index: i64,
    pub kind: String,
    pub duration: String,
    pub model: Option<String>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub finish_reason: Option<String>,
    pub content: Option<String>,
    pub tool_calls: Vec<CallView>,
    pub name: Option<String>,
    pub call_id: Option<String>,
    pub arguments: Option<String>,
    pub result: Option<String>,
    pub error: Option<ErrorView>,
}

/// A tool call a model step asked for.
#[derive(Debug, Serialize)]
pub struct CallView {
    pub name: String,
    pub arguments: String,
}

#[derive(Debug, Serialize)]
pub struct ErrorView {
    pub code: String,
    pub message: String,
}

impl StepView {
    fn from_step(s: &Step) -> Self {
        let tool_calls = s
            .tool_calls
            .as_ref()
            .and_then(Value::as_array)
            .map(|calls| calls.iter().map(CallView::from_value).collect())
            .unwrap_or_default();
        Self {
            index: s.index,
            kind: s.kind.clone(),
            duration: duration(s.duration_ms),
            model: s.model.clone(),
            input_tokens: s.input_tokens,
            output_tokens: s.output_tokens,
            finish_reason: s.finish_reason.clone(),
            content: s.content.clone(),
            tool_calls,
            name: s.name.clone(),
            call_id: s.call_id.clone(),
            arguments: s.arguments.as_ref().map(pretty),
            result: s.result.as_ref().filter(|v| !v.is_null()).map(pretty),
            error: s.error.as_ref().map(|e| ErrorView {
                code: e.code.clone(),
                message: e.message.clone(),
            }),
        }
    }
}

impl CallView {
    /// Models send arguments as a JSON string; show it parsed when it parses.
    fn from_value(call: &Value) -> Self {
        let raw = call.get("arguments").and_then(Value::as_str).unwrap_or("");
        let arguments = serde_json::from_str::<Value>(raw)
            .map(|v| pretty(&v))
            .unwrap_or_else(|_| raw.to_string());
        Self {
            name: call
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            arguments,
        }
    }
}
