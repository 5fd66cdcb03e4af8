//! A small JSON value and its compact serialisation, for `--json`.
//!
//! Only what ghostctl prints: objects keep their key order, numbers are
//! integers or finite floats (a non-finite float prints as `null`), and
//! strings are escaped per RFC 8259 (`"`, `\`, and every control character).

use std::fmt::{self, Write};

/// A JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer (wide enough for every `u64` and `i64`).
    Int(i128),
    /// A float; `null` when not finite.
    Float(f64),
    /// A string.
    Str(String),
    /// An array.
    Arr(Vec<Json>),
    /// An object, keys in insertion order.
    Obj(Vec<(String, Json)>),
}

impl Json {
    /// An object from `(key, value)` pairs.
    pub fn obj<K: Into<String>>(pairs: impl IntoIterator<Item = (K, Json)>) -> Json {
        Json::Obj(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// An array of the values of `items`.
    pub fn arr<T: Into<Json>>(items: impl IntoIterator<Item = T>) -> Json {
        Json::Arr(items.into_iter().map(Into::into).collect())
    }
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Json {
            fn from(v: $t) -> Json {
                Json::Int(i128::from(v))
            }
        }
    )*};
}
from_int!(u8, u16, u32, u64, i32, i64);

impl From<usize> for Json {
    fn from(v: usize) -> Json {
        // usize is at most 64 bits on every Linux target.
        Json::Int(v as i128)
    }
}

impl From<f64> for Json {
    fn from(v: f64) -> Json {
        Json::Float(v)
    }
}

impl From<bool> for Json {
    fn from(v: bool) -> Json {
        Json::Bool(v)
    }
}

impl From<&str> for Json {
    fn from(v: &str) -> Json {
        Json::Str(v.to_string())
    }
}

impl From<String> for Json {
    fn from(v: String) -> Json {
        Json::Str(v)
    }
}

impl<T: Into<Json>> From<Option<T>> for Json {
    fn from(v: Option<T>) -> Json {
        v.map_or(Json::Null, Into::into)
    }
}

/// Writes `s` as a JSON string literal, quotes included.
pub fn write_str(f: &mut impl Write, s: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            '\u{8}' => f.write_str("\\b")?,
            '\u{c}' => f.write_str("\\f")?,
            c if u32::from(c) < 0x20 || c == '\u{7f}' => write!(f, "\\u{:04x}", u32::from(c))?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

impl fmt::Display for Json {
    /// Compact JSON: no blanks, no newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Json::Null => f.write_str("null"),
            Json::Bool(b) => write!(f, "{b}"),
            Json::Int(n) => write!(f, "{n}"),
            Json::Float(x) if x.is_finite() => {
                // `{:?}` keeps a `.0` on whole numbers, so the value reads
                // back as a float, and writes large and small magnitudes
                // as `1e20` and `1e-7`: JSON number syntax either way.
                write!(f, "{x:?}")
            }
            Json::Float(_) => f.write_str("null"),
            Json::Str(s) => write_str(f, s),
            Json::Arr(items) => {
                f.write_char('[')?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_char(',')?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_char(']')
            }
            Json::Obj(pairs) => {
                f.write_char('{')?;
                for (i, (k, v)) in pairs.iter().enumerate() {
                    if i > 0 {
                        f.write_char(',')?;
                    }
                    write_str(f, k)?;
                    write!(f, ":{v}")?;
                }
                f.write_char('}')
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars() {
        assert_eq!(Json::Null.to_string(), "null");
        assert_eq!(Json::from(true).to_string(), "true");
        assert_eq!(Json::from(u64::MAX).to_string(), "18446744073709551615");
        assert_eq!(Json::from(i64::MIN).to_string(), "-9223372036854775808");
        assert_eq!(Json::from(2.0).to_string(), "2.0");
        assert_eq!(Json::from(0.25).to_string(), "0.25");
        assert_eq!(Json::from(1e20).to_string(), "1e20");
        assert_eq!(Json::from(-1.5e-7).to_string(), "-1.5e-7");
        assert_eq!(Json::from(f64::NAN).to_string(), "null");
        assert_eq!(Json::from(f64::INFINITY).to_string(), "null");
        assert_eq!(Json::from(None::<u32>).to_string(), "null");
        assert_eq!(Json::from(Some(7u32)).to_string(), "7");
    }

    #[test]
    fn string_escapes() {
        let s = "a\"b\\c\nd\re\tf\u{8}g\u{c}h\u{1}i\u{1f}j\u{7f}k/é€😀";
        assert_eq!(
            Json::from(s).to_string(),
            r#""a\"b\\c\nd\re\tf\bg\fh\u0001i\u001fj\u007fk/é€😀""#
        );
        assert_eq!(Json::from("").to_string(), r#""""#);
    }

    #[test]
    fn nesting_keeps_order() {
        let v = Json::obj([
            ("z", Json::arr([1u32, 2, 3])),
            ("a", Json::obj([("k\"ey", Json::from("v"))])),
            ("e", Json::Arr(vec![])),
            ("o", Json::Obj(vec![])),
        ]);
        assert_eq!(
            v.to_string(),
            r#"{"z":[1,2,3],"a":{"k\"ey":"v"},"e":[],"o":{}}"#
        );
    }
}
