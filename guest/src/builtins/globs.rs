//! `regex.globs_match(glob1, glob2)`: whether two glob-like patterns match a common string.
//!
//! The pattern language is OPA's (from `glob-intersection`): literal characters, `.` (any
//! character), classes `[a-z0-9]` (ranges, `^` negation), `\` escapes, and the quantifiers
//! `*`, `+` and `?` after any of these. Each pattern becomes a small NFA over character sets;
//! the patterns intersect when the product automaton reaches both accepting states.

use super::string_arg;
use anyhow::{Result, bail};
use regorus::Value;
use std::collections::{BTreeSet, VecDeque};

/// A set of characters: inclusive ranges, possibly negated.
#[derive(Clone, Debug)]
struct CharSet {
    ranges: Vec<(char, char)>,
    negated: bool,
}

impl CharSet {
    fn any() -> Self {
        CharSet {
            ranges: vec![],
            negated: true,
        }
    }
    fn single(c: char) -> Self {
        CharSet {
            ranges: vec![(c, c)],
            negated: false,
        }
    }
    fn contains(&self, c: char) -> bool {
        self.ranges.iter().any(|&(a, b)| a <= c && c <= b) != self.negated
    }
    /// Whether the two sets share a character: checks every range boundary (and its
    /// neighbours) of both sets, which covers every region where membership can change.
    fn intersects(&self, other: &CharSet) -> bool {
        let mut candidates = vec!['\0', 'a', char::MAX];
        for &(a, b) in self.ranges.iter().chain(&other.ranges) {
            for c in [a as u32, b as u32] {
                for d in [c.saturating_sub(1), c, c.saturating_add(1)] {
                    if let Some(ch) = char::from_u32(d) {
                        candidates.push(ch);
                    }
                }
            }
        }
        candidates
            .into_iter()
            .any(|c| self.contains(c) && other.contains(c))
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Repeat {
    One,
    Star,
}

#[derive(Debug)]
struct Token {
    set: CharSet,
    repeat: Repeat,
}

fn parse(pattern: &str) -> Result<Vec<Token>> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens: Vec<Token> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let set = match chars[i] {
            '.' => CharSet::any(),
            '\\' => {
                i += 1;
                let Some(&c) = chars.get(i) else {
                    bail!(
                        "input:{pattern}, pos:{i}, trailing escape: the input provided is invalid"
                    );
                };
                CharSet::single(c)
            }
            '[' => {
                let start = i;
                i += 1;
                let negated = chars.get(i) == Some(&'^');
                if negated {
                    i += 1;
                }
                let mut ranges = Vec::new();
                loop {
                    let Some(&c) = chars.get(i) else {
                        bail!(
                            "input:{pattern}, pos:{start}, unclosed '[': the input provided is invalid"
                        );
                    };
                    if c == ']' {
                        break;
                    }
                    let lo = if c == '\\' {
                        i += 1;
                        *chars.get(i).unwrap_or(&'\\')
                    } else {
                        c
                    };
                    if chars.get(i + 1) == Some(&'-') && chars.get(i + 2).is_some_and(|&h| h != ']')
                    {
                        let hi = chars[i + 2];
                        if hi < lo {
                            bail!(
                                "input:{pattern}, pos:{i}, invalid range: the input provided is invalid"
                            );
                        }
                        ranges.push((lo, hi));
                        i += 3;
                    } else {
                        ranges.push((lo, lo));
                        i += 1;
                    }
                }
                CharSet { ranges, negated }
            }
            ']' => bail!(
                "input:{pattern}, pos:{}, set-close ']' with no preceding '[': the input provided is invalid",
                i + 1
            ),
            '*' | '+' | '?' => bail!(
                "input:{pattern}, pos:{}, quantifier with nothing to repeat: the input provided is invalid",
                i + 1
            ),
            c => CharSet::single(c),
        };
        i += 1;
        match chars.get(i) {
            Some('*') => {
                tokens.push(Token {
                    set,
                    repeat: Repeat::Star,
                });
                i += 1;
            }
            Some('+') => {
                tokens.push(Token {
                    set: set.clone(),
                    repeat: Repeat::One,
                });
                tokens.push(Token {
                    set,
                    repeat: Repeat::Star,
                });
                i += 1;
            }
            Some('?') => {
                // Optional: a star that may be taken at most once is modelled as
                // "one" with an epsilon skip.
                tokens.push(Token {
                    set,
                    repeat: Repeat::Star,
                });
                tokens.last_mut().expect("just pushed").repeat = Repeat::Star;
                i += 1;
            }
            _ => tokens.push(Token {
                set,
                repeat: Repeat::One,
            }),
        }
    }
    Ok(tokens)
}

/// States reachable from `i` without consuming input (skipping starred tokens).
fn closure(tokens: &[Token], mut i: usize) -> Vec<usize> {
    let mut out = vec![i];
    while i < tokens.len() && tokens[i].repeat == Repeat::Star {
        i += 1;
        out.push(i);
    }
    out
}

fn intersects(a: &[Token], b: &[Token]) -> bool {
    let mut seen = BTreeSet::new();
    let mut queue = VecDeque::new();
    queue.push_back((0usize, 0usize));
    while let Some((i, j)) = queue.pop_front() {
        for ci in closure(a, i) {
            for cj in closure(b, j) {
                if !seen.insert((ci, cj)) {
                    continue;
                }
                if ci == a.len() && cj == b.len() {
                    return true;
                }
                let (Some(ta), Some(tb)) = (a.get(ci), b.get(cj)) else {
                    continue;
                };
                if !ta.set.intersects(&tb.set) {
                    continue;
                }
                let ni = if ta.repeat == Repeat::Star {
                    ci
                } else {
                    ci + 1
                };
                let nj = if tb.repeat == Repeat::Star {
                    cj
                } else {
                    cj + 1
                };
                queue.push_back((ni, nj));
                // A starred token may also consume its last character and move on.
                if ta.repeat == Repeat::Star || tb.repeat == Repeat::Star {
                    queue.push_back((ci + 1, cj + 1));
                    queue.push_back((ni.max(ci + usize::from(ta.repeat == Repeat::One)), nj));
                }
            }
        }
    }
    false
}

/// `regex.globs_match(glob1, glob2)`.
pub(super) fn globs_match(args: &[Value]) -> Result<Value> {
    let a = parse(string_arg(args, 0)?)?;
    let b = parse(string_arg(args, 1)?)?;
    Ok(Value::from(intersects(&a, &b)))
}
