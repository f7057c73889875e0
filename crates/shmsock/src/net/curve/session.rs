//! An established CURVE connection: every frame either way is a MESSAGE (RFC 26), a box
//! under the transient keys' shared key with a short nonce that only goes up.
//!
//! ```text
//! MESSAGE body: 7 "MESSAGE" | short nonce (8, big-endian) | tag (16) | encrypted: flags (1) | frame
//! flags: bit 0 MORE (more frames of this message follow), bit 1 COMMAND (PING, SUBSCRIBE...)
//! ```
//!
//! The body goes on the wire as a data frame with flags 0, one per frame of a multipart
//! message, as libzmq sends it (see [`super`] for why). The shared key is computed once,
//! at the end of the handshake; sealing and opening write into the caller's buffers, so a
//! connection in its steady state allocates nothing per message.

use super::crypto::{open_in_place, seal, short_nonce, Cipher, TAG_LEN};
use super::CurveError;

/// The start of every MESSAGE body.
const MESSAGE: &[u8; 8] = b"\x07MESSAGE";
/// Nonce prefix of the client's messages.
pub(crate) const CLIENT_PREFIX: &[u8; 16] = b"CurveZMQMESSAGEC";
/// Nonce prefix of the server's messages.
pub(crate) const SERVER_PREFIX: &[u8; 16] = b"CurveZMQMESSAGES";
/// Flag in the box: more frames of this message follow.
const FLAG_MORE: u8 = 0x01;
/// Flag in the box: the frame is a ZMTP command.
const FLAG_COMMAND: u8 = 0x02;
/// What a MESSAGE body adds to its frame: name, nonce, tag and the flags byte.
pub(crate) const MESSAGE_OVERHEAD: usize = MESSAGE.len() + 8 + TAG_LEN + 1;

/// A frame taken out of a MESSAGE.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Opened<'a> {
    /// More frames of this message follow.
    pub(crate) more: bool,
    /// The frame is a ZMTP command body (PING, PONG, SUBSCRIBE, CANCEL...), not data.
    pub(crate) command: bool,
    /// The frame.
    pub(crate) frame: &'a [u8],
}

/// An established connection: the shared key and each direction's short nonce.
pub(crate) struct CurveSession {
    cipher: Cipher,
    send_prefix: &'static [u8; 16],
    recv_prefix: &'static [u8; 16],
    /// The short nonce of our next MESSAGE.
    next_send: u64,
    /// The highest short nonce received (the peer's last handshake command, at first).
    last_recv: u64,
}

impl CurveSession {
    /// The session of a finished handshake: `cipher` between the two transient keys, our
    /// next short nonce and the peer's last one.
    pub(crate) fn new(cipher: Cipher, client: bool, next_send: u64, last_recv: u64) -> Self {
        let (send_prefix, recv_prefix) = if client {
            (CLIENT_PREFIX, SERVER_PREFIX)
        } else {
            (SERVER_PREFIX, CLIENT_PREFIX)
        };
        CurveSession {
            cipher,
            send_prefix,
            recv_prefix,
            next_send,
            last_recv,
        }
    }

    /// The length of the MESSAGE body that carries a frame of `len` bytes.
    pub(crate) const fn sealed_len(len: usize) -> usize {
        MESSAGE_OVERHEAD + len
    }

    /// Appends the MESSAGE body carrying `frame` to `out` (`more`: further frames of the same
    /// message follow).
    pub(crate) fn seal(&mut self, more: bool, frame: &[u8], out: &mut Vec<u8>) {
        self.seal_flags(if more { FLAG_MORE } else { 0 }, frame, out);
    }

    /// Appends the MESSAGE body carrying the ZMTP command `body` (`4 "PING" ...`) to `out`.
    pub(crate) fn seal_command(&mut self, body: &[u8], out: &mut Vec<u8>) {
        self.seal_flags(FLAG_COMMAND, body, out);
    }

    fn seal_flags(&mut self, flags: u8, frame: &[u8], out: &mut Vec<u8>) {
        let counter = self.next_send;
        // 2^64 messages is beyond any connection's life; wrapping would reuse a nonce.
        self.next_send = counter
            .checked_add(1)
            .expect("CURVE short nonces exhausted (2^64 messages on one connection)");
        out.reserve(Self::sealed_len(frame.len()));
        out.extend_from_slice(MESSAGE);
        out.extend_from_slice(&counter.to_be_bytes());
        let nonce = short_nonce(self.send_prefix, counter);
        seal(&self.cipher, &nonce, &[&[flags], frame], out);
    }

    /// Opens the MESSAGE `body` where it lies (the frame is decrypted in place and borrowed
    /// from `body`). A nonce not above the last one received is refused before anything
    /// is decrypted, and it counts only once the box has opened.
    pub(crate) fn open_in_place<'a>(
        &mut self,
        body: &'a mut [u8],
    ) -> Result<Opened<'a>, CurveError> {
        let name_end = body.first().map_or(0, |&n| usize::from(n) + 1);
        if body.get(..MESSAGE.len()) != Some(&MESSAGE[..]) {
            let got = body.get(1..name_end).unwrap_or(b"");
            return Err(CurveError::Unexpected {
                expected: "MESSAGE",
                got: String::from_utf8_lossy(got).into_owned(),
            });
        }
        if body.len() < MESSAGE_OVERHEAD {
            return Err(CurveError::Malformed {
                command: "MESSAGE",
                reason: format!(
                    "{} bytes, shorter than the {MESSAGE_OVERHEAD} of an empty frame",
                    body.len()
                ),
            });
        }
        let (head, boxed) = body.split_at_mut(MESSAGE.len() + 8);
        let counter = u64::from_be_bytes(head[MESSAGE.len()..].try_into().expect("8 bytes"));
        if counter <= self.last_recv {
            return Err(CurveError::Replay {
                nonce: counter,
                last: self.last_recv,
            });
        }
        let nonce = short_nonce(self.recv_prefix, counter);
        if !open_in_place(&self.cipher, &nonce, boxed) {
            return Err(CurveError::Crypto(
                "a CURVE MESSAGE does not open: it was corrupted or forged in transit",
            ));
        }
        self.last_recv = counter;
        let plain = &boxed[TAG_LEN..];
        let flags = plain[0];
        Ok(Opened {
            more: flags & FLAG_MORE != 0,
            command: flags & FLAG_COMMAND != 0,
            frame: &plain[1..],
        })
    }

    /// Opens the MESSAGE `body` into `out` (cleared first; its capacity is reused): the
    /// frame is borrowed from `out`.
    #[cfg(test)]
    pub(crate) fn open<'a>(
        &mut self,
        body: &[u8],
        out: &'a mut Vec<u8>,
    ) -> Result<Opened<'a>, CurveError> {
        out.clear();
        out.extend_from_slice(body);
        self.open_in_place(out)
    }
}

impl std::fmt::Debug for CurveSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CurveSession")
            .field("next_send", &self.next_send)
            .field("last_recv", &self.last_recv)
            .finish_non_exhaustive()
    }
}
