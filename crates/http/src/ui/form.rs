//! Reading urlencoded form bodies.

use super::page;
use axum::Form;
use axum::extract::{FromRequest, Request};
use axum::response::Response;

/// A form body as its `(name, value)` pairs in order. Checkbox groups repeat a name, which
/// deserializing into a struct cannot express.
pub struct FormPairs(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequest<S> for FormPairs {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        match Form::<Vec<(String, String)>>::from_request(req, state).await {
            Ok(Form(pairs)) => Ok(FormPairs(pairs)),
            Err(rejection) => Err(page::error(
                rejection.status(),
                "Bad request",
                &rejection.body_text(),
            )),
        }
    }
}

impl FormPairs {
    /// The first value named `name`, or `""` (an absent field and an empty one mean the same).
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    /// Every value named `name`, in order.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// An optional id field: empty means none; anything else must parse.
pub fn optional<T: std::str::FromStr>(raw: &str) -> Result<Option<T>, ()> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    raw.parse().map(Some).map_err(|_| ())
}
