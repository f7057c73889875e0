//! `udp`: two UDP sockets on loopback (`127.0.0.1`, ephemeral ports), each connected to the
//! other.
//!
//! Latency only: UDP has no flow control, so a sender that outruns its receiver loses
//! datagrams silently, and a throughput number would be a number of losses. In ping-pong only
//! one datagram is ever in flight, so nothing is lost (a lost one would show as a stall).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::OwnedFd;

use rustix::net::{
    bind, connect, getsockname, socket_with, AddressFamily, SocketFlags, SocketType,
};

use super::fd_msg::FdMsgSide;
use super::latency_only::{Carries, LatencyOnly};
use super::Pair;
use crate::error::LabError;

/// Largest UDP payload over IPv4 (65,535 − 8-byte UDP header − 20-byte IP header).
const UDP_MSG_MAX_BYTES: usize = 65_507;

/// UDP over loopback.
pub const UDP: LatencyOnly = LatencyOnly::new(
    "udp",
    "streaming (no flow control: a fast sender loses datagrams)",
    Carries::UpTo(UDP_MSG_MAX_BYTES),
    udp_pair,
);

/// Both sides of the ping-pong, before the fork.
fn udp_pair(_size: usize) -> Result<Pair, LabError> {
    let a = bound_socket()?;
    let b = bound_socket()?;
    connect(&a, &local_addr(&b)?).map_err(LabError::os("connecting a UDP socket"))?;
    connect(&b, &local_addr(&a)?).map_err(LabError::os("connecting a UDP socket"))?;
    Ok(Pair {
        parent: Box::new(FdMsgSide::new(a)),
        child: Box::new(FdMsgSide::new(b)),
    })
}

fn bound_socket() -> Result<OwnedFd, LabError> {
    let fd = socket_with(
        AddressFamily::INET,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(LabError::os("creating a UDP socket"))?;
    bind(&fd, &SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
        .map_err(LabError::os("binding a UDP socket to 127.0.0.1:0"))?;
    Ok(fd)
}

fn local_addr(fd: &OwnedFd) -> Result<SocketAddrV4, LabError> {
    let addr = getsockname(fd).map_err(LabError::os("reading a UDP socket's port"))?;
    SocketAddrV4::try_from(addr).map_err(LabError::os("reading a UDP socket's port"))
}
