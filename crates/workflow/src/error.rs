//! Definition errors: every problem found, each located.

use std::fmt;

/// One problem in a definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefinitionError {
    /// The node concerned, if any.
    pub node: Option<String>,
    /// Path of the field: relative to the node (`cases[1].when`) when `node` is set, else from
    /// the document root (`spec.start`). Empty when the node as a whole is concerned.
    pub field: String,
    /// 1-based line and column in YAML input; `None` for JSON.
    pub line: Option<u64>,
    pub column: Option<u64>,
    pub message: String,
}

impl fmt::Display for DefinitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
            f.write_str(": ")?;
        }
        if let Some(node) = &self.node {
            write!(f, "node `{node}`: ")?;
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

/// All problems found in a definition, in document order where positions are known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct DefinitionErrors(pub Vec<DefinitionError>);

impl fmt::Display for DefinitionErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} error(s) in workflow definition", self.0.len())?;
        for e in &self.0 {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

impl DefinitionErrors {
    pub fn iter(&self) -> impl Iterator<Item = &DefinitionError> {
        self.0.iter()
    }
}
