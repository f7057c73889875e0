//! Z85, ZeroMQ's printable encoding of binary data (ZeroMQ RFC 32, "Z85"): every 4 bytes
//! (a big-endian `u32`) become 5 characters, base 85, from an alphabet without quotes,
//! backslash or whitespace, so a 32-byte CURVE key is 40 characters that survive a shell, a
//! config file or a certificate.
//!
//! ```text
//! 0x86 0x4F 0xD2 0x6F 0xB5 0x59 0xF7 0x5B  <->  "HelloWorld"   (the RFC's test vector)
//! ```
//!
//! Only whole groups are encoded: binary input is a multiple of 4 bytes, text a multiple of
//! 5 characters (RFC 32 leaves padding to the application, and keys need none). A group of
//! 5 characters whose value does not fit in 32 bits is rejected, as libzmq's
//! `zmq_z85_decode` does, so every valid text has exactly one binary form.

use std::fmt;

/// The 85 characters, in value order (RFC 32).
const ALPHABET: &[u8; 85] =
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

/// The value of each byte as a Z85 digit, or `NOT_Z85`.
const DIGITS: [u8; 256] = {
    let mut t = [NOT_Z85; 256];
    let mut i = 0;
    while i < ALPHABET.len() {
        t[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    t
};
const NOT_Z85: u8 = 0xFF;

/// Why a Z85 encoding or decoding failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Z85Error {
    /// Binary input to encode is not a multiple of 4 bytes.
    BinaryLength(usize),
    /// Text to decode is not a multiple of 5 characters (or not the length the caller
    /// needs, see [`decode_into`]).
    TextLength {
        /// Characters given.
        len: usize,
        /// Characters expected (`None`: any multiple of 5).
        expected: Option<usize>,
    },
    /// A character outside the Z85 alphabet.
    Character {
        /// The character.
        found: char,
        /// Its position (in characters, from 0).
        at: usize,
    },
    /// A group of 5 characters whose value is 2^32 or more.
    Overflow {
        /// Position of the group's first character.
        at: usize,
    },
}

impl fmt::Display for Z85Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Z85Error::BinaryLength(n) => {
                write!(
                    f,
                    "Z85 encodes whole groups of 4 bytes; {n} bytes is not a multiple of 4"
                )
            }
            Z85Error::TextLength {
                len,
                expected: Some(e),
            } => write!(
                f,
                "it is {len} characters long, expected {e} Z85 characters"
            ),
            Z85Error::TextLength {
                len,
                expected: None,
            } => write!(
                f,
                "it is {len} characters long; Z85 text is a multiple of 5 characters"
            ),
            Z85Error::Character { found, at } => write!(
                f,
                "character {found:?} at position {at} is not in the Z85 alphabet \
                 (0-9 a-z A-Z .-:+=^!/*?&<>()[]{{}}@%$#)"
            ),
            Z85Error::Overflow { at } => write!(
                f,
                "the 5 characters at position {at} are not valid Z85 (their value exceeds 32 bits)"
            ),
        }
    }
}

/// Encodes `data` (a multiple of 4 bytes) as Z85 text, appended to `out`.
pub(crate) fn encode_into(data: &[u8], out: &mut String) -> Result<(), Z85Error> {
    if !data.len().is_multiple_of(4) {
        return Err(Z85Error::BinaryLength(data.len()));
    }
    out.reserve(data.len() / 4 * 5);
    for group in data.chunks_exact(4) {
        let mut value = u32::from_be_bytes(group.try_into().expect("chunk of 4 bytes"));
        let mut digits = [0u8; 5];
        for d in digits.iter_mut().rev() {
            *d = ALPHABET[(value % 85) as usize];
            value /= 85;
        }
        out.extend(digits.iter().map(|&b| char::from(b)));
    }
    Ok(())
}

/// Encodes `data` (a multiple of 4 bytes) as Z85 text.
pub(crate) fn encode(data: &[u8]) -> Result<String, Z85Error> {
    let mut out = String::new();
    encode_into(data, &mut out)?;
    Ok(out)
}

/// Decodes Z85 `text` into `out`, which must be exactly `text.len() / 5 * 4` bytes (a key
/// decodes into a fixed array, so a secret never passes through a heap buffer).
pub(crate) fn decode_into(text: &str, out: &mut [u8]) -> Result<(), Z85Error> {
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(5) || bytes.len() / 5 * 4 != out.len() {
        return Err(Z85Error::TextLength {
            len: text.chars().count(),
            expected: Some(out.len() / 4 * 5),
        });
    }
    for (g, (group, dest)) in bytes
        .chunks_exact(5)
        .zip(out.chunks_exact_mut(4))
        .enumerate()
    {
        let mut value: u64 = 0;
        for (i, &b) in group.iter().enumerate() {
            let digit = DIGITS[usize::from(b)];
            if digit == NOT_Z85 {
                let at = g * 5 + i;
                // `at` counts bytes; report the character (and its position in characters)
                // even when the text holds multi-byte UTF-8.
                let (pos, found) = text
                    .char_indices()
                    .enumerate()
                    .find(|&(_, (byte_at, _))| byte_at >= at)
                    .map(|(n, (_, c))| (n, c))
                    .unwrap_or((at, char::REPLACEMENT_CHARACTER));
                return Err(Z85Error::Character { found, at: pos });
            }
            value = value * 85 + u64::from(digit);
        }
        let value = u32::try_from(value).map_err(|_| Z85Error::Overflow { at: g * 5 })?;
        dest.copy_from_slice(&value.to_be_bytes());
    }
    Ok(())
}

/// Decodes Z85 `text` (a multiple of 5 characters). (Keys decode with [`decode_into`];
/// this general form serves the tests.)
#[cfg(test)]
pub(crate) fn decode(text: &str) -> Result<Vec<u8>, Z85Error> {
    if !text.len().is_multiple_of(5) {
        return Err(Z85Error::TextLength {
            len: text.chars().count(),
            expected: None,
        });
    }
    let mut out = vec![0u8; text.len() / 5 * 4];
    decode_into(text, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_rfc_test_vector() {
        let data = [0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B];
        assert_eq!(encode(&data).unwrap(), "HelloWorld");
        assert_eq!(decode("HelloWorld").unwrap(), data);
    }

    #[test]
    fn the_curve_test_keys_of_the_zmq_curve_manual() {
        // zmq_curve(7), "TEST KEY VALUES": the client's public key, hex and Z85.
        let hex = "BB88471D65E2659B30C55A5321CEBB5AAB2B70A398645C26DCA2B2FCB43FC518";
        let bytes: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        assert_eq!(
            encode(&bytes).unwrap(),
            "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID"
        );
        let mut key = [0u8; 32];
        decode_into("Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID", &mut key).unwrap();
        assert_eq!(key[..], bytes[..]);
    }

    #[test]
    fn extremes_encode_to_the_first_and_last_values() {
        assert_eq!(encode(&[0; 4]).unwrap(), "00000");
        assert_eq!(encode(&[0xFF; 4]).unwrap(), "%nSc0");
        assert_eq!(decode("%nSc0").unwrap(), [0xFF; 4]);
        assert_eq!(encode(&[]).unwrap(), "");
        assert_eq!(decode("").unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn bad_lengths_characters_and_overflows_are_rejected() {
        assert_eq!(encode(&[1, 2, 3]), Err(Z85Error::BinaryLength(3)));
        assert_eq!(
            decode("Hello1"),
            Err(Z85Error::TextLength {
                len: 6,
                expected: None
            })
        );
        assert_eq!(
            decode("Hel lo"[..5].as_ref()),
            Err(Z85Error::Character { found: ' ', at: 3 })
        );
        assert_eq!(
            decode("Hello\"orld"),
            Err(Z85Error::Character { found: '"', at: 5 })
        );
        // A multi-byte character is reported as itself, at its position in characters.
        let err = decode("Héllo").unwrap_err();
        assert!(matches!(err, Z85Error::TextLength { .. }), "{err:?}");
        let err = decode("Hé110").unwrap_err(); // 6 bytes: not a multiple of 5 either
        assert!(matches!(err, Z85Error::TextLength { .. }), "{err:?}");
        let mut four = [0u8; 4];
        assert_eq!(
            decode_into("é111", &mut four),
            Err(Z85Error::Character { found: 'é', at: 0 })
        );
        // "%nSc1" is 2^32: one past the largest group.
        assert_eq!(decode("%nSc1"), Err(Z85Error::Overflow { at: 0 }));
        assert_eq!(decode("00000#####"), Err(Z85Error::Overflow { at: 5 }));
        // The fixed-size form wants exactly its length.
        let mut key = [0u8; 32];
        let err = decode_into("HelloWorld", &mut key).unwrap_err();
        assert_eq!(
            err,
            Z85Error::TextLength {
                len: 10,
                expected: Some(40)
            }
        );
        assert!(err.to_string().contains("expected 40"), "{err}");
    }

    proptest! {
        #[test]
        fn round_trips(words in prop::collection::vec(any::<[u8; 4]>(), 0..40)) {
            let data = words.concat();
            let text = encode(&data).unwrap();
            prop_assert_eq!(text.len(), data.len() / 4 * 5);
            prop_assert!(text.bytes().all(|b| ALPHABET.contains(&b)));
            prop_assert_eq!(decode(&text).unwrap(), data);
        }

        #[test]
        fn every_valid_text_has_one_binary_form(text in "[0-9a-zA-Z.:+=^!/*?&<>()\\[\\]{}@%$#-]{0,30}") {
            let text = &text[..text.len() / 5 * 5];
            match decode(text) {
                Ok(data) => prop_assert_eq!(encode(&data).unwrap(), text),
                Err(e) => prop_assert!(matches!(e, Z85Error::Overflow { .. }), "{:?}", e),
            }
        }

        #[test]
        fn garbage_never_panics(text in "\\PC{0,30}") {
            let _ = decode(&text);
            let mut out = [0u8; 8];
            let _ = decode_into(&text, &mut out);
        }
    }
}
