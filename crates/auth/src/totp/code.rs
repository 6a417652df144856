//! Computing and checking codes (RFC 6238 on top of RFC 4226 HOTP).

use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

/// Digits per code.
pub const DIGITS: usize = 6;

/// Seconds per time step.
pub const STEP_SECS: u64 = 30;

/// RFC 4226 R6: shared secrets must be at least 128 bits. A shorter one is a bug (a
/// truncated or empty column), and we refuse to accept codes for it rather than make 2FA weak.
const MIN_SECRET_BYTES: usize = 16;

/// The code for the time step containing `unix_secs`.
pub fn code_at(secret: &[u8], unix_secs: u64) -> String {
    code_for_step(secret, unix_secs / STEP_SECS)
}

/// Checks a code typed at `unix_secs`, accepting the current step and one step either side
/// (clock drift between phone and server, and the seconds spent typing). Returns the matched
/// step, which the caller stores as the account's `last_used_step`.
///
/// Refused (`None`): anything but exactly six ASCII digits, a secret shorter than 128 bits, and
/// any step at or before `last_used_step`, so an observed code cannot be replayed — not even
/// within its own 30 seconds.
pub fn verify(
    secret: &[u8],
    code: &str,
    unix_secs: u64,
    last_used_step: Option<u64>,
) -> Option<u64> {
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if secret.len() < MIN_SECRET_BYTES {
        return None;
    }
    let current = unix_secs / STEP_SECS;
    let candidates = [
        current.checked_sub(1),
        Some(current),
        current.checked_add(1),
    ];
    let mut matched = None;
    // Every candidate is computed and compared, matching or not, so timing does not tell
    // which step (if any) matched. On the one-in-a-million chance that two steps share a
    // code, the later one wins: it burns more steps for replay purposes.
    for step in candidates.into_iter().flatten() {
        let usable = last_used_step.is_none_or(|last| step > last);
        let equal: bool = code_for_step(secret, step)
            .as_bytes()
            .ct_eq(code.as_bytes())
            .into();
        if equal && usable {
            matched = Some(step);
        }
    }
    matched
}

/// RFC 4226 HOTP with the counter = time step, 6 digits.
fn code_for_step(secret: &[u8], step: u64) -> String {
    // HMAC is defined for keys of any length, so this never fails; the empty string keeps
    // library code panic-free and can never equal a six-digit code.
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    // Dynamic truncation (RFC 4226 §5.3): the low nibble of the last byte picks 4 bytes.
    let offset = usize::from(digest[digest.len() - 1] & 0x0f);
    let word = [
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ];
    let value = u32::from_be_bytes(word) % 1_000_000;
    format!("{value:06}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_SECRET: &[u8] = b"12345678901234567890";

    /// RFC 6238 Appendix B, SHA1 column; the vectors are 8 digits, a 6-digit code is the
    /// same truncated value mod 10^6, i.e. the last six digits.
    const RFC_VECTORS: [(u64, &str); 6] = [
        (59, "94287082"),
        (1_111_111_109, "07081804"),
        (1_111_111_111, "14050471"),
        (1_234_567_890, "89005924"),
        (2_000_000_000, "69279037"),
        (20_000_000_000, "65353130"),
    ];

    #[test]
    fn rfc6238_sha1_vectors() {
        for (t, eight) in RFC_VECTORS {
            assert_eq!(code_at(RFC_SECRET, t), eight[2..], "t={t}");
        }
    }

    #[test]
    fn rfc4226_hotp_vectors() {
        // RFC 4226 Appendix D: same secret, counters 0..=9.
        let expected = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (counter, code) in expected.iter().enumerate() {
            assert_eq!(code_for_step(RFC_SECRET, counter as u64), *code);
        }
    }

    #[test]
    fn rfc_vectors_verify_at_their_time() {
        for (t, eight) in RFC_VECTORS {
            assert_eq!(
                verify(RFC_SECRET, &eight[2..], t, None),
                Some(t / 30),
                "t={t}"
            );
        }
    }

    #[test]
    fn window_is_one_step_either_side() {
        let now: u64 = 1_234_567_890; // step 41152263
        let step = now / 30;
        for (offset, accepted) in [(-2i64, false), (-1, true), (0, true), (1, true), (2, false)] {
            let s = step.checked_add_signed(offset).unwrap();
            let code = code_for_step(RFC_SECRET, s);
            let expect = accepted.then_some(s);
            assert_eq!(
                verify(RFC_SECRET, &code, now, None),
                expect,
                "offset {offset}"
            );
        }
    }

    #[test]
    fn window_edges_follow_step_boundaries() {
        // 30 s after the start of step s, the code of s is one step old: still fine. 60 s
        // after, it is two steps old: refused.
        let start = 1_111_111_080; // start of step 37037036
        let code = code_at(RFC_SECRET, start);
        assert_eq!(
            verify(RFC_SECRET, &code, start + 29, None),
            Some(start / 30)
        );
        assert_eq!(
            verify(RFC_SECRET, &code, start + 59, None),
            Some(start / 30)
        );
        assert_eq!(verify(RFC_SECRET, &code, start + 60, None), None);
        assert_eq!(
            verify(RFC_SECRET, &code, start - 30, None),
            Some(start / 30)
        );
        assert_eq!(verify(RFC_SECRET, &code, start - 31, None), None);
    }

    #[test]
    fn replay_is_refused() {
        let now = 1_234_567_890;
        let code = code_at(RFC_SECRET, now);
        let step = verify(RFC_SECRET, &code, now, None).unwrap();
        // The same code again, even in the same 30 seconds.
        assert_eq!(verify(RFC_SECRET, &code, now, Some(step)), None);
        assert_eq!(verify(RFC_SECRET, &code, now + 15, Some(step)), None);
        // An older code after a newer one was used.
        let previous = code_for_step(RFC_SECRET, step - 1);
        assert_eq!(verify(RFC_SECRET, &previous, now, Some(step)), None);
        // The next step's code is still usable.
        let next = code_for_step(RFC_SECRET, step + 1);
        assert_eq!(verify(RFC_SECRET, &next, now, Some(step)), Some(step + 1));
        // A last-used step before the window does not get in the way.
        assert_eq!(verify(RFC_SECRET, &code, now, Some(step - 5)), Some(step));
    }

    #[test]
    fn only_six_ascii_digits_are_considered() {
        let now = 59;
        assert_eq!(verify(RFC_SECRET, "287082", now, None), Some(1));
        for bad in [
            "",
            "28708",
            "2870820",
            "94287082",
            " 287082",
            "287082 ",
            "287 082",
            "28708a",
            "+287082",
            "２８７０８２",
            "-87082",
        ] {
            assert_eq!(verify(RFC_SECRET, bad, now, None), None, "{bad:?}");
        }
    }

    #[test]
    fn wrong_code_and_wrong_secret_are_refused() {
        let now = 1_234_567_890;
        let code = code_at(RFC_SECRET, now);
        let other_secret = b"09876543210987654321";
        assert_eq!(verify(other_secret, &code, now, None), None);
        // A well-formed code that belongs to none of the three steps in the window.
        let window: Vec<String> = (now / 30 - 1..=now / 30 + 1)
            .map(|s| code_for_step(RFC_SECRET, s))
            .collect();
        let wrong = ["000000", "000001", "000002", "000003"]
            .into_iter()
            .find(|c| !window.iter().any(|w| w == c))
            .unwrap();
        assert_eq!(verify(RFC_SECRET, wrong, now, None), None);
    }

    #[test]
    fn short_secrets_are_refused() {
        let short = &RFC_SECRET[..15];
        let code = code_at(short, 59);
        assert_eq!(verify(short, &code, 59, None), None);
        assert_eq!(verify(&[], &code_at(&[], 59), 59, None), None);
        let sixteen = &RFC_SECRET[..16];
        assert_eq!(verify(sixteen, &code_at(sixteen, 59), 59, None), Some(1));
    }

    #[test]
    fn time_zero_has_no_previous_step() {
        let code = code_at(RFC_SECRET, 0);
        assert_eq!(verify(RFC_SECRET, &code, 0, None), Some(0));
        assert_eq!(
            verify(RFC_SECRET, &code_at(RFC_SECRET, 30), 0, None),
            Some(1)
        );
    }

    #[test]
    fn far_future_does_not_overflow() {
        let code = code_at(RFC_SECRET, u64::MAX);
        assert_eq!(
            verify(RFC_SECRET, &code, u64::MAX, None),
            Some(u64::MAX / 30)
        );
    }
}
