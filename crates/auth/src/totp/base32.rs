//! RFC 4648 base32 (the alphabet authenticator apps use for TOTP secrets).

const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// Encodes without `=` padding, as the `otpauth://` secret parameter expects.
pub fn encode_base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer: u16 = 0;
    let mut bits: u32 = 0;
    for &byte in bytes {
        buffer = (buffer << 8) | u16::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[usize::from((buffer >> bits) & 0x1f)]));
        }
        // Only the low `bits` (< 5) bits are still needed; dropping the rest keeps the
        // shift above from overflowing.
        buffer &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(
            ALPHABET[usize::from((buffer << (5 - bits)) & 0x1f)],
        ));
    }
    out
}

/// Decodes what a person may have typed or pasted: case-insensitive, with spaces, hyphens and
/// trailing `=` padding ignored. `None` for any other character or a length no byte string
/// encodes to.
pub fn decode_base32(text: &str) -> Option<Vec<u8>> {
    let cleaned = text
        .trim_end_matches(|c: char| c == '=' || c.is_whitespace())
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-');
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let mut buffer: u16 = 0;
    let mut bits: u32 = 0;
    let mut symbols = 0usize;
    for c in cleaned {
        let value = symbol_value(c)?;
        symbols += 1;
        buffer = (buffer << 5) | u16::from(value);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            // Truncation intended: the low 8 bits above `bits` are the next byte.
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    // A final group of 1, 3 or 6 symbols cannot come from whole bytes.
    if matches!(symbols % 8, 1 | 3 | 6) {
        return None;
    }
    Some(out)
}

fn symbol_value(c: char) -> Option<u8> {
    match c.to_ascii_uppercase() {
        // `as u8` cannot truncate: both ranges are ASCII.
        c @ 'A'..='Z' => Some(c as u8 - b'A'),
        c @ '2'..='7' => Some(c as u8 - b'2' + 26),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4648 §10, with the padding the RFC shows.
    const VECTORS: [(&str, &str); 7] = [
        ("", ""),
        ("f", "MY======"),
        ("fo", "MZXQ===="),
        ("foo", "MZXW6==="),
        ("foob", "MZXW6YQ="),
        ("fooba", "MZXW6YTB"),
        ("foobar", "MZXW6YTBOI======"),
    ];

    #[test]
    fn rfc4648_encode_without_padding() {
        for (plain, encoded) in VECTORS {
            assert_eq!(
                encode_base32(plain.as_bytes()),
                encoded.trim_end_matches('=')
            );
        }
    }

    #[test]
    fn rfc4648_decode_with_and_without_padding() {
        for (plain, encoded) in VECTORS {
            assert_eq!(
                decode_base32(encoded).unwrap(),
                plain.as_bytes(),
                "{encoded}"
            );
            let bare = encoded.trim_end_matches('=');
            assert_eq!(decode_base32(bare).unwrap(), plain.as_bytes(), "{bare}");
        }
    }

    #[test]
    fn decode_tolerates_what_people_type() {
        let expected = b"foobar".to_vec();
        for typed in [
            "mzxw6ytboi",
            "MzXw6YtBoI",
            "MZXW 6YTB OI",
            "mzxw-6ytb-oi",
            "  MZXW6YTBOI  ",
            "mzxw6ytboi======",
            "MZXW6YTBOI = = ",
        ] {
            assert_eq!(decode_base32(typed), Some(expected.clone()), "{typed:?}");
        }
    }

    #[test]
    fn decode_refuses_garbage() {
        for bad in [
            "MZXW1", "MZXW0", "MZXW8", "MZ=XW", "MZXW6!", "É", "M", "MZX", "MZXW6Y",
        ] {
            assert_eq!(decode_base32(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn round_trips_every_length_and_byte() {
        let data: Vec<u8> = (0..=255u8).collect();
        for len in 0..=data.len() {
            let slice = &data[..len];
            assert_eq!(
                decode_base32(&encode_base32(slice)).unwrap(),
                slice,
                "len {len}"
            );
        }
        let all_ones = [0xffu8; 20];
        assert_eq!(encode_base32(&all_ones), "7".repeat(32));
    }

    #[test]
    fn rfc6238_secret_encodes_as_apps_show_it() {
        assert_eq!(
            encode_base32(b"12345678901234567890"),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
    }
}
