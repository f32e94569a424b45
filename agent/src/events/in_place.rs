//! Appending to vectors without a copy through the stack.
//!
//! `Vec::push` and `SmallVec::push`, left out of line in a large caller,
//! take the item from the caller's stack, where it was assembled a word at a
//! time, and copy it in 16- to 64-byte moves. A load wider than the stores
//! it reads cannot take their values from the store queue and waits for
//! them to reach the cache: under a flood of events that wait was a tenth of
//! the decoder's time. Written where it lies, each word is stored once.

/// Appends the item `make` returns to `vec`, made once there is room for it,
/// so that it is made where it lies.
#[inline(always)]
pub fn push_made<T>(vec: &mut Vec<T>, make: impl FnOnce() -> T) {
    vec.reserve(1);
    let len = vec.len();
    // SAFETY: `reserve` left room for one more item after the `len`
    // initialised ones; it is written before the length counts it.
    unsafe {
        vec.as_mut_ptr().add(len).write(make());
        vec.set_len(len + 1);
    }
}

/// Appends `item` to `vec`.
#[inline(always)]
pub fn push_small<A: smallvec::Array>(vec: &mut smallvec::SmallVec<A>, item: A::Item) {
    vec.reserve(1);
    let len = vec.len();
    // SAFETY: as in `push_made`.
    unsafe {
        vec.as_mut_ptr().add(len).write(item);
        vec.set_len(len + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_pushed_in_place_are_those_pushed_and_survive_growth() {
        let mut vec = Vec::new();
        let mut small: smallvec::SmallVec<[String; 1]> = smallvec::SmallVec::new();
        for i in 0..100 {
            push_made(&mut vec, || i.to_string());
            push_small(&mut small, i.to_string());
        }
        let expected: Vec<String> = (0..100).map(|i| i.to_string()).collect();
        assert_eq!(vec, expected);
        assert_eq!(small.as_slice(), expected.as_slice());
        assert!(small.spilled());
    }
}
