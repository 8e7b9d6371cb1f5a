//! `keel_tensor_read`: a named tensor of a safetensors file in flash as floats — test vectors,
//! calibration tables, anything the host exported besides a model — through the core's
//! validating reader (`keel_core::io::SafeTensors`).

use keel_core::io::SafeTensors;

use crate::boundary::{guard, input, out, output, span};
use crate::model::MAX_TENSORS;
use crate::status::KeelStatus;

/// Reads the tensor named `name` (`name_len` bytes of UTF-8; no terminating NUL needed) of the
/// safetensors file `bytes` into `out` as floats (any float dtype is converted; row-major), and
/// writes its element count to `n`. To learn the count first, pass `out = NULL` with
/// `out_len = 0`: that returns `KEEL_STATUS_OK` with only `n` written.
///
/// # Errors
/// `NULL_POINTER` for a null `bytes`, `name` or `n` (or a null `out` with `out_len > 0`);
/// the file's validation errors; `INVALID_ARGUMENT` if `name` is not UTF-8;
/// `TENSOR_NOT_FOUND`; `UNSUPPORTED_DTYPE` for an integer tensor; `BUFFER_TOO_SMALL` if
/// `out_len` is below the count (`n` is still written, so the caller learns the size);
/// `BUFFER_OVERLAP` if `out` overlaps the file or the name.
///
/// # Safety
/// `bytes` points to `len` readable bytes, `name` to `name_len`, `out` (if non-null) to
/// `out_len` writable floats, `n` to a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn keel_tensor_read(
    bytes: *const u8,
    len: usize,
    name: *const core::ffi::c_char,
    name_len: usize,
    out_values: *mut f32,
    out_len: usize,
    n: *mut usize,
) -> KeelStatus {
    guard(|| {
        // SAFETY: the caller's contract (this function's `# Safety`).
        let data = unsafe { input(bytes, len) }?;
        // SAFETY: as above.
        let name = unsafe { input(name.cast::<u8>(), name_len) }?;
        // SAFETY: as above.
        let count = unsafe { out(n) }?;
        let name = core::str::from_utf8(name).map_err(|_| KeelStatus::InvalidArgument)?;
        let st = SafeTensors::<MAX_TENSORS>::parse(data)?;
        let t = st.tensor(name)?;
        *count = t.len();
        if out_values.is_null() && out_len == 0 {
            return Ok(());
        }
        // SAFETY: as above; disjoint from the file and the name (checked).
        let values = unsafe { output(out_values, out_len, &[span(data), span(name.as_bytes())]) }?;
        if values.len() < t.len() {
            return Err(KeelStatus::BufferTooSmall);
        }
        for (i, v) in values[..t.len()].iter_mut().enumerate() {
            *v = t.get_f32(i)?;
        }
        Ok(())
    })
}
