//! `memcmp` and `bcmp` for the component, eight bytes at a time.
//!
//! wasi-libc's `memcmp` (musl's) compares one byte per loop iteration, and every ordering or
//! equality of strings and byte slices in the evaluator ends in it: Regorus's objects and
//! sets are ordered maps keyed by values, so each lookup compares keys. Defined in the
//! component, these are linked instead of libc's archive members; natively the platform's
//! libc is used and only the comparisons below are compiled (for their tests).

/// Orders `a` and `b` (of equal length) as unsigned bytes: negative, zero or positive as
/// the first differing byte of `a` is below, equal to or above that of `b`.
fn compare(a: &[u8], b: &[u8]) -> i32 {
    let mut wa = a.chunks_exact(8);
    let mut wb = b.chunks_exact(8);
    for (x, y) in (&mut wa).zip(&mut wb) {
        let (x, y) = (word(x), word(y));
        if x != y {
            // Little-endian words: the lowest differing bit is in the first differing byte.
            let at = ((x ^ y).trailing_zeros() / 8) * 8;
            return i32::from((x >> at) as u8) - i32::from((y >> at) as u8);
        }
    }
    for (x, y) in wa.remainder().iter().zip(wb.remainder()) {
        if x != y {
            return i32::from(*x) - i32::from(*y);
        }
    }
    0
}

/// Whether `a` and `b` (of equal length) differ anywhere.
fn differ(a: &[u8], b: &[u8]) -> bool {
    let mut wa = a.chunks_exact(8);
    let mut wb = b.chunks_exact(8);
    for (x, y) in (&mut wa).zip(&mut wb) {
        if word(x) != word(y) {
            return true;
        }
    }
    wa.remainder()
        .iter()
        .zip(wb.remainder())
        .any(|(x, y)| x != y)
}

/// The eight bytes of `chunk` as one little-endian word (one unaligned load).
fn word(chunk: &[u8]) -> u64 {
    let mut w = [0; 8];
    w.copy_from_slice(chunk);
    u64::from_le_bytes(w)
}

/// C's `memcmp` on [`compare`].
///
/// # Safety
/// `a` and `b` must be valid for reads of `n` bytes.
#[cfg(target_arch = "wasm32")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: the caller guarantees `n` readable bytes at both.
    unsafe {
        compare(
            std::slice::from_raw_parts(a, n),
            std::slice::from_raw_parts(b, n),
        )
    }
}

/// C's `bcmp` (what LLVM calls for `memcmp(..) == 0`) on [`differ`].
///
/// # Safety
/// `a` and `b` must be valid for reads of `n` bytes.
#[cfg(target_arch = "wasm32")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: the caller guarantees `n` readable bytes at both.
    let differ = unsafe {
        differ(
            std::slice::from_raw_parts(a, n),
            std::slice::from_raw_parts(b, n),
        )
    };
    i32::from(differ)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every pair of short byte strings over a small alphabet, at every length up to 20, with
    /// the difference at every position: the sign is the slice ordering's.
    #[test]
    fn orders_as_unsigned_bytes_at_every_position() {
        for n in 0..20 {
            for at in 0..n {
                for (x, y) in [
                    (0u8, 1u8),
                    (1, 0),
                    (0x7f, 0x80),
                    (0x80, 0x7f),
                    (0, 255),
                    (9, 9),
                ] {
                    let mut a: Vec<u8> = (0..n as u8).map(|i| i.wrapping_mul(37)).collect();
                    let mut b = a.clone();
                    a[at] = x;
                    b[at] = y;
                    // A later difference must not decide when an earlier one exists.
                    if at + 1 < n {
                        a[n - 1] = 0;
                        b[n - 1] = 255;
                    }
                    let want = a.cmp(&b);
                    let got = compare(&a, &b);
                    assert_eq!(got.cmp(&0), want, "{a:?} vs {b:?}");
                    assert_eq!(differ(&a, &b), a != b, "{a:?} vs {b:?}");
                }
            }
            let same: Vec<u8> = (0..n as u8).collect();
            assert_eq!(compare(&same, &same), 0);
            assert!(!differ(&same, &same));
        }
    }

    #[test]
    fn returns_the_difference_of_the_first_differing_bytes() {
        assert_eq!(
            compare(b"abcdefghXb", b"abcdefghYa"),
            i32::from(b'X') - i32::from(b'Y')
        );
        assert_eq!(
            compare(b"abcdefgz", b"abcdefga"),
            i32::from(b'z') - i32::from(b'a')
        );
        assert_eq!(compare(b"\xff", b"\x00"), 255);
    }
}
