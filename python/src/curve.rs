//! CURVE keys from Python, in pyzmq's forms: a key is its 40 Z85 characters (`bytes` as
//! `zmq.curve_keypair()` returns them, or `str`) or its 32 raw bytes. The options
//! `curve_secret=`, `curve_server=` and `curve_allow=` take them (`options`), and the module
//! functions `curve_keypair()`, `load_certificate(path)` and `load_certificates(dir)` make
//! or read them as `zmq.curve_keypair` and `zmq.auth.load_certificate(s)` do, from the
//! certificate files `shmsock keygen`, czmq and pyzmq write.

use std::path::PathBuf;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};
use shmsock::{CurveKeyPair, CurvePublicKey, CurveSecretKey};

use crate::errors::raise;

/// A key argument as text (Z85) or raw bytes.
enum KeyArg {
    Z85(String),
    Raw([u8; 32]),
}

fn key_arg(what: &str, value: &Bound<'_, PyAny>) -> PyResult<KeyArg> {
    let wrong = || {
        PyTypeError::new_err(format!(
            "{what} must be a CURVE key: 40 Z85 characters (str or bytes, as \
             zmq.curve_keypair() gives them) or 32 raw bytes"
        ))
    };
    if let Ok(text) = value.cast::<PyString>() {
        return Ok(KeyArg::Z85(text.to_str()?.to_owned()));
    }
    let bytes: Vec<u8> = value.extract().map_err(|_| wrong())?;
    match bytes.len() {
        32 => Ok(KeyArg::Raw(bytes.try_into().expect("32 bytes"))),
        _ => String::from_utf8(bytes)
            .map(KeyArg::Z85)
            .map_err(|_| wrong()),
    }
}

/// A public key argument.
pub(crate) fn public_key(what: &str, value: &Bound<'_, PyAny>) -> PyResult<CurvePublicKey> {
    match key_arg(what, value)? {
        KeyArg::Raw(bytes) => Ok(CurvePublicKey::from_bytes(bytes)),
        KeyArg::Z85(text) => text.parse().map_err(raise),
    }
}

/// A key pair argument: the secret key alone, or a `(public, secret)` pair as
/// `zmq.curve_keypair()` returns it (the public key must be the secret key's).
pub(crate) fn key_pair(value: &Bound<'_, PyAny>) -> PyResult<CurveKeyPair> {
    let (public, secret) = match value.extract::<(Bound<'_, PyAny>, Bound<'_, PyAny>)>() {
        Ok((public, secret)) => (Some(public), secret),
        Err(_) => (None, value.clone()),
    };
    let secret = match key_arg("curve_secret", &secret)? {
        KeyArg::Raw(bytes) => CurveSecretKey::from_bytes(bytes),
        KeyArg::Z85(text) => text.parse().map_err(raise)?,
    };
    let pair = CurveKeyPair::from_secret(secret);
    if let Some(public) = public {
        if public_key("curve_secret's public key", &public)? != pair.public() {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "curve_secret: the public key is not the secret key's (pass the pair as \
                 zmq.curve_keypair() or load_certificate() returned it, or the secret key alone)",
            ));
        }
    }
    Ok(pair)
}

/// The 40 Z85 characters of 32 bytes. (The crate writes Z85 for public keys; the encoding
/// is the same for any 32 bytes.)
fn z85(bytes: &[u8; 32]) -> String {
    CurvePublicKey::from_bytes(*bytes).to_string()
}

/// A new random key pair as `(public, secret)`, each 40 Z85 characters as `bytes` (the form
/// of `zmq.curve_keypair()`).
#[pyfunction]
pub(crate) fn curve_keypair(py: Python<'_>) -> (Bound<'_, PyBytes>, Bound<'_, PyBytes>) {
    let pair = CurveKeyPair::generate();
    (
        PyBytes::new(py, z85(pair.public().as_bytes()).as_bytes()),
        PyBytes::new(py, z85(pair.secret().as_bytes()).as_bytes()),
    )
}

/// The keys of a certificate file as `(public, secret)` (Z85 `bytes`; secret is `None` for
/// a public `NAME.key`), as `zmq.auth.load_certificate` returns them.
#[pyfunction]
pub(crate) fn load_certificate(
    py: Python<'_>,
    path: PathBuf,
) -> PyResult<(Bound<'_, PyBytes>, Option<Bound<'_, PyBytes>>)> {
    let public = CurvePublicKey::load(&path).map_err(raise)?;
    let secret = match CurveKeyPair::load(&path) {
        Ok(pair) => Some(PyBytes::new(py, z85(pair.secret().as_bytes()).as_bytes())),
        Err(shmsock::Error::Certificate { .. }) => None, // a public certificate
        Err(e) => return Err(raise(e)),
    };
    Ok((PyBytes::new(py, public.to_string().as_bytes()), secret))
}

/// The public keys (Z85 `bytes`) of every `*.key` certificate in a directory, sorted: a
/// server's allow-list for `curve_allow=`.
#[pyfunction]
pub(crate) fn load_certificates(py: Python<'_>, dir: PathBuf) -> PyResult<Vec<Bound<'_, PyBytes>>> {
    let mut keys: Vec<String> = CurvePublicKey::load_dir(&dir)
        .map_err(raise)?
        .into_iter()
        .map(|k| k.to_string())
        .collect();
    keys.sort();
    Ok(keys
        .iter()
        .map(|k| PyBytes::new(py, k.as_bytes()))
        .collect())
}
