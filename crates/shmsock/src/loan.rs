//! Zero-copy loans: [`Loan`] (a slot of the sender's pool, filled in place), [`DetachedLoan`]
//! (a loan that no longer borrows its sender) and [`Sample`] (the receiver's read-only view
//! of it, handed back when dropped).

use std::time::Duration;

use crate::error::{Error, Result};
use crate::shm::identity::SegmentId;
use crate::shm::loan::{Lender, LoanRef, ShmSample};
use crate::vocabulary::Mode;

/// Why a loan's pool is there: only a side with a pool makes `LoanInner::Shm` loans.
pub(crate) const FROM_OUR_POOL: &str = "a loan comes from our pool";

/// A slot of this side's loan pool, lent by [`Conn::loan`](crate::Conn::loan) or
/// [`Publisher::loan`](crate::Publisher::loan): fill it in place (it derefs to `&mut [u8]`
/// of the requested length), then [`Loan::send`] it. Over `shm://` only a 24-byte frame
/// `{slot, generation, length}` crosses the ring; the receivers read the bytes where they
/// were written. Dropping a loan without sending it returns the slot. Over `tcp://` and
/// `unix://` a loan is a plain buffer, sent as an ordinary message.
pub struct Loan<'a> {
    pub(crate) owner: &'a mut dyn Lends,
    pub(crate) inner: LoanInner,
}

/// What lends: a [`Conn`](crate::Conn) or a [`Publisher`](crate::Publisher).
pub(crate) trait Lends {
    /// Sends a filled loan (not `LoanInner::Sent`). On an error its slot is free again,
    /// except when the call ran out of time ([`Error::is_out_of_time`]): the loan is then
    /// still the caller's, unsent.
    fn send_loan(&mut self, loan: &LoanInner, mode: Mode) -> Result<()>;
    /// The pool `LoanInner::Shm` loans come from (none over `tcp://` and `unix://`).
    fn lender(&self) -> Option<&Lender>;
    /// The pool, writable.
    fn lender_mut(&mut self) -> Option<&mut Lender>;
}

pub(crate) enum LoanInner {
    Shm(LoanRef),
    Buffer(Vec<u8>),
    Sent,
}

impl Loan<'_> {
    /// Sends the loan (waits for ring space like a `send`). On error the slot is
    /// returned to the pool.
    pub fn send(mut self) -> Result<()> {
        self.send_mode(Mode::Block)
    }

    /// Sends the loan, waiting at most `timeout` for room in the ring (a publisher's: for
    /// its slowest subscriber, as `send_timeout` does). If the time runs out
    /// ([`Error::TimedOut`], or a publisher's [`Error::SlowSubscriber`]) nothing was sent
    /// and the loan is still yours, filled as it was: send it again, or drop it. After any
    /// other outcome the loan is spent (sent, or its slot back in the pool on an error):
    /// it is then empty and sending it again is [`Error::Closed`].
    ///
    /// This lets a caller wait in slices, doing something else between them (a binding
    /// checks for Ctrl-C there).
    pub fn send_timeout(&mut self, timeout: Duration) -> Result<()> {
        self.send_mode(Mode::timeout(timeout))
    }

    fn send_mode(&mut self, mode: Mode) -> Result<()> {
        if matches!(self.inner, LoanInner::Sent) {
            return Err(Error::Closed);
        }
        let sent = self.owner.send_loan(&self.inner, mode);
        if !matches!(&sent, Err(e) if e.is_out_of_time()) {
            self.inner = LoanInner::Sent;
        }
        sent
    }

    /// Detaches the loan from the borrow of its `Conn` or `Publisher`, for a caller that
    /// cannot hold that borrow across calls (a binding to a garbage-collected language
    /// keeps it in an object of its own). See [`DetachedLoan`].
    pub fn detach(mut self) -> DetachedLoan {
        let lender = match &self.inner {
            LoanInner::Shm(_) => Some(self.owner.lender().expect(FROM_OUR_POOL).id()),
            LoanInner::Buffer(_) | LoanInner::Sent => None,
        };
        // `Sent` left behind: dropping `self` gives nothing back to the pool.
        let inner = std::mem::replace(&mut self.inner, LoanInner::Sent);
        DetachedLoan { inner, lender }
    }

    /// Length of the loan in bytes.
    pub fn len(&self) -> usize {
        match &self.inner {
            LoanInner::Shm(l) => l.len,
            LoanInner::Buffer(b) => b.len(),
            LoanInner::Sent => 0,
        }
    }

    /// True for a zero-length loan.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The loan as a `&mut T` to fill in place (zero-copy typed send): the loan must be
    /// exactly `size_of::<T>()` bytes and aligned for `T` (loan slots are 64-byte aligned
    /// over `shm://`), else [`Error::Encode`].
    ///
    /// ```
    /// use shmsock::{Conn, Listener, Options};
    /// # std::env::set_var("SHMSOCK_RUNTIME_DIR", shmsock::test_support::runtime_dir("shmsock-doc-"));
    /// #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable, PartialEq, Debug)]
    /// #[repr(C)]
    /// struct Frame { seq: u64, pixels: [u8; 4096] }
    ///
    /// let listener = Listener::bind("shm://doc-pod-loans")?;
    /// let sender = std::thread::spawn(|| -> shmsock::Result<()> {
    ///     let mut conn = Conn::connect_with("shm://doc-pod-loans", Options::new().loan_pool(2, 8192))?;
    ///     let mut loan = conn.loan(std::mem::size_of::<Frame>())?;
    ///     let frame: &mut Frame = loan.as_pod_mut()?;
    ///     frame.seq = 1;
    ///     frame.pixels.fill(255);
    ///     loan.send()
    /// });
    /// let mut conn = listener.accept()?;
    /// let sample = conn.recv_sample()?;
    /// let frame: Frame = sample.read_pod()?; // one copy, straight out of the sender's slot
    /// assert_eq!((frame.seq, frame.pixels[4095]), (1, 255));
    /// sender.join().unwrap()?;
    /// # Ok::<(), shmsock::Error>(())
    /// ```
    pub fn as_pod_mut<T: bytemuck::Pod>(&mut self) -> Result<&mut T> {
        let bytes: &mut [u8] = self;
        let len = bytes.len();
        bytemuck::try_from_bytes_mut(bytes).map_err(|e| Error::Encode {
            type_name: std::any::type_name::<T>(),
            reason: format!("a loan of {len} bytes as {e:?}"),
        })
    }
}

impl std::ops::Deref for Loan<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.inner {
            LoanInner::Shm(l) => self.owner.lender().expect(FROM_OUR_POOL).bytes(l),
            LoanInner::Buffer(b) => b,
            LoanInner::Sent => &[],
        }
    }
}

impl std::ops::DerefMut for Loan<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        match &mut self.inner {
            LoanInner::Shm(l) => self.owner.lender_mut().expect(FROM_OUR_POOL).bytes_mut(l),
            LoanInner::Buffer(b) => b,
            LoanInner::Sent => &mut [],
        }
    }
}

impl std::fmt::Debug for Loan<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loan")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl Drop for Loan<'_> {
    fn drop(&mut self) {
        if let LoanInner::Shm(l) = &self.inner {
            if let Some(lender) = self.owner.lender_mut() {
                lender.abandon(l);
            }
        }
    }
}

/// A [`Loan`] that no longer borrows its [`Conn`](crate::Conn) or
/// [`Publisher`](crate::Publisher) ([`Loan::detach`]), so the lender can be used meanwhile
/// (to receive, send, or lend other slots). [`Conn::attach`](crate::Conn::attach) or
/// [`Publisher::attach`](crate::Publisher::attach) on the lender it came from turns it back
/// into a [`Loan`] to fill, send or drop.
///
/// The slot stays where it is while detached: the bytes written before detaching are
/// still there when it is attached again, and a pointer to the loan's bytes taken before
/// detaching stays valid until the loan is sent or dropped, or its lender is dropped
/// (nothing but the holder of the loan reads or writes a slot being filled).
///
/// Dropping a `DetachedLoan` does not return its slot (it cannot reach its pool): the slot
/// stays out until its lender is dropped. Attach it and drop the [`Loan`] instead.
///
/// # Examples
/// ```
/// use shmsock::{Conn, Listener, Options};
/// # std::env::set_var("SHMSOCK_RUNTIME_DIR", shmsock::test_support::runtime_dir("shmsock-doc-"));
/// let listener = Listener::bind("shm://doc-detached")?;
/// let pool = Options::new().loan_pool(2, 4096);
/// let peer = std::thread::spawn(move || Conn::connect_with("shm://doc-detached", pool));
/// let mut b = listener.accept()?;
/// let mut a = peer.join().unwrap()?;
/// let mut loan = a.loan(5)?;
/// loan.copy_from_slice(b"hello");
/// let detached = loan.detach();
/// b.send(b"meanwhile")?; // `a` is free while the loan is detached
/// assert_eq!(a.recv_vec()?, b"meanwhile");
/// a.attach(detached).send()?;
/// assert_eq!(b.recv_vec()?, b"hello");
/// # Ok::<(), shmsock::Error>(())
/// ```
pub struct DetachedLoan {
    inner: LoanInner,
    /// The pool a `LoanInner::Shm` loan is a slot of.
    lender: Option<SegmentId>,
}

impl DetachedLoan {
    /// Length of the loan in bytes (0 once spent).
    pub fn len(&self) -> usize {
        match &self.inner {
            LoanInner::Shm(l) => l.len,
            LoanInner::Buffer(b) => b.len(),
            LoanInner::Sent => 0,
        }
    }

    /// True for a zero-length loan.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True for a slot of a `shm://` loan pool (zero-copy), false for the plain buffer of
    /// a `tcp://` or `unix://` loan.
    pub fn is_zero_copy(&self) -> bool {
        matches!(self.inner, LoanInner::Shm(_))
    }

    /// The loan, checked to be a slot of `lender`'s pool (if a slot at all).
    ///
    /// # Panics
    /// If the loan is a slot of another pool: attaching it elsewhere is a bug of the
    /// caller's, and would hand one lender's slot to another.
    pub(crate) fn into_inner_for(self, lender: Option<&Lender>) -> LoanInner {
        if let LoanInner::Shm(_) = self.inner {
            assert!(
                lender.map(Lender::id) == self.lender,
                "a DetachedLoan was attached to a Conn or Publisher other than the one that lent it"
            );
        }
        self.inner
    }
}

impl std::fmt::Debug for DetachedLoan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DetachedLoan")
            .field("len", &self.len())
            .field("zero_copy", &self.is_zero_copy())
            .finish()
    }
}

/// A received message, viewed where the sender wrote it when it came as a loan over
/// `shm://` (a copy otherwise). Dropping it hands the slot back to the sender.
///
/// The bytes live in the *sender's* memory, which a buggy or hostile sender could still
/// change while you read them; so the safe accessors copy ([`Sample::read_at`],
/// [`Sample::to_vec`], [`Sample::copy_to`]) and [`Sample::as_slice`] is `unsafe`. A sample
/// is `Send`: it may be dropped on another thread.
pub struct Sample {
    inner: ShmSample,
}

impl From<ShmSample> for Sample {
    fn from(inner: ShmSample) -> Self {
        Sample { inner }
    }
}

impl Sample {
    /// A sample of a message that was copied (every transport but a loan over `shm://`).
    pub(crate) fn owned(bytes: Vec<u8>) -> Self {
        ShmSample::Copied(bytes).into()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// True for an empty message.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True if the bytes are viewed in the sender's pool (zero-copy), false for a copy.
    pub fn is_loan(&self) -> bool {
        matches!(self.inner, ShmSample::Lent(_))
    }

    /// Copies `out.len()` bytes starting at `offset` into `out`. Panics if that range
    /// leaves the sample (like slice indexing).
    pub fn read_at(&self, offset: usize, out: &mut [u8]) {
        if offset
            .checked_add(out.len())
            .is_none_or(|end| end > self.len())
        {
            panic!(
                "read of {} bytes at offset {offset} of a {}-byte sample",
                out.len(),
                self.len()
            );
        }
        self.inner.read_at(offset, out);
    }

    /// Copies the whole message into `out[..len]` and returns `len`; panics if `out` is
    /// shorter.
    pub fn copy_to(&self, out: &mut [u8]) -> usize {
        let n = self.len();
        self.read_at(0, &mut out[..n]);
        n
    }

    /// The message as a `T`, copied straight out of the sender's slot (no intermediate
    /// buffer); it must be exactly `size_of::<T>()` bytes ([`Error::Decode`] otherwise).
    /// Alignment does not matter. For a reference in place see [`Sample::as_pod`].
    pub fn read_pod<T: bytemuck::Pod>(&self) -> Result<T> {
        if self.len() != std::mem::size_of::<T>() {
            return Err(Error::Decode {
                type_name: std::any::type_name::<T>(),
                reason: format!(
                    "message of {} bytes, the type has {}",
                    self.len(),
                    std::mem::size_of::<T>()
                ),
            });
        }
        let mut value = T::zeroed();
        self.read_at(0, bytemuck::bytes_of_mut(&mut value));
        Ok(value)
    }

    /// The message as a new `Vec`.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.len()];
        self.read_at(0, &mut v);
        v
    }

    /// The bytes in place, without a copy.
    ///
    /// # Safety
    /// For a loan, the bytes are in the sender's memory. The caller must trust the sender
    /// not to write to a slot it lent until the sample is dropped (a correct shmsock sender
    /// never does; a buggy or hostile one could, which would make this a data race).
    #[allow(unsafe_code)]
    pub unsafe fn as_slice(&self) -> &[u8] {
        match &self.inner {
            ShmSample::Lent(lent) => {
                let (pool, slot) = lent.place();
                // SAFETY: forwarded to our caller; the pool (held by `lent`) outlives the
                // slice, and the loan was checked against it when it was received.
                unsafe { pool.slot_slice(slot, lent.len()) }
                    .expect("the loan was checked against the pool")
            }
            ShmSample::Copied(b) => b,
        }
    }

    /// The message as a `&T` in place, without a copy (zero-copy for plain fixed-layout
    /// types). Loan slots are 64-byte aligned, so any `T` with alignment up to 64 fits a
    /// loan; a copied sample may not be aligned. `Err` ([`Error::Decode`]) if the size
    /// differs or the bytes are misaligned for `T`; use [`Sample::read_pod`] for a checked
    /// copy.
    ///
    /// # Safety
    /// As for [`Sample::as_slice`]: the sender must not write the slot while the reference
    /// lives.
    #[allow(unsafe_code)]
    pub unsafe fn as_pod<T: bytemuck::Pod>(&self) -> Result<&T> {
        // SAFETY: forwarded to our caller.
        let bytes = unsafe { self.as_slice() };
        bytemuck::try_from_bytes(bytes).map_err(|e| Error::Decode {
            type_name: std::any::type_name::<T>(),
            reason: format!("a sample of {} bytes as {e:?}", bytes.len()),
        })
    }
}

impl std::fmt::Debug for Sample {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sample")
            .field("len", &self.len())
            .field("loan", &self.is_loan())
            .finish()
    }
}
