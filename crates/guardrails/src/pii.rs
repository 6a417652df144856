//! PII and secret detection with checksum validation, and redaction.

use std::net::Ipv6Addr;
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// The kinds of personal data and secrets [`find_pii`] reports.
///
/// Serialized in snake_case (`payment_card`, `ip_address`, …); the short names used in policy
/// files and event rules (`card`, `ip`) are accepted as aliases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiKind {
    Email,
    Phone,
    /// Payment card number (13–19 digits, known issuer prefix and length, Luhn-valid).
    #[serde(alias = "card")]
    PaymentCard,
    /// IBAN with a known country length and a valid mod-97 checksum.
    Iban,
    /// US social security number `NNN-NN-NNNN` (invalid area/group/serial excluded).
    Ssn,
    /// IPv4 or IPv6 address.
    #[serde(alias = "ip")]
    IpAddress,
    /// API key, token or private key: well-known prefixes and high-entropy tokens.
    Secret,
}

impl PiiKind {
    /// Every kind, for `redact(text, PiiKind::ALL)`.
    pub const ALL: &'static [PiiKind] = &[
        PiiKind::Email,
        PiiKind::Phone,
        PiiKind::PaymentCard,
        PiiKind::Iban,
        PiiKind::Ssn,
        PiiKind::IpAddress,
        PiiKind::Secret,
    ];

    /// The upper-case label used in redaction markers (`[REDACTED:EMAIL]`).
    pub fn label(self) -> &'static str {
        match self {
            PiiKind::Email => "EMAIL",
            PiiKind::Phone => "PHONE",
            PiiKind::PaymentCard => "CARD",
            PiiKind::Iban => "IBAN",
            PiiKind::Ssn => "SSN",
            PiiKind::IpAddress => "IP",
            PiiKind::Secret => "SECRET",
        }
    }

    /// The short lower-case name used in guardrail event rules (`pii.card`, `pii.ip`).
    pub fn short_name(self) -> &'static str {
        match self {
            PiiKind::Email => "email",
            PiiKind::Phone => "phone",
            PiiKind::PaymentCard => "card",
            PiiKind::Iban => "iban",
            PiiKind::Ssn => "ssn",
            PiiKind::IpAddress => "ip",
            PiiKind::Secret => "secret",
        }
    }

    /// Which finding wins when two of them overlap with the same length (higher wins).
    fn priority(self) -> u8 {
        match self {
            PiiKind::Secret => 7,
            PiiKind::PaymentCard => 6,
            PiiKind::Iban => 5,
            PiiKind::Ssn => 4,
            PiiKind::Email => 3,
            PiiKind::IpAddress => 2,
            PiiKind::Phone => 1,
        }
    }
}

/// One detected span: `text[start..end]` (byte offsets, on char boundaries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: PiiKind,
    pub start: usize,
    pub end: usize,
}

impl Finding {
    fn len(&self) -> usize {
        self.end - self.start
    }
}

/// Builds a compile-time-constant pattern once; a pattern that fails to compile disables its
/// detector instead of panicking.
fn build(pattern: &str) -> Option<Regex> {
    Regex::new(pattern).ok()
}

static EMAIL: LazyLock<Option<Regex>> = LazyLock::new(|| {
    build(
        r"(?i)[a-z0-9._%+\-]+@[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?)*\.[a-z]{2,24}",
    )
});
static PHONE_INTL: LazyLock<Option<Regex>> =
    LazyLock::new(|| build(r"\+[1-9][0-9]{0,3}(?:[ .\-]?(?:\([0-9]{1,4}\)|[0-9]{1,5})){1,7}"));
static PHONE_US: LazyLock<Option<Regex>> =
    LazyLock::new(|| build(r"\(?[2-9][0-9]{2}\)?[ .\-]?[2-9][0-9]{2}[ .\-][0-9]{4}"));
static CARD: LazyLock<Option<Regex>> = LazyLock::new(|| build(r"[0-9](?:[ \-]?[0-9]){11,22}"));
static IBAN: LazyLock<Option<Regex>> =
    LazyLock::new(|| build(r"[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){10,34}"));
static SSN: LazyLock<Option<Regex>> = LazyLock::new(|| build(r"[0-9]{3}-[0-9]{2}-[0-9]{4}"));
static IPV4: LazyLock<Option<Regex>> =
    LazyLock::new(|| build(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}"));
static IPV6: LazyLock<Option<Regex>> = LazyLock::new(|| build(r"[0-9A-Fa-f:.]{2,45}"));
static SECRET_PREFIX: LazyLock<Option<Regex>> = LazyLock::new(|| {
    build(concat!(
        r"-----BEGIN[A-Z ]{0,24} PRIVATE KEY-----|(?-u:\b)(?:",
        r"sk-ant-[A-Za-z0-9_\-]{20,}",
        r"|sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}",
        r"|gh[pousr]_[A-Za-z0-9]{30,}",
        r"|github_pat_[A-Za-z0-9_]{30,}",
        r"|xox[baprs]-[A-Za-z0-9\-]{10,}",
        r"|(?:AKIA|ASIA)[0-9A-Z]{16}",
        r"|AIza[0-9A-Za-z_\-]{35}",
        r"|glpat-[0-9A-Za-z_\-]{20,}",
        r"|agt_[0-9A-Za-z_\-]{16,}",
        r"|(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{16,}",
        r"|npm_[A-Za-z0-9]{36}",
        r"|hf_[A-Za-z0-9]{30,}",
        r"|eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",
        r")"
    ))
});
static TOKEN: LazyLock<Option<Regex>> = LazyLock::new(|| build(r"[A-Za-z0-9+/_\-]{24,}={0,2}"));

/// Finds every email, phone number, payment card, IBAN, SSN, IP address and secret in `text`.
///
/// Overlapping candidates are resolved in favour of the longer span (then the more specific
/// kind); the result is sorted by `start` and non-overlapping.
pub fn find_pii(text: &str) -> Vec<Finding> {
    find_kinds(text, PiiKind::ALL)
}

/// Replaces every finding of one of `kinds` with `[REDACTED:<LABEL>]` (see [`PiiKind::label`]).
/// Pass [`PiiKind::ALL`] to redact everything.
pub fn redact(text: &str, kinds: &[PiiKind]) -> String {
    redact_findings(text, &find_kinds(text, kinds))
}

/// Replaces each of `findings` (sorted, non-overlapping, as [`find_kinds`] returns them) with its
/// redaction marker. Shared with the policy layer so there is one marker format.
pub(crate) fn redact_findings(text: &str, findings: &[Finding]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    for f in findings {
        if f.start < pos {
            continue;
        }
        out.push_str(text.get(pos..f.start).unwrap_or_default());
        out.push_str("[REDACTED:");
        out.push_str(f.kind.label());
        out.push(']');
        pos = f.end;
    }
    out.push_str(text.get(pos..).unwrap_or_default());
    out
}

/// Findings of `kinds` only, overlaps resolved among them.
pub(crate) fn find_kinds(text: &str, kinds: &[PiiKind]) -> Vec<Finding> {
    let mut all = Vec::new();
    for &kind in kinds {
        let before = all.len();
        match kind {
            PiiKind::Email => emails(text, &mut all),
            PiiKind::Phone => phones(text, &mut all),
            PiiKind::PaymentCard => cards(text, &mut all),
            PiiKind::Iban => ibans(text, &mut all),
            PiiKind::Ssn => ssns(text, &mut all),
            PiiKind::IpAddress => ips(text, &mut all),
            PiiKind::Secret => secrets(text, &mut all),
        }
        // Spans are built from ASCII-only patterns, but be defensive about char boundaries.
        let mut i = before;
        while i < all.len() {
            let f = all[i];
            if text.is_char_boundary(f.start) && text.is_char_boundary(f.end) && f.start < f.end {
                i += 1;
            } else {
                all.swap_remove(i);
            }
        }
    }
    resolve_overlaps(all)
}

fn resolve_overlaps(mut all: Vec<Finding>) -> Vec<Finding> {
    all.sort_by_key(|f| (f.start, std::cmp::Reverse(f.len())));
    let mut kept: Vec<Finding> = Vec::with_capacity(all.len());
    for f in all {
        match kept.last_mut() {
            Some(last) if f.start < last.end => {
                let better = f.len() > last.len()
                    || (f.len() == last.len() && f.kind.priority() > last.kind.priority());
                if better {
                    *last = f;
                }
            }
            _ => kept.push(f),
        }
    }
    kept
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn byte_before(text: &str, i: usize) -> Option<u8> {
    i.checked_sub(1)
        .and_then(|j| text.as_bytes().get(j).copied())
}

fn byte_at(text: &str, i: usize) -> Option<u8> {
    text.as_bytes().get(i).copied()
}

fn is_word(b: Option<u8>) -> bool {
    b.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn is_digit(b: Option<u8>) -> bool {
    b.is_some_and(|b| b.is_ascii_digit())
}

/// True when the byte at `end` continues a number: a digit or word char, or a `.`/`-`
/// immediately followed by a digit (`1.2.3`, `123-456`).
fn continues_number(text: &str, end: usize) -> bool {
    let next = byte_at(text, end);
    is_word(next) || (matches!(next, Some(b'.' | b'-' | b'/')) && is_digit(byte_at(text, end + 1)))
}

/// True when the byte before `start` glues the match to a preceding token.
fn glued_before(text: &str, start: usize) -> bool {
    let prev = byte_before(text, start);
    is_word(prev)
        || (matches!(prev, Some(b'.' | b'-' | b'/' | b'+' | b'#'))
            && (start < 2 || is_word(byte_before(text, start - 1)) || prev == Some(b'#')))
}

#[cfg(test)]
fn digits_of(s: &str) -> Vec<u8> {
    s.bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b - b'0')
        .collect()
}

/// Luhn checksum over decimal digits (each 0..=9).
pub(crate) fn luhn_valid(digits: &[u8]) -> bool {
    if digits.len() < 2 {
        return false;
    }
    let mut sum = 0u32;
    for (i, &d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d);
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

/// Known issuer prefix and a length that issuer uses.
fn card_issuer_ok(digits: &[u8]) -> bool {
    let n = digits.len();
    let prefix = |k: usize| -> u32 {
        digits
            .iter()
            .take(k)
            .fold(0u32, |acc, &d| acc * 10 + u32::from(d))
    };
    let p1 = prefix(1);
    let p2 = prefix(2);
    let p3 = prefix(3);
    let p4 = prefix(4);
    match p1 {
        4 => matches!(n, 13 | 16 | 19),
        5 => (51..=55).contains(&p2) && n == 16,
        2 => (2221..=2720).contains(&p4) && n == 16,
        3 => {
            ((p2 == 34 || p2 == 37) && n == 15)
                || ((3528..=3589).contains(&p4) && (16..=19).contains(&n))
                || (((300..=305).contains(&p3) || p2 == 36 || p2 == 38 || p2 == 39)
                    && (14..=19).contains(&n))
        }
        6 => {
            ((p4 == 6011 || p2 == 65 || (644..=649).contains(&p3)) && (n == 16 || n == 19))
                || (p2 == 62 && (16..=19).contains(&n))
        }
        _ => false,
    }
}

/// Shannon entropy of `s` in bits per character.
pub fn shannon_entropy(s: &str) -> f64 {
    let mut counts = [0u32; 256];
    let mut total = 0u32;
    for b in s.bytes() {
        counts[usize::from(b)] += 1;
        total += 1;
    }
    if total == 0 {
        return 0.0;
    }
    let total = f64::from(total);
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / total;
            -p * p.log2()
        })
        .sum()
}

// ---------------------------------------------------------------------------------------------
// Detectors

const FILE_EXTENSIONS: &[&str] = &[
    "png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "ico", "js", "ts", "css", "tsx", "jsx",
];

fn emails(text: &str, out: &mut Vec<Finding>) {
    let Some(re) = EMAIL.as_ref() else { return };
    for m in re.find_iter(text) {
        let s = m.as_str();
        let (local, domain) = s.split_once('@').unwrap_or((s, ""));
        let tld = domain.rsplit('.').next().unwrap_or_default();
        if local.starts_with('.')
            || local.ends_with('.')
            || local.contains("..")
            || FILE_EXTENSIONS.contains(&tld.to_ascii_lowercase().as_str())
            || is_word(byte_at(text, m.end()))
            || matches!(byte_at(text, m.end()), Some(b'@'))
        {
            continue;
        }
        out.push(Finding {
            kind: PiiKind::Email,
            start: m.start(),
            end: m.end(),
        });
    }
}

fn phones(text: &str, out: &mut Vec<Finding>) {
    if let Some(re) = PHONE_INTL.as_ref() {
        for m in re.find_iter(text) {
            let s = m.as_str();
            let n = s.bytes().filter(u8::is_ascii_digit).count();
            if !(8..=15).contains(&n)
                || is_word(byte_before(text, m.start()))
                || continues_number(text, m.end())
                || s.matches('(').count() != s.matches(')').count()
            {
                continue;
            }
            out.push(Finding {
                kind: PiiKind::Phone,
                start: m.start(),
                end: m.end(),
            });
        }
    }
    if let Some(re) = PHONE_US.as_ref() {
        for m in re.find_iter(text) {
            let s = m.as_str();
            let open = s.starts_with('(');
            let close = s.get(..5).is_some_and(|p| p.contains(')'));
            if open != close || glued_before(text, m.start()) || continues_number(text, m.end()) {
                continue;
            }
            out.push(Finding {
                kind: PiiKind::Phone,
                start: m.start(),
                end: m.end(),
            });
        }
    }
}

fn cards(text: &str, out: &mut Vec<Finding>) {
    let Some(re) = CARD.as_ref() else { return };
    for m in re.find_iter(text) {
        if glued_before(text, m.start()) {
            continue;
        }
        let s = m.as_str();
        let bytes = s.as_bytes();
        // Candidate ends: after a digit that is followed by a separator or the end of the run.
        // The longest valid one wins (the regex is greedy and may run into a following number).
        let mut best: Option<usize> = None;
        let mut digits: Vec<u8> = Vec::with_capacity(24);
        for (i, &b) in bytes.iter().enumerate() {
            if !b.is_ascii_digit() {
                continue;
            }
            digits.push(b - b'0');
            let at_end = i + 1 == bytes.len();
            let before_sep = matches!(bytes.get(i + 1), Some(b' ' | b'-'));
            if !(at_end || before_sep) || !(13..=19).contains(&digits.len()) {
                continue;
            }
            let end = m.start() + i + 1;
            if at_end && continues_number(text, end) {
                continue;
            }
            if card_issuer_ok(&digits) && luhn_valid(&digits) {
                best = Some(end);
            }
        }
        if let Some(end) = best {
            out.push(Finding {
                kind: PiiKind::PaymentCard,
                start: m.start(),
                end,
            });
        }
    }
}

/// IBAN length per country (ISO 13616 registry).
fn iban_length(country: &str) -> Option<usize> {
    Some(match country {
        "NO" => 15,
        "BE" => 16,
        "DK" | "FI" | "FO" | "GL" | "NL" => 18,
        "MK" | "SI" => 19,
        "AT" | "BA" | "EE" | "KZ" | "LT" | "LU" | "XK" => 20,
        "CH" | "HR" | "LI" | "LV" => 21,
        "BG" | "BH" | "CR" | "DE" | "GB" | "GE" | "IE" | "ME" | "RS" => 22,
        "AE" | "GI" | "IL" => 23,
        "AD" | "CZ" | "ES" | "MD" | "PK" | "RO" | "SA" | "SE" | "SK" | "TN" | "VG" => 24,
        "PT" => 25,
        "IS" | "TR" => 26,
        "FR" | "GR" | "IT" | "MC" | "MR" | "SM" => 27,
        "AL" | "AZ" | "CY" | "DO" | "GT" | "HU" | "LB" | "PL" => 28,
        "BR" | "EG" | "PS" | "QA" | "UA" => 29,
        "JO" | "KW" | "MU" => 30,
        "MT" => 31,
        _ => return None,
    })
}

/// ISO 7064 mod-97-10 check of a compact, upper-case IBAN.
pub(crate) fn iban_valid(compact: &str) -> bool {
    let b = compact.as_bytes();
    if b.len() < 15 || !b.iter().all(u8::is_ascii_alphanumeric) {
        return false;
    }
    if b.len() != compact.get(..2).and_then(iban_length).unwrap_or(0) {
        return false;
    }
    let rearranged = b[4..].iter().chain(&b[..4]);
    let mut rem: u32 = 0;
    for &c in rearranged {
        let v = if c.is_ascii_digit() {
            u32::from(c - b'0')
        } else if c.is_ascii_uppercase() {
            u32::from(c - b'A') + 10
        } else {
            return false;
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

fn ibans(text: &str, out: &mut Vec<Finding>) {
    let Some(re) = IBAN.as_ref() else { return };
    for m in re.find_iter(text) {
        if is_word(byte_before(text, m.start())) {
            continue;
        }
        let s = m.as_str();
        let Some(len) = s.get(..2).and_then(iban_length) else {
            continue;
        };
        let mut compact = String::with_capacity(len);
        let mut end = None;
        for (i, c) in s.char_indices() {
            if c == ' ' {
                continue;
            }
            compact.push(c);
            if compact.len() == len {
                end = Some(m.start() + i + c.len_utf8());
                break;
            }
        }
        let Some(end) = end else { continue };
        if is_word(byte_at(text, end)) || !iban_valid(&compact) {
            continue;
        }
        out.push(Finding {
            kind: PiiKind::Iban,
            start: m.start(),
            end,
        });
    }
}

/// `NNN-NN-NNNN` with area not 000/666/9xx, group not 00, serial not 0000.
pub(crate) fn ssn_valid(s: &str) -> bool {
    let mut parts = s.split('-');
    let (Some(area), Some(group), Some(serial), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    area.len() == 3
        && group.len() == 2
        && serial.len() == 4
        && area != "000"
        && area != "666"
        && !area.starts_with('9')
        && group != "00"
        && serial != "0000"
}

fn ssns(text: &str, out: &mut Vec<Finding>) {
    let Some(re) = SSN.as_ref() else { return };
    for m in re.find_iter(text) {
        let prev = byte_before(text, m.start());
        if is_word(prev) || matches!(prev, Some(b'-' | b'.' | b'/' | b'+')) {
            continue;
        }
        if continues_number(text, m.end()) || matches!(byte_at(text, m.end()), Some(b'-')) {
            continue;
        }
        if ssn_valid(m.as_str()) {
            out.push(Finding {
                kind: PiiKind::Ssn,
                start: m.start(),
                end: m.end(),
            });
        }
    }
}

/// Words before a dotted quad that make it a version or section number, not an address.
const NUMBERED_CONTEXT: &[&str] = &[
    "version", "section", "chapter", "clause", "step", "figure", "table", "rule", "oid", "\u{a7}",
];

fn ips(text: &str, out: &mut Vec<Finding>) {
    if let Some(re) = IPV4.as_ref() {
        for m in re.find_iter(text) {
            let prev = byte_before(text, m.start());
            if is_word(prev) || matches!(prev, Some(b'.')) || continues_number(text, m.end()) {
                continue;
            }
            let octets_ok = m.as_str().split('.').all(|o| {
                o.parse::<u16>().is_ok_and(|v| v <= 255) && (o == "0" || !o.starts_with('0'))
            });
            let mut from = m.start().saturating_sub(12);
            while !text.is_char_boundary(from) {
                from += 1;
            }
            let lead = text
                .get(from..m.start())
                .unwrap_or_default()
                .to_ascii_lowercase();
            if !octets_ok || NUMBERED_CONTEXT.iter().any(|w| lead.contains(w)) {
                continue;
            }
            out.push(Finding {
                kind: PiiKind::IpAddress,
                start: m.start(),
                end: m.end(),
            });
        }
    }
    if let Some(re) = IPV6.as_ref() {
        for m in re.find_iter(text) {
            let s = m.as_str();
            if s.matches(':').count() < 2 || is_word(byte_before(text, m.start())) {
                continue;
            }
            if is_word(byte_at(text, m.end())) {
                continue;
            }
            let trimmed = s.trim_end_matches('.');
            let candidate = if trimmed.parse::<Ipv6Addr>().is_ok() {
                Some(trimmed)
            } else {
                trimmed
                    .strip_suffix(':')
                    .filter(|t| t.parse::<Ipv6Addr>().is_ok())
            };
            let Some(addr) = candidate else { continue };
            let groups = addr.split(':').filter(|g| !g.is_empty()).count();
            let has_digit = addr.bytes().any(|b| b.is_ascii_digit());
            let hex_digits = addr.bytes().filter(u8::is_ascii_hexdigit).count();
            if hex_digits < 3 || !(groups >= 3 || has_digit) {
                continue;
            }
            out.push(Finding {
                kind: PiiKind::IpAddress,
                start: m.start(),
                end: m.start() + addr.len(),
            });
        }
    }
}

const SECRET_CONTEXT: &[&str] = &[
    "key",
    "token",
    "secret",
    "password",
    "passwd",
    "pwd",
    "bearer",
    "auth",
    "credential",
    "api",
];

fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn secrets(text: &str, out: &mut Vec<Finding>) {
    if let Some(re) = SECRET_PREFIX.as_ref() {
        // Position after which no private-key END marker exists; keeps the scan linear when
        // there are many BEGIN headers without an END.
        let mut no_end_from: Option<usize> = None;
        for m in re.find_iter(text) {
            // `sk-learn-...`, `my-sk-...`: part of a hyphenated word, and real keys have digits.
            if let Some(rest) = m.as_str().strip_prefix("sk-")
                && (matches!(
                    byte_before(text, m.start()),
                    Some(b'-' | b'_' | b'.' | b'/')
                ) || !rest.bytes().any(|b| b.is_ascii_digit()))
            {
                continue;
            }
            let mut end = m.end();
            if m.as_str().starts_with("-----BEGIN") && no_end_from.is_none_or(|p| m.end() < p) {
                let rest = text.get(m.end()..).unwrap_or_default();
                match rest.find("-----END") {
                    Some(i) => {
                        let after = m.end() + i + "-----END".len();
                        let close = text
                            .get(after..)
                            .and_then(|r| r.find("-----"))
                            .map_or(after, |j| after + j + 5);
                        end = close;
                    }
                    None => no_end_from = Some(m.end()),
                }
            }
            out.push(Finding {
                kind: PiiKind::Secret,
                start: m.start(),
                end,
            });
        }
    }
    let Some(re) = TOKEN.as_ref() else { return };
    for m in re.find_iter(text) {
        let s = m.as_str();
        if is_word(byte_before(text, m.start())) {
            continue;
        }
        if is_high_entropy_secret(text, m.start(), s) {
            out.push(Finding {
                kind: PiiKind::Secret,
                start: m.start(),
                end: m.end(),
            });
        }
    }
}

fn is_high_entropy_secret(text: &str, start: usize, token: &str) -> bool {
    let body = token.trim_end_matches('=');
    if body.len() < 24 || is_uuid(body) {
        return false;
    }
    let hexish = body.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    if hexish {
        // Hex strings are mostly hashes, commit ids and UUIDs: only a secret when the text
        // right before names it as one.
        let hex_digits = body.bytes().filter(u8::is_ascii_hexdigit).count();
        let mut from = start.saturating_sub(40);
        while !text.is_char_boundary(from) {
            from += 1;
        }
        let lead = text
            .get(from..start)
            .unwrap_or_default()
            .to_ascii_lowercase();
        return hex_digits >= 32
            && shannon_entropy(body) >= 3.0
            && SECRET_CONTEXT.iter().any(|w| lead.contains(w));
    }
    let upper = body.bytes().filter(u8::is_ascii_uppercase).count();
    let lower = body.bytes().filter(u8::is_ascii_lowercase).count();
    let digit = body.bytes().filter(u8::is_ascii_digit).count();
    if upper == 0 || lower == 0 || digit == 0 {
        return false;
    }
    // Random tokens switch between character classes often; identifiers and words rarely do.
    let class = |b: u8| -> u8 {
        if b.is_ascii_uppercase() {
            0
        } else if b.is_ascii_lowercase() {
            1
        } else if b.is_ascii_digit() {
            2
        } else {
            3
        }
    };
    let bytes = body.as_bytes();
    let switches = bytes
        .windows(2)
        .filter(|w| class(w[0]) != class(w[1]))
        .count();
    let switch_ratio = switches as f64 / (bytes.len() - 1) as f64;
    let threshold = 0.8 * (bytes.len().min(64) as f64).log2();
    switch_ratio >= 0.3 && shannon_entropy(body) >= threshold
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<PiiKind> {
        find_pii(text).into_iter().map(|f| f.kind).collect()
    }

    #[test]
    fn luhn() {
        assert!(luhn_valid(&digits_of("4111 1111 1111 1111")));
        assert!(luhn_valid(&digits_of("378282246310005")));
        assert!(luhn_valid(&digits_of("5555555555554444")));
        assert!(!luhn_valid(&digits_of("4111 1111 1111 1112")));
        assert!(!luhn_valid(&digits_of("1234567812345678")));
        assert!(!luhn_valid(&[]));
    }

    #[test]
    fn cards_detected_only_when_valid() {
        assert_eq!(
            kinds("card 4111 1111 1111 1111 ok"),
            vec![PiiKind::PaymentCard]
        );
        assert_eq!(kinds("amex 3782-822463-10005."), vec![PiiKind::PaymentCard]);
        assert_eq!(kinds("mc 5555555555554444"), vec![PiiKind::PaymentCard]);
        assert!(kinds("card 4111 1111 1111 1112").is_empty());
        // Luhn-valid but no issuer uses prefix 1.
        assert!(kinds("ts 1000000000009").is_empty());
        // Glued into a longer token.
        assert!(kinds("id X4111111111111111").is_empty());
        // A trailing number after the card does not hide it.
        let f = find_pii("4111 1111 1111 1111 2024");
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].end, "4111 1111 1111 1111".len());
    }

    #[test]
    fn iban() {
        assert!(iban_valid("DE89370400440532013000"));
        assert!(iban_valid("GB82WEST12345698765432"));
        assert!(iban_valid("NL91ABNA0417164300"));
        assert!(!iban_valid("DE89370400440532013001"));
        assert!(!iban_valid("GB82WEST12345698765431"));
        assert!(!iban_valid("ZZ82WEST12345698765432"));
        assert!(!iban_valid("DE8937040044053201300"));
        assert_eq!(
            kinds("pay to DE89 3704 0044 0532 0130 00 EUR"),
            vec![PiiKind::Iban]
        );
        assert!(kinds("pay to DE89 3704 0044 0532 0130 01").is_empty());
    }

    #[test]
    fn ssn_exclusions() {
        assert!(ssn_valid("123-45-6789"));
        assert!(!ssn_valid("000-45-6789"));
        assert!(!ssn_valid("666-45-6789"));
        assert!(!ssn_valid("912-45-6789"));
        assert!(!ssn_valid("123-00-6789"));
        assert!(!ssn_valid("123-45-0000"));
        assert_eq!(kinds("ssn 123-45-6789."), vec![PiiKind::Ssn]);
        assert!(kinds("ssn 666-45-6789").is_empty());
        assert!(kinds("part 1123-45-6789").is_empty());
    }

    #[test]
    fn phones_emails_ips() {
        assert_eq!(kinds("call +44 20 7946 0958"), vec![PiiKind::Phone]);
        assert_eq!(kinds("call (415) 555-0132 now"), vec![PiiKind::Phone]);
        assert_eq!(
            kinds("mail jane.doe+x@example.co.uk."),
            vec![PiiKind::Email]
        );
        assert_eq!(kinds("from 192.168.1.20 port"), vec![PiiKind::IpAddress]);
        assert_eq!(
            kinds("host 2001:db8::8a2e:370:7334"),
            vec![PiiKind::IpAddress]
        );
        assert!(kinds("released 2024-03-15, version 1.2.3").is_empty());
        assert!(kinds("version 10.0.0.1 shipped").is_empty());
        assert!(kinds("retina logo@2x.png").is_empty());
        assert!(kinds("at 12:30:45 the job ran").is_empty());
    }

    #[test]
    fn secrets() {
        assert_eq!(
            kinds("key sk-proj-AbCdEf0123456789GhIjKlMn"),
            vec![PiiKind::Secret]
        );
        assert_eq!(kinds("AKIAIOSFODNN7EXAMPLE"), vec![PiiKind::Secret]);
        assert_eq!(
            kinds("token=Zx9Qw2Lm8Rt4Vb6Np1Kd3Hs7Fg5Jc0Ya"),
            vec![PiiKind::Secret]
        );
        // Commit ids and UUIDs are not secrets.
        assert!(kinds("commit 3f2a9c1d7b8e4f60a1b2c3d4e5f60718293a4b5c").is_empty());
        assert!(kinds("request 550e8400-e29b-41d4-a716-446655440000").is_empty());
        assert!(kinds("getUserAccountSettingsByIdentifier2").is_empty());
        // The task- prefix must not look like sk-.
        assert!(kinds("see task-abcdefghijklmnopqrstuvwxyz for details").is_empty());
        let pem = "x -----BEGIN RSA PRIVATE KEY-----\nMIIabc\n-----END RSA PRIVATE KEY----- y";
        assert_eq!(redact(pem, PiiKind::ALL), "x [REDACTED:SECRET] y");
    }

    #[test]
    fn redaction_output() {
        let text = "Mail bob@example.com or call +1 415 555 0132; SSN 123-45-6789.";
        assert_eq!(
            redact(text, PiiKind::ALL),
            "Mail [REDACTED:EMAIL] or call [REDACTED:PHONE]; SSN [REDACTED:SSN]."
        );
        assert_eq!(
            redact(text, &[PiiKind::Email]),
            "Mail [REDACTED:EMAIL] or call +1 415 555 0132; SSN 123-45-6789."
        );
        assert_eq!(redact(text, &[]), text);
        assert_eq!(redact("héllo wörld", PiiKind::ALL), "héllo wörld");
    }

    #[test]
    fn entropy() {
        assert!(shannon_entropy("") == 0.0);
        assert!(shannon_entropy("aaaa") == 0.0);
        assert!((shannon_entropy("ab") - 1.0).abs() < 1e-9);
    }
}
