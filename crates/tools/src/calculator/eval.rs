//! Evaluates a parsed [`Expr`]. Every intermediate result must be finite: an infinity or NaN is
//! reported at the operator or function that produced it instead of leaking into the answer.

use super::error::CalcError;
use super::parser::{BinOp, Expr, Func};

pub(crate) fn eval(expr: &Expr) -> Result<f64, CalcError> {
    match expr {
        Expr::Num(value) => Ok(*value),
        Expr::Neg(inner) => Ok(-eval(inner)?),
        Expr::Binary {
            op,
            lhs,
            rhs,
            position,
        } => {
            let (a, b) = (eval(lhs)?, eval(rhs)?);
            let value = match op {
                BinOp::Add => a + b,
                BinOp::Sub => a - b,
                BinOp::Mul => a * b,
                BinOp::Div | BinOp::Rem if b == 0.0 => {
                    return Err(CalcError::math(*position, "division by zero"));
                }
                BinOp::Div => a / b,
                BinOp::Rem => a % b,
                BinOp::Pow => a.powf(b),
            };
            finite(value, *position, || format!("'{}'", op.symbol()))
        }
        Expr::Call {
            func,
            args,
            position,
        } => {
            let values = args.iter().map(eval).collect::<Result<Vec<_>, _>>()?;
            let value = call(*func, &values, *position)?;
            finite(value, *position, || format!("{}()", func.name()))
        }
    }
}

fn call(func: Func, args: &[f64], position: usize) -> Result<f64, CalcError> {
    // The parser checked arity; `first` keeps this total anyway.
    let x = args.first().copied().unwrap_or(f64::NAN);
    let positive = |what: &str| {
        if x > 0.0 {
            Ok(x)
        } else {
            Err(CalcError::math(
                position,
                format!("{what} of a non-positive number ({x})"),
            ))
        }
    };
    Ok(match func {
        Func::Sqrt if x < 0.0 => {
            return Err(CalcError::math(
                position,
                format!("square root of a negative number ({x})"),
            ));
        }
        Func::Sqrt => x.sqrt(),
        Func::Abs => x.abs(),
        Func::Ln => positive("logarithm")?.ln(),
        Func::Log10 => positive("logarithm")?.log10(),
        Func::Log => match args.get(1) {
            None => positive("logarithm")?.log10(),
            Some(&base) if base <= 0.0 || base == 1.0 => {
                return Err(CalcError::math(
                    position,
                    format!("logarithm base must be positive and not 1 (got {base})"),
                ));
            }
            Some(&base) => positive("logarithm")?.log(base),
        },
        Func::Exp => x.exp(),
        Func::Sin => x.sin(),
        Func::Cos => x.cos(),
        Func::Tan => x.tan(),
        Func::Floor => x.floor(),
        Func::Ceil => x.ceil(),
        Func::Round => x.round(),
        Func::Min => args.iter().copied().fold(f64::INFINITY, f64::min),
        Func::Max => args.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    })
}

fn finite(value: f64, position: usize, what: impl FnOnce() -> String) -> Result<f64, CalcError> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(CalcError::math(
            position,
            format!("the result of {} is not a finite number", what()),
        ))
    }
}
