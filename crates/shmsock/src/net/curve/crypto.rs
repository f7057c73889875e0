//! The boxes CurveZMQ is built from, on RustCrypto's primitives: `crypto_box` (X25519, then
//! HSalsa20 of the shared secret as the key of an XSalsa20Poly1305 secret box, exactly
//! NaCl's `crypto_box_beforenm`), the secret box itself (the server's cookie), nonces, and
//! randomness from the OS. A sealed box is the 16-byte Poly1305 tag, then the ciphertext
//! (NaCl's layout, which is what goes on the wire).

use crypto_secretbox::aead::generic_array::GenericArray;
use crypto_secretbox::aead::rand_core::RngCore;
use crypto_secretbox::aead::OsRng;
use crypto_secretbox::{AeadInPlace, Kdf, KeyInit, XSalsa20Poly1305};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use super::keys::KEY_LEN;
use super::CurveError;

/// A box key: the precomputed key of `crypto_box` between two key pairs, or a secret box's
/// key. Zeroized on drop.
pub(crate) type Cipher = XSalsa20Poly1305;

/// Length of a Poly1305 tag: what a box adds to its plaintext.
pub(crate) const TAG_LEN: usize = 16;

/// A full 24-byte nonce.
pub(crate) type Nonce = [u8; 24];

/// The box key between `ours` and `theirs` (NaCl's `crypto_box_beforenm`): X25519, then
/// HSalsa20 with a zero nonce. A low-order `theirs` gives no shared secret and is refused
/// (libsodium refuses it too); `whose` names that key in the error.
pub(crate) fn box_key(
    ours: &StaticSecret,
    theirs: &[u8; KEY_LEN],
    whose: &'static str,
) -> Result<Cipher, CurveError> {
    let shared = ours.diffie_hellman(&PublicKey::from(*theirs));
    if !shared.was_contributory() {
        return Err(CurveError::WeakKey(whose));
    }
    let key = Zeroizing::new(<Cipher as Kdf>::kdf(
        GenericArray::from_slice(shared.as_bytes()),
        &GenericArray::default(),
    ));
    Ok(Cipher::new(&key))
}

/// A secret box's key from 32 bytes (the server's cookie key).
pub(crate) fn secret_box(key: &[u8; KEY_LEN]) -> Cipher {
    Cipher::new(GenericArray::from_slice(key))
}

/// A nonce of a 16-byte prefix and a short (8-byte, big-endian) counter.
pub(crate) fn short_nonce(prefix: &[u8; 16], counter: u64) -> Nonce {
    let mut n = [0u8; 24];
    n[..16].copy_from_slice(prefix);
    n[16..].copy_from_slice(&counter.to_be_bytes());
    n
}

/// A nonce of an 8-byte prefix and 16 long (random) bytes.
pub(crate) fn long_nonce(prefix: &[u8; 8], random: &[u8; 16]) -> Nonce {
    let mut n = [0u8; 24];
    n[..8].copy_from_slice(prefix);
    n[8..].copy_from_slice(random);
    n
}

/// `N` random bytes from the operating system.
pub(crate) fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    OsRng.fill_bytes(&mut b);
    b
}

/// A random secret key (`N` bytes) from the operating system, zeroized on drop.
pub(crate) fn random_secret<const N: usize>() -> Zeroizing<[u8; N]> {
    let mut b = Zeroizing::new([0u8; N]);
    OsRng.fill_bytes(&mut b[..]);
    b
}

/// Appends the box of the concatenation of `parts` (tag, then ciphertext) to `out`. The
/// plaintext is encrypted where it lands in `out`: no other copy of it is made.
pub(crate) fn seal(cipher: &Cipher, nonce: &Nonce, parts: &[&[u8]], out: &mut Vec<u8>) {
    let start = out.len();
    out.resize(start + TAG_LEN, 0);
    for p in parts {
        out.extend_from_slice(p);
    }
    let tag = cipher
        .encrypt_in_place_detached(
            GenericArray::from_slice(nonce),
            b"",
            &mut out[start + TAG_LEN..],
        )
        .expect("XSalsa20Poly1305 seals any length without associated data");
    out[start..start + TAG_LEN].copy_from_slice(&tag);
}

/// Opens `boxed` (tag, then ciphertext) in place: on success the plaintext is
/// `boxed[TAG_LEN..]`. `false` if it is too short or does not authenticate, in which case
/// the ciphertext is left as it was.
pub(crate) fn open_in_place(cipher: &Cipher, nonce: &Nonce, boxed: &mut [u8]) -> bool {
    if boxed.len() < TAG_LEN {
        return false;
    }
    let (tag, text) = boxed.split_at_mut(TAG_LEN);
    let tag = *GenericArray::from_slice(tag);
    cipher
        .decrypt_in_place_detached(GenericArray::from_slice(nonce), b"", text, &tag)
        .is_ok()
}

/// Opens `boxed` into a new buffer, zeroized on drop (handshake boxes hold key material):
/// the plaintext, or `None` if the box does not authenticate.
pub(crate) fn open(cipher: &Cipher, nonce: &Nonce, boxed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(boxed.to_vec());
    if !open_in_place(cipher, nonce, &mut buf) {
        return None;
    }
    buf.drain(..TAG_LEN);
    Some(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len() / 2)
            .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    }

    /// NaCl's own test of `crypto_box` (Bernstein, "Cryptography in NaCl", section 10; the
    /// box test of NaCl and libsodium): Alice's secret key, Bob's public key, the nonce,
    /// the 131-byte message and its 147-byte box (tag, then ciphertext).
    #[test]
    fn box_matches_nacls_test_vector() {
        let alice_sk = hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
        let bob_pk = hex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
        let nonce = hex("69696ee955b62b73cd62bda875fc73d68219e0036b7a0b37");
        let message = hex(concat!(
            "be075fc53c81f2d5cf141316ebeb0c7b5228c52a4c62cbd44b66849b64244ffce5ecbaaf33bd751a",
            "1ac728d45e6c61296cdc3c01233561f41db66cce314adb310e3be8250c46f06dceea3a7fa1348057",
            "e2f6556ad6b1318a024a838f21af1fde048977eb48f59ffd4924ca1c60902e52f0a089bc76897040",
            "e082f937763848645e0705"
        ));
        let expected = hex(concat!(
            "f3ffc7703f9400e52a7dfb4b3d3305d98e993b9f48681273c29650ba32fc76ce48332ea7164d96a4",
            "476fb8c531a1186ac0dfc17c98dce87b4da7f011ec48c97271d2c20f9b928fe2270d6fb863d51738",
            "b48eeee314a7cc8ab932164548e526ae90224368517acfeabd6bb3732bc0e9da99832b61ca01b6de",
            "56244a9e88d5f9b37973f622a43d14a6599b1f654cb45a74e355a5"
        ));
        let sk: [u8; 32] = alice_sk.try_into().unwrap();
        let pk: [u8; 32] = bob_pk.try_into().unwrap();
        let nonce: Nonce = nonce.try_into().unwrap();
        let cipher = box_key(&StaticSecret::from(sk), &pk, "test").unwrap();
        let mut boxed = Vec::new();
        seal(&cipher, &nonce, &[&message], &mut boxed);
        assert_eq!(boxed, expected);
        assert_eq!(open(&cipher, &nonce, &boxed).unwrap()[..], message[..]);
    }

    #[test]
    fn a_box_opens_once_whole_and_only_with_its_nonce() {
        let a = StaticSecret::from([1u8; 32]);
        let b = StaticSecret::from([2u8; 32]);
        let ab = box_key(&a, PublicKey::from(&b).as_bytes(), "b").unwrap();
        let ba = box_key(&b, PublicKey::from(&a).as_bytes(), "a").unwrap();
        let nonce = short_nonce(b"CurveZMQMESSAGEC", 7);
        let mut boxed = vec![0xAA]; // sealing appends
        seal(&ab, &nonce, &[b"hello ", b"world"], &mut boxed);
        assert_eq!(boxed[0], 0xAA);
        let boxed = &boxed[1..];
        assert_eq!(&open(&ba, &nonce, boxed).unwrap()[..], b"hello world");
        assert!(open(&ba, &short_nonce(b"CurveZMQMESSAGEC", 8), boxed).is_none());
        assert!(open(&ba, &short_nonce(b"CurveZMQMESSAGES", 7), boxed).is_none());
        for i in 0..boxed.len() {
            let mut bad = boxed.to_vec();
            bad[i] ^= 0x01;
            assert!(open(&ba, &nonce, &bad).is_none(), "flipped byte {i} opened");
        }
        assert!(open(&ba, &nonce, &boxed[..TAG_LEN - 1]).is_none());
    }

    #[test]
    fn a_low_order_key_gives_no_box() {
        let ours = StaticSecret::from([3u8; 32]);
        assert_eq!(
            box_key(&ours, &[0u8; 32], "peer's").err(),
            Some(CurveError::WeakKey("peer's"))
        );
    }

    #[test]
    fn nonces_put_prefix_then_counter_or_random_bytes() {
        let n = short_nonce(b"CurveZMQHELLO---", 0x0102);
        assert_eq!(&n[..16], b"CurveZMQHELLO---");
        assert_eq!(n[16..], [0, 0, 0, 0, 0, 0, 1, 2]);
        let n = long_nonce(b"WELCOME-", &[9; 16]);
        assert_eq!((&n[..8], &n[8..]), (&b"WELCOME-"[..], &[9u8; 16][..]));
        assert_ne!(random::<16>(), random::<16>());
    }
}
