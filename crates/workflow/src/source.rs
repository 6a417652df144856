//! Source positions of a YAML definition, keyed by the path of each value.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use serde_saphyr::Spanned;

/// One step of a path into the document.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Seg {
    Key(String),
    Index(usize),
}

impl From<&str> for Seg {
    fn from(s: &str) -> Self {
        Seg::Key(s.to_owned())
    }
}

impl From<usize> for Seg {
    fn from(i: usize) -> Self {
        Seg::Index(i)
    }
}

/// Renders a path the way authors write it: `cases[1].when`.
pub fn render_path(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }
    out
}

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: u64,
    pub column: u64,
}

/// Where each value of the document starts. Empty for JSON input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceMap {
    /// Where each value starts.
    values: BTreeMap<Vec<Seg>, Position>,
    /// Where the key of each mapping entry is written.
    keys: BTreeMap<Vec<Seg>, Position>,
}

impl SourceMap {
    /// The position of `path`, or of its nearest ancestor that has one (so an error about a
    /// missing field points at the object that lacks it). A mapping entry is located by its
    /// key, which is where the author wrote the field (a block value starts a line later).
    pub fn position(&self, path: &[Seg]) -> Option<Position> {
        (0..=path.len()).rev().find_map(|n| {
            let p = path.get(..n)?;
            self.keys.get(p).or_else(|| self.values.get(p)).copied()
        })
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// A YAML value with the position of every nested value, read straight from serde-saphyr so
/// that `Spanned` sees the YAML deserializer at each level.
enum Tree {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Tree>>),
    Map(Vec<(Spanned<String>, Spanned<Tree>)>),
}

struct TreeVisitor;

impl<'de> Visitor<'de> for TreeVisitor {
    type Value = Tree;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a YAML value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Tree, E> {
        Ok(Tree::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Tree, E> {
        Ok(Tree::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Tree, D::Error> {
        Tree::deserialize(d)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Tree, E> {
        Ok(Tree::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Tree, E> {
        Ok(Tree::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Tree, E> {
        Ok(Tree::UInt(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Tree, E> {
        Ok(Tree::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Tree, E> {
        Ok(Tree::Str(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Tree, E> {
        Ok(Tree::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tree, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Tree>>()? {
            items.push(item);
        }
        Ok(Tree::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tree, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            let value = map.next_value::<Spanned<Tree>>()?;
            entries.push((key, value));
        }
        Ok(Tree::Map(entries))
    }
}

impl<'de> Deserialize<'de> for Tree {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TreeVisitor)
    }
}

/// Why YAML text could not be read at all.
pub(crate) struct YamlError {
    pub message: String,
    pub position: Option<Position>,
}

/// Reads YAML into JSON plus the position of every value.
pub(crate) fn read_yaml(text: &str) -> Result<(Value, SourceMap), YamlError> {
    // YAML 1.2 booleans only: under YAML 1.1 rules a node named `n`, `y`, `no` or `on` would
    // silently become a boolean (`default: n` is a route to node `n`, not `false`).
    let mut options = serde_saphyr::Options::default();
    options.strict_booleans = true;
    let tree: Spanned<Tree> =
        serde_saphyr::from_str_with_options(text, options).map_err(|e| YamlError {
            position: e.location().map(|l| Position {
                line: l.line(),
                column: l.column(),
            }),
            message: e.to_string(),
        })?;
    let mut map = SourceMap::default();
    let mut path = Vec::new();
    let value = convert(tree, &mut path, &mut map);
    Ok((value, map))
}

fn position(l: &serde_saphyr::Location) -> Position {
    Position {
        line: l.line(),
        column: l.column(),
    }
}

fn convert(node: Spanned<Tree>, path: &mut Vec<Seg>, map: &mut SourceMap) -> Value {
    map.values.insert(path.clone(), position(&node.defined));
    match node.value {
        Tree::Null => Value::Null,
        Tree::Bool(b) => Value::Bool(b),
        Tree::Int(i) => Value::from(i),
        Tree::UInt(u) => Value::from(u),
        // JSON has no NaN or infinity; such a number cannot mean anything in a definition.
        Tree::Float(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
        Tree::Str(s) => Value::String(s),
        Tree::Seq(items) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| {
                    path.push(Seg::Index(i));
                    let v = convert(item, path, map);
                    path.pop();
                    v
                })
                .collect(),
        ),
        Tree::Map(entries) => {
            let mut out = Map::new();
            for (k, v) in entries {
                path.push(Seg::Key(k.value.clone()));
                map.keys.insert(path.clone(), position(&k.defined));
                let v = convert(v, path, map);
                path.pop();
                out.insert(k.value, v);
            }
            Value::Object(out)
        }
    }
}
