//! Parsing and validation of workflow definitions.

use agentry_workflow::{DefinitionError, Merge, NodeKind, OnTimeout, Workflow, validate};

const SUPPORT: &str = include_str!("fixtures/support.yaml");

/// Parse + validate, returning every error.
fn errors(yaml: &str) -> Vec<DefinitionError> {
    match Workflow::parse_yaml(yaml) {
        Err(e) => e.0,
        Ok(wf) => match validate(&wf) {
            Ok(_) => Vec::new(),
            Err(e) => e.0,
        },
    }
}

/// The error about `node`/`field`, failing the test with the full list otherwise.
fn find<'a>(errs: &'a [DefinitionError], node: Option<&str>, field: &str) -> &'a DefinitionError {
    errs.iter()
        .find(|e| e.node.as_deref() == node && e.field == field)
        .unwrap_or_else(|| panic!("no error for {node:?}/{field:?} in {errs:#?}"))
}

/// A minimal valid workflow with `extra` appended under `nodes:` (indented 4 spaces).
/// Lines: 1-5 header, 6 `nodes:`, 7 `a:`, 8 `type: tool`, 9 `tool: t`, 10 `next: z`,
/// 11 `z:`, 12 `type: end`, extra from line 13.
fn doc(extra: &str) -> String {
    format!(
        "apiVersion: agentry/v1\nkind: Workflow\nmetadata: {{name: wf}}\nspec:\n  start: a\n  nodes:\n    a:\n      type: tool\n      tool: t\n      next: z\n    z:\n      type: end\n{extra}"
    )
}

#[test]
fn twenty_node_example_is_valid() {
    let wf = Workflow::parse_yaml(SUPPORT).expect("parses");
    assert_eq!(wf.metadata.name, "support-triage");
    assert!(wf.spec.nodes.len() >= 20, "{}", wf.spec.nodes.len());
    let v = validate(&wf).unwrap_or_else(|e| panic!("{e}"));
    let nodes = &v.workflow().spec.nodes;
    let Some(NodeKind::Parallel(p)) = nodes.get("research").map(|n| &n.kind) else {
        panic!("research is not parallel");
    };
    assert_eq!(p.merge, Merge::Object);
    let Some(NodeKind::Approval(a)) = nodes.get("approve").map(|n| &n.kind) else {
        panic!("approve is not approval");
    };
    assert_eq!(a.on_timeout, OnTimeout::Reject);
    assert_eq!(
        nodes.get("approve").and_then(|n| n.common.timeout_seconds),
        Some(86400)
    );
    assert_eq!(
        nodes.get("draft").and_then(|n| n.common.max_visits),
        Some(3)
    );
    let mut succ = v.successors("route");
    succ.sort();
    assert_eq!(succ, ["draft", "fetch_account", "research"]);
}

#[test]
fn serialized_definition_round_trips_through_json() {
    let wf = Workflow::parse_yaml(SUPPORT).expect("parses");
    let json = serde_json::to_string(&wf).expect("serializes");
    let again = Workflow::parse_json(&json).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again.spec, wf.spec);
    assert_eq!(again.metadata, wf.metadata);
    assert!(validate(&again).is_ok());
}

#[test]
fn json_errors_name_node_and_field_without_line() {
    let json = r#"{"apiVersion":"agentry/v1","kind":"Workflow","metadata":{"name":"wf"},
      "spec":{"start":"a","nodes":{"a":{"type":"tool","tool":"t","next":"nowhere"},
      "z":{"type":"end"}}}}"#;
    let wf = Workflow::parse_json(json).expect("parses");
    let errs = validate(&wf).expect_err("invalid").0;
    let e = find(&errs, Some("a"), "next");
    assert_eq!(e.line, None);
    assert!(e.message.contains("nowhere"), "{}", e.message);

    let errs = Workflow::parse_json(r#"{"apiVersion":"agentry/v1","kind":"Workflow","metadata":{"name":"wf"},"spec":{"start":"a","nodes":{"a":{"type":"end","nxt":1}}}}"#)
        .expect_err("unknown field").0;
    find(&errs, Some("a"), "nxt");

    let errs = Workflow::parse_json("{ not json").expect_err("syntax").0;
    assert_eq!(errs.first().and_then(|e| e.line), Some(1));
}

#[test]
fn parse_errors_are_collected_per_node_with_lines() {
    let yaml = doc(concat!(
        "    b:\n",                      // 13
        "      type: tool\n",            // 14
        "      tool: t\n",               // 15
        "      nxt: z\n",                // 16 unknown field
        "    c:\n",                      // 17
        "      type: teleport\n",        // 18 unknown kind
        "    d:\n",                      // 19
        "      type: end\n",             // 20
        "      timeout_seconds: soon\n", // 21 wrong type (common field)
        "    e:\n",                      // 22
        "      type: switch\n",          // 23
        "      cases: 3\n",              // 24 wrong type (kind field, found by probing)
        "      default: z\n",            // 25
    ));
    let errs = Workflow::parse_yaml(&yaml).expect_err("invalid").0;
    assert_eq!(find(&errs, Some("b"), "nxt").line, Some(16));
    assert_eq!(find(&errs, Some("c"), "type").line, Some(18));
    assert_eq!(find(&errs, Some("d"), "timeout_seconds").line, Some(21));
    let e = find(&errs, Some("e"), "cases");
    assert_eq!(e.line, Some(24));
    assert!(e.column.is_some());
}

#[test]
fn yaml_syntax_error_has_a_line() {
    let errs = Workflow::parse_yaml("apiVersion: agentry/v1\nkind: [unclosed\n")
        .expect_err("bad")
        .0;
    assert!(errs.first().and_then(|e| e.line).is_some(), "{errs:?}");
}

#[test]
fn header_errors() {
    let errs = errors(
        "apiVersion: agentry/v2\nkind: Flow\nmetadata: {name: wf}\nspec:\n  start: a\n  nodes: {a: {type: end}}\n",
    );
    assert_eq!(find(&errs, None, "apiVersion").line, Some(1));
    assert_eq!(find(&errs, None, "kind").line, Some(2));
}

#[test]
fn unknown_references() {
    let errs = errors(&doc(concat!(
        "    b:\n",                  // 13
        "      type: switch\n",      // 14
        "      cases:\n",            // 15
        "        - when: 'true'\n",  // 16
        "          next: ghost\n",   // 17
        "      default: z\n",        // 18
        "      on_error: phantom\n", // 19
    )));
    assert_eq!(find(&errs, Some("b"), "cases[0].next").line, Some(17));
    assert_eq!(find(&errs, Some("b"), "on_error").line, Some(19));
}

#[test]
fn start_missing() {
    let yaml = doc("").replace("start: a", "start: nope");
    let errs = errors(&yaml);
    let e = find(&errs, None, "spec.start");
    assert_eq!(e.line, Some(5));
    assert!(e.message.contains("nope"));
}

#[test]
fn unreachable_node() {
    let errs = errors(&doc("    orphan:\n      type: end\n"));
    let e = find(&errs, Some("orphan"), "");
    assert!(e.message.contains("unreachable"), "{}", e.message);
    assert_eq!(e.line, Some(13), "node errors point at the node id");
}

#[test]
fn node_without_path_to_end() {
    // a → b → c → b …: b and c loop forever (bounded, so only the end rule fires).
    let yaml = doc(concat!(
        "    b:\n",              // 13
        "      type: tool\n",    // 14
        "      tool: t\n",       // 15
        "      next: c\n",       // 16
        "      max_visits: 5\n", // 17
        "    c:\n",              // 18
        "      type: tool\n",    // 19
        "      tool: t\n",       // 20
        "      next: b\n",       // 21
    ))
    .replace("next: z\n    z:", "next: b\n    z:");
    let errs = errors(&yaml);
    let e = find(&errs, Some("c"), "");
    assert!(e.message.contains("end"), "{}", e.message);
    assert_eq!(e.line, Some(18));
    find(&errs, Some("b"), "");
    assert!(!errs.iter().any(|e| e.field == "max_visits"), "{errs:#?}");
}

#[test]
fn cycle_without_bound() {
    let yaml = doc(concat!(
        "    b:\n",                  // 13
        "      type: switch\n",      // 14
        "      cases:\n",            // 15
        "        - when: 'again'\n", // 16
        "          next: a\n",       // 17
        "      default: z\n",        // 18
    ))
    .replace("next: z\n    z:", "next: b\n    z:");
    let errs = errors(&yaml);
    let e = find(&errs, Some("a"), "max_visits");
    assert!(e.message.contains("`b`"), "{}", e.message);
    assert_eq!(e.line, Some(7));
    // Bounding any node of the loop is enough.
    let bounded = yaml.replace(
        "      default: z\n",
        "      default: z\n      max_visits: 10\n",
    );
    assert_eq!(errors(&bounded), Vec::new());
}

#[test]
fn self_loop_without_bound() {
    let yaml = doc("").replace("      next: z\n", "      next: z\n      on_error: a\n");
    let errs = errors(&yaml);
    find(&errs, Some("a"), "max_visits");
}

#[test]
fn templates_and_expressions_must_compile() {
    let errs = errors(&doc(concat!(
        "    b:\n",                               // 13
        "      type: llm\n",                      // 14
        "      prompt: 'Hello {{ name '\n",       // 15
        "      next: c\n",                        // 16
        "    c:\n",                               // 17
        "      type: switch\n",                   // 18
        "      cases:\n",                         // 19
        "        - when: 'a ==== b'\n",           // 20
        "          next: z\n",                    // 21
        "      default: z\n",                     // 22
        "    d:\n",                               // 23
        "      type: tool\n",                     // 24
        "      tool: t\n",                        // 25
        "      args: {deep: [ok, '{% if %}']}\n", // 26
        "      next: z\n",                        // 27
    )));
    assert_eq!(find(&errs, Some("b"), "prompt").line, Some(15));
    assert_eq!(find(&errs, Some("c"), "cases[0].when").line, Some(20));
    assert_eq!(find(&errs, Some("d"), "args.deep[1]").line, Some(26));
}

#[test]
fn jq_must_parse() {
    let errs = errors(&doc(concat!(
        "    b:\n",                    // 13
        "      type: transform\n",     // 14
        "      jq: '.a | map(. + '\n", // 15
        "      into: x\n",             // 16
        "      next: z\n",             // 17
        "    c:\n",                    // 18
        "      type: transform\n",     // 19
        "      jq: 'now'\n",           // 20 not available: clock access
        "      into: x\n",             // 21
        "      next: z\n",             // 22
    )));
    assert_eq!(find(&errs, Some("b"), "jq").line, Some(15));
    assert_eq!(find(&errs, Some("c"), "jq").line, Some(20));
}

#[test]
fn transform_needs_exactly_one_program() {
    let errs = errors(&doc(
        "    b:\n      type: transform\n      jq: '.'\n      template: x\n      into: k\n      next: z\n",
    ));
    assert_eq!(find(&errs, Some("b"), "").line, Some(13));
}

#[test]
fn json_schemas_must_compile() {
    let yaml = doc(concat!(
        "    b:\n",               // 13
        "      type: llm\n",      // 14
        "      prompt: hi\n",     // 15
        "      output_schema:\n", // 16
        "        type: 12\n",     // 17
        "      next: z\n",        // 18
    ))
    .replace(
        "  start: a\n",
        "  start: a\n  input: {type: [\"object\", \"bogus\"]}\n",
    );
    let errs = errors(&yaml);
    assert_eq!(find(&errs, None, "spec.input").line, Some(6));
    assert_eq!(find(&errs, Some("b"), "output_schema").line, Some(17));
}

#[test]
fn parallel_branch_must_reach_join() {
    let yaml = doc(concat!(
        "    p:\n",                     // 13
        "      type: parallel\n",       // 14
        "      branches: [ok, lost]\n", // 15
        "      join: j\n",              // 16
        "    ok:\n",                    // 17
        "      type: tool\n",           // 18
        "      tool: t\n",              // 19
        "      next: j\n",              // 20
        "    lost:\n",                  // 21
        "      type: tool\n",           // 22
        "      tool: t\n",              // 23
        "      next: z\n",              // 24
        "    j:\n",                     // 25
        "      type: tool\n",           // 26
        "      tool: t\n",              // 27
        "      next: z\n",              // 28
    ))
    .replace("next: z\n    z:", "next: p\n    z:");
    let errs = errors(&yaml);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    let e = find(&errs, Some("p"), "branches[1]");
    assert_eq!(e.line, Some(15));
    assert!(e.message.contains("lost"));
}

#[test]
fn limits_out_of_range() {
    let yaml = doc(concat!(
        "    m:\n",                // 13
        "      type: map\n",       // 14
        "      items: 'xs'\n",     // 15
        "      node: body\n",      // 16
        "      concurrency: 50\n", // 17 above max_concurrency 4
        "      into: ys\n",        // 18
        "      next: z\n",         // 19
        "      retry:\n",          // 20
        "        attempts: 0\n",   // 21
        "    body:\n",             // 22
        "      type: tool\n",      // 23
        "      tool: t\n",         // 24
    ))
    .replace("next: z\n    z:", "next: m\n    z:")
    .replace(
        "  start: a\n",
        "  start: a\n  limits: {max_steps: 0, max_concurrency: 4}\n",
    );
    let errs = errors(&yaml);
    assert_eq!(find(&errs, None, "spec.limits.max_steps").line, Some(6));
    assert!(
        find(&errs, None, "spec.limits.max_steps")
            .message
            .contains("out of range")
    );
    assert_eq!(find(&errs, Some("m"), "concurrency").line, Some(18));
    assert_eq!(find(&errs, Some("m"), "retry.attempts").line, Some(22));
}

#[test]
fn map_body_rules() {
    let yaml = doc(concat!(
        "    m:\n",            // 13
        "      type: map\n",   // 14
        "      items: 'xs'\n", // 15
        "      node: body\n",  // 16
        "      into: ys\n",    // 17
        "      next: z\n",     // 18
        "    body:\n",         // 19
        "      type: tool\n",  // 20
        "      tool: t\n",     // 21
        "      next: z\n",     // 22 not allowed on a body
        "    b:\n",            // 23
        "      type: tool\n",  // 24
        "      tool: t\n",     // 25
    ))
    .replace("next: z\n    z:", "next: m\n    z:");
    let errs = errors(&yaml);
    assert_eq!(find(&errs, Some("body"), "next").line, Some(22));
    // `b` is no body, so it needs `next` (and is unreachable).
    find(&errs, Some("b"), "next");
}

#[test]
fn wait_rules() {
    let errs = errors(&doc(concat!(
        "    w:\n",                              // 13
        "      type: wait\n",                    // 14
        "      until: 'tomorrow'\n",             // 15
        "      next: z\n",                       // 16
        "    v:\n",                              // 17
        "      type: wait\n",                    // 18
        "      seconds: 5\n",                    // 19
        "      until: '2026-01-01T00:00:00Z'\n", // 20
        "      next: z\n",                       // 21
    )));
    assert_eq!(find(&errs, Some("w"), "until").line, Some(15));
    find(&errs, Some("v"), "");
}

/// Definitions are data: parsing and validating never renders a template, runs jq, touches
/// files or the network, or panics — whatever the strings look like.
#[test]
fn hostile_strings_are_never_executed() {
    let yaml = doc(concat!(
        "    t1:\n",
        "      type: transform\n",
        "      template: \"{{ ''.__class__.__mro__[1].__subclasses__() }}{% include '/etc/passwd' %}\"\n",
        "      into: x\n",
        "      next: t2\n",
        "    t2:\n",
        "      type: transform\n",
        "      jq: 'input | env | $ENV | debug'\n",
        "      into: x\n",
        "      next: h\n",
        "    h:\n",
        "      type: http\n",
        "      method: GET\n",
        "      url: 'file:///etc/passwd'\n",
        "      body: \"{{ cycler.__init__.__globals__.os.popen('touch /tmp/agentry-wf-pwned').read() }}\"\n",
        "      next: g\n",
        "    g:\n",
        "      type: transform\n",
        "      template: \"{% for i in range(999999999) %}{% for j in range(999999999) %}x{% endfor %}{% endfor %}\"\n",
        "      into: x\n",
        "      next: z\n",
        "    s:\n",
        "      type: llm\n",
        "      prompt: '$(rm -rf /) `id`'\n",
        "      output_schema: {$ref: 'http://127.0.0.1:1/schema.json'}\n",
        "      next: z\n",
    ))
    .replace("next: z\n    z:", "next: t1\n    z:");
    let started = std::time::Instant::now();
    let wf = Workflow::parse_yaml(&yaml).expect("hostile strings still parse");
    let errs = validate(&wf).expect_err("some of it is invalid").0;
    // Validation is compile-only: even the nested billion-iteration loop costs nothing.
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert!(!std::path::Path::new("/tmp/agentry-wf-pwned").exists());
    // The file URL is refused statically; `input`/`env`/`$ENV`/`debug` do not exist in our jq.
    find(&errs, Some("h"), "url");
    find(&errs, Some("t2"), "jq");
    // The remote $ref is not fetched: it fails to resolve, reported as a schema error.
    find(&errs, Some("s"), "output_schema");
    // The Python-style template compiles (minijinja has no such attributes) and is not run.
    assert!(
        !errs.iter().any(|e| e.node.as_deref() == Some("t1")),
        "{errs:#?}"
    );
}

#[test]
fn every_error_is_reported_at_once() {
    let yaml = doc(concat!(
        "    b:\n",
        "      type: tool\n",
        "      tool: t\n",
        "      next: ghost\n",
        "    c:\n",
        "      type: llm\n",
        "      prompt: '{{'\n",
        "      next: z\n",
    ))
    .replace("start: a", "start: missing");
    let errs = errors(&yaml);
    find(&errs, None, "spec.start");
    find(&errs, Some("b"), "next");
    find(&errs, Some("c"), "prompt");
    let text = agentry_workflow::DefinitionErrors(errs).to_string();
    assert!(text.contains("line "), "{text}");
}

#[test]
fn unknown_references_in_routing_kinds() {
    let yaml = doc(concat!(
        "    ap:\n",                     // 13
        "      type: approval\n",        // 14
        "      assignee_role: admin\n",  // 15
        "      next_approved: z\n",      // 16
        "      next_rejected: nobody\n", // 17
        "    p:\n",                      // 18
        "      type: parallel\n",        // 19
        "      branches: [ap, ghost]\n", // 20
        "      join: nojoin\n",          // 21
        "    m:\n",                      // 22
        "      type: map\n",             // 23
        "      items: xs\n",             // 24
        "      node: nobody\n",          // 25
        "      into: ys\n",              // 26
        "      next: z\n",               // 27
    ));
    let errs = errors(&yaml);
    assert_eq!(find(&errs, Some("ap"), "next_rejected").line, Some(17));
    assert_eq!(find(&errs, Some("p"), "branches[1]").line, Some(20));
    assert_eq!(find(&errs, Some("p"), "join").line, Some(21));
    assert_eq!(find(&errs, Some("m"), "node").line, Some(25));
}

#[test]
fn yaml_include_tags_do_not_read_files() {
    let yaml = "apiVersion: agentry/v1\nkind: Workflow\nmetadata:\n  name: wf\n  description: !include /etc/passwd\nspec:\n  start: z\n  nodes: {z: {type: end}}\n";
    match Workflow::parse_yaml(yaml) {
        Ok(wf) => assert!(
            !wf.metadata
                .description
                .unwrap_or_default()
                .contains("root:"),
            "file contents were read"
        ),
        Err(e) => assert!(!e.to_string().contains("root:"), "{e}"),
    }
}

/// The example shipped in `examples/` is a valid definition.
#[test]
fn the_shipped_example_validates() {
    let text = include_str!("../../../examples/workflow.yaml");
    let parsed = Workflow::parse_yaml(text).unwrap_or_else(|e| panic!("{e}"));
    let validated = validate(&parsed).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(validated.workflow().metadata.name, "refund");
    assert_eq!(validated.workflow().spec.nodes.len(), 5);
}
