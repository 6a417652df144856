//! The `current_time` tool: models do not know what time it is. The clock is injected so tests
//! (and replays) are deterministic.

use crate::codes;
use agentry_core::clock::SharedClock;
use agentry_core::tool::{Tool, ToolContext, ToolError};
use chrono::SecondsFormat;
use chrono_tz::Tz;
use serde::Deserialize;
use serde_json::{Value, json};

pub struct CurrentTimeTool {
    clock: SharedClock,
}

impl CurrentTimeTool {
    pub fn new(clock: SharedClock) -> Self {
        Self { clock }
    }
}

impl std::fmt::Debug for CurrentTimeTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CurrentTimeTool").finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(default)]
    timezone: Option<String>,
}

/// Parses an IANA zone name. `UTC` is accepted in any case because models write `utc` often and
/// there is no ambiguity; other names must match the database spelling.
fn parse_zone(name: &str) -> Result<Tz, ToolError> {
    let name = name.trim();
    if name.eq_ignore_ascii_case("utc") {
        return Ok(Tz::UTC);
    }
    name.parse::<Tz>().map_err(|_| {
        ToolError::new(
            codes::INVALID_TIMEZONE,
            format!(
                "unknown time zone '{name}'; use an IANA time zone name such as \
                 'Europe/Paris', 'America/New_York' or 'UTC'"
            ),
        )
    })
}

#[async_trait::async_trait]
impl Tool for CurrentTimeTool {
    fn name(&self) -> &str {
        "current_time"
    }

    fn description(&self) -> &str {
        "Returns the current date and time. Optional `timezone` is an IANA name such as \
         \"Europe/Paris\" (default UTC). Returns {\"iso\": RFC 3339 time in that zone, \"unix\": \
         seconds since 1970-01-01 UTC, \"timezone\": the zone name}."
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "timezone": {
                    "type": "string",
                    "description": "IANA time zone name, e.g. \"Asia/Tokyo\". Defaults to \"UTC\"."
                }
            },
            "required": [],
            "additionalProperties": false
        })
    }

    async fn call(&self, arguments: Value, _context: &ToolContext) -> Result<Value, ToolError> {
        let args: Args = serde_json::from_value(arguments)
            .map_err(|e| ToolError::new(codes::INVALID_ARGUMENTS, e.to_string()))?;
        let zone = parse_zone(args.timezone.as_deref().unwrap_or("UTC"))?;
        let now = self.clock.now();
        let local = now.with_timezone(&zone);
        Ok(json!({
            "iso": local.to_rfc3339_opts(SecondsFormat::Secs, true),
            "unix": now.timestamp(),
            "timezone": zone.name(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentry_core::clock::Clock;
    use chrono::{DateTime, TimeZone, Utc};
    use std::sync::Arc;

    #[derive(Debug)]
    struct FixedClock(DateTime<Utc>);

    impl Clock for FixedClock {
        fn now(&self) -> DateTime<Utc> {
            self.0
        }
    }

    fn tool() -> CurrentTimeTool {
        let instant = Utc
            .with_ymd_and_hms(2024, 7, 1, 12, 30, 45)
            .single()
            .expect("valid date");
        CurrentTimeTool::new(Arc::new(FixedClock(instant)))
    }

    fn ctx() -> ToolContext {
        ToolContext {
            idempotency_key: "k".into(),
        }
    }

    #[tokio::test]
    async fn defaults_to_utc() {
        let out = tool().call(json!({}), &ctx()).await;
        assert_eq!(
            out,
            Ok(json!({"iso": "2024-07-01T12:30:45Z", "unix": 1_719_837_045, "timezone": "UTC"}))
        );
        let lower = tool().call(json!({"timezone": "utc"}), &ctx()).await;
        assert_eq!(out, lower);
    }

    #[tokio::test]
    async fn converts_to_the_requested_zone_with_dst() {
        let paris = tool()
            .call(json!({"timezone": "Europe/Paris"}), &ctx())
            .await;
        assert_eq!(
            paris,
            Ok(json!({
                "iso": "2024-07-01T14:30:45+02:00",
                "unix": 1_719_837_045,
                "timezone": "Europe/Paris"
            }))
        );
        let ny = tool()
            .call(json!({"timezone": "America/New_York"}), &ctx())
            .await
            .expect("known zone");
        assert_eq!(ny["iso"], "2024-07-01T08:30:45-04:00");
        let kolkata = tool()
            .call(json!({"timezone": "Asia/Kolkata"}), &ctx())
            .await
            .expect("known zone");
        assert_eq!(kolkata["iso"], "2024-07-01T18:00:45+05:30");
    }

    #[tokio::test]
    async fn unknown_zone_is_an_error_with_an_example() {
        let err = tool()
            .call(json!({"timezone": "Mars/Olympus"}), &ctx())
            .await
            .expect_err("unknown zone");
        assert_eq!(err.code, codes::INVALID_TIMEZONE);
        assert!(err.message.contains("Mars/Olympus"), "{}", err.message);
        assert!(err.message.contains("Europe/Paris"), "{}", err.message);
    }

    #[tokio::test]
    async fn rejects_unknown_fields_when_called_directly() {
        let err = tool()
            .call(json!({"tz": "UTC"}), &ctx())
            .await
            .expect_err("unknown field");
        assert_eq!(err.code, codes::INVALID_ARGUMENTS);
    }
}
