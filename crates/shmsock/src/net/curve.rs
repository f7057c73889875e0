//! The CURVE security mechanism of ZMTP 3.x (ZMTP-CURVE, RFC 25, carrying CurveZMQ, RFC 26)
//! as pure state machines over command bodies: nothing here reads or writes a socket. The
//! connection code sends the greeting ([`super::zmtp::greeting`] with
//! [`Mechanism::Curve`](super::zmtp::Mechanism::Curve)), then passes each command body it
//! receives to [`client::CurveClient`] or [`server::CurveServer`] and sends back what they
//! return; once the handshake is done, [`session::CurveSession`] seals and opens every
//! message frame.
//!
//! Keys ([`keys`]) are X25519; boxes are NaCl's `crypto_box` (XSalsa20Poly1305 under the
//! X25519 shared secret, passed through HSalsa20), from RustCrypto's `x25519-dalek` and
//! `crypto_secretbox`; secrets are zeroized when dropped. Only the framing of the commands
//! is ours. `Box[X](A->B)` below is a box of X from key A to key B (opened with b and A),
//! `c`/`C` the client's long-term secret/public key, `c'`/`C'` its transient pair for this
//! connection, `s`/`S` and `s'`/`S'` the server's; nonces are a fixed prefix and either
//! the sender's 8-byte big-endian counter ("short nonce") or 16 random bytes ("long").
//!
//! ```text
//! C -> S  HELLO     200 bytes: 5 "HELLO" | version 1 0 | 72 x 0 (anti-amplification) |
//!                   C' | short nonce | Box[64 x 0](C'->S)  "CurveZMQHELLO---"
//! S -> C  WELCOME   168 bytes: 7 "WELCOME" | long nonce | Box[S' + cookie](S->C')  "WELCOME-"
//!         cookie = long nonce | SecretBox[C' + s'](K)  "COOKIE--"   (96 bytes)
//! C -> S  INITIATE  257+ bytes: 8 "INITIATE" | cookie | short nonce |
//!                   Box[C + vouch + metadata](C'->S')  "CurveZMQINITIATE"
//!         vouch = long nonce | Box[C' + S](C->S')  "VOUCH---"   (96 bytes)
//! S -> C  READY     30+ bytes: 5 "READY" | short nonce | Box[metadata](S'->C')  "CurveZMQREADY---"
//! either  MESSAGE   33+ bytes: 7 "MESSAGE" | short nonce | Box[flags + frame](C'<->S')
//!                   "CurveZMQMESSAGEC" from the client, "CurveZMQMESSAGES" from the server
//! either  ERROR     5 "ERROR" | reason-len | reason   (in clear, then the sender closes)
//! ```
//!
//! What libzmq 4.3 does, read from its sources (`curve_client_tools.hpp`,
//! `curve_client.cpp`, `curve_server.cpp`, `curve_mechanism_base.cpp`) and matched here:
//! - The handshake commands are ZMTP command frames. A MESSAGE is NOT: libzmq sends it as an
//!   ordinary data frame, with frame flags 0 (no MORE, no COMMAND), whose body starts with
//!   `7 "MESSAGE"`; every frame of a multipart message is its own MESSAGE. The MORE flag
//!   travels only inside the box, in the flags byte (bit 0 MORE, bit 1 COMMAND); libzmq ORs
//!   the box's flags into the frame's, so a receiver should accept either frame kind and
//!   take MORE from the box. ZMTP commands after the handshake (PING, PONG, and SUBSCRIBE/
//!   CANCEL from ZMTP 3.1 peers) are sealed the same way, with the COMMAND bit set and the
//!   command body (`4 "PING" ...`) as the frame.
//! - Short nonces are one counter per direction that starts at 1 and spans the handshake
//!   and the messages: the client's HELLO is 1, INITIATE 2, its first MESSAGE 3; the
//!   server's READY is 1, its first MESSAGE 2. A received MESSAGE must carry a nonce
//!   strictly above the last one seen (the peer's READY or INITIATE counts), or it is
//!   rejected as replayed or reordered (libzmq's `ZMQ_PROTOCOL_ERROR_ZMTP_INVALID_SEQUENCE`).
//! - The server keeps no key material for a client between WELCOME and INITIATE but a fresh
//!   random cookie key K: `s'` and `C'` are recovered from the cookie the client echoes, so
//!   a replayed INITIATE (on another connection, with another K) fails. libzmq makes K per
//!   connection, as we do.
//! - The vouch proves the client holds `c`; only after it is checked is `C` compared with
//!   the allow-list. libzmq refuses a client through ZAP (RFC 27) and then sends
//!   `ERROR "400"` (the ZAP status code), which libzmq clients report as
//!   `ZMQ_EVENT_HANDSHAKE_FAILED_AUTH` with status 400; we send the same. On a box that
//!   does not open libzmq closes without ERROR; we send an ERROR whose reason says which
//!   box failed and why (a libzmq client treats a reason that is not a status code as a
//!   protocol error: it closes as it would have anyway).
//! - Metadata is the ZMTP property list of a NULL READY (`Socket-Type`, `Identity`, ...).
//! - HELLO's version is 1.0; libzmq refuses anything else, and so do we.
//! - libzmq's greeting has as-server 0 in either role, and libzmq never reads the peer's:
//!   the role comes from each side's configuration. So only a peer claiming to be the
//!   server while we are one can be refused at the greeting (see
//!   [`super::zmtp::check_greeting`]).
//!
//! Keys and certificate files ([`super::cert`]) are public API; the connection's handshake
//! (`super::stream::handshake`) drives the state machines and the connection seals and opens
//! every frame with the session.

pub(crate) mod client;
pub(crate) mod crypto;
pub(crate) mod keys;
pub(crate) mod server;
pub(crate) mod session;

#[cfg(test)]
mod pyzmq_tests;
#[cfg(test)]
mod tests;

use std::fmt;

use keys::CurvePublicKey;

/// Why a CURVE handshake or message failed; the text says what went wrong and, where it
/// can, on which side the fix is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CurveError {
    /// The peer sent another command than the one this step of the handshake expects.
    Unexpected {
        /// The command expected.
        expected: &'static str,
        /// The name of the command received.
        got: String,
    },
    /// A command of the right name but the wrong size or content.
    Malformed {
        /// The command.
        command: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A box did not open (or held the wrong content): the text names the box and the
    /// likely cause.
    Crypto(&'static str),
    /// A key the peer sent is a low-order point: no shared secret can come from it.
    WeakKey(&'static str),
    /// The client proved it holds this long-term key, which the server does not allow.
    NotAllowed(CurvePublicKey),
    /// The peer sent an ERROR command with this reason.
    Refused(String),
    /// A MESSAGE whose nonce is not above the last one received.
    Replay {
        /// The nonce received.
        nonce: u64,
        /// The last nonce accepted.
        last: u64,
    },
    /// The state machine was driven out of order (a bug in the caller, not the peer).
    OutOfOrder(&'static str),
}

impl CurveError {
    /// The ERROR command body a server sends before closing after this error, if any:
    /// `"400"` (libzmq's ZAP status for "not authorized") for a refused client key, the
    /// error's text for a broken handshake, nothing for an ERROR received or a caller bug.
    pub(crate) fn error_body(&self) -> Option<Vec<u8>> {
        match self {
            CurveError::NotAllowed(_) => Some(super::zmtp::error_body(ZAP_NOT_AUTHORIZED)),
            CurveError::Refused(_) | CurveError::OutOfOrder(_) => None,
            _ => Some(super::zmtp::error_body(&self.to_string())),
        }
    }
}

/// The ZAP status code (RFC 27) libzmq servers send in ERROR when they refuse a client.
pub(crate) const ZAP_NOT_AUTHORIZED: &str = "400";

/// The data of the command `body` if it is `name` (`"WELCOME"`...); an ERROR command is the
/// peer's refusal, any other command an [`CurveError::Unexpected`].
fn expect_command<'a>(body: &'a [u8], name: &'static str) -> Result<&'a [u8], CurveError> {
    let (got, data) = super::zmtp::split_command(body).map_err(|reason| CurveError::Malformed {
        command: name,
        reason,
    })?;
    if got == name.as_bytes() {
        Ok(data)
    } else if got == b"ERROR" {
        Err(CurveError::Refused(super::zmtp::error_reason(data)))
    } else {
        Err(CurveError::Unexpected {
            expected: name,
            got: String::from_utf8_lossy(got).into_owned(),
        })
    }
}

/// Checks that `metadata` (from the box of `command`) is a well-formed ZMTP property list.
fn check_metadata(command: &'static str, metadata: &[u8]) -> Result<(), CurveError> {
    super::zmtp::property(metadata, "Socket-Type")
        .map(|_| ())
        .map_err(|reason| CurveError::Malformed { command, reason })
}

impl fmt::Display for CurveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CurveError::Unexpected { expected, got } => {
                write!(
                    f,
                    "CURVE handshake: expected {expected}, got command {got:?}"
                )
            }
            CurveError::Malformed { command, reason } => {
                write!(f, "CURVE handshake: malformed {command}: {reason}")
            }
            CurveError::Crypto(what) => f.write_str(what),
            CurveError::WeakKey(whose) => write!(
                f,
                "the {whose} key is a low-order curve point, from which no shared secret \
                 can be made: it is not a real key"
            ),
            CurveError::NotAllowed(key) => write!(
                f,
                "client key {key} is not allowed (it is not on this server's allow-list)"
            ),
            CurveError::Refused(reason) => match reason.as_str() {
                "400" => f.write_str(
                    "the server refused our key (ZAP status 400, not authorized): add our \
                     public key to the server's allow-list",
                ),
                "300" => f.write_str(
                    "the server could not authenticate us for now (ZAP status 300, temporary \
                     failure): try again later",
                ),
                "500" => f.write_str(
                    "the server's authentication failed (ZAP status 500, internal error): \
                     see the server's logs",
                ),
                _ => write!(f, "the peer refused the CURVE handshake: {reason}"),
            },
            CurveError::Replay { nonce, last } => write!(
                f,
                "CURVE MESSAGE nonce {nonce} is not above the last one received ({last}): \
                 a replayed, reordered or forged message"
            ),
            CurveError::OutOfOrder(what) => write!(f, "CURVE state machine misused: {what}"),
        }
    }
}
