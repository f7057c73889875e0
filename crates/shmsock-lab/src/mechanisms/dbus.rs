//! `dbus`: D-Bus, the IPC cheat sheet's "higher level, message routing" row, through a real
//! `dbus-daemon` on a private bus the lab starts, with zbus (a pure-Rust D-Bus client: no
//! libdbus).
//!
//! ```text
//! latency     parent --Echo(ay) method call--> dbus-daemon --> child   (serves Echo)
//!             parent <---- method return ------ dbus-daemon <-- child
//! throughput  child --signal Data(ay)--> dbus-daemon --> parent        (its match rule)
//! ```
//!
//! Every message crosses a third process, the daemon: a round trip is four Unix-socket hops
//! (caller → daemon → callee → daemon → caller) and two wake-ups of the daemon, where
//! `uds-stream` has two hops; every message is also marshalled into a D-Bus message (header
//! with path, interface, member, sender, destination; body `ay`) and parsed again, by zbus at
//! both ends and by the daemon, which routes it. That is what the row measures: what the
//! higher level costs against the Unix socket it runs on.
//!
//! - **The bus.** One `dbus-daemon` per lab run (per [`Dbus`] value): the first row that needs
//!   it starts it (`daemon::Bus::start`: a session bus on a Unix socket in a directory of its
//!   own, `EXTERNAL` authentication, an allow-everything policy, the stock session bus's
//!   limits), and dropping the [`Dbus`] at the end of the run stops it and removes the
//!   directory, whether the run succeeded or not. The daemon is not pinned: it runs wherever
//!   the scheduler puts it, on every CPU the machine allows, also in the same-CPU row (where
//!   only the two sides share a CPU). Without `dbus-daemon` the rows are skipped with the
//!   reason ([`Mechanism::skipped`]).
//! - **The sides.** Each side, after the fork, creates a current-thread tokio runtime (no
//!   thread of its own: the lab stays one thread between forks) and connects to the bus. Every
//!   row has its own well-known names (`org.shmsock.Lab.Row<N>.Echo`, `...Receiver`), so no
//!   row reaches a connection of the previous one that the daemon has not seen go yet.
//! - **Latency** (ping-pong): the child owns the echo name and answers every `Echo(ay)` call
//!   on `/org/shmsock/Lab`, interface `org.shmsock.Lab`, with the bytes it got (`ay`): it
//!   serves the object from its connection's stream of method calls, what zbus's object server
//!   does underneath its `#[interface]` dispatch. The parent waits until the name has an owner,
//!   then each `send` is one call (`Connection::call_method`, which returns with the reply)
//!   and `recv` copies the reply's bytes out.
//! - **Throughput** (stream): the parent adds a match rule for the `Data` signal (the daemon
//!   has it once `AddMatch` returns), then owns the receiver name; the child waits for that
//!   name and emits one `Data(ay)` signal per message. A signal has no flow control past the
//!   daemon: zbus stops reading when its queue for the match rule is full, the socket then
//!   fills, and the daemon queues for the receiver until `max_outgoing_bytes` (1 GB on the
//!   stock session bus), then *drops* what does not fit, logging each one ("Rejected:
//!   destination has a full message queue", with the recipient's pid). The receiver counts
//!   only what arrives (the experiment checks every sequence number), and it looks for drops
//!   itself: when the D-Bus serial numbers of the sender's signals skip some (zbus numbers a
//!   process's messages 1, 2, 3, ...), or when it has waited `DROP_CHECK_EVERY` for the next
//!   signal, it reads the daemon's log since it started; rejections for it there fail the row
//!   with that explanation instead of a rate. A receiver the daemon disconnects is reported
//!   the same way.
//!
//! Payloads travel as `ay` written in one piece (`Ay`: serde's `&[u8]` would be a sequence
//! of single bytes) and are read back borrowed from the message, then copied once into the
//! experiment's buffer.

mod daemon;

use std::cell::{Cell, OnceCell};
use std::fs::File;
use std::future::Future;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use tokio::runtime::Runtime;
use zbus::export::futures_core::{FusedStream as _, Stream as _};
use zbus::message::Type as MessageType;
use zbus::zvariant::{Signature, Type};
use zbus::{AsyncDrop as _, Connection, MatchRule, Message, MessageStream};

use super::{Mechanism, Pair, Pattern, Side, RING_BYTES, STALL_TIMEOUT};
use crate::error::LabError;

pub use daemon::{INSTALL_HINT, PROGRAM};

/// The object the echo side serves.
const PATH: &str = "/org/shmsock/Lab";
/// Its interface (and the signal's).
const INTERFACE: &str = "org.shmsock.Lab";
/// The method: `Echo(ay) -> ay`.
const ECHO: &str = "Echo";
/// The signal of the throughput rows: `Data(ay)`.
const SIGNAL: &str = "Data";

/// The bus daemon's own name, object and interface.
const BUS_NAME: &str = "org.freedesktop.DBus";
const BUS_PATH: &str = "/org/freedesktop/DBus";

/// `RequestName` flag `DBUS_NAME_FLAG_DO_NOT_QUEUE`: fail rather than wait for the name.
const DO_NOT_QUEUE: u32 = 4;
/// `RequestName` reply `DBUS_REQUEST_NAME_REPLY_PRIMARY_OWNER`.
const PRIMARY_OWNER: u32 = 1;

/// The D-Bus specification's largest message, header included (128 MiB).
const MAX_MESSAGE_BYTES: usize = 1 << 27;
/// Room left for the header (names, signature, padding) under [`MAX_MESSAGE_BYTES`].
const HEADER_ROOM: usize = 4096;

/// What the rows' note says about where they ran.
const NOTE: &str = "dbus: D-Bus through a real dbus-daemon on a private bus the lab starts \
    (a session bus on a Unix socket, the stock session limits), zbus at both ends: every \
    message crosses the daemon, a third process the lab does not pin (it floats over every \
    CPU, also in the same-CPU row, and its CPU time is in neither CPU% column), so a round \
    trip is four Unix-socket hops to uds-stream's two. Latency: Echo(ay) method calls; \
    throughput: Data(ay) signals through a match rule, which have no flow control past the \
    daemon (a stream the daemon dropped signals of is reported, not measured).";

/// D-Bus through a private `dbus-daemon`, started on first use and stopped when this is
/// dropped (see the module docs).
#[derive(Debug)]
pub struct Dbus {
    /// The daemon to run: a name looked up in `PATH`, or a path.
    program: String,
    /// The daemon's `max_outgoing_bytes` (the stock session bus's, except in tests).
    max_outgoing_bytes: u64,
    /// The bus, once a row has started it.
    bus: OnceCell<daemon::Bus>,
    /// Rows set up so far: each gets bus names of its own.
    rows: Cell<u32>,
}

impl Dbus {
    /// The `dbus` mechanism: `dbus-daemon` from `PATH`, with the stock session bus's limits.
    pub fn new() -> Self {
        Self::with(PROGRAM, daemon::SESSION_LIMIT_BYTES)
    }

    /// Runs `program` as the daemon, which drops signals for a receiver with more than
    /// `max_outgoing_bytes` queued.
    pub(crate) fn with(program: &str, max_outgoing_bytes: u64) -> Self {
        Self {
            program: program.to_string(),
            max_outgoing_bytes,
            bus: OnceCell::new(),
            rows: Cell::new(0),
        }
    }

    /// Why the rows cannot run here (`dbus-daemon` is not installed), if they cannot.
    pub fn missing() -> Option<String> {
        daemon::find(PROGRAM).err()
    }

    /// The bus, started if no row has started it yet.
    fn bus(&self) -> Result<&daemon::Bus, LabError> {
        if let Some(bus) = self.bus.get() {
            return Ok(bus);
        }
        let program = daemon::find(&self.program).map_err(|detail| LabError::Dbus {
            what: "finding dbus-daemon",
            detail,
        })?;
        let started = daemon::Bus::start(&program, self.max_outgoing_bytes)?;
        Ok(self.bus.get_or_init(|| started))
    }
}

impl Default for Dbus {
    fn default() -> Self {
        Self::new()
    }
}

impl Mechanism for Dbus {
    fn name(&self) -> &'static str {
        "dbus"
    }

    fn max_message(&self) -> usize {
        MAX_MESSAGE_BYTES - HEADER_ROOM
    }

    fn note(&self) -> Option<String> {
        Some(NOTE.into())
    }

    fn skipped(&self) -> Option<String> {
        daemon::find(&self.program).err()
    }

    fn setup(&self, pattern: Pattern, size: usize) -> Result<Pair, LabError> {
        let bus = self.bus()?;
        let row = self.rows.get();
        self.rows.set(row.wrapping_add(1));
        let plan = Plan {
            address: bus.address().to_string(),
            echo: format!("org.shmsock.Lab.Row{row}.Echo"),
            receiver: format!("org.shmsock.Lab.Row{row}.Receiver"),
            size,
            log: bus.log_path(),
            max_outgoing_bytes: bus.max_outgoing_bytes(),
        };
        let (parent, child) = match pattern {
            Pattern::PingPong => (Role::Caller, Role::Server),
            Pattern::Stream => (Role::Receiver, Role::Emitter),
        };
        Ok(Pair {
            parent: Box::new(DbusSide::new(parent, plan.clone())),
            child: Box::new(DbusSide::new(child, plan)),
        })
    }
}

/// What both sides of a row know before the fork.
#[derive(Debug, Clone)]
struct Plan {
    /// The bus's address.
    address: String,
    /// The name the echo side owns.
    echo: String,
    /// The name the receiving side owns once its match rule is in place.
    receiver: String,
    /// The experiment's message size.
    size: usize,
    /// The daemon's log, quoted when it dropped signals.
    log: PathBuf,
    /// The daemon's queue limit per receiver, in bytes.
    max_outgoing_bytes: u64,
}

/// What a side does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Ping: calls `Echo`.
    Caller,
    /// Pong: serves `Echo`.
    Server,
    /// Streams: emits `Data` signals.
    Emitter,
    /// Receives the `Data` signals.
    Receiver,
}

/// A side's connection, made after the fork.
struct Live {
    rt: Runtime,
    conn: Connection,
    /// The method calls (server) or signals (receiver) this side takes.
    incoming: Option<MessageStream>,
}

/// One side of a `dbus` row.
struct DbusSide {
    role: Role,
    plan: Plan,
    live: Option<Live>,
    /// The call to answer (server) or the reply to read (caller).
    pending: Option<Message>,
    /// The receiver's last signal: its sender and serial number.
    last: Option<(String, u32)>,
    /// Where the daemon's log ended when this side started: later rejections are its own.
    log_from: u64,
}

impl DbusSide {
    fn new(role: Role, plan: Plan) -> Self {
        Self {
            role,
            plan,
            live: None,
            pending: None,
            last: None,
            log_from: 0,
        }
    }

    fn live(&mut self) -> Result<&mut Live, LabError> {
        self.live.as_mut().ok_or_else(not_started)
    }

    /// What the side's role needs on the bus before the first message: the echo side's
    /// stream of calls and its name, the receiver's match rule and its name, or the other
    /// side's name owned.
    fn prepare(&self, rt: &Runtime, conn: &Connection) -> Result<Option<MessageStream>, LabError> {
        let plan = &self.plan;
        Ok(match self.role {
            Role::Server => {
                const SERVE: &str = "serving Echo on the bus";
                let rule = MatchRule::builder()
                    .msg_type(MessageType::MethodCall)
                    .path(PATH)
                    .and_then(|b| b.interface(INTERFACE))
                    .and_then(|b| b.member(ECHO))
                    .map_err(dbus(SERVE))?
                    .build();
                let calls = block(rt, SERVE, async {
                    let calls = MessageStream::for_match_rule(rule, conn, Some(8))
                        .await
                        .map_err(dbus(SERVE))?;
                    own(conn, &plan.echo).await?;
                    Ok(calls)
                })?;
                Some(calls)
            }
            Role::Receiver => {
                const SUBSCRIBE: &str = "subscribing to the Data signal";
                let rule = MatchRule::builder()
                    .msg_type(MessageType::Signal)
                    .path(PATH)
                    .and_then(|b| b.interface(INTERFACE))
                    .and_then(|b| b.member(SIGNAL))
                    .map_err(dbus(SUBSCRIBE))?
                    .build();
                // zbus's queue for the rule: up to a ring's worth of messages (4 to 256).
                let queued = (RING_BYTES / plan.size.max(1)).clamp(4, 256);
                let signals = block(rt, SUBSCRIBE, async {
                    let signals = MessageStream::for_match_rule(rule, conn, Some(queued))
                        .await
                        .map_err(dbus(SUBSCRIBE))?;
                    own(conn, &plan.receiver).await?;
                    Ok(signals)
                })?;
                Some(signals)
            }
            Role::Caller => {
                block(rt, "waiting for the echo side's bus name", async {
                    wait_for_owner(conn, &plan.echo).await
                })?;
                None
            }
            Role::Emitter => {
                block(rt, "waiting for the receiving side's bus name", async {
                    wait_for_owner(conn, &plan.receiver).await
                })?;
                None
            }
        })
    }

    /// The next message of this side's stream (a call or a signal). A receiver that waits
    /// for one looks at the daemon's log every [`DROP_CHECK_EVERY`]: signals the daemon
    /// rejected for it since it started will never come, and it fails saying so instead of
    /// waiting for [`STALL_TIMEOUT`].
    fn next_incoming(&mut self, what: &'static str) -> Result<Message, LabError> {
        let watch_drops = self.role == Role::Receiver;
        let Some(Live { rt, incoming, .. }) = self.live.as_mut() else {
            return Err(not_started());
        };
        let stream = incoming.as_mut().ok_or(LabError::Unsupported {
            mechanism: "dbus",
            what: "receiving on the sending side",
        })?;
        let (log, log_from) = (&self.plan.log, self.log_from);
        let next = rt.block_on(async {
            let started = std::time::Instant::now();
            loop {
                let poll = std::future::poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx));
                if let Ok(next) = tokio::time::timeout(DROP_CHECK_EVERY, poll).await {
                    return Ok(next);
                }
                if watch_drops {
                    let rejected = rejections(log, log_from);
                    if rejected > 0 {
                        return Err(rejected);
                    }
                }
                if started.elapsed() >= STALL_TIMEOUT {
                    return Ok(None);
                }
            }
        });
        match next {
            Ok(Some(Ok(msg))) => Ok(msg),
            Ok(Some(Err(e))) => Err(LabError::Dbus {
                what,
                detail: format!("dbus-daemon closed this side's connection: {e}"),
            }),
            Ok(None) if stream.is_terminated() => Err(LabError::Dbus {
                what,
                detail: "dbus-daemon closed this side's connection".into(),
            }),
            Ok(None) => Err(LabError::Stalled {
                what,
                waited: STALL_TIMEOUT,
            }),
            Err(rejected) => Err(self.dropped(None, rejected)),
        }
    }

    /// Fails if signals of the sender of `msg` went missing since the last one: its serial
    /// number skipped some, and the daemon's log has rejections for this receiver (a gap the
    /// log does not explain is a message the sender sent to someone else, such as the
    /// daemon).
    fn check_serial(&mut self, msg: &Message) -> Result<(), LabError> {
        let serial = msg.primary_header().serial_num().get();
        let header = msg.header();
        let sender = header.sender().map_or("", |s| s.as_str());
        if let Some((last_sender, last)) = &self.last {
            // zbus skips serial 0 when its counter wraps.
            let expected = last.checked_add(1).unwrap_or(1);
            if last_sender == sender && serial != expected {
                let rejected = rejections(&self.plan.log, self.log_from);
                if rejected > 0 {
                    let missing = serial.wrapping_sub(expected);
                    return Err(self.dropped(Some((sender, expected, missing)), rejected));
                }
            }
        }
        self.last = Some((sender.to_string(), serial));
        Ok(())
    }

    /// The error of a stream the daemon dropped signals of: `gap` is (sender, first missing
    /// serial, how many) when a later signal showed the gap, `rejected` the rejections of the
    /// daemon's log for this receiver.
    fn dropped(&self, gap: Option<(&str, u32, u32)>, rejected: usize) -> LabError {
        let what = match gap {
            Some((sender, first, missing)) => format!(
                "{missing} signal(s) of {sender} (serials {first}..{})",
                first.wrapping_add(missing.wrapping_sub(1))
            ),
            None => "signals".into(),
        };
        let log = if rejected > 0 {
            format!(
                "; its log has {rejected} \"destination has a full message queue\" \
                 rejection(s) for this receiver"
            )
        } else {
            String::new()
        };
        LabError::Dbus {
            what: "receiving signals",
            detail: format!(
                "dbus-daemon dropped {what} on their way to this receiver: a signal has no \
                 flow control past the daemon, which drops what does not fit its queue for a \
                 slow receiver (max_outgoing_bytes = {} B here){log}; no rate is reported for \
                 a stream that lost messages",
                self.plan.max_outgoing_bytes
            ),
        }
    }
}

/// How often a waiting receiver looks at the daemon's log for signals it dropped.
const DROP_CHECK_EVERY: Duration = Duration::from_millis(50);

/// The daemon's rejections, in its log from byte `from` on, of `Data` signals for a
/// receiver in this process ("Rejected: destination has a full message queue", which names
/// the recipient's pid after `destination=`).
fn rejections(log: &Path, from: u64) -> usize {
    let mut text = String::new();
    let read = File::open(log).and_then(|mut file| {
        file.seek(SeekFrom::Start(from))?;
        file.read_to_string(&mut text)
    });
    if read.is_err() {
        return 0;
    }
    let me = format!(" pid={} ", std::process::id());
    let signal = format!("interface=\"{INTERFACE}\" member=\"{SIGNAL}\"");
    text.lines()
        .filter(|line| line.contains("full message queue") && line.contains(&signal))
        .filter(|line| {
            line.split_once("destination=")
                .is_some_and(|(_, recipient)| recipient.contains(&me))
        })
        .count()
}

impl Side for DbusSide {
    fn start(&mut self) -> Result<(), LabError> {
        self.log_from = std::fs::metadata(&self.plan.log).map_or(0, |m| m.len());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|source| LabError::Os {
                what: "creating a tokio runtime for D-Bus",
                source,
            })?;
        const CONNECT: &str = "connecting to the lab's dbus-daemon";
        let address = self.plan.address.as_str();
        let conn = block(&rt, CONNECT, async {
            zbus::connection::Builder::address(address)
                .map_err(dbus(CONNECT))?
                .build()
                .await
                .map_err(dbus(CONNECT))
        })?;
        let incoming = match self.prepare(&rt, &conn) {
            Ok(incoming) => incoming,
            Err(err) => {
                // zbus may spawn clean-up on the runtime when the connection goes.
                let entered = rt.enter();
                drop(conn);
                drop(entered);
                return Err(err);
            }
        };
        self.live = Some(Live { rt, conn, incoming });
        Ok(())
    }

    fn send(&mut self, msg: &[u8]) -> Result<(), LabError> {
        match self.role {
            Role::Caller => {
                const CALL: &str = "calling Echo";
                let echo = self.plan.echo.as_str();
                let Live { rt, conn, .. } = self.live.as_mut().ok_or_else(not_started)?;
                let reply = block(rt, CALL, async {
                    conn.call_method(Some(echo), PATH, Some(INTERFACE), ECHO, &Ay(msg))
                        .await
                        .map_err(dbus(CALL))
                })?;
                self.pending = Some(reply);
                Ok(())
            }
            Role::Server => {
                const REPLY: &str = "replying to Echo";
                let call = self.pending.take().ok_or(LabError::Dbus {
                    what: REPLY,
                    detail: "no call to answer".into(),
                })?;
                let Live { rt, conn, .. } = self.live()?;
                block(rt, REPLY, async {
                    conn.reply(&call.header(), &Ay(msg))
                        .await
                        .map_err(dbus(REPLY))
                })
            }
            Role::Emitter => {
                const EMIT: &str = "emitting the Data signal";
                let Live { rt, conn, .. } = self.live()?;
                block(rt, EMIT, async {
                    conn.emit_signal(None::<&str>, PATH, INTERFACE, SIGNAL, &Ay(msg))
                        .await
                        .map_err(dbus(EMIT))
                })
            }
            Role::Receiver => Err(LabError::Unsupported {
                mechanism: "dbus",
                what: "sending on the receiving side of a stream",
            }),
        }
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, LabError> {
        match self.role {
            Role::Caller => {
                let reply = self.pending.take().ok_or(LabError::Dbus {
                    what: "reading Echo's reply",
                    detail: "no call was made".into(),
                })?;
                copy_body(&reply, buf, "reading Echo's reply")
            }
            Role::Server => {
                let call = self.next_incoming("waiting for an Echo call")?;
                let n = copy_body(&call, buf, "reading an Echo call")?;
                self.pending = Some(call);
                Ok(n)
            }
            Role::Receiver => {
                let signal = self.next_incoming("waiting for a Data signal")?;
                self.check_serial(&signal)?;
                copy_body(&signal, buf, "reading a Data signal")
            }
            Role::Emitter => Err(LabError::Unsupported {
                mechanism: "dbus",
                what: "receiving on the sending side of a stream",
            }),
        }
    }
}

impl Drop for DbusSide {
    fn drop(&mut self) {
        if let Some(Live { rt, conn, incoming }) = self.live.take() {
            // zbus spawns its clean-up (removing a match rule) on the runtime: drop inside it.
            let entered = rt.enter();
            drop(self.pending.take());
            drop(incoming);
            drop(conn);
            drop(entered);
            drop(rt);
        }
    }
}

/// A message payload as D-Bus's `ay`, serialised in one piece.
struct Ay<'a>(&'a [u8]);

impl serde::Serialize for Ay<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

impl Type for Ay<'_> {
    const SIGNATURE: &'static Signature = &Signature::static_array(&Signature::U8);
}

/// Copies the `ay` body of `msg` into `buf`; returns its length.
fn copy_body(msg: &Message, buf: &mut [u8], what: &'static str) -> Result<usize, LabError> {
    let body = msg.body();
    let bytes: &[u8] = body.deserialize().map_err(dbus(what))?;
    let len = buf.len();
    let out = buf.get_mut(..bytes.len()).ok_or(LabError::WrongSize {
        len,
        size: bytes.len(),
    })?;
    out.copy_from_slice(bytes);
    Ok(bytes.len())
}

/// Runs `work` on `rt` until it is done, or fails with [`LabError::Stalled`] after
/// [`STALL_TIMEOUT`].
fn block<T>(
    rt: &Runtime,
    what: &'static str,
    work: impl Future<Output = Result<T, LabError>>,
) -> Result<T, LabError> {
    rt.block_on(async { tokio::time::timeout(STALL_TIMEOUT, work).await })
        .map_err(|_| LabError::Stalled {
            what,
            waited: STALL_TIMEOUT,
        })?
}

/// Makes `name` this connection's, or fails (never waits in the daemon's queue for it).
async fn own(conn: &Connection, name: &str) -> Result<(), LabError> {
    const OWN: &str = "owning a bus name";
    let reply: u32 = conn
        .call_method(
            Some(BUS_NAME),
            BUS_PATH,
            Some(BUS_NAME),
            "RequestName",
            &(name, DO_NOT_QUEUE),
        )
        .await
        .map_err(dbus(OWN))?
        .body()
        .deserialize()
        .map_err(dbus(OWN))?;
    if reply == PRIMARY_OWNER {
        Ok(())
    } else {
        Err(LabError::Dbus {
            what: OWN,
            detail: format!("dbus-daemon answered {reply} to RequestName({name}), not 1 (owner)"),
        })
    }
}

/// Waits until `name` has an owner on the bus (the other side's start has got that far):
/// asks the daemon once, after subscribing to the name's `NameOwnerChanged` signals, so an
/// owner that comes (and goes) at any moment is seen.
async fn wait_for_owner(conn: &Connection, name: &str) -> Result<(), LabError> {
    const WAIT: &str = "waiting for the other side's bus name";
    let rule = MatchRule::builder()
        .msg_type(MessageType::Signal)
        .sender(BUS_NAME)
        .and_then(|b| b.interface(BUS_NAME))
        .and_then(|b| b.member("NameOwnerChanged"))
        .and_then(|b| b.arg(0, name))
        .map_err(dbus(WAIT))?
        .build();
    let mut changes = MessageStream::for_match_rule(rule, conn, Some(8))
        .await
        .map_err(dbus(WAIT))?;
    let owned: bool = conn
        .call_method(
            Some(BUS_NAME),
            BUS_PATH,
            Some(BUS_NAME),
            "NameHasOwner",
            &name,
        )
        .await
        .map_err(dbus(WAIT))?
        .body()
        .deserialize()
        .map_err(dbus(WAIT))?;
    let waited = if owned {
        Ok(())
    } else {
        next_owner(&mut changes).await
    };
    // Remove the match rule now: dropped, the stream would leave the `RemoveMatch` call to a
    // task that runs during this side's first message.
    changes.async_drop().await;
    waited
}

/// Waits for a `NameOwnerChanged` signal of `changes` that gives the name a new owner.
async fn next_owner(changes: &mut MessageStream) -> Result<(), LabError> {
    const WAIT: &str = "waiting for the other side's bus name";
    loop {
        let change = std::future::poll_fn(|cx| Pin::new(&mut *changes).poll_next(cx))
            .await
            .ok_or_else(|| LabError::Dbus {
                what: WAIT,
                detail: "dbus-daemon closed this side's connection".into(),
            })?
            .map_err(dbus(WAIT))?;
        // NameOwnerChanged(name, old owner, new owner): a new owner is not empty.
        let body = change.body();
        let (_, _, new_owner): (&str, &str, &str) = body.deserialize().map_err(dbus(WAIT))?;
        if !new_owner.is_empty() {
            return Ok(());
        }
    }
}

/// Wraps a zbus error with what the lab was doing.
fn dbus(what: &'static str) -> impl FnOnce(zbus::Error) -> LabError {
    move |e| LabError::Dbus {
        what,
        detail: e.to_string(),
    }
}

/// The error of a side used before [`Side::start`].
fn not_started() -> LabError {
    LabError::Dbus {
        what: "using a side",
        detail: "it was not started".into(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::{Mutex, MutexGuard};
    use std::time::Instant;

    use super::*;
    use crate::experiments::pair::run_pair;
    use crate::experiments::{Budget, Budgets};
    use crate::process::ChildStats;
    use crate::{LabOptions, Mode, Pinning};

    /// Held by every test that starts a bus: one at a time, so the leftover checks see only
    /// their own.
    static SERIAL: Mutex<()> = Mutex::new(());

    pub(crate) fn serial() -> MutexGuard<'static, ()> {
        SERIAL.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `dbus-daemon` is installed. Without it a test is skipped (saying why), except
    /// under `CI=true`, where a missing daemon fails the test.
    fn daemon_installed() -> bool {
        match Dbus::missing() {
            None => true,
            Some(why) => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "CI=true but {why}"
                );
                println!("skipped: {why}");
                eprintln!("skipped: {why}");
                false
            }
        }
    }

    /// What this process's buses left behind: their directories, and `dbus-daemon`
    /// processes started with one of their configurations or still waiting to be reaped by
    /// this process.
    fn leftovers() -> Vec<String> {
        let prefix = format!("shmsock-lab-dbus-{}-", std::process::id());
        let mut found: Vec<String> = std::fs::read_dir(std::env::temp_dir())
            .expect("temporary directory")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with(&prefix))
            .collect();
        let me = std::process::id().to_string();
        for entry in std::fs::read_dir("/proc")
            .expect("/proc")
            .filter_map(|e| e.ok())
        {
            let dir = entry.path();
            let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
            let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
            // `pid (comm) state ppid ...`
            let (comm, rest) = match (stat.find('('), stat.rfind(')')) {
                (Some(open), Some(close)) if open < close => {
                    (&stat[open + 1..close], &stat[close + 1..])
                }
                _ => continue,
            };
            let ppid = rest.split_whitespace().nth(1).unwrap_or_default();
            let started_by_us = String::from_utf8_lossy(&cmdline).contains(&prefix);
            if started_by_us || (comm == "dbus-daemon" && ppid == me) {
                found.push(format!(
                    "process {}: {stat}",
                    entry.file_name().to_string_lossy()
                ));
            }
        }
        found
    }

    const TINY: Budget = Budget {
        warmup_iters: 100,
        warmup_time: Duration::from_millis(20),
        iters: 2_000,
        max_time: Duration::from_millis(100),
    };

    #[test]
    fn a_quick_run_of_the_dbus_rows_gives_sane_numbers_and_leaves_nothing_behind() {
        let _serial = serial();
        if !daemon_installed() {
            return;
        }
        let budgets = Budgets {
            latency: TINY,
            throughput: TINY,
            bulk_bytes: 4 << 20,
            bulk_max_time: Duration::from_millis(500),
            divisor: 1000,
            experiment_max_time: Duration::from_millis(300),
        };
        let opts = LabOptions {
            mode: Mode::Quick,
            mechanisms: Some(vec!["dbus".into(), "uds-stream".into()]),
            only: Some(vec!["latency".into(), "throughput".into()]),
            sizes: Some(vec![64, 4096]),
            ..Default::default()
        };
        let report = crate::run_with(&opts, budgets).expect("lab runs");
        // The integrity check passed (else every row would be unavailable) and every row ran.
        assert!(report.unavailable.is_empty(), "{report}");
        let latency = |rows: &[crate::LatencyRow], name: &str| {
            rows.iter()
                .find(|r| r.mechanism == name)
                .cloned()
                .unwrap_or_else(|| panic!("no {name} row:\n{report}"))
        };
        let dbus = latency(&report.latency, "dbus");
        let uds = latency(&report.latency, "uds-stream");
        let rtt = dbus.rtt;
        assert!(dbus.samples > 0, "{dbus:?}");
        assert!(rtt.min_ns > 0 && rtt.min_ns <= rtt.p50_ns && rtt.p50_ns <= rtt.p99_ns);
        // Four Unix-socket hops and a daemon in between: slower than one Unix socket's best
        // round trip, and far from a second.
        assert!(
            rtt.p50_ns > uds.rtt.min_ns,
            "dbus {rtt:?} vs uds-stream {:?}",
            uds.rtt
        );
        assert!(rtt.p50_ns < 1_000_000_000, "{rtt:?}");
        assert!(dbus
            .note
            .as_deref()
            .is_some_and(|n| n.contains("dbus-daemon")));
        if !report.host.pinning.same_cpu() {
            let same = latency(&report.latency_same_cpu, "dbus");
            assert!(same.samples > 0 && same.rtt.p50_ns > 0, "{same:?}");
        }
        for size in [64, 4096] {
            let row = report
                .throughput
                .iter()
                .find(|r| r.mechanism == "dbus" && r.size == size)
                .unwrap_or_else(|| panic!("no dbus throughput at {size} B:\n{report}"));
            assert!(row.messages > 0 && row.msgs_per_s > 0, "{row:?}");
            assert!(row.bytes_per_s.abs_diff(row.msgs_per_s * size as u64) <= size as u64);
            // One message per round trip at most as slow as the latency rows' p50, far from
            // the gigabytes of shared memory.
            assert!(row.bytes_per_s < 100_000_000_000, "{row:?}");
        }
        let text = report.render();
        assert!(text.contains("dbus-daemon"), "{text}");
        assert!(
            text.contains("dbus, gRPC, ZeroMQ | Easy | Higher level, message routing"),
            "{text}"
        );
        assert_eq!(leftovers(), Vec::<String>::new());
    }

    #[test]
    fn the_daemon_is_stopped_and_its_directory_removed_after_a_failed_row() {
        let _serial = serial();
        let _fork = crate::process::FORK_LOCK
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if !daemon_installed() {
            return;
        }
        let dbus = Dbus::new();
        let pinning = Pinning::choose().expect("affinity");
        // Pinned like the lab's thread: the daemon it starts must not stay on that CPU.
        let cpus = crate::process::allowed_cpus().expect("affinity");
        let pinned = crate::process::AffinityGuard::pin(pinning.parent_cpu).expect("pinning");
        let mut buf = [0u8; 64];
        let err = run_pair(
            &dbus,
            Pattern::PingPong,
            64,
            pinning,
            Duration::from_secs(20),
            |_| {
                Err(LabError::Integrity {
                    detail: "deliberate child failure".into(),
                })
            },
            |side| {
                side.send(&[7; 64])?;
                side.recv(&mut buf)
            },
        )
        .expect_err("the child failed");
        assert!(
            err.to_string().contains("deliberate child failure"),
            "{err}"
        );
        let bus = dbus.bus.get().expect("the row started the bus");
        drop(pinned);
        let (pid, dir) = (bus.pid(), bus.dir().to_path_buf());
        let daemon_cpus = rustix::thread::sched_getaffinity(Some(pid)).expect("its affinity");
        for cpu in &cpus {
            assert!(
                daemon_cpus.is_set(*cpu),
                "dbus-daemon may not run on CPU {cpu}"
            );
        }
        assert!(dir.join("bus").exists(), "{}", dir.display());
        assert!(std::fs::metadata(format!("/proc/{}", pid.as_raw_nonzero())).is_ok());
        drop(dbus);
        assert!(!dir.exists(), "{} is left", dir.display());
        assert!(
            std::fs::metadata(format!("/proc/{}", pid.as_raw_nonzero())).is_err(),
            "dbus-daemon {pid:?} still runs"
        );
        assert_eq!(leftovers(), Vec::<String>::new());
    }

    #[test]
    fn a_receiver_the_daemon_dropped_signals_for_gets_an_error_not_a_rate() {
        let _serial = serial();
        let _fork = crate::process::FORK_LOCK
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if !daemon_installed() {
            return;
        }
        // A daemon that queues at most 64 KiB for a receiver, 8 MiB of signals, and a
        // receiver that does not read until the daemon has dropped some.
        let dbus = Dbus::with(PROGRAM, 64 << 10);
        let log = dbus.bus().expect("a bus").log_path();
        let pinning = Pinning::choose().expect("affinity");
        const SIZE: usize = 4096;
        const SIGNALS: u64 = 2048;
        let mut out = vec![0u8; SIZE];
        let mut buf = vec![0u8; SIZE];
        let result = run_pair(
            &dbus,
            Pattern::Stream,
            SIZE,
            pinning,
            Duration::from_secs(30),
            |side| {
                for seq in 1..=SIGNALS {
                    crate::experiments::put_seq(&mut out, seq);
                    side.send(&out)?;
                }
                Ok(ChildStats::default())
            },
            |side| {
                // Read nothing until the daemon has rejected a signal for this receiver.
                let log = log.clone();
                let waiting = Instant::now();
                while rejections(&log, 0) == 0 && waiting.elapsed() < Duration::from_secs(20) {
                    std::thread::sleep(Duration::from_millis(10));
                }
                let started = Instant::now();
                let mut received = 0u64;
                while received < SIGNALS && started.elapsed() < Duration::from_secs(5) {
                    side.recv(&mut buf)?;
                    received += 1;
                }
                Ok(received)
            },
        );
        let err = result.expect_err("the daemon dropped signals");
        let text = err.to_string();
        assert!(text.contains("dbus-daemon dropped"), "{text}");
        assert!(text.contains("max_outgoing_bytes = 65536 B"), "{text}");
        assert!(
            text.contains("full message queue\" rejection(s) for this receiver"),
            "{text}"
        );
        assert!(text.contains("no rate is reported"), "{text}");
    }

    #[test]
    fn without_the_daemon_the_rows_are_skipped_with_the_package_to_install() {
        let dbus = Dbus::with("dbus-daemon-that-does-not-exist", 1 << 20);
        let why = dbus.skipped().expect("skipped");
        assert!(why.contains("apt-get install dbus-daemon"), "{why}");
        let err = dbus
            .setup(Pattern::PingPong, 64)
            .err()
            .expect("no bus without a daemon");
        assert!(err.to_string().contains("not found in PATH"), "{err}");
        assert!(dbus.bus.get().is_none());
    }

    #[test]
    fn a_gap_in_the_senders_serials_is_a_drop_when_the_daemon_logged_rejections_for_us() {
        // zbus numbers this process's messages from one counter: hold the lock of the tests
        // that make messages, so the ones below are consecutive.
        let _serial = serial();
        let signal = || {
            Message::signal(PATH, INTERFACE, SIGNAL)
                .and_then(|b| b.sender(":1.7"))
                .and_then(|b| b.build(&Ay(&[1, 2, 3])))
                .expect("a signal")
        };
        let log = std::env::temp_dir().join(format!(
            "shmsock-lab-dbus-log-test-{}.log",
            std::process::id()
        ));
        let rejection = |pid: u32| {
            format!(
                "dbus-daemon[9]: [session uid=0 pid=9] Rejected: destination has a full message \
                 queue, 0 matched rules; type=\"signal\", sender=\":1.7\" (uid=0 pid=8 \
                 comm=\"x\") interface=\"{INTERFACE}\" member=\"{SIGNAL}\" error \
                 name=\"(unset)\" requested_reply=\"0\" destination=\"(unset)\" (uid=0 \
                 pid={pid} comm=\"x\")\n"
            )
        };
        // Before this side started: not its rejections.
        std::fs::write(&log, rejection(std::process::id())).expect("log");
        let plan = Plan {
            address: String::new(),
            echo: String::new(),
            receiver: String::new(),
            size: 3,
            log: log.clone(),
            max_outgoing_bytes: 1 << 16,
        };
        let mut side = DbusSide::new(Role::Receiver, plan);
        side.log_from = std::fs::metadata(&log).expect("log").len();
        let (first, second, _other_message, fourth) = (signal(), signal(), signal(), signal());
        side.check_serial(&first).expect("the first signal");
        side.check_serial(&second).expect("the next one");
        // A gap the log does not explain: the sender sent something else in between.
        side.check_serial(&fourth)
            .expect("no rejection for this receiver");
        // Rejections: one for another process, one for this one; then a gap.
        let text = [rejection(1), rejection(std::process::id())].concat();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))
            .expect("log");
        let (fifth, lost, seventh) = (signal(), signal(), signal());
        let lost = lost.primary_header().serial_num().get();
        side.check_serial(&fifth).expect("no gap");
        let err = side
            .check_serial(&seventh)
            .expect_err("one signal is missing");
        let _ = std::fs::remove_file(&log);
        let text = err.to_string();
        assert!(
            text.contains(&format!(
                "dropped 1 signal(s) of :1.7 (serials {lost}..{lost})"
            )),
            "{text}"
        );
        assert!(
            text.contains("its log has 1 \"destination has a full message queue\""),
            "{text}"
        );
        assert!(text.contains("no rate is reported"), "{text}");
    }

    #[test]
    fn payloads_are_ay_in_one_piece() {
        assert_eq!(Ay::SIGNATURE.to_string(), "ay");
        assert_eq!(<&[u8]>::SIGNATURE, Ay::SIGNATURE);
    }
}
