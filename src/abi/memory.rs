//! Checked reads of guest linear memory.
//!
//! A guest hands the host packed `(ptr, len)` pairs. Both halves are wasm32 addresses
//! and sizes: they are read as **u32** (a pointer above 2 GiB is negative as i32), the
//! end is computed with checked arithmetic, and the range is checked against the size
//! the memory has at the moment of the read, never a cached size.
//!
//! # Security
//!
//! This is the only place warden turns guest-supplied numbers into host slice indices.
//! Every failure is a typed [`AbiViolation`], never a panic.

/// A `(ptr, len)` pair as a guest returned it, unpacked but not yet trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestRegion {
    /// Start address in linear memory.
    pub ptr: u32,
    /// Length in bytes.
    pub len: u32,
}

impl GuestRegion {
    /// Unpacks `packed = (ptr << 32) | len`, both halves unsigned.
    pub fn unpack(packed: i64) -> Self {
        let bits = packed as u64;
        GuestRegion {
            ptr: (bits >> 32) as u32,
            len: (bits & 0xFFFF_FFFF) as u32,
        }
    }

    /// Packs the pair the way guests do.
    pub fn pack(self) -> i64 {
        ((u64::from(self.ptr) << 32) | u64::from(self.len)) as i64
    }
}

/// How a guest broke the memory part of the ABI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AbiViolation {
    /// The guest returned `(0, 0)`: by the ABI, it failed to serialize its answer.
    #[error("returned (0, 0): the plugin failed to serialize its {what}")]
    NullResult {
        /// What was being returned.
        what: &'static str,
    },
    /// The pointer is 0 but the length is not.
    #[error("returned a null pointer with length {len} for its {what}")]
    NullPointer {
        /// What was being returned.
        what: &'static str,
        /// The claimed length.
        len: u32,
    },
    /// `ptr + len` does not fit in the 32-bit address space.
    #[error("{what} at {ptr:#x} with length {len} overflows the 32-bit address space")]
    Overflow {
        /// What was being read.
        what: &'static str,
        /// Claimed pointer.
        ptr: u32,
        /// Claimed length.
        len: u32,
    },
    /// The range lies (partly) outside linear memory.
    #[error(
        "{what} at {ptr:#x} with length {len} lies outside linear memory of {memory_size} bytes"
    )]
    OutOfBounds {
        /// What was being read.
        what: &'static str,
        /// Claimed pointer.
        ptr: u32,
        /// Claimed length.
        len: u32,
        /// Size of the memory at the time of the read.
        memory_size: usize,
    },
    /// `plugin_alloc` returned 0 for a non-empty request.
    #[error("plugin_alloc({size}) returned 0 (allocation failed)")]
    AllocFailed {
        /// Requested size.
        size: u32,
    },
    /// `plugin_alloc` returned a block that does not fit in memory.
    #[error("plugin_alloc({size}) returned {ptr:#x}, outside linear memory of {memory_size} bytes")]
    AllocOutOfBounds {
        /// Requested size.
        size: u32,
        /// Returned pointer.
        ptr: u32,
        /// Size of the memory.
        memory_size: usize,
    },
}

/// Returns exactly `memory[region.ptr .. region.ptr + region.len]`, or why not.
///
/// `what` names the message in errors (`manifest`, `execute result`). The caller checks
/// the length against its size limit *before* calling, so an oversized claim is a limit
/// error rather than an out-of-bounds one.
///
/// # Errors
///
/// [`AbiViolation::NullResult`] for `(0, 0)`, [`AbiViolation::NullPointer`] for a zero
/// pointer, [`AbiViolation::Overflow`] when the end does not fit in 32 bits, and
/// [`AbiViolation::OutOfBounds`] when the range leaves `memory`.
pub fn read_region<'m>(
    memory: &'m [u8],
    region: GuestRegion,
    what: &'static str,
) -> Result<&'m [u8], AbiViolation> {
    let GuestRegion { ptr, len } = region;
    if ptr == 0 {
        return Err(if len == 0 {
            AbiViolation::NullResult { what }
        } else {
            AbiViolation::NullPointer { what, len }
        });
    }
    let end = ptr
        .checked_add(len)
        .ok_or(AbiViolation::Overflow { what, ptr, len })?;
    let out_of_bounds = AbiViolation::OutOfBounds {
        what,
        ptr,
        len,
        memory_size: memory.len(),
    };
    let (start, end) = (
        usize::try_from(ptr).map_err(|_| out_of_bounds.clone())?,
        usize::try_from(end).map_err(|_| out_of_bounds.clone())?,
    );
    memory.get(start..end).ok_or(out_of_bounds)
}

/// Checks that a block `plugin_alloc` returned for `size` bytes is usable.
///
/// # Errors
///
/// [`AbiViolation::AllocFailed`] for a null pointer, [`AbiViolation::AllocOutOfBounds`]
/// when `ptr + size` leaves the memory (or the address space).
pub fn check_alloc(memory_size: usize, ptr: u32, size: u32) -> Result<(), AbiViolation> {
    if ptr == 0 {
        return Err(AbiViolation::AllocFailed { size });
    }
    let fits = ptr
        .checked_add(size)
        .and_then(|end| usize::try_from(end).ok())
        .is_some_and(|end| end <= memory_size);
    if fits {
        Ok(())
    } else {
        Err(AbiViolation::AllocOutOfBounds {
            size,
            ptr,
            memory_size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpack_reads_both_halves_unsigned() {
        let r = GuestRegion::unpack(((0x8000_0010u64 << 32) | 0xFFFF_FFFF) as i64);
        assert_eq!(
            r,
            GuestRegion {
                ptr: 0x8000_0010,
                len: 0xFFFF_FFFF
            }
        );
        assert_eq!(GuestRegion::unpack(r.pack()), r);
    }

    #[test]
    fn reads_exactly_the_region() {
        let mem: Vec<u8> = (0..=255).collect();
        let got = read_region(&mem, GuestRegion { ptr: 10, len: 5 }, "m").unwrap();
        assert_eq!(got, &[10, 11, 12, 13, 14]);
        let last = read_region(&mem, GuestRegion { ptr: 255, len: 1 }, "m").unwrap();
        assert_eq!(last, &[255]);
    }

    #[test]
    fn refuses_each_bad_region() {
        let mem = vec![0u8; 64];
        assert_eq!(
            read_region(&mem, GuestRegion { ptr: 0, len: 0 }, "m"),
            Err(AbiViolation::NullResult { what: "m" })
        );
        assert_eq!(
            read_region(&mem, GuestRegion { ptr: 0, len: 3 }, "m"),
            Err(AbiViolation::NullPointer { what: "m", len: 3 })
        );
        assert_eq!(
            read_region(
                &mem,
                GuestRegion {
                    ptr: 0xFFFF_FF00,
                    len: 0x200
                },
                "m"
            ),
            Err(AbiViolation::Overflow {
                what: "m",
                ptr: 0xFFFF_FF00,
                len: 0x200
            })
        );
        assert_eq!(
            read_region(&mem, GuestRegion { ptr: 60, len: 5 }, "m"),
            Err(AbiViolation::OutOfBounds {
                what: "m",
                ptr: 60,
                len: 5,
                memory_size: 64
            })
        );
    }

    #[test]
    fn alloc_results_are_checked() {
        assert_eq!(
            check_alloc(64, 0, 4),
            Err(AbiViolation::AllocFailed { size: 4 })
        );
        assert!(check_alloc(64, 60, 4).is_ok());
        assert!(matches!(
            check_alloc(64, 61, 4),
            Err(AbiViolation::AllocOutOfBounds { .. })
        ));
        assert!(matches!(
            check_alloc(64, u32::MAX, 4),
            Err(AbiViolation::AllocOutOfBounds { .. })
        ));
    }
}
