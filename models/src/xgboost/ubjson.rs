//! A UBJSON reader for XGBoost's binary model format (`Booster.save_model("m.ubj")`):
//! big-endian scalars, object keys without a type marker, and the optimized
//! containers (`$` type, `#` count) xgboost uses for its typed arrays.

use super::value::{Num, Value};
use crate::error::{ModelError, Position};

const MAX_DEPTH: usize = 128;

pub(crate) fn parse(bytes: &[u8], origin: &str) -> Result<Value, ModelError> {
    let mut p = Parser { bytes, pos: 0, origin, depth: 0 };
    let value = p.value()?;
    if p.pos != bytes.len() {
        return Err(p.error("unexpected data after the end of the document"));
    }
    Ok(value)
}

struct Parser<'a> {
    bytes: &'a [u8],
    pos: usize,
    origin: &'a str,
    depth: usize,
}

impl Parser<'_> {
    fn error(&self, message: impl Into<String>) -> ModelError {
        self.error_at(self.pos, message)
    }

    fn error_at(&self, offset: usize, message: impl Into<String>) -> ModelError {
        ModelError::Syntax {
            origin: self.origin.to_string(),
            format: "UBJSON",
            position: Position::Byte(offset),
            message: message.into(),
        }
    }

    fn take(&mut self, n: usize) -> Result<&[u8], ModelError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return Err(self.error(format!("needs {n} more bytes but the file ends (truncated?)")));
        };
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn array_of<const N: usize>(&mut self) -> Result<[u8; N], ModelError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn marker(&mut self) -> Result<u8, ModelError> {
        loop {
            let [m] = self.array_of::<1>()?;
            if m != b'N' {
                return Ok(m); // `N` is UBJSON's no-op
            }
        }
    }

    /// Reads a scalar of the given type marker as a number, or `None` if it is not numeric.
    fn number(&mut self, marker: u8) -> Result<Option<Num>, ModelError> {
        Ok(Some(match marker {
            b'i' => Num::from_i64(i8::from_be_bytes(self.array_of()?).into()),
            b'U' => Num::from_i64(u8::from_be_bytes(self.array_of()?).into()),
            b'I' => Num::from_i64(i16::from_be_bytes(self.array_of()?).into()),
            b'l' => Num::from_i64(i32::from_be_bytes(self.array_of()?).into()),
            b'L' => Num::from_i64(i64::from_be_bytes(self.array_of()?)),
            b'd' => Num::from_f32(f32::from_be_bytes(self.array_of()?)),
            b'D' => Num::from_f64(f64::from_be_bytes(self.array_of()?)),
            _ => return Ok(None),
        }))
    }

    fn length(&mut self) -> Result<usize, ModelError> {
        let at = self.pos;
        let marker = self.marker()?;
        let n: i64 = match marker {
            b'i' => i8::from_be_bytes(self.array_of()?).into(),
            b'U' => u8::from_be_bytes(self.array_of()?).into(),
            b'I' => i16::from_be_bytes(self.array_of()?).into(),
            b'l' => i32::from_be_bytes(self.array_of()?).into(),
            b'L' => i64::from_be_bytes(self.array_of()?),
            _ => {
                return Err(
                    self.error_at(at, format!("expected an integer length, found marker `{}`", marker.escape_ascii()))
                )
            }
        };
        match usize::try_from(n) {
            Ok(n) if n <= self.bytes.len() => Ok(n),
            _ => Err(self.error_at(at, format!("length {n} is negative or longer than the file"))),
        }
    }

    fn string_body(&mut self) -> Result<String, ModelError> {
        let len = self.length()?;
        let at = self.pos;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| self.error_at(at, "string is not valid UTF-8"))
    }

    fn value(&mut self) -> Result<Value, ModelError> {
        let at = self.pos;
        let marker = self.marker()?;
        self.value_of(marker, at)
    }

    fn value_of(&mut self, marker: u8, at: usize) -> Result<Value, ModelError> {
        if let Some(n) = self.number(marker)? {
            return Ok(Value::Number(n));
        }
        match marker {
            b'Z' => Ok(Value::Null),
            b'T' => Ok(Value::Bool(true)),
            b'F' => Ok(Value::Bool(false)),
            b'S' => Ok(Value::Str(self.string_body()?)),
            b'C' => Ok(Value::Str(char::from(self.array_of::<1>()?[0]).to_string())),
            b'H' => {
                let text = self.string_body()?;
                let f64 = text
                    .parse::<f64>()
                    .map_err(|_| self.error_at(at, format!("invalid high-precision number `{text}`")))?;
                let f32 = text.parse::<f32>().unwrap_or(f64 as f32);
                Ok(Value::Number(Num { f64, f32 }))
            }
            b'[' | b'{' => {
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err(self.error_at(at, format!("nesting deeper than {MAX_DEPTH} levels")));
                }
                let v = if marker == b'[' { self.array() } else { self.object() };
                self.depth -= 1;
                v
            }
            _ => Err(self.error_at(at, format!("unknown type marker `{}`", marker.escape_ascii()))),
        }
    }

    /// Reads the optional `$type` and `#count` of an optimized container.
    fn container_header(&mut self) -> Result<(Option<u8>, Option<usize>), ModelError> {
        let mut ty = None;
        if self.bytes.get(self.pos) == Some(&b'$') {
            self.pos += 1;
            ty = Some(self.marker()?);
            if self.bytes.get(self.pos) != Some(&b'#') {
                return Err(self.error("a typed container (`$`) must give its count (`#`)"));
            }
        }
        let mut count = None;
        if self.bytes.get(self.pos) == Some(&b'#') {
            self.pos += 1;
            count = Some(self.length()?);
        }
        Ok((ty, count))
    }

    fn array(&mut self) -> Result<Value, ModelError> {
        let (ty, count) = self.container_header()?;
        match (ty, count) {
            (Some(ty), Some(n)) => self.typed_array(ty, n),
            (None, Some(n)) => {
                let mut items = Vec::with_capacity(n.min(1 << 16));
                for _ in 0..n {
                    items.push(self.value()?);
                }
                Ok(Value::array(items))
            }
            _ => {
                let mut items = Vec::new();
                loop {
                    let at = self.pos;
                    let m = self.marker()?;
                    if m == b']' {
                        return Ok(Value::array(items));
                    }
                    items.push(self.value_of(m, at)?);
                }
            }
        }
    }

    fn typed_array(&mut self, ty: u8, n: usize) -> Result<Value, ModelError> {
        let width = match ty {
            b'i' | b'U' => 1,
            b'I' => 2,
            b'l' | b'd' => 4,
            b'L' | b'D' => 8,
            _ => 0,
        };
        if width > 0 {
            if n.checked_mul(width).is_none_or(|total| total > self.bytes.len() - self.pos) {
                return Err(
                    self.error(format!("typed array of {n} elements runs past the end of the file (truncated?)"))
                );
            }
            let mut nums = Vec::with_capacity(n);
            for _ in 0..n {
                nums.push(self.number(ty)?.expect("numeric marker"));
            }
            return Ok(Value::Numbers(nums));
        }
        let mut items = Vec::with_capacity(n.min(1 << 16));
        for _ in 0..n {
            let at = self.pos;
            items.push(self.value_of(ty, at)?);
        }
        Ok(Value::array(items))
    }

    fn object(&mut self) -> Result<Value, ModelError> {
        let (ty, count) = self.container_header()?;
        let mut fields = Vec::new();
        let mut field = |p: &mut Self| -> Result<(), ModelError> {
            let key = p.string_body()?;
            let at = p.pos;
            let value = match ty {
                Some(ty) => p.value_of(ty, at)?,
                None => p.value()?,
            };
            fields.push((key, value));
            Ok(())
        };
        match count {
            Some(n) => {
                for _ in 0..n {
                    field(self)?;
                }
            }
            None => loop {
                if self.bytes.get(self.pos) == Some(&b'}') {
                    self.pos += 1;
                    break;
                }
                if self.pos >= self.bytes.len() {
                    return Err(self.error("unexpected end of the file inside an object (truncated?)"));
                }
                field(self)?;
            },
        }
        Ok(Value::Object(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_typed_arrays_and_plain_objects() {
        let mut b = vec![b'{', b'i', 1, b'a', b'[', b'$', b'd', b'#', b'i', 2];
        b.extend_from_slice(&1.5f32.to_be_bytes());
        b.extend_from_slice(&f32::NAN.to_be_bytes());
        b.extend_from_slice(&[b'i', 1, b'b', b'S', b'i', 2, b'h', b'i', b'}']);
        let v = parse(&b, "m.ubj").unwrap();
        let Some(Value::Numbers(n)) = v.get("a") else { panic!("{v:?}") };
        assert_eq!(n[0].f32, 1.5);
        assert!(n[1].f32.is_nan());
        assert_eq!(v.get("b"), Some(&Value::Str("hi".into())));
    }

    #[test]
    fn truncation_names_the_byte() {
        let b = [b'{', b'i', 1, b'a', b'[', b'$', b'l', b'#', b'i', 3, 0, 0];
        let e = parse(&b, "m.ubj").unwrap_err().to_string();
        assert!(e.starts_with("m.ubj: malformed UBJSON at byte 10: typed array of 3 elements"), "{e}");
        let e = parse(b"{i\x01a", "m.ubj").unwrap_err().to_string();
        assert!(e.contains("byte 4") && e.contains("truncated"), "{e}");
    }

    #[test]
    fn huge_lengths_are_refused_without_allocating() {
        let mut b = vec![b'[', b'#', b'L'];
        b.extend_from_slice(&i64::MAX.to_be_bytes());
        let e = parse(&b, "m.ubj").unwrap_err().to_string();
        assert!(e.contains("longer than the file"), "{e}");
    }
}
