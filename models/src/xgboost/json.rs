//! A JSON reader for XGBoost model files. XGBoost writes the non-standard tokens `NaN`,
//! `Infinity` and `-Infinity` for non-finite floats, so a strict JSON parser refuses
//! files that xgboost itself reads back; this one accepts them and nothing else extra.

use super::value::{Num, Value};
use crate::error::{ModelError, Position};

/// Deepest nesting accepted: a model is about six levels deep; this keeps a hostile
/// file from exhausting the stack.
const MAX_DEPTH: usize = 128;

pub(crate) fn parse(bytes: &[u8], origin: &str) -> Result<Value, ModelError> {
    let mut p = Parser { bytes, pos: 0, origin, depth: 0 };
    p.skip_ws();
    let value = p.value()?;
    p.skip_ws();
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
        let before = &self.bytes[..offset.min(self.bytes.len())];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        ModelError::Syntax {
            origin: self.origin.to_string(),
            format: "JSON",
            position: Position::LineColumn { line, column: offset - line_start + 1 },
            message: message.into(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.pos += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), ModelError> {
        match self.peek() {
            Some(b) if b == byte => {
                self.pos += 1;
                Ok(())
            }
            Some(b) => Err(self.error(format!("expected `{}`, found `{}`", byte as char, b.escape_ascii()))),
            None => Err(self.error(format!("expected `{}`, found the end of the file (truncated?)", byte as char))),
        }
    }

    fn value(&mut self) -> Result<Value, ModelError> {
        match self.peek() {
            None => Err(self.error("unexpected end of the file (truncated?)")),
            Some(b'{') => self.nested(Self::object),
            Some(b'[') => self.nested(Self::array),
            Some(b'"') => Ok(Value::Str(self.string()?)),
            Some(b't') => self.literal("true", Value::Bool(true)),
            Some(b'f') => self.literal("false", Value::Bool(false)),
            Some(b'n') => self.literal("null", Value::Null),
            Some(b'N') => self.literal("NaN", Value::Number(Num::from_f32(f32::NAN))),
            Some(b'I') => self.literal("Infinity", Value::Number(Num::from_f32(f32::INFINITY))),
            Some(b'-') if self.bytes[self.pos..].starts_with(b"-Infinity") => {
                self.literal("-Infinity", Value::Number(Num::from_f32(f32::NEG_INFINITY)))
            }
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b) => Err(self.error(format!("unexpected character `{}`", b.escape_ascii()))),
        }
    }

    fn nested(&mut self, f: fn(&mut Self) -> Result<Value, ModelError>) -> Result<Value, ModelError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(format!("nesting deeper than {MAX_DEPTH} levels")));
        }
        let value = f(self);
        self.depth -= 1;
        value
    }

    fn literal(&mut self, word: &str, value: Value) -> Result<Value, ModelError> {
        if self.bytes[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.error(format!("invalid literal (expected `{word}`)")))
        }
    }

    fn object(&mut self) -> Result<Value, ModelError> {
        self.expect(b'{')?;
        let mut fields = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Value::Object(fields));
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return Err(self.error("expected a quoted key"));
            }
            let key = self.string()?;
            self.skip_ws();
            self.expect(b':')?;
            self.skip_ws();
            let value = self.value()?;
            fields.push((key, value));
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Value::Object(fields));
                }
                None => return Err(self.error("unexpected end of the file inside an object (truncated?)")),
                Some(_) => return Err(self.error("expected `,` or `}` in an object")),
            }
        }
    }

    fn array(&mut self) -> Result<Value, ModelError> {
        self.expect(b'[')?;
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_ws();
            items.push(self.value()?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::array(items));
                }
                None => return Err(self.error("unexpected end of the file inside an array (truncated?)")),
                Some(_) => return Err(self.error("expected `,` or `]` in an array")),
            }
        }
    }

    fn string(&mut self) -> Result<String, ModelError> {
        let start = self.pos;
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            let Some(b) = self.peek() else {
                return Err(self.error_at(start, "unterminated string (truncated?)"));
            };
            self.pos += 1;
            match b {
                b'"' => break,
                b'\\' => self.escape(&mut out)?,
                0x00..=0x1f => return Err(self.error_at(self.pos - 1, "control character in a string")),
                _ => out.push(b),
            }
        }
        String::from_utf8(out).map_err(|_| self.error_at(start, "string is not valid UTF-8"))
    }

    fn escape(&mut self, out: &mut Vec<u8>) -> Result<(), ModelError> {
        let Some(b) = self.peek() else {
            return Err(self.error("unexpected end of the file in an escape"));
        };
        self.pos += 1;
        let c = match b {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => self.unicode_escape()?,
            _ => return Err(self.error_at(self.pos - 1, "invalid escape")),
        };
        let mut buf = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, ModelError> {
        let digits = self.bytes.get(self.pos..self.pos + 4).ok_or_else(|| self.error("truncated \\u escape"))?;
        let text = std::str::from_utf8(digits).map_err(|_| self.error("invalid \\u escape"))?;
        let code = u32::from_str_radix(text, 16).map_err(|_| self.error("invalid \\u escape"))?;
        self.pos += 4;
        Ok(code)
    }

    fn unicode_escape(&mut self) -> Result<char, ModelError> {
        let first = self.hex4()?;
        let code = if (0xD800..0xDC00).contains(&first) {
            if !self.bytes[self.pos..].starts_with(b"\\u") {
                return Err(self.error("unpaired surrogate in a \\u escape"));
            }
            self.pos += 2;
            let second = self.hex4()?;
            if !(0xDC00..0xE000).contains(&second) {
                return Err(self.error("invalid low surrogate in a \\u escape"));
            }
            0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
        } else {
            first
        };
        char::from_u32(code).ok_or_else(|| self.error("invalid code point in a \\u escape"))
    }

    fn number(&mut self) -> Result<Value, ModelError> {
        let start = self.pos;
        let mut integral = true;
        while let Some(b) = self.peek() {
            match b {
                b'0'..=b'9' | b'-' | b'+' => {}
                b'.' | b'e' | b'E' => integral = false,
                _ => break,
            }
            self.pos += 1;
        }
        // Only ASCII digits and signs were consumed, so this is valid UTF-8.
        let text = std::str::from_utf8(&self.bytes[start..self.pos]).expect("ASCII");
        let bad = || self.error_at(start, format!("invalid number `{text}`"));
        if integral {
            if let Ok(i) = text.parse::<i64>() {
                return Ok(Value::Number(Num::from_i64(i)));
            }
        }
        let f64 = text.parse::<f64>().map_err(|_| bad())?;
        let f32 = text.parse::<f32>().map_err(|_| bad())?;
        Ok(Value::Number(Num { f64, f32 }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse(text.as_bytes(), "m.json").unwrap_err().to_string()
    }

    #[test]
    fn reads_xgboost_non_finite_tokens() {
        let v = parse(b"{\"a\": [1.5, NaN, Infinity, -Infinity, -2E0]}", "m.json").unwrap();
        let Some(Value::Numbers(n)) = v.get("a") else { panic!("not compact: {v:?}") };
        assert_eq!(n[0].f32, 1.5);
        assert!(n[1].f32.is_nan());
        assert_eq!(n[2].f32, f32::INFINITY);
        assert_eq!(n[3].f32, f32::NEG_INFINITY);
        assert_eq!(n[4].f64, -2.0);
    }

    #[test]
    fn keeps_the_once_rounded_f32() {
        // 0.1 + half an f32 ulp region: parse straight to f32, never through f64.
        let v = parse(b"[1.00000005960464477539062500000001]", "m.json").unwrap();
        let Value::Numbers(n) = v else { panic!() };
        assert_eq!(n[0].f32, "1.00000005960464477539062500000001".parse::<f32>().unwrap());
    }

    #[test]
    fn errors_name_line_and_column() {
        assert_eq!(
            err("{\n  \"a\": [1, 2,\n  ]}"),
            "m.json: malformed JSON at line 3, column 3: unexpected character `]`"
        );
        assert!(err("{\"a\": [1, 2").contains("truncated"), "{}", err("{\"a\": [1, 2"));
        assert!(err("{\"a\": nan}").contains("expected `null`"));
        assert!(err("{\"a\": 1} x").contains("after the end"));
        assert!(err(&"[".repeat(1000)).contains("nesting"));
    }

    #[test]
    fn decodes_escapes() {
        let v = parse(br#""a\"b\u00e9\ud83d\ude00""#, "m.json").unwrap();
        assert_eq!(v, Value::Str("a\"b\u{e9}\u{1F600}".into()));
        assert!(err(r#""\ud83d""#).contains("surrogate"));
    }
}
