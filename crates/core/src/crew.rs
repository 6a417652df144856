//! Multi-agent definitions: a crew (a manager delegating to member agents, or members run in
//! sequence) and a network (a router picking the member that answers each message). Member
//! existence is checked by the service that knows the workspace's agents.

use crate::agent::{AgentSpec, FieldError, is_valid_slug};
use serde::{Deserialize, Serialize};

pub const DEFAULT_MAX_DEPTH: u32 = 3;
/// Bounds the chain of runs one request can start (each level holds a worker task).
pub const MAX_MAX_DEPTH: u32 = 5;
pub const DEFAULT_MAX_DELEGATIONS: u32 = 10;
pub const MAX_MAX_DELEGATIONS: u32 = 100;
pub const MAX_MEMBERS: usize = 20;
/// Provider tool names are `[a-zA-Z0-9_-]{1,64}`.
const MAX_TOOL_NAME: usize = 64;
const DELEGATE_PREFIX: &str = "delegate_to_";
/// The one tool a network's router is offered.
pub const ROUTE_TOOL: &str = "route_to";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrewProcess {
    /// The manager's model decides whom to delegate to, through `delegate_to_<member>` tools.
    #[default]
    Hierarchical,
    /// The members run in order, each on the previous one's output; no manager model call.
    Sequential,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrewSpec {
    pub members: Vec<String>,
    #[serde(default)]
    pub process: CrewProcess,
    /// How deep a chain of delegations may go (the top run is depth 0).
    #[serde(default = "default_max_depth")]
    pub max_depth: u32,
    /// How many delegations one run of the manager may make.
    #[serde(default = "default_max_delegations")]
    pub max_delegations: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    pub members: Vec<String>,
}

fn default_max_depth() -> u32 {
    DEFAULT_MAX_DEPTH
}

fn default_max_delegations() -> u32 {
    DEFAULT_MAX_DELEGATIONS
}

/// The tool a hierarchical manager calls to delegate to `slug`. Slugs are already in the
/// provider charset; a long one is shortened with a hash suffix so distinct slugs keep distinct
/// names.
pub fn delegate_tool_name(slug: &str) -> String {
    let full = format!("{DELEGATE_PREFIX}{slug}");
    if full.len() <= MAX_TOOL_NAME {
        return full;
    }
    // FNV-1a: stable across releases (tool names are journaled), no dependency needed.
    let hash = slug.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let keep = MAX_TOOL_NAME - 9;
    format!("{}_{:08x}", &full[..keep], hash as u32)
}

impl AgentSpec {
    /// The members this agent starts child runs of (crew or network), if any.
    pub fn members(&self) -> &[String] {
        match (&self.crew, &self.network) {
            (Some(c), _) => &c.members,
            (None, Some(n)) => &n.members,
            (None, None) => &[],
        }
    }

    /// The hierarchical crew member a tool call names, if it is a delegation tool.
    pub fn delegate_for_tool(&self, tool: &str) -> Option<&str> {
        let crew = self.crew.as_ref()?;
        if crew.process != CrewProcess::Hierarchical {
            return None;
        }
        crew.members
            .iter()
            .find(|m| delegate_tool_name(m) == tool)
            .map(String::as_str)
    }
}

/// Shape checks of `crew` / `network` (part of [`AgentSpec::validate_shape`]).
pub(crate) fn validate_shape(spec: &AgentSpec) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if spec.crew.is_some() && spec.network.is_some() {
        errors.push(FieldError::new(
            "network",
            "an agent is either a crew manager or a network router, not both",
        ));
    }
    if let Some(crew) = &spec.crew {
        check_members(spec, "crew.members", &crew.members, &mut errors);
        if crew.max_depth == 0 || crew.max_depth > MAX_MAX_DEPTH {
            errors.push(FieldError::new(
                "crew.max_depth",
                format!("must be between 1 and {MAX_MAX_DEPTH}"),
            ));
        }
        if crew.max_delegations == 0 || crew.max_delegations > MAX_MAX_DELEGATIONS {
            errors.push(FieldError::new(
                "crew.max_delegations",
                format!("must be between 1 and {MAX_MAX_DELEGATIONS}"),
            ));
        }
        if crew.process == CrewProcess::Hierarchical {
            for member in &crew.members {
                let name = delegate_tool_name(member);
                if spec.tools.contains(&name) {
                    errors.push(FieldError::new(
                        "tools",
                        format!("'{name}' is the delegation tool of crew member '{member}'"),
                    ));
                }
            }
        }
    }
    if let Some(network) = &spec.network {
        check_members(spec, "network.members", &network.members, &mut errors);
    }
    errors
}

fn check_members(spec: &AgentSpec, field: &str, members: &[String], errors: &mut Vec<FieldError>) {
    if members.is_empty() || members.len() > MAX_MEMBERS {
        errors.push(FieldError::new(
            field,
            format!("must list 1 to {MAX_MEMBERS} agent slugs"),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, member) in members.iter().enumerate() {
        if !is_valid_slug(member) {
            errors.push(FieldError::new(
                format!("{field}[{i}]"),
                "is not a valid agent slug",
            ));
        } else if member == &spec.slug {
            errors.push(FieldError::new(
                format!("{field}[{i}]"),
                "an agent cannot be its own member",
            ));
        } else if !seen.insert(member) {
            errors.push(FieldError::new(
                format!("{field}[{i}]"),
                format!("'{member}' is listed twice"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(crew: Option<CrewSpec>, network: Option<NetworkSpec>) -> AgentSpec {
        AgentSpec {
            slug: "boss".into(),
            name: "Boss".into(),
            model: "p/m".into(),
            max_steps: 5,
            crew,
            network,
            ..Default::default()
        }
    }

    fn crew(members: &[&str]) -> CrewSpec {
        CrewSpec {
            members: members.iter().map(|m| m.to_string()).collect(),
            process: CrewProcess::Hierarchical,
            max_depth: DEFAULT_MAX_DEPTH,
            max_delegations: DEFAULT_MAX_DELEGATIONS,
        }
    }

    #[test]
    fn stored_specs_without_crew_still_load_and_defaults_apply() {
        let s: AgentSpec = serde_json::from_value(
            serde_json::json!({"slug": "a", "name": "A", "instructions": "", "model": "p/m"}),
        )
        .unwrap_or_default();
        assert_eq!(s.crew, None);
        let c: CrewSpec = serde_json::from_value(serde_json::json!({"members": ["x"]}))
            .unwrap_or_else(|_| crew(&[]));
        assert_eq!(c.process, CrewProcess::Hierarchical);
        assert_eq!((c.max_depth, c.max_delegations), (3, 10));
    }

    #[test]
    fn members_are_checked() {
        let s = spec(Some(crew(&["boss", "a", "a", "Bad!"])), None);
        let fields: Vec<String> = validate_shape(&s).into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            ["crew.members[0]", "crew.members[2]", "crew.members[3]"]
        );
        let both = spec(
            Some(crew(&["a"])),
            Some(NetworkSpec {
                members: vec!["b".into()],
            }),
        );
        assert_eq!(validate_shape(&both)[0].field, "network");
        let mut deep = crew(&["a"]);
        deep.max_depth = 6;
        assert_eq!(
            validate_shape(&spec(Some(deep), None))[0].field,
            "crew.max_depth"
        );
    }

    #[test]
    fn tool_names_fit_the_provider_charset() {
        assert_eq!(delegate_tool_name("researcher"), "delegate_to_researcher");
        let long_a = delegate_tool_name(&"a".repeat(64));
        let long_b = delegate_tool_name(&format!("{}b", "a".repeat(63)));
        assert_eq!(long_a.len(), 64);
        assert_ne!(long_a, long_b);
        let s = spec(Some(crew(&["researcher"])), None);
        assert_eq!(
            s.delegate_for_tool("delegate_to_researcher"),
            Some("researcher")
        );
        assert_eq!(s.delegate_for_tool("calculator"), None);
    }
}
