//! Calculator failures. Positions are 1-based character columns in the expression, so the model
//! can point at the offending character.

use crate::codes;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CalcError {
    #[error("the expression is empty")]
    Empty,
    #[error("the expression is {len} characters long; the limit is {max}")]
    TooLong { len: usize, max: usize },
    #[error("nesting deeper than {max} levels at position {position}")]
    TooDeep { position: usize, max: usize },
    /// The text is not a valid expression.
    #[error("{message} at position {position}")]
    Syntax { position: usize, message: String },
    /// The expression is valid but has no finite real value.
    #[error("{message} at position {position}")]
    Math { position: usize, message: String },
}

impl CalcError {
    pub(crate) fn syntax(position: usize, message: impl Into<String>) -> Self {
        Self::Syntax {
            position,
            message: message.into(),
        }
    }

    pub(crate) fn math(position: usize, message: impl Into<String>) -> Self {
        Self::Math {
            position,
            message: message.into(),
        }
    }

    /// The `ToolError` code for this failure.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Math { .. } => codes::MATH_ERROR,
            Self::Empty | Self::TooLong { .. } | Self::TooDeep { .. } | Self::Syntax { .. } => {
                codes::INVALID_EXPRESSION
            }
        }
    }
}
