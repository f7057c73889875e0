//! The socket-like 1:1 API: [`Listener`] and [`Conn`], dispatching on the endpoint's scheme.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::loan::{DetachedLoan, Lends, Loan, LoanInner, Sample};
use crate::net::socket::{self as net_socket, NetListener};
use crate::net::stream::NetConn;
use crate::options::Options;
use crate::shm::listener::ShmListener;
use crate::shm::loan::{Lender, ShmSample};
use crate::shm::pair::{self as shm_pair, ShmConn};
use crate::shm::ring::Frame;
use crate::sync::{AtomicBool, Ordering};
use crate::vocabulary::Mode;

/// How long an endpoint's accept thread (a listener with several endpoints) waits for a
/// peer before it looks at its stop flag.
const ACCEPT_POLL: Duration = Duration::from_millis(50);
/// Connections a listener with several endpoints holds ready for `accept` at most; its
/// accept threads wait while that many are queued.
const READY_MAX: usize = 16;

/// The transport behind a [`Listener`].
enum ListenerInner {
    Shm(ShmListener),
    Net(NetListener),
}

/// The transport behind a [`Conn`]: one match per call keeps the shm path as it was.
/// Not boxed: a pointer chase on every shm send/recv costs more than the bytes.
#[allow(clippy::large_enum_variant)]
enum ConnInner {
    Shm(ShmConn),
    Net(NetConn),
}

/// A bound endpoint that accepts connections, like a listening socket.
///
/// Dropping it removes its name; connections already accepted live on.
///
/// # Several endpoints
/// One listener may be bound to several endpoints, of any transport
/// ([`Listener::bind_all`], [`Listener::add_endpoint`]); [`Listener::accept`] returns the
/// next connection from whichever endpoint. Each endpoint then has an accept thread that
/// runs its handshakes (as `accept` does with one endpoint) and queues up to 16 established
/// connections for `accept`; a listener with one endpoint has no thread.
///
/// # Examples
/// ```
/// use shmsock::{Conn, Listener};
/// # std::env::set_var("SHMSOCK_RUNTIME_DIR", shmsock::test_support::runtime_dir("shmsock-doc-"));
/// let listener = Listener::bind("shm://doc-listener")?;
/// let client = std::thread::spawn(|| -> shmsock::Result<()> {
///     let mut conn = Conn::connect("shm://doc-listener")?;
///     conn.send(b"hello")?;
///     Ok(())
/// });
/// let mut conn = listener.accept()?;
/// assert_eq!(conn.recv_vec()?, b"hello");
/// client.join().unwrap()?;
/// # Ok::<(), shmsock::Error>(())
/// ```
pub struct Listener {
    /// Every bound endpoint, the first one first.
    listeners: Vec<Arc<ListenerInner>>,
    endpoints: Vec<String>,
    options: Options,
    /// With several endpoints: the connections their accept threads established.
    ready: Arc<Ready>,
    threads: Vec<JoinHandle<()>>,
}

/// Connections the accept threads of a listener with several endpoints established, not
/// yet returned by `accept`.
#[derive(Default)]
struct Ready {
    queue: Mutex<VecDeque<Result<Conn>>>,
    /// Signalled when a connection is queued or taken.
    changed: Condvar,
    stop: AtomicBool,
}

impl Ready {
    fn lock(&self) -> MutexGuard<'_, VecDeque<Result<Conn>>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl ListenerInner {
    fn bind(endpoint: &str, options: &Options) -> Result<ListenerInner> {
        options.open(
            endpoint,
            |ep, name, cfg| ShmListener::bind(ep, name, cfg).map(ListenerInner::Shm),
            |ep, cfg| NetListener::bind(&ep, cfg).map(ListenerInner::Net),
        )
    }

    fn accept(&self, timeout: Option<Duration>) -> Result<Conn> {
        let inner = match self {
            ListenerInner::Shm(l) => ConnInner::Shm(l.accept(timeout)?),
            ListenerInner::Net(l) => ConnInner::Net(l.accept(timeout)?),
        };
        Ok(Conn { inner })
    }

    fn endpoint(&self) -> &str {
        match self {
            ListenerInner::Shm(l) => l.endpoint(),
            ListenerInner::Net(l) => l.endpoint(),
        }
    }

    fn socket_path(&self) -> &Path {
        match self {
            ListenerInner::Shm(l) => l.socket_path(),
            ListenerInner::Net(l) => l.socket_path(),
        }
    }
}

/// The accept thread of one endpoint of a listener with several: queues each connection
/// whose handshake completes (waiting while [`READY_MAX`] are queued) until stopped. An
/// error of the listening socket itself is logged and queued once for `accept` to report.
fn serve(listener: &ListenerInner, ready: &Ready) {
    loop {
        {
            let mut queue = ready.lock();
            while queue.len() >= READY_MAX && !ready.stop.load(Ordering::Acquire) {
                queue = ready
                    .changed
                    .wait_timeout(queue, ACCEPT_POLL)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        }
        if ready.stop.load(Ordering::Acquire) {
            return;
        }
        match listener.accept(Some(ACCEPT_POLL)) {
            Err(Error::TimedOut) => continue,
            Ok(conn) => ready.lock().push_back(Ok(conn)),
            Err(e) => {
                tracing::warn!(endpoint = listener.endpoint(), error = %e, "accepting");
                let mut queue = ready.lock();
                if !queue.iter().any(Result::is_err) {
                    queue.push_back(Err(e));
                }
                drop(queue);
                std::thread::sleep(ACCEPT_POLL);
            }
        }
        ready.changed.notify_all();
    }
}

impl Listener {
    /// Binds `endpoint` with default [`Options`].
    ///
    /// Errors: [`Error::InvalidEndpoint`], [`Error::AddrInUse`] if a live listener holds the
    /// name, path or port (a stale `shm://` name or `unix://` socket file left by a dead
    /// process is replaced).
    ///
    /// `tcp://HOST:0` binds a port the OS chooses: [`Listener::endpoint`] tells which.
    /// A `unix://` socket file is made 0600 and removed when the listener is dropped.
    pub fn bind(endpoint: &str) -> Result<Listener> {
        Self::bind_with(endpoint, Options::default())
    }

    /// Binds `endpoint` with `options` (ring capacity of each accepted connection's
    /// outbound ring, wait strategy, allowed uids).
    pub fn bind_with(endpoint: &str, options: Options) -> Result<Listener> {
        Self::bind_all(&[endpoint], options)
    }

    /// Binds every endpoint of `endpoints` (at least one, any mix of `shm://`, `unix://` and
    /// `tcp://`) with `options`: [`Listener::accept`] returns the next connection from
    /// whichever. If one fails to bind, the error names it and nothing stays bound.
    ///
    /// # Examples
    /// ```
    /// use shmsock::{Conn, Listener, Options};
    /// # std::env::set_var("SHMSOCK_RUNTIME_DIR", shmsock::test_support::runtime_dir("shmsock-doc-"));
    /// let listener = Listener::bind_all(&["shm://doc-both", "tcp://127.0.0.1:0"], Options::new())?;
    /// let tcp = listener.endpoints()[1].clone(); // tcp://127.0.0.1:<port>
    /// let client = std::thread::spawn(move || Conn::connect(&tcp)?.send(b"over tcp"));
    /// let mut conn = listener.accept()?;
    /// assert_eq!(conn.recv_vec()?, b"over tcp");
    /// client.join().unwrap()?;
    /// # Ok::<(), shmsock::Error>(())
    /// ```
    pub fn bind_all(endpoints: &[&str], options: Options) -> Result<Listener> {
        let Some(first) = endpoints.first() else {
            return Err(Error::InvalidOptions {
                endpoint: "listener".into(),
                reason: "no endpoint to bind: give at least one (shm://NAME, unix:///PATH or \
                         tcp://HOST:PORT)"
                    .into(),
            });
        };
        let inner = ListenerInner::bind(first, &options)?;
        let mut listener = Listener {
            endpoints: vec![inner.endpoint().to_owned()],
            listeners: vec![Arc::new(inner)],
            options,
            ready: Arc::default(),
            threads: Vec::new(),
        };
        for ep in &endpoints[1..] {
            listener.add_endpoint(ep)?;
        }
        Ok(listener)
    }

    /// Binds one more endpoint (any transport) with the options this listener was bound
    /// with; [`Listener::accept`] then returns connections from it too. Returns the
    /// endpoint as bound (for `tcp://HOST:0`, with the port the OS chose).
    pub fn add_endpoint(&mut self, endpoint: &str) -> Result<&str> {
        let inner = Arc::new(ListenerInner::bind(endpoint, &self.options)?);
        self.endpoints.push(inner.endpoint().to_owned());
        self.listeners.push(inner);
        // From two endpoints on, each has its accept thread (the first one's starts now).
        let start = if self.threads.is_empty() {
            0
        } else {
            self.listeners.len() - 1
        };
        for l in &self.listeners[start..] {
            let (l, ready) = (l.clone(), self.ready.clone());
            let thread = std::thread::Builder::new()
                .name(format!("shmsock-accept {}", l.endpoint()))
                .spawn(move || serve(&l, &ready))
                .map_err(|e| Error::io(format!("{endpoint}: spawning the accept thread"), e))?;
            self.threads.push(thread);
        }
        Ok(self
            .endpoints
            .last()
            .map(String::as_str)
            .unwrap_or_default())
    }

    fn accept_inner(&self, timeout: Option<Duration>) -> Result<Conn> {
        if self.threads.is_empty() {
            return self.listeners[0].accept(timeout);
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut queue = self.ready.lock();
        loop {
            if let Some(conn) = queue.pop_front() {
                drop(queue);
                self.ready.changed.notify_all();
                return conn;
            }
            queue = match deadline {
                None => self
                    .ready
                    .changed
                    .wait(queue)
                    .unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(Error::TimedOut);
                    }
                    self.ready
                        .changed
                        .wait_timeout(queue, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
        }
    }

    /// Waits for a peer and completes the handshake with it.
    ///
    /// On every transport the listener runs many handshakes at once, each with one deadline
    /// for the whole exchange ([`Options::handshake_timeout`](crate::Options::handshake_timeout),
    /// 5 s by default), and a peer that fails one (wrong uid, a bad hello or segment, not
    /// ZMTP or not a ZeroMQ PAIR socket, too slow) is logged as a `tracing` warning (with its
    /// pid where known) and dropped, never returned: `accept` returns the next peer that
    /// completes its handshake, so one bad peer cannot delay or stop a server. An error
    /// is the listening socket's own (out of file descriptors, for instance).
    pub fn accept(&self) -> Result<Conn> {
        self.accept_inner(None)
    }

    /// Like [`Listener::accept`], but returns [`Error::TimedOut`] if no peer connects within
    /// `timeout`. Handshakes under way when it returns go on at the next call.
    pub fn accept_timeout(&self, timeout: Duration) -> Result<Conn> {
        self.accept_inner(Some(timeout))
    }

    /// The endpoint this listener is bound to. For `tcp://` it is the bound address, so
    /// after binding `tcp://127.0.0.1:0` it names the port the OS chose
    /// (e.g. `tcp://127.0.0.1:40123`), ready to pass to [`Conn::connect`].
    /// With several endpoints, the first one (see [`Listener::endpoints`]).
    pub fn endpoint(&self) -> &str {
        &self.endpoints[0]
    }

    /// Every endpoint this listener is bound to, in the order they were bound (`tcp://`
    /// ones with their port).
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// Path of the rendezvous socket (for diagnostics): the socket file for `unix://`,
    /// empty for `tcp://` (the first endpoint's, with several).
    pub fn socket_path(&self) -> &Path {
        self.listeners[0].socket_path()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.ready.stop.store(true, Ordering::Release);
        self.ready.changed.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A connection: ordered, reliable messages in both directions, like a `SOCK_SEQPACKET`
/// socket. `send` blocks when the peer's ring is full (back-pressure); `recv` blocks when
/// there is nothing to read. After the peer closed or died, `recv` first returns everything
/// it had sent, then [`Error::PeerClosed`] or [`Error::PeerGone`].
///
/// A `Conn` is `Send` (it can move to another thread) but not `Sync`: one thread uses it at
/// a time. Dropping it closes it cleanly.
///
/// # Examples
/// ```
/// use shmsock::{Conn, Listener, Error};
/// # std::env::set_var("SHMSOCK_RUNTIME_DIR", shmsock::test_support::runtime_dir("shmsock-doc-"));
/// let listener = Listener::bind("shm://doc-conn")?;
/// let t = std::thread::spawn(|| -> shmsock::Result<()> {
///     let mut c = Conn::connect("shm://doc-conn")?;
///     c.send(b"ping")?;
///     let mut buf = [0u8; 64];
///     let n = c.recv(&mut buf)?;
///     assert_eq!(&buf[..n], b"pong");
///     Ok(())
/// });
/// let mut s = listener.accept()?;
/// assert_eq!(s.recv_vec()?, b"ping");
/// s.send(b"pong")?;
/// t.join().unwrap()?;
/// assert!(matches!(s.recv_vec(), Err(Error::PeerClosed { .. })));
/// # Ok::<(), shmsock::Error>(())
/// ```
pub struct Conn {
    inner: ConnInner,
}

impl Conn {
    /// Connects to `endpoint` with default [`Options`].
    ///
    /// Errors: [`Error::ConnectionRefused`] if nobody listens, [`Error::PermissionDenied`]
    /// if the listener runs as a uid we do not allow, [`Error::Refused`] if it refused us,
    /// [`Error::Handshake`]/[`Error::VersionMismatch`] for a bad peer (for `tcp://` and
    /// `unix://`: one that is not a ZeroMQ PAIR socket).
    pub fn connect(endpoint: &str) -> Result<Conn> {
        Self::connect_with(endpoint, Options::default())
    }

    /// Connects to `endpoint` with `options`.
    pub fn connect_with(endpoint: &str, options: Options) -> Result<Conn> {
        let inner = options.open(
            endpoint,
            |ep, name, cfg| shm_pair::connect(ep, name, &cfg).map(ConnInner::Shm),
            |ep, cfg| net_socket::connect(&ep, &cfg).map(ConnInner::Net),
        )?;
        Ok(Conn { inner })
    }

    /// Sends one message, waiting while the peer's ring is full.
    ///
    /// Errors: [`Error::TooLarge`] (nothing is sent), [`Error::PeerGone`] /
    /// [`Error::PeerClosed`] once the peer is known to have ended.
    pub fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.send_mode(msg, Mode::Block)
    }

    #[inline]
    fn send_mode(&mut self, msg: &[u8], mode: Mode) -> Result<()> {
        match &mut self.inner {
            ConnInner::Shm(c) => c.send(msg, mode),
            ConnInner::Net(c) => c.send(msg, mode),
        }
    }

    /// Sends one message if there is room now, else [`Error::WouldBlock`].
    ///
    /// Over `tcp://` and `unix://`, "room" is the kernel's socket buffer: if it takes part
    /// of the message, the rest is kept and written before anything else (by later calls,
    /// or by `close`/`Drop` for up to a second), and the message counts as sent.
    pub fn try_send(&mut self, msg: &[u8]) -> Result<()> {
        self.send_mode(msg, Mode::Try)
    }

    /// Sends one message, waiting at most `timeout` for room ([`Error::TimedOut`]).
    pub fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<()> {
        self.send_mode(msg, Mode::timeout(timeout))
    }

    /// Receives the next message into `buf` and returns its length.
    ///
    /// If `buf` is too small, [`Error::BufferTooSmall`] is returned and the message stays
    /// queued (retry with a larger buffer, or use [`Conn::recv_vec`]).
    pub fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.recv_into(buf, Mode::Block)
    }

    /// Receives a message if one is queued, else [`Error::WouldBlock`].
    pub fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.recv_into(buf, Mode::Try)
    }

    /// Receives the next message, waiting at most `timeout` ([`Error::TimedOut`]).
    pub fn recv_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize> {
        self.recv_into(buf, Mode::timeout(timeout))
    }

    /// Receives the next message into a new `Vec`.
    pub fn recv_vec(&mut self) -> Result<Vec<u8>> {
        let shm = match &mut self.inner {
            ConnInner::Shm(c) => c,
            ConnInner::Net(c) => return c.recv_vec(Mode::Block),
        };
        let frame = shm.next_frame(Mode::Block)?;
        if !frame.loan {
            return shm.take_owned(frame);
        }
        let (len, loan) = shm.message_len(frame)?;
        let mut out = vec![0; len];
        shm.take_message(frame, loan, &mut out)?;
        Ok(out)
    }

    #[inline]
    fn recv_into(&mut self, buf: &mut [u8], mode: Mode) -> Result<usize> {
        let shm = match &mut self.inner {
            ConnInner::Shm(c) => c,
            ConnInner::Net(c) => return c.recv_into(buf, mode),
        };
        let frame = shm.next_frame(mode)?;
        if !frame.loan {
            if frame.len > ShmConn::inline_copy_max(buf.len()) {
                return recv_large(shm, frame, buf);
            }
            shm.read_frame(frame, buf)?;
            shm.finish_frame(frame);
            return Ok(frame.len);
        }
        // A loan received by a plain `recv`: copied out and handed back at once.
        let (len, loan) = shm.message_len(frame)?;
        if len > buf.len() {
            return Err(Error::BufferTooSmall {
                len,
                buf: buf.len(),
            });
        }
        shm.take_message(frame, loan, &mut buf[..len])?;
        Ok(len)
    }

    /// Takes a slot of this side's loan pool for a message of `len` bytes, to fill in place
    /// and [`Loan::send`] without a copy through the ring (zero-copy: the receiver reads
    /// the slot where you wrote it). Waits while every slot is lent and not yet released.
    ///
    /// Needs [`Options::loan_pool`] on this side over `shm://` ([`Error::NoLoanPool`]
    /// otherwise); `len` above the slot size is [`Error::TooLarge`]. Over `tcp://` and
    /// `unix://` the loan is an ordinary buffer.
    ///
    /// # Examples
    /// ```
    /// use shmsock::{Conn, Listener, Options};
    /// # std::env::set_var("SHMSOCK_RUNTIME_DIR", shmsock::test_support::runtime_dir("shmsock-doc-"));
    /// let listener = Listener::bind("shm://doc-loans")?;
    /// let sender = std::thread::spawn(|| -> shmsock::Result<()> {
    ///     let opts = Options::new().loan_pool(4, 1 << 20); // 4 slots of 1 MiB
    ///     let mut conn = Conn::connect_with("shm://doc-loans", opts)?;
    ///     let mut loan = conn.loan(1 << 20)?;
    ///     loan.fill(7); // write the payload in place
    ///     loan.send()   // only {slot, generation, length} crosses the ring
    /// });
    /// let mut conn = listener.accept()?;
    /// let sample = conn.recv_sample()?;
    /// assert!(sample.is_loan());
    /// let mut head = [0u8; 4];
    /// sample.read_at(0, &mut head);
    /// assert_eq!((sample.len(), head), (1 << 20, [7; 4]));
    /// drop(sample); // the slot goes back to the sender
    /// sender.join().unwrap()?;
    /// # Ok::<(), shmsock::Error>(())
    /// ```
    pub fn loan(&mut self, len: usize) -> Result<Loan<'_>> {
        self.loan_mode(len, Mode::Block)
    }

    /// [`Conn::loan`] if a slot is free now, else [`Error::WouldBlock`].
    pub fn try_loan(&mut self, len: usize) -> Result<Loan<'_>> {
        self.loan_mode(len, Mode::Try)
    }

    /// [`Conn::loan`], waiting at most `timeout` for a free slot ([`Error::TimedOut`]).
    pub fn loan_timeout(&mut self, len: usize, timeout: Duration) -> Result<Loan<'_>> {
        self.loan_mode(len, Mode::timeout(timeout))
    }

    fn loan_mode(&mut self, len: usize, mode: Mode) -> Result<Loan<'_>> {
        let inner = match &mut self.inner {
            ConnInner::Shm(c) => LoanInner::Shm(c.loan(len, mode)?),
            ConnInner::Net(c) => {
                let max = c.max_message_len();
                if len > max {
                    return Err(Error::TooLarge { len, max });
                }
                LoanInner::Buffer(vec![0; len])
            }
        };
        Ok(Loan { owner: self, inner })
    }

    /// Turns a loan of this connection detached with [`Loan::detach`] back into a
    /// [`Loan`], to fill, send or drop.
    ///
    /// # Panics
    /// If `loan` is a slot of another connection's or publisher's pool.
    pub fn attach(&mut self, loan: DetachedLoan) -> Loan<'_> {
        let inner = loan.into_inner_for(self.lender());
        Loan { owner: self, inner }
    }

    /// Slots of this side's loan pool that are lent (not yet released by the peer) or
    /// being filled. [`Error::Corrupt`] if the peer released a slot it was never lent.
    pub fn loans_outstanding(&mut self) -> Result<usize> {
        match &mut self.inner {
            ConnInner::Shm(c) => c.loans_outstanding(),
            ConnInner::Net(_) => Ok(0),
        }
    }

    /// Receives the next message as a [`Sample`]: a zero-copy view of the sender's slot
    /// when it was sent as a loan over `shm://`, a copy otherwise. Dropping the sample
    /// hands the slot back.
    pub fn recv_sample(&mut self) -> Result<Sample> {
        self.recv_sample_mode(Mode::Block)
    }

    /// [`Conn::recv_sample`] if a message is queued, else [`Error::WouldBlock`].
    pub fn try_recv_sample(&mut self) -> Result<Sample> {
        self.recv_sample_mode(Mode::Try)
    }

    /// [`Conn::recv_sample`], waiting at most `timeout` ([`Error::TimedOut`]).
    pub fn recv_sample_timeout(&mut self, timeout: Duration) -> Result<Sample> {
        self.recv_sample_mode(Mode::timeout(timeout))
    }

    fn recv_sample_mode(&mut self, mode: Mode) -> Result<Sample> {
        let shm = match &mut self.inner {
            ConnInner::Shm(c) => c,
            ConnInner::Net(c) => return c.recv_vec(mode).map(Sample::owned),
        };
        let frame = shm.next_frame(mode)?;
        if !frame.loan {
            return shm.take_owned(frame).map(Sample::owned);
        }
        let loan = shm.check_loan(frame)?;
        Ok(ShmSample::Lent(shm.take_loan(frame, loan)).into())
    }

    /// Sends a serde value, encoded with postcard (compact binary). See [`Conn::recv_value`].
    pub fn send_value<T: serde::Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        let bytes = crate::typed::encode(value)?;
        self.send(&bytes)
    }

    /// Receives a message and decodes it as a `T` sent by [`Conn::send_value`]
    /// ([`Error::Decode`] if it is not one; the message is consumed either way).
    pub fn recv_value<T: serde::de::DeserializeOwned>(&mut self) -> Result<T> {
        crate::typed::decode(&self.recv_vec()?)
    }

    /// Sends a plain fixed-layout value as its bytes (no encoding step).
    pub fn send_pod<T: bytemuck::NoUninit>(&mut self, value: &T) -> Result<()> {
        self.send(bytemuck::bytes_of(value))
    }

    /// Receives a message of exactly `size_of::<T>()` bytes as a `T` (copied out of the
    /// ring, so the ring's alignment does not matter; [`Error::Decode`] on a size mismatch).
    pub fn recv_pod<T: bytemuck::Pod>(&mut self) -> Result<T> {
        let mut buf = vec![0u8; std::mem::size_of::<T>().max(1)];
        match self.recv(&mut buf) {
            Ok(n) => crate::typed::from_pod_bytes(&buf[..n]),
            Err(Error::BufferTooSmall { .. }) => crate::typed::from_pod_bytes(&self.recv_vec()?),
            Err(e) => Err(e),
        }
    }

    /// Closes the connection cleanly: the peer receives everything sent so far, then
    /// [`Error::PeerClosed`]. Dropping the `Conn` does the same.
    pub fn close(mut self) {
        match &mut self.inner {
            ConnInner::Shm(c) => c.close(),
            ConnInner::Net(c) => c.close(),
        }
    }

    /// The endpoint of this connection.
    pub fn endpoint(&self) -> &str {
        match &self.inner {
            ConnInner::Shm(c) => c.endpoint(),
            ConnInner::Net(c) => c.endpoint(),
        }
    }

    /// The peer's process id (from `SO_PEERCRED`), or 0 when unknown (`tcp://` peers).
    pub fn peer_pid(&self) -> i32 {
        match &self.inner {
            ConnInner::Shm(c) => c.peer_pid(),
            ConnInner::Net(c) => c.peer_pid(),
        }
    }

    /// Largest message `send` accepts on this connection: the ring capacity minus its
    /// header for `shm://`, [`Options::max_message_len`] for `tcp://` and `unix://`.
    pub fn max_message_len(&self) -> usize {
        match &self.inner {
            ConnInner::Shm(c) => c.max_message_len(),
            ConnInner::Net(c) => c.max_message_len(),
        }
    }

    #[cfg(test)]
    pub(crate) fn shm(&self) -> &ShmConn {
        match &self.inner {
            ConnInner::Shm(c) => c,
            ConnInner::Net(_) => panic!("shm() called on a tcp:// or unix:// connection"),
        }
    }
}

impl Lends for Conn {
    fn send_loan(&mut self, loan: &LoanInner, mode: Mode) -> Result<()> {
        match (&mut self.inner, loan) {
            (ConnInner::Shm(c), LoanInner::Shm(l)) => c.send_loan(l, mode),
            (_, LoanInner::Buffer(b)) => self.send_mode(b, mode),
            _ => Ok(()),
        }
    }

    fn lender(&self) -> Option<&Lender> {
        match &self.inner {
            ConnInner::Shm(c) => c.lender.as_ref(),
            ConnInner::Net(_) => None,
        }
    }

    fn lender_mut(&mut self) -> Option<&mut Lender> {
        match &mut self.inner {
            ConnInner::Shm(c) => c.lender.as_mut(),
            ConnInner::Net(_) => None,
        }
    }
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("endpoint", &self.endpoint())
            .field("peer_pid", &self.peer_pid())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

/// [`Conn::recv`] over `shm://` of a frame over [`ShmConn::inline_copy_max`]: too large for
/// `buf`, or large enough to be copied by [`ShmConn::read_large`] (timed for a `Blocking`
/// receiver). Out of line, so the path of a small frame stays as short as it was.
#[inline(never)]
fn recv_large(shm: &mut ShmConn, frame: Frame, buf: &mut [u8]) -> Result<usize> {
    if frame.len > buf.len() {
        return Err(Error::BufferTooSmall {
            len: frame.len,
            buf: buf.len(),
        });
    }
    shm.read_large(frame, buf)?;
    shm.finish_frame(frame);
    Ok(frame.len)
}
