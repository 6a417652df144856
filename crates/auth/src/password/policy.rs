//! The rules a new password must meet (OWASP ASVS 5.0 V6.2): a length range and no common
//! passwords — deliberately no composition rules (V6.2.5).

use super::PasswordError;
use super::common::is_common;

/// Minimum length in characters (V6.2.1).
pub const MIN_CHARS: usize = 8;

/// Maximum length in characters. V6.2.9 requires accepting at least 64; the cap bounds the
/// work an attacker can make us do per hash and leaves room for passphrases.
pub const MAX_CHARS: usize = 128;

/// Checks a password someone is choosing (registration, change, reset). Not for sign-in: an
/// existing password is verified as it is, whatever today's policy says.
///
/// Length counts Unicode scalar values, so "pässwörd" is 8 characters, not 10 bytes.
pub fn check_policy(pw: &str) -> Result<(), PasswordError> {
    let actual = pw.chars().count();
    if actual < MIN_CHARS {
        return Err(PasswordError::TooShort {
            min: MIN_CHARS,
            actual,
        });
    }
    if actual > MAX_CHARS {
        return Err(PasswordError::TooLong {
            max: MAX_CHARS,
            actual,
        });
    }
    if is_common(pw) {
        return Err(PasswordError::TooCommon);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_passwords_are_refused() {
        for pw in [
            "password",
            "12345678",
            "qwertyuiop",
            "PASSWORD",
            " Password1 ",
        ] {
            assert_eq!(check_policy(pw), Err(PasswordError::TooCommon), "{pw:?}");
        }
    }

    #[test]
    fn a_long_random_passphrase_is_accepted() {
        assert_eq!(
            check_policy("violet tractor sings under the quiet moon"),
            Ok(())
        );
        assert_eq!(check_policy("x7#Kq9!vRm2$"), Ok(()));
    }

    #[test]
    fn no_composition_rules() {
        // All lowercase letters, all digits, all spaces-and-letters: only length and
        // commonness matter.
        assert_eq!(check_policy("zqxwvjkpmhgt"), Ok(()));
        assert_eq!(check_policy("80417263950"), Ok(()));
    }

    #[test]
    fn boundaries() {
        assert_eq!(
            check_policy("abcdefg"),
            Err(PasswordError::TooShort { min: 8, actual: 7 })
        );
        assert_eq!(check_policy("zqxwvjkp"), Ok(()));
        assert_eq!(check_policy(&"k".repeat(64)), Ok(()));
        assert_eq!(check_policy(&"k".repeat(128)), Ok(()));
        assert_eq!(
            check_policy(&"k".repeat(129)),
            Err(PasswordError::TooLong {
                max: 128,
                actual: 129
            })
        );
        assert_eq!(
            check_policy(""),
            Err(PasswordError::TooShort { min: 8, actual: 0 })
        );
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        // 7 characters but 14+ bytes: still too short.
        let seven = "ääääääü";
        assert!(seven.len() > 8);
        assert_eq!(
            check_policy(seven),
            Err(PasswordError::TooShort { min: 8, actual: 7 })
        );
        // 8 characters of 4 bytes each.
        assert_eq!(check_policy("🔑🔒🔓🗝🚪🏠🌙⭐"), Ok(()));
        // 128 two-byte characters (256 bytes) are within the limit; 129 are not.
        assert_eq!(check_policy(&"é".repeat(128)), Ok(()));
        assert_eq!(
            check_policy(&"é".repeat(129)),
            Err(PasswordError::TooLong {
                max: 128,
                actual: 129
            })
        );
    }

    #[test]
    fn length_is_checked_before_commonness() {
        // "123456" is common but the person's first problem is its length.
        assert_eq!(
            check_policy("123456"),
            Err(PasswordError::TooShort { min: 8, actual: 6 })
        );
    }
}
