//! `tcp`: a TCP connection over loopback (`127.0.0.1`, an ephemeral port, `TCP_NODELAY`).
//!
//! The listener, the connect and the accept all happen before the fork (a loopback connect
//! completes from the listen backlog, so one thread can do all three); the parent keeps the
//! accepted socket, the child the connecting one. `TCP_NODELAY` turns off Nagle's algorithm so
//! a 64-byte ping leaves at once instead of waiting for the previous one's ACK.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::OwnedFd;

use rustix::net::{
    accept_with, bind, connect, getsockname, listen, socket_with, sockopt, AddressFamily,
    SocketFlags, SocketType,
};

use super::fd_stream::{Ends, FdStream};
use crate::error::LabError;

/// TCP over loopback.
pub const TCP: FdStream = FdStream::new("tcp", loopback_connection, Ends::Duplex);

/// Returns (accepted, connected): both ends of a fresh loopback connection, Nagle off.
fn loopback_connection() -> Result<(OwnedFd, OwnedFd), LabError> {
    let new_socket = || {
        socket_with(
            AddressFamily::INET,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .map_err(LabError::os("creating a TCP socket"))
    };
    let listener = new_socket()?;
    bind(&listener, &SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
        .map_err(LabError::os("binding 127.0.0.1:0"))?;
    listen(&listener, 1).map_err(LabError::os("listening on loopback"))?;
    let addr = getsockname(&listener).map_err(LabError::os("reading the listener's port"))?;
    let addr = SocketAddrV4::try_from(addr).map_err(LabError::os("reading the listener's port"))?;
    let connected = new_socket()?;
    connect(&connected, &addr).map_err(LabError::os("connecting over loopback"))?;
    let accepted = accept_with(&listener, SocketFlags::CLOEXEC)
        .map_err(LabError::os("accepting over loopback"))?;
    for fd in [&accepted, &connected] {
        sockopt::set_tcp_nodelay(fd, true).map_err(LabError::os("setting TCP_NODELAY"))?;
    }
    Ok((accepted, connected))
}
