//! Asking the CPU for memory before it is written.

const CACHE_LINE: usize = 64;

/// Requests every cache line of `value`, to be written.
pub fn for_write<T: ?Sized>(value: &T) {
    let start = std::ptr::from_ref(value).cast::<u8>();
    for offset in (0..std::mem::size_of_val(value)).step_by(CACHE_LINE) {
        line(start.wrapping_add(offset));
    }
}

#[cfg(target_arch = "x86_64")]
fn line(at: *const u8) {
    // SAFETY: a prefetch is a hint to the cache; it reads nothing into the
    // program and does not fault, whatever the address.
    unsafe {
        std::arch::asm!("prefetchw [{0}]", in(reg) at, options(nostack, preserves_flags, readonly));
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn line(_at: *const u8) {}
