//! Mapping a [`ChatRequest`] to a Gemini `generateContent` request body.
//!
//! - System messages go to `systemInstruction` (joined by blank lines).
//! - Roles are `user` and `model`; consecutive contents of the same role are merged, so
//!   parallel tool results form one `user` content, as Gemini expects.
//! - Assistant tool calls become `functionCall` parts; `args` must be an object, so arguments
//!   that are not one are sent as `{}`.
//! - Tool results become `functionResponse` parts named after the call they answer (found by
//!   id in the history) with `response: {"result": <text>}`. Call ids are ours (Gemini sends
//!   none), so they are not sent back.
//! - Tool parameter schemas are passed through as `parameters`; Gemini accepts an OpenAPI
//!   subset of JSON Schema there.

use agentry_core::chat::{ChatRequest, Message, Role, ToolSpec};
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::HashMap;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    system_instruction: Option<Content>,
    contents: Vec<Content>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<Tools<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    generation_config: Option<GenerationConfig<'a>>,
}

#[derive(Serialize)]
struct Content {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    parts: Vec<Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Tools<'a> {
    function_declarations: Vec<FunctionDeclaration<'a>>,
}

#[derive(Serialize)]
struct FunctionDeclaration<'a> {
    name: &'a str,
    description: &'a str,
    parameters: &'a Value,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GenerationConfig<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_output_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_mime_type: Option<&'static str>,
    /// Full JSON Schema (unlike `responseSchema`, which takes only Gemini's OpenAPI subset).
    #[serde(skip_serializing_if = "Option::is_none")]
    response_json_schema: Option<&'a Value>,
}

/// The JSON body of a `streamGenerateContent` request.
pub(crate) fn encode(request: &ChatRequest) -> Result<Vec<u8>, serde_json::Error> {
    let system: Vec<&str> = request
        .messages
        .iter()
        .filter(|message| message.role == Role::System)
        .filter_map(|message| message.content.as_deref())
        .filter(|text| !text.is_empty())
        .collect();
    let schema = request.response_schema.as_ref();
    let generation_config =
        (request.temperature.is_some() || request.max_tokens.is_some() || schema.is_some())
            .then_some(GenerationConfig {
                temperature: request.temperature,
                max_output_tokens: request.max_tokens,
                response_mime_type: schema.map(|_| "application/json"),
                response_json_schema: schema,
            });
    let declarations: Vec<FunctionDeclaration<'_>> = request.tools.iter().map(tool).collect();
    let body = Body {
        system_instruction: (!system.is_empty()).then(|| Content {
            role: None,
            parts: vec![json!({"text": system.join("\n\n")})],
        }),
        contents: contents(&request.messages),
        tools: if declarations.is_empty() {
            Vec::new()
        } else {
            vec![Tools {
                function_declarations: declarations,
            }]
        },
        generation_config,
    };
    serde_json::to_vec(&body)
}

fn contents(messages: &[Message]) -> Vec<Content> {
    let names: HashMap<&str, &str> = messages
        .iter()
        .flat_map(|message| &message.tool_calls)
        .map(|call| (call.id.as_str(), call.name.as_str()))
        .collect();
    let mut contents: Vec<Content> = Vec::new();
    for message in messages {
        let text = message
            .content
            .as_deref()
            .filter(|text| !text.is_empty())
            .map(|text| json!({"text": text}));
        let (role, parts) = match message.role {
            Role::System => continue,
            Role::User => ("user", text.into_iter().collect::<Vec<_>>()),
            Role::Assistant => {
                let mut parts: Vec<Value> = text.into_iter().collect();
                parts.extend(message.tool_calls.iter().map(|call| {
                    json!({"functionCall": {"name": call.name, "args": args_object(&call.arguments)}})
                }));
                ("model", parts)
            }
            Role::Tool => {
                let id = message.tool_call_id.as_deref().unwrap_or_default();
                let name = names.get(id).copied().unwrap_or(id);
                let result = message.content.as_deref().unwrap_or_default();
                (
                    "user",
                    vec![
                        json!({"functionResponse": {"name": name, "response": {"result": result}}}),
                    ],
                )
            }
        };
        if parts.is_empty() {
            continue;
        }
        match contents.last_mut() {
            Some(last) if last.role == Some(role) => last.parts.extend(parts),
            _ => contents.push(Content {
                role: Some(role),
                parts,
            }),
        }
    }
    contents
}

fn args_object(arguments: &str) -> Value {
    match serde_json::from_str::<Value>(arguments) {
        Ok(Value::Object(object)) => Value::Object(object),
        _ => Value::Object(Map::new()),
    }
}

fn tool(tool: &ToolSpec) -> FunctionDeclaration<'_> {
    FunctionDeclaration {
        name: &tool.name,
        description: &tool.description,
        parameters: &tool.parameters,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use agentry_core::chat::ToolCall;

    #[test]
    fn renders_system_roles_function_calls_and_responses() {
        let request = ChatRequest {
            model: "gemini-2.5-flash".into(),
            messages: vec![
                Message::system("be brief"),
                Message::user("what is 6*7?"),
                Message {
                    role: Role::Assistant,
                    content: None,
                    tool_calls: vec![
                        ToolCall {
                            id: "call_a".into(),
                            name: "calculator".into(),
                            arguments: r#"{"expression":"6*7"}"#.into(),
                        },
                        ToolCall {
                            id: "call_b".into(),
                            name: "current_time".into(),
                            arguments: "not json".into(),
                        },
                    ],
                    tool_call_id: None,
                },
                Message::tool_result("call_a", "42"),
                Message::tool_result("call_b", "12:00"),
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
                "systemInstruction": {"parts": [{"text": "be brief"}]},
                "contents": [
                    {"role": "user", "parts": [{"text": "what is 6*7?"}]},
                    {"role": "model", "parts": [
                        {"functionCall": {"name": "calculator", "args": {"expression": "6*7"}}},
                        {"functionCall": {"name": "current_time", "args": {}}}
                    ]},
                    {"role": "user", "parts": [
                        {"functionResponse": {"name": "calculator", "response": {"result": "42"}}},
                        {"functionResponse": {"name": "current_time", "response": {"result": "12:00"}}}
                    ]}
                ],
                "tools": [{"functionDeclarations": [{"name": "calculator",
                    "description": "Evaluates arithmetic.", "parameters": {"type": "object"}}]}],
                "generationConfig": {"temperature": 0.5, "maxOutputTokens": 256}
            })
        );
    }

    #[test]
    fn omits_unset_parts() {
        let request = ChatRequest {
            model: "m".into(),
            messages: vec![Message::user("hi")],
            ..ChatRequest::default()
        };
        let body: Value = serde_json::from_slice(&encode(&request).unwrap()).unwrap();
        assert_eq!(
            body,
            json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
        );
    }

    #[test]
    fn asks_for_json_matching_the_response_schema() {
        let schema = json!({"type": "object", "properties": {"n": {"type": "integer"}}});
        let request = ChatRequest {
            model: "m".into(),
            messages: vec![Message::user("count")],
            response_schema: Some(schema.clone()),
            ..ChatRequest::default()
        };
        let body: Value = serde_json::from_slice(&encode(&request).unwrap()).unwrap();
        assert_eq!(
            body["generationConfig"],
            json!({"responseMimeType": "application/json", "responseJsonSchema": schema})
        );
    }
}
