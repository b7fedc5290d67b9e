//! The `.npy` preamble and header, parsed strictly: the header is the Python literal dict
//! NumPy writes (`{'descr': '<f4', 'fortran_order': False, 'shape': (28, 28), }`), with
//! exactly the keys `descr`, `fortran_order` and `shape`, each once; `descr` a plain string,
//! `fortran_order` `True`/`False`, `shape` a tuple of non-negative integers. Nested values,
//! duplicate or unknown keys, escapes and trailing text are rejected.

/// The magic bytes opening every `.npy` file.
pub const MAGIC: &[u8] = b"\x93NUMPY";

/// Longest header accepted (NumPy itself refuses headers over 10,000 bytes by default).
pub const MAX_HEADER: usize = 1 << 16;

/// Why a `.npy` preamble or header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HeaderError(pub String);

/// A parsed `.npy` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyHeader {
    /// The dtype string (`"<f4"`).
    pub descr: String,
    /// Whether the data is in Fortran (column-major) order.
    pub fortran_order: bool,
    /// The shape (empty for a scalar).
    pub shape: Vec<usize>,
}

impl NpyHeader {
    /// Number of elements, `None` when it overflows `usize`.
    pub fn count(&self) -> Option<usize> {
        self.shape.iter().try_fold(1usize, |a, &s| a.checked_mul(s))
    }
}

fn err<T>(reason: impl Into<String>) -> Result<T, HeaderError> {
    Err(HeaderError(reason.into()))
}

/// Split `.npy` bytes into the parsed header and the data bytes that follow it.
pub fn split(bytes: &[u8]) -> Result<(NpyHeader, &[u8]), HeaderError> {
    if bytes.len() < 10 || !bytes.starts_with(MAGIC) {
        return err("not a .npy file (bad magic)");
    }
    let (len, start) = match bytes[6] {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 => match bytes.get(8..12) {
            Some(b) => (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize, 12),
            None => return err("truncated header"),
        },
        v => return err(format!("unsupported .npy version {v}")),
    };
    if len > MAX_HEADER {
        return err(format!("header of {len} bytes is too long"));
    }
    let Some(raw) = bytes.get(start..start + len) else {
        return err("truncated header");
    };
    let Ok(text) = std::str::from_utf8(raw) else {
        return err("header is not UTF-8");
    };
    Ok((parse_header(text)?, &bytes[start + len..]))
}

/// A value in the header dict.
enum Value {
    Str(String),
    Bool(bool),
    Tuple(Vec<usize>),
}

/// A cursor over the header text.
struct Cursor<'a> {
    s: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.skip_ws();
        let hit = self.peek() == Some(c);
        if hit {
            self.at += 1;
        }
        hit
    }

    fn expect(&mut self, c: u8) -> Result<(), HeaderError> {
        if self.eat(c) {
            return Ok(());
        }
        err(format!("expected '{}' at byte {}", char::from(c), self.at))
    }

    fn string(&mut self) -> Result<String, HeaderError> {
        self.skip_ws();
        let Some(q @ (b'\'' | b'"')) = self.peek() else {
            return err(format!("expected a string at byte {}", self.at));
        };
        let start = self.at + 1;
        let Some(len) = self.s[start..].iter().position(|&b| b == q) else {
            return err("unterminated string");
        };
        let body = &self.s[start..start + len];
        if body.contains(&b'\\') || body.contains(&b'\n') {
            return err("escapes and newlines in header strings are not supported");
        }
        self.at = start + len + 1;
        Ok(String::from_utf8_lossy(body).into_owned())
    }

    fn word(&mut self, w: &str) -> bool {
        let hit = self.s[self.at..].starts_with(w.as_bytes());
        if hit {
            self.at += w.len();
        }
        hit
    }

    fn int(&mut self) -> Result<usize, HeaderError> {
        self.skip_ws();
        let start = self.at;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
        let digits = std::str::from_utf8(&self.s[start..self.at]).unwrap_or("");
        if digits.is_empty() || (digits.len() > 1 && digits.starts_with('0')) {
            return err(format!("expected a dimension at byte {start}"));
        }
        digits
            .parse()
            .or_else(|_| err(format!("dimension {digits} is too large")))
    }

    fn tuple(&mut self) -> Result<Vec<usize>, HeaderError> {
        let mut dims = Vec::new();
        if self.eat(b')') {
            return Ok(dims);
        }
        loop {
            dims.push(self.int()?);
            if self.eat(b',') {
                if self.eat(b')') {
                    return Ok(dims);
                }
            } else if self.eat(b')') {
                if dims.len() == 1 {
                    return err("shape (n) is a number, not a tuple; write (n,)");
                }
                return Ok(dims);
            } else {
                return err(format!("expected ',' or ')' at byte {}", self.at));
            }
        }
    }

    fn value(&mut self) -> Result<Value, HeaderError> {
        self.skip_ws();
        match self.peek() {
            Some(b'\'' | b'"') => Ok(Value::Str(self.string()?)),
            Some(b'(') => {
                self.at += 1;
                Ok(Value::Tuple(self.tuple()?))
            }
            _ if self.word("True") => Ok(Value::Bool(true)),
            _ if self.word("False") => Ok(Value::Bool(false)),
            _ => err(format!("unsupported value at byte {}", self.at)),
        }
    }
}

/// The three fields as they are found.
#[derive(Default)]
struct Fields {
    descr: Option<String>,
    fortran_order: Option<bool>,
    shape: Option<Vec<usize>>,
}

impl Fields {
    fn set(&mut self, key: &str, value: Value) -> Result<(), HeaderError> {
        if self.has(key) {
            return err(format!("key '{key}' appears twice"));
        }
        match (key, value) {
            ("descr", Value::Str(s)) => self.descr = Some(s),
            ("fortran_order", Value::Bool(b)) => self.fortran_order = Some(b),
            ("shape", Value::Tuple(t)) => self.shape = Some(t),
            ("descr" | "fortran_order" | "shape", _) => {
                return err(format!("key '{key}' has a value of the wrong type"));
            }
            _ => return err(format!("unexpected key '{key}'")),
        }
        Ok(())
    }

    fn has(&self, key: &str) -> bool {
        match key {
            "descr" => self.descr.is_some(),
            "fortran_order" => self.fortran_order.is_some(),
            "shape" => self.shape.is_some(),
            _ => false,
        }
    }
}

/// Parse the header dict text (after the preamble, padding and final newline included).
pub fn parse_header(text: &str) -> Result<NpyHeader, HeaderError> {
    let mut c = Cursor {
        s: text.as_bytes(),
        at: 0,
    };
    let mut fields = Fields::default();
    c.expect(b'{')?;
    while !c.eat(b'}') {
        let key = c.string()?;
        c.expect(b':')?;
        let value = c.value()?;
        fields.set(&key, value)?;
        if !c.eat(b',') {
            c.expect(b'}')?;
            break;
        }
    }
    c.skip_ws();
    if c.at != c.s.len() {
        return err(format!(
            "unexpected text after the header dict at byte {}",
            c.at
        ));
    }
    match fields {
        Fields {
            descr: Some(descr),
            fortran_order: Some(fortran_order),
            shape: Some(shape),
        } => Ok(NpyHeader {
            descr,
            fortran_order,
            shape,
        }),
        _ => err("header must have the keys 'descr', 'fortran_order' and 'shape'"),
    }
}

/// The `.npy` (format 1.0) preamble and header of a C-order array of dtype `descr` and
/// `shape`, padded with spaces so that the data starts on a 64-byte boundary, as NumPy does.
pub fn header_bytes(descr: &str, shape: &[usize]) -> Vec<u8> {
    let dims = match shape {
        [] => "()".to_string(),
        [n] => format!("({n},)"),
        _ => {
            let parts: Vec<String> = shape.iter().map(|s| s.to_string()).collect();
            format!("({})", parts.join(", "))
        }
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {dims}, }}");
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out
}

/// Read a `.npy` preamble and header from `r`, leaving it at the first data byte.
pub fn read_header(r: &mut dyn std::io::Read) -> Result<NpyHeader, HeaderError> {
    let io = |e: std::io::Error| HeaderError(format!("truncated header ({e})"));
    let mut pre = [0u8; 12];
    r.read_exact(&mut pre[..10]).map_err(io)?;
    if &pre[..6] != MAGIC {
        return err("not a .npy file (bad magic)");
    }
    let len = match pre[6] {
        1 => usize::from(u16::from_le_bytes([pre[8], pre[9]])),
        2 | 3 => {
            r.read_exact(&mut pre[10..12]).map_err(io)?;
            u32::from_le_bytes([pre[8], pre[9], pre[10], pre[11]]) as usize
        }
        v => return err(format!("unsupported .npy version {v}")),
    };
    if len > MAX_HEADER {
        return err(format!("header of {len} bytes is too long"));
    }
    let mut raw = vec![0u8; len];
    r.read_exact(&mut raw).map_err(io)?;
    let Ok(text) = std::str::from_utf8(&raw) else {
        return err("header is not UTF-8");
    };
    parse_header(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numpy_headers_parse() {
        let h = parse_header("{'descr': '<f4', 'fortran_order': False, 'shape': (28, 28), }    \n")
            .unwrap();
        assert_eq!(h.descr, "<f4");
        assert!(!h.fortran_order);
        assert_eq!(h.shape, vec![28, 28]);
        let h =
            parse_header("{\"shape\": (3,), \"descr\": \"|b1\", \"fortran_order\": True}").unwrap();
        assert_eq!((h.shape, h.fortran_order), (vec![3], true));
        assert_eq!(
            parse_header("{'descr':'<f8','fortran_order':False,'shape':()}")
                .unwrap()
                .shape,
            Vec::<usize>::new()
        );
    }

    #[test]
    fn what_numpy_rejects_is_rejected() {
        for bad in [
            "{'descr': '<f4', 'descr': '<f8', 'fortran_order': False, 'shape': (1,)}",
            "{'x': {'descr': '<f8'}, 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}",
            "{'foo': 'descr', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3)}",
            "{'descr': '<f4', 'fortran_order': False}",
            "{'descr': '<f4', 'fortran_order': 0, 'shape': (1,)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (01,)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} x",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,)}",
            "{'descr': 'a\\'b', 'fortran_order': False, 'shape': (1,)}",
        ] {
            assert!(parse_header(bad).is_err(), "accepted {bad}");
        }
    }
}
