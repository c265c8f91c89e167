//! Search pagination tokens: opaque to the client, they carry where the next page starts and
//! a digest of the request they belong to (every field but `page.token`), so a follow-up
//! request that changed anything is refused, as the specification asks.

use data_encoding::BASE64URL_NOPAD;

/// The token of the page starting at `offset` of the request whose identity is `identity`.
pub fn token(offset: usize, identity: &[u8]) -> String {
    let text = format!("v1:{offset}:{:016x}", xxhash_rust::xxh3::xxh3_64(identity));
    BASE64URL_NOPAD.encode(text.as_bytes())
}

/// Where the page of `token` starts, if it belongs to the request of `identity`.
pub fn offset(token: &str, identity: &[u8]) -> Result<usize, String> {
    let invalid = || "`page.token` is not a token this PDP issued".to_string();
    let bytes = BASE64URL_NOPAD
        .decode(token.as_bytes())
        .map_err(|_| invalid())?;
    let text = std::str::from_utf8(&bytes).map_err(|_| invalid())?;
    let mut parts = text.split(':');
    let (Some("v1"), Some(offset), Some(digest), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid());
    };
    let offset: usize = offset.parse().map_err(|_| invalid())?;
    if digest != format!("{:016x}", xxhash_rust::xxh3::xxh3_64(identity)) {
        return Err(
            "`page.token` belongs to another request: every field but the token must stay the \
             same while paging"
                .into(),
        );
    }
    Ok(offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_are_bound_to_their_request() {
        let t = token(2, b"query");
        assert_eq!(offset(&t, b"query"), Ok(2));
        assert!(
            offset(&t, b"other")
                .unwrap_err()
                .contains("another request")
        );
        assert!(offset("garbage!", b"query").is_err());
    }
}
