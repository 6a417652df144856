//! Prices and costs. Money is integer: prices are micro-USD per million tokens, costs pico-USD
//! (1e-12 USD), so `tokens × price` is exact and the ledger sums without rounding.
//!
//! Where a price comes from, first match wins: the org's override for this provider, the org's
//! override for every provider, the built-in catalogue (matched by the provider's API host and
//! the exact model name). A model without a price costs `None`: recorded as unknown, never
//! guessed.

use agentry_core::chat::Usage;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use std::sync::OnceLock;

/// Per-million-token prices in micro-USD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Price {
    pub input: i64,
    pub output: i64,
    /// Cached prompt tokens; the input price when the provider has no discount.
    pub cache_read: Option<i64>,
    /// Tokens written to the prompt cache; the input price when not set.
    pub cache_write: Option<i64>,
}

impl Price {
    /// The exact cost of a call in pico-USD.
    pub fn cost_pico(&self, usage: &Usage) -> i64 {
        let t = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        t(usage.uncached_input_tokens()).saturating_mul(self.input)
            + t(usage.cache_read_tokens).saturating_mul(self.cache_read.unwrap_or(self.input))
            + t(usage.cache_write_tokens).saturating_mul(self.cache_write.unwrap_or(self.input))
            + t(usage.output_tokens).saturating_mul(self.output)
    }
}

/// Where a price was found (shown in traces and the prices API).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PriceSource {
    OrgProvider,
    Org,
    Catalogue,
}

impl PriceSource {
    pub fn as_str(self) -> &'static str {
        match self {
            PriceSource::OrgProvider => "org_provider",
            PriceSource::Org => "org",
            PriceSource::Catalogue => "catalogue",
        }
    }
}

/// Parses a USD amount per million tokens ("0.075", "3", 2.5) into micro-USD, exactly: at most
/// six decimals, not negative.
pub fn parse_usd_micro(text: &str) -> Option<i64> {
    let text = text.trim();
    if text.is_empty() || text.starts_with('-') || text.starts_with('+') {
        return None;
    }
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() && frac.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 6
        || whole.len() > 9
    {
        return None;
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut frac_digits = frac.to_string();
    while frac_digits.len() < 6 {
        frac_digits.push('0');
    }
    let frac: i64 = frac_digits.parse().ok()?;
    Some(whole * 1_000_000 + frac)
}

/// Formats micro-USD (per million tokens) as a decimal USD string without trailing zeros.
pub fn format_micro(micro: i64) -> String {
    trim_decimal(format!("{}.{:06}", micro / 1_000_000, micro % 1_000_000))
}

/// Formats pico-USD as a decimal USD string, exactly (up to 12 decimals, trailing zeros cut).
pub fn format_pico(pico: i64) -> String {
    let sign = if pico < 0 { "-" } else { "" };
    let p = pico.unsigned_abs();
    trim_decimal(format!(
        "{sign}{}.{:012}",
        p / 1_000_000_000_000,
        p % 1_000_000_000_000
    ))
}

fn trim_decimal(s: String) -> String {
    let t = s.trim_end_matches('0').trim_end_matches('.');
    t.to_string()
}

/// Parses a USD amount into pico-USD (budgets), at most 12 decimals.
pub fn parse_usd_pico(text: &str) -> Option<i64> {
    let text = text.trim();
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 12
        || whole.len() > 6
    {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let mut f = frac.to_string();
    while f.len() < 12 {
        f.push('0');
    }
    Some(whole * 1_000_000_000_000 + f.parse::<i64>().ok()?)
}

#[derive(Debug, Deserialize)]
struct CatalogueFile {
    prices: Vec<CatalogueLine>,
}

#[derive(Debug, Deserialize)]
struct CatalogueLine {
    host: String,
    models: Vec<String>,
    input: String,
    output: String,
    #[serde(default)]
    cache_read: Option<String>,
    #[serde(default)]
    cache_write: Option<String>,
    effective_from: NaiveDate,
}

/// One line of the built-in catalogue, parsed.
#[derive(Debug, Clone)]
pub struct CatalogueEntry {
    pub host: String,
    pub model: String,
    pub price: Price,
    pub effective_from: DateTime<Utc>,
}

/// The built-in catalogue, shipped in the binary. A malformed line is a build-time bug caught
/// by the unit test below; at run time it is skipped, never guessed.
pub fn catalogue() -> &'static [CatalogueEntry] {
    static CATALOGUE: OnceLock<Vec<CatalogueEntry>> = OnceLock::new();
    CATALOGUE.get_or_init(|| parse_catalogue(include_str!("../data/prices.json")))
}

fn parse_catalogue(text: &str) -> Vec<CatalogueEntry> {
    let Ok(file) = serde_json::from_str::<CatalogueFile>(text) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for line in file.prices {
        let (Some(input), Some(output)) =
            (parse_usd_micro(&line.input), parse_usd_micro(&line.output))
        else {
            continue;
        };
        let price = Price {
            input,
            output,
            cache_read: line.cache_read.as_deref().and_then(parse_usd_micro),
            cache_write: line.cache_write.as_deref().and_then(parse_usd_micro),
        };
        let Some(from) = line.effective_from.and_hms_opt(0, 0, 0) else {
            continue;
        };
        for model in line.models {
            out.push(CatalogueEntry {
                host: line.host.clone(),
                model,
                price,
                effective_from: from.and_utc(),
            });
        }
    }
    out
}

/// The host of a provider's base URL (what the catalogue is keyed by).
pub fn api_host(base_url: &str) -> Option<String> {
    url::Url::parse(base_url)
        .ok()
        .and_then(|u| u.host_str().map(|h| h.to_ascii_lowercase()))
}

/// The catalogue price in effect at `at` for a model served from `host`.
pub fn catalogue_price(host: &str, model: &str, at: DateTime<Utc>) -> Option<Price> {
    catalogue()
        .iter()
        .filter(|e| e.host == host && e.model == model && e.effective_from <= at)
        .max_by_key(|e| e.effective_from)
        .map(|e| e.price)
}

/// The override in effect among an org's rows for one model: provider-specific first.
pub fn override_price(
    rows: &[agentry_store::prices::PriceRow],
    provider: &str,
    at: DateTime<Utc>,
) -> Option<(Price, PriceSource)> {
    let pick = |want_provider: &str| {
        rows.iter()
            .filter(|r| r.provider == want_provider && r.effective_from <= at)
            .max_by_key(|r| r.effective_from)
            .map(|r| Price {
                input: r.input_micro,
                output: r.output_micro,
                cache_read: r.cache_read_micro,
                cache_write: r.cache_write_micro,
            })
    };
    pick(provider)
        .map(|p| (p, PriceSource::OrgProvider))
        .or_else(|| pick("").map(|p| (p, PriceSource::Org)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_catalogue_parses_completely() {
        let file: CatalogueFile =
            serde_json::from_str(include_str!("../data/prices.json")).expect("valid JSON");
        let lines: usize = file.prices.iter().map(|l| l.models.len()).sum();
        assert_eq!(catalogue().len(), lines, "every line has valid prices");
        assert!(catalogue_price("api.openai.com", "gpt-4.1-mini", Utc::now()).is_some());
        assert!(catalogue_price("api.openai.com", "gpt-4.1-mini-typo", Utc::now()).is_none());
        assert!(catalogue_price("example.com", "gpt-4.1-mini", Utc::now()).is_none());
    }

    #[test]
    fn usd_amounts_parse_exactly() {
        assert_eq!(parse_usd_micro("0.075"), Some(75_000));
        assert_eq!(parse_usd_micro("3"), Some(3_000_000));
        assert_eq!(parse_usd_micro("15.000001"), Some(15_000_001));
        assert_eq!(parse_usd_micro(".5"), Some(500_000));
        for bad in ["", "-1", "1.0000001", "abc", "1e3", "1.2.3", "."] {
            assert_eq!(parse_usd_micro(bad), None, "{bad}");
        }
        assert_eq!(parse_usd_pico("0.5"), Some(500_000_000_000));
        assert_eq!(format_pico(1_234_500_000), "0.0012345");
        assert_eq!(format_pico(0), "0");
        assert_eq!(format_pico(3_000_000_000_000), "3");
        assert_eq!(format_micro(75_000), "0.075");
    }

    #[test]
    fn costs_are_exact_per_token_kind() {
        let price = Price {
            input: 3_000_000,
            output: 15_000_000,
            cache_read: Some(300_000),
            cache_write: Some(3_750_000),
        };
        let usage = Usage {
            input_tokens: 1_000 + 200 + 100,
            output_tokens: 50,
            cache_read_tokens: 200,
            cache_write_tokens: 100,
        };
        // 1000 × 3 + 200 × 0.3 + 100 × 3.75 + 50 × 15 micro-USD per million tokens.
        let expected = 1_000 * 3_000_000 + 200 * 300_000 + 100 * 3_750_000 + 50 * 15_000_000;
        assert_eq!(price.cost_pico(&usage), expected);
        assert_eq!(format_pico(expected), "0.004185");
    }
}
