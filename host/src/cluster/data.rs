//! How written documents are laid out in Redis, and the two scripts that read and write
//! them atomically:
//!
//! - `<prefix>:data:version`: a counter; every write takes the next value as its version.
//! - `<prefix>:data:log`: a sorted set of written paths (a JSON array of keys, e.g.
//!   `["users","alice"]`) scored by the version of their last write.
//! - `<prefix>:data:docs`: a hash from the same paths to `<version>\n<document JSON>` (an
//!   empty document is a removal).
//! - every write publishes its version on `<prefix>:data`.
//!
//! Instances apply the writes they have not seen in version order, so all of them hold the
//! same documents; per path, the last writer wins. A write at a path supersedes earlier
//! writes below it, which the script drops, so the log holds one entry per live path.

use crate::store::Write;

/// The pub/sub channel of data writes.
pub(super) fn channel(prefix: &str) -> String {
    format!("{prefix}:data")
}

fn keys(prefix: &str) -> [String; 3] {
    [
        format!("{prefix}:data:version"),
        format!("{prefix}:data:log"),
        format!("{prefix}:data:docs"),
    ]
}

/// KEYS: version, log, docs. ARGV: path key, document ("" = removal), channel, prefix of the
/// keys of the paths below. Returns the write's version.
const WRITE: &str = r#"
local v = redis.call('INCR', KEYS[1])
local below = ARGV[4]
for _, m in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  if string.sub(m, 1, string.len(below)) == below then
    redis.call('ZREM', KEYS[2], m)
    redis.call('HDEL', KEYS[3], m)
  end
end
redis.call('ZADD', KEYS[2], v, ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], v .. '\n' .. ARGV[2])
redis.call('PUBLISH', ARGV[3], v)
return v
"#;

/// KEYS: version, log, docs. ARGV: the reader's version. Raises the counter to the reader's
/// version if Redis lost it (restarted without persistence), then returns the entries newer
/// than the reader's version, oldest first, as `[path, entry, path, entry, …]`.
const READ: &str = r#"
local mine = tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current < mine then redis.call('SET', KEYS[1], mine) end
local out = {}
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. ARGV[1], '+inf')) do
  table.insert(out, m)
  table.insert(out, redis.call('HGET', KEYS[3], m) or '')
end
return out
"#;

/// The `EVAL` of a write.
pub(super) fn write_cmd(prefix: &str, write: &Write) -> redis::Cmd {
    let path_key = serde_json::to_string(&write.path).unwrap_or_else(|_| "[]".into());
    // `["users"` + `,`: the keys of every path below `users`; the root's `[` is every path.
    let below = match path_key.strip_suffix(']') {
        Some(open) if !write.path.is_empty() => format!("{open},"),
        _ => "[".into(),
    };
    let doc = write
        .value
        .as_ref()
        .map(|v| v.to_string())
        .unwrap_or_default();
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(WRITE).arg(3);
    for k in keys(prefix) {
        cmd.arg(k);
    }
    cmd.arg(path_key).arg(doc).arg(channel(prefix)).arg(below);
    cmd
}

/// The `EVAL` that reads the writes after `version`.
pub(super) fn read_cmd(prefix: &str, version: u64) -> redis::Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(READ).arg(3);
    for k in keys(prefix) {
        cmd.arg(k);
    }
    cmd.arg(version);
    cmd
}

/// Decodes the reply of [`read_cmd`] into writes in version order.
pub(super) fn decode(reply: Vec<String>) -> Result<Vec<Write>, String> {
    let mut writes = Vec::with_capacity(reply.len() / 2);
    for pair in reply.chunks(2) {
        let [path, entry] = pair else {
            return Err("odd reply from redis".into());
        };
        let path: Vec<String> =
            serde_json::from_str(path).map_err(|e| format!("bad path key {path}: {e}"))?;
        let (version, doc) = entry
            .split_once('\n')
            .ok_or_else(|| format!("bad entry for {path:?}"))?;
        let version: u64 = version
            .parse()
            .map_err(|e| format!("bad version for {path:?}: {e}"))?;
        let value = if doc.is_empty() {
            None
        } else {
            Some(serde_json::from_str(doc).map_err(|e| format!("bad document for {path:?}: {e}"))?)
        };
        writes.push(Write {
            path,
            value,
            version,
        });
    }
    writes.sort_by_key(|w| w.version);
    Ok(writes)
}
