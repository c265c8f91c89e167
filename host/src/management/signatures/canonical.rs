//! OPA's canonical form of the structured files it hashes (`data.json`, `data.yaml`,
//! `.manifest`): JSON with its numbers kept as written (else YAML), printed compact with
//! keys sorted byte-wise and Go's string escaping without HTML escaping.

use serde_json::Value;
use std::collections::BTreeMap;

/// Nesting limit of the JSON files hashed (hostile input must not exhaust the stack).
const MAX_DEPTH: usize = 512;

/// A JSON value with numbers kept as their text.
enum Json {
    Null,
    Bool(bool),
    Num(String),
    Str(String),
    Arr(Vec<Json>),
    Obj(BTreeMap<String, Json>),
}

/// OPA's hashed form of a structured file: BOM stripped; JSON (numbers verbatim), else
/// YAML; then compact, keys sorted byte-wise, Go's string escaping without HTML escaping.
pub(super) fn canonical(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut parser = Parser {
        b: bytes,
        i: 0,
        too_deep: false,
    };
    let parsed = parser.value(0);
    if parser.too_deep {
        return Err(format!("JSON nested deeper than {MAX_DEPTH} levels"));
    }
    parser.ws();
    let value = match parsed.filter(|_| parser.i == bytes.len()) {
        Some(v) => v,
        None => {
            let v: Value = yaml_serde::from_slice(bytes).map_err(|e| e.to_string())?;
            from_value(&v)
        }
    };
    let mut out = Vec::new();
    write_json(&value, &mut out);
    Ok(out)
}

/// YAML's values as Go's JSON encoder renders them (floats as `strconv` 'f', or 'e' out
/// of [1e-6, 1e21)).
fn from_value(v: &Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Number(n) => Json::Num(match n.as_f64() {
            Some(f) if n.is_f64() => go_float(f),
            _ => n.to_string(),
        }),
        Value::String(s) => Json::Str(s.clone()),
        Value::Array(a) => Json::Arr(a.iter().map(from_value).collect()),
        Value::Object(o) => Json::Obj(o.iter().map(|(k, v)| (k.clone(), from_value(v))).collect()),
    }
}

pub(super) fn go_float(f: f64) -> String {
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let s = format!("{f:e}");
        if s.contains("e-") {
            s
        } else {
            s.replacen('e', "e+", 1)
        }
    } else {
        format!("{f}")
    }
}

fn write_json(v: &Json, out: &mut Vec<u8>) {
    match v {
        Json::Null => out.extend_from_slice(b"null"),
        Json::Bool(b) => out.extend_from_slice(if *b {
            b"true".as_slice()
        } else {
            b"false".as_slice()
        }),
        Json::Num(n) => out.extend_from_slice(n.as_bytes()),
        Json::Str(s) => write_str(s, out),
        Json::Arr(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json(item, out);
            }
            out.push(b']');
        }
        Json::Obj(map) => {
            out.push(b'{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(k, out);
                out.push(b':');
                write_json(item, out);
            }
            out.push(b'}');
        }
    }
}

/// Go's `encoding/json` string escaping with `SetEscapeHTML(false)`.
fn write_str(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            '\0'..='\u{1f}' | '\u{2028}' | '\u{2029}' => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes());
            }
            _ => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    out.push(b'"');
}

/// A strict JSON parser (Go's `json.Valid` grammar) decoding strings as Go does.
struct Parser<'a> {
    b: &'a [u8],
    i: usize,
    too_deep: bool,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while matches!(self.b.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        let hit = self.b.get(self.i) == Some(&c);
        self.i += usize::from(hit);
        hit
    }

    fn value(&mut self, depth: usize) -> Option<Json> {
        self.ws();
        let c = *self.b.get(self.i)?;
        if matches!(c, b'{' | b'[') && depth >= MAX_DEPTH {
            self.too_deep = true;
            return None;
        }
        match c {
            b'{' => {
                self.i += 1;
                let mut map = BTreeMap::new();
                self.ws();
                if self.eat(b'}') {
                    return Some(Json::Obj(map));
                }
                loop {
                    self.ws();
                    if !self.eat(b'"') {
                        return None;
                    }
                    let key = self.string()?;
                    self.ws();
                    if !self.eat(b':') {
                        return None;
                    }
                    let item = self.value(depth + 1)?;
                    map.insert(key, item); // a duplicate key: the last one wins
                    self.ws();
                    if self.eat(b'}') {
                        return Some(Json::Obj(map));
                    }
                    if !self.eat(b',') {
                        return None;
                    }
                }
            }
            b'[' => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.eat(b']') {
                    return Some(Json::Arr(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    self.ws();
                    if self.eat(b']') {
                        return Some(Json::Arr(items));
                    }
                    if !self.eat(b',') {
                        return None;
                    }
                }
            }
            b'"' => {
                self.i += 1;
                self.string().map(Json::Str)
            }
            b't' => self.literal(b"true", Json::Bool(true)),
            b'f' => self.literal(b"false", Json::Bool(false)),
            b'n' => self.literal(b"null", Json::Null),
            _ => self.number(),
        }
    }

    fn literal(&mut self, word: &[u8], v: Json) -> Option<Json> {
        let hit = self.b[self.i..].starts_with(word);
        self.i += if hit { word.len() } else { 0 };
        hit.then_some(v)
    }

    fn digits(&mut self) -> bool {
        let start = self.i;
        while matches!(self.b.get(self.i), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        self.i > start
    }

    fn number(&mut self) -> Option<Json> {
        let start = self.i;
        self.eat(b'-');
        match self.b.get(self.i) {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return None,
        }
        if self.eat(b'.') && !self.digits() {
            return None;
        }
        if self.eat(b'e') || self.eat(b'E') {
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            if !self.digits() {
                return None;
            }
        }
        Some(Json::Num(
            String::from_utf8_lossy(&self.b[start..self.i]).into_owned(),
        ))
    }

    fn hex4(&mut self) -> Option<u32> {
        let text = std::str::from_utf8(self.b.get(self.i..self.i + 4)?).ok()?;
        let v = u32::from_str_radix(text, 16)
            .ok()
            .filter(|_| text.bytes().all(|c| c.is_ascii_hexdigit()))?;
        self.i += 4;
        Some(v)
    }

    /// The rest of a string after its opening quote. Invalid UTF-8 and lone surrogates
    /// become U+FFFD, one per bad byte, as in Go.
    fn string(&mut self) -> Option<String> {
        let mut out = String::new();
        loop {
            let c = *self.b.get(self.i)?;
            self.i += 1;
            match c {
                b'"' => return Some(out),
                b'\\' => {
                    let e = *self.b.get(self.i)?;
                    self.i += 1;
                    out.push(match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let u = self.hex4()?;
                            let pair = if (0xD800..0xDC00).contains(&u)
                                && self.b[self.i..].starts_with(b"\\u")
                            {
                                let save = self.i;
                                self.i += 2;
                                match self.hex4()? {
                                    l @ 0xDC00..0xE000 => char::from_u32(
                                        0x10000 + ((u - 0xD800) << 10) + (l - 0xDC00),
                                    ),
                                    _ => {
                                        self.i = save;
                                        None
                                    }
                                }
                            } else {
                                char::from_u32(u)
                            };
                            pair.unwrap_or('\u{FFFD}')
                        }
                        _ => return None,
                    });
                }
                0..=0x1f => return None,
                0x20..=0x7f => out.push(c as char),
                _ => {
                    let start = self.i - 1;
                    let chunk = &self.b[start..(start + 4).min(self.b.len())];
                    let valid = match std::str::from_utf8(chunk) {
                        Ok(s) => s,
                        Err(e) => {
                            std::str::from_utf8(&chunk[..e.valid_up_to()]).unwrap_or_default()
                        }
                    };
                    let ch = valid.chars().next().unwrap_or('\u{FFFD}');
                    out.push(ch);
                    if valid.is_empty() {
                        continue;
                    }
                    self.i = start + ch.len_utf8();
                }
            }
        }
    }
}
