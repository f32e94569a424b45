//! Reading ahead in a batch of events.
//!
//! The rules read a few fields of each event, most of them behind pointers:
//! the syscall section, the process section, the path strings. An event
//! decoded on another core, or a while ago, has those in no cache of this
//! core, and each rule would stall on them in turn. While the rules test one
//! event, the CPU is asked to bring in those of the events a few places
//! ahead: first the sections, then, once those have arrived, what they point
//! to.

use crate::events::Event;

/// Events ahead whose sections are requested.
pub(super) const SECTIONS_AHEAD: usize = 4;
/// Events ahead whose strings are requested (their sections were requested
/// `SECTIONS_AHEAD - STRINGS_AHEAD` events ago).
pub(super) const STRINGS_AHEAD: usize = 2;

const CACHE_LINE: usize = 64;

/// Requests the syscall and process sections of `event`.
pub(super) fn sections(event: &Event) {
    if let Some(syscall) = event.syscall.as_deref() {
        lines(syscall);
    }
    if let Some(process) = event.process.as_deref() {
        lines(process);
    }
}

/// Requests the strings the rules read most: the paths of a syscall and its
/// descriptors, the process's executable and its parent's image.
pub(super) fn strings(event: &Event) {
    if let Some(syscall) = event.syscall.as_deref() {
        for path in &syscall.paths {
            lines(path.path().as_bytes());
        }
        for fd in &syscall.fds {
            if let Some(path) = fd.path.as_deref() {
                lines(path.as_bytes());
            }
        }
    }
    if let Some(process) = event.process.as_deref() {
        if let Some(exe) = process.exe.as_deref() {
            lines(exe.as_bytes());
        }
        if let Some(parent) = process.ancestors.first() {
            lines(&*parent.image);
        }
    }
}

/// Requests every cache line of `value`.
fn lines<T: ?Sized>(value: &T) {
    let start = std::ptr::from_ref(value).cast::<u8>();
    for offset in (0..std::mem::size_of_val(value)).step_by(CACHE_LINE) {
        line(start.wrapping_add(offset));
    }
}

#[cfg(target_arch = "x86_64")]
fn line(at: *const u8) {
    use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
    // SAFETY: a prefetch is a hint to the cache; it reads nothing into the
    // program and does not fault, whatever the address.
    unsafe { _mm_prefetch::<_MM_HINT_T0>(at.cast()) }
}

#[cfg(not(target_arch = "x86_64"))]
fn line(_at: *const u8) {}
