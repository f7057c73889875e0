//! The ZMTP handshake of a new connection: greetings both ways, then one READY command
//! each way whose `Socket-Type` must pair with ours (RFC 23's table: PAIR with PAIR, PUB
//! with SUB/XSUB, SUB with PUB/XPUB). Everything that goes wrong is [`Error::Handshake`].

use std::os::fd::OwnedFd;
use std::time::Duration;

use super::super::zmtp::{self, Mechanism, Scan, SocketType};
use super::NetConn;
use crate::error::{Error, Result};
use crate::vocabulary::Mode;

impl NetConn {
    /// Runs the ZMTP handshake (greeting, READY with our `Socket-Type`) on a connected
    /// socket, within `timeout`; the peer must announce a type that pairs with ours.
    pub(crate) fn handshake(
        endpoint: String,
        sock: OwnedFd,
        peer_pid: i32,
        max_len: usize,
        timeout: Duration,
        socket_type: SocketType,
    ) -> Result<NetConn> {
        let mut c = NetConn::new(endpoint, sock, peer_pid, max_len, socket_type);
        let mode = Mode::timeout(timeout);
        let handshake_err = |c: &NetConn, e: Error| match e {
            Error::TimedOut => {
                c.handshake_error("the peer did not complete the ZMTP handshake in time")
            }
            Error::Protocol { what, .. } => c.handshake_error(&what),
            e if e.is_disconnect() => {
                c.handshake_error("the peer hung up during the ZMTP handshake")
            }
            e => e,
        };
        c.write_frame(&zmtp::greeting(Mechanism::Null, false), None, mode)
            .map_err(|e| handshake_err(&c, e))?;
        c.fill(zmtp::GREETING_LEN, mode)
            .map_err(|e| handshake_err(&c, e))?;
        let peer = zmtp::check_greeting(&c.rx[c.rx_head..c.rx_tail], Mechanism::Null, false)
            .map_err(|r| c.handshake_error(&r))?;
        c.peer_minor = peer.minor;
        c.rx_head += zmtp::GREETING_LEN;
        c.write_frame(
            &zmtp::ready_body(socket_type.name()),
            Some((false, true)),
            mode,
        )
        .map_err(|e| handshake_err(&c, e))?;
        let body = loop {
            match zmtp::scan(&c.rx[c.rx_head..c.rx_tail], c.max_len.max(4096))
                .map_err(|r| c.handshake_error(&r))?
            {
                Scan::Incomplete { need } => {
                    c.fill(need, mode).map_err(|e| handshake_err(&c, e))?;
                }
                Scan::Command { body, consumed } => {
                    let b = c.rx[c.rx_head + body.start..c.rx_head + body.end].to_vec();
                    c.rx_head += consumed;
                    break b;
                }
                Scan::Message { .. } => {
                    return Err(c.handshake_error("the peer sent a message before READY"))
                }
            }
        };
        let (name, data) = zmtp::split_command(&body).map_err(|r| c.handshake_error(&r))?;
        if name == b"ERROR" {
            let reason = String::from_utf8_lossy(data.get(1..).unwrap_or_default());
            return Err(c.handshake_error(&format!("the peer refused us: {reason}")));
        }
        if name != b"READY" {
            let name = String::from_utf8_lossy(name);
            return Err(c.handshake_error(&format!("expected READY, got command {name:?}")));
        }
        match zmtp::property(data, "Socket-Type").map_err(|r| c.handshake_error(&r))? {
            Some(t) if socket_type.accepts(t) => Ok(c),
            Some(t) => {
                let ours = match socket_type {
                    SocketType::Pair => "Conn",
                    SocketType::Pub => "Publisher",
                    SocketType::Sub => "Subscriber",
                };
                Err(c.handshake_error(&format!(
                    "the peer is a ZeroMQ {} socket; {ours} speaks {} and only pairs with {}",
                    String::from_utf8_lossy(t),
                    socket_type.name(),
                    socket_type.peers().join(" or ")
                )))
            }
            None => Err(c.handshake_error("the peer's READY has no Socket-Type")),
        }
    }

    fn handshake_error(&self, reason: &str) -> Error {
        Error::Handshake {
            endpoint: self.endpoint.clone(),
            reason: reason.to_owned(),
        }
    }
}
