//! A reader of fuzzer bytes as a sequence of choices, for the stateful targets.
//!
//! It reads integers exactly like `arbitrary::Unstructured::int_in_range` 1.x (big-endian,
//! only as many bytes as the range needs, modulo the range size, the range's start once the
//! data runs out), so inputs written for the earlier `Unstructured`-based targets keep their
//! meaning, without making the library depend on `arbitrary`. It never fails: a finished
//! input reads as zeros and empty byte strings.

/// Fuzzer bytes, read front to back.
#[derive(Debug)]
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Input<'a> {
        Input { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// An integer in `lo..=hi` (`lo <= hi`), taking at most `width` bytes (the byte size of
    /// the integer type `Unstructured` would have been asked for).
    fn int_in_range(&mut self, lo: u64, hi: u64, width: usize) -> u64 {
        assert!(lo <= hi, "empty range {lo}..={hi}");
        if lo == hi {
            return lo;
        }
        let delta = hi - lo;
        let mut value: u64 = 0;
        let mut used = 0;
        while used < width && used < 8 && (delta >> (used * 8)) > 0 {
            let Some((&byte, rest)) = self.data.split_first() else {
                break;
            };
            self.data = rest;
            used += 1;
            value = if width == 1 {
                u64::from(byte)
            } else {
                (value << 8) | u64::from(byte)
            };
        }
        let offset = if delta == u64::MAX {
            value
        } else {
            value % (delta + 1)
        };
        lo + offset
    }

    /// A `u8` in `lo..=hi`.
    pub fn u8_in(&mut self, lo: u8, hi: u8) -> u8 {
        // The result lies in lo..=hi, so it fits.
        self.int_in_range(lo.into(), hi.into(), 1) as u8
    }

    /// A `u64` in `lo..=hi`.
    pub fn u64_in(&mut self, lo: u64, hi: u64) -> u64 {
        self.int_in_range(lo, hi, 8)
    }

    /// A `usize` in `lo..=hi`.
    pub fn usize_in(&mut self, lo: usize, hi: usize) -> usize {
        let width = std::mem::size_of::<usize>();
        usize::try_from(self.int_in_range(lo as u64, hi as u64, width)).unwrap_or(lo)
    }

    /// One byte (0 once the input is used up), as `u8::arbitrary`.
    pub fn byte(&mut self) -> u8 {
        self.u8_in(0, u8::MAX)
    }

    /// As `bool::arbitrary`: the low bit of a byte.
    pub fn bool(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    /// True with probability `numerator / denominator`, as `Unstructured::ratio`.
    pub fn ratio(&mut self, numerator: u8, denominator: u8) -> bool {
        self.u8_in(1, denominator) <= numerator
    }

    /// The next `len` bytes, or all that are left if fewer.
    pub fn bytes(&mut self, len: usize) -> &'a [u8] {
        let (taken, rest) = self.data.split_at(len.min(self.data.len()));
        self.data = rest;
        taken
    }

    /// Up to `max` bytes, the count read first.
    pub fn bytes_up_to(&mut self, max: usize) -> &'a [u8] {
        let len = self.usize_in(0, max).min(self.len());
        self.bytes(len)
    }

    /// Up to `max` bytes as lossy UTF-8.
    pub fn text_up_to(&mut self, max: usize) -> String {
        String::from_utf8_lossy(self.bytes_up_to(max)).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_like_unstructured() {
        let mut u = Input::new(&[7, 0x01, 0x02, 200]);
        assert_eq!(u.u8_in(0, 9), 7);
        // 0..=1023 needs two bytes, big-endian: 0x0102 = 258.
        assert_eq!(u.u64_in(0, 1023), 258);
        // 1..=4: 200 % 4 = 0, so 1.
        assert!(u.ratio(1, 4));
        assert!(u.is_empty());
        assert_eq!(u.u8_in(3, 9), 3);
        assert_eq!(u.bytes(5), &[] as &[u8]);
    }
}
