//! The NPY format's header (numpy's `format.py`, versions 1–3): magic, version, a Python
//! dict literal with `descr`, `fortran_order` and `shape`, then the raw C-order data.

use std::io::Read;

/// The element types rar-eval reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElementType {
    /// `|u1`: image pixels.
    U8,
    /// `<f4`.
    F32,
    /// `<f8`: the reference batch's statistics.
    F64,
}

impl ElementType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::U8 => 1,
            Self::F32 => 4,
            Self::F64 => 8,
        }
    }

    /// numpy's `descr` string.
    pub fn descr(self) -> &'static str {
        match self {
            Self::U8 => "|u1",
            Self::F32 => "<f4",
            Self::F64 => "<f8",
        }
    }

    fn parse(descr: &str) -> Option<Self> {
        match descr {
            "|u1" | "<u1" | "u1" => Some(Self::U8),
            "<f4" => Some(Self::F32),
            "<f8" => Some(Self::F64),
            _ => None,
        }
    }
}

/// A parsed NPY header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyHeader {
    /// Element type.
    pub dtype: ElementType,
    /// Shape (empty for a scalar).
    pub shape: Vec<usize>,
    /// Bytes of magic, version, length and dict before the data.
    pub header_len: usize,
}

impl NpyHeader {
    /// Elements in the array.
    pub fn elements(&self) -> usize {
        self.shape.iter().product()
    }

    /// Reads the header from the start of `r`, leaving `r` at the first data byte.
    pub fn read(r: &mut impl Read) -> Result<Self, String> {
        let mut prefix = [0u8; 8];
        r.read_exact(&mut prefix)
            .map_err(|e| format!("reading the NPY magic: {e}"))?;
        if &prefix[..6] != b"\x93NUMPY" {
            return Err("not an NPY array (bad magic)".into());
        }
        let len_bytes = match prefix[6] {
            1 => 2,
            2 | 3 => 4,
            v => return Err(format!("NPY version {v} is not supported")),
        };
        let mut len = [0u8; 4];
        r.read_exact(&mut len[..len_bytes])
            .map_err(|e| format!("reading the NPY header length: {e}"))?;
        let dict_len = u32::from_le_bytes(len) as usize;
        if dict_len > 1 << 20 {
            return Err(format!("NPY header of {dict_len} bytes is implausible"));
        }
        let mut dict = vec![0u8; dict_len];
        r.read_exact(&mut dict)
            .map_err(|e| format!("reading the NPY header: {e}"))?;
        let dict = String::from_utf8(dict).map_err(|_| "NPY header is not text".to_string())?;
        let descr = quoted_value(&dict, "descr").ok_or("NPY header has no 'descr'")?;
        let dtype = ElementType::parse(descr).ok_or_else(|| {
            format!("element type '{descr}' is not supported (uint8, little-endian f32 or f64)")
        })?;
        match raw_value(&dict, "fortran_order") {
            Some(v) if v.starts_with("False") => {}
            Some(_) => return Err("Fortran-ordered arrays are not supported".into()),
            None => return Err("NPY header has no 'fortran_order'".into()),
        }
        let shape = raw_value(&dict, "shape").ok_or("NPY header has no 'shape'")?;
        let shape = shape
            .strip_prefix('(')
            .and_then(|s| s.split_once(')'))
            .map(|(inner, _)| inner)
            .ok_or_else(|| format!("NPY shape '{shape}' is not a tuple"))?;
        let shape = shape
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<usize>()
                    .map_err(|_| format!("NPY shape entry '{s}'"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            dtype,
            shape,
            header_len: 6 + 2 + len_bytes + dict_len,
        })
    }
}

/// The text after `'key':` in a dict literal.
fn raw_value<'a>(dict: &'a str, key: &str) -> Option<&'a str> {
    let pattern = format!("'{key}':");
    let at = dict.find(&pattern)? + pattern.len();
    Some(dict[at..].trim_start())
}

/// The quoted string after `'key':`.
fn quoted_value<'a>(dict: &'a str, key: &str) -> Option<&'a str> {
    let v = raw_value(dict, key)?;
    let quote = v.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let rest = &v[1..];
    Some(&rest[..rest.find(quote)?])
}

/// The NPY v1.0 header numpy writes for a C-order array (the dict padded with spaces to a 64-byte
/// boundary and ended by a newline, as numpy writes it).
pub fn header_bytes(dtype: ElementType, shape: &[usize]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut dict = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {shape}, }}",
        dtype.descr()
    );
    let unpadded = 10 + dict.len() + 1;
    dict.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    dict.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((dict.len() as u16).to_le_bytes());
    out.extend(dict.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        for shape in [vec![3usize, 4, 5, 3], vec![2048], vec![]] {
            for dtype in [ElementType::U8, ElementType::F32, ElementType::F64] {
                let bytes = header_bytes(dtype, &shape);
                assert_eq!(bytes.len() % 64, 0);
                let h = NpyHeader::read(&mut bytes.as_slice()).unwrap();
                assert_eq!(
                    (h.dtype, h.shape.clone(), h.header_len),
                    (dtype, shape.clone(), bytes.len())
                );
            }
        }
    }

    #[test]
    fn numpy_headers_parse_and_bad_ones_are_named() {
        // As numpy 2 writes them.
        let dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (2048, 2048), }";
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend((dict.len() as u16).to_le_bytes());
        bytes.extend(dict.as_bytes());
        let h = NpyHeader::read(&mut bytes.as_slice()).unwrap();
        assert_eq!((h.dtype, h.shape), (ElementType::F64, vec![2048, 2048]));
        let replace = |from: &[u8], to: &[u8]| -> Vec<u8> {
            let at = bytes.windows(from.len()).position(|w| w == from).unwrap();
            [&bytes[..at], to, &bytes[at + from.len()..]].concat()
        };
        let err = NpyHeader::read(&mut replace(b"<f8", b">f8").as_slice()).unwrap_err();
        assert!(err.contains(">f8"), "{err}");
        let fortran = replace(b"False", b"True ");
        assert!(
            NpyHeader::read(&mut fortran.as_slice())
                .unwrap_err()
                .contains("Fortran")
        );
        assert!(NpyHeader::read(&mut &b"PK\x03\x04...."[..]).is_err());
    }
}
