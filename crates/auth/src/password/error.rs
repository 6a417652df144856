//! The one error type of the password module.

/// Why a password was refused or could not be hashed.
///
/// Policy variants carry messages meant for the person choosing the password; [`code`] gives a
/// stable machine-readable identifier for API bodies and translations.
///
/// [`code`]: PasswordError::code
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error(
        "Password is too short: use at least {min} characters (it has {actual}). A few unrelated words together make a long password that is easy to remember."
    )]
    TooShort { min: usize, actual: usize },
    #[error("Password is too long: use at most {max} characters (it has {actual}).")]
    TooLong { max: usize, actual: usize },
    #[error(
        "This password is one of the most commonly used passwords, so it is among the first an attacker tries. Choose a different one."
    )]
    TooCommon,
    #[error("the operating system's random number generator failed")]
    Random,
    #[error("password hashing failed: {0}")]
    Hash(String),
}

impl PasswordError {
    /// Stable identifier of the variant; never changes once published.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooShort { .. } => "password_too_short",
            Self::TooLong { .. } => "password_too_long",
            Self::TooCommon => "password_too_common",
            Self::Random => "random_unavailable",
            Self::Hash(_) => "password_hash_failed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable() {
        let cases = [
            (
                PasswordError::TooShort { min: 8, actual: 3 },
                "password_too_short",
            ),
            (
                PasswordError::TooLong {
                    max: 128,
                    actual: 129,
                },
                "password_too_long",
            ),
            (PasswordError::TooCommon, "password_too_common"),
            (PasswordError::Random, "random_unavailable"),
            (PasswordError::Hash("x".into()), "password_hash_failed"),
        ];
        for (err, code) in cases {
            assert_eq!(err.code(), code);
        }
    }

    #[test]
    fn messages_tell_the_person_what_to_do() {
        let short = PasswordError::TooShort { min: 8, actual: 3 }.to_string();
        assert!(short.contains("at least 8 characters"), "{short}");
        assert!(short.contains("it has 3"), "{short}");
        let long = PasswordError::TooLong {
            max: 128,
            actual: 200,
        }
        .to_string();
        assert!(long.contains("at most 128 characters"), "{long}");
        assert!(long.contains("it has 200"), "{long}");
        assert!(
            PasswordError::TooCommon
                .to_string()
                .contains("Choose a different one")
        );
    }
}
