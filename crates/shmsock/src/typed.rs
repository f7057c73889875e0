//! Typed messages: serde values as postcard bytes, and plain fixed-layout values as their
//! bytes (bytemuck).
//!
//! # Examples
//! ```
//! use shmsock::{Conn, Listener};
//! # std::env::set_var("SHMSOCK_RUNTIME_DIR", shmsock::test_support::runtime_dir("shmsock-doc-"));
//! #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
//! struct Quote { symbol: String, price: f64 }
//!
//! #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable, PartialEq, Debug)]
//! #[repr(C)]
//! struct Tick { seq: u64, price_e6: i64 }
//!
//! let listener = Listener::bind("shm://doc-typed")?;
//! let sender = std::thread::spawn(|| -> shmsock::Result<()> {
//!     let mut tx = Conn::connect("shm://doc-typed")?;
//!     tx.send_value(&Quote { symbol: "ACME".into(), price: 12.5 })?;
//!     tx.send_pod(&Tick { seq: 7, price_e6: 12_500_000 })?;
//!     Ok(())
//! });
//! let mut rx = listener.accept()?;
//! assert_eq!(rx.recv_value::<Quote>()?, Quote { symbol: "ACME".into(), price: 12.5 });
//! assert_eq!(rx.recv_pod::<Tick>()?, Tick { seq: 7, price_e6: 12_500_000 });
//! // A message of the wrong size is a typed error, not garbage.
//! assert!(matches!(rx.recv_pod::<u32>(), Err(shmsock::Error::PeerClosed { .. })));
//! sender.join().unwrap()?;
//! # Ok::<(), shmsock::Error>(())
//! ```

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    postcard::to_allocvec(value).map_err(|e| Error::Encode {
        type_name: std::any::type_name::<T>(),
        reason: e.to_string(),
    })
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    postcard::from_bytes(bytes).map_err(|e| Error::Decode {
        type_name: std::any::type_name::<T>(),
        reason: e.to_string(),
    })
}

/// Reads a `T` out of a message, which must be exactly `size_of::<T>()` bytes. The copy
/// makes the alignment of the message bytes irrelevant.
pub(crate) fn from_pod_bytes<T: bytemuck::Pod>(bytes: &[u8]) -> Result<T> {
    if bytes.len() != std::mem::size_of::<T>() {
        return Err(Error::Decode {
            type_name: std::any::type_name::<T>(),
            reason: format!(
                "message of {} bytes, the type has {}",
                bytes.len(),
                std::mem::size_of::<T>()
            ),
        });
    }
    let mut value = T::zeroed();
    bytemuck::bytes_of_mut(&mut value).copy_from_slice(bytes);
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Order {
        id: u64,
        side: String,
        qty: Vec<u32>,
    }

    #[test]
    fn values_round_trip_and_garbage_is_a_decode_error() {
        let order = Order {
            id: 9,
            side: "buy".into(),
            qty: vec![1, 2, 3],
        };
        let bytes = encode(&order).unwrap();
        assert_eq!(decode::<Order>(&bytes).unwrap(), order);
        let err = decode::<Order>(&bytes[..bytes.len() - 1]).unwrap_err();
        assert!(matches!(err, Error::Decode { .. }), "{err}");
        assert!(err.to_string().contains("Order"), "{err}");
    }

    #[test]
    fn pod_size_mismatch_is_a_decode_error_and_alignment_does_not_matter() {
        let bytes = [0u8, 1, 0, 0, 0, 0, 0, 0, 0];
        // Offset 1: deliberately misaligned for a u64.
        assert_eq!(from_pod_bytes::<u64>(&bytes[1..]).unwrap(), 1);
        let err = from_pod_bytes::<u64>(&bytes).unwrap_err();
        assert!(err.to_string().contains("9 bytes"), "{err}");
    }
}
