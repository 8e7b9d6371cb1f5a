//! The checks every entry point makes before it touches the caller's memory: null pointers,
//! alignment, lengths whose byte size overflows, outputs that overlap inputs, and handles that
//! were never initialised. Everything `unsafe` in the crate that turns a raw pointer into a
//! reference goes through here.

use core::mem::{align_of, size_of};

use crate::status::{code, KeelStatus};

/// Runs an entry point's body and turns its result into a status code. On hosts with `std` a
/// panic is caught here and reported as [`KeelStatus::Panic`] instead of unwinding into C
/// (undefined behaviour); on bare metal the crate's panic handler traps instead (see the
/// crate documentation).
pub(crate) fn guard(f: impl FnOnce() -> Result<(), KeelStatus>) -> KeelStatus {
    #[cfg(not(target_os = "none"))]
    return std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .map_or(KeelStatus::Panic, code);
    #[cfg(target_os = "none")]
    code(f())
}

/// The byte range `[start, end)` of `len` values of `T` at `ptr`, after checking the pointer is
/// non-null and aligned and the range neither overflows `isize` nor wraps the address space
/// (the preconditions of `core::slice::from_raw_parts` that can be checked at all).
fn range<T>(ptr: *const T, len: usize) -> Result<(usize, usize), KeelStatus> {
    if ptr.is_null() {
        return Err(KeelStatus::NullPointer);
    }
    let addr = ptr as usize;
    if !addr.is_multiple_of(align_of::<T>()) {
        return Err(KeelStatus::Misaligned);
    }
    let bytes = len
        .checked_mul(size_of::<T>())
        .filter(|&b| b <= isize::MAX as usize)
        .ok_or(KeelStatus::InvalidArgument)?;
    let end = addr.checked_add(bytes).ok_or(KeelStatus::InvalidArgument)?;
    Ok((addr, end))
}

/// A caller's input array.
///
/// # Safety
/// If `ptr` is non-null and aligned, it must point to `len` initialised values of `T` that stay
/// valid and unmodified for `'a` (the C API's documented contract for that argument).
pub(crate) unsafe fn input<'a, T>(ptr: *const T, len: usize) -> Result<&'a [T], KeelStatus> {
    range(ptr, len)?;
    // SAFETY: `range` checked non-null, alignment and the `isize` bound; validity for `len`
    // values over `'a` is the caller's contract (this function's `# Safety`).
    Ok(unsafe { core::slice::from_raw_parts(ptr, len) })
}

/// A caller's output array, after checking it overlaps none of `inputs` (byte ranges from
/// [`span`]).
///
/// # Safety
/// If `ptr` is non-null and aligned, it must point to `len` writable values of `T` (any bit
/// pattern: only `f32`/integers are used) that nothing else accesses for `'a`.
pub(crate) unsafe fn output<'a, T>(
    ptr: *mut T,
    len: usize,
    inputs: &[(usize, usize)],
) -> Result<&'a mut [T], KeelStatus> {
    let (start, end) = range(ptr.cast_const(), len)?;
    if inputs.iter().any(|&(s, e)| s < end && start < e) {
        return Err(KeelStatus::BufferOverlap);
    }
    // SAFETY: checked as in `input`, and disjoint from every other buffer of the call; exclusive
    // access for `'a` is the caller's contract.
    Ok(unsafe { core::slice::from_raw_parts_mut(ptr, len) })
}

/// The byte range of a slice, for the overlap checks of [`output`].
pub(crate) fn span<T>(s: &[T]) -> (usize, usize) {
    let start = s.as_ptr() as usize;
    (start, start + core::mem::size_of_val(s))
}

/// A caller's single output value.
///
/// # Safety
/// As [`output`] with `len = 1`.
pub(crate) unsafe fn out<'a, T>(ptr: *mut T) -> Result<&'a mut T, KeelStatus> {
    // SAFETY: forwarded contract.
    let s = unsafe { output(ptr, 1, &[]) }?;
    Ok(&mut s[0])
}

/// An opaque handle type of the C API: caller-owned storage of a fixed size, 8-byte aligned,
/// holding one `Slot<Self::Body>`.
pub(crate) trait Handle: Sized {
    /// What the handle holds once initialised.
    type Body;
    /// Marks an initialised handle of this type (a never-initialised or failed one holds
    /// anything else).
    const MAGIC: u64;
}

/// The layout inside a handle's storage: the magic word first, so it can be read before the
/// body is trusted.
#[repr(C)]
pub(crate) struct Slot<B> {
    magic: u64,
    body: B,
}

/// Checks a handle pointer (non-null, 8-byte aligned) for a call that initialises it.
fn slot_ptr<H: Handle>(h: *const H) -> Result<*mut Slot<H::Body>, KeelStatus> {
    const { assert!(size_of::<Slot<H::Body>>() <= size_of::<H>()) };
    const { assert!(align_of::<Slot<H::Body>>() <= align_of::<H>()) };
    if h.is_null() {
        return Err(KeelStatus::NullPointer);
    }
    if !(h as usize).is_multiple_of(align_of::<H>()) {
        return Err(KeelStatus::Misaligned);
    }
    Ok(h.cast_mut().cast())
}

/// Marks `h` uninitialised (first thing an initialising call does, so a failed initialisation
/// leaves an invalid handle rather than a stale one).
///
/// # Safety
/// `h`, if non-null and aligned, points to writable storage of `size_of::<H>()` bytes.
pub(crate) unsafe fn invalidate<H: Handle>(h: *mut H) -> Result<(), KeelStatus> {
    let slot = slot_ptr(h.cast_const())?;
    // SAFETY: `slot` is non-null and aligned for `Slot` (checked) and the storage is writable
    // (contract); writing a plain `u64` needs no prior initialisation.
    unsafe { core::ptr::addr_of_mut!((*slot).magic).write(0) };
    Ok(())
}

/// Writes `body` into the handle and marks it initialised.
///
/// # Safety
/// As [`invalidate`].
pub(crate) unsafe fn install<H: Handle>(h: *mut H, body: H::Body) -> Result<(), KeelStatus> {
    let slot = slot_ptr(h.cast_const())?;
    // SAFETY: as in `invalidate`; the storage holds a `Slot<H::Body>` (size and alignment
    // asserted at compile time). `write` does not drop the old contents (there is nothing to
    // drop: bodies hold borrowed data and plain numbers).
    unsafe {
        slot.write(Slot {
            magic: H::MAGIC,
            body,
        })
    };
    Ok(())
}

/// The body of an initialised handle.
///
/// # Safety
/// `h`, if non-null and aligned, points to readable storage of `size_of::<H>()` bytes that no
/// call mutates for `'a`; if it carries `H::MAGIC` it was initialised by [`install`] (the C
/// contract: handles are only written by this API).
pub(crate) unsafe fn body<'a, H: Handle>(h: *const H) -> Result<&'a H::Body, KeelStatus> {
    let slot = slot_ptr(h)?;
    // SAFETY: non-null and aligned (checked); a `u64` is valid for any bytes the caller's
    // storage holds.
    let magic = unsafe { core::ptr::addr_of!((*slot).magic).read() };
    if magic != H::MAGIC {
        return Err(KeelStatus::InvalidHandle);
    }
    // SAFETY: the magic says `install` wrote a whole `Slot<H::Body>` here.
    Ok(unsafe { &(*slot).body })
}

/// The body of an initialised handle, mutably.
///
/// # Safety
/// As [`body`], with exclusive access for `'a`.
pub(crate) unsafe fn body_mut<'a, H: Handle>(h: *mut H) -> Result<&'a mut H::Body, KeelStatus> {
    let slot = slot_ptr(h.cast_const())?;
    // SAFETY: as in `body`.
    let magic = unsafe { core::ptr::addr_of!((*slot).magic).read() };
    if magic != H::MAGIC {
        return Err(KeelStatus::InvalidHandle);
    }
    // SAFETY: as in `body`; exclusivity is the caller's contract.
    Ok(unsafe { &mut (*slot).body })
}

/// A float that must not be NaN (infinities are left to the core's own range checks).
pub(crate) fn not_nan(v: f32) -> Result<f32, KeelStatus> {
    if v.is_nan() {
        Err(KeelStatus::InvalidArgument)
    } else {
        Ok(v)
    }
}

/// Floats none of which is NaN.
pub(crate) fn no_nan(v: &[f32]) -> Result<(), KeelStatus> {
    if v.iter().any(|x| x.is_nan()) {
        Err(KeelStatus::InvalidArgument)
    } else {
        Ok(())
    }
}
