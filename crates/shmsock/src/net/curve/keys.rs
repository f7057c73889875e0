//! CURVE keys: X25519 key pairs, written as 40 Z85 characters (ZeroMQ RFC 32) as libzmq,
//! pyzmq (`zmq.curve_keypair()`) and certificate files write them. A secret key is zeroized
//! when dropped and never printed.

use std::fmt;
use std::str::FromStr;

use crypto_secretbox::aead::OsRng;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::error::Error;
use crate::net::z85;

/// Length of a CURVE key (X25519, public or secret) in bytes.
pub(crate) const KEY_LEN: usize = 32;

/// Length of a CURVE key in Z85 characters.
const Z85_LEN: usize = 40;

/// A CURVE public key (X25519, 32 bytes): a server's, which its clients must know, or a
/// client's, which a server may allow. `Display` and `FromStr` use Z85 (40 characters), the
/// form libzmq, pyzmq and certificate files use.
///
/// ```
/// use shmsock::CurvePublicKey;
/// let key: CurvePublicKey = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7".parse()?;
/// assert_eq!(key.as_bytes()[0], 0x54);
/// assert_eq!(key.to_string(), "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7");
/// # Ok::<(), shmsock::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CurvePublicKey([u8; KEY_LEN]);

impl CurvePublicKey {
    /// The key of these 32 bytes (as `zmq.curve_keypair()` gives them after Z85 decoding,
    /// or libzmq's binary key options take them).
    pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> CurvePublicKey {
        CurvePublicKey(bytes)
    }

    /// The key's 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl From<[u8; KEY_LEN]> for CurvePublicKey {
    fn from(bytes: [u8; KEY_LEN]) -> CurvePublicKey {
        CurvePublicKey(bytes)
    }
}

impl FromStr for CurvePublicKey {
    type Err = Error;

    /// Parses the 40 Z85 characters of a public key.
    fn from_str(text: &str) -> Result<CurvePublicKey, Error> {
        let mut bytes = [0u8; KEY_LEN];
        decode_key(text, &mut bytes, "public key")?;
        Ok(CurvePublicKey(bytes))
    }
}

impl fmt::Display for CurvePublicKey {
    /// The 40 Z85 characters of the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = z85::encode(&self.0).expect("32 bytes are whole Z85 groups");
        f.write_str(&text)
    }
}

impl fmt::Debug for CurvePublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CurvePublicKey(\"{self}\")")
    }
}

/// A CURVE secret key (X25519, 32 bytes): zeroized when dropped; `Debug` shows only its
/// public key. `FromStr` takes the 40 Z85 characters libzmq and pyzmq use.
#[derive(Clone)]
pub struct CurveSecretKey(StaticSecret);

impl CurveSecretKey {
    /// The secret key of these 32 bytes (any 32 bytes are a valid X25519 secret key).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> CurveSecretKey {
        CurveSecretKey(StaticSecret::from(bytes))
    }

    /// The key's 32 bytes. Keep them secret: do not log them or send them anywhere.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        self.0.as_bytes()
    }

    /// The public key that goes with this secret key.
    pub fn public_key(&self) -> CurvePublicKey {
        CurvePublicKey(PublicKey::from(&self.0).to_bytes())
    }

    /// The X25519 secret, for the key agreements of the handshake.
    pub(crate) fn x25519(&self) -> &StaticSecret {
        &self.0
    }

    /// The 40 Z85 characters of the key, zeroized on drop (for certificate files).
    pub(crate) fn to_z85(&self) -> Zeroizing<String> {
        let mut text = Zeroizing::new(String::with_capacity(Z85_LEN));
        z85::encode_into(self.as_bytes(), &mut text).expect("32 bytes are whole Z85 groups");
        text
    }
}

impl FromStr for CurveSecretKey {
    type Err = Error;

    /// Parses the 40 Z85 characters of a secret key (the error never quotes the key).
    fn from_str(text: &str) -> Result<CurveSecretKey, Error> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        decode_key(text, &mut bytes[..], "secret key")?;
        Ok(CurveSecretKey(StaticSecret::from(*bytes)))
    }
}

impl fmt::Debug for CurveSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CurveSecretKey")
            .field("public", &self.public_key().to_string())
            .finish_non_exhaustive()
    }
}

/// A CURVE key pair: the identity of a server (whose public key its clients are given) or
/// of a client (whose public key a server may allow). Create one with
/// [`CurveKeyPair::generate`] (or `shmsock keygen NAME`), keep it in ZeroMQ certificate
/// files ([`CurveKeyPair::save`], [`CurveKeyPair::load`]), or take one from pyzmq's
/// `zmq.curve_keypair()`.
///
/// ```
/// use shmsock::{CurveKeyPair, CurveSecretKey};
/// let pair = CurveKeyPair::generate();
/// // The secret key alone determines the pair.
/// let secret: CurveSecretKey = "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6".parse()?;
/// let server = CurveKeyPair::from_secret(secret);
/// assert_eq!(server.public().to_string(), "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7");
/// assert_ne!(pair.public(), server.public());
/// # Ok::<(), shmsock::Error>(())
/// ```
#[derive(Clone)]
pub struct CurveKeyPair {
    public: CurvePublicKey,
    secret: CurveSecretKey,
}

impl CurveKeyPair {
    /// A new random key pair, from the operating system's randomness.
    pub fn generate() -> CurveKeyPair {
        CurveKeyPair::from_secret(CurveSecretKey(StaticSecret::random_from_rng(OsRng)))
    }

    /// The pair of `secret` (its public key is derived from it).
    pub fn from_secret(secret: CurveSecretKey) -> CurveKeyPair {
        CurveKeyPair {
            public: secret.public_key(),
            secret,
        }
    }

    /// The public key: give it to peers.
    pub fn public(&self) -> CurvePublicKey {
        self.public
    }

    /// The secret key: keep it to yourself.
    pub fn secret(&self) -> &CurveSecretKey {
        &self.secret
    }
}

impl fmt::Debug for CurveKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CurveKeyPair")
            .field("public", &self.public.to_string())
            .finish_non_exhaustive()
    }
}

/// Decodes the 40 Z85 characters of a key into `out`; `what` names the key in the error.
fn decode_key(text: &str, out: &mut [u8], what: &'static str) -> Result<(), Error> {
    z85::decode_into(text, out).map_err(|e| Error::InvalidKey {
        what,
        reason: e.to_string(),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// zmq_curve(7)'s test keys: (secret, public) of the client and of the server.
    pub(crate) const CLIENT: (&str, &str) = (
        "D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs",
        "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID",
    );
    pub(crate) const SERVER: (&str, &str) = (
        "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6",
        "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7",
    );

    #[test]
    fn public_keys_derive_from_the_zmq_curve_test_secrets() {
        for (secret, public) in [CLIENT, SERVER] {
            let pair = CurveKeyPair::from_secret(secret.parse().unwrap());
            assert_eq!(pair.public().to_string(), public);
            assert_eq!(pair.public(), public.parse::<CurvePublicKey>().unwrap());
            assert_eq!(pair.secret().to_z85().as_str(), secret);
        }
        // The hex form in the same manual.
        let server: CurvePublicKey = SERVER.1.parse().unwrap();
        assert_eq!(server.as_bytes()[..4], [0x54, 0xFC, 0xBA, 0x24]);
        assert_eq!(CurvePublicKey::from_bytes(*server.as_bytes()), server);
    }

    #[test]
    fn generated_pairs_are_fresh_and_consistent() {
        let a = CurveKeyPair::generate();
        let b = CurveKeyPair::generate();
        assert_ne!(a.public(), b.public());
        assert_ne!(a.secret().as_bytes(), b.secret().as_bytes());
        assert_eq!(a.secret().public_key(), a.public());
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let pair = CurveKeyPair::from_secret(SERVER.0.parse().unwrap());
        for text in [format!("{pair:?}"), format!("{:?}", pair.secret())] {
            assert!(text.contains(SERVER.1), "{text}");
            assert!(!text.contains(SERVER.0), "{text}");
            assert!(!text.contains("JTKVSB"), "{text}");
        }
    }

    #[test]
    fn bad_keys_are_refused_with_a_reason_that_hides_the_secret() {
        let err = "rq:rM>}U?@Lns47E1%kR.o"
            .parse::<CurvePublicKey>()
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("invalid CURVE public key"), "{text}");
        assert!(text.contains("22 characters long, expected 40"), "{text}");
        let mut bad = SERVER.0.to_owned();
        bad.replace_range(10..11, " ");
        let text = bad.parse::<CurveSecretKey>().unwrap_err().to_string();
        assert!(text.contains("invalid CURVE secret key"), "{text}");
        assert!(text.contains("position 10"), "{text}");
        assert!(!text.contains("JTKVSB"), "{text}");
        // 40 characters whose first group overflows 32 bits.
        let overflow = format!("%nSc1{}", &SERVER.1[5..]);
        assert!(overflow.parse::<CurvePublicKey>().is_err());
    }
}
