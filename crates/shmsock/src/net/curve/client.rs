//! The client side of the CurveZMQ handshake (RFC 26): it knows the server's long-term
//! public key `S` and proves its own (`C`) with the vouch. Driven by the caller:
//!
//! ```text
//! hello()            -> HELLO body, to send
//! on_welcome(WELCOME) -> INITIATE body, to send
//! on_ready(READY)     -> the session and the server's metadata
//! ```
//!
//! An ERROR from the server at either step is [`CurveError::Refused`] with its reason.

use x25519_dalek::{PublicKey, StaticSecret};

use super::crypto::{
    box_key, long_nonce, open, random, random_secret, seal, short_nonce, Cipher, TAG_LEN,
};
use super::keys::{CurveKeyPair, CurvePublicKey, KEY_LEN};
use super::session::CurveSession;
use super::{check_metadata, expect_command, CurveError};

/// Length of a HELLO body.
pub(crate) const HELLO_LEN: usize = 200;
/// Length of a WELCOME body.
pub(crate) const WELCOME_LEN: usize = 168;
/// Length of the smallest INITIATE body (no metadata).
pub(crate) const INITIATE_MIN_LEN: usize = 257;
/// Length of the smallest READY body (no metadata).
pub(crate) const READY_MIN_LEN: usize = 30;
/// Length of a cookie: long nonce and the secret box of `C' + s'`.
pub(crate) const COOKIE_LEN: usize = 16 + TAG_LEN + 64;
/// Length of a vouch: long nonce and the box of `C' + S`.
pub(crate) const VOUCH_LEN: usize = 16 + TAG_LEN + 64;

/// Where the client is in its handshake.
enum State {
    /// HELLO not sent yet.
    Start,
    /// HELLO sent; waiting for WELCOME.
    Welcome,
    /// INITIATE sent; waiting for READY, with the key between the transient keys.
    Ready(Cipher),
    /// Finished or failed: nothing more to do.
    Done,
}

/// The client of one CURVE handshake.
pub(crate) struct CurveClient {
    /// Our long-term key pair (`C`, `c`).
    ours: CurveKeyPair,
    /// The server's long-term public key (`S`).
    server: CurvePublicKey,
    /// Our transient secret key for this connection (`c'`).
    transient: StaticSecret,
    /// Its public key (`C'`).
    transient_public: [u8; KEY_LEN],
    /// The box key between `c'` and `S`: HELLO and WELCOME.
    hello_key: Cipher,
    /// Our metadata (a ZMTP property list) for INITIATE.
    metadata: Vec<u8>,
    /// The short nonce of our next command.
    next_nonce: u64,
    state: State,
}

impl CurveClient {
    /// A client with long-term key pair `ours`, for the server whose public key is
    /// `server`, announcing `metadata` (the ZMTP property list of a NULL READY: see
    /// [`super::super::zmtp::socket_type_metadata`]). Fails only for a `server` key that
    /// is a low-order point (no real key is).
    pub(crate) fn new(
        ours: &CurveKeyPair,
        server: CurvePublicKey,
        metadata: &[u8],
    ) -> Result<Self, CurveError> {
        let transient = StaticSecret::from(*random_secret::<KEY_LEN>());
        let transient_public = PublicKey::from(&transient).to_bytes();
        let hello_key = box_key(&transient, server.as_bytes(), "server's public")?;
        Ok(CurveClient {
            ours: ours.clone(),
            server,
            transient,
            transient_public,
            hello_key,
            metadata: metadata.to_vec(),
            next_nonce: 1,
            state: State::Start,
        })
    }

    /// The next short nonce of ours.
    fn take_nonce(&mut self) -> u64 {
        let n = self.next_nonce;
        self.next_nonce += 1;
        n
    }

    /// The HELLO command body (200 bytes): our transient key `C'` and a box from it to the
    /// server's long-term key, which only the holder of `s` can open.
    pub(crate) fn hello(&mut self) -> Vec<u8> {
        debug_assert!(matches!(self.state, State::Start), "HELLO sent twice");
        let nonce = self.take_nonce();
        let mut body = Vec::with_capacity(HELLO_LEN);
        body.extend_from_slice(b"\x05HELLO");
        body.extend_from_slice(&[1, 0]); // CurveZMQ version 1.0
        body.extend_from_slice(&[0; 72]);
        body.extend_from_slice(&self.transient_public);
        body.extend_from_slice(&nonce.to_be_bytes());
        // Box[64 x 0](C'->S)
        seal(
            &self.hello_key,
            &short_nonce(b"CurveZMQHELLO---", nonce),
            &[&[0; 64]],
            &mut body,
        );
        debug_assert_eq!(body.len(), HELLO_LEN);
        self.state = State::Welcome;
        body
    }

    /// Handles the server's WELCOME: returns the INITIATE command body, with the cookie,
    /// our long-term key, the vouch that proves we hold its secret, and our metadata.
    pub(crate) fn on_welcome(&mut self, body: &[u8]) -> Result<Vec<u8>, CurveError> {
        if !matches!(self.state, State::Welcome) {
            return Err(CurveError::OutOfOrder("on_welcome before hello or twice"));
        }
        self.state = State::Done;
        expect_command(body, "WELCOME")?;
        if body.len() != WELCOME_LEN {
            return Err(CurveError::Malformed {
                command: "WELCOME",
                reason: format!("{} bytes, expected {WELCOME_LEN}", body.len()),
            });
        }
        // Box[S' + cookie](S->C')
        let nonce = long_nonce(b"WELCOME-", body[8..24].try_into().expect("16 bytes"));
        let plain = open(&self.hello_key, &nonce, &body[24..]).ok_or(CurveError::Crypto(
            "cannot open the server's WELCOME: the server does not hold the secret key of the \
             server public key we were given (wrong server key?), or the WELCOME was corrupted",
        ))?;
        let server_transient: [u8; KEY_LEN] = plain[..KEY_LEN].try_into().expect("32 bytes");
        let cookie = &plain[KEY_LEN..KEY_LEN + COOKIE_LEN];
        let session_key = box_key(&self.transient, &server_transient, "server's transient")?;

        // vouch = long nonce | Box[C' + S](C->S')
        let vouch_random = random::<16>();
        let vouch_key = box_key(
            self.ours.secret().x25519(),
            &server_transient,
            "server's transient",
        )?;
        let mut vouch = Vec::with_capacity(VOUCH_LEN);
        vouch.extend_from_slice(&vouch_random);
        seal(
            &vouch_key,
            &long_nonce(b"VOUCH---", &vouch_random),
            &[&self.transient_public, self.server.as_bytes()],
            &mut vouch,
        );

        // 8 "INITIATE" | cookie | short nonce | Box[C + vouch + metadata](C'->S')
        let nonce = self.take_nonce();
        let mut initiate = Vec::with_capacity(INITIATE_MIN_LEN + self.metadata.len());
        initiate.extend_from_slice(b"\x08INITIATE");
        initiate.extend_from_slice(cookie);
        initiate.extend_from_slice(&nonce.to_be_bytes());
        seal(
            &session_key,
            &short_nonce(b"CurveZMQINITIATE", nonce),
            &[self.ours.public().as_bytes(), &vouch, &self.metadata],
            &mut initiate,
        );
        self.state = State::Ready(session_key);
        Ok(initiate)
    }

    /// Handles the server's READY: the handshake is complete. Returns the session for the
    /// messages and the server's metadata (a ZMTP property list).
    pub(crate) fn on_ready(&mut self, body: &[u8]) -> Result<(CurveSession, Vec<u8>), CurveError> {
        let State::Ready(session_key) = std::mem::replace(&mut self.state, State::Done) else {
            return Err(CurveError::OutOfOrder(
                "on_ready before on_welcome or twice",
            ));
        };
        expect_command(body, "READY")?;
        if body.len() < READY_MIN_LEN {
            return Err(CurveError::Malformed {
                command: "READY",
                reason: format!("{} bytes, at least {READY_MIN_LEN} expected", body.len()),
            });
        }
        let server_nonce = u64::from_be_bytes(body[6..14].try_into().expect("8 bytes"));
        let metadata = open(
            &session_key,
            &short_nonce(b"CurveZMQREADY---", server_nonce),
            &body[14..],
        )
        .ok_or(CurveError::Crypto(
            "cannot open the server's READY: it was corrupted in transit",
        ))?;
        check_metadata("READY", &metadata)?;
        let session = CurveSession::new(session_key, true, self.next_nonce, server_nonce);
        Ok((session, metadata.to_vec()))
    }

    /// Our transient public key `C'` (for tests that play a hostile server).
    #[cfg(test)]
    pub(crate) fn transient_public(&self) -> [u8; KEY_LEN] {
        self.transient_public
    }
}
