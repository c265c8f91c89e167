//! `crypto.md5`, `crypto.sha1`, `crypto.sha256` and `crypto.hmac.*`.

use super::keys::Hash;
use super::{Builtin, string_arg};
use anyhow::Result;
use hmac::{Mac, SimpleHmac};
use regorus::Value;
use sha2::Digest;

pub(super) const BUILTINS: &[Builtin] = &[
    ("crypto.md5", 1, md5),
    ("crypto.sha1", 1, sha1),
    ("crypto.sha256", 1, sha256),
    ("crypto.hmac.md5", 2, hmac_md5),
    ("crypto.hmac.sha1", 2, hmac_sha1),
    ("crypto.hmac.sha256", 2, hmac_sha256),
    ("crypto.hmac.sha512", 2, hmac_sha512),
    ("crypto.hmac.equal", 2, hmac_equal),
];

fn hex(bytes: &[u8]) -> Value {
    Value::from(data_encoding::HEXLOWER.encode(bytes))
}

fn md5(args: &[Value]) -> Result<Value> {
    Ok(hex(&md5::Md5::digest(string_arg(args, 0)?.as_bytes())))
}

fn sha1(args: &[Value]) -> Result<Value> {
    Ok(hex(&Hash::Sha1.digest(string_arg(args, 0)?.as_bytes())))
}

fn sha256(args: &[Value]) -> Result<Value> {
    Ok(hex(&Hash::Sha256.digest(string_arg(args, 0)?.as_bytes())))
}

fn mac<D>(key: &[u8], msg: &[u8]) -> Vec<u8>
where
    D: Digest + digest::core_api::BlockSizeUser,
{
    let mut m = <SimpleHmac<D> as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    m.update(msg);
    m.finalize().into_bytes().to_vec()
}

/// HMAC of `msg` under `key` with `hash`.
pub(super) fn hmac(hash: Hash, key: &[u8], msg: &[u8]) -> Vec<u8> {
    match hash {
        Hash::Sha1 => mac::<sha1::Sha1>(key, msg),
        Hash::Sha256 => mac::<sha2::Sha256>(key, msg),
        Hash::Sha384 => mac::<sha2::Sha384>(key, msg),
        Hash::Sha512 => mac::<sha2::Sha512>(key, msg),
    }
}

fn hmac_md5(args: &[Value]) -> Result<Value> {
    let (msg, key) = (string_arg(args, 0)?, string_arg(args, 1)?);
    Ok(hex(&mac::<md5::Md5>(key.as_bytes(), msg.as_bytes())))
}

fn hmac_with(args: &[Value], hash: Hash) -> Result<Value> {
    let (msg, key) = (string_arg(args, 0)?, string_arg(args, 1)?);
    Ok(hex(&hmac(hash, key.as_bytes(), msg.as_bytes())))
}

fn hmac_sha1(args: &[Value]) -> Result<Value> {
    hmac_with(args, Hash::Sha1)
}

fn hmac_sha256(args: &[Value]) -> Result<Value> {
    hmac_with(args, Hash::Sha256)
}

fn hmac_sha512(args: &[Value]) -> Result<Value> {
    hmac_with(args, Hash::Sha512)
}

/// Constant-time comparison of two MACs.
fn hmac_equal(args: &[Value]) -> Result<Value> {
    let (a, b) = (
        string_arg(args, 0)?.as_bytes(),
        string_arg(args, 1)?.as_bytes(),
    );
    Ok(Value::from(constant_time_eq(a, b)))
}

/// Equality of two byte strings in time that depends only on their lengths.
pub(super) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The system's random source (WASI `random` in the component), for RSA-PSS salts.
pub(super) struct SystemRng;

impl rand_core::RngCore for SystemRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        getrandom::fill(dest).expect("the system random source failed");
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        getrandom::fill(dest).map_err(|e| {
            rand_core::Error::from(
                core::num::NonZeroU32::new(e.raw_os_error().unwrap_or(1) as u32)
                    .unwrap_or(core::num::NonZeroU32::MIN),
            )
        })
    }
}

impl rand_core::CryptoRng for SystemRng {}
