//! Client certificates as the authorization policy sees them: the subject as OPA's
//! `input.identity` (RFC 4514, as Go's `pkix.Name.String()`: `CN=alice,O=Example`) and each
//! certificate of the chain as an object with the commonly used fields of Go's
//! `x509.Certificate` under Go's names (`Subject.CommonName`, `DNSNames`, `NotAfter`, …).

use rustls::pki_types::CertificateDer;
use serde_json::{Value, json};
use x509_cert::der::Decode;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::name::Name;

/// The leaf certificate's subject, `None` when it cannot be parsed (the handshake verified
/// it, so that does not happen with a well-formed chain).
pub fn subject(cert: &CertificateDer<'_>) -> Option<String> {
    let cert = x509_cert::Certificate::from_der(cert.as_ref()).ok()?;
    Some(cert.tbs_certificate.subject.to_string())
}

/// One certificate in Go's field names; `{"Raw": …}` alone when it cannot be parsed.
pub fn to_json(der: &CertificateDer<'_>) -> Value {
    let raw = data_encoding::BASE64.encode(der.as_ref());
    let Ok(cert) = x509_cert::Certificate::from_der(der.as_ref()) else {
        return json!({ "Raw": raw });
    };
    let tbs = &cert.tbs_certificate;
    let mut dns = Vec::new();
    let mut emails = Vec::new();
    let mut ips = Vec::new();
    let mut uris = Vec::new();
    if let Ok(Some((_, SubjectAltName(names)))) = tbs.get::<SubjectAltName>() {
        for name in names {
            match name {
                GeneralName::DnsName(n) => dns.push(n.to_string()),
                GeneralName::Rfc822Name(n) => emails.push(n.to_string()),
                GeneralName::UniformResourceIdentifier(n) => uris.push(n.to_string()),
                GeneralName::IpAddress(octets) => {
                    if let Some(ip) = ip_of(octets.as_bytes()) {
                        ips.push(ip.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    json!({
        "Raw": raw,
        "SerialNumber": serial(tbs.serial_number.as_bytes()),
        "Subject": name_json(&tbs.subject),
        "Issuer": name_json(&tbs.issuer),
        "NotBefore": rfc3339(tbs.validity.not_before.to_system_time()),
        "NotAfter": rfc3339(tbs.validity.not_after.to_system_time()),
        "DNSNames": dns,
        "EmailAddresses": emails,
        "IPAddresses": ips,
        "URIs": uris,
    })
}

/// Go's `pkix.Name` fields (each a list, but `CommonName` and `SerialNumber`).
fn name_json(name: &Name) -> Value {
    use x509_cert::der::asn1::ObjectIdentifier as Oid;
    const FIELDS: [(&str, &str); 8] = [
        ("Country", "2.5.4.6"),
        ("Organization", "2.5.4.10"),
        ("OrganizationalUnit", "2.5.4.11"),
        ("Locality", "2.5.4.7"),
        ("Province", "2.5.4.8"),
        ("StreetAddress", "2.5.4.9"),
        ("PostalCode", "2.5.4.17"),
        ("SerialNumber", "2.5.4.5"),
    ];
    let values = |oid: &str| -> Vec<String> {
        let Ok(oid) = Oid::new(oid) else {
            return Vec::new();
        };
        name.0
            .iter()
            .flat_map(|rdn| rdn.0.iter())
            .filter(|atv| atv.oid == oid)
            .filter_map(|atv| {
                // `CN=alice` → `alice`: the value as Display writes it after the type.
                let text = atv.to_string();
                text.split_once('=').map(|(_, v)| v.to_string())
            })
            .collect()
    };
    let mut out = serde_json::Map::new();
    for (field, oid) in FIELDS {
        let v = values(oid);
        if field == "SerialNumber" {
            out.insert(field.into(), json!(v.first().cloned().unwrap_or_default()));
        } else {
            out.insert(field.into(), json!(v));
        }
    }
    out.insert(
        "CommonName".into(),
        json!(values("2.5.4.3").first().cloned().unwrap_or_default()),
    );
    Value::Object(out)
}

/// A serial number as Go's `big.Int` encodes it: a JSON number (a decimal string when it
/// does not fit 64 bits, which JSON numbers here cannot carry exactly).
fn serial(bytes: &[u8]) -> Value {
    let digits: &[u8] = {
        let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
        &bytes[first..]
    };
    if digits.len() <= 8 {
        let n = digits.iter().fold(0u64, |n, b| (n << 8) | u64::from(*b));
        return json!(n);
    }
    Value::String(decimal(digits))
}

/// A big-endian unsigned integer in decimal.
fn decimal(big_endian: &[u8]) -> String {
    let mut n = big_endian.to_vec();
    let mut digits = Vec::new();
    while n.iter().any(|b| *b != 0) {
        let mut rest = 0u32;
        for byte in &mut n {
            let v = (rest << 8) | u32::from(*byte);
            *byte = (v / 10) as u8;
            rest = v % 10;
        }
        digits.push(b'0' + rest as u8);
    }
    if digits.is_empty() {
        digits.push(b'0');
    }
    digits.reverse();
    String::from_utf8(digits).unwrap_or_default()
}

fn ip_of(octets: &[u8]) -> Option<std::net::IpAddr> {
    match octets.len() {
        4 => Some(std::net::IpAddr::from(<[u8; 4]>::try_from(octets).ok()?)),
        16 => Some(std::net::IpAddr::from(<[u8; 16]>::try_from(octets).ok()?)),
        _ => None,
    }
}

fn rfc3339(t: std::time::SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    #[test]
    fn serial_numbers_in_decimal() {
        assert_eq!(super::serial(&[0x01, 0x00]), serde_json::json!(256));
        assert_eq!(super::decimal(&[0xff; 9]), "4722366482869645213695");
        assert_eq!(super::decimal(&[0]), "0");
    }
}
