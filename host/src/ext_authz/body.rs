//! `parsed_body` and `truncated_body` (`envoyauth.getParsedBody`): JSON bodies as JSON,
//! form and `multipart/form-data` bodies as maps of value lists.

use memchr::memmem;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::HashMap;

/// Envoy's word that the body it forwards was cut at `max_request_bytes`.
const PARTIAL_BODY_HEADER: &str = "x-envoy-auth-partial-body";

/// The most headers one part of a multipart body may have (`httparse` reads them into an
/// array of this size).
const MAX_PART_HEADERS: usize = 64;

/// The body encodings the plugin parses.
enum BodyKind {
    Json,
    Form,
    Multipart,
}

/// `parsed_body` and `truncated_body` for a request's headers and body (`body` when set,
/// else `raw_body`): a body Envoy marked partial, or shorter than its `content-length`, is
/// truncated and not parsed; JSON is parsed as JSON, `application/x-www-form-urlencoded`
/// and `multipart/form-data` as maps of value lists; anything else (gRPC needs proto
/// descriptors, which are not configured) is `null`. `Err` carries the message for a body
/// that claims an encoding and is not in it, or a `content-length` that is not a number.
pub(super) fn parsed_body(
    headers: &HashMap<String, String>,
    body: &str,
    raw_body: &[u8],
) -> Result<(Value, bool), String> {
    if headers
        .get(PARTIAL_BODY_HEADER)
        .is_some_and(|v| v == "true")
    {
        return Ok((Value::Null, true));
    }
    let Some(content_type) = headers.get("content-type") else {
        return Ok((Value::Null, false));
    };
    let payload = if !body.is_empty() {
        body.as_bytes()
    } else {
        raw_body
    };
    let kind = if content_type.contains("application/json") {
        BodyKind::Json
    } else if content_type.contains("application/grpc") {
        return Ok((Value::Null, false));
    } else if content_type.contains("application/x-www-form-urlencoded") {
        BodyKind::Form
    } else if content_type.contains("multipart/form-data") {
        BodyKind::Multipart
    } else {
        return Ok((Value::Null, false));
    };
    if payload.is_empty() {
        return Ok((Value::Null, false));
    }
    if let Some(length) = headers.get("content-length") {
        let length: i64 = length
            .parse()
            .map_err(|e| format!("invalid content-length {length:?}: {e}"))?;
        let have = i64::try_from(payload.len()).unwrap_or(i64::MAX);
        if length != -1 && length > have {
            return Ok((Value::Null, true));
        }
    }
    let data = match kind {
        BodyKind::Json => serde_json::from_str(&lossy(payload)).map_err(|e| e.to_string())?,
        BodyKind::Form => Value::Object(super::input::form_values(payload)?),
        BodyKind::Multipart => {
            let media_type: mime::Mime = content_type
                .trim()
                .parse()
                .map_err(|e: mime::FromStrError| e.to_string())?;
            match media_type.get_param(mime::BOUNDARY) {
                Some(boundary) => multipart_form(payload, boundary.as_str().as_bytes())?,
                None => Value::Null,
            }
        }
    };
    Ok((data, false))
}

/// The form fields of a `multipart/form-data` body, as Go's `multipart.Reader` gives them
/// to the plugin: each part whose `Content-Disposition` is `form-data` with a `name` gives
/// that name one value, parsed JSON when the part's `Content-Type` says
/// `application/json`, else its text. A preamble before the first delimiter line and
/// whatever follows the close delimiter are skipped; lines end in CRLF, or in LF alone
/// when the first delimiter line does. (Go also undoes `quoted-printable` part encodings;
/// this does not.)
fn multipart_form(payload: &[u8], boundary: &[u8]) -> Result<Value, String> {
    if boundary.is_empty() {
        return Err("multipart: boundary is empty".to_owned());
    }
    let dash = [b"--", boundary].concat();
    let mut form = Map::new();

    // The first delimiter line: `--boundary` at a line start, then the close (`--`), or
    // white space and a line end.
    let mut nl: &[u8] = b"\r\n";
    let mut next_part = None;
    for at in memmem::find_iter(payload, &dash) {
        if at > 0 && payload.get(at - 1) != Some(&b'\n') {
            continue;
        }
        let after = payload.get(at + dash.len()..).unwrap_or_default();
        if after.starts_with(b"--") {
            return Ok(Value::Object(form));
        }
        let after = skip_lwsp(after);
        if let Some(part) = after.strip_prefix(b"\r\n") {
            next_part = Some(part);
            break;
        }
        if let Some(part) = after.strip_prefix(b"\n") {
            nl = b"\n";
            next_part = Some(part);
            break;
        }
    }
    let mut part = next_part.ok_or_else(|| "multipart: NextPart: EOF".to_owned())?;

    let delimiter = [nl, dash.as_slice()].concat();
    loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_PART_HEADERS];
        let (header_len, headers) = match httparse::parse_headers(part, &mut headers) {
            Ok(httparse::Status::Complete(parsed)) => parsed,
            Ok(httparse::Status::Partial) => {
                return Err("multipart: unexpected EOF in part headers".to_owned());
            }
            Err(e) => return Err(format!("multipart: part headers: {e}")),
        };
        let rest = part.get(header_len..).unwrap_or_default();
        let (body, after) =
            part_body(rest, &dash, &delimiter).ok_or_else(|| "unexpected EOF".to_owned())?;
        add_field(&mut form, headers, body)?;
        if after.starts_with(b"--") {
            return Ok(Value::Object(form));
        }
        part = skip_lwsp(after)
            .strip_prefix(nl)
            .ok_or_else(|| "multipart: malformed delimiter line".to_owned())?;
    }
}

/// A part's body and what follows the `--boundary` that ends it. The body ends at the
/// first `delimiter` (a line end and `--boundary`; or `--boundary` at once, for an empty
/// body) that white space, a line end, `--` or the end of the payload follows.
fn part_body<'a>(buf: &'a [u8], dash: &[u8], delimiter: &[u8]) -> Option<(&'a [u8], &'a [u8])> {
    let ends_delimiter = |after: &[u8]| {
        matches!(after.first(), None | Some(b' ' | b'\t' | b'\r' | b'\n'))
            || after.starts_with(b"--")
    };
    if let Some(after) = buf.strip_prefix(dash).filter(|after| ends_delimiter(after)) {
        return Some((&[], after));
    }
    memmem::find_iter(buf, delimiter).find_map(|at| {
        let after = buf.get(at + delimiter.len()..)?;
        if !ends_delimiter(after) {
            return None;
        }
        Some((buf.get(..at)?, after))
    })
}

/// Adds a part to the form when its `Content-Disposition` names a form field.
fn add_field(
    form: &mut Map<String, Value>,
    headers: &[httparse::Header<'_>],
    body: &[u8],
) -> Result<(), String> {
    let header = |name: &str| {
        headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| lossy(h.value))
    };
    let Some(name) = header("content-disposition").and_then(|d| form_field_name(&d)) else {
        return Ok(());
    };
    let value = if header("content-type").is_some_and(|t| t.contains("application/json")) {
        serde_json::from_str(&lossy(body)).map_err(|e| e.to_string())?
    } else {
        Value::String(lossy(body).into_owned())
    };
    if let Value::Array(list) = form.entry(name).or_insert_with(|| Value::Array(Vec::new())) {
        list.push(value);
    }
    Ok(())
}

/// The non-empty `name` of a `form-data` disposition (Go's `Part.FormName`). A
/// `Content-Disposition` value is a type and `; name=value` parameters, as a media type is
/// without its subtype, so it is read with `mime` as the subtype of a placeholder type.
fn form_field_name(disposition: &str) -> Option<String> {
    let as_media_type: mime::Mime = format!("x/{}", disposition.trim()).parse().ok()?;
    if as_media_type.essence_str() != "x/form-data" {
        return None;
    }
    let name = as_media_type.get_param("name")?.as_str();
    (!name.is_empty()).then(|| name.to_owned())
}

/// `b` without its leading spaces and tabs (the white space a delimiter line may carry).
fn skip_lwsp(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !matches!(c, b' ' | b'\t'))
        .unwrap_or(b.len());
    b.get(start..).unwrap_or_default()
}

fn lossy(bytes: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `parsed_body` for a body with its `content-type` and any other headers.
    fn parse_with(
        content_type: &str,
        body: &str,
        more: &[(&str, &str)],
    ) -> Result<(Value, bool), String> {
        let headers = [("content-type", content_type)]
            .iter()
            .chain(more)
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        parsed_body(&headers, body, &[])
    }

    fn parse(content_type: &str, body: &str) -> Result<(Value, bool), String> {
        parse_with(content_type, body, &[])
    }

    #[test]
    fn json_bodies_are_parsed() {
        assert_eq!(
            parse(
                "application/json",
                r#"{"firstname": "Charlie", "lastname": "Opa"}"#
            ),
            Ok((json!({"firstname": "Charlie", "lastname": "Opa"}), false))
        );
        // Any JSON value, and `application/json; charset=utf-8` too.
        assert_eq!(
            parse("application/json; charset=utf-8", r#"["hello", 42, null]"#),
            Ok((json!(["hello", 42, null]), false))
        );
        // From raw_body when body is empty (pack_as_bytes).
        let headers = [("content-type".to_owned(), "application/json".to_owned())].into();
        assert_eq!(
            parsed_body(&headers, "", br#"{"a": [1, 2]}"#),
            Ok((json!({"a": [1, 2]}), false))
        );
        // Empty: null, not an error.
        assert_eq!(parse("application/json", ""), Ok((Value::Null, false)));
    }

    #[test]
    fn a_body_that_claims_json_and_is_not_is_an_error() {
        let err = parse("application/json", r#"["foo" : 42}"#).expect_err("not JSON");
        assert!(!err.is_empty());
        assert!(parse("application/json", r#"{"a":1} x"#).is_err());
    }

    #[test]
    fn truncated_bodies_are_not_parsed() {
        let json_with = |more: &[(&str, &str)]| parse_with("application/json", "true", more);
        // Shorter than its content-length.
        assert_eq!(
            json_with(&[("content-length", "1000")]),
            Ok((Value::Null, true))
        );
        // A content-length of -1 or the body's own length is not truncation.
        assert_eq!(
            json_with(&[("content-length", "-1")]),
            Ok((json!(true), false))
        );
        assert_eq!(
            json_with(&[("content-length", "4")]),
            Ok((json!(true), false))
        );
        assert_eq!(
            json_with(&[("content-length", "+4")]),
            Ok((json!(true), false))
        );
        // A content-length that is not a number is an error.
        assert_eq!(
            json_with(&[("content-length", "abc")]),
            Err(r#"invalid content-length "abc": invalid digit found in string"#.to_owned())
        );
        assert_eq!(
            json_with(&[("content-length", "99999999999999999999")]),
            Err(
                r#"invalid content-length "99999999999999999999": number too large to fit in target type"#
                    .to_owned()
            )
        );
        // Envoy's partial-body mark wins, whatever the body (even broken JSON).
        let cut = |mark: &str| {
            parse_with(
                "application/json",
                r#"{"cut": "#,
                &[("x-envoy-auth-partial-body", mark)],
            )
        };
        assert_eq!(cut("true"), Ok((Value::Null, true)));
        assert!(cut("false").is_err());
        // Forms and multipart bodies are checked the same way.
        assert_eq!(
            parse_with(
                "application/x-www-form-urlencoded",
                "a=1",
                &[("content-length", "10")]
            ),
            Ok((Value::Null, true))
        );
        assert_eq!(
            parse_with(
                "multipart/form-data; boundary=\"unclosed",
                "--x",
                &[("content-length", "10")]
            ),
            Ok((Value::Null, true))
        );
    }

    #[test]
    fn form_bodies_are_maps_of_lists() {
        assert_eq!(
            parse(
                "application/x-www-form-urlencoded",
                "firstname=foo&lastname=bar&lastname=foo+bar%21&flag"
            ),
            Ok((
                json!({"firstname": ["foo"], "lastname": ["bar", "foo bar!"], "flag": [""]}),
                false
            ))
        );
        // A `%` that starts no escape stays as it is.
        assert_eq!(
            parse("application/x-www-form-urlencoded", "a=%zz"),
            Ok((json!({"a": ["%zz"]}), false))
        );
        assert_eq!(
            parse("application/x-www-form-urlencoded", "a=1;b=2"),
            Err("invalid semicolon separator in query".to_owned())
        );
    }

    #[test]
    fn multipart_bodies_are_maps_of_lists() {
        // The plugin's own example: LF line ends, a JSON part, text after the close.
        let body = "--foo\nContent-Disposition: form-data; name=\"foo\"\nContent-Type: text/plain\n\nbar\n--foo\nContent-Disposition: form-data; name=\"bar\"\nContent-Type: application/json;\n\n{\"name\": \"bar\"}\n--foo--\n\t\t\t\t";
        assert_eq!(
            parse("multipart/form-data; boundary=foo", body),
            Ok((json!({"foo": ["bar"], "bar": [{"name": "bar"}]}), false))
        );
        // CRLF, a preamble, a repeated name, a quoted boundary, a part without a name.
        let body = "preamble\r\n--b c\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx y\r\nz\r\n--b c\r\ncontent-disposition: form-data; name=a\r\n\r\n\r\n--b c\r\nContent-Disposition: attachment\r\n\r\nignored\r\n--b c--";
        assert_eq!(
            parse("multipart/form-data; boundary=\"b c\"", body),
            Ok((json!({"a": ["x y\r\nz", ""]}), false))
        );
        // Upper-case parameter names and disposition; other parameters; a filename; white space
        // after a delimiter; a boundary-like line inside a body.
        let body = "--foo \r\nContent-Disposition: FORM-DATA; name=\"f\"; filename=\"a.txt\"\r\n\r\n--foobar\r\n--foo\r\n\r\nno disposition\r\n--foo--\r\n";
        assert_eq!(
            parse("multipart/form-data; charset=utf-8; Boundary=foo", body),
            Ok((json!({"f": ["--foobar"]}), false))
        );
        // No parts; a part whose body is empty up to the closing boundary.
        assert_eq!(
            parse("multipart/form-data; boundary=foo", "--foo--"),
            Ok((json!({}), false))
        );
        let body = "--foo\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n--foo--\r\n";
        assert_eq!(
            parse("multipart/form-data; boundary=foo", body),
            Ok((json!({"a": [""]}), false))
        );
        // No boundary parameter: not parsed.
        assert_eq!(
            parse("multipart/form-data", "--x"),
            Ok((Value::Null, false))
        );
    }

    #[test]
    fn broken_multipart_bodies_are_errors() {
        let multipart = |body: &str| parse("multipart/form-data; boundary=foo", body);
        assert_eq!(
            multipart("--foo\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nno end"),
            Err("unexpected EOF".to_owned())
        );
        assert_eq!(
            multipart("no parts"),
            Err("multipart: NextPart: EOF".to_owned())
        );
        assert_eq!(
            multipart("--foo\r\nContent-Disposition: form-data"),
            Err("multipart: unexpected EOF in part headers".to_owned())
        );
        assert_eq!(
            multipart("--foo\r\nnot a header\r\n\r\nx\r\n--foo--"),
            Err("multipart: part headers: invalid header name".to_owned())
        );
        assert_eq!(
            multipart("--foo\r\n\r\nx\r\n--foo\rx\r\n--foo--"),
            Err("multipart: malformed delimiter line".to_owned())
        );
        assert_eq!(
            multipart("--foo\r\n\r\nx\r\n--foo"),
            Err("multipart: malformed delimiter line".to_owned())
        );
        let bad_json = "--foo\r\nContent-Disposition: form-data; name=\"a\"\r\nContent-Type: application/json\r\n\r\n{\r\n--foo--\r\n";
        assert!(multipart(bad_json).is_err());
        assert_eq!(
            parse("multipart/form-data; boundary=\"foo", "x"),
            Err(r#"mime parse error: a quote (") was missing from a parameter value"#.to_owned())
        );
        assert_eq!(
            parse("multipart/form-data; boundary=\"\"", "x"),
            Err(r#"mime parse error: a quote (") was missing from a parameter value"#.to_owned())
        );
        assert_eq!(
            parse("multipart/form-data; boundary=", "x"),
            Err("multipart: boundary is empty".to_owned())
        );
        let many_headers = format!("--foo\r\n{}\r\nx\r\n--foo--", "a: b\r\n".repeat(65));
        assert_eq!(
            multipart(&many_headers),
            Err("multipart: part headers: too many headers".to_owned())
        );
    }

    #[test]
    fn content_types_parse_as_mime_parses_them() {
        let body = "--a\"b\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--a\"b--";
        // A backslash escape in a quoted value is not undone: `\"` ends the value.
        assert_eq!(
            parse(" multipart/form-data; boundary=\"a\\\"b\" ", body),
            Err("mime parse error: an invalid token was encountered, 62 at position 34".to_owned())
        );
        // White space before a `;` or around a `=` is refused.
        assert!(parse("multipart/form-data ; boundary=foo", "--foo--").is_err());
        assert!(parse("multipart/form-data; boundary = foo", "--foo--").is_err());
        // A repeated parameter: the first one counts.
        assert_eq!(
            parse(
                "multipart/form-data; boundary=foo; boundary=bar",
                "--foo\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--foo--"
            ),
            Ok((json!({"x": ["1"]}), false))
        );
    }

    #[test]
    fn no_prefix_of_a_multipart_body_panics() {
        let body = "pre\r\n--foo \r\nContent-Disposition: form-data; name=\"a\"\r\nContent-Type: application/json\r\n\r\n{\"k\": [1]}\r\n--foo\r\n\r\n--foo\r\nContent-Disposition: form-data; name=b\r\n\r\nx\r\n--foo--\r\n";
        for end in 0..=body.len() {
            let prefix = body.get(..end).unwrap_or_default();
            for boundary in ["foo", "fo", "o", "\"\"", "-"] {
                let content_type = format!("multipart/form-data; boundary={boundary}");
                let _ = parse(&content_type, prefix);
            }
        }
        assert_eq!(
            parse("multipart/form-data; boundary=foo", body),
            Ok((json!({"a": [{"k": [1]}], "b": ["x"]}), false))
        );
    }

    #[test]
    fn form_field_names_come_from_form_data_dispositions() {
        assert_eq!(
            form_field_name(r#" form-data; name="a b"; filename="x.txt" "#),
            Some("a b".to_owned())
        );
        assert_eq!(form_field_name("form-data;name=a"), Some("a".to_owned()));
        assert_eq!(form_field_name("form-data; NAME=A"), Some("A".to_owned()));
        assert_eq!(form_field_name("form-data; name=\"\""), None);
        assert_eq!(form_field_name("form-data"), None);
        assert_eq!(form_field_name("attachment; name=a"), None);
        assert_eq!(form_field_name("form-data; name=\"a"), None);
        assert_eq!(form_field_name(""), None);
    }

    #[test]
    fn other_content_types_are_not_parsed() {
        for content_type in ["text/plain", "application/grpc", "Application/JSON"] {
            assert_eq!(
                parse(content_type, "{\"a\": 1}"),
                Ok((Value::Null, false)),
                "{content_type}"
            );
        }
        assert_eq!(
            parsed_body(&HashMap::new(), "{}", &[]),
            Ok((Value::Null, false))
        );
    }
}
