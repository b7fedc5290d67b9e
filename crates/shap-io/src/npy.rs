//! `.npy` files: the header ([`split`], [`parse_header`], [`header_bytes`], [`read_header`]:
//! the Python literal dict NumPy writes, parsed strictly) and whole arrays ([`NpyArray`],
//! [`encode`], [`decode`], [`write_npy`]).

pub use crate::array::{NpyArray, NpyData, decode, encode, write_npy};
pub use crate::header::{
    HeaderError, MAGIC, MAX_HEADER, NpyHeader, header_bytes, parse_header, read_header, split,
};
