//! Static checks of a parsed workflow. Collects every problem; executes nothing.
//!
//! ## Loop rule
//! Cycles are allowed only when bounded: **every cycle of the graph must pass through at least
//! one node that declares `max_visits`**. It is checked exactly by deleting the bounded nodes
//! and requiring the rest of the graph to be acyclic. At run time a node that would run more
//! than `max_visits` times fails instead (taking its `on_error` route if it has one), so every
//! loop terminates. Edges considered: `next`, switch cases and `default`, parallel branches and
//! `join`, map `node` and `next`, approval routes, and `on_error`. Sub-workflow recursion
//! (a workflow calling itself by slug) cannot be seen here and is left to the executor's depth
//! limit.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde_json::Value;

use crate::error::DefinitionErrors;
use crate::eval::{check_expression, check_jq, check_template};
use crate::model::{Node, NodeKind, Workflow};
use crate::parse::Sink;
use crate::source::Seg;

pub const MAX_NODES: usize = 1_000;
pub const MAX_STEPS: u64 = 100_000;
pub const MAX_DURATION_SECONDS: u64 = 90 * 24 * 3600;
pub const MAX_CONCURRENCY: u32 = 64;
pub const MAX_NODE_TIMEOUT_SECONDS: u64 = 7 * 24 * 3600;
pub const MAX_APPROVAL_TIMEOUT_SECONDS: u64 = 30 * 24 * 3600;
pub const MAX_WAIT_SECONDS: u64 = 30 * 24 * 3600;
pub const MAX_RETRY_ATTEMPTS: u32 = 20;
pub const MAX_BACKOFF_MS: u64 = 3_600_000;
pub const MAX_VISITS: u32 = 10_000;

/// A workflow that passed [`validate`].
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedWorkflow {
    workflow: Workflow,
}

impl ValidatedWorkflow {
    pub fn workflow(&self) -> &Workflow {
        &self.workflow
    }

    pub fn into_inner(self) -> Workflow {
        self.workflow
    }

    /// The nodes `id` can hand control to (see the module docs for which edges count).
    pub fn successors(&self, id: &str) -> Vec<String> {
        self.workflow
            .spec
            .nodes
            .get(id)
            .map(|n| edges(n).into_iter().map(|(_, t)| t.to_owned()).collect())
            .unwrap_or_default()
    }
}

/// Every outgoing reference of a node, with the field it is written in.
fn edges(node: &Node) -> Vec<(Vec<Seg>, &str)> {
    let mut out: Vec<(Vec<Seg>, &str)> = Vec::new();
    if let Some(next) = node.kind.next() {
        out.push((vec![Seg::from("next")], next));
    }
    match &node.kind {
        NodeKind::Switch(s) => {
            for (i, case) in s.cases.iter().enumerate() {
                out.push((
                    vec![Seg::from("cases"), Seg::Index(i), Seg::from("next")],
                    &case.next,
                ));
            }
            out.push((vec![Seg::from("default")], &s.default));
        }
        NodeKind::Parallel(p) => {
            for (i, b) in p.branches.iter().enumerate() {
                out.push((vec![Seg::from("branches"), Seg::Index(i)], b));
            }
            out.push((vec![Seg::from("join")], &p.join));
        }
        NodeKind::Map(m) => out.push((vec![Seg::from("node")], &m.node)),
        NodeKind::Approval(a) => {
            out.push((vec![Seg::from("next_approved")], &a.next_approved));
            out.push((vec![Seg::from("next_rejected")], &a.next_rejected));
        }
        _ => {}
    }
    if let Some(on_error) = &node.common.on_error {
        out.push((vec![Seg::from("on_error")], on_error));
    }
    out
}

fn is_valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && id.len() <= 64
}

fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// Checks an RFC 3339 timestamp's shape (`2026-01-31T12:00:00Z`, optional fraction, `Z` or
/// `±hh:mm`) and field ranges, without a date library.
pub fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| {
        b.get(r.clone())
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
            .then(|| {
                s.get(r)
                    .and_then(|t| t.parse::<u32>().ok())
                    .unwrap_or(u32::MAX)
            })
    };
    let (Some(_year), Some(month), Some(day), Some(hour), Some(min), Some(sec)) = (
        digits(0..4),
        digits(5..7),
        digits(8..10),
        digits(11..13),
        digits(14..16),
        digits(17..19),
    ) else {
        return false;
    };
    if b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || !matches!(b.get(10), Some(b'T' | b't'))
        || b.get(13) != Some(&b':')
        || b.get(16) != Some(&b':')
    {
        return false;
    }
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return false;
    }
    let mut rest = s.get(19..).unwrap_or_default();
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = frac.get(n..).unwrap_or_default();
    }
    match rest {
        "Z" | "z" => true,
        _ => {
            let rb = rest.as_bytes();
            rb.len() == 6
                && matches!(rb.first(), Some(b'+' | b'-'))
                && rb.get(3) == Some(&b':')
                && rest
                    .get(1..3)
                    .and_then(|h| h.parse::<u32>().ok())
                    .is_some_and(|h| h <= 23)
                && rest
                    .get(4..6)
                    .and_then(|m| m.parse::<u32>().ok())
                    .is_some_and(|m| m <= 59)
        }
    }
}

fn path(segs: &[&str]) -> Vec<Seg> {
    segs.iter().map(|s| Seg::from(*s)).collect()
}

fn check_range<T: PartialOrd + std::fmt::Display + Copy>(
    sink: &mut Sink<'_>,
    node: Option<&str>,
    field: &[Seg],
    value: Option<T>,
    min: T,
    max: T,
) {
    if let Some(v) = value
        && (v < min || v > max)
    {
        sink.at(node, field, format!("{v} is out of range {min}..={max}"));
    }
}

fn check_tpl(sink: &mut Sink<'_>, node: &str, field: Vec<Seg>, tpl: &str) {
    if let Err(e) = check_template(tpl) {
        sink.at(Some(node), &field, format!("template {e}"));
    }
}

fn check_expr(sink: &mut Sink<'_>, node: &str, field: Vec<Seg>, expr: &str) {
    if let Err(e) = check_expression(expr) {
        sink.at(Some(node), &field, format!("expression {e}"));
    }
}

/// Compiles every string leaf of a templated JSON value.
fn check_json_templates(sink: &mut Sink<'_>, node: &str, field: &mut Vec<Seg>, value: &Value) {
    match value {
        Value::String(s) => check_tpl(sink, node, field.clone(), s),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                field.push(Seg::Index(i));
                check_json_templates(sink, node, field, item);
                field.pop();
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                field.push(Seg::Key(k.clone()));
                check_json_templates(sink, node, field, v);
                field.pop();
            }
        }
        _ => {}
    }
}

fn check_schema(sink: &mut Sink<'_>, node: Option<&str>, field: &[Seg], schema: &Value) {
    // The workspace builds jsonschema without `resolve-http`/`resolve-file`, so compiling
    // cannot fetch a remote or local `$ref`: such a reference fails to compile here instead.
    if let Err(e) = jsonschema::validator_for(schema) {
        sink.at(node, field, format!("invalid JSON Schema: {e}"));
    }
}

fn check_into(sink: &mut Sink<'_>, node: &str, into: Option<&str>) {
    if let Some(key) = into
        && (key.is_empty() || key.contains(char::is_whitespace))
    {
        sink.at(
            Some(node),
            &path(&["into"]),
            "must be a non-empty state key without whitespace",
        );
    }
}

fn check_node(sink: &mut Sink<'_>, id: &str, node: &Node, is_map_body: bool, max_concurrency: u32) {
    let c = &node.common;
    let timeout_max = if matches!(node.kind, NodeKind::Approval(_)) {
        MAX_APPROVAL_TIMEOUT_SECONDS
    } else {
        MAX_NODE_TIMEOUT_SECONDS
    };
    check_range(
        sink,
        Some(id),
        &path(&["timeout_seconds"]),
        c.timeout_seconds,
        1,
        timeout_max,
    );
    check_range(
        sink,
        Some(id),
        &path(&["max_visits"]),
        c.max_visits,
        1,
        MAX_VISITS,
    );
    if let Some(r) = &c.retry {
        check_range(
            sink,
            Some(id),
            &path(&["retry", "attempts"]),
            Some(r.attempts),
            1,
            MAX_RETRY_ATTEMPTS,
        );
        check_range(
            sink,
            Some(id),
            &path(&["retry", "backoff_ms"]),
            Some(r.backoff_ms),
            0,
            MAX_BACKOFF_MS,
        );
    }

    // `next` is required on sequential kinds, except on a map body, which returns to its map.
    let has_next_field = matches!(
        node.kind,
        NodeKind::Agent(_)
            | NodeKind::Llm(_)
            | NodeKind::Tool(_)
            | NodeKind::Http(_)
            | NodeKind::Transform(_)
            | NodeKind::Workflow(_)
    );
    if has_next_field {
        match (is_map_body, node.kind.next().is_some()) {
            (false, false) => sink.at(Some(id), &path(&["next"]), "missing field `next`"),
            (true, true) => sink.at(
                Some(id),
                &path(&["next"]),
                "a map item body must not have `next`: control returns to the map",
            ),
            _ => {}
        }
    }

    match &node.kind {
        NodeKind::Agent(n) => {
            if !is_slug(&n.agent) {
                sink.at(
                    Some(id),
                    &path(&["agent"]),
                    "must be an agent slug (a-z, 0-9, -, _)",
                );
            }
            if let Some(input) = &n.input {
                check_json_templates(sink, id, &mut path(&["input"]), input);
            }
            check_into(sink, id, n.into.as_deref());
        }
        NodeKind::Llm(n) => {
            check_tpl(sink, id, path(&["prompt"]), &n.prompt);
            if let Some(s) = &n.system {
                check_tpl(sink, id, path(&["system"]), s);
            }
            if let Some(schema) = &n.output_schema {
                check_schema(sink, Some(id), &path(&["output_schema"]), schema);
            }
            check_into(sink, id, n.into.as_deref());
        }
        NodeKind::Tool(n) => {
            if n.tool.trim().is_empty() {
                sink.at(Some(id), &path(&["tool"]), "must not be empty");
            }
            if let Some(args) = &n.args {
                check_json_templates(sink, id, &mut path(&["args"]), args);
            }
            check_into(sink, id, n.into.as_deref());
        }
        NodeKind::Http(n) => {
            check_tpl(sink, id, path(&["url"]), &n.url);
            // A literal URL can be judged now; a templated one is checked (and SSRF-guarded)
            // by the executor after rendering.
            let literal = !n.url.contains("{{") && !n.url.contains("{%");
            let lower = n.url.to_ascii_lowercase();
            if literal && !(lower.starts_with("http://") || lower.starts_with("https://")) {
                sink.at(
                    Some(id),
                    &path(&["url"]),
                    "must be an http:// or https:// URL",
                );
            }
            for (k, v) in &n.headers {
                check_tpl(sink, id, vec![Seg::from("headers"), Seg::Key(k.clone())], v);
            }
            if let Some(body) = &n.body {
                check_json_templates(sink, id, &mut path(&["body"]), body);
            }
            check_into(sink, id, n.into.as_deref());
        }
        NodeKind::Transform(n) => {
            match (&n.jq, &n.template) {
                (Some(jq), None) => {
                    if let Err(e) = check_jq(jq) {
                        sink.at(Some(id), &path(&["jq"]), e.to_string());
                    }
                }
                (None, Some(t)) => check_tpl(sink, id, path(&["template"]), t),
                _ => sink.at(
                    Some(id),
                    &[],
                    "exactly one of `jq` and `template` is required",
                ),
            }
            check_into(sink, id, Some(&n.into));
        }
        NodeKind::Switch(n) => {
            if n.cases.is_empty() {
                sink.at(Some(id), &path(&["cases"]), "must have at least one case");
            }
            for (i, case) in n.cases.iter().enumerate() {
                check_expr(
                    sink,
                    id,
                    vec![Seg::from("cases"), Seg::Index(i), Seg::from("when")],
                    &case.when,
                );
            }
        }
        NodeKind::Parallel(n) => {
            if n.branches.is_empty() {
                sink.at(
                    Some(id),
                    &path(&["branches"]),
                    "must have at least one branch",
                );
            }
            let mut seen = BTreeSet::new();
            for (i, b) in n.branches.iter().enumerate() {
                if !seen.insert(b) {
                    sink.at(
                        Some(id),
                        &[Seg::from("branches"), Seg::Index(i)],
                        format!("branch `{b}` is listed twice"),
                    );
                }
                if *b == n.join {
                    sink.at(
                        Some(id),
                        &[Seg::from("branches"), Seg::Index(i)],
                        "a branch cannot start at the join node",
                    );
                }
            }
            check_into(sink, id, n.into.as_deref());
        }
        NodeKind::Map(n) => {
            check_expr(sink, id, path(&["items"]), &n.items);
            check_range(
                sink,
                Some(id),
                &path(&["concurrency"]),
                Some(n.concurrency),
                1,
                max_concurrency,
            );
            check_into(sink, id, Some(&n.into));
        }
        NodeKind::Approval(n) => {
            if n.assignee_role.trim().is_empty() {
                sink.at(Some(id), &path(&["assignee_role"]), "must not be empty");
            }
            if let Some(m) = &n.message {
                check_tpl(sink, id, path(&["message"]), m);
            }
        }
        NodeKind::Wait(n) => {
            let set = [
                n.seconds.is_some(),
                n.until.is_some(),
                n.until_expr.is_some(),
            ];
            if set.iter().filter(|b| **b).count() != 1 {
                sink.at(
                    Some(id),
                    &[],
                    "exactly one of `seconds`, `until` and `until_expr` is required",
                );
            }
            check_range(
                sink,
                Some(id),
                &path(&["seconds"]),
                n.seconds,
                1,
                MAX_WAIT_SECONDS,
            );
            if let Some(u) = &n.until
                && !is_rfc3339(u)
            {
                sink.at(
                    Some(id),
                    &path(&["until"]),
                    "must be an RFC 3339 timestamp (use `until_expr` for an expression)",
                );
            }
            if let Some(e) = &n.until_expr {
                check_expr(sink, id, path(&["until_expr"]), e);
            }
        }
        NodeKind::Workflow(n) => {
            if !is_slug(&n.workflow) {
                sink.at(
                    Some(id),
                    &path(&["workflow"]),
                    "must be a workflow slug (a-z, 0-9, -, _)",
                );
            }
            if let Some(input) = &n.input {
                check_json_templates(sink, id, &mut path(&["input"]), input);
            }
            check_into(sink, id, n.into.as_deref());
        }
        NodeKind::End(n) => {
            if let Some(out) = &n.output {
                check_json_templates(sink, id, &mut path(&["output"]), out);
            }
        }
    }
}

/// Nodes reachable from `from` following `succ`, not expanding past `stop`.
fn reach<'a>(
    from: &'a str,
    succ: &BTreeMap<&'a str, Vec<&'a str>>,
    stop: Option<&str>,
) -> BTreeSet<&'a str> {
    let mut seen = BTreeSet::from([from]);
    let mut queue = VecDeque::from([from]);
    while let Some(n) = queue.pop_front() {
        if Some(n) == stop {
            continue;
        }
        for &m in succ.get(n).into_iter().flatten() {
            if seen.insert(m) {
                queue.push_back(m);
            }
        }
    }
    seen
}

/// Strongly connected components (Tarjan) that contain a cycle.
fn cyclic_components<'a>(
    nodes: &[&'a str],
    succ: &BTreeMap<&'a str, Vec<&'a str>>,
) -> Vec<Vec<&'a str>> {
    struct State<'a> {
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<&'a str>>,
    }
    fn visit<'a>(v: &'a str, succ: &BTreeMap<&'a str, Vec<&'a str>>, st: &mut State<'a>) {
        st.index.insert(v, st.next);
        st.low.insert(v, st.next);
        st.next += 1;
        st.stack.push(v);
        st.on_stack.insert(v);
        for &w in succ.get(v).into_iter().flatten() {
            if !st.index.contains_key(w) {
                visit(w, succ, st);
                let lw = st.low.get(w).copied().unwrap_or(usize::MAX);
                if let Some(lv) = st.low.get_mut(v) {
                    *lv = (*lv).min(lw);
                }
            } else if st.on_stack.contains(w) {
                let iw = st.index.get(w).copied().unwrap_or(usize::MAX);
                if let Some(lv) = st.low.get_mut(v) {
                    *lv = (*lv).min(iw);
                }
            }
        }
        if st.low.get(v) == st.index.get(v) {
            let mut comp = Vec::new();
            while let Some(w) = st.stack.pop() {
                st.on_stack.remove(w);
                comp.push(w);
                if w == v {
                    break;
                }
            }
            let self_loop = succ.get(v).is_some_and(|s| s.contains(&v));
            if comp.len() > 1 || self_loop {
                comp.sort_unstable();
                st.out.push(comp);
            }
        }
    }
    let mut st = State {
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for &n in nodes {
        if !st.index.contains_key(n) {
            // Depth is bounded by MAX_NODES, which is checked before this runs.
            visit(n, succ, &mut st);
        }
    }
    st.out
}

/// Validates a parsed workflow, returning every problem found. Nothing is executed: templates
/// and expressions are compiled, jq is parsed, schemas are compiled.
pub fn validate(workflow: &Workflow) -> Result<ValidatedWorkflow, DefinitionErrors> {
    let mut sink = Sink::new(&workflow.source);
    let spec = &workflow.spec;
    let nodes = &spec.nodes;

    if !is_slug(&workflow.metadata.name) {
        sink.at(
            None,
            &path(&["metadata", "name"]),
            "must be a slug (a-z, 0-9, -, _; at most 64)",
        );
    }
    for (field, schema) in [
        ("input", &spec.input),
        ("state", &spec.state),
        ("output", &spec.output),
    ] {
        if let Some(schema) = schema {
            check_schema(&mut sink, None, &path(&["spec", field]), schema);
        }
    }
    let limits = spec.limits.clone().unwrap_or_default();
    check_range(
        &mut sink,
        None,
        &path(&["spec", "limits", "max_steps"]),
        limits.max_steps,
        1,
        MAX_STEPS,
    );
    check_range(
        &mut sink,
        None,
        &path(&["spec", "limits", "max_duration_seconds"]),
        limits.max_duration_seconds,
        1,
        MAX_DURATION_SECONDS,
    );
    check_range(
        &mut sink,
        None,
        &path(&["spec", "limits", "max_concurrency"]),
        limits.max_concurrency,
        1,
        MAX_CONCURRENCY,
    );
    let max_concurrency = limits
        .max_concurrency
        .unwrap_or(MAX_CONCURRENCY)
        .clamp(1, MAX_CONCURRENCY);

    if nodes.is_empty() {
        sink.at(
            None,
            &path(&["spec", "nodes"]),
            "must have at least one node",
        );
    }
    if nodes.len() > MAX_NODES {
        sink.at(
            None,
            &path(&["spec", "nodes"]),
            format!("at most {MAX_NODES} nodes"),
        );
        // Later passes recurse per node; refuse before them.
        return Err(sink
            .finish()
            .err()
            .unwrap_or_else(|| DefinitionErrors(Vec::new())));
    }
    if !nodes.contains_key(&spec.start) {
        sink.at(
            None,
            &path(&["spec", "start"]),
            format!("unknown node `{}`", spec.start),
        );
    }

    // Map bodies, each with the map that owns it.
    let mut body_of: BTreeMap<&str, &str> = BTreeMap::new();
    for (id, node) in nodes {
        if let NodeKind::Map(m) = &node.kind
            && let Some(prev) = body_of.insert(&m.node, id)
        {
            sink.at(
                Some(id),
                &path(&["node"]),
                format!("node `{}` is already the item body of map `{prev}`", m.node),
            );
        }
    }

    let mut succ: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut ends: Vec<&str> = Vec::new();
    for (id, node) in nodes {
        if !is_valid_id(id) {
            sink.at(Some(id), &[], "node ids start with a letter or `_` and use only letters, digits, `_` and `-` (at most 64)");
        }
        let is_body = body_of.contains_key(id.as_str());
        if is_body && !node.kind.is_item_capable() {
            sink.at(
                Some(id),
                &path(&["type"]),
                "a map item body must be agent, llm, tool, http, transform or workflow",
            );
        }
        check_node(&mut sink, id, node, is_body, max_concurrency);
        let out = succ.entry(id).or_default();
        for (field, target) in edges(node) {
            if nodes.contains_key(target) {
                out.push(target);
            } else {
                sink.at(Some(id), &field, format!("unknown node `{target}`"));
            }
        }
        if matches!(node.kind, NodeKind::End(_)) {
            ends.push(id);
        }
    }

    // Reachability from start.
    if nodes.contains_key(&spec.start) {
        let reachable = reach(&spec.start, &succ, None);
        for id in nodes.keys() {
            if !reachable.contains(id.as_str()) {
                sink.at(
                    Some(id),
                    &[],
                    format!("unreachable from start node `{}`", spec.start),
                );
            }
        }
    }

    // Every node must be able to finish. A map body finishes by returning to its map.
    let mut pred: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (&from, tos) in &succ {
        for &to in tos {
            pred.entry(to).or_default().push(from);
        }
    }
    let mut can_end: BTreeSet<&str> = BTreeSet::new();
    let mut queue: VecDeque<&str> = ends.iter().copied().collect();
    can_end.extend(ends.iter().copied());
    while let Some(n) = queue.pop_front() {
        for &p in pred.get(n).into_iter().flatten() {
            if can_end.insert(p) {
                queue.push_back(p);
            }
        }
    }
    if ends.is_empty() && !nodes.is_empty() {
        sink.at(None, &path(&["spec", "nodes"]), "no `end` node");
    }
    for id in nodes.keys() {
        let id = id.as_str();
        let via_map = body_of.get(id).is_some_and(|m| can_end.contains(m));
        if !ends.is_empty() && !can_end.contains(id) && !via_map {
            sink.at(
                Some(id),
                &[],
                "no path from this node reaches an `end` node",
            );
        }
    }

    // Bounded loops: remove the bounded nodes; what remains must be acyclic.
    let unbounded: Vec<&str> = nodes
        .iter()
        .filter(|(_, n)| n.common.max_visits.is_none())
        .map(|(id, _)| id.as_str())
        .collect();
    let unbounded_set: BTreeSet<&str> = unbounded.iter().copied().collect();
    let restricted: BTreeMap<&str, Vec<&str>> = succ
        .iter()
        .filter(|(k, _)| unbounded_set.contains(*k))
        .map(|(&k, v)| {
            (
                k,
                v.iter()
                    .copied()
                    .filter(|t| unbounded_set.contains(t))
                    .collect(),
            )
        })
        .collect();
    for comp in cyclic_components(&unbounded, &restricted) {
        if let Some(first) = comp.first() {
            sink.at(
                Some(first),
                &path(&["max_visits"]),
                format!(
                    "nodes {} form a loop with no `max_visits` bound: declare `max_visits` on one of them",
                    comp.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")
                ),
            );
        }
    }

    // Each parallel branch must reach its join.
    for (id, node) in nodes {
        if let NodeKind::Parallel(p) = &node.kind {
            if !nodes.contains_key(&p.join) {
                continue;
            }
            for (i, b) in p.branches.iter().enumerate() {
                if !nodes.contains_key(b) || *b == p.join {
                    continue;
                }
                if !reach(b, &succ, Some(&p.join)).contains(p.join.as_str()) {
                    sink.at(
                        Some(id),
                        &[Seg::from("branches"), Seg::Index(i)],
                        format!("branch `{b}` never reaches join node `{}`", p.join),
                    );
                }
            }
        }
    }

    sink.finish()?;
    Ok(ValidatedWorkflow {
        workflow: workflow.clone(),
    })
}

impl Workflow {
    /// Shorthand for [`validate`].
    pub fn validate(&self) -> Result<ValidatedWorkflow, DefinitionErrors> {
        validate(self)
    }
}

#[cfg(test)]
mod tests {
    use super::is_rfc3339;

    #[test]
    fn rfc3339_shapes() {
        for ok in [
            "2026-01-31T12:00:00Z",
            "2026-01-31t12:00:00.123456z",
            "2026-12-05T08:00:00+01:00",
            "2026-12-05T08:00:60-23:59",
        ] {
            assert!(is_rfc3339(ok), "{ok}");
        }
        for bad in [
            "",
            "tomorrow",
            "2026-01-31",
            "2026-13-01T00:00:00Z",
            "2026-01-31T24:00:00Z",
            "2026-01-31T12:00:00",
            "2026-01-31T12:00:00.Z",
            "2026-01-31T12:00:00+1:00",
            "2026-01-31 12:00:00Z",
            "２０２６-01-31T12:00:00Z",
        ] {
            assert!(!is_rfc3339(bad), "{bad}");
        }
    }
}
