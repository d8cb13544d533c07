//! [`Source`]: the choices a structured fuzz target reads from its raw input, a few
//! lines in the manner of `arbitrary::Unstructured` (see the `fuzzing` module docs
//! for why warden does not depend on `arbitrary`).

/// Choices read from the front of a fuzz input, one byte at a time. Once the bytes run
/// out every read is 0, and choice 0 is always the plain one (a valid value, no
/// mutation), so a short input is a small, ordinary case.
pub(crate) struct Source<'a> {
    data: &'a [u8],
}

impl<'a> Source<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Source { data }
    }

    pub(crate) fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        if n <= 1 {
            return 0;
        }
        let value = if n <= 256 {
            usize::from(self.byte())
        } else {
            usize::from(u16::from_le_bytes([self.byte(), self.byte()]))
        };
        value % n
    }

    pub(crate) fn flag(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    /// True for about one byte value in `n` (never for 0, so not when exhausted).
    pub(crate) fn rarely(&mut self, n: u8) -> bool {
        self.byte() % n.max(2) == n.max(2) - 1
    }

    pub(crate) fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}
