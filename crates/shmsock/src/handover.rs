//! Handing a network connection's data over to shared memory: the vocabulary that the
//! `net` and `shm` transports share for it (they never import each other), and the proof
//! that the process at the other end of a TCP or Unix connection is the one knocking on a
//! shared-memory rendezvous.
//!
//! ```text
//!  publisher (tcp:// or unix://)                      subscriber (ours, same host)
//!  ─ handshake: READY carries X-Shmsock-Shm = "<shm name> <token>"  ──▶  offer kept
//!                                                    connects shm://<name>; before its hello
//!                                                    it proves the listener's pid holds the
//!                                                    other end of its TCP connection
//!  shm accept thread: the hello carries the token; ◀── hello + token
//!  the book says which connection it was given to;
//!  the subscriber's pid must hold that connection's
//!  other end, else refused
//!  next send: the connection gets HANDOVER(seq) instead  ──▶  reads tcp up to HANDOVER(seq),
//!  of the message; it gets nothing more                      then the ring from `seq` on
//! ```
//!
//! A token is 64 random bits, issued per connection, sent only inside that connection's
//! handshake (sealed under CURVE) and forgotten when the connection ends ([`Ticket`]). The
//! proof reads `/proc/net/tcp{,6}` (which socket has these two addresses, in this network
//! namespace) and `/proc/<pid>/fd` (does the process hold it); a process we may not inspect
//! (another uid, unless we are root) proves nothing, so the connection stays on the network.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::BorrowedFd;
use std::sync::{Arc, Mutex};

/// The ZMTP metadata property that carries an offer: `"<shm name> <token in hex>"`.
/// ZeroMQ peers ignore properties they do not know.
pub(crate) const OFFER_PROPERTY: &str = "X-Shmsock-Shm";

/// The ZMTP command a publisher sends instead of the first message an upgraded subscriber
/// reads from shared memory; its data is that message's sequence number (8 bytes,
/// big-endian). Only a subscriber that took the offer ever receives it.
pub(crate) const HANDOVER_COMMAND: &[u8] = b"X-SHMSOCK-HANDOVER";

/// A secret that ties a shared-memory subscriber to the network connection it came from.
pub(crate) type Token = u64;

/// A fresh random token (never 0).
pub(crate) fn new_token() -> Token {
    let mut b = [0u8; 8];
    loop {
        match rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty()) {
            Ok(8) => {}
            Ok(_) | Err(rustix::io::Errno::INTR) => continue,
            // getrandom(2) exists since Linux 3.17; without it no token can be trusted.
            Err(e) => panic!("getrandom failed: {e}"),
        }
        let t = u64::from_ne_bytes(b);
        if t != 0 {
            return t;
        }
    }
}

/// An offer as it travels: the shm:// name to connect to and the token to present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Offer {
    /// The `shm://` name (without the scheme).
    pub(crate) name: String,
    /// The token to present in the hello.
    pub(crate) token: Token,
}

impl Offer {
    /// The property value: `"<name> <token hex>"`.
    pub(crate) fn encode(&self) -> Vec<u8> {
        format!("{} {:016x}", self.name, self.token).into_bytes()
    }

    /// Parses a property value from a peer (hostile input): `None` if it is not an offer
    /// we understand (then there is no upgrade, and no error: it is only an offer).
    pub(crate) fn decode(value: &[u8]) -> Option<Offer> {
        let text = std::str::from_utf8(value).ok()?;
        let (name, token) = text.split_once(' ')?;
        if token.len() != 16 {
            return None;
        }
        let token = u64::from_str_radix(token, 16).ok().filter(|&t| t != 0)?;
        crate::endpoint::Endpoint::parse(&format!("shm://{name}")).ok()?;
        Some(Offer {
            name: name.to_owned(),
            token,
        })
    }
}

/// Where the other end of a network connection is, as the side holding this end sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PeerEnd {
    /// A `unix://` connection: the peer's pid, from `SO_PEERCRED`.
    Unix { pid: i32 },
    /// A `tcp://` connection: our address and the peer's.
    Tcp {
        ours: SocketAddr,
        theirs: SocketAddr,
    },
}

impl PeerEnd {
    /// Whether process `pid` holds the other end of this connection (see the module docs).
    pub(crate) fn held_by(&self, pid: i32) -> Result<(), String> {
        match *self {
            PeerEnd::Unix { pid: peer } if peer == pid && pid > 0 => Ok(()),
            PeerEnd::Unix { pid: peer } => Err(format!(
                "the connection's peer is pid {peer}, the shared-memory peer pid {pid}"
            )),
            // The other end's socket has their address as its local one, ours as remote.
            PeerEnd::Tcp { ours, theirs } => holds_tcp_socket(pid, theirs, ours),
        }
    }
}

/// Where the other end of the connected socket `sock` is: its TCP addresses, or for a Unix
/// socket the peer's pid (`SO_PEERCRED`, read when it was accepted or connected).
pub(crate) fn peer_end(sock: BorrowedFd<'_>, unix_peer_pid: i32) -> Option<PeerEnd> {
    let ours = rustix::net::getsockname(sock).ok()?;
    match SocketAddr::try_from(ours) {
        Ok(ours) => {
            let theirs = rustix::net::getpeername(sock).ok()??;
            let theirs = SocketAddr::try_from(theirs).ok()?;
            Some(PeerEnd::Tcp { ours, theirs })
        }
        Err(_) => (unix_peer_pid > 0).then_some(PeerEnd::Unix { pid: unix_peer_pid }),
    }
}

/// The publisher's record of the offers it made: token → the connection's other end.
#[derive(Debug, Default)]
pub(crate) struct Book {
    offers: Mutex<HashMap<Token, PeerEnd>>,
}

impl Book {
    /// Records an offer for the connection whose other end is `peer`; forgotten when the
    /// ticket is dropped (with the connection).
    pub(crate) fn issue(self: &Arc<Self>, peer: PeerEnd) -> Ticket {
        let mut offers = self.offers.lock().unwrap_or_else(|p| p.into_inner());
        let token = loop {
            let t = new_token();
            if !offers.contains_key(&t) {
                break t;
            }
        };
        offers.insert(token, peer);
        Ticket {
            book: self.clone(),
            token,
        }
    }

    /// The connection `token` was issued to, if it is still open.
    pub(crate) fn lookup(&self, token: Token) -> Option<PeerEnd> {
        let offers = self.offers.lock().unwrap_or_else(|p| p.into_inner());
        offers.get(&token).copied()
    }

    /// Admits a shared-memory subscriber `pid` that presented `token` (`None`: it came
    /// without one). With `tokens_only`, a subscriber without a token is refused (the
    /// hidden ring of a network-only publisher); with a token, the connection it names must
    /// be open and its other end held by `pid`.
    pub(crate) fn admit(
        &self,
        pid: i32,
        token: Option<Token>,
        tokens_only: bool,
    ) -> Result<(), String> {
        match token {
            None if tokens_only => {
                Err("this ring only takes over network connections (no token)".into())
            }
            None => Ok(()),
            Some(t) => match self.lookup(t) {
                None => Err("unknown token (no such connection, or it ended)".into()),
                Some(peer) => peer.held_by(pid),
            },
        }
    }
}

/// An offer on record for as long as its connection lives.
#[derive(Debug)]
pub(crate) struct Ticket {
    book: Arc<Book>,
    token: Token,
}

impl Ticket {
    /// The token offered.
    pub(crate) fn token(&self) -> Token {
        self.token
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut offers = self.book.offers.lock().unwrap_or_else(|p| p.into_inner());
        offers.remove(&self.token);
    }
}

/// A publisher's ring that takes over network connections: the offers made, and whether
/// it takes only subscribers that present one (the hidden ring of a network-only
/// publisher) or also ordinary `shm://` subscribers.
#[derive(Debug, Clone)]
pub(crate) struct TakeOver {
    /// The offers made.
    pub(crate) book: Arc<Book>,
    /// Refuse subscribers without a token.
    pub(crate) tokens_only: bool,
}

impl TakeOver {
    /// Admits a shared-memory subscriber `pid` that presented `token` (see [`Book::admit`]).
    pub(crate) fn admit(&self, pid: i32, token: Option<Token>) -> Result<(), String> {
        self.book.admit(pid, token, self.tokens_only)
    }
}

/// Whether process `pid` holds a TCP socket whose local address is `local` and remote
/// address `remote` (an established connection in our network namespace).
pub(crate) fn holds_tcp_socket(
    pid: i32,
    local: SocketAddr,
    remote: SocketAddr,
) -> Result<(), String> {
    let inode = tcp_socket_inode(local, remote)?.ok_or_else(|| {
        format!("no TCP socket {local} -> {remote} in this network namespace (another host?)")
    })?;
    let dir = format!("/proc/{pid}/fd");
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("reading {dir}: {e}"))?;
    let want = format!("socket:[{inode}]");
    for entry in entries.flatten() {
        if std::fs::read_link(entry.path()).is_ok_and(|l| l.as_os_str() == want.as_str()) {
            return Ok(());
        }
    }
    Err(format!(
        "pid {pid} does not hold the TCP socket {local} -> {remote} (inode {inode})"
    ))
}

/// The inode of the TCP socket `local` -> `remote`, from `/proc/net/tcp` or `tcp6`.
fn tcp_socket_inode(local: SocketAddr, remote: SocketAddr) -> Result<Option<u64>, String> {
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = match std::fs::read_to_string(table) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("reading {table}: {e}")),
        };
        if let Some(inode) = find_inode(&text, local, remote) {
            return Ok(Some(inode));
        }
    }
    Ok(None)
}

/// Finds the row of `table` (the text of `/proc/net/tcp{,6}`) with these addresses.
fn find_inode(table: &str, local: SocketAddr, remote: SocketAddr) -> Option<u64> {
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (l, r, inode) = (f.get(1)?, f.get(2)?, f.get(9)?);
        let same =
            |hex: &str, want: SocketAddr| parse_addr(hex).is_some_and(|a| same_addr(a, want));
        (same(l, local) && same(r, remote))
            .then(|| inode.parse().ok())
            .flatten()
            .filter(|&i| i != 0)
    })
}

/// Equal addresses, an IPv4 one and its IPv4-mapped IPv6 form counting as equal.
fn same_addr(a: SocketAddr, b: SocketAddr) -> bool {
    let canon = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    a.port() == b.port() && canon(a.ip()) == canon(b.ip())
}

/// Parses `/proc/net/tcp`'s `ADDR:PORT`: the address as the kernel's 32-bit words in host
/// order, in hex (8 digits for IPv4, 32 for IPv6), the port in hex.
fn parse_addr(hex: &str) -> Option<SocketAddr> {
    let (addr, port) = hex.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let words: Option<Vec<u32>> = (0..addr.len() / 8)
        .map(|i| u32::from_str_radix(addr.get(i * 8..i * 8 + 8)?, 16).ok())
        .collect();
    let bytes: Vec<u8> = words?.iter().flat_map(|w| w.to_ne_bytes()).collect();
    let ip = match bytes.len() {
        4 => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn offers_round_trip_and_garbage_is_no_offer() {
        let offer = Offer {
            name: "upgrade.1.tcp-127.0.0.1-5556".into(),
            token: 0x0123_4567_89ab_cdef,
        };
        assert_eq!(Offer::decode(&offer.encode()), Some(offer));
        for bad in [
            &b""[..],
            b"name",
            b"name 12",
            b"name 0000000000000000",
            b"../etc 0123456789abcdef",
            b"a b 0123456789abcdef",
            b"\xff 0123456789abcdef",
        ] {
            assert_eq!(Offer::decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn tokens_are_forgotten_with_their_connection() {
        let book = Arc::new(Book::default());
        let peer = PeerEnd::Unix { pid: 42 };
        let ticket = book.issue(peer);
        let t = ticket.token();
        assert_eq!(book.lookup(t), Some(peer));
        assert!(book.admit(42, Some(t), true).is_ok());
        assert!(book.admit(43, Some(t), true).is_err(), "another pid");
        assert!(
            book.admit(42, None, true).is_err(),
            "no token on a hidden ring"
        );
        assert!(
            book.admit(42, None, false).is_ok(),
            "no token on an open ring"
        );
        drop(ticket);
        assert_eq!(book.lookup(t), None);
        assert!(book.admit(42, Some(t), false).is_err());
    }

    #[test]
    fn proc_net_tcp_addresses_parse() {
        // 127.0.0.1:5556 as the kernel prints it on a little-endian host.
        let v4 = parse_addr(&format!("{:08X}:15B4", u32::from_ne_bytes([127, 0, 0, 1])));
        assert_eq!(v4, Some("127.0.0.1:5556".parse().unwrap()));
        let mut hex = String::new();
        for w in Ipv6Addr::LOCALHOST.octets().chunks(4) {
            hex.push_str(&format!(
                "{:08X}",
                u32::from_ne_bytes(w.try_into().unwrap())
            ));
        }
        assert_eq!(
            parse_addr(&format!("{hex}:0050")),
            Some("[::1]:80".parse().unwrap())
        );
        assert_eq!(parse_addr("zz:1"), None);
        assert!(same_addr(
            "[::ffff:127.0.0.1]:9".parse().unwrap(),
            "127.0.0.1:9".parse().unwrap()
        ));
    }

    #[test]
    fn this_process_holds_its_own_tcp_connection_and_a_stranger_does_not() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let me = std::process::id() as i32;
        // The server side proves that the client's end is held by us.
        let end = PeerEnd::Tcp {
            ours: server.local_addr().unwrap(),
            theirs: server.peer_addr().unwrap(),
        };
        end.held_by(me).unwrap();
        // pid 1 (init) does not hold it.
        assert!(end.held_by(1).is_err());
        // An address pair that does not exist.
        let ghost = PeerEnd::Tcp {
            ours: server.local_addr().unwrap(),
            theirs: "127.0.0.1:1".parse().unwrap(),
        };
        assert!(ghost.held_by(me).is_err());
        drop(client);
    }
}
