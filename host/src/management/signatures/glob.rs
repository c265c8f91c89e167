//! Go's `filepath.Match` (Unix), the glob syntax of OPA's `signing.exclude_files`: `*` and
//! `?` never match `/`, `[...]` classes, `\\` escapes; no `**` and no `{a,b}`.

/// Go's `filepath.Match` (Unix): `*` and `?` never match `/`; a bad pattern matches nothing.
pub(super) fn glob_match(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    let (mut pattern, mut name) = (pattern.as_slice(), name.as_slice());
    'chunks: while !pattern.is_empty() {
        let (star, chunk, rest) = scan_chunk(pattern);
        pattern = rest;
        if star && chunk.is_empty() {
            return !name.contains(&'/');
        }
        if let Some(t) = match_chunk(chunk, name)
            && (t.is_empty() || !pattern.is_empty())
        {
            name = t;
            continue;
        }
        if star {
            let mut i = 0;
            while i < name.len() && name[i] != '/' {
                if let Some(t) = match_chunk(chunk, &name[i + 1..])
                    && (!pattern.is_empty() || t.is_empty())
                {
                    name = t;
                    continue 'chunks;
                }
                i += 1;
            }
        }
        return false;
    }
    name.is_empty()
}

/// Leading stars, then the pattern up to the next star outside a class.
fn scan_chunk(mut p: &[char]) -> (bool, &[char], &[char]) {
    let mut star = false;
    while p.first() == Some(&'*') {
        p = &p[1..];
        star = true;
    }
    let (mut in_range, mut i) = (false, 0);
    while i < p.len() {
        match p[i] {
            '\\' if i + 1 < p.len() => i += 1,
            '[' => in_range = true,
            ']' => in_range = false,
            '*' if !in_range => break,
            _ => {}
        }
        i += 1;
    }
    (star, &p[..i], &p[i..])
}

/// The rest of `s` after `chunk` matched its start; None on a mismatch or a bad pattern.
fn match_chunk<'a>(mut chunk: &[char], mut s: &'a [char]) -> Option<&'a [char]> {
    while let Some(&c) = chunk.first() {
        chunk = &chunk[1..];
        match c {
            '[' => {
                let (&r, rest) = s.split_first()?;
                s = rest;
                let negated = chunk.first() == Some(&'^');
                if negated {
                    chunk = &chunk[1..];
                }
                let (mut matched, mut ranges) = (false, 0);
                loop {
                    if chunk.first() == Some(&']') && ranges > 0 {
                        chunk = &chunk[1..];
                        break;
                    }
                    let (lo, rest) = class_char(chunk)?;
                    let (hi, rest) = match rest.first() {
                        Some(&'-') => class_char(&rest[1..])?,
                        _ => (lo, rest),
                    };
                    chunk = rest;
                    matched |= lo <= r && r <= hi;
                    ranges += 1;
                }
                if matched == negated {
                    return None;
                }
            }
            '?' => match s.split_first() {
                Some((&r, rest)) if r != '/' => s = rest,
                _ => return None,
            },
            _ => {
                let lit = if c == '\\' {
                    let (&l, rest) = chunk.split_first()?;
                    chunk = rest;
                    l
                } else {
                    c
                };
                match s.split_first() {
                    Some((&r, rest)) if r == lit => s = rest,
                    _ => return None,
                }
            }
        }
    }
    Some(s)
}

/// One (possibly escaped) character of a class; the class must go on after it.
fn class_char(chunk: &[char]) -> Option<(char, &[char])> {
    let chunk = match *chunk.first()? {
        '-' | ']' => return None,
        '\\' => &chunk[1..],
        _ => chunk,
    };
    let (&r, rest) = chunk.split_first()?;
    if rest.is_empty() {
        None
    } else {
        Some((r, rest))
    }
}
