//! Recursive-descent parser producing an [`Expr`] tree. Grammar, loosest binding first:
//!
//! ```text
//! expr    := term (('+' | '-') term)*
//! term    := unary (('*' | '/' | '%') unary)*
//! unary   := ('+' | '-') unary | power
//! power   := primary (('^' | '**') unary)?      -- right-associative; binds tighter than unary
//! primary := number | constant | function '(' expr (',' expr)* ')' | '(' expr ')'
//! ```
//!
//! So `-2^2` is `-(2^2)` and `2^-1` works, as in mathematics and Python. Parsing and evaluation
//! are separate so a syntax error anywhere is reported before any math error.

use super::error::CalcError;
use super::lexer::{Token, TokenKind};

/// Parentheses, function arguments, unary signs and exponents may nest this deep. It bounds the
/// parser's recursion, so hostile input cannot overflow the stack.
pub const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Pow,
}

impl BinOp {
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            Self::Add => "+",
            Self::Sub => "-",
            Self::Mul => "*",
            Self::Div => "/",
            Self::Rem => "%",
            Self::Pow => "^",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Func {
    Sqrt,
    Abs,
    Ln,
    Log10,
    /// `log(x)` is base 10; `log(x, b)` is base `b`.
    Log,
    Exp,
    Sin,
    Cos,
    Tan,
    Floor,
    Ceil,
    Round,
    Min,
    Max,
}

impl Func {
    fn lookup(name: &str) -> Option<Self> {
        Some(match name {
            "sqrt" => Self::Sqrt,
            "abs" => Self::Abs,
            "ln" => Self::Ln,
            "log10" => Self::Log10,
            "log" => Self::Log,
            "exp" => Self::Exp,
            "sin" => Self::Sin,
            "cos" => Self::Cos,
            "tan" => Self::Tan,
            "floor" => Self::Floor,
            "ceil" => Self::Ceil,
            "round" => Self::Round,
            "min" => Self::Min,
            "max" => Self::Max,
            _ => return None,
        })
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Sqrt => "sqrt",
            Self::Abs => "abs",
            Self::Ln => "ln",
            Self::Log10 => "log10",
            Self::Log => "log",
            Self::Exp => "exp",
            Self::Sin => "sin",
            Self::Cos => "cos",
            Self::Tan => "tan",
            Self::Floor => "floor",
            Self::Ceil => "ceil",
            Self::Round => "round",
            Self::Min => "min",
            Self::Max => "max",
        }
    }

    /// Allowed argument counts (inclusive); `None` means unbounded.
    fn arity(self) -> (usize, Option<usize>) {
        match self {
            Self::Log => (1, Some(2)),
            Self::Min | Self::Max => (1, None),
            _ => (1, Some(1)),
        }
    }
}

fn constant(name: &str) -> Option<f64> {
    match name {
        "pi" => Some(std::f64::consts::PI),
        "e" => Some(std::f64::consts::E),
        _ => None,
    }
}

const KNOWN_NAMES: &str =
    "pi, e, sqrt, abs, ln, log10, log, exp, sin, cos, tan, floor, ceil, round, min, max";

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Num(f64),
    Neg(Box<Expr>),
    Binary {
        op: BinOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
        /// Position of the operator, for math errors.
        position: usize,
    },
    Call {
        func: Func,
        args: Vec<Expr>,
        position: usize,
    },
}

/// Parses a whole token stream; anything left after the expression is an error.
pub(crate) fn parse(tokens: &[Token]) -> Result<Expr, CalcError> {
    if tokens.is_empty() {
        return Err(CalcError::Empty);
    }
    let mut parser = Parser {
        tokens,
        index: 0,
        depth: 0,
    };
    let expr = parser.expr()?;
    let next = parser.peek();
    if next.kind != TokenKind::End {
        return Err(CalcError::syntax(
            next.position,
            format!(
                "unexpected {} after a complete expression",
                next.kind.describe()
            ),
        ));
    }
    Ok(expr)
}

struct Parser<'t> {
    tokens: &'t [Token],
    index: usize,
    depth: usize,
}

impl<'t> Parser<'t> {
    fn peek(&self) -> &'t Token {
        // `parse` refuses an empty slice, the lexer always appends `End`, and `advance` never
        // moves past it, so this index is always in bounds.
        &self.tokens[self.index.min(self.tokens.len().saturating_sub(1))]
    }

    fn advance(&mut self) -> &'t Token {
        let token = self.peek();
        if token.kind != TokenKind::End {
            self.index += 1;
        }
        token
    }

    /// Runs `f` one nesting level deeper, refusing to go past [`MAX_DEPTH`].
    fn nested<T>(
        &mut self,
        position: usize,
        f: impl FnOnce(&mut Self) -> Result<T, CalcError>,
    ) -> Result<T, CalcError> {
        if self.depth >= MAX_DEPTH {
            return Err(CalcError::TooDeep {
                position,
                max: MAX_DEPTH,
            });
        }
        self.depth += 1;
        let result = f(self);
        self.depth -= 1;
        result
    }

    fn expr(&mut self) -> Result<Expr, CalcError> {
        let mut lhs = self.term()?;
        loop {
            let op = match self.peek().kind {
                TokenKind::Plus => BinOp::Add,
                TokenKind::Minus => BinOp::Sub,
                _ => return Ok(lhs),
            };
            let position = self.advance().position;
            let rhs = self.term()?;
            lhs = binary(op, lhs, rhs, position);
        }
    }

    fn term(&mut self) -> Result<Expr, CalcError> {
        let mut lhs = self.unary()?;
        loop {
            let op = match self.peek().kind {
                TokenKind::Star => BinOp::Mul,
                TokenKind::Slash => BinOp::Div,
                TokenKind::Percent => BinOp::Rem,
                _ => return Ok(lhs),
            };
            let position = self.advance().position;
            let rhs = self.unary()?;
            lhs = binary(op, lhs, rhs, position);
        }
    }

    fn unary(&mut self) -> Result<Expr, CalcError> {
        let token = self.peek();
        match token.kind {
            TokenKind::Minus | TokenKind::Plus => {
                self.advance();
                let operand = self.nested(token.position, Self::unary)?;
                Ok(if token.kind == TokenKind::Minus {
                    Expr::Neg(Box::new(operand))
                } else {
                    operand
                })
            }
            _ => self.power(),
        }
    }

    fn power(&mut self) -> Result<Expr, CalcError> {
        let base = self.primary()?;
        if self.peek().kind != TokenKind::Power {
            return Ok(base);
        }
        let position = self.advance().position;
        // The exponent is a `unary`, which recurses back into `power`: that is what makes
        // `2^3^2` mean `2^(3^2)` and allows `2^-1`.
        let exponent = self.nested(position, Self::unary)?;
        Ok(binary(BinOp::Pow, base, exponent, position))
    }

    fn primary(&mut self) -> Result<Expr, CalcError> {
        let token = self.advance();
        match &token.kind {
            TokenKind::Number(value) => Ok(Expr::Num(*value)),
            TokenKind::LParen => {
                let inner = self.nested(token.position, Self::expr)?;
                self.expect_close(token.position)?;
                Ok(inner)
            }
            TokenKind::Ident(name) => self.identifier(name, token.position),
            other => Err(CalcError::syntax(
                token.position,
                format!(
                    "expected a number, '(' or a function, found {}",
                    other.describe()
                ),
            )),
        }
    }

    fn identifier(&mut self, name: &str, position: usize) -> Result<Expr, CalcError> {
        // Case-insensitive so `PI` or `Sqrt` from a model still work.
        let lower = name.to_ascii_lowercase();
        if let Some(func) = Func::lookup(&lower) {
            if self.peek().kind != TokenKind::LParen {
                return Err(CalcError::syntax(
                    position,
                    format!("function '{lower}' must be followed by '(' and its arguments"),
                ));
            }
            let open = self.advance().position;
            let args = self.nested(open, Self::arguments)?;
            self.expect_close(open)?;
            check_arity(func, args.len(), position)?;
            return Ok(Expr::Call {
                func,
                args,
                position,
            });
        }
        if let Some(value) = constant(&lower) {
            return Ok(Expr::Num(value));
        }
        Err(CalcError::syntax(
            position,
            format!("unknown identifier '{name}' (known: {KNOWN_NAMES})"),
        ))
    }

    fn arguments(&mut self) -> Result<Vec<Expr>, CalcError> {
        let mut args = vec![self.expr()?];
        while self.peek().kind == TokenKind::Comma {
            self.advance();
            args.push(self.expr()?);
        }
        Ok(args)
    }

    fn expect_close(&mut self, open_position: usize) -> Result<(), CalcError> {
        let token = self.advance();
        match token.kind {
            TokenKind::RParen => Ok(()),
            TokenKind::End => Err(CalcError::syntax(
                token.position,
                format!("unclosed '(' from position {open_position}: expected ')'"),
            )),
            ref other => Err(CalcError::syntax(
                token.position,
                format!("expected ')' or an operator, found {}", other.describe()),
            )),
        }
    }
}

fn binary(op: BinOp, lhs: Expr, rhs: Expr, position: usize) -> Expr {
    Expr::Binary {
        op,
        lhs: Box::new(lhs),
        rhs: Box::new(rhs),
        position,
    }
}

fn check_arity(func: Func, count: usize, position: usize) -> Result<(), CalcError> {
    let (min, max) = func.arity();
    if count >= min && max.is_none_or(|max| count <= max) {
        return Ok(());
    }
    let expected = match max {
        Some(max) if max == min => format!("{min}"),
        Some(max) => format!("{min} to {max}"),
        None => format!("at least {min}"),
    };
    Err(CalcError::syntax(
        position,
        format!(
            "function '{}' takes {expected} argument(s), got {count}",
            func.name()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::super::lexer::tokenize;
    use super::*;

    fn parse_str(input: &str) -> Result<Expr, CalcError> {
        parse(&tokenize(input)?)
    }

    fn num(v: f64) -> Box<Expr> {
        Box::new(Expr::Num(v))
    }

    #[test]
    fn subtraction_is_left_associative() {
        assert_eq!(
            parse_str("1-2-3"),
            Ok(Expr::Binary {
                op: BinOp::Sub,
                lhs: Box::new(Expr::Binary {
                    op: BinOp::Sub,
                    lhs: num(1.0),
                    rhs: num(2.0),
                    position: 2
                }),
                rhs: num(3.0),
                position: 4
            })
        );
    }

    #[test]
    fn power_is_right_associative() {
        assert_eq!(
            parse_str("2^3**2"),
            Ok(Expr::Binary {
                op: BinOp::Pow,
                lhs: num(2.0),
                rhs: Box::new(Expr::Binary {
                    op: BinOp::Pow,
                    lhs: num(3.0),
                    rhs: num(2.0),
                    position: 4
                }),
                position: 2
            })
        );
    }

    #[test]
    fn unary_minus_binds_looser_than_power() {
        assert_eq!(
            parse_str("-2^2"),
            Ok(Expr::Neg(Box::new(Expr::Binary {
                op: BinOp::Pow,
                lhs: num(2.0),
                rhs: num(2.0),
                position: 3
            })))
        );
    }

    #[test]
    fn errors_name_positions() {
        assert_eq!(
            parse_str("1 + foo"),
            Err(CalcError::syntax(
                5,
                format!("unknown identifier 'foo' (known: {KNOWN_NAMES})")
            ))
        );
        assert!(matches!(
            parse_str("(1 + 2"),
            Err(CalcError::Syntax { position: 7, .. })
        ));
        assert!(matches!(
            parse_str("1 2"),
            Err(CalcError::Syntax { position: 3, .. })
        ));
        assert!(matches!(
            parse_str("1 +"),
            Err(CalcError::Syntax { position: 4, .. })
        ));
        assert!(matches!(
            parse_str("sqrt 4"),
            Err(CalcError::Syntax { position: 1, .. })
        ));
        assert!(matches!(
            parse_str("sqrt(1, 2)"),
            Err(CalcError::Syntax { position: 1, .. })
        ));
        assert!(matches!(
            parse_str("min()"),
            Err(CalcError::Syntax { position: 5, .. })
        ));
    }

    #[test]
    fn nesting_is_bounded() {
        let ok = format!("{}1{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert!(parse_str(&ok).is_ok());
        let deep = format!(
            "{}1{}",
            "(".repeat(MAX_DEPTH + 1),
            ")".repeat(MAX_DEPTH + 1)
        );
        assert_eq!(
            parse_str(&deep),
            Err(CalcError::TooDeep {
                position: MAX_DEPTH + 1,
                max: MAX_DEPTH
            })
        );
        let signs = format!("{}1", "-".repeat(MAX_DEPTH + 1));
        assert!(matches!(parse_str(&signs), Err(CalcError::TooDeep { .. })));
        let calls = format!(
            "{}1{}",
            "abs(".repeat(MAX_DEPTH + 1),
            ")".repeat(MAX_DEPTH + 1)
        );
        assert!(matches!(parse_str(&calls), Err(CalcError::TooDeep { .. })));
    }
}
