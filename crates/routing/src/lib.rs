//! Cost-aware model routing.
//!
//! [`classify`] scores a request with a handful of explainable rules (length, tools offered,
//! code, maths, reasoning vocabulary, multi-step requests, conversation depth) and maps the score
//! to the cheapest [`Tier`] likely to handle it. Every point of the score comes with a reason, so
//! a routing decision can be shown in the run trace. When the chosen tier turns out to be too
//! weak, [`escalate`] says which tier to retry on.
//!
//! Pure and dependency-light on purpose: no I/O, no regex engine, no dependency on the agent
//! types; the engine converts its messages into a [`RouteInput`].
//!
//! Limits, measured by `tests/taskset.rs` on `tasks.jsonl`: keyword rules generalise poorly. On
//! the `dev` split (which the marker lists were written against) almost every task lands on its
//! tier; on the `holdout` split (written afterwards, never tuned on) nearly half the tasks are
//! under-routed and premium tasks phrased without the listed vocabulary ("show that …", a
//! subtle distributed-systems bug in plain words) go to `fast`. Routing stays cheap because an
//! escalation from `fast` costs little, but it relies on the failed attempt being detected. Treat
//! these rules as a baseline to replace with a learned classifier once traces are labelled.

use serde::{Deserialize, Serialize};

/// Model tiers, cheapest first (`fast < standard < premium`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    Fast,
    Standard,
    Premium,
}

impl Tier {
    pub const ALL: [Tier; 3] = [Tier::Fast, Tier::Standard, Tier::Premium];

    /// The next stronger tier, `None` at the top.
    pub fn next(self) -> Option<Tier> {
        match self {
            Tier::Fast => Some(Tier::Standard),
            Tier::Standard => Some(Tier::Premium),
            Tier::Premium => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Fast => "fast",
            Tier::Standard => "standard",
            Tier::Premium => "premium",
        }
    }
}

/// One chat message: `role` is `system`, `user`, `assistant` or `tool`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub text: String,
}

impl Message {
    pub fn new(role: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            text: text.into(),
        }
    }
}

/// What the router looks at: the conversation so far and how many tools the agent offers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteInput {
    pub messages: Vec<Message>,
    pub tool_count: usize,
}

/// The outcome of [`classify`]: the tier, the score it came from and one reason per rule that
/// contributed (`"+2.0 code: fenced block"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteDecision {
    pub tier: Tier,
    pub score: f32,
    pub reasons: Vec<String>,
}

/// Word lists the rules look for. A marker matches whole words, case-insensitively, with
/// punctuation ignored (`"step by step"` matches `Step-by-step`); a trailing `*` makes the last
/// word a prefix (`"analy*"` matches `analyze`, `analysis`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Markers {
    /// Programming vocabulary: languages, artefacts, debugging words.
    pub code: Vec<String>,
    /// Topics where cheap models are known to produce plausible but wrong answers.
    pub hard_systems: Vec<String>,
    /// Requests for a proof.
    pub proof: Vec<String>,
    /// Calculus and linear algebra beyond arithmetic.
    pub advanced_maths: Vec<String>,
    /// Everyday maths: equations, probability.
    pub maths: Vec<String>,
    /// Asking for analysis, comparison, planning, design.
    pub reasoning: Vec<String>,
}

fn strings(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| (*w).to_owned()).collect()
}

impl Default for Markers {
    fn default() -> Self {
        Self {
            code: strings(&[
                "function*",
                "class",
                "method",
                "compile*",
                "python",
                "rust",
                "javascript",
                "typescript",
                "java",
                "golang",
                "sql",
                "query",
                "regex*",
                "script",
                "bash",
                "shell",
                "unit test*",
                "refactor*",
                "debug*",
                "bug",
                "stack trace",
                "exception",
                "error*",
                "crash*",
                "fails",
                "config*",
                "yaml",
                "json",
                "nginx",
                "dockerfile",
                "kubernetes",
                "api",
                "git",
                "pull request",
                "diff",
                "mutex",
                "semaphore",
                "interface",
                "struct",
                "endpoint",
            ]),
            hard_systems: strings(&[
                "race condition*",
                "deadlock*",
                "lock free",
                "memory order*",
                "exactly once",
                "distributed",
                "consensus",
                "multi region",
                "concurren*",
                "linearizab*",
            ]),
            proof: strings(&["prove", "proof", "disprove", "theorem", "lemma"]),
            advanced_maths: strings(&[
                "integral*",
                "derivative*",
                "differential equation*",
                "eigen*",
                "converge*",
                "closed form",
                "induction",
                "positive definite",
            ]),
            maths: strings(&[
                "equation*",
                "solve for",
                "probabilit*",
                "polynomial*",
                "matrix",
                "variance",
                "expected value",
                "quadratic",
            ]),
            reasoning: strings(&[
                "step by step",
                "analy*",
                "compar*",
                "plan",
                "trade off*",
                "tradeoff*",
                "pros and cons",
                "evaluate",
                "design",
                "architecture",
                "strategy",
                "root cause",
                "critique",
                "investigate",
                "justif*",
                "recommend*",
                "failure mode*",
                "implications",
                "reconcile",
            ]),
        }
    }
}

/// Thresholds and weights of the rules. Every field has a default; a configuration only names
/// what it changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouterRules {
    /// Score at which `standard` is chosen.
    pub standard_at: f32,
    /// Score at which `premium` is chosen.
    pub premium_at: f32,
    /// Total characters over all messages that count as a long context, and its weight.
    pub long_chars: usize,
    pub long_weight: f32,
    /// Total characters that count as a very long context (replaces `long_weight`).
    pub very_long_chars: usize,
    pub very_long_weight: f32,
    /// Tools offered: `some_tools` or more adds `some_tools_weight`, `many_tools` or more adds
    /// `many_tools_weight` instead; a single tool or two add `few_tools_weight`.
    pub few_tools_weight: f32,
    pub some_tools: usize,
    pub some_tools_weight: f32,
    pub many_tools: usize,
    pub many_tools_weight: f32,
    /// Any code signal (fence, code syntax, code vocabulary).
    pub code_weight: f32,
    /// Distinct code-syntax tokens (`=>`, `::`, `();` …) that make text code without a fence.
    pub code_symbols_min: usize,
    pub hard_systems_weight: f32,
    pub proof_weight: f32,
    pub advanced_maths_weight: f32,
    pub maths_weight: f32,
    /// Added once when more than one maths category matches.
    pub maths_combined_bonus: f32,
    /// Per distinct reasoning marker, up to `reasoning_cap`.
    pub reasoning_weight: f32,
    pub reasoning_cap: f32,
    /// Sequencing words (`then`, `finally`, numbered steps) needed for a multi-step request.
    pub multi_step_min: usize,
    pub multi_step_weight: f32,
    /// User turns for a long / very long conversation, and their weights.
    pub deep_turns: usize,
    pub deep_weight: f32,
    pub very_deep_turns: usize,
    pub very_deep_weight: f32,
    pub markers: Markers,
}

impl Default for RouterRules {
    fn default() -> Self {
        Self {
            standard_at: 2.0,
            premium_at: 5.0,
            long_chars: 2_500,
            long_weight: 2.0,
            very_long_chars: 16_000,
            very_long_weight: 3.0,
            few_tools_weight: 0.5,
            some_tools: 3,
            some_tools_weight: 2.0,
            many_tools: 8,
            many_tools_weight: 3.0,
            code_weight: 2.0,
            code_symbols_min: 2,
            hard_systems_weight: 2.0,
            proof_weight: 5.0,
            advanced_maths_weight: 3.5,
            maths_weight: 2.0,
            maths_combined_bonus: 1.0,
            reasoning_weight: 1.0,
            reasoning_cap: 3.0,
            multi_step_min: 2,
            multi_step_weight: 1.0,
            deep_turns: 6,
            deep_weight: 1.0,
            very_deep_turns: 16,
            very_deep_weight: 2.0,
            markers: Markers::default(),
        }
    }
}

/// A rule set that cannot route sensibly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RulesError {
    #[error("{field}: must be a finite number >= 0")]
    InvalidNumber { field: &'static str },
    #[error("standard_at must not exceed premium_at")]
    ThresholdOrder,
    #[error("{field}: the lower bound must not exceed the upper bound")]
    BoundOrder { field: &'static str },
    #[error("markers.{list}[{index}]: a marker needs at least one letter or digit")]
    EmptyMarker { list: &'static str, index: usize },
}

impl RouterRules {
    /// Checks a configured rule set: finite non-negative numbers, ordered thresholds, no empty
    /// markers (an empty marker would match every text).
    pub fn validate(&self) -> Result<(), RulesError> {
        let numbers = [
            ("standard_at", self.standard_at),
            ("premium_at", self.premium_at),
            ("long_weight", self.long_weight),
            ("very_long_weight", self.very_long_weight),
            ("few_tools_weight", self.few_tools_weight),
            ("some_tools_weight", self.some_tools_weight),
            ("many_tools_weight", self.many_tools_weight),
            ("code_weight", self.code_weight),
            ("hard_systems_weight", self.hard_systems_weight),
            ("proof_weight", self.proof_weight),
            ("advanced_maths_weight", self.advanced_maths_weight),
            ("maths_weight", self.maths_weight),
            ("maths_combined_bonus", self.maths_combined_bonus),
            ("reasoning_weight", self.reasoning_weight),
            ("reasoning_cap", self.reasoning_cap),
            ("multi_step_weight", self.multi_step_weight),
            ("deep_weight", self.deep_weight),
            ("very_deep_weight", self.very_deep_weight),
        ];
        for (field, v) in numbers {
            if !v.is_finite() || v < 0.0 {
                return Err(RulesError::InvalidNumber { field });
            }
        }
        if self.standard_at > self.premium_at {
            return Err(RulesError::ThresholdOrder);
        }
        for (field, lo, hi) in [
            ("long_chars", self.long_chars, self.very_long_chars),
            ("some_tools", self.some_tools, self.many_tools),
            ("deep_turns", self.deep_turns, self.very_deep_turns),
        ] {
            if lo > hi {
                return Err(RulesError::BoundOrder { field });
            }
        }
        let m = &self.markers;
        for (list, words) in [
            ("code", &m.code),
            ("hard_systems", &m.hard_systems),
            ("proof", &m.proof),
            ("advanced_maths", &m.advanced_maths),
            ("maths", &m.maths),
            ("reasoning", &m.reasoning),
        ] {
            if let Some(index) = words.iter().position(|w| normalise(w).trim().is_empty()) {
                return Err(RulesError::EmptyMarker { list, index });
            }
        }
        Ok(())
    }
}

/// Why a model attempt is being retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EscalationReason {
    /// The answer failed validation (schema, tests, a judge).
    InvalidOutput,
    /// The model produced tool calls that could not be parsed or executed.
    BadToolCall,
    /// The model gave up or said it cannot do the task.
    Refusal,
    /// The model reported low confidence, or the user asked for a better answer.
    LowQuality,
    /// The conversation no longer fits the model's context window.
    ContextOverflow,
    /// Rate limit, timeout or provider outage.
    Transient,
}

/// The tier to retry on after a failed attempt at `tier`, or `None` when escalating would not
/// help: at the top tier, or for a transient failure, which a bigger (and slower, pricier)
/// model does not fix: retry the same tier instead.
pub fn escalate(tier: Tier, reason: EscalationReason) -> Option<Tier> {
    match reason {
        EscalationReason::Transient => None,
        EscalationReason::InvalidOutput
        | EscalationReason::BadToolCall
        | EscalationReason::Refusal
        | EscalationReason::LowQuality
        | EscalationReason::ContextOverflow => tier.next(),
    }
}

/// Lower-case, every run of non-alphanumeric characters turned into one space, padded with a
/// space at both ends, so whole-word search is a substring search.
fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push(' ');
    let mut last_space = true;
    for c in text.chars() {
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
            last_space = false;
        } else if !last_space {
            out.push(' ');
            last_space = true;
        }
    }
    if !last_space {
        out.push(' ');
    }
    out
}

/// The markers of `list` found in `normalised` text (see [`Markers`] for the matching rule).
fn found<'a>(normalised: &str, list: &'a [String]) -> Vec<&'a str> {
    list.iter()
        .filter(|marker| {
            let prefix = marker.ends_with('*');
            let body = normalise(marker.trim_end_matches('*'));
            let body = body.trim();
            if body.is_empty() {
                return false;
            }
            let needle = if prefix {
                format!(" {body}")
            } else {
                format!(" {body} ")
            };
            normalised.contains(&needle)
        })
        .map(String::as_str)
        .collect()
}

/// Syntax that appears in code and rarely in prose.
const CODE_SYMBOLS: &[&str] = &[
    "();", "=>", "::", "!=", "==", "&&", "||", "->", "#include", "{}", "</", "/>", "+=", "fn ",
    "def ", "let ", "const ", "return ",
];

/// True when `text` writes an exponent or an equation between terms (`x^2`, `3x + 1 = 0`).
fn has_equation(text: &str) -> bool {
    let b = text.as_bytes();
    let exponent = b.windows(3).any(|w| {
        w[1] == b'^'
            && w[0].is_ascii_alphanumeric()
            && (w[2].is_ascii_alphanumeric() || matches!(w[2], b'(' | b'-'))
    });
    let equality = b.windows(5).any(|w| {
        w[1] == b' '
            && w[2] == b'='
            && w[3] == b' '
            && w[0].is_ascii_alphanumeric()
            && w[4].is_ascii_alphanumeric()
    });
    exponent || equality
}

/// Words that sequence the steps of a request, plus numbered or bulleted lines.
fn step_markers(normalised: &str, raw: &str) -> usize {
    let words = [" then ", " finally ", " afterwards ", " after that "];
    let sequenced: usize = words.iter().map(|w| normalised.matches(w).count()).sum();
    let listed = raw
        .lines()
        .filter(|l| {
            let l = l.trim_start();
            l.starts_with("- ")
                || l.starts_with("* ")
                || l.split_once(['.', ')']).is_some_and(|(n, _)| {
                    !n.is_empty() && n.len() <= 2 && n.bytes().all(|b| b.is_ascii_digit())
                })
        })
        .count();
    sequenced + listed
}

fn list(words: &[&str]) -> String {
    words.join(", ")
}

/// Scores `input` with `rules` and picks a tier. The markers are looked for in the latest user
/// message only: that is the request being routed (earlier turns were routed when they were
/// asked), while the whole conversation counts through its length and depth.
pub fn classify(input: &RouteInput, rules: &RouterRules) -> RouteDecision {
    let mut score = 0.0f32;
    let mut reasons = Vec::new();
    let mut add = |points: f32, why: String| {
        if points > 0.0 {
            score += points;
            reasons.push(format!("+{points:.1} {why}"));
        }
    };

    let total_chars: usize = input.messages.iter().map(|m| m.text.chars().count()).sum();
    if total_chars >= rules.very_long_chars {
        add(
            rules.very_long_weight,
            format!("very long context: {total_chars} chars"),
        );
    } else if total_chars >= rules.long_chars {
        add(
            rules.long_weight,
            format!("long context: {total_chars} chars"),
        );
    }

    let tools = input.tool_count;
    if tools >= rules.many_tools {
        add(rules.many_tools_weight, format!("tools: {tools} offered"));
    } else if tools >= rules.some_tools {
        add(rules.some_tools_weight, format!("tools: {tools} offered"));
    } else if tools > 0 {
        add(rules.few_tools_weight, format!("tools: {tools} offered"));
    }

    let user_turns = input.messages.iter().filter(|m| m.role == "user").count();
    if user_turns >= rules.very_deep_turns {
        add(
            rules.very_deep_weight,
            format!("conversation: {user_turns} user turns"),
        );
    } else if user_turns >= rules.deep_turns {
        add(
            rules.deep_weight,
            format!("conversation: {user_turns} user turns"),
        );
    }

    let request = input
        .messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .map_or("", |m| m.text.as_str());
    let words = normalise(request);
    let m = &rules.markers;

    // Code: any one signal is enough; the reason lists all of them.
    let mut code_signals = Vec::new();
    if request.contains("```") {
        code_signals.push("fenced block".to_owned());
    }
    let symbols: Vec<&str> = CODE_SYMBOLS
        .iter()
        .copied()
        .filter(|s| request.contains(s))
        .collect();
    if symbols.len() >= rules.code_symbols_min.max(1) {
        code_signals.push(format!("syntax {}", list(&symbols)));
    }
    let code_words = found(&words, &m.code);
    if !code_words.is_empty() {
        code_signals.push(list(&code_words));
    }
    if !code_signals.is_empty() {
        add(
            rules.code_weight,
            format!("code: {}", code_signals.join("; ")),
        );
    }
    let hard = found(&words, &m.hard_systems);
    if !hard.is_empty() {
        add(
            rules.hard_systems_weight,
            format!("hard systems topic: {}", list(&hard)),
        );
    }

    // Maths: the strongest category counts, plus a bonus when several combine.
    let proof = found(&words, &m.proof);
    let advanced = found(&words, &m.advanced_maths);
    let mut basic = found(&words, &m.maths);
    if has_equation(request) {
        basic.push("equation syntax");
    }
    let categories = [
        (rules.proof_weight, "proof", &proof),
        (rules.advanced_maths_weight, "advanced maths", &advanced),
        (rules.maths_weight, "basic maths", &basic),
    ];
    let present: Vec<_> = categories.iter().filter(|c| !c.2.is_empty()).collect();
    if let Some(strongest) = present.iter().max_by(|a, b| a.0.total_cmp(&b.0)) {
        add(
            strongest.0,
            format!("{}: {}", strongest.1, list(strongest.2)),
        );
        if present.len() > 1 {
            let others: Vec<&str> = present
                .iter()
                .filter(|c| c.1 != strongest.1)
                .map(|c| c.1)
                .collect();
            add(
                rules.maths_combined_bonus,
                format!("maths combined with {}", list(&others)),
            );
        }
    }

    let reasoning = found(&words, &m.reasoning);
    if !reasoning.is_empty() {
        let points = (rules.reasoning_weight * reasoning.len() as f32).min(rules.reasoning_cap);
        add(points, format!("reasoning: {}", list(&reasoning)));
    }

    let steps = step_markers(&words, request);
    if steps >= rules.multi_step_min.max(1) {
        add(
            rules.multi_step_weight,
            format!("multi-step request: {steps} step markers"),
        );
    }

    let tier = if score >= rules.premium_at {
        Tier::Premium
    } else if score >= rules.standard_at {
        Tier::Standard
    } else {
        Tier::Fast
    };
    RouteDecision {
        tier,
        score,
        reasons,
    }
}

#[cfg(test)]
mod tests;

/// Phrases with which models decline a task they cannot do. Checked at the start of the answer
/// (after leading whitespace), lower-cased, so an answer that merely mentions them is not a
/// decline.
const DECLINE_OPENINGS: [&str; 10] = [
    "i can't help",
    "i cannot help",
    "i can't do",
    "i cannot do",
    "i'm not able to",
    "i am not able to",
    "i'm unable to",
    "i am unable to",
    "sorry, i can't",
    "sorry, i cannot",
];

/// Whether a model's answer declines the task (escalation reason [`EscalationReason::Refusal`]).
pub fn is_decline(answer: &str) -> bool {
    let opening: String = answer
        .trim_start()
        .chars()
        .take(40)
        .flat_map(char::to_lowercase)
        .map(|c| if c == '\u{2019}' { '\'' } else { c })
        .collect();
    DECLINE_OPENINGS.iter().any(|d| opening.starts_with(d))
}

#[cfg(test)]
mod decline_tests {
    use super::is_decline;

    #[test]
    fn declines_are_recognised_only_at_the_start() {
        assert!(is_decline("I can't help with that."));
        assert!(is_decline("  I’m unable to solve this reliably."));
        assert!(is_decline("Sorry, I cannot do that"));
        assert!(!is_decline("Here is how: first, I can't stress enough..."));
        assert!(!is_decline("The answer is 42."));
        assert!(!is_decline(""));
    }
}
