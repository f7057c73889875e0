//! A `tcp://` or `unix://` subscriber that moves to its publisher's shared-memory ring when
//! both run on this machine ([`NetLeg`]); the protocol is in [`crate::handover`].
//!
//! ```text
//!  connected (ZMTP) ── offer in READY? ── no ──────────────────────────▶ stays on the network
//!        │ yes: connect shm://<name>, the publisher's pid must hold the other end of our
//!        │ connection (else: stays), present the token (the publisher checks us the same way)
//!        ▼
//!  pending: reads the connection as before ── HANDOVER(k) ──▶ upgraded: reads the ring,
//!                                                              skipping messages below k
//!  upgraded: the ring ends (publisher closed or died) ──▶ reconnects over the network
//! ```
//!
//! No message is lost or repeated across the switch: the publisher sends every message
//! numbered below `k` on the connection and none from `k` on; the ring holds every message
//! from where we joined it (at or below `k`). Topics are applied here, as for any
//! subscriber; `Lagged` counts only messages the connection did not deliver.

use std::time::Instant;

use crate::error::{Error, Result};
use crate::net::subscriber::NetSubscriber;
use crate::net::topics::Topics;
use crate::shm::config::ShmConfig;
use crate::shm::subscriber::ShmSubscriber;
use crate::vocabulary::Mode;

/// A network subscriber, and the ring it reads instead once its publisher handed it over.
pub(crate) struct NetLeg {
    net: NetSubscriber,
    /// The ring we joined, if we took the publisher's offer.
    local: Option<Local>,
    /// How to connect to a ring; `None`: upgrades are off ([`crate::Options::upgrade`]).
    shm: Option<ShmConfig>,
    /// Where messages the connection already delivered are read to, to skip them.
    scratch: Vec<u8>,
}

/// The publisher's ring, joined.
struct Local {
    ring: ShmSubscriber,
    /// `None` while the connection still carries messages (until its HANDOVER); then the
    /// sequence number of the first message the ring delivers.
    from: Option<u64>,
}

impl NetLeg {
    /// Wraps a connected subscriber; takes its publisher's offer if `shm` allows upgrades.
    pub(crate) fn new(net: NetSubscriber, shm: Option<ShmConfig>) -> NetLeg {
        let mut leg = NetLeg {
            net,
            local: None,
            shm,
            scratch: Vec::new(),
        };
        leg.take_offer();
        leg
    }

    /// The network subscriber (to subscribe, close, name the endpoint).
    pub(crate) fn net(&mut self) -> &mut NetSubscriber {
        &mut self.net
    }

    /// The network subscriber, to read.
    pub(crate) fn net_ref(&self) -> &NetSubscriber {
        &self.net
    }

    /// Whether messages now come from the shared-memory ring.
    pub(crate) fn is_upgraded(&self) -> bool {
        matches!(&self.local, Some(Local { from: Some(_), .. }))
    }

    /// The publisher's pid: from the ring once upgraded, else the connection's.
    pub(crate) fn publisher_pid(&self) -> i32 {
        match &self.local {
            Some(Local {
                ring,
                from: Some(_),
            }) => ring.publisher_pid(),
            _ => self.net.publisher_pid(),
        }
    }

    /// Takes the offer of the current connection, if there is one and upgrades are on: joins
    /// the ring (dropping a ring joined for an earlier connection that never handed over).
    fn take_offer(&mut self) {
        let Some(offer) = self.net.take_offer() else {
            return;
        };
        let Some(cfg) = &self.shm else {
            return;
        };
        self.local = None;
        let Some(peer) = self.net.peer_end() else {
            return;
        };
        let endpoint = format!("shm://{}", offer.name);
        let started = Instant::now();
        match ShmSubscriber::connect_handover(endpoint, &offer.name, cfg, offer.token, &peer) {
            Ok(ring) => {
                self.net.expect_handover();
                tracing::debug!(endpoint = %self.net.endpoint(), ring = %offer.name,
                    took = ?started.elapsed(), "joined the publisher's ring; waiting for the handover");
                self.local = Some(Local { ring, from: None });
            }
            // Another machine, another uid, an old publisher: the network it is.
            Err(e) => tracing::debug!(endpoint = %self.net.endpoint(), ring = %offer.name,
                error = %e, "staying on the network"),
        }
    }

    /// Receives the next message (topics are the caller's to apply; `topics` are sent to a
    /// publisher we reconnect to).
    pub(crate) fn recv(&mut self, buf: &mut [u8], mode: Mode, topics: &Topics) -> Result<usize> {
        loop {
            if let Some(Local {
                ring,
                from: Some(from),
            }) = &mut self.local
            {
                match read_ring(ring, *from, &mut self.scratch, buf, mode) {
                    Err(e @ (Error::PeerClosed { .. } | Error::PeerGone { .. })) => {
                        tracing::info!(endpoint = %self.net.endpoint(), error = %e,
                            "the publisher's ring ended; reconnecting over the network");
                        self.local = None;
                    }
                    // Our limit holds on the ring as on the connection: the same error,
                    // and the same way out (a new connection).
                    Ok(n) if n > self.net.max_message_len() => {
                        self.local = None;
                        return Err(Error::Protocol {
                            endpoint: self.net.endpoint().to_owned(),
                            what: format!(
                                "a message of {n} bytes is larger than max_message_len ({} bytes)",
                                self.net.max_message_len()
                            ),
                        });
                    }
                    other => return other,
                }
            }
            let got = self.net.recv(buf, mode, topics);
            if let Some(from) = self.net.take_handover() {
                if let Some(local) = &mut self.local {
                    tracing::info!(endpoint = %self.net.endpoint(), from,
                        "upgraded to shared memory");
                    local.from = Some(from);
                    continue;
                }
            }
            // A connection made by this receive may carry an offer.
            self.take_offer();
            return got;
        }
    }
}

/// Receives from the ring, first reading past (and dropping) messages numbered below
/// `from`, which came over the connection. A lag counts only messages from `from` on.
fn read_ring(
    ring: &mut ShmSubscriber,
    from: u64,
    scratch: &mut Vec<u8>,
    buf: &mut [u8],
    mode: Mode,
) -> Result<usize> {
    while ring.next_seq() < from {
        let before = ring.next_seq();
        match ring.recv(scratch, mode) {
            Ok(_) => {}
            Err(Error::BufferTooSmall { len, .. }) => scratch.resize(len, 0),
            Err(Error::Lagged { endpoint, .. }) => {
                let missed = ring.next_seq().saturating_sub(before.max(from));
                if missed > 0 {
                    return Err(Error::Lagged { endpoint, missed });
                }
            }
            Err(e) => return Err(e),
        }
    }
    ring.recv(buf, mode)
}
