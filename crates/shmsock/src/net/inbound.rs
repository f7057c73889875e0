//! [`Inbound`]: a connection's received bytes and the ZMTP frame parser that walks them.
//!
//! Two rules shape it, both about what a remote peer can make us do:
//!
//! - **Memory follows bytes that arrived, never a length a peer announced.** The buffer
//!   starts at [`INITIAL_BYTES`] and doubles only when the bytes it holds need it (a frame
//!   that announces 60 MiB and sends nothing more costs nothing more). A frame body longer
//!   than the message limit is refused from its header alone. The headers of a multipart
//!   message are dropped as its frames complete (the bodies are moved together), so a
//!   peer streaming empty frames with the MORE flag costs no memory at all.
//! - **Each byte is parsed once.** The parser keeps its place across reads: a message that
//!   arrives over many reads is not rescanned from its start after each one.
//!
//! ```text
//! buf:  [ consumed | payload so far (bodies moved together) | gap | unparsed ... | spare ]
//!       0          head                                       ^pos               tail
//! ```
//!
//! A single-frame message is handed out in place (no copy besides the caller's); only the
//! later bodies of a multipart message are moved, each once.

use std::ops::Range;
use std::os::fd::AsFd;

use rustix::io::Errno;
use rustix::net::RecvFlags;

use super::zmtp;

/// The buffer's size before anything arrives; it grows only as bytes arrive.
pub(crate) const INITIAL_BYTES: usize = 4 * 1024;
/// Largest buffer kept between messages; a larger one (grown for a big message) is freed
/// once that message is consumed.
const KEEP_MAX_BYTES: usize = 4 << 20;
/// Streaming reads double the buffer up to this size while each read fills all the room.
const STREAM_READ_MAX_BYTES: usize = 64 * 1024;

/// What the next whole item in the buffer is (ranges index [`Inbound::bytes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Item {
    /// A whole message: its payload (every frame's body, concatenated) and frame count.
    Message {
        /// The payload's range.
        payload: Range<usize>,
        /// Number of frames it came in.
        frames: usize,
    },
    /// A whole command frame's body.
    Command {
        /// The body's range.
        body: Range<usize>,
    },
}

/// Received bytes, and where the parser stands in them.
#[derive(Debug)]
pub(crate) struct Inbound {
    buf: Vec<u8>,
    head: usize,
    tail: usize,
    /// Next unparsed byte (a frame header), as an index into `buf`.
    pos: usize,
    /// The current message's first body starts here (valid while `frames > 0`).
    payload_start: usize,
    /// Payload bytes of the current message so far.
    len: usize,
    /// Data frames of the current message so far.
    frames: usize,
    /// Set when an item was returned: the next call consumes it first.
    item_end: Option<usize>,
    /// The item returned last, and whether [`keep`](Inbound::keep) asked to see it again.
    last: Option<Item>,
    kept: bool,
    /// The last read filled all the room there was.
    read_was_full: bool,
    max_len: usize,
    /// Every data frame is an item of its own, whatever its MORE flag (CURVE: each frame
    /// is a sealed MESSAGE, and the MORE that counts is inside the box).
    frames_only: bool,
}

impl Inbound {
    /// An empty buffer for messages (and commands) of at most `max_len` bytes.
    pub(crate) fn new(max_len: usize) -> Inbound {
        Inbound {
            buf: Vec::new(),
            head: 0,
            tail: 0,
            pos: 0,
            payload_start: 0,
            len: 0,
            frames: 0,
            item_end: None,
            last: None,
            kept: false,
            read_was_full: false,
            max_len,
            frames_only: false,
        }
    }

    /// Makes every data frame an item of its own (see the field).
    pub(crate) fn set_frames_only(&mut self, frames_only: bool) {
        self.frames_only = frames_only;
    }

    /// The buffer, writable (to open a sealed frame where it lies).
    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.buf
    }

    /// Changes the largest message accepted from now on.
    pub(crate) fn set_max_len(&mut self, max_len: usize) {
        self.max_len = max_len;
    }

    /// The buffer (index it with the ranges [`next`](Self::next) returns).
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Bytes received and not yet handed out as items (nor dropped as headers).
    #[cfg(test)]
    pub(crate) fn buffered(&self) -> usize {
        self.tail - self.head
    }

    /// Memory the buffer holds, in bytes.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing is buffered (no partial message either).
    pub(crate) fn is_empty(&self) -> bool {
        self.item_end.is_none() && self.head == self.tail && self.frames == 0
    }

    /// Takes `n` raw bytes from the front (the greeting, which is not framed).
    pub(crate) fn take_raw(&mut self, n: usize) -> Option<&[u8]> {
        self.release();
        if self.tail - self.head < n || self.frames > 0 {
            return None;
        }
        let start = self.head;
        self.head += n;
        self.pos = self.head;
        self.item_end = Some(self.head);
        Some(&self.buf[start..start + n])
    }

    /// Keeps the item [`next`](Self::next) returned last: the next call returns it again
    /// (a receive whose buffer was too small leaves the message queued).
    pub(crate) fn keep(&mut self) {
        self.kept = self.item_end.is_some();
    }

    /// Forgets the item returned last (its bytes may be reused from now on).
    fn release(&mut self) {
        self.kept = false;
        self.last = None;
        if let Some(end) = self.item_end.take() {
            self.head = end;
            self.pos = end;
            self.frames = 0;
            self.len = 0;
            if self.head == self.tail {
                self.head = 0;
                self.tail = 0;
                self.pos = 0;
                if self.buf.len() > KEEP_MAX_BYTES {
                    self.buf = Vec::new();
                }
            }
        }
    }

    /// The next whole message or command, parsing on from where the last call stopped;
    /// `Ok(None)` until more bytes arrive. The item's bytes stay valid until the next call
    /// to any `&mut self` method. An error is a protocol violation (the connection must
    /// end).
    pub(crate) fn next(&mut self) -> Result<Option<Item>, String> {
        if self.kept {
            self.kept = false;
            return Ok(self.last.clone());
        }
        let item = self.parse()?;
        self.last.clone_from(&item);
        Ok(item)
    }

    fn parse(&mut self) -> Result<Option<Item>, String> {
        self.release();
        loop {
            let Some(h) = zmtp::decode_header(&self.buf[self.pos..self.tail])? else {
                return Ok(None);
            };
            if h.command && self.frames > 0 {
                return Err("a command frame arrived inside a multipart message".into());
            }
            let room = if h.command {
                self.max_len.max(4096)
            } else {
                self.max_len - self.len
            };
            let body_len = usize::try_from(h.body_len)
                .ok()
                .filter(|&n| n <= room)
                .ok_or_else(|| {
                    format!(
                        "{} of {} bytes or more is larger than max_message_len ({} bytes)",
                        if h.command { "a command" } else { "a message" },
                        u128::from(h.body_len) + self.len as u128,
                        self.max_len
                    )
                })?;
            let start = self.pos + h.header_len;
            let end = start + body_len;
            if end > self.tail {
                return Ok(None);
            }
            if h.command {
                self.item_end = Some(end);
                return Ok(Some(Item::Command { body: start..end }));
            }
            if self.frames_only {
                self.item_end = Some(end);
                return Ok(Some(Item::Message {
                    payload: start..end,
                    frames: 1,
                }));
            }
            if self.frames == 0 {
                self.payload_start = start;
            } else {
                // Move this body next to the previous ones: the header between them goes.
                let to = self.payload_start + self.len;
                self.buf.copy_within(start..end, to);
            }
            self.len += body_len;
            self.frames += 1;
            self.pos = end;
            if !h.more {
                self.item_end = Some(end);
                return Ok(Some(Item::Message {
                    payload: self.payload_start..self.payload_start + self.len,
                    frames: self.frames,
                }));
            }
        }
    }

    /// Room to receive into: compacts (and grows, only as far as the bytes held need) first.
    fn spare(&mut self) -> &mut [u8] {
        self.release();
        if self.frames > 0 {
            // Drop the headers a multipart message left between its bodies and the rest.
            let to = self.payload_start + self.len;
            if to < self.pos {
                self.buf.copy_within(self.pos..self.tail, to);
                self.tail -= self.pos - to;
                self.pos = to;
            }
        }
        let spare = self.buf.len() - self.tail;
        let live = self.tail - self.head;
        if spare >= INITIAL_BYTES && !(self.read_was_full && self.buf.len() < STREAM_READ_MAX_BYTES)
        {
            return &mut self.buf[self.tail..];
        }
        if self.head > 0 {
            let shift = self.head;
            self.buf.copy_within(self.head..self.tail, 0);
            self.head = 0;
            self.tail -= shift;
            self.pos -= shift;
            self.payload_start = self.payload_start.saturating_sub(shift);
        }
        let spare = self.buf.len() - self.tail;
        let grow = spare < INITIAL_BYTES
            || live * 2 > self.buf.len()
            || (self.read_was_full && self.buf.len() < STREAM_READ_MAX_BYTES);
        if grow {
            let new_len = (self.buf.len() * 2).max(INITIAL_BYTES);
            self.buf.resize(new_len, 0);
        }
        &mut self.buf[self.tail..]
    }

    /// Records that `n` bytes were written into [`spare`](Self::spare)'s room.
    fn filled(&mut self, n: usize, room: usize) {
        self.tail += n;
        self.read_was_full = n == room;
    }

    /// Reads once from `sock` without waiting: `Ok(0)` is end of stream; `Err(AGAIN)`
    /// when nothing is there.
    pub(crate) fn read_from(&mut self, sock: impl AsFd) -> Result<usize, Errno> {
        let spare = self.spare();
        let room = spare.len();
        loop {
            match rustix::net::recv(&sock, &mut *spare, RecvFlags::DONTWAIT) {
                Ok((n, _)) => {
                    self.filled(n, room);
                    return Ok(n);
                }
                Err(Errno::INTR) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Appends `bytes` as if received (tests, and bytes decrypted elsewhere).
    #[cfg(test)]
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        let mut at = 0;
        while at < bytes.len() {
            let spare = self.spare();
            let room = spare.len();
            let n = room.min(bytes.len() - at);
            spare[..n].copy_from_slice(&bytes[at..at + n]);
            self.filled(n, room);
            at += n;
        }
    }
}

#[cfg(test)]
mod tests;
