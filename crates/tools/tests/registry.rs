//! `ToolRegistry`: listing, specs, argument parsing and schema validation, unknown tools.

use agentry_core::clock::Clock;
use agentry_core::tool::{Tool, ToolContext, ToolError};
use agentry_tools::{RegistryError, ToolRegistry, ToolsConfig};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};
use std::sync::Arc;

#[derive(Debug)]
struct FixedClock(DateTime<Utc>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

fn registry() -> ToolRegistry {
    let instant = Utc
        .with_ymd_and_hms(2025, 1, 2, 3, 4, 5)
        .single()
        .expect("valid date");
    ToolRegistry::builtin(ToolsConfig {
        clock: Arc::new(FixedClock(instant)),
        ..ToolsConfig::default()
    })
}

fn ctx() -> ToolContext {
    ToolContext {
        idempotency_key: "k".into(),
    }
}

async fn invoke(name: &str, raw: &str) -> Result<Value, ToolError> {
    registry().invoke(name, raw, &ctx()).await
}

#[test]
fn builtin_tools_are_listed_sorted() {
    let registry = registry();
    assert_eq!(
        registry.names(),
        vec!["calculator", "current_time", "http_request"]
    );
    assert!(registry.get("calculator").is_some());
    assert!(registry.get("nope").is_none());
    let strict = ToolRegistry::try_builtin(ToolsConfig::default()).expect("builds");
    assert_eq!(strict.names(), registry.names());
}

#[test]
fn registry_is_shareable_across_tasks() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ToolRegistry>();
}

#[test]
fn specs_follow_the_requested_order_and_skip_unknown_names() {
    let registry = registry();
    let specs = registry.specs(&[
        "http_request".to_string(),
        "nope".to_string(),
        "calculator".to_string(),
        "calculator".to_string(),
    ]);
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, vec!["http_request", "calculator"]);
    for spec in &specs {
        assert!(!spec.description.is_empty());
        assert_eq!(spec.parameters["type"], json!("object"));
        assert_eq!(spec.parameters["additionalProperties"], json!(false));
    }
    assert_eq!(specs[1].parameters["required"], json!(["expression"]));
    assert_eq!(specs[0].parameters["required"], json!(["url"]));
}

#[tokio::test]
async fn invokes_tools_with_raw_json() {
    assert_eq!(
        invoke("calculator", r#"{"expression": "2^10"}"#).await,
        Ok(json!({"result": 1024}))
    );
    assert_eq!(
        invoke("current_time", "{}").await,
        Ok(json!({"iso": "2025-01-02T03:04:05Z", "unix": 1_735_787_045, "timezone": "UTC"}))
    );
    // Models often send an empty string for "no arguments".
    assert_eq!(
        invoke("current_time", "").await,
        invoke("current_time", "{}").await
    );
    assert_eq!(
        invoke("current_time", r#"{"timezone": "Asia/Tokyo"}"#)
            .await
            .map(|v| v["iso"].clone()),
        Ok(json!("2025-01-02T12:04:05+09:00"))
    );
}

#[tokio::test]
async fn invalid_json_is_invalid_arguments_with_the_parse_error() {
    for raw in [
        r#"{"expression": "1+1""#,
        "not json",
        r#"{'expression': '1'}"#,
    ] {
        let err = invoke("calculator", raw).await.expect_err(raw);
        assert_eq!(err.code, "invalid_arguments", "{raw}");
        assert!(err.message.contains("not valid JSON"), "{}", err.message);
        assert!(err.message.contains("line 1"), "{}", err.message);
    }
}

#[tokio::test]
async fn schema_violations_are_invalid_arguments_naming_the_path() {
    let cases = [
        ("calculator", r#"{}"#, "expression"),
        ("calculator", r#"{"expression": 5}"#, "/expression"),
        (
            "calculator",
            r#"{"expression": "1", "extra": true}"#,
            "extra",
        ),
        ("calculator", r#"[]"#, "object"),
        ("current_time", r#"{"timezone": 3}"#, "/timezone"),
        (
            "http_request",
            r#"{"url": "http://example.com", "method": "PUT"}"#,
            "/method",
        ),
        (
            "http_request",
            r#"{"url": "http://example.com", "headers": {"A": 1}}"#,
            "/headers/A",
        ),
        ("http_request", r#"{"method": "GET"}"#, "url"),
    ];
    for (tool, raw, needle) in cases {
        let err = invoke(tool, raw).await.expect_err(raw);
        assert_eq!(
            err.code, "invalid_arguments",
            "{tool} {raw}: {}",
            err.message
        );
        assert!(
            err.message.contains(needle),
            "{tool} {raw}: {}",
            err.message
        );
    }
}

#[tokio::test]
async fn tool_errors_pass_through() {
    let err = invoke("calculator", r#"{"expression": "1/0"}"#)
        .await
        .expect_err("math");
    assert_eq!(err.code, "math_error");
    let err = invoke("current_time", r#"{"timezone": "Nowhere/City"}"#)
        .await
        .expect_err("zone");
    assert_eq!(err.code, "invalid_timezone");
}

#[tokio::test]
async fn unknown_tool_lists_the_available_names() {
    let err = invoke("weather", "{}").await.expect_err("unknown");
    assert_eq!(err.code, "unknown_tool");
    assert!(err.message.contains("weather"), "{}", err.message);
    assert!(
        err.message
            .contains("calculator, current_time, http_request"),
        "{}",
        err.message
    );
}

struct BadSchemaTool;

#[async_trait::async_trait]
impl Tool for BadSchemaTool {
    fn name(&self) -> &str {
        "bad"
    }
    fn description(&self) -> &str {
        "has an invalid schema"
    }
    fn parameters(&self) -> Value {
        json!({"type": "not-a-type"})
    }
    async fn call(&self, _arguments: Value, _context: &ToolContext) -> Result<Value, ToolError> {
        Ok(Value::Null)
    }
}

#[test]
fn register_rejects_invalid_schemas_and_duplicates() {
    let mut registry = registry();
    assert!(matches!(
        registry.register(Arc::new(BadSchemaTool)),
        Err(RegistryError::InvalidSchema { .. })
    ));
    assert_eq!(
        registry.register(Arc::new(agentry_tools::CalculatorTool)),
        Err(RegistryError::Duplicate("calculator".into()))
    );
}
