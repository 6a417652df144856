//! argon2id password storage as PHC strings (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`).
//!
//! Parameters are argon2's defaults (the OWASP-recommended m=19 MiB, t=2, p=1). They are
//! written into every PHC string, so raising them later still verifies older hashes.

use argon2::Argon2;
use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, Salt, SaltString};

use super::PasswordError;

/// A hash made with the same parameters as [`hash`] (checked by a test) of a random password
/// that was then discarded. [`verify_dummy`] verifies against it so that a sign-in for an
/// unknown account costs one argon2 run, like a sign-in for a known one.
const DUMMY_PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$YWdlbnRyeS1kdW1teS1wdw$MmhRa7ZIvI3yJNEXosQspe0Ve+nUxCqQvmnXtp++g3Q";

/// Hashes `pw` with argon2id and a fresh random 128-bit salt.
///
/// Does not apply the policy: call [`super::check_policy`] first when a person chooses a
/// password.
pub fn hash(pw: &str) -> Result<String, PasswordError> {
    // Filled with `try_fill_bytes` rather than `SaltString::generate`, which panics if the
    // operating system's generator fails; here that failure becomes an error value.
    let mut salt = [0u8; Salt::RECOMMENDED_LENGTH];
    OsRng
        .try_fill_bytes(&mut salt)
        .map_err(|_| PasswordError::Random)?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| PasswordError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(pw.as_bytes(), &salt)
        .map(|phc| phc.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether `pw` matches the stored PHC string. A malformed PHC string is a non-match: the
/// caller treats it like a wrong password, and the comparison inside argon2 is constant-time.
///
/// The password is compared exactly as received — no trimming or case folding (ASVS V6.2.8).
pub fn verify(pw: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    // `verify_password` uses the algorithm and parameters recorded in the PHC string, not
    // those of this `Argon2` value.
    Argon2::default()
        .verify_password(pw.as_bytes(), &parsed)
        .is_ok()
}

/// Spends the time of one [`verify`] and discards the result. Call it when the account does
/// not exist (or has no password), so the response time does not reveal which emails are
/// registered.
pub fn verify_dummy(pw: &str) {
    // `black_box` keeps the optimiser from discarding a computation whose result is unused.
    std::hint::black_box(verify(pw, DUMMY_PHC));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify() {
        let phc = hash("violet tractor sings").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$"), "{phc}");
        assert!(verify("violet tractor sings", &phc));
        assert!(!verify("violet tractor sing", &phc));
        // Exactly as received: no trimming, no case folding.
        assert!(!verify("violet tractor sings ", &phc));
        assert!(!verify("Violet tractor sings", &phc));
    }

    #[test]
    fn salts_are_random() {
        let a = hash("same password twice").unwrap();
        let b = hash("same password twice").unwrap();
        assert_ne!(a, b);
        assert!(verify("same password twice", &a));
        assert!(verify("same password twice", &b));
    }

    #[test]
    fn hashes_with_other_parameters_still_verify() {
        // Parameters come from the PHC string, so raising ours later keeps old hashes valid.
        let params = argon2::Params::new(1024, 1, 1, None).unwrap();
        let weak = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let phc = weak
            .hash_password(b"older password", &salt)
            .unwrap()
            .to_string();
        assert!(phc.contains("m=1024,t=1,p=1"), "{phc}");
        assert!(verify("older password", &phc));
        assert!(!verify("older passwort", &phc));
    }

    #[test]
    fn malformed_phc_is_a_non_match() {
        assert!(!verify("anything", ""));
        assert!(!verify("anything", "not a phc string"));
        assert!(!verify(
            "anything",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$"
        ));
    }

    #[test]
    fn verify_dummy_does_the_work_of_a_real_verify() {
        // Equal parameters are checked exactly below; this only catches a dummy that skips
        // the work (a no-op is ~10^5 times faster), so the bound is loose enough for a busy
        // machine.
        let phc = hash("correct horse").unwrap();
        let started = std::time::Instant::now();
        assert!(!verify("wrong horse", &phc));
        let real = started.elapsed();
        let started = std::time::Instant::now();
        verify_dummy("wrong horse");
        let dummy = started.elapsed();
        assert!(dummy * 10 >= real, "dummy {dummy:?} vs real {real:?}");
    }

    #[test]
    fn dummy_hash_has_the_parameters_of_real_hashes() {
        // If argon2's defaults change, a real verify and a dummy verify would take different
        // times and the dummy would stop hiding which accounts exist.
        let real = hash("whatever it is").unwrap();
        let real = PasswordHash::new(&real).unwrap();
        let dummy = PasswordHash::new(DUMMY_PHC).unwrap();
        assert_eq!(dummy.algorithm, real.algorithm);
        assert_eq!(dummy.version, real.version);
        assert_eq!(dummy.params, real.params);
        assert_eq!(
            dummy.salt.map(|s| s.len()),
            real.salt.map(|s| s.len()),
            "salt length"
        );
        assert_eq!(dummy.hash.map(|h| h.len()), real.hash.map(|h| h.len()));
        // And it is a well-formed hash argon2 accepts (a wrong password, not a parse error).
        let err = Argon2::default()
            .verify_password(b"guess", &dummy)
            .unwrap_err();
        assert_eq!(err, argon2::password_hash::Error::Password);
    }
}
