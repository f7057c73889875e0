//! What `shmsock send` and `shmsock pub` send: `--count` numbered messages of `--size`
//! bytes (the sequence number in the first 8 bytes, little-endian), or else one message per
//! line of standard input.

use std::io::{BufRead, BufReader};

use shmsock::Error;

/// Sends every outgoing message with `send` and returns how many messages and bytes went.
pub(crate) fn send_each(
    size: Option<usize>,
    count: Option<u64>,
    mut send: impl FnMut(&[u8]) -> Result<(), Error>,
) -> Result<(u64, u64), Error> {
    if let (Some(size), Some(count)) = (size, count) {
        let mut buf = vec![0u8; size];
        for seq in 0..count {
            let n = size.min(8);
            buf[..n].copy_from_slice(&seq.to_le_bytes()[..n]);
            send(&buf)?;
        }
        return Ok((count, count * size as u64));
    }
    let (mut msgs, mut bytes) = (0u64, 0u64);
    for line in BufReader::new(std::io::stdin().lock()).split(b'\n') {
        let line = line.map_err(|e| Error::Io {
            context: "reading stdin".into(),
            source: e,
        })?;
        send(&line)?;
        msgs += 1;
        bytes += line.len() as u64;
    }
    Ok((msgs, bytes))
}
