//! The events ring buffer, read in place where the kernel wrote the records.
//!
//! The kernel reads the reader's position on every reserve and commit (to
//! know the free space), and the reader writes it after each record it takes.
//! Published per record, as aya's `RingBuf` does, that cache line moves
//! between the reader's CPU and every writing CPU once per record, and the
//! writers wait for it. This reader publishes its position once per
//! [`PUBLISH_BYTES`] read and whenever it finds the ring empty: the kernel
//! then sees the space freed a little later, which costs nothing when the
//! ring is much larger than that.
//!
//! The layout is the kernel's (`kernel/bpf/ringbuf.c`): the reader's position
//! in the first page (the only one it may write), the writers' position in
//! the second, then the data pages, mapped twice in a row so that a record
//! that wraps around the end is still one slice.

use std::{
    io,
    os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd},
    ptr::NonNull,
    sync::atomic::{AtomicU32, AtomicU64, Ordering},
};

use aya::maps::{Map, MapData, MapError};

/// Bytes read before the position is published even though more waits.
pub const PUBLISH_BYTES: u64 = 64 << 10;

/// The kernel's record header: the length, with two flags in its top bits,
/// and the page offset the kernel uses to find the ring from a record.
const HEADER_BYTES: u64 = 8;
const BUSY: u32 = 1 << 31;
const DISCARDED: u32 = 1 << 30;

/// A failure to map the ring buffer.
#[derive(Debug, thiserror::Error)]
pub enum RingError {
    /// The map is not a ring buffer.
    #[error("the events map is not a ring buffer")]
    NotRingBuffer,
    /// The kernel's information about the map could not be read.
    #[error("reading the ring buffer's size")]
    Info(#[source] MapError),
    /// The ring's size is not a power of two of at least one page.
    #[error("the ring buffer's size {0} is not a power of two")]
    Size(u64),
    /// mmap(2) of one of its two regions failed.
    #[error("mapping the ring buffer's {region}")]
    Map {
        /// Which region.
        region: &'static str,
        /// What the kernel said.
        #[source]
        source: io::Error,
    },
}

/// One mmap(2) region, unmapped on drop.
struct Region {
    base: NonNull<u8>,
    len: usize,
}

impl Region {
    fn new(
        map: &MapData,
        offset: usize,
        len: usize,
        writable: bool,
        region: &'static str,
    ) -> Result<Self, RingError> {
        let prot = if writable {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        let offset = libc::off_t::try_from(offset).map_err(|_| RingError::Map {
            region,
            source: io::Error::from(io::ErrorKind::InvalidInput),
        })?;
        // SAFETY: a new shared mapping of the map's file descriptor, which
        // the MapData kept beside it holds open; nothing else aliases it
        // in this process.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                map.fd().as_fd().as_raw_fd(),
                offset,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(RingError::Map {
                region,
                source: io::Error::last_os_error(),
            });
        }
        let base = NonNull::new(base.cast::<u8>()).ok_or(RingError::Map {
            region,
            source: io::Error::from(io::ErrorKind::AddrNotAvailable),
        })?;
        Ok(Self { base, len })
    }

    /// The 8-byte position at the start of the region.
    fn position(&self) -> &AtomicU64 {
        // SAFETY: the region is at least a page, page-aligned, and the
        // kernel accesses this word only atomically.
        unsafe { self.base.cast::<AtomicU64>().as_ref() }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: the region was mapped with this base and length, and no
        // borrow of it outlives the EventRing that owns it.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.len);
        }
    }
}

/// The events ring buffer; [`EventRing::next_record`] hands out records in the
/// order the kernel reserved them.
pub struct EventRing {
    /// Keeps the map's file descriptor, and so the ring, alive.
    map: MapData,
    /// The reader's position: read-write.
    consumer: Region,
    /// The writers' position, then the data twice: read-only.
    producer: Region,
    page: usize,
    mask: u64,
    /// The next record to read.
    position: u64,
    /// The position the kernel last saw.
    published: u64,
    /// The writers' position when last read.
    produced: u64,
}

// SAFETY: the regions are owned and only reached through &mut self or &self
// borrows; the kernel's side is accessed through atomics.
unsafe impl Send for EventRing {}

impl std::fmt::Debug for EventRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventRing")
            .field("size", &(self.mask + 1))
            .field("position", &self.position)
            .field("published", &self.published)
            .finish_non_exhaustive()
    }
}

impl TryFrom<Map> for EventRing {
    type Error = RingError;

    fn try_from(map: Map) -> Result<Self, Self::Error> {
        match map {
            Map::RingBuf(data) => Self::new(data),
            _ => Err(RingError::NotRingBuffer),
        }
    }
}

impl EventRing {
    fn new(map: MapData) -> Result<Self, RingError> {
        let size = u64::from(map.info().map_err(RingError::Info)?.max_entries());
        let page = crate::config::page_size();
        if !size.is_power_of_two() || size < page {
            return Err(RingError::Size(size));
        }
        let too_big = |_| RingError::Size(size);
        let page = usize::try_from(page).map_err(too_big)?;
        let data_len = usize::try_from(size).map_err(too_big)?;
        let consumer = Region::new(&map, 0, page, true, "reader position")?;
        let producer = Region::new(&map, page, page + 2 * data_len, false, "data")?;
        let position = consumer.position().load(Ordering::Acquire);
        Ok(Self {
            map,
            consumer,
            producer,
            page,
            mask: size - 1,
            position,
            published: position,
            produced: position,
        })
    }

    /// The next committed record, or `None` when the ring is empty or the
    /// next record is still being written (its writer commits it soon, and
    /// the reader comes back on the next wake-up or tick). Everything read
    /// before is released to the kernel by this call or a later one.
    pub fn next_record(&mut self) -> Option<&[u8]> {
        loop {
            if self.position - self.published >= PUBLISH_BYTES {
                self.publish();
            }
            if self.position == self.produced {
                self.produced = self.producer.position().load(Ordering::Acquire);
                if self.position == self.produced {
                    self.publish();
                    return None;
                }
            }
            let offset = self.page + (self.position & self.mask) as usize;
            // SAFETY: the data is mapped twice after the first page, so a
            // header at any offset below the ring's size is in the region;
            // the kernel writes it with an atomic exchange.
            let header = unsafe {
                self.producer
                    .base
                    .add(offset)
                    .cast::<AtomicU32>()
                    .as_ref()
                    .load(Ordering::Acquire)
            };
            if header & BUSY != 0 {
                self.publish();
                return None;
            }
            let len = u64::from(header & !(BUSY | DISCARDED));
            if len > self.mask + 1 - HEADER_BYTES {
                // Not a record the kernel could have written: stop here
                // rather than read past the ring.
                tracing::error!(len, "ring buffer record longer than the ring");
                self.publish();
                return None;
            }
            self.position += (HEADER_BYTES + len).next_multiple_of(8);
            if header & DISCARDED != 0 {
                continue;
            }
            let start = offset + HEADER_BYTES as usize;
            // SAFETY: start + len lies within the double mapping (offset
            // < page + size, len <= size - 8); the kernel does not reuse
            // these bytes until the position past them is published, which
            // happens no earlier than the next call, when this borrow of
            // self has ended.
            let record = unsafe {
                std::slice::from_raw_parts(self.producer.base.add(start).as_ptr(), len as usize)
            };
            return Some(record);
        }
    }

    /// Tells the kernel that everything read so far may be overwritten.
    pub fn publish(&mut self) {
        if self.published != self.position {
            self.consumer
                .position()
                .store(self.position, Ordering::Release);
            self.published = self.position;
        }
    }
}

impl AsFd for EventRing {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.map.fd().as_fd()
    }
}

impl AsRawFd for EventRing {
    fn as_raw_fd(&self) -> RawFd {
        self.as_fd().as_raw_fd()
    }
}
