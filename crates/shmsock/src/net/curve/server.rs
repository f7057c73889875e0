//! The server side of the CurveZMQ handshake (RFC 26): it holds the long-term secret key
//! `s` its clients know the public half of, and optionally an allow-list of client keys.
//!
//! ```text
//! on_hello(HELLO)       -> WELCOME body, to send
//! on_initiate(INITIATE) -> Accepted { READY body to send, session, client key, metadata }
//! ```
//!
//! Between the two the server holds only a fresh random cookie key: its transient secret
//! `s'` and the client's `C'` travel inside the cookie, sealed under that key, and come back
//! with INITIATE. On any error the caller sends [`CurveError::error_body`] (if any) and
//! closes.

use std::collections::HashSet;
use std::sync::Arc;

use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use super::client::{COOKIE_LEN, HELLO_LEN, INITIATE_MIN_LEN, VOUCH_LEN};
use super::crypto::{
    box_key, long_nonce, open, random, random_secret, seal, secret_box, short_nonce, TAG_LEN,
};
use super::keys::{CurveKeyPair, CurvePublicKey, KEY_LEN};
use super::session::CurveSession;
use super::{check_metadata, expect_command, CurveError};

/// The client keys a server admits (`None` in [`CurveServer::new`]: any client that knows
/// the server's public key).
pub(crate) type AllowList = Arc<HashSet<CurvePublicKey>>;

/// Where the server is in its handshake.
enum State {
    /// Waiting for HELLO.
    Hello,
    /// WELCOME sent; waiting for INITIATE. Only the cookie key is kept.
    Initiate {
        cookie_key: Zeroizing<[u8; KEY_LEN]>,
    },
    /// Finished or failed.
    Done,
}

/// A finished server handshake.
#[derive(Debug)]
pub(crate) struct Accepted {
    /// The READY command body, to send.
    pub(crate) ready: Vec<u8>,
    /// The session for the messages.
    pub(crate) session: CurveSession,
    /// The client's long-term public key, proven by its vouch.
    pub(crate) client: CurvePublicKey,
    /// The client's metadata (a ZMTP property list).
    pub(crate) metadata: Vec<u8>,
}

/// The server of one CURVE handshake.
pub(crate) struct CurveServer {
    /// Our long-term key pair (`S`, `s`).
    ours: CurveKeyPair,
    /// The client keys admitted; `None` admits any.
    allow: Option<AllowList>,
    /// Our metadata (a ZMTP property list) for READY.
    metadata: Vec<u8>,
    state: State,
}

impl CurveServer {
    /// A server with long-term key pair `ours`, admitting the client keys in `allow` (or
    /// any client, with `None`), announcing `metadata` (the ZMTP property list of a NULL
    /// READY).
    pub(crate) fn new(ours: &CurveKeyPair, allow: Option<AllowList>, metadata: &[u8]) -> Self {
        CurveServer {
            ours: ours.clone(),
            allow,
            metadata: metadata.to_vec(),
            state: State::Hello,
        }
    }

    /// Handles the client's HELLO: returns the WELCOME command body.
    pub(crate) fn on_hello(&mut self, body: &[u8]) -> Result<Vec<u8>, CurveError> {
        if !matches!(self.state, State::Hello) {
            return Err(CurveError::OutOfOrder("on_hello twice"));
        }
        self.state = State::Done;
        expect_command(body, "HELLO")?;
        if body.len() != HELLO_LEN {
            return Err(CurveError::Malformed {
                command: "HELLO",
                reason: format!("{} bytes, expected {HELLO_LEN}", body.len()),
            });
        }
        if body[6..8] != [1, 0] {
            return Err(CurveError::Malformed {
                command: "HELLO",
                reason: format!("CurveZMQ version {}.{}; only 1.0 exists", body[6], body[7]),
            });
        }
        let client_transient: [u8; KEY_LEN] = body[80..112].try_into().expect("32 bytes");
        let hello_nonce = u64::from_be_bytes(body[112..120].try_into().expect("8 bytes"));
        // Box[64 x 0](C'->S)
        let hello_key = box_key(
            self.ours.secret().x25519(),
            &client_transient,
            "client's transient",
        )?;
        let signature = open(
            &hello_key,
            &short_nonce(b"CurveZMQHELLO---", hello_nonce),
            &body[120..],
        )
        .filter(|plain| plain.iter().all(|&b| b == 0))
        .ok_or(CurveError::Crypto(
            "cannot open the client's HELLO: the client was given the wrong server public \
             key, or the HELLO was corrupted",
        ))?;
        debug_assert_eq!(signature.len(), 64);

        // Our transient pair, and the cookie that carries it (with C') until INITIATE:
        // cookie = long nonce | SecretBox[C' + s'](K)
        let transient = StaticSecret::from(*random_secret::<KEY_LEN>());
        let transient_public = PublicKey::from(&transient).to_bytes();
        let cookie_key = random_secret::<KEY_LEN>();
        let cookie_random = random::<16>();
        let mut cookie_plain = Zeroizing::new([0u8; 2 * KEY_LEN]);
        cookie_plain[..KEY_LEN].copy_from_slice(&client_transient);
        cookie_plain[KEY_LEN..].copy_from_slice(transient.as_bytes());
        let mut cookie = Vec::with_capacity(COOKIE_LEN);
        cookie.extend_from_slice(&cookie_random);
        seal(
            &secret_box(&cookie_key),
            &long_nonce(b"COOKIE--", &cookie_random),
            &[&cookie_plain[..]],
            &mut cookie,
        );

        // 7 "WELCOME" | long nonce | Box[S' + cookie](S->C')
        let welcome_random = random::<16>();
        let mut welcome = Vec::with_capacity(8 + 16 + TAG_LEN + KEY_LEN + COOKIE_LEN);
        welcome.extend_from_slice(b"\x07WELCOME");
        welcome.extend_from_slice(&welcome_random);
        seal(
            &hello_key,
            &long_nonce(b"WELCOME-", &welcome_random),
            &[&transient_public, &cookie],
            &mut welcome,
        );
        self.state = State::Initiate { cookie_key };
        Ok(welcome)
    }

    /// Handles the client's INITIATE: checks the cookie, the vouch (the client holds the
    /// secret of the long-term key it announces) and the allow-list. Returns the READY body
    /// and the session.
    pub(crate) fn on_initiate(&mut self, body: &[u8]) -> Result<Accepted, CurveError> {
        let State::Initiate { cookie_key } = std::mem::replace(&mut self.state, State::Done) else {
            return Err(CurveError::OutOfOrder(
                "on_initiate before on_hello or twice",
            ));
        };
        expect_command(body, "INITIATE")?;
        if body.len() < INITIATE_MIN_LEN {
            return Err(CurveError::Malformed {
                command: "INITIATE",
                reason: format!("{} bytes, at least {INITIATE_MIN_LEN} expected", body.len()),
            });
        }
        // The cookie gives back C' and s'.
        let cookie = &body[9..9 + COOKIE_LEN];
        let cookie_plain = open(
            &secret_box(&cookie_key),
            &long_nonce(b"COOKIE--", cookie[..16].try_into().expect("16 bytes")),
            &cookie[16..],
        )
        .ok_or(CurveError::Crypto(
            "cannot open the cookie in the client's INITIATE: it is not the one this server \
             sent in its WELCOME (replayed from another connection, or corrupted)",
        ))?;
        let client_transient: [u8; KEY_LEN] = cookie_plain[..KEY_LEN].try_into().expect("32 bytes");
        let transient = StaticSecret::from(
            <[u8; KEY_LEN]>::try_from(&cookie_plain[KEY_LEN..]).expect("32 bytes"),
        );
        let session_key = box_key(&transient, &client_transient, "client's transient")?;

        // Box[C + vouch + metadata](C'->S')
        let at = 9 + COOKIE_LEN;
        let initiate_nonce = u64::from_be_bytes(body[at..at + 8].try_into().expect("8 bytes"));
        let plain = open(
            &session_key,
            &short_nonce(b"CurveZMQINITIATE", initiate_nonce),
            &body[at + 8..],
        )
        .ok_or(CurveError::Crypto(
            "cannot open the client's INITIATE: it was corrupted in transit",
        ))?;
        let client = CurvePublicKey::from_bytes(plain[..KEY_LEN].try_into().expect("32 bytes"));
        let vouch = &plain[KEY_LEN..KEY_LEN + VOUCH_LEN];
        let metadata = &plain[KEY_LEN + VOUCH_LEN..];

        // vouch = long nonce | Box[C' + S](C->S'): the client holds c.
        let vouch_key = box_key(&transient, client.as_bytes(), "client's public")?;
        let vouched = open(
            &vouch_key,
            &long_nonce(b"VOUCH---", vouch[..16].try_into().expect("16 bytes")),
            &vouch[16..],
        )
        .ok_or(CurveError::Crypto(
            "cannot open the vouch in the client's INITIATE: the client does not hold the \
             secret key of the public key it announces",
        ))?;
        if vouched[..KEY_LEN] != client_transient
            || vouched[KEY_LEN..] != self.ours.public().as_bytes()[..]
        {
            return Err(CurveError::Crypto(
                "the vouch in the client's INITIATE is for another connection or another \
                 server",
            ));
        }
        if let Some(allow) = &self.allow {
            if !allow.contains(&client) {
                return Err(CurveError::NotAllowed(client));
            }
        }
        check_metadata("INITIATE", metadata)?;

        // 5 "READY" | short nonce | Box[metadata](S'->C'). Our first short nonce is 1.
        let ready_nonce = 1;
        let mut ready = Vec::with_capacity(14 + TAG_LEN + self.metadata.len());
        ready.extend_from_slice(b"\x05READY");
        ready.extend_from_slice(&u64::to_be_bytes(ready_nonce));
        seal(
            &session_key,
            &short_nonce(b"CurveZMQREADY---", ready_nonce),
            &[&self.metadata],
            &mut ready,
        );
        Ok(Accepted {
            ready,
            session: CurveSession::new(session_key, false, ready_nonce + 1, initiate_nonce),
            client,
            metadata: metadata.to_vec(),
        })
    }
}
