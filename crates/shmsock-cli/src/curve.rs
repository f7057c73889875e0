//! The CURVE flags of the endpoint commands (RFC 26 CurveZMQ on `tcp://` and `unix://`):
//! `--curve-secret FILE`, `--curve-server KEY|FILE` and `--curve-allow FILE|DIR`, turned
//! into [`Options::curve_secret`], [`Options::curve_server`] and [`Options::curve_allow`].
//!
//! One scheme for every command: the side that binds (`recv`, `pub`, the bridge's
//! destination) is the CURVE server, the side that connects (`send`, `sub`, the bridge's
//! source) is the CURVE client. A flag given to the wrong side, or on a `shm://` endpoint
//! (protected by uid checks, not by CURVE), is refused before anything is bound or
//! connected, with a message naming the flag. Keys and certificates are read here, so a
//! file that cannot be used is reported with the flag that named it.
//!
//! `send`, `recv`, `pub` and `sub` flatten [`CurveArgs`]; `bridge` has prefixed flags for
//! its two ends (`--source-curve-*`, `--destination-curve-*`) and builds a [`CurveFlags`]
//! for each with [`CurveFlags::new`], so the checks and the loading are the same code.

use std::path::{Path, PathBuf};

use clap::Args;
use shmsock::{CurveKeyPair, CurvePublicKey, Endpoint, Error, Options};

/// Length of a public key in Z85 text.
const Z85_KEY_LEN: usize = 40;

/// The CURVE flags of `send`, `recv`, `pub` and `sub`.
#[derive(Args, Debug, Default)]
pub(crate) struct CurveArgs {
    /// CURVE (tcp://, unix://): our certificate, a NAME.key_secret file (`shmsock keygen
    /// NAME`). On a bound side (recv, pub) it makes the endpoint a CURVE server: every
    /// message is encrypted and authenticated, peers without CURVE are refused. On a
    /// connecting side (send, sub) it is our identity, checked against the server's
    /// --curve-allow (without it a fresh key is used per connection).
    #[arg(
        long,
        value_name = "FILE",
        help_heading = "CURVE security (tcp://, unix://)"
    )]
    curve_secret: Option<PathBuf>,
    /// CURVE client (send, sub): the server's public key, as 40 Z85 characters or its
    /// NAME.key (or NAME.key_secret) file. The connection fails unless the server proves it
    /// holds the matching secret key. (A Z85 key may start with `-`: it is still taken as
    /// the value.)
    #[arg(
        long,
        value_name = "KEY|FILE",
        allow_hyphen_values = true,
        help_heading = "CURVE security (tcp://, unix://)"
    )]
    curve_server: Option<String>,
    /// CURVE server (recv, pub; needs --curve-secret): admit only the clients whose public
    /// key is in this NAME.key file or in the *.key files of this directory (repeat for
    /// several). Without it, any client that completes the CURVE handshake is admitted.
    #[arg(
        long,
        value_name = "FILE|DIR",
        help_heading = "CURVE security (tcp://, unix://)"
    )]
    curve_allow: Vec<PathBuf>,
}

impl CurveArgs {
    /// These flags, with their names as the user typed them.
    fn flags(&self) -> CurveFlags<'_> {
        CurveFlags::new(
            "",
            self.curve_secret.as_deref(),
            self.curve_server.as_deref(),
            &self.curve_allow,
        )
    }

    /// Adds these flags' CURVE settings to `options` (see [`CurveFlags::apply`]).
    pub(crate) fn apply(
        &self,
        endpoint: &str,
        side: Side,
        options: Options,
    ) -> Result<Options, Error> {
        self.flags().apply(endpoint, side, options)
    }
}

/// Which side of a connection a command's endpoint is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    /// It binds (`recv`, `pub`, the bridge's destination): the CURVE server.
    Bind,
    /// It connects (`send`, `sub`, the bridge's source): the CURVE client.
    Connect,
}

/// The CURVE flags of one endpoint, and the prefix of their names (`""`, `"source-"`,
/// `"destination-"`) for error messages.
#[derive(Debug)]
pub(crate) struct CurveFlags<'a> {
    /// Prefix of the flag names.
    prefix: &'static str,
    /// `--curve-secret`.
    secret: Option<&'a Path>,
    /// `--curve-server`.
    server: Option<&'a str>,
    /// `--curve-allow` (every occurrence).
    allow: &'a [PathBuf],
}

impl<'a> CurveFlags<'a> {
    /// The flags `--{prefix}curve-secret`, `--{prefix}curve-server` and
    /// `--{prefix}curve-allow`.
    pub(crate) fn new(
        prefix: &'static str,
        secret: Option<&'a Path>,
        server: Option<&'a str>,
        allow: &'a [PathBuf],
    ) -> CurveFlags<'a> {
        CurveFlags {
            prefix,
            secret,
            server,
            allow,
        }
    }

    /// The full name of flag `name` (`curve-secret` ...), with its dashes and prefix.
    fn flag(&self, name: &str) -> String {
        format!("--{}{name}", self.prefix)
    }

    /// The names of the flags given, for messages.
    fn given(&self) -> Vec<String> {
        let mut given = Vec::new();
        if self.secret.is_some() {
            given.push(self.flag("curve-secret"));
        }
        if self.server.is_some() {
            given.push(self.flag("curve-server"));
        }
        if !self.allow.is_empty() {
            given.push(self.flag("curve-allow"));
        }
        given
    }

    /// Adds the CURVE settings to `options` for `endpoint`, used from `side`. Errors
    /// ([`Error::InvalidOptions`] on `endpoint`) say which flag and which file is wrong, and
    /// what to do.
    pub(crate) fn apply(
        &self,
        endpoint: &str,
        side: Side,
        options: Options,
    ) -> Result<Options, Error> {
        self.configure(endpoint, side, options)
            .map_err(|reason| Error::InvalidOptions {
                endpoint: endpoint.to_owned(),
                reason,
            })
    }

    /// [`CurveFlags::apply`], with the reason of a refusal as text.
    fn configure(
        &self,
        endpoint: &str,
        side: Side,
        mut options: Options,
    ) -> Result<Options, String> {
        let given = self.given();
        if given.is_empty() {
            return Ok(options);
        }
        if let Ok(Endpoint::Shm(_)) = Endpoint::parse(endpoint) {
            return Err(format!(
                "{}: CURVE is for tcp:// and unix:// sockets; {endpoint} is shared memory on \
                 this machine, protected by uid checks (only this user's processes can \
                 connect): drop the CURVE flags",
                given.join(", ")
            ));
        }
        match side {
            Side::Bind => {
                if self.server.is_some() {
                    return Err(format!(
                        "{}: {endpoint} is bound here, so this side is the CURVE server: \
                         give it its own key pair with {} NAME.key_secret; --curve-server is \
                         for the side that connects (send, sub)",
                        self.flag("curve-server"),
                        self.flag("curve-secret")
                    ));
                }
                if self.secret.is_none() {
                    return Err(format!(
                        "{} needs {} FILE: a CURVE server needs its own key pair (`shmsock \
                         keygen server` writes server.key_secret)",
                        self.flag("curve-allow"),
                        self.flag("curve-secret")
                    ));
                }
            }
            Side::Connect => {
                if !self.allow.is_empty() {
                    return Err(format!(
                        "{}: {endpoint} is connected to here, so this side is the CURVE \
                         client: the allow-list belongs to the server (recv, pub); give the \
                         server's public key with {} KEY|FILE",
                        self.flag("curve-allow"),
                        self.flag("curve-server")
                    ));
                }
                if self.server.is_none() {
                    return Err(format!(
                        "{} needs {} KEY|FILE: a CURVE client must know the public key of \
                         the server it connects to (its NAME.key file, or 40 Z85 characters)",
                        self.flag("curve-secret"),
                        self.flag("curve-server")
                    ));
                }
            }
        }
        if let Some(path) = self.secret {
            let keys = CurveKeyPair::load(path)
                .map_err(|e| format!("{} {}: {e}", self.flag("curve-secret"), path.display()))?;
            options = options.curve_secret(keys);
        }
        if let Some(server) = self.server {
            options = options.curve_server(self.server_key(server)?);
        }
        if !self.allow.is_empty() {
            let mut allowed = Vec::new();
            for path in self.allow {
                allowed.extend(self.allowed_keys(path)?);
            }
            options = options.curve_allow(allowed);
        }
        Ok(options)
    }

    /// The `--curve-server` key: a certificate file if one is there, else Z85 text.
    fn server_key(&self, value: &str) -> Result<CurvePublicKey, String> {
        let flag = self.flag("curve-server");
        let path = Path::new(value);
        if path.exists() {
            return CurvePublicKey::load(path).map_err(|e| format!("{flag} {value}: {e}"));
        }
        if value.len() == Z85_KEY_LEN {
            return value.parse().map_err(|e| format!("{flag}: {e}"));
        }
        Err(format!(
            "{flag} {value}: no such file, and not a key (40 Z85 characters); give the \
             server's NAME.key file or its public key as `shmsock keygen` printed it"
        ))
    }

    /// The keys of one `--curve-allow` value: a certificate, or a directory of `*.key`
    /// certificates (which must hold at least one: an empty allow-list admits nobody).
    fn allowed_keys(&self, path: &Path) -> Result<Vec<CurvePublicKey>, String> {
        let flag = self.flag("curve-allow");
        if path.is_dir() {
            let keys = CurvePublicKey::load_dir(path)
                .map_err(|e| format!("{flag} {}: {e}", path.display()))?;
            if keys.is_empty() {
                return Err(format!(
                    "{flag} {}: no *.key certificate in this directory, so no client would \
                     be admitted; copy the clients' NAME.key files into it",
                    path.display()
                ));
            }
            return Ok(keys.into_iter().collect());
        }
        CurvePublicKey::load(path)
            .map(|key| vec![key])
            .map_err(|e| format!("{flag} {}: {e}", path.display()))
    }
}

/// What to do after `err`, when a connecting side without CURVE flags met a CURVE server
/// (the library's error says security mismatch; the CLI knows the flags to add).
pub(crate) fn hint(err: &Error, args: &CurveArgs) -> Option<&'static str> {
    let mismatch = matches!(err, Error::Handshake { reason, .. }
        if reason.contains("the peer uses CURVE"));
    (mismatch && args.flags().given().is_empty()).then_some(
        "the server requires CURVE: add --curve-server KEY|FILE (its NAME.key), and \
         --curve-secret NAME.key_secret if it admits only listed clients",
    )
}
