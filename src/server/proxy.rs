//! Who the client really is when a proxy connects for it: the PROXY protocol header (v1 text,
//! v2 binary) a load balancer puts before the first request, and the `X-Forwarded-For` header
//! of an HTTP request, both believed only from peers in `--trusted-proxies`.
//!
//! Owns: telling whether a peer is trusted, finding and parsing a PROXY header at the front of
//! a connection's input (with the `ppp` crate, which implements HAProxy's specification of
//! both versions), and picking the client out of an `X-Forwarded-For` list.
//!
//! Must never: read or write a socket, consume the caller's buffer, believe either header from
//! a peer that is not trusted (the caller asks [`is_trusted`] first), or panic on any input.
//! Sans-IO, so the unit tests below drive it directly.

use std::net::IpAddr;

use ipnet::IpNet;
use ppp::{v1, v2, HeaderResult, PartialResult};

/// The v2 signature (HAProxy's PROXY protocol specification, section 2.2).
const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";
/// The start of a v1 header (section 2.1).
const V1_PREFIX: &[u8] = b"PROXY ";

/// An address as the tables compare it: an IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, how a
/// dual-stack listener sees IPv4 peers) is its IPv4 address.
pub fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// Whether `peer` is one of the trusted proxies (addresses or CIDR blocks).
pub fn is_trusted(trusted: &[IpNet], peer: IpAddr) -> bool {
    let peer = canonical(peer);
    trusted.iter().any(|net| net.contains(&peer))
}

/// What the front of a trusted peer's input holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyHeader {
    /// Too few bytes to tell, or a header that is not complete yet: read more.
    Incomplete,
    /// The input does not start with a PROXY header (it is the first HTTP request).
    Absent,
    /// A header of `len` bytes. `source` is the client's address, or `None` when the header
    /// names none (v1 `UNKNOWN`, a v2 `LOCAL` health check, a v2 UNIX or unspecified family):
    /// then the connection is the proxy's own.
    Found { source: Option<IpAddr>, len: usize },
    /// A header that is not valid; the text says why.
    Invalid(&'static str),
}

/// Look for a PROXY header (v1 or v2) at the front of `input`.
pub fn parse_proxy_header(input: &[u8]) -> ProxyHeader {
    let starts = |signature: &[u8]| {
        let n = input.len().min(signature.len());
        input.get(..n) == signature.get(..n)
    };
    let maybe_v1 = starts(V1_PREFIX);
    let maybe_v2 = starts(V2_SIGNATURE);
    if !maybe_v1 && !maybe_v2 {
        return ProxyHeader::Absent;
    }
    if input.len() < V1_PREFIX.len().min(V2_SIGNATURE.len())
        || (maybe_v2 && input.len() < V2_SIGNATURE.len())
    {
        return ProxyHeader::Incomplete;
    }
    let result = HeaderResult::parse(input);
    if result.is_incomplete() {
        return ProxyHeader::Incomplete;
    }
    match result {
        HeaderResult::V1(Ok(header)) => ProxyHeader::Found {
            source: match header.addresses {
                v1::Addresses::Tcp4(a) => Some(IpAddr::V4(a.source_address)),
                v1::Addresses::Tcp6(a) => Some(canonical(IpAddr::V6(a.source_address))),
                v1::Addresses::Unknown => None,
            },
            len: header.header.len(),
        },
        HeaderResult::V2(Ok(header)) => ProxyHeader::Found {
            source: match (header.command, header.addresses) {
                (v2::Command::Local, _) => None,
                (_, v2::Addresses::IPv4(a)) => Some(IpAddr::V4(a.source_address)),
                (_, v2::Addresses::IPv6(a)) => Some(canonical(IpAddr::V6(a.source_address))),
                (_, v2::Addresses::Unix(_) | v2::Addresses::Unspecified) => None,
            },
            len: header.len(),
        },
        HeaderResult::V1(Err(_)) => ProxyHeader::Invalid("invalid PROXY protocol v1 header"),
        HeaderResult::V2(Err(_)) => ProxyHeader::Invalid("invalid PROXY protocol v2 header"),
    }
}

/// The client of a request a trusted proxy forwarded with `X-Forwarded-For: <list>` (all its
/// lines, joined with commas).
///
/// Each proxy appends the address it got the request from, so the list reads client first,
/// nearest proxy last; only the entries added by trusted proxies can be believed, since the
/// client writes whatever it likes before them. So: walk from the right, skipping trusted
/// proxies; the first address that is not one is the client. If every entry is a trusted
/// proxy, the leftmost is. An entry that is not an address (`unknown`, garbage) ends the walk:
/// the last trusted hop seen (or `peer`, if none) is taken. Entries may carry a port
/// (`192.0.2.1:4711`, `[2001:db8::1]:4711`), as some load balancers write them.
pub fn client_from_forwarded_for(list: &str, peer: IpAddr, trusted: &[IpNet]) -> IpAddr {
    let mut client = canonical(peer);
    for entry in list.rsplit(',').map(str::trim).filter(|e| !e.is_empty()) {
        let Some(ip) = parse_entry(entry) else {
            return client;
        };
        client = ip;
        if !is_trusted(trusted, ip) {
            return client;
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an address, maybe with a port.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
        .map(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_trusted;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn trusted_list_takes_addresses_and_blocks_and_names_bad_entries() {
        let list = parse_trusted(" 10.0.0.0/8, 192.0.2.7 ,2001:db8::/32,").unwrap();
        assert_eq!(list.len(), 3);
        assert!(is_trusted(&list, ip("10.1.2.3")));
        assert!(is_trusted(&list, ip("::ffff:10.1.2.3")));
        assert!(is_trusted(&list, ip("192.0.2.7")));
        assert!(!is_trusted(&list, ip("192.0.2.8")));
        assert!(is_trusted(&list, ip("2001:db8::5")));
        assert!(parse_trusted("").unwrap().is_empty());
        let err = parse_trusted("10.0.0.1,nope").unwrap_err();
        assert!(err.contains("nope"), "{err}");
        assert!(parse_trusted("10.0.0.0/33").is_err());
    }

    #[test]
    fn v1_headers_give_the_source_and_their_length() {
        let input = b"PROXY TCP4 203.0.113.7 192.0.2.1 51000 443\r\nGET / HTTP/1.1\r\n";
        let len = b"PROXY TCP4 203.0.113.7 192.0.2.1 51000 443\r\n".len();
        assert_eq!(
            parse_proxy_header(input),
            ProxyHeader::Found {
                source: Some(ip("203.0.113.7")),
                len
            }
        );
        let v6 = b"PROXY TCP6 2001:db8::7 2001:db8::1 51000 443\r\n";
        assert_eq!(
            parse_proxy_header(v6),
            ProxyHeader::Found {
                source: Some(ip("2001:db8::7")),
                len: v6.len()
            }
        );
        let unknown = b"PROXY UNKNOWN\r\n";
        assert_eq!(
            parse_proxy_header(unknown),
            ProxyHeader::Found {
                source: None,
                len: unknown.len()
            }
        );
    }

    #[test]
    fn partial_headers_wait_and_http_requests_are_not_headers() {
        assert_eq!(parse_proxy_header(b""), ProxyHeader::Incomplete);
        assert_eq!(parse_proxy_header(b"P"), ProxyHeader::Incomplete);
        assert_eq!(
            parse_proxy_header(b"PROXY TCP4 203.0"),
            ProxyHeader::Incomplete
        );
        assert_eq!(parse_proxy_header(b"\r\n\r\n\0\r"), ProxyHeader::Incomplete);
        assert_eq!(parse_proxy_header(b"POST / HTTP/1.1"), ProxyHeader::Absent);
        assert_eq!(parse_proxy_header(b"GET / HTTP/1.1"), ProxyHeader::Absent);
        assert_eq!(parse_proxy_header(b"\r\nGET"), ProxyHeader::Absent);
        assert!(matches!(
            parse_proxy_header(b"PROXY TCP4 nope 192.0.2.1 1 2\r\n"),
            ProxyHeader::Invalid(_)
        ));
        assert!(matches!(
            parse_proxy_header(b"PROXY TCP9 1.2.3.4 1.2.3.4 1 2\r\n"),
            ProxyHeader::Invalid(_)
        ));
    }

    /// A v2 header written byte by byte from the specification (section 2.2), not with the
    /// crate under test.
    fn v2_header(command: u8, family: u8, addresses: &[u8]) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        out.push(0x20 | command);
        out.push(family);
        out.extend_from_slice(&(addresses.len() as u16).to_be_bytes());
        out.extend_from_slice(addresses);
        out
    }

    #[test]
    fn v2_headers_give_the_source_and_their_length() {
        let mut v4 = vec![203, 0, 113, 9, 192, 0, 2, 1];
        v4.extend_from_slice(&51000u16.to_be_bytes());
        v4.extend_from_slice(&443u16.to_be_bytes());
        let header = v2_header(0x1, 0x11, &v4);
        let mut input = header.clone();
        input.extend_from_slice(b"GET / HTTP/1.1\r\n");
        assert_eq!(
            parse_proxy_header(&input),
            ProxyHeader::Found {
                source: Some(ip("203.0.113.9")),
                len: header.len()
            }
        );
        assert_eq!(
            parse_proxy_header(&header[..header.len() - 1]),
            ProxyHeader::Incomplete
        );
        let local = v2_header(0x0, 0x00, &[]);
        assert_eq!(
            parse_proxy_header(&local),
            ProxyHeader::Found {
                source: None,
                len: 16
            }
        );
        let mut bad = header.clone();
        bad[12] = 0x31; // version 3
        assert!(matches!(parse_proxy_header(&bad), ProxyHeader::Invalid(_)));
    }

    /// Every prefix of a valid header, and every single-byte change of one, gets an answer
    /// (never a panic), and a found header never claims more bytes than were given.
    #[test]
    fn prefixes_and_mutations_never_panic_or_overrun() {
        let v4 = [203, 0, 113, 9, 192, 0, 2, 1, 0xc7, 0x38, 0x01, 0xbb];
        let v2 = v2_header(0x1, 0x11, &v4);
        let v1 = b"PROXY TCP6 2001:db8::7 2001:db8::1 51000 443\r\nGET".to_vec();
        for header in [v1, v2] {
            for end in 0..=header.len() {
                let prefix = &header[..end];
                if let ProxyHeader::Found { len, .. } = parse_proxy_header(prefix) {
                    assert!(len <= prefix.len());
                }
            }
            for at in 0..header.len() {
                for byte in [0u8, b' ', b'\r', b'\n', b':', 0xff, b'9'] {
                    let mut changed = header.clone();
                    changed[at] = byte;
                    if let ProxyHeader::Found { len, .. } = parse_proxy_header(&changed) {
                        assert!(len <= changed.len());
                    }
                }
            }
        }
    }

    #[test]
    fn forwarded_for_takes_the_rightmost_untrusted_address() {
        let trusted = parse_trusted("10.0.0.0/8").unwrap();
        let peer = ip("10.0.0.2");
        let pick = |list: &str| client_from_forwarded_for(list, peer, &trusted);
        assert_eq!(pick("198.51.100.4"), ip("198.51.100.4"));
        // A client's own claim before the real entry is not believed.
        assert_eq!(pick("1.1.1.1, 198.51.100.4"), ip("198.51.100.4"));
        assert_eq!(pick("198.51.100.4, 10.0.0.9"), ip("198.51.100.4"));
        assert_eq!(pick("10.0.0.7, 10.0.0.9"), ip("10.0.0.7"));
        assert_eq!(pick("198.51.100.4:4711"), ip("198.51.100.4"));
        assert_eq!(pick("[2001:db8::4]:4711"), ip("2001:db8::4"));
        assert_eq!(pick("198.51.100.4,unknown"), peer);
        assert_eq!(pick("garbage, 10.0.0.9"), ip("10.0.0.9"));
        assert_eq!(pick(""), peer);
        assert_eq!(pick(" , "), peer);
    }
}
