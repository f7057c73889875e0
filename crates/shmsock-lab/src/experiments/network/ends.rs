//! The two ends of one network route, for each library: the sender binds (and, for PAIR,
//! accepts), the receiver connects. Both are [`Side`]s, so the experiment's loops are the
//! same code for shmsock and libzmq.
//!
//! | | shmsock | libzmq |
//! |---|---|---|
//! | PAIR | `Listener::bind` + `accept` / `Conn::connect` | `ZMQ_PAIR` bind / connect |
//! | PUB/SUB | `Publisher::bind` / `Subscriber::connect` | `ZMQ_PUB` bind / `ZMQ_SUB` connect, subscribed to everything |
//! | tcp | `tcp://127.0.0.1:0` | `tcp://127.0.0.1:*` |
//! | ipc | `unix:///tmp/…` | `ipc:///tmp/…` (the same kind of socket file) |
//!
//! shmsock runs with the library's defaults (`Overflow::Block`: a publisher waits for a slow
//! subscriber). libzmq gets high-water marks of [`LIBZMQ_QUEUE_BYTES`] worth of messages on
//! both sides and, on PUB, `ZMQ_XPUB_NODROP`, so it too waits instead of dropping: every
//! message of a run must arrive, for both libraries. Its sockets have send and receive
//! timeouts ([`IO_TIMEOUT`]), so a dead peer is an error, not a hang.
//!
//! Security is a dimension of its own ([`Security`]): NULL, or CURVE (RFC 26 CurveZMQ) with
//! keys made for the run in the parent, before the fork, so both processes have them. The
//! sender is the CURVE server and admits only the receiver's key; the receiver is its
//! client:
//!
//! | | shmsock | libzmq |
//! |---|---|---|
//! | keys | `CurveKeyPair::generate` | `zmq_curve_keypair` |
//! | sender (server) | `Options::curve_secret` + `curve_allow([client])` | `ZMQ_CURVE_SERVER`, its key pair (no ZAP handler: any client key) |
//! | receiver (client) | `Options::curve_secret` + `curve_server(server)` | `ZMQ_CURVE_SERVERKEY`, its key pair |

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use shmsock::{Conn, Listener, Options, Publisher, Subscriber};

use super::{Config, Library, Security, Shape, Transport};
use crate::error::LabError;
use crate::mechanisms::libzmq::{BytesOption, CurveKeyPair, IntOption, Libzmq, Socket, SocketKind};
use crate::mechanisms::shmsock::{lib, retry_refused};
use crate::mechanisms::Side;

/// How long an accept, or a libzmq send or receive, may wait before the run fails.
pub(crate) const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes of messages a libzmq socket may queue: its `ZMQ_SNDHWM`/`ZMQ_RCVHWM` are this many
/// bytes' worth of messages (see [`high_water_mark`]).
pub(crate) const LIBZMQ_QUEUE_BYTES: usize = 16 << 20;

/// The libzmq high-water mark for `size`-byte messages: [`LIBZMQ_QUEUE_BYTES`] worth, at least
/// 16 messages and at most a million (262,144 at 64 B, 4,096 at 4 KiB, 16 at 1 MiB).
pub(crate) fn high_water_mark(size: usize) -> i32 {
    let messages = (LIBZMQ_QUEUE_BYTES / size.max(1)).clamp(16, 1_000_000);
    i32::try_from(messages).unwrap_or(i32::MAX)
}

/// Distinguishes the socket files of one process.
static NEXT_PATH: AtomicU64 = AtomicU64::new(0);

/// The CURVE keys of one run: the server's (the sender, which binds) and the client's, as
/// the route's library takes them (libzmq's Z85 text, or shmsock's `CurveKeyPair`).
#[derive(Debug, Clone)]
pub(crate) struct CurveKeys<K> {
    server: K,
    client: K,
}

/// Everything both ends of one route need, made in the parent before the fork.
pub(crate) struct Setup {
    /// What is measured.
    pub(crate) config: Config,
    /// The loaded libzmq (libzmq routes only).
    zmq: Option<&'static Libzmq>,
    /// The socket file of an ipc route (unused by tcp routes).
    path: PathBuf,
    /// The keys of a libzmq CURVE route.
    keys: Option<CurveKeys<CurveKeyPair>>,
    /// The keys of a shmsock CURVE route.
    shmsock_keys: Option<CurveKeys<shmsock::CurveKeyPair>>,
}

impl Setup {
    /// Prepares `config`: loads libzmq for a libzmq route (before the fork, so the child
    /// inherits it), picks the socket file of an ipc route and makes CURVE keys.
    pub(crate) fn new(config: Config) -> Result<Self, LabError> {
        let zmq = match config.library {
            Library::Libzmq => Some(Libzmq::load().map_err(|why| LabError::Libzmq {
                what: "loading the library",
                detail: why,
            })?),
            Library::Shmsock => None,
        };
        let keys = match (config.security, zmq) {
            (Security::Null, _) | (Security::Curve, None) => None,
            (Security::Curve, Some(zmq)) => {
                if !zmq.has_curve() {
                    return Err(LabError::Libzmq {
                        what: "CURVE",
                        detail: format!(
                            "{} {} was built without CURVE (zmq_has(\"curve\") is 0); install \
                             a libzmq built with libsodium",
                            zmq.library(),
                            zmq.version()
                        ),
                    });
                }
                Some(CurveKeys {
                    server: zmq.curve_keypair()?,
                    client: zmq.curve_keypair()?,
                })
            }
        };
        let shmsock_keys =
            (config.security == Security::Curve && zmq.is_none()).then(|| CurveKeys {
                server: shmsock::CurveKeyPair::generate(),
                client: shmsock::CurveKeyPair::generate(),
            });
        let path = std::env::temp_dir().join(format!(
            "shmsock-lab-net-{}-{}.sock",
            std::process::id(),
            NEXT_PATH.fetch_add(1, Ordering::Relaxed)
        ));
        Ok(Self {
            config,
            zmq,
            path,
            keys,
            shmsock_keys,
        })
    }

    /// The version of the route's library (`4.3.4`; shmsock's is this workspace's).
    pub(crate) fn version(&self) -> String {
        match self.zmq {
            Some(zmq) => zmq.version(),
            None => env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    /// The endpoint the sender binds.
    fn bind_endpoint(&self) -> String {
        match (self.config.transport, self.config.library) {
            (Transport::Tcp, Library::Shmsock) => "tcp://127.0.0.1:0".into(),
            (Transport::Tcp, Library::Libzmq) => "tcp://127.0.0.1:*".into(),
            (Transport::Ipc, _) => self.ipc_endpoint(),
        }
    }

    /// The endpoint the receiver connects to, once the sender has bound `port` (tcp).
    pub(crate) fn connect_endpoint(&self, port: u16) -> String {
        match self.config.transport {
            Transport::Tcp => format!("tcp://127.0.0.1:{port}"),
            Transport::Ipc => self.ipc_endpoint(),
        }
    }

    /// `unix:///tmp/…` for shmsock, `ipc:///tmp/…` for libzmq.
    fn ipc_endpoint(&self) -> String {
        let scheme = match self.config.library {
            Library::Shmsock => "unix",
            Library::Libzmq => "ipc",
        };
        format!("{scheme}://{}", self.path.display())
    }

    /// Removes the socket file of an ipc route, if one is left.
    pub(crate) fn remove_socket_file(&self) {
        let _ = std::fs::remove_file(&self.path);
    }

    fn zmq(&self) -> Result<&'static Libzmq, LabError> {
        self.zmq.ok_or(LabError::Libzmq {
            what: "route",
            detail: "a libzmq route was set up without the library".into(),
        })
    }

    fn keys(&self) -> Result<&CurveKeys<CurveKeyPair>, LabError> {
        self.keys.as_ref().ok_or(LabError::Libzmq {
            what: "CURVE",
            detail: "a CURVE route was set up without keys".into(),
        })
    }

    /// The shmsock options of the sender (`server`) or the receiver: the library's defaults,
    /// and on a CURVE route the run's keys (the server admits only the client's key). Upgrade
    /// off: both ends run on this machine, where a shmsock subscriber would move to shared
    /// memory and its row would no longer measure tcp:// or unix:// against libzmq.
    fn shmsock_options(&self, server: bool) -> Options {
        let options = Options::new().upgrade(false);
        match (&self.shmsock_keys, server) {
            (None, _) => options,
            (Some(keys), true) => options
                .curve_secret(keys.server.clone())
                .curve_allow([keys.client.public()]),
            (Some(keys), false) => options
                .curve_secret(keys.client.clone())
                .curve_server(keys.server.public()),
        }
    }
}

/// Opens the sending end: binds, calls `bound` with the endpoint bound (for tcp, with the
/// port chosen), and for a shmsock PAIR accepts the receiver's connection.
pub(crate) fn open_sender(
    setup: &Setup,
    bound: impl FnOnce(&str) -> Result<(), LabError>,
) -> Result<Box<dyn Side>, LabError> {
    let endpoint = setup.bind_endpoint();
    match setup.config.library {
        Library::Shmsock => {
            let options = setup.shmsock_options(true);
            match setup.config.shape {
                Shape::Pair => {
                    let listener = Listener::bind_with(&endpoint, options).map_err(lib("bind"))?;
                    bound(listener.endpoint())?;
                    let conn = listener.accept_timeout(IO_TIMEOUT).map_err(lib("accept"))?;
                    Ok(Box::new(ShmsockEnd::Conn(conn)))
                }
                Shape::PubSub => {
                    let publisher =
                        Publisher::bind_with(&endpoint, options).map_err(lib("publisher bind"))?;
                    bound(publisher.endpoint())?;
                    Ok(Box::new(ShmsockEnd::Publisher(publisher)))
                }
            }
        }
        Library::Libzmq => {
            let kind = match setup.config.shape {
                Shape::Pair => SocketKind::Pair,
                Shape::PubSub => SocketKind::Pub,
            };
            let socket = zmq_socket(setup, kind)?;
            if kind == SocketKind::Pub {
                socket.set_int(IntOption::XpubNodrop, 1)?;
            }
            if setup.config.security == Security::Curve {
                let keys = setup.keys()?;
                socket.set_int(IntOption::CurveServer, 1)?;
                socket.set_bytes(BytesOption::CurvePublicKey, keys.server.public.as_bytes())?;
                socket.set_bytes(BytesOption::CurveSecretKey, keys.server.secret.as_bytes())?;
            }
            let bound_endpoint = socket.bind(&endpoint)?;
            bound(&bound_endpoint)?;
            Ok(Box::new(ZmqEnd(socket)))
        }
    }
}

/// Opens the receiving end: connects to `endpoint` (a SUB subscribes to everything).
pub(crate) fn open_receiver(setup: &Setup, endpoint: &str) -> Result<Box<dyn Side>, LabError> {
    match setup.config.library {
        Library::Shmsock => {
            let options = setup.shmsock_options(false);
            Ok(Box::new(match setup.config.shape {
                Shape::Pair => ShmsockEnd::Conn(
                    retry_refused(|| Conn::connect_with(endpoint, options.clone()))
                        .map_err(lib("connect"))?,
                ),
                Shape::PubSub => ShmsockEnd::Subscriber(
                    retry_refused(|| Subscriber::connect_with(endpoint, options.clone()))
                        .map_err(lib("connect"))?,
                ),
            }))
        }
        Library::Libzmq => {
            let kind = match setup.config.shape {
                Shape::Pair => SocketKind::Pair,
                Shape::PubSub => SocketKind::Sub,
            };
            let socket = zmq_socket(setup, kind)?;
            if kind == SocketKind::Sub {
                socket.set_bytes(BytesOption::Subscribe, b"")?;
            }
            if setup.config.security == Security::Curve {
                let keys = setup.keys()?;
                socket.set_bytes(BytesOption::CurveServerKey, keys.server.public.as_bytes())?;
                socket.set_bytes(BytesOption::CurvePublicKey, keys.client.public.as_bytes())?;
                socket.set_bytes(BytesOption::CurveSecretKey, keys.client.secret.as_bytes())?;
            }
            socket.connect(endpoint)?;
            Ok(Box::new(ZmqEnd(socket)))
        }
    }
}

/// A libzmq socket of `kind` with the route's timeouts and high-water marks.
fn zmq_socket(setup: &Setup, kind: SocketKind) -> Result<Socket, LabError> {
    let socket = setup.zmq()?.socket(kind)?;
    socket.set_timeouts(IO_TIMEOUT)?;
    let hwm = high_water_mark(setup.config.size);
    socket.set_int(IntOption::SndHwm, hwm)?;
    socket.set_int(IntOption::RcvHwm, hwm)?;
    Ok(socket)
}

/// A shmsock end: a PAIR connection, a publisher or a subscriber.
// One end per process, built once: boxing the variants would add a pointer chase to every
// measured call instead.
#[allow(clippy::large_enum_variant)]
enum ShmsockEnd {
    Conn(Conn),
    Publisher(Publisher),
    Subscriber(Subscriber),
}

impl Side for ShmsockEnd {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<(), LabError> {
        match self {
            ShmsockEnd::Conn(conn) => conn.send(msg).map_err(lib("send")),
            ShmsockEnd::Publisher(publisher) => publisher.send(msg).map_err(lib("publisher send")),
            ShmsockEnd::Subscriber(_) => Err(LabError::Unsupported {
                mechanism: "shmsock subscriber",
                what: "send",
            }),
        }
    }

    #[inline]
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, LabError> {
        match self {
            ShmsockEnd::Conn(conn) => conn.recv(buf).map_err(lib("recv")),
            ShmsockEnd::Subscriber(subscriber) => {
                subscriber.recv(buf).map_err(lib("subscriber recv"))
            }
            ShmsockEnd::Publisher(_) => Err(LabError::Unsupported {
                mechanism: "shmsock publisher",
                what: "recv",
            }),
        }
    }
}

/// A libzmq end (PAIR, PUB or SUB).
struct ZmqEnd(Socket);

impl Side for ZmqEnd {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<(), LabError> {
        self.0.send(msg)
    }

    #[inline]
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, LabError> {
        self.0.recv(buf)
    }
}
