//! Text → [`Workflow`]: decoding with every error located by node, field path and line.
//!
//! YAML is first read into JSON plus a [`SourceMap`] (see `source.rs`); both formats then go
//! through the same JSON decoder, so they accept exactly the same documents. Nodes are decoded
//! one by one so that a broken node does not hide the problems of the others.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::{DefinitionError, DefinitionErrors};
use crate::model::{
    API_VERSION, COMMON_FIELDS, Common, KIND, Limits, Metadata, Node, NodeKind, Spec, Workflow,
};
use crate::source::{Seg, SourceMap, read_yaml, render_path};

/// Collects errors, attaching positions from the source map.
pub(crate) struct Sink<'a> {
    pub source: &'a SourceMap,
    pub errors: Vec<DefinitionError>,
}

impl<'a> Sink<'a> {
    pub fn new(source: &'a SourceMap) -> Self {
        Sink {
            source,
            errors: Vec::new(),
        }
    }

    /// Records an error about `rel` — relative to node `node` when given, else to the root.
    pub fn at(&mut self, node: Option<&str>, rel: &[Seg], message: impl Into<String>) {
        let mut abs: Vec<Seg> = Vec::with_capacity(rel.len() + 3);
        if let Some(id) = node {
            abs.extend([Seg::from("spec"), Seg::from("nodes"), Seg::from(id)]);
        }
        abs.extend(rel.iter().cloned());
        let pos = self.source.position(&abs);
        self.errors.push(DefinitionError {
            node: node.map(str::to_owned),
            field: render_path(rel),
            line: pos.map(|p| p.line),
            column: pos.map(|p| p.column),
            message: message.into(),
        });
    }

    pub fn finish(mut self) -> Result<(), DefinitionErrors> {
        if self.errors.is_empty() {
            return Ok(());
        }
        // Document order reads best; errors without a position (JSON) keep their order.
        self.errors
            .sort_by_key(|e| (e.line.unwrap_or(u64::MAX), e.column.unwrap_or(0)));
        Err(DefinitionErrors(self.errors))
    }
}

fn backticked_after<'m>(msg: &'m str, prefix: &str) -> Option<&'m str> {
    let start = msg.find(prefix)? + prefix.len();
    let rest = msg.get(start..)?;
    rest.find('`').and_then(|end| rest.get(..end))
}

/// Finds which key of `value` made decoding as `T` fail. serde_json reports no path when
/// decoding from a `Value`, so for type errors we remove one key at a time: the key whose
/// absence makes the error go away (or turn into "missing field") is the culprit.
fn culprit<T: DeserializeOwned>(value: &Value, msg: &str) -> Option<String> {
    for prefix in ["unknown field `", "missing field `", "duplicate field `"] {
        if let Some(name) = backticked_after(msg, prefix) {
            return Some(name.to_owned());
        }
    }
    let Value::Object(map) = value else {
        return None;
    };
    for key in map.keys() {
        let mut reduced = map.clone();
        reduced.remove(key);
        match serde_json::from_value::<T>(Value::Object(reduced)) {
            Ok(_) => return Some(key.clone()),
            Err(e) if e.to_string().contains(&format!("missing field `{key}`")) => {
                return Some(key.clone());
            }
            Err(_) => {}
        }
    }
    None
}

/// Decodes `value` as `T`, recording a located error on failure.
pub(crate) fn decode<T: DeserializeOwned>(
    value: &Value,
    sink: &mut Sink<'_>,
    node: Option<&str>,
    base: &[Seg],
) -> Option<T> {
    match serde_json::from_value::<T>(value.clone()) {
        Ok(v) => Some(v),
        Err(e) => {
            let msg = e.to_string();
            let mut path = base.to_vec();
            if let Some(key) = culprit::<T>(value, &msg) {
                path.push(Seg::Key(key));
            }
            sink.at(node, &path, msg);
            None
        }
    }
}

fn check_keys(map: &Map<String, Value>, allowed: &[&str], base: &[Seg], sink: &mut Sink<'_>) {
    for key in map.keys() {
        if !allowed.contains(&key.as_str()) {
            let mut path = base.to_vec();
            path.push(Seg::Key(key.clone()));
            sink.at(
                None,
                &path,
                format!("unknown field `{key}`, expected one of {allowed:?}"),
            );
        }
    }
}

fn required_str<'v>(
    map: &'v Map<String, Value>,
    key: &str,
    base: &[Seg],
    sink: &mut Sink<'_>,
) -> Option<&'v str> {
    let mut path = base.to_vec();
    path.push(Seg::from(key));
    match map.get(key) {
        Some(Value::String(s)) => Some(s),
        Some(_) => {
            sink.at(None, &path, "must be a string");
            None
        }
        None => {
            sink.at(None, &path, format!("missing field `{key}`"));
            None
        }
    }
}

fn parse_node(id: &str, value: &Value, sink: &mut Sink<'_>) -> Option<Node> {
    let Value::Object(map) = value else {
        sink.at(Some(id), &[], "a node must be a mapping");
        return None;
    };
    // serde cannot combine `flatten` with `deny_unknown_fields`, so split by name instead.
    let (common, rest): (Map<String, Value>, Map<String, Value>) = map
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .partition(|(k, _)| COMMON_FIELDS.contains(&k.as_str()));
    let common = decode::<Common>(&Value::Object(common), sink, Some(id), &[]);
    let kind = decode::<NodeKind>(&Value::Object(rest), sink, Some(id), &[]);
    Some(Node {
        kind: kind?,
        common: common?,
    })
}

/// Decodes a JSON value (from either format) into a workflow.
pub(crate) fn from_value(value: &Value, source: SourceMap) -> Result<Workflow, DefinitionErrors> {
    let mut sink = Sink::new(&source);
    let Value::Object(root) = value else {
        sink.at(None, &[], "a workflow definition must be a mapping");
        return sink.finish().and(Err(DefinitionErrors(Vec::new())));
    };
    check_keys(
        root,
        &["apiVersion", "kind", "metadata", "spec"],
        &[],
        &mut sink,
    );
    if let Some(v) = required_str(root, "apiVersion", &[], &mut sink)
        && v != API_VERSION
    {
        sink.at(
            None,
            &[Seg::from("apiVersion")],
            format!("must be `{API_VERSION}`"),
        );
    }
    if let Some(v) = required_str(root, "kind", &[], &mut sink)
        && v != KIND
    {
        sink.at(None, &[Seg::from("kind")], format!("must be `{KIND}`"));
    }
    let metadata = match root.get("metadata") {
        Some(m) => decode::<Metadata>(m, &mut sink, None, &[Seg::from("metadata")]),
        None => {
            sink.at(None, &[Seg::from("metadata")], "missing field `metadata`");
            None
        }
    };
    let spec = match root.get("spec") {
        Some(Value::Object(spec)) => parse_spec(spec, &mut sink),
        Some(_) => {
            sink.at(None, &[Seg::from("spec")], "must be a mapping");
            None
        }
        None => {
            sink.at(None, &[Seg::from("spec")], "missing field `spec`");
            None
        }
    };
    let api_version = root
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let kind = root
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    sink.finish()?;
    match (metadata, spec) {
        (Some(metadata), Some(spec)) => Ok(Workflow {
            api_version,
            kind,
            metadata,
            spec,
            source,
        }),
        // Unreachable in practice: every `None` above recorded an error.
        _ => Err(DefinitionErrors(Vec::new())),
    }
}

fn parse_spec(spec: &Map<String, Value>, sink: &mut Sink<'_>) -> Option<Spec> {
    let base = [Seg::from("spec")];
    check_keys(
        spec,
        &["input", "state", "output", "start", "nodes", "limits"],
        &base,
        sink,
    );
    let start = required_str(spec, "start", &base, sink).map(str::to_owned);
    let limits = spec
        .get("limits")
        .map(|l| decode::<Limits>(l, sink, None, &[Seg::from("spec"), Seg::from("limits")]));
    let mut nodes = BTreeMap::new();
    let mut nodes_ok = true;
    match spec.get("nodes") {
        Some(Value::Object(map)) => {
            for (id, value) in map {
                match parse_node(id, value, sink) {
                    Some(node) => {
                        nodes.insert(id.clone(), node);
                    }
                    None => nodes_ok = false,
                }
            }
        }
        Some(_) => {
            sink.at(
                None,
                &[Seg::from("spec"), Seg::from("nodes")],
                "must be a mapping of node id to node",
            );
            nodes_ok = false;
        }
        None => {
            sink.at(
                None,
                &[Seg::from("spec"), Seg::from("nodes")],
                "missing field `nodes`",
            );
            nodes_ok = false;
        }
    }
    let limits = match limits {
        Some(Some(l)) => Some(l),
        Some(None) => return None,
        None => None,
    };
    if !nodes_ok {
        return None;
    }
    Some(Spec {
        input: spec.get("input").cloned(),
        state: spec.get("state").cloned(),
        output: spec.get("output").cloned(),
        start: start?,
        nodes,
        limits,
    })
}

impl Workflow {
    /// Parses a YAML definition. Errors carry the line and column of the offending value.
    pub fn parse_yaml(text: &str) -> Result<Workflow, DefinitionErrors> {
        let (value, source) = read_yaml(text).map_err(|e| {
            DefinitionErrors(vec![DefinitionError {
                node: None,
                field: String::new(),
                line: e.position.map(|p| p.line),
                column: e.position.map(|p| p.column),
                message: e.message,
            }])
        })?;
        from_value(&value, source)
    }

    /// Parses a JSON definition. Errors carry node and field, but no line.
    pub fn parse_json(text: &str) -> Result<Workflow, DefinitionErrors> {
        let value: Value = serde_json::from_str(text).map_err(|e| {
            DefinitionErrors(vec![DefinitionError {
                node: None,
                field: String::new(),
                line: Some(e.line() as u64),
                column: Some(e.column() as u64),
                message: e.to_string(),
            }])
        })?;
        from_value(&value, SourceMap::default())
    }

    /// Decodes an already-parsed JSON document.
    pub fn from_json_value(value: &Value) -> Result<Workflow, DefinitionErrors> {
        from_value(value, SourceMap::default())
    }
}
