//! `.npz` archives (a zip of `.npy` entries, what `numpy.savez` writes) read and written entry
//! by entry, so that an archive larger than memory can be joined or copied one array at a
//! time.
//!
//! - [`NpzWriter`] writes stored (uncompressed) entries to any `Write`, streaming: each entry's
//!   CRC and size follow its data in a data descriptor (zip's flag bit 3), so nothing is
//!   buffered and no seek is needed (the writer also works on standard output or a FIFO
//!   through [`crate::write_atomic`]). `numpy.load`, Python's `zipfile` and [`NpzReader`] read
//!   the sizes from the central directory.
//! - [`NpzReader`] reads the central directory (bounded by the file's size), refuses entries
//!   that overlap or repeat a name, and opens one entry at a time as a stream: stored or
//!   deflated (`numpy.savez_compressed`), checked against its declared size and CRC-32 when it
//!   has been read to its end.
//!
//! Why our own zip walking rather than the `zip` crate (9.8.1, in the dependency tree through
//! candle-core)? Measured on 2026-12-01 with a scratch program: its `ZipWriter::new_stream`
//! writes the same layout as [`NpzWriter`] (stored entries with data descriptors, 1980-01-01
//! timestamps, the same 376 bytes for two small entries), so writing is no reason. Its reader
//! opens an archive whose two central-directory records point at one local header (overlapping
//! entries) and fails only when the second entry is read (CRC-32); ours refuses such archives
//! when they are opened, bounds the central directory by the file before decoding it, and
//! checks each local header against the file's size, which `crates/shap-explain/tests/npz_props.rs`
//! holds it to. That is a choice for strictness at open, not a speed reason. The
//! CRC is `crc32fast`'s and inflating is `flate2`'s.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::{IoError, os};

/// Zip signatures.
const LOCAL: u32 = 0x0403_4b50;
const CENTRAL: u32 = 0x0201_4b50;
const END: u32 = 0x0605_4b50;
const DESCRIPTOR: u32 = 0x0807_4b50;

/// Longest central directory read (a few thousand entries): bounds a hostile header.
const MAX_CENTRAL: usize = 1 << 24;

/// A streaming writer of stored `.npz` entries (see the module notes).
pub struct NpzWriter<W: Write> {
    out: W,
    /// Bytes written so far (where the next local header starts).
    offset: u64,
    central: Vec<u8>,
    entries: u16,
}

/// Bytes and CRC of one entry's data, counted as they pass.
struct Counting<'a, W: Write> {
    out: &'a mut W,
    bytes: u64,
    crc: crc32fast::Hasher,
}

impl<W: Write> Write for Counting<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.crc.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

fn too_big() -> io::Error {
    io::Error::other("the .npz would be larger than 4 GiB (zip64 is not supported)")
}

fn u32_of(v: u64) -> io::Result<u32> {
    u32::try_from(v).map_err(|_| too_big())
}

impl<W: Write> NpzWriter<W> {
    /// A writer onto `out` (nothing is written until the first entry).
    pub fn new(out: W) -> Self {
        Self {
            out,
            offset: 0,
            central: Vec::new(),
            entries: 0,
        }
    }

    /// Add the entry `name.npy`, whose bytes (a whole `.npy`: header and data) `write` writes.
    pub fn entry(
        &mut self,
        name: &str,
        write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> io::Result<()> {
        let fname = format!("{name}.npy");
        let nlen =
            u16::try_from(fname.len()).map_err(|_| io::Error::other("entry name too long"))?;
        let start = u32_of(self.offset)?;
        let mut local = Vec::with_capacity(30 + fname.len());
        local.extend_from_slice(&LOCAL.to_le_bytes());
        fixed_fields(&mut local, [0, 0, 0], nlen);
        local.extend_from_slice(fname.as_bytes());
        self.out.write_all(&local)?;
        let mut counting = Counting {
            out: &mut self.out,
            bytes: 0,
            crc: crc32fast::Hasher::new(),
        };
        write(&mut counting)?;
        let (size, crc) = (u32_of(counting.bytes)?, counting.crc.finalize());
        let mut descriptor = Vec::with_capacity(16);
        for v in [DESCRIPTOR, crc, size, size] {
            descriptor.extend_from_slice(&v.to_le_bytes());
        }
        self.out.write_all(&descriptor)?;
        self.offset += (local.len() + descriptor.len()) as u64 + u64::from(size);
        u32_of(self.offset)?;
        let c = &mut self.central;
        c.extend_from_slice(&CENTRAL.to_le_bytes());
        c.extend_from_slice(&20u16.to_le_bytes()); // version made by
        fixed_fields(c, [crc, size, size], nlen);
        c.extend_from_slice(&[0; 6]); // comment length, disk, internal attributes
        c.extend_from_slice(&0u32.to_le_bytes()); // external attributes
        c.extend_from_slice(&start.to_le_bytes());
        c.extend_from_slice(fname.as_bytes());
        self.entries = self
            .entries
            .checked_add(1)
            .ok_or_else(|| io::Error::other("more than 65,535 entries"))?;
        Ok(())
    }

    /// Write the central directory and return the output.
    pub fn finish(mut self) -> io::Result<W> {
        let cd_offset = u32_of(self.offset)?;
        let cd_size = u32_of(self.central.len() as u64)?;
        self.out.write_all(&self.central)?;
        let mut end = Vec::with_capacity(22);
        end.extend_from_slice(&END.to_le_bytes());
        end.extend_from_slice(&[0; 4]); // disk numbers
        end.extend_from_slice(&self.entries.to_le_bytes());
        end.extend_from_slice(&self.entries.to_le_bytes());
        end.extend_from_slice(&cd_size.to_le_bytes());
        end.extend_from_slice(&cd_offset.to_le_bytes());
        end.extend_from_slice(&0u16.to_le_bytes()); // comment length
        self.out.write_all(&end)?;
        Ok(self.out)
    }
}

/// The fields local and central headers share: version needed, flags (bit 3: sizes in a data
/// descriptor), stored, a fixed 1980-01-01 timestamp (so equal contents give equal bytes),
/// CRC, sizes, name length and no extra field.
fn fixed_fields(buf: &mut Vec<u8>, [crc, csize, usize_]: [u32; 3], nlen: u16) {
    for v in [20u16, 0x0008, 0, 0, 0x21] {
        buf.extend_from_slice(&v.to_le_bytes());
    }
    for v in [crc, csize, usize_] {
        buf.extend_from_slice(&v.to_le_bytes());
    }
    buf.extend_from_slice(&nlen.to_le_bytes());
    buf.extend_from_slice(&0u16.to_le_bytes());
}

/// One entry of an archive, as its central directory describes it.
#[derive(Debug, Clone)]
struct Entry {
    /// The name without `.npy`.
    name: String,
    deflated: bool,
    crc: u32,
    /// Bytes in the archive.
    stored: u64,
    /// Bytes once inflated (the `.npy`'s size).
    size: u64,
    /// Where the local header starts and the data starts.
    local: u64,
    data: u64,
}

/// An `.npz` archive opened for reading entry by entry (see the module notes).
pub struct NpzReader {
    file: Backing,
    path: PathBuf,
    entries: Vec<Entry>,
}

/// Where an archive's bytes are: a regular file, read where needed, or the bytes of anything
/// else (a FIFO, a device), read whole up to a limit.
enum Backing {
    File(File),
    Bytes(Vec<u8>),
}

impl Backing {
    fn len(&self) -> io::Result<u64> {
        match self {
            Self::File(f) => Ok(f.metadata()?.len()),
            Self::Bytes(b) => Ok(b.len() as u64),
        }
    }

    /// `len` bytes from `at`, as a stream.
    fn at(&self, at: u64, len: u64) -> io::Result<Box<dyn Read + '_>> {
        match self {
            Self::File(f) => {
                let mut f = f;
                f.seek(SeekFrom::Start(at))?;
                Ok(Box::new(f.take(len)))
            }
            Self::Bytes(b) => {
                let start = usize::try_from(at).unwrap_or(usize::MAX).min(b.len());
                let end = usize::try_from(at.saturating_add(len))
                    .unwrap_or(usize::MAX)
                    .min(b.len());
                Ok(Box::new(&b[start..end]))
            }
        }
    }

    fn read_exact_at(&self, at: u64, buf: &mut [u8]) -> io::Result<()> {
        self.at(at, buf.len() as u64)?.read_exact(buf)
    }
}

fn le16(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 2)
        .map(|s| u64::from(u16::from_le_bytes([s[0], s[1]])))
}

fn le32(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 4)
        .map(|s| u64::from(u32::from_le_bytes([s[0], s[1], s[2], s[3]])))
}

impl NpzReader {
    /// Open `path` and read its central directory. Anything but a regular file (a FIFO, a
    /// device) is read whole first, up to `limit` bytes.
    pub fn open(path: &Path, limit: u64) -> Result<Self, IoError> {
        let file = File::open(path).map_err(os("opening", path))?;
        let meta = file.metadata().map_err(os("inspecting", path))?;
        let file = if meta.is_file() {
            Backing::File(file)
        } else {
            drop(file);
            Backing::Bytes(crate::read_bounded(path, limit, "an .npz archive")?)
        };
        let len = file.len().map_err(os("inspecting", path))?;
        let entries = read_central(&file, len).map_err(|r| bad(path, r))?;
        let mut reader = Self {
            file,
            path: path.to_path_buf(),
            entries,
        };
        reader.locate_data()?;
        Ok(reader)
    }

    /// The entry names (without `.npy`), in archive order.
    pub fn names(&self) -> Vec<&str> {
        self.entries.iter().map(|e| e.name.as_str()).collect()
    }

    /// Whether the archive holds `name.npy`.
    pub fn has(&self, name: &str) -> bool {
        self.entries.iter().any(|e| e.name == name)
    }

    /// The size of `name.npy` once inflated.
    pub fn size(&self, name: &str) -> Option<u64> {
        self.entries.iter().find(|e| e.name == name).map(|e| e.size)
    }

    /// The archive's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The bytes of `name.npy` as a stream, which fails at its end when the data does not
    /// match the declared size or CRC-32 (a truncated or corrupt entry).
    pub fn open_entry(&self, name: &str) -> Result<EntryReader<'_>, IoError> {
        let e = self
            .entries
            .iter()
            .find(|e| e.name == name)
            .ok_or_else(|| bad(&self.path, format!("no array '{name}'")))?;
        let raw = self
            .file
            .at(e.data, e.stored)
            .map_err(os("reading", &self.path))?;
        let inner: Box<dyn Read + '_> = if e.deflated {
            Box::new(flate2::read::DeflateDecoder::new(raw).take(e.size + 1))
        } else {
            Box::new(raw)
        };
        Ok(EntryReader {
            inner,
            crc: crc32fast::Hasher::new(),
            read: 0,
            want: (e.size, e.crc),
            name: e.name.clone(),
        })
    }

    /// The whole of `name.npy`, refused when it declares more than `limit` bytes.
    pub fn read_entry(&self, name: &str, limit: u64) -> Result<Vec<u8>, IoError> {
        let size = self
            .size(name)
            .ok_or_else(|| bad(&self.path, format!("no array '{name}'")))?;
        if size > limit {
            return Err(IoError::TooLarge {
                path: self.path.clone(),
                what: format!("the array '{name}'"),
                limit,
            });
        }
        let mut out = Vec::new();
        out.try_reserve_exact(usize::try_from(size).unwrap_or(usize::MAX))
            .map_err(|_| os("reading", &self.path)(io::ErrorKind::OutOfMemory.into()))?;
        self.open_entry(name)?
            .read_to_end(&mut out)
            .map_err(|e| match e.kind() {
                io::ErrorKind::InvalidData => bad(&self.path, e.to_string()),
                _ => os("reading", &self.path)(e),
            })?;
        Ok(out)
    }

    /// Read each local header for where its data starts, and check that entries share no
    /// byte and no name.
    fn locate_data(&mut self) -> Result<(), IoError> {
        let len = self.file.len().map_err(os("inspecting", &self.path))?;
        for e in &mut self.entries {
            let mut head = [0u8; 30];
            self.file
                .read_exact_at(e.local, &mut head)
                .map_err(|_| bad(&self.path, "truncated or malformed zip archive"))?;
            if le32(&head, 0) != Some(u64::from(LOCAL)) {
                return Err(bad(&self.path, "truncated or malformed zip archive"));
            }
            let extra = le16(&head, 26).unwrap_or(0) + le16(&head, 28).unwrap_or(0);
            e.data = e.local + 30 + extra;
            if e.data + e.stored > len {
                return Err(bad(&self.path, "truncated or malformed zip archive"));
            }
        }
        let mut names: Vec<&str> = self.entries.iter().map(|e| e.name.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(bad(
                &self.path,
                format!("zip entry {}.npy appears twice", w[0]),
            ));
        }
        let mut spans: Vec<&Entry> = self.entries.iter().collect();
        spans.sort_unstable_by_key(|e| e.local);
        if let Some(w) = spans
            .windows(2)
            .find(|w| w[1].local < w[0].data + w[0].stored)
        {
            let (a, b) = (&w[0].name, &w[1].name);
            return Err(bad(
                &self.path,
                format!("zip entries {a}.npy and {b}.npy overlap"),
            ));
        }
        Ok(())
    }
}

/// One entry's bytes (see [`NpzReader::open_entry`]).
pub struct EntryReader<'a> {
    inner: Box<dyn Read + 'a>,
    crc: crc32fast::Hasher,
    read: u64,
    /// Declared size and CRC-32.
    want: (u64, u32),
    name: String,
}

impl Read for EntryReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.crc.update(&buf[..n]);
        self.read += n as u64;
        let corrupt = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
        if self.read > self.want.0 {
            return Err(corrupt(format!(
                "{}.npy holds more than the {} bytes its archive declares",
                self.name, self.want.0
            )));
        }
        if n == 0 && !buf.is_empty() {
            if self.read != self.want.0 {
                return Err(corrupt(format!(
                    "{}.npy is truncated: {} of {} bytes",
                    self.name, self.read, self.want.0
                )));
            }
            if self.crc.clone().finalize() != self.want.1 {
                return Err(corrupt(format!(
                    "{}.npy is corrupt (its CRC-32 does not match)",
                    self.name
                )));
            }
        }
        Ok(n)
    }
}

fn bad(path: &Path, reason: impl Into<String>) -> IoError {
    IoError::Format {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Whether the last 22 bytes of the file are an end-of-central-directory record with no
/// comment (what every writer here and numpy write): then only they need reading.
fn ends_with_end(file: &Backing, len: u64) -> bool {
    let mut tail = [0u8; 22];
    len >= 22
        && file.read_exact_at(len - 22, &mut tail).is_ok()
        && le32(&tail, 0) == Some(u64::from(END))
        && le16(&tail, 20) == Some(0)
}

/// The entries of the central directory of a file of `len` bytes.
fn read_central(file: &Backing, len: u64) -> Result<Vec<Entry>, String> {
    let trunc = || "truncated or malformed zip archive".to_string();
    let tail_len = if ends_with_end(file, len) {
        22
    } else {
        len.min(22 + 65_535)
    };
    let mut tail = vec![0u8; tail_len as usize];
    file.read_exact_at(len - tail_len, &mut tail)
        .map_err(|_| trunc())?;
    let eocd = (0..tail.len().saturating_sub(21))
        .rev()
        .find(|&i| le32(&tail, i) == Some(u64::from(END)))
        .ok_or("not a zip archive (no end-of-central-directory record)")?;
    let count = le16(&tail, eocd + 10).ok_or_else(trunc)?;
    let cd_size = le32(&tail, eocd + 12).ok_or_else(trunc)?;
    let cd_offset = le32(&tail, eocd + 16).ok_or_else(trunc)?;
    if cd_offset + cd_size > len || cd_size as usize > MAX_CENTRAL {
        return Err(trunc());
    }
    let mut cd = vec![0u8; cd_size as usize];
    file.read_exact_at(cd_offset, &mut cd)
        .map_err(|_| trunc())?;
    let mut at = 0usize;
    let mut out = Vec::with_capacity(count.min(64) as usize);
    for _ in 0..count {
        let (e, next) = central_entry(&cd, at).ok_or_else(trunc)??;
        out.push(e);
        at = next;
    }
    Ok(out)
}

/// The central-directory record at `at`, and where the next one starts; `None` when it is
/// cut short, an error for a compression method other than stored or deflate.
#[allow(clippy::type_complexity)]
fn central_entry(cd: &[u8], at: usize) -> Option<Result<(Entry, usize), String>> {
    if le32(cd, at)? != u64::from(CENTRAL) {
        return None;
    }
    let method = le16(cd, at + 10)?;
    let crc = le32(cd, at + 16)? as u32;
    let stored = le32(cd, at + 20)?;
    let size = le32(cd, at + 24)?;
    let nlen = le16(cd, at + 28)? as usize;
    let rest = (le16(cd, at + 30)? + le16(cd, at + 32)?) as usize;
    let local = le32(cd, at + 42)?;
    let raw = cd.get(at + 46..at + 46 + nlen)?;
    let full = String::from_utf8_lossy(raw).into_owned();
    let deflated = match method {
        0 if stored == size => false,
        8 => true,
        _ => {
            return Some(Err(format!(
                "{full}: zip method {method} (only stored and deflate are read)"
            )));
        }
    };
    let name = full.strip_suffix(".npy").unwrap_or(&full).to_string();
    let e = Entry {
        name,
        deflated,
        crc,
        stored,
        size,
        local,
        data: 0,
    };
    Some(Ok((e, at + 46 + nlen + rest)))
}
