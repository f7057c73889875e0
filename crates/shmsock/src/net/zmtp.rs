//! ZMTP 3.x wire format ([RFC 23](https://rfc.zeromq.org/spec/23/), 3.0, and
//! [RFC 37](https://rfc.zeromq.org/spec/37/), 3.1): the greeting, frames and commands.
//! Pure functions over byte slices; the socket I/O lives in [`super::stream`].
//!
//! ```text
//! greeting (64 bytes, each side sends one, then reads the peer's):
//!   0xFF  8 x 0x00  0x7F | major=3 minor=1 | mechanism, "NULL" or "CURVE", 0-padded to 20 |
//!   as-server (0, or 1 for the CURVE server) | 31 x 0x00
//! frame:
//!   flags (1 byte: bit0 MORE, bit1 LONG, bit2 COMMAND, others 0)
//!   size  (1 byte, or 8 bytes big-endian when LONG)
//!   body  (size bytes)
//! command body:  name-len (1 byte) name  data
//! READY data:    { name-len (1) name  value-len (4, big-endian) value }*
//! ```
//!
//! After the greetings the NULL mechanism exchanges one READY command each way, carrying the
//! `Socket-Type` property (`PAIR` for `Conn`, `PUB`/`SUB` for pub/sub). Then both sides send
//! messages: a message is one or more frames, all but the last with MORE set. (The CURVE
//! mechanism's commands and its encrypted MESSAGE frames are in [`super::curve`].) A peer
//! that refuses the handshake sends an ERROR command (`5 "ERROR" reason-len reason`) and
//! closes.
//!
//! ```text
//! SUB -> PUB, ZMTP 3.1:  command SUBSCRIBE: 9 "SUBSCRIBE" prefix | command CANCEL: 6 "CANCEL" prefix
//! SUB -> PUB, ZMTP 3.0:  message: 0x01 prefix (subscribe) | 0x00 prefix (cancel)
//! ```

/// Length of the greeting, in bytes.
pub(crate) const GREETING_LEN: usize = 64;
/// The ZMTP major version we speak.
pub(crate) const VERSION_MAJOR: u8 = 3;
/// The ZMTP minor version we announce (3.1; we accept 3.0 peers too).
pub(crate) const VERSION_MINOR: u8 = 1;
/// Frame flag: more frames of this message follow.
pub(crate) const FLAG_MORE: u8 = 0x01;
/// Frame flag: the size field is 8 bytes.
pub(crate) const FLAG_LONG: u8 = 0x02;
/// Frame flag: this frame is a command, not message data.
pub(crate) const FLAG_COMMAND: u8 = 0x04;
/// Longest frame header (flags + 8-byte size).
pub(crate) const HEADER_MAX_LEN: usize = 9;

/// A ZMTP security mechanism (RFC 37's greeting names it; both peers must name the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mechanism {
    /// No security: the peers exchange READY commands in clear (RFC 37).
    Null,
    /// CurveZMQ (RFC 26) under ZMTP-CURVE (RFC 25): authenticated, encrypted; one peer is the
    /// server (it holds the long-term key the other must know), the other the client.
    Curve,
}

impl Mechanism {
    /// The name in the greeting.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Mechanism::Null => "NULL",
            Mechanism::Curve => "CURVE",
        }
    }

    /// What this side calls the mechanism in an error message.
    fn describe(self) -> &'static str {
        match self {
            Mechanism::Null => "NULL (no security)",
            Mechanism::Curve => "CURVE (encryption and authentication)",
        }
    }
}

/// What the peer's greeting says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PeerGreeting {
    /// ZMTP major version (3).
    pub(crate) major: u8,
    /// ZMTP minor version (0 or 1).
    pub(crate) minor: u8,
    /// The peer's security mechanism (always ours when [`check_greeting`] accepts it).
    pub(crate) mechanism: Mechanism,
    /// The peer's as-server flag (meaningful for CURVE only, and only when set: libzmq
    /// sends 0 even as a CURVE server).
    pub(crate) as_server: bool,
}

/// Our greeting: ZMTP 3.1, `mechanism`, and whether we are its server (for CURVE, the side
/// holding the long-term key the other side knows; RFC 37 says NULL sends 0).
pub(crate) fn greeting(mechanism: Mechanism, as_server: bool) -> [u8; GREETING_LEN] {
    let mut g = [0u8; GREETING_LEN];
    g[0] = 0xFF;
    g[9] = 0x7F;
    g[10] = VERSION_MAJOR;
    g[11] = VERSION_MINOR;
    let name = mechanism.name().as_bytes();
    g[12..12 + name.len()].copy_from_slice(name);
    g[32] = u8::from(as_server && mechanism != Mechanism::Null);
    g
}

/// Checks the peer's greeting against our `mechanism` (and, for CURVE, our `as_server`
/// role: two servers are refused; two clients cannot be told apart from a client and a
/// libzmq server, which always sends as-server 0). On a mismatch the error says which
/// side asked for what.
pub(crate) fn check_greeting(
    g: &[u8],
    mechanism: Mechanism,
    as_server: bool,
) -> Result<PeerGreeting, String> {
    if g.len() < GREETING_LEN {
        return Err(format!("greeting is {} bytes, expected 64", g.len()));
    }
    if g[0] != 0xFF || g[9] & 0x01 == 0 {
        return Err(format!(
            "peer does not speak ZMTP (greeting starts {:02x?}); is this a ZeroMQ socket?",
            &g[..10]
        ));
    }
    let (major, minor) = (g[10], g[11]);
    if major < VERSION_MAJOR {
        return Err(format!(
            "peer speaks ZMTP {major}.{minor}; shmsock needs ZMTP 3.x (libzmq 4 or later)"
        ));
    }
    let field = &g[12..32];
    let end = field.iter().position(|&b| b == 0).unwrap_or(20);
    let name = &field[..end];
    let peer = match name {
        _ if field[end..].iter().any(|&b| b != 0) => None,
        b"NULL" => Some(Mechanism::Null),
        b"CURVE" => Some(Mechanism::Curve),
        _ => None,
    }
    .ok_or_else(|| {
        format!(
            "peer asks for security mechanism {:?}; shmsock supports NULL and CURVE",
            String::from_utf8_lossy(name)
        )
    })?;
    if peer != mechanism {
        return Err(format!(
            "security mismatch: the peer uses {}, this side uses {}; configure both sides \
             with the same security",
            peer.describe(),
            mechanism.describe()
        ));
    }
    // libzmq (4.3) sends as-server 0 whatever its role and never reads the peer's, so only
    // a peer that claims to be the server while we are one is known to be wrong: two
    // clients look like a client and a libzmq server.
    let peer_server = g[32] & 0x01 != 0;
    if mechanism == Mechanism::Curve && peer_server && as_server {
        return Err(
            "both sides are CURVE servers: exactly one side (usually the one that \
             binds) is the server, with a secret key; the other is a client that knows the \
             server's public key"
                .into(),
        );
    }
    Ok(PeerGreeting {
        major,
        minor,
        mechanism: peer,
        as_server: peer_server,
    })
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    /// More frames of this message follow.
    pub(crate) more: bool,
    /// The frame is a command.
    pub(crate) command: bool,
    /// Body length in bytes.
    pub(crate) body_len: u64,
    /// Length of the header itself (2 or 9).
    pub(crate) header_len: usize,
}

/// Decodes the header at the start of `buf`: `Ok(None)` if `buf` is too short to tell.
pub(crate) fn decode_header(buf: &[u8]) -> Result<Option<Header>, String> {
    let Some(&flags) = buf.first() else {
        return Ok(None);
    };
    if flags & !(FLAG_MORE | FLAG_LONG | FLAG_COMMAND) != 0 {
        return Err(format!("frame flags {flags:#04x} have reserved bits set"));
    }
    let (more, command) = (flags & FLAG_MORE != 0, flags & FLAG_COMMAND != 0);
    if more && command {
        return Err("a command frame has the MORE flag set".into());
    }
    let (body_len, header_len) = if flags & FLAG_LONG != 0 {
        let Some(size) = buf.get(1..9) else {
            return Ok(None);
        };
        let size = u64::from_be_bytes(size.try_into().expect("slice of 8 bytes"));
        (size, 9)
    } else {
        let Some(&size) = buf.get(1) else {
            return Ok(None);
        };
        (u64::from(size), 2)
    };
    Ok(Some(Header {
        more,
        command,
        body_len,
        header_len,
    }))
}

/// Encodes a frame header for a body of `len` bytes into `out`; returns its length.
pub(crate) fn encode_header(
    len: usize,
    more: bool,
    command: bool,
    out: &mut [u8; HEADER_MAX_LEN],
) -> usize {
    let mut flags = 0;
    if more {
        flags |= FLAG_MORE;
    }
    if command {
        flags |= FLAG_COMMAND;
    }
    if len <= 255 {
        out[0] = flags;
        out[1] = len as u8;
        2
    } else {
        out[0] = flags | FLAG_LONG;
        out[1..9].copy_from_slice(&(len as u64).to_be_bytes());
        9
    }
}

/// A parsed command body: its name and data.
pub(crate) fn split_command(body: &[u8]) -> Result<(&[u8], &[u8]), String> {
    let (&n, rest) = body
        .split_first()
        .ok_or_else(|| "empty command frame".to_string())?;
    let n = usize::from(n);
    if rest.len() < n || n == 0 {
        return Err("command name is empty or longer than the frame".into());
    }
    Ok(rest.split_at(n))
}

/// The metadata (property list) announcing `socket_type`: the data of a NULL READY, and
/// what a CURVE INITIATE or READY carries in its box.
pub(crate) fn socket_type_metadata(socket_type: &str) -> Vec<u8> {
    let mut b = Vec::with_capacity(16 + socket_type.len());
    push_property(&mut b, "Socket-Type", socket_type.as_bytes());
    b
}

/// Appends one metadata property (`name` up to 255 bytes) to a property list.
pub(crate) fn push_property(list: &mut Vec<u8>, name: &str, value: &[u8]) {
    debug_assert!(name.len() <= 255 && u32::try_from(value.len()).is_ok());
    list.push(name.len() as u8);
    list.extend_from_slice(name.as_bytes());
    list.extend_from_slice(&(value.len() as u32).to_be_bytes());
    list.extend_from_slice(value);
}

/// The body of a READY command with the given `Socket-Type`.
#[cfg(test)]
pub(crate) fn ready_body(socket_type: &str) -> Vec<u8> {
    ready_with(&socket_type_metadata(socket_type))
}

/// The body of a READY command carrying `metadata` (a property list).
pub(crate) fn ready_with(metadata: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(6 + metadata.len());
    b.push(5);
    b.extend_from_slice(b"READY");
    b.extend_from_slice(metadata);
    b
}

/// The body of an ERROR command (RFC 37): a peer sends it during the handshake, then
/// closes. `reason` is cut to 255 bytes (at a character boundary). libzmq's servers send a
/// ZAP status code (`"400"`: the client is not authorized), which libzmq clients report as
/// an authentication failure.
pub(crate) fn error_body(reason: &str) -> Vec<u8> {
    let mut end = reason.len().min(255);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut b = Vec::with_capacity(7 + end);
    b.push(5);
    b.extend_from_slice(b"ERROR");
    b.push(end as u8);
    b.extend_from_slice(&reason.as_bytes()[..end]);
    b
}

/// The reason of an ERROR command's data (`data` after the name): its length-prefixed text.
pub(crate) fn error_reason(data: &[u8]) -> String {
    let len = data.first().map_or(0, |&n| usize::from(n));
    let text = data.get(1..).unwrap_or_default();
    String::from_utf8_lossy(&text[..len.min(text.len())]).into_owned()
}

/// The ZeroMQ socket type one side of a connection announces in its READY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SocketType {
    /// `Conn`: pairs with PAIR only.
    Pair,
    /// `Publisher`: pairs with SUB and XSUB.
    Pub,
    /// `Subscriber`: pairs with PUB and XPUB.
    Sub,
}

impl SocketType {
    /// The name in the `Socket-Type` property.
    pub(crate) fn name(self) -> &'static str {
        match self {
            SocketType::Pair => "PAIR",
            SocketType::Pub => "PUB",
            SocketType::Sub => "SUB",
        }
    }

    /// The peer socket types this one may talk to (RFC 23's compatibility table).
    pub(crate) fn peers(self) -> &'static [&'static str] {
        match self {
            SocketType::Pair => &["PAIR"],
            SocketType::Pub => &["SUB", "XSUB"],
            SocketType::Sub => &["PUB", "XPUB"],
        }
    }

    /// Whether a peer announcing `peer` is valid for us.
    pub(crate) fn accepts(self, peer: &[u8]) -> bool {
        self.peers()
            .iter()
            .any(|p| peer.eq_ignore_ascii_case(p.as_bytes()))
    }
}

/// A subscription change a SUB/XSUB peer sent: as a ZMTP 3.1 command (`SUBSCRIBE`/`CANCEL`)
/// or, from ZMTP 3.0 peers, as a message whose first byte is 1 (subscribe) or 0 (cancel).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Subscription {
    /// Subscribe to this prefix.
    Subscribe(Vec<u8>),
    /// Cancel the subscription to this prefix.
    Cancel(Vec<u8>),
}

impl Subscription {
    /// Parses a command (`name`, `data`): `None` if it is not SUBSCRIBE or CANCEL.
    pub(crate) fn from_command(name: &[u8], data: &[u8]) -> Option<Subscription> {
        match name {
            b"SUBSCRIBE" => Some(Subscription::Subscribe(data.to_vec())),
            b"CANCEL" => Some(Subscription::Cancel(data.to_vec())),
            _ => None,
        }
    }

    /// Parses a ZMTP 3.0 subscription message: `None` for any other message (which a PUB
    /// ignores).
    pub(crate) fn from_message(msg: &[u8]) -> Option<Subscription> {
        match msg.split_first() {
            Some((1, topic)) => Some(Subscription::Subscribe(topic.to_vec())),
            Some((0, topic)) => Some(Subscription::Cancel(topic.to_vec())),
            _ => None,
        }
    }
}

/// The body of a ZMTP 3.1 SUBSCRIBE (`subscribe`) or CANCEL command for `prefix`.
pub(crate) fn subscription_command(subscribe: bool, prefix: &[u8]) -> Vec<u8> {
    let name: &[u8] = if subscribe { b"SUBSCRIBE" } else { b"CANCEL" };
    let mut b = Vec::with_capacity(1 + name.len() + prefix.len());
    b.push(name.len() as u8);
    b.extend_from_slice(name);
    b.extend_from_slice(prefix);
    b
}

/// The ZMTP 3.0 subscription message for `prefix`: 1 (subscribe) or 0 (cancel), then it.
pub(crate) fn subscription_message(subscribe: bool, prefix: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(1 + prefix.len());
    b.push(u8::from(subscribe));
    b.extend_from_slice(prefix);
    b
}

/// Looks `name` up (case-insensitively) in metadata: the data of a NULL READY command, or
/// the property list in a CURVE INITIATE or READY box.
pub(crate) fn property<'a>(mut data: &'a [u8], name: &str) -> Result<Option<&'a [u8]>, String> {
    let mut found = None;
    while !data.is_empty() {
        let n = usize::from(data[0]);
        let key = data
            .get(1..1 + n)
            .ok_or("a metadata property name overruns the command")?;
        let vlen = data
            .get(1 + n..5 + n)
            .ok_or("a metadata property length overruns the command")?;
        let vlen = u32::from_be_bytes(vlen.try_into().expect("slice of 4 bytes")) as usize;
        let value = data
            .get(5 + n..5 + n + vlen)
            .ok_or("a metadata property value overruns the command")?;
        if key.eq_ignore_ascii_case(name.as_bytes()) {
            found = Some(value);
        }
        data = &data[5 + n + vlen..];
    }
    Ok(found)
}

/// The body of a ZMTP 3.1 PING command whose TTL (how long the peer may wait for traffic
/// from us before it closes the connection) is `ttl`, in tenths of a second, saturated.
pub(crate) fn ping_body(ttl: std::time::Duration) -> Vec<u8> {
    let ttl = u16::try_from(ttl.as_millis() / 100).unwrap_or(u16::MAX);
    let mut b = Vec::with_capacity(7);
    b.push(4);
    b.extend_from_slice(b"PING");
    b.extend_from_slice(&ttl.to_be_bytes());
    b
}

/// The PONG body answering the PING command data `ping` (TTL, then up to 16 context bytes).
pub(crate) fn pong_body(ping: &[u8]) -> Vec<u8> {
    let context = ping.get(2..).unwrap_or_default();
    let context = &context[..context.len().min(16)];
    let mut b = Vec::with_capacity(5 + context.len());
    b.push(4);
    b.extend_from_slice(b"PONG");
    b.extend_from_slice(context);
    b
}

#[cfg(test)]
mod tests;
