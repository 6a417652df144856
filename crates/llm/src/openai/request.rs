//! Mapping a [`ChatRequest`] to the chat-completions request body.

use agentry_core::chat::{ChatRequest, Message, Role, ToolSpec};
use serde::Serialize;

#[derive(Serialize)]
struct Body<'a> {
    model: &'a str,
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<serde_json::Value>,
    stream: bool,
    stream_options: StreamOptions,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

#[derive(Serialize)]
struct WireMessage<'a> {
    role: &'static str,
    /// Always present: `null` only for an assistant message that just calls tools (OpenAI's
    /// own form); other roles get `""` because several servers reject a null there.
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<WireToolCall<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<&'a str>,
}

#[derive(Serialize)]
struct WireToolCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireFunctionCall<'a>,
}

#[derive(Serialize)]
struct WireFunctionCall<'a> {
    name: &'a str,
    arguments: &'a str,
}

#[derive(Serialize)]
struct WireTool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireFunction<'a>,
}

#[derive(Serialize)]
struct WireFunction<'a> {
    name: &'a str,
    description: &'a str,
    parameters: &'a serde_json::Value,
}

/// The JSON body of a streaming chat-completions request.
pub(crate) fn encode(request: &ChatRequest) -> Result<Vec<u8>, serde_json::Error> {
    let body = Body {
        model: &request.model,
        messages: request.messages.iter().map(message).collect(),
        tools: request.tools.iter().map(tool).collect(),
        temperature: request.temperature,
        max_tokens: request.max_tokens,
        // OpenAI's structured outputs; `strict` is left off because strict mode refuses
        // schemas that do not list every property as required, and the engine validates the
        // answer against the schema either way.
        response_format: request.response_schema.as_ref().map(|schema| {
            serde_json::json!({
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": schema},
            })
        }),
        stream: true,
        stream_options: StreamOptions {
            include_usage: true,
        },
    };
    serde_json::to_vec(&body)
}

fn role(role: Role) -> &'static str {
    match role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    }
}

fn message(message: &Message) -> WireMessage<'_> {
    let calls_tools = message.role == Role::Assistant && !message.tool_calls.is_empty();
    let content = match message.content.as_deref() {
        Some(text) => Some(text),
        None if calls_tools => None,
        None => Some(""),
    };
    WireMessage {
        role: role(message.role),
        content,
        tool_calls: message
            .tool_calls
            .iter()
            .map(|call| WireToolCall {
                id: &call.id,
                kind: "function",
                function: WireFunctionCall {
                    name: &call.name,
                    arguments: &call.arguments,
                },
            })
            .collect(),
        tool_call_id: message.tool_call_id.as_deref(),
    }
}

fn tool(tool: &ToolSpec) -> WireTool<'_> {
    WireTool {
        kind: "function",
        function: WireFunction {
            name: &tool.name,
            description: &tool.description,
            parameters: &tool.parameters,
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use agentry_core::chat::ToolCall;
    use serde_json::{Value, json};

    #[test]
    fn encodes_every_field() {
        let request = ChatRequest {
            model: "gpt-4o-mini".into(),
            messages: vec![
                Message::system("be brief"),
                Message::user("what is 6*7?"),
                Message {
                    role: Role::Assistant,
                    content: None,
                    tool_calls: vec![ToolCall {
                        id: "call_1".into(),
                        name: "calculator".into(),
                        arguments: "{\"expression\":\"6*7\"}".into(),
                    }],
                    tool_call_id: None,
                },
                Message::tool_result("call_1", "42"),
                Message {
                    role: Role::User,
                    content: None,
                    tool_calls: Vec::new(),
                    tool_call_id: None,
                },
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
                "model": "gpt-4o-mini",
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": "what is 6*7?"},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "call_1", "type": "function",
                         "function": {"name": "calculator", "arguments": "{\"expression\":\"6*7\"}"}}
                    ]},
                    {"role": "tool", "content": "42", "tool_call_id": "call_1"},
                    {"role": "user", "content": ""}
                ],
                "tools": [{"type": "function", "function": {
                    "name": "calculator", "description": "Evaluates arithmetic.",
                    "parameters": {"type": "object"}}}],
                "temperature": 0.5,
                "max_tokens": 256,
                "stream": true,
                "stream_options": {"include_usage": true}
            })
        );
    }

    #[test]
    fn omits_unset_options() {
        let request = ChatRequest {
            model: "m".into(),
            messages: vec![Message::user("hi")],
            ..ChatRequest::default()
        };
        let body: Value = serde_json::from_slice(&encode(&request).unwrap()).unwrap();
        assert!(body.get("tools").is_none());
        assert!(body.get("temperature").is_none());
        assert!(body.get("max_tokens").is_none());
        assert!(body.get("response_format").is_none());
    }

    #[test]
    fn sends_the_response_schema_as_json_schema_format() {
        let schema = json!({"type": "object", "properties": {"n": {"type": "integer"}}});
        let request = ChatRequest {
            model: "m".into(),
            messages: vec![Message::user("count")],
            response_schema: Some(schema.clone()),
            max_tokens: Some(100),
            ..ChatRequest::default()
        };
        let body: Value = serde_json::from_slice(&encode(&request).unwrap()).unwrap();
        assert_eq!(
            body["response_format"],
            json!({"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}})
        );
        assert_eq!(body["max_tokens"], 100);
    }
}
