//! Splits an expression into tokens, each tagged with its 1-based character position.

use super::error::CalcError;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TokenKind {
    Number(f64),
    Ident(String),
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    /// Both `^` and `**`.
    Power,
    LParen,
    RParen,
    Comma,
    End,
}

impl TokenKind {
    /// How the token reads in an error message.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Number(n) => format!("number {n}"),
            Self::Ident(name) => format!("'{name}'"),
            Self::Plus => "'+'".into(),
            Self::Minus => "'-'".into(),
            Self::Star => "'*'".into(),
            Self::Slash => "'/'".into(),
            Self::Percent => "'%'".into(),
            Self::Power => "'^'".into(),
            Self::LParen => "'('".into(),
            Self::RParen => "')'".into(),
            Self::Comma => "','".into(),
            Self::End => "end of input".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub kind: TokenKind,
    /// 1-based character column.
    pub position: usize,
}

/// Tokenizes `input`. The result always ends with a `TokenKind::End` token so the parser never
/// has to bounds-check.
pub(crate) fn tokenize(input: &str) -> Result<Vec<Token>, CalcError> {
    let chars: Vec<char> = input.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let position = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let (kind, next) = if c.is_ascii_digit() || c == '.' {
            lex_number(&chars, i)?
        } else if c.is_ascii_alphabetic() || c == '_' {
            let end = scan(&chars, i, |c| c.is_ascii_alphanumeric() || c == '_');
            (TokenKind::Ident(chars[i..end].iter().collect()), end)
        } else {
            match (c, chars.get(i + 1)) {
                ('*', Some('*')) => (TokenKind::Power, i + 2),
                ('*', _) => (TokenKind::Star, i + 1),
                ('^', _) => (TokenKind::Power, i + 1),
                ('+', _) => (TokenKind::Plus, i + 1),
                ('-', _) => (TokenKind::Minus, i + 1),
                ('/', _) => (TokenKind::Slash, i + 1),
                ('%', _) => (TokenKind::Percent, i + 1),
                ('(', _) => (TokenKind::LParen, i + 1),
                (')', _) => (TokenKind::RParen, i + 1),
                (',', _) => (TokenKind::Comma, i + 1),
                _ => {
                    return Err(CalcError::syntax(
                        position,
                        format!("unexpected character '{c}'"),
                    ));
                }
            }
        };
        tokens.push(Token { kind, position });
        i = next;
    }
    tokens.push(Token {
        kind: TokenKind::End,
        position: chars.len() + 1,
    });
    Ok(tokens)
}

/// Index of the first char at or after `from` that does not satisfy `pred`.
fn scan(chars: &[char], from: usize, pred: impl Fn(char) -> bool) -> usize {
    let mut i = from;
    while i < chars.len() && pred(chars[i]) {
        i += 1;
    }
    i
}

/// Reads `digits [. digits] [(e|E) [+|-] digits]` (either side of the dot may be empty, not
/// both). An `e` not followed by a digit is left alone, so `2e` reads as `2` then the identifier
/// `e` (which the parser then rejects as trailing input rather than silently multiplying).
fn lex_number(chars: &[char], start: usize) -> Result<(TokenKind, usize), CalcError> {
    let int_end = scan(chars, start, |c| c.is_ascii_digit());
    let mut end = int_end;
    let mut digits = int_end - start;
    if chars.get(end) == Some(&'.') {
        let frac_end = scan(chars, end + 1, |c| c.is_ascii_digit());
        digits += frac_end - (end + 1);
        end = frac_end;
    }
    if digits == 0 {
        return Err(CalcError::syntax(start + 1, "expected a digit after '.'"));
    }
    if matches!(chars.get(end), Some('e' | 'E')) {
        let mut j = end + 1;
        if matches!(chars.get(j), Some('+' | '-')) {
            j += 1;
        }
        if chars.get(j).is_some_and(char::is_ascii_digit) {
            end = scan(chars, j, |c| c.is_ascii_digit());
        }
    }
    let text: String = chars[start..end].iter().collect();
    let value: f64 = text
        .parse()
        .map_err(|_| CalcError::syntax(start + 1, format!("invalid number '{text}'")))?;
    if !value.is_finite() {
        return Err(CalcError::math(
            start + 1,
            format!("number '{text}' is too large"),
        ));
    }
    Ok((TokenKind::Number(value), end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(input: &str) -> Vec<TokenKind> {
        tokenize(input)
            .expect("tokenizes")
            .into_iter()
            .map(|t| t.kind)
            .collect()
    }

    #[test]
    fn numbers_in_all_forms() {
        assert_eq!(
            kinds("1 2.5 .5 3. 1e3 2.5E-2 7e+1"),
            vec![
                TokenKind::Number(1.0),
                TokenKind::Number(2.5),
                TokenKind::Number(0.5),
                TokenKind::Number(3.0),
                TokenKind::Number(1000.0),
                TokenKind::Number(0.025),
                TokenKind::Number(70.0),
                TokenKind::End,
            ]
        );
    }

    #[test]
    fn e_without_exponent_digits_is_an_identifier() {
        assert_eq!(
            kinds("2e"),
            vec![
                TokenKind::Number(2.0),
                TokenKind::Ident("e".into()),
                TokenKind::End
            ]
        );
    }

    #[test]
    fn double_star_is_power() {
        assert_eq!(
            kinds("2**3*4"),
            vec![
                TokenKind::Number(2.0),
                TokenKind::Power,
                TokenKind::Number(3.0),
                TokenKind::Star,
                TokenKind::Number(4.0),
                TokenKind::End
            ]
        );
    }

    #[test]
    fn positions_are_one_based_characters() {
        let tokens = tokenize("π + 1").err();
        assert_eq!(
            tokens,
            Some(CalcError::syntax(1, "unexpected character 'π'"))
        );
        let tokens = tokenize("  12 +x").expect("tokenizes");
        let positions: Vec<usize> = tokens.iter().map(|t| t.position).collect();
        assert_eq!(positions, vec![3, 6, 7, 8]);
    }

    #[test]
    fn lone_dot_and_huge_numbers_are_errors() {
        assert!(matches!(
            tokenize("1 + ."),
            Err(CalcError::Syntax { position: 5, .. })
        ));
        assert!(matches!(
            tokenize("1e999"),
            Err(CalcError::Math { position: 1, .. })
        ));
    }
}
