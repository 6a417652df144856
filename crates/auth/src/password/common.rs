//! The common-password list (see `data/README.md` for its origin and licence).

use std::collections::HashSet;
use std::sync::LazyLock;

/// One lowercased password per line, most frequent first.
const LIST: &str = include_str!("../../data/common-passwords.txt");

/// Built on first use: a sign-in-only process never pays for it.
static COMMON: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| LIST.lines().filter(|line| !line.is_empty()).collect());

/// Whether `pw`, trimmed and lowercased, is on the list. Trimming and lowercasing only serve
/// this lookup ("Password " is as guessable as "password"); the password itself is stored as
/// typed.
pub(crate) fn is_common(pw: &str) -> bool {
    COMMON.contains(pw.trim().to_lowercase().as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_has_3000_distinct_lowercase_entries() {
        assert_eq!(LIST.lines().count(), 3000);
        assert_eq!(COMMON.len(), 3000);
        for entry in LIST.lines() {
            assert_eq!(entry, entry.to_lowercase(), "not lowercase: {entry:?}");
            assert_eq!(entry, entry.trim(), "surrounding whitespace: {entry:?}");
        }
    }

    #[test]
    fn every_entry_meets_the_length_policy() {
        // Entries the length rules already refuse would waste list slots (ASVS 6.2.4 asks for
        // the top 3000 *that match the policy*).
        for entry in LIST.lines() {
            let n = entry.chars().count();
            assert!((8..=128).contains(&n), "{entry:?} has {n} characters");
        }
    }

    #[test]
    fn lookup_ignores_case_and_surrounding_whitespace() {
        assert!(is_common("password"));
        assert!(is_common("PassWord"));
        assert!(is_common("  password\t"));
        assert!(!is_common("pass word"));
        assert!(!is_common("correct horse battery staple"));
    }
}
