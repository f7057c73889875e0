//! `shmsock-loan` and `shmsock-loan-read`: shmsock's zero-copy loans (`Conn::loan`,
//! `Conn::recv_sample`), the library's version of the offset exchange.
//!
//! The sender (child) connects with a pool of [`LOAN_SLOTS`] slots of the message size, takes
//! a slot per message, writes the sequence number into its first and last 8 bytes (standing
//! for producing the payload in place) and sends it: a 24-byte loan frame crosses the ring.
//! The receiver checks both words through the sample and drops it, which hands the slot back.
//! `shmsock-loan` reads only those 16 bytes (pointer exchange, as the Comparison measures it);
//! `shmsock-loan-read` also copies every byte out of the slot (the rate when the receiver
//! reads the whole message). Stream pattern only, like the offset rows.

use shmsock::{Options, Sample};

use super::shmsock::{lib, Connection};
use super::{Mechanism, Pair, Pattern, Side};
use crate::error::LabError;

/// Slots in the sender's pool: how many messages may be in flight.
pub const LOAN_SLOTS: usize = 8;

/// Loans, with or without reading every byte.
pub struct Loans {
    name: &'static str,
    read_all: bool,
}

impl Loans {
    /// Pointer exchange: the receiver looks at 16 bytes of each message.
    pub fn pointer_exchange() -> Self {
        Loans {
            name: "shmsock-loan",
            read_all: false,
        }
    }

    /// The receiver copies every byte out of the slot.
    pub fn read_all() -> Self {
        Loans {
            name: "shmsock-loan-read",
            read_all: true,
        }
    }
}

impl Mechanism for Loans {
    fn name(&self) -> &'static str {
        self.name
    }

    fn supports(&self, pattern: Pattern) -> bool {
        pattern == Pattern::Stream
    }

    fn setup(&self, pattern: Pattern, size: usize) -> Result<Pair, LabError> {
        if pattern != Pattern::Stream || size < 16 {
            return Err(LabError::Unsupported {
                mechanism: "loans",
                what: "anything but streaming messages of 16 bytes or more",
            });
        }
        let connect = Options::new().loan_pool(LOAN_SLOTS, size);
        let (parent, child) = Connection::pair(Options::default(), connect)?;
        let side = |conn| LoanSide {
            conn,
            size,
            read_all: self.read_all,
        };
        Ok(Pair {
            parent: Box::new(side(parent)),
            child: Box::new(side(child)),
        })
    }
}

struct LoanSide {
    conn: Connection,
    size: usize,
    read_all: bool,
}

impl Side for LoanSide {
    fn start(&mut self) -> Result<(), LabError> {
        self.conn.start()
    }

    fn abandon(self: Box<Self>) {
        // Dropping a Listener removes its name, which the other process still accepts on.
        std::mem::forget(self);
    }

    fn send(&mut self, msg: &[u8]) -> Result<(), LabError> {
        let seq = msg.first_chunk::<8>().copied().ok_or(LabError::WrongSize {
            len: msg.len(),
            size: self.size,
        })?;
        let size = self.size;
        let mut loan = self.conn.conn()?.loan(size).map_err(lib("loan"))?;
        loan[..8].copy_from_slice(&seq);
        loan[size - 8..].copy_from_slice(&seq);
        loan.send().map_err(lib("send loan"))
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, LabError> {
        let (size, read_all) = (self.size, self.read_all);
        let sample: Sample = self
            .conn
            .conn()?
            .recv_sample()
            .map_err(lib("recv_sample"))?;
        if sample.len() != size || !sample.is_loan() {
            return Err(LabError::Integrity {
                detail: format!(
                    "a {}-byte sample (loan: {}), expected a {size}-byte loan",
                    sample.len(),
                    sample.is_loan()
                ),
            });
        }
        let (mut head, mut tail) = ([0u8; 8], [0u8; 8]);
        if read_all && buf.len() >= size {
            sample.copy_to(buf);
            head.copy_from_slice(&buf[..8]);
            tail.copy_from_slice(&buf[size - 8..size]);
        } else {
            sample.read_at(0, &mut head);
            sample.read_at(size - 8, &mut tail);
        }
        if head != tail {
            return Err(LabError::Integrity {
                detail: format!(
                    "slot carries {} / {}",
                    u64::from_le_bytes(head),
                    u64::from_le_bytes(tail)
                ),
            });
        }
        buf[..8].copy_from_slice(&head);
        Ok(size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiments::{throughput, Budget};
    use crate::host::Pinning;
    use std::time::Duration;

    #[test]
    fn loans_stream_every_slot_intact() {
        let _lock = crate::process::FORK_LOCK
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let pinning = Pinning::choose().expect("affinity");
        let tiny = Budget {
            warmup_iters: 64,
            warmup_time: Duration::from_millis(20),
            iters: 2_000,
            max_time: Duration::from_millis(100),
        };
        for m in [Loans::pointer_exchange(), Loans::read_all()] {
            let row = throughput::measure(&m, 64 * 1024, tiny, pinning)
                .unwrap_or_else(|e| panic!("{}: {e}", m.name()));
            assert!(row.messages > 0, "{row:?}");
        }
    }
}
