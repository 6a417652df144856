//! Mapping a [`ChatRequest`] to an Anthropic Messages API request body.
//!
//! - System messages go to the top-level `system` field (joined by blank lines).
//! - Assistant tool calls become `tool_use` blocks; their `input` must be a JSON object, so
//!   arguments that are not one (models do produce invalid JSON) are sent as `{}`.
//! - Tool results become `tool_result` blocks in a `user` message; consecutive messages of the
//!   same role are merged, so parallel tool results (and a user turn right after them) form one
//!   `user` message, as the API requires.
//! - Empty text is never sent (the API refuses empty text blocks).

use agentry_core::chat::{ChatRequest, Message, Role, ToolSpec};
use serde::Serialize;
use serde_json::{Map, Value};

/// `max_tokens` is mandatory for Anthropic; used when the request sets none.
pub(crate) const DEFAULT_MAX_TOKENS: u32 = 4096;

#[derive(Serialize)]
struct Body<'a> {
    model: &'a str,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<String>,
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    stream: bool,
}

#[derive(Serialize)]
struct WireMessage<'a> {
    role: &'static str,
    content: Vec<Block<'a>>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block<'a> {
    Text {
        text: &'a str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: Value,
    },
    ToolResult {
        tool_use_id: &'a str,
        content: &'a str,
    },
}

#[derive(Serialize)]
struct WireTool<'a> {
    name: &'a str,
    description: &'a str,
    input_schema: &'a Value,
}

/// The JSON body of a streaming Messages API request.
pub(crate) fn encode(request: &ChatRequest) -> Result<Vec<u8>, serde_json::Error> {
    let system: Vec<&str> = request
        .messages
        .iter()
        .filter(|message| message.role == Role::System)
        .filter_map(|message| message.content.as_deref())
        .filter(|text| !text.is_empty())
        .collect();
    let mut system = system.join("\n\n");
    if let Some(schema) = &request.response_schema {
        // Our adapter has no native structured output for Anthropic, so the schema goes into
        // the instructions; the engine validates the answer against it either way.
        if !system.is_empty() {
            system.push_str("\n\n");
        }
        system.push_str(&schema_instruction(schema));
    }
    let body = Body {
        model: &request.model,
        max_tokens: request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        system: (!system.is_empty()).then_some(system),
        messages: messages(&request.messages),
        tools: request.tools.iter().map(tool).collect(),
        temperature: request.temperature,
        stream: true,
    };
    let mut body = serde_json::to_value(&body)?;
    if request.prompt_cache {
        add_cache_breakpoints(&mut body);
    }
    serde_json::to_vec(&body)
}

/// Prompt caching: `cache_control` breakpoints (3 of the 4 allowed) after the tools, after the
/// system prompt and after the last message, so the next call of the agent loop reads the whole
/// prefix from the cache (usage then reports `cache_read_input_tokens`).
fn add_cache_breakpoints(body: &mut Value) {
    let ephemeral = || serde_json::json!({"type": "ephemeral"});
    if let Some(tool) = body
        .get_mut("tools")
        .and_then(Value::as_array_mut)
        .and_then(|t| t.last_mut())
        .and_then(Value::as_object_mut)
    {
        tool.insert("cache_control".into(), ephemeral());
    }
    if let Some(system) = body
        .get("system")
        .and_then(Value::as_str)
        .map(str::to_string)
    {
        body["system"] =
            serde_json::json!([{"type": "text", "text": system, "cache_control": ephemeral()}]);
    }
    if let Some(block) = body
        .get_mut("messages")
        .and_then(Value::as_array_mut)
        .and_then(|m| m.last_mut())
        .and_then(|m| m.get_mut("content"))
        .and_then(Value::as_array_mut)
        .and_then(|c| c.last_mut())
        .and_then(Value::as_object_mut)
    {
        block.insert("cache_control".into(), ephemeral());
    }
}

/// The system-prompt instruction that asks for a JSON answer matching `schema`.
pub(crate) fn schema_instruction(schema: &Value) -> String {
    format!(
        "Answer only with a single JSON value that matches this JSON Schema, with no other \
         text and no code fences:\n{schema}"
    )
}

fn messages(messages: &[Message]) -> Vec<WireMessage<'_>> {
    let mut wire: Vec<WireMessage<'_>> = Vec::new();
    for message in messages {
        let (role, blocks) = match message.role {
            Role::System => continue,
            Role::User => ("user", text_block(message).into_iter().collect()),
            Role::Tool => (
                "user",
                vec![Block::ToolResult {
                    tool_use_id: message.tool_call_id.as_deref().unwrap_or_default(),
                    content: message.content.as_deref().unwrap_or_default(),
                }],
            ),
            Role::Assistant => {
                let mut blocks: Vec<Block<'_>> = text_block(message).into_iter().collect();
                blocks.extend(message.tool_calls.iter().map(|call| Block::ToolUse {
                    id: &call.id,
                    name: &call.name,
                    input: input_object(&call.arguments),
                }));
                ("assistant", blocks)
            }
        };
        if blocks.is_empty() {
            continue;
        }
        match wire.last_mut() {
            Some(last) if last.role == role => last.content.extend(blocks),
            _ => wire.push(WireMessage {
                role,
                content: blocks,
            }),
        }
    }
    // Within a user message, tool results must come before any text.
    for message in &mut wire {
        message
            .content
            .sort_by_key(|block| !matches!(block, Block::ToolResult { .. }));
    }
    wire
}

fn text_block(message: &Message) -> Option<Block<'_>> {
    message
        .content
        .as_deref()
        .filter(|text| !text.is_empty())
        .map(|text| Block::Text { text })
}

fn input_object(arguments: &str) -> Value {
    match serde_json::from_str::<Value>(arguments) {
        Ok(Value::Object(object)) => Value::Object(object),
        _ => Value::Object(Map::new()),
    }
}

fn tool(tool: &ToolSpec) -> WireTool<'_> {
    WireTool {
        name: &tool.name,
        description: &tool.description,
        input_schema: &tool.parameters,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use agentry_core::chat::ToolCall;
    use serde_json::json;

    fn call(id: &str, arguments: &str) -> ToolCall {
        ToolCall {
            id: id.into(),
            name: "calculator".into(),
            arguments: arguments.into(),
        }
    }

    #[test]
    fn renders_system_tools_and_merged_tool_results() {
        let request = ChatRequest {
            model: "claude-sonnet-4-5".into(),
            messages: vec![
                Message::system("be brief"),
                Message::user("what is 6*7 and 1+1?"),
                Message {
                    role: Role::Assistant,
                    content: Some("Let me compute.".into()),
                    tool_calls: vec![
                        call("toolu_1", r#"{"expression":"6*7"}"#),
                        call("toolu_2", "{not json"),
                    ],
                    tool_call_id: None,
                },
                Message::tool_result("toolu_1", "42"),
                Message::tool_result("toolu_2", "error: invalid arguments"),
                Message::user("thanks"),
                Message::system("second system note"),
            ],
            tools: vec![ToolSpec {
                name: "calculator".into(),
                description: "Evaluates arithmetic.".into(),
                parameters: json!({"type": "object"}),
            }],
            temperature: Some(0.5),
            max_tokens: Some(256),
            ..ChatRequest::default()
        };
        let body: Value = serde_json::from_slice(&encode(&request).unwrap()).unwrap();
        assert_eq!(
            body,
            json!({
                "model": "claude-sonnet-4-5",
                "max_tokens": 256,
                "system": "be brief\n\nsecond system note",
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "what is 6*7 and 1+1?"}]},
                    {"role": "assistant", "content": [
                        {"type": "text", "text": "Let me compute."},
                        {"type": "tool_use", "id": "toolu_1", "name": "calculator",
                         "input": {"expression": "6*7"}},
                        {"type": "tool_use", "id": "toolu_2", "name": "calculator", "input": {}}
                    ]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "42"},
                        {"type": "tool_result", "tool_use_id": "toolu_2",
                         "content": "error: invalid arguments"},
                        {"type": "text", "text": "thanks"}
                    ]}
                ],
                "tools": [{"name": "calculator", "description": "Evaluates arithmetic.",
                           "input_schema": {"type": "object"}}],
                "temperature": 0.5,
                "stream": true
            })
        );
    }

    #[test]
    fn response_schema_becomes_a_system_instruction() {
        let schema = json!({"type": "object", "required": ["n"]});
        let mut request = ChatRequest {
            model: "m".into(),
            messages: vec![Message::system("be brief"), Message::user("count")],
            response_schema: Some(schema.clone()),
            ..ChatRequest::default()
        };
        let body: Value = serde_json::from_slice(&encode(&request).unwrap()).unwrap();
        let system = body["system"].as_str().unwrap();
        assert!(
            system.starts_with("be brief\n\nAnswer only with"),
            "{system}"
        );
        assert!(
            system.ends_with(r#"{"required":["n"],"type":"object"}"#),
            "{system}"
        );
        assert_eq!(body["max_tokens"], DEFAULT_MAX_TOKENS);
        // Without other system text, the instruction is the whole system prompt.
        request.messages.remove(0);
        request.max_tokens = Some(77);
        let body: Value = serde_json::from_slice(&encode(&request).unwrap()).unwrap();
        assert_eq!(body["system"], schema_instruction(&schema));
        assert_eq!(body["max_tokens"], 77);
    }

    #[test]
    fn defaults_max_tokens_and_omits_empty_parts() {
        let request = ChatRequest {
            model: "m".into(),
            messages: vec![
                Message::user("hi"),
                Message::assistant(""),
                Message::user("again"),
            ],
            ..ChatRequest::default()
        };
        let body: Value = serde_json::from_slice(&encode(&request).unwrap()).unwrap();
        assert_eq!(body["max_tokens"], DEFAULT_MAX_TOKENS);
        assert!(body.get("system").is_none());
        assert!(body.get("tools").is_none());
        assert!(body.get("temperature").is_none());
        assert_eq!(
            body["messages"],
            json!([{"role": "user", "content": [
                {"type": "text", "text": "hi"}, {"type": "text", "text": "again"}
            ]}])
        );
    }

    #[test]
    fn prompt_cache_places_breakpoints_on_tools_system_and_the_last_message() {
        let request = ChatRequest {
            model: "claude".into(),
            messages: vec![Message::system("be brief"), Message::user("hello")],
            tools: vec![ToolSpec {
                name: "calc".into(),
                description: "d".into(),
                parameters: serde_json::json!({"type": "object"}),
            }],
            prompt_cache: true,
            ..Default::default()
        };
        let body: Value = serde_json::from_slice(&encode(&request).unwrap()).unwrap();
        let eph = serde_json::json!({"type": "ephemeral"});
        assert_eq!(body["tools"][0]["cache_control"], eph);
        assert_eq!(body["system"][0]["text"], "be brief");
        assert_eq!(body["system"][0]["cache_control"], eph);
        assert_eq!(body["messages"][0]["content"][0]["cache_control"], eph);
        // Off by default: the body stays as it was.
        let plain = ChatRequest {
            prompt_cache: false,
            ..request
        };
        let body: Value = serde_json::from_slice(&encode(&plain).unwrap()).unwrap();
        assert_eq!(body["system"], "be brief");
        assert!(body["tools"][0].get("cache_control").is_none());
    }
}
