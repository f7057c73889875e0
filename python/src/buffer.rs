//! The buffer protocol, both ways: [`Input`] reads or fills any bytes-like object the
//! caller passes (`bytes`, `bytearray`, `memoryview`, `array.array`, a contiguous numpy
//! array...) in place, and [`export`] lets Python view a loan or a sample without a copy.
//!
//! The stable ABI has the buffer protocol from Python 3.11 on, which is why the module is
//! built for `abi3-py311`.

use std::ffi::c_int;

use pyo3::exceptions::{PyBufferError, PyTypeError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// A bytes-like argument, held (exported) until dropped.
pub(crate) enum Input<'py> {
    /// A `bytes` object: immutable, read directly.
    Bytes(Bound<'py, PyBytes>),
    /// Anything else, through `PyObject_GetBuffer` (boxed: the exporter may point into the
    /// `Py_buffer` itself, so it must not move).
    View(Box<ffi::Py_buffer>),
}

impl<'py> Input<'py> {
    /// The bytes of `obj`, read-only: a C-contiguous buffer is required (its items are
    /// sent as their bytes, whatever their type).
    pub(crate) fn read(obj: &Bound<'py, PyAny>) -> PyResult<Self> {
        if let Ok(bytes) = obj.cast::<PyBytes>() {
            return Ok(Input::Bytes(bytes.clone()));
        }
        Self::view(obj, ffi::PyBUF_SIMPLE)
    }

    /// The bytes of `obj`, to write into (`recv_into`): a writable C-contiguous buffer
    /// (`TypeError` otherwise, as `socket.recv_into` says).
    pub(crate) fn write(obj: &Bound<'py, PyAny>) -> PyResult<Self> {
        Self::view(obj, ffi::PyBUF_WRITABLE).map_err(|e| {
            let ty = obj
                .get_type()
                .name()
                .map_or_else(|_| "?".to_owned(), |n| n.to_string());
            let err = PyTypeError::new_err(format!(
                "the buffer must be a writable, contiguous bytes-like object (bytearray, \
                 memoryview, numpy array...), not {ty}"
            ));
            err.set_cause(obj.py(), Some(e));
            err
        })
    }

    fn view(obj: &Bound<'py, PyAny>, flags: c_int) -> PyResult<Self> {
        let mut view = Box::new(ffi::Py_buffer::new());
        // SAFETY: `obj` is a live object (we hold a reference) and `view` points to a
        // `Py_buffer` that stays at this address until `PyBuffer_Release` in `Drop`.
        let got = unsafe { ffi::PyObject_GetBuffer(obj.as_ptr(), &mut *view, flags) };
        if got == -1 {
            return Err(PyErr::fetch(obj.py()));
        }
        Ok(Input::View(view))
    }

    /// The bytes (read-only).
    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Input::Bytes(b) => b.as_bytes(),
            Input::View(v) if v.len == 0 || v.buf.is_null() => &[],
            // SAFETY: the exporter guarantees `len` contiguous bytes at `buf` (PyBUF_SIMPLE
            // or PyBUF_WRITABLE ask for contiguity) while the view is held, i.e. until `self`
            // is dropped, which the returned borrow outlives not.
            Input::View(v) => unsafe { std::slice::from_raw_parts(v.buf.cast(), v.len as usize) },
        }
    }

    /// The bytes, writable (only from [`Input::write`]).
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        match self {
            Input::Bytes(_) => &mut [],
            Input::View(v) if v.len == 0 || v.buf.is_null() => &mut [],
            // SAFETY: as in `as_slice`, and PyBUF_WRITABLE made the exporter hand out
            // writable memory. Python code of another thread could touch it at the same
            // time, as with `socket.recv_into`; the docs say not to.
            Input::View(v) => unsafe {
                std::slice::from_raw_parts_mut(v.buf.cast(), v.len as usize)
            },
        }
    }
}

impl Drop for Input<'_> {
    fn drop(&mut self) {
        if let Input::View(view) = self {
            let view: *mut ffi::Py_buffer = &mut **view;
            Python::attach(|_| {
                // SAFETY: the view was filled by a successful `PyObject_GetBuffer` and is
                // released exactly once, here, holding the GIL.
                unsafe { ffi::PyBuffer_Release(view) }
            });
        }
    }
}

/// Fills `view` with the `len` bytes at `ptr`, owned by `owner` (which the view keeps
/// alive): read-only unless `writable`. Asking for a writable view of a read-only export
/// raises `BufferError`.
///
/// # Safety
/// `view` comes from `__getbuffer__`; the `len` bytes at `ptr` must stay valid (and, if
/// `writable`, writable by nobody else) until `owner`'s `__releasebuffer__` is called for
/// this view.
pub(crate) unsafe fn export(
    view: *mut ffi::Py_buffer,
    flags: c_int,
    owner: &Bound<'_, PyAny>,
    ptr: *mut u8,
    len: usize,
    writable: bool,
) -> PyResult<()> {
    if view.is_null() {
        return Err(PyBufferError::new_err(
            "__getbuffer__ called without a view",
        ));
    }
    let len = ffi::Py_ssize_t::try_from(len)
        .map_err(|_| PyBufferError::new_err("a buffer longer than isize::MAX bytes"))?;
    // SAFETY: our caller guarantees `view` and the memory; PyBuffer_FillInfo takes a new
    // reference to `owner` (released by PyBuffer_Release) and sets format/shape/strides
    // as `flags` ask, for `len` unsigned bytes.
    let filled = unsafe {
        ffi::PyBuffer_FillInfo(
            view,
            owner.as_ptr(),
            ptr.cast(),
            len,
            c_int::from(!writable),
            flags,
        )
    };
    if filled == -1 {
        return Err(PyErr::fetch(owner.py()));
    }
    Ok(())
}
