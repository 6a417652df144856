//! The per-kind configuration of a trigger (stored as JSON in `triggers.config`), its
//! validation with field errors, and the input each kind hands to the run it starts.

use agentry_core::agent::FieldError;
use agentry_triggers::schedule::{Misfire, Schedule};
use agentry_triggers::webhook::DEFAULT_TOLERANCE_SECS;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Longest accepted webhook timestamp tolerance: a day. Past that a captured delivery could be
/// replayed for too long.
pub const MAX_TOLERANCE_SECS: i64 = 24 * 3600;

/// What a trigger starts, and what an event trigger listens to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    Workflow,
    Agent,
}

impl RunKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Workflow => "workflow",
            RunKind::Agent => "agent",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "workflow" => Some(RunKind::Workflow),
            "agent" => Some(RunKind::Agent),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MisfirePolicy {
    #[default]
    Skip,
    RunOnce,
}

impl From<MisfirePolicy> for Misfire {
    fn from(p: MisfirePolicy) -> Self {
        match p {
            MisfirePolicy::Skip => Misfire::Skip,
            MisfirePolicy::RunOnce => Misfire::RunOnce,
        }
    }
}

fn utc() -> String {
    "UTC".into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    pub cron: String,
    #[serde(default = "utc")]
    pub timezone: String,
    #[serde(default)]
    pub misfire: MisfirePolicy,
}

impl ScheduleConfig {
    /// The parsed schedule, or the field error naming `config.cron` / `config.timezone`.
    pub fn schedule(&self) -> Result<Schedule, FieldError> {
        Schedule::parse(&self.cron, &self.timezone).map_err(|e| {
            let field = match e {
                agentry_triggers::ScheduleError::UnknownTimeZone(_) => "config.timezone",
                _ => "config.cron",
            };
            FieldError::new(field, e.to_string())
        })
    }
}

fn default_tolerance() -> i64 {
    DEFAULT_TOLERANCE_SECS
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    #[serde(default = "default_tolerance")]
    pub tolerance_seconds: i64,
}

/// A run status an event trigger can listen for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndStatus {
    Completed,
    Failed,
    Cancelled,
}

impl EndStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EndStatus::Completed => "completed",
            EndStatus::Failed => "failed",
            EndStatus::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventConfig {
    pub source_kind: RunKind,
    pub source: String,
    pub on: Vec<EndStatus>,
}

impl EventConfig {
    /// True when a run of `kind`/`slug` ending with `status` fires this trigger.
    pub fn matches(&self, kind: RunKind, slug: &str, status: &str) -> bool {
        self.source_kind == kind
            && self.source == slug
            && self.on.iter().any(|s| s.as_str() == status)
    }
}

/// A trigger's configuration, by kind.
#[derive(Debug, Clone)]
pub enum Config {
    Schedule(ScheduleConfig),
    Webhook(WebhookConfig),
    Event(EventConfig),
}

pub const KINDS: &[&str] = &["schedule", "webhook", "event"];

impl Config {
    /// Parses `config` for `kind`; errors name the field (`config.cron`, `config.on`, …).
    pub fn parse(kind: &str, config: &Value) -> Result<Config, Vec<FieldError>> {
        fn decode<T: serde::de::DeserializeOwned>(config: &Value) -> Result<T, Vec<FieldError>> {
            serde_json::from_value(config.clone())
                .map_err(|e| vec![FieldError::new("config", e.to_string())])
        }
        let parsed = match kind {
            "schedule" => Config::Schedule(decode(config)?),
            "webhook" => {
                // `{}` and `null` both mean "the defaults".
                let config = if config.is_null() {
                    Value::Object(Default::default())
                } else {
                    config.clone()
                };
                Config::Webhook(decode(&config)?)
            }
            "event" => Config::Event(decode(config)?),
            _ => {
                return Err(vec![FieldError::new(
                    "kind",
                    "must be one of schedule, webhook, event",
                )]);
            }
        };
        let errors = parsed.check();
        if errors.is_empty() {
            Ok(parsed)
        } else {
            Err(errors)
        }
    }

    fn check(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        match self {
            Config::Schedule(s) => {
                if let Err(e) = s.schedule() {
                    errors.push(e);
                }
            }
            Config::Webhook(w) => {
                if !(1..=MAX_TOLERANCE_SECS).contains(&w.tolerance_seconds) {
                    errors.push(FieldError::new(
                        "config.tolerance_seconds",
                        format!("must be between 1 and {MAX_TOLERANCE_SECS}"),
                    ));
                }
            }
            Config::Event(e) => {
                if e.source.trim().is_empty() || e.source.len() > 100 {
                    errors.push(FieldError::new("config.source", "must be 1-100 characters"));
                }
                if e.on.is_empty() {
                    errors.push(FieldError::new(
                        "config.on",
                        "must list at least one of completed, failed, cancelled",
                    ));
                }
            }
        }
        errors
    }

    pub fn to_value(&self) -> Value {
        let v = match self {
            Config::Schedule(s) => serde_json::to_value(s),
            Config::Webhook(w) => serde_json::to_value(w),
            Config::Event(e) => serde_json::to_value(e),
        };
        // Plain structs of strings and numbers always serialize.
        v.unwrap_or(Value::Null)
    }
}

/// Checks a trigger's fixed `input` against its kind and target: only schedules take one (a
/// webhook's payload and an event's run are the input of the others); an agent target takes
/// a text message, a workflow target a JSON object.
pub fn check_input(kind: &str, target: RunKind, input: Option<&Value>) -> Vec<FieldError> {
    let Some(input) = input.filter(|v| !v.is_null()) else {
        return Vec::new();
    };
    if kind != "schedule" {
        return vec![FieldError::new(
            "input",
            "only schedule triggers take a fixed input (webhooks pass their payload, events the ended run)",
        )];
    }
    let ok = match target {
        RunKind::Agent => input.as_str().is_some_and(|s| !s.trim().is_empty()),
        RunKind::Workflow => input.is_object(),
    };
    if ok {
        Vec::new()
    } else {
        let want = match target {
            RunKind::Agent => "a non-empty text message for the agent",
            RunKind::Workflow => "a JSON object (the workflow's input)",
        };
        vec![FieldError::new("input", format!("must be {want}"))]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(kind: &str, config: Value) -> Vec<String> {
        match Config::parse(kind, &config) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.into_iter().map(|e| e.field).collect(),
        }
    }

    #[test]
    fn schedule_errors_name_the_field() {
        assert_eq!(fields("schedule", json!({"cron": "nope"})), ["config.cron"]);
        assert_eq!(
            fields(
                "schedule",
                json!({"cron": "0 9 * * *", "timezone": "Europe/Nowhere"})
            ),
            ["config.timezone"]
        );
        assert_eq!(
            fields("schedule", json!({"cron": "0 0 30 2 *"})),
            ["config.cron"]
        );
        assert_eq!(
            fields("schedule", json!({"cron": "0 9 * * *", "extra": 1})),
            ["config"]
        );
        assert!(fields("schedule", json!({"cron": "*/5 * * * * *"})).is_empty());
    }

    #[test]
    fn defaults_are_filled_in() {
        let Ok(Config::Schedule(s)) = Config::parse("schedule", &json!({"cron": "@daily"})) else {
            panic!("valid schedule");
        };
        assert_eq!(s.timezone, "UTC");
        assert_eq!(s.misfire, MisfirePolicy::Skip);
        let Ok(Config::Webhook(w)) = Config::parse("webhook", &Value::Null) else {
            panic!("valid webhook");
        };
        assert_eq!(w.tolerance_seconds, DEFAULT_TOLERANCE_SECS);
        assert_eq!(
            fields("webhook", json!({"tolerance_seconds": 0})),
            ["config.tolerance_seconds"]
        );
    }

    #[test]
    fn event_configs_match_kind_slug_and_status() {
        let Ok(Config::Event(e)) = Config::parse(
            "event",
            &json!({"source_kind": "agent", "source": "a", "on": ["failed", "cancelled"]}),
        ) else {
            panic!("valid event");
        };
        assert!(e.matches(RunKind::Agent, "a", "failed"));
        assert!(!e.matches(RunKind::Agent, "a", "completed"));
        assert!(!e.matches(RunKind::Workflow, "a", "failed"));
        assert!(!e.matches(RunKind::Agent, "b", "failed"));
        assert_eq!(
            fields(
                "event",
                json!({"source_kind": "agent", "source": "a", "on": []})
            ),
            ["config.on"]
        );
    }

    #[test]
    fn only_schedules_take_an_input_of_the_target_s_shape() {
        assert!(check_input("schedule", RunKind::Agent, Some(&json!("hi"))).is_empty());
        assert_eq!(
            check_input("schedule", RunKind::Agent, Some(&json!({"a": 1})))[0].field,
            "input"
        );
        assert!(check_input("schedule", RunKind::Workflow, Some(&json!({"a": 1}))).is_empty());
        assert_eq!(
            check_input("webhook", RunKind::Workflow, Some(&json!({})))[0].field,
            "input"
        );
        assert!(check_input("webhook", RunKind::Workflow, None).is_empty());
    }
}
