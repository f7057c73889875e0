//! Endpoint strings: `shm://name`, `unix:///path`, `tcp://host:port`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::error::{Error, Result};

/// Longest accepted shm:// name, in bytes (the socket path must fit in `sun_path`).
pub const SHM_NAME_MAX_BYTES: usize = 100;

/// A parsed endpoint.
///
/// # Examples
/// ```
/// use shmsock::Endpoint;
/// let ep: Endpoint = "shm://prices".parse().unwrap();
/// assert_eq!(ep, Endpoint::Shm("prices".into()));
/// assert_eq!(ep.to_string(), "shm://prices");
/// assert!("shm://../etc".parse::<Endpoint>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// Shared memory on this machine, rendezvous by name.
    Shm(String),
    /// A Unix domain socket path.
    Unix(PathBuf),
    /// A TCP host and port.
    Tcp {
        /// Host name or address.
        host: String,
        /// Port number.
        port: u16,
    },
}

impl Endpoint {
    /// Parses an endpoint string (same as `str::parse`).
    pub fn parse(input: &str) -> Result<Self> {
        input.parse()
    }

    /// The scheme name without `://`.
    pub fn scheme(&self) -> &'static str {
        match self {
            Endpoint::Shm(_) => "shm",
            Endpoint::Unix(_) => "unix",
            Endpoint::Tcp { .. } => "tcp",
        }
    }
}

fn invalid(input: &str, reason: &'static str) -> Error {
    Error::InvalidEndpoint {
        input: input.to_owned(),
        reason,
    }
}

/// Checks a shm:// name: it becomes a file name, so no separators, no dot files.
fn valid_shm_name(name: &str) -> std::result::Result<(), &'static str> {
    if name.is_empty() {
        return Err("the shm:// name is empty");
    }
    if name.len() > SHM_NAME_MAX_BYTES {
        return Err("the shm:// name is longer than 100 bytes");
    }
    if name.starts_with('.') {
        return Err("the shm:// name may not start with '.'");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err("the shm:// name may only contain letters, digits, '.', '_' and '-'");
    }
    Ok(())
}

impl FromStr for Endpoint {
    type Err = Error;

    fn from_str(input: &str) -> Result<Self> {
        let (scheme, rest) = input
            .split_once("://")
            .ok_or_else(|| invalid(input, "missing scheme"))?;
        match scheme {
            "shm" => {
                valid_shm_name(rest).map_err(|r| invalid(input, r))?;
                Ok(Endpoint::Shm(rest.to_owned()))
            }
            "unix" => {
                if !rest.starts_with('/') {
                    return Err(invalid(input, "unix:// needs an absolute path"));
                }
                if rest.len() > 107 {
                    return Err(invalid(input, "unix:// path is longer than 107 bytes"));
                }
                Ok(Endpoint::Unix(PathBuf::from(rest)))
            }
            "tcp" => {
                let (host, port) = rest
                    .rsplit_once(':')
                    .ok_or_else(|| invalid(input, "tcp:// needs HOST:PORT"))?;
                let host = host.trim_start_matches('[').trim_end_matches(']');
                if host.is_empty() {
                    return Err(invalid(input, "tcp:// host is empty"));
                }
                let port = port
                    .parse::<u16>()
                    .map_err(|_| invalid(input, "tcp:// port is not a number in 0..=65535"))?;
                Ok(Endpoint::Tcp {
                    host: host.to_owned(),
                    port,
                })
            }
            _ => Err(invalid(input, "unknown scheme")),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Shm(name) => write!(f, "shm://{name}"),
            Endpoint::Unix(path) => write!(f, "unix://{}", path.display()),
            Endpoint::Tcp { host, port } if host.contains(':') => {
                write!(f, "tcp://[{host}]:{port}")
            }
            Endpoint::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_scheme_and_round_trips() {
        for s in [
            "shm://a",
            "shm://prices.v2_x-1",
            "unix:///tmp/x.sock",
            "tcp://127.0.0.1:5555",
            "tcp://[::1]:80",
        ] {
            let ep: Endpoint = s.parse().unwrap();
            assert_eq!(ep.to_string(), s);
        }
    }

    #[test]
    fn malformed_endpoints_name_the_input() {
        for s in [
            "",
            "shm://",
            "shm://a/b",
            "shm://.hidden",
            "prices",
            "udp://x:1",
            "tcp://host",
            "tcp://h:99999",
            "unix://rel/path",
        ] {
            let err = s.parse::<Endpoint>().unwrap_err();
            let text = err.to_string();
            assert!(matches!(err, Error::InvalidEndpoint { .. }), "{s}");
            assert!(text.contains(&format!("{s:?}")), "{text}");
            assert!(text.contains("shm://NAME"), "{text}");
        }
        let long = format!("shm://{}", "a".repeat(101));
        assert!(long.parse::<Endpoint>().is_err());
    }
}
