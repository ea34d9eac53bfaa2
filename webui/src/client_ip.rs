//! The client a request comes from, as every rate limit keys it: the TCP peer, or, when the
//! peer is one of the configured `trusted_proxies`, the address that proxy forwarded.

use crate::AppState;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use ipnet::IpNet;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// Addresses and CIDR blocks: the reverse proxies whose forwarding headers are believed,
/// the clients that may read `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct Networks(Vec<IpNet>);

impl Networks {
    /// Parses `10.0.0.1`, `10.0.0.0/8`, `::1` or `fd00::/8`; the error names the bad entry.
    pub fn parse(entries: &[String]) -> Result<Networks, String> {
        entries
            .iter()
            .map(|e| {
                let e = e.trim();
                e.parse::<IpNet>()
                    .map(|n| n.trunc())
                    .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("{e:?} is not an IP address or CIDR block"))
            })
            .collect::<Result<_, _>>()
            .map(Networks)
    }

    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }
}

/// The client of a request. Handlers that rate-limit take this, never the raw peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    /// The key limits count under: an IPv4 address, or an IPv6 address's /64, the block one
    /// subscriber is given (and can rotate addresses within at will).
    pub fn key(self) -> IpAddr {
        match self.0 {
            IpAddr::V4(v4) => IpAddr::V4(v4),
            IpAddr::V6(v6) => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        }
    }
}

impl std::fmt::Display for ClientIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() else {
            tracing::error!("the HTTP server was started without the peer's address");
            return Err(crate::refusals::refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error",
            ));
        };
        Ok(ClientIp(client_of(
            peer.ip(),
            &parts.headers,
            &state.trusted_proxies,
        )))
    }
}

/// The client behind `peer`: the peer itself unless it is a trusted proxy; then, walking the
/// forwarded chain from the right (the hops the proxies appended), the first address that
/// is not itself a trusted proxy. Whatever a client wrote further left is never used. A
/// hop that is not an address (`unknown`, an obfuscated name) stops the walk at the proxy.
/// X-Forwarded-For is read when present, else Forwarded (RFC 7239): a proxy that sets only
/// Forwarded must drop a client's X-Forwarded-For.
pub fn client_of(peer: IpAddr, headers: &HeaderMap, trusted: &Networks) -> IpAddr {
    let peer = peer.to_canonical();
    if !trusted.contains(peer) {
        return peer;
    }
    let chain = forwarded_chain(headers);
    for hop in chain.iter().rev() {
        match hop {
            Some(ip) if trusted.contains(*ip) => continue,
            Some(ip) => return *ip,
            None => return peer,
        }
    }
    // Every hop is a trusted proxy (or there is none): the first one is the client.
    chain.first().copied().flatten().unwrap_or(peer)
}

/// The forwarded hops, leftmost (the claimed origin) first.
fn forwarded_chain(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let values = |name: &str| {
        headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect::<Vec<_>>()
    };
    let xff = values("x-forwarded-for");
    if !xff.is_empty() {
        return xff
            .iter()
            .flat_map(|v| v.split(','))
            .map(hop_address)
            .collect();
    }
    values("forwarded")
        .iter()
        .flat_map(|v| v.split(','))
        .map(|element| {
            element
                .split(';')
                .filter_map(|pair| pair.split_once('='))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("for"))
                .and_then(|(_, value)| hop_address(value))
        })
        .collect()
}

/// One hop's address: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`, `[2001:db8::1]:4711`,
/// optionally quoted; anything else is unknown.
fn hop_address(raw: &str) -> Option<IpAddr> {
    let s = raw.trim().trim_matches('"').trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Some(rest) = s.strip_prefix('[') {
        return rest
            .split_once(']')
            .and_then(|(ip, _)| ip.parse::<Ipv6Addr>().ok())
            .map(|ip| IpAddr::V6(ip).to_canonical());
    }
    s.parse::<SocketAddr>().ok().map(|a| a.ip().to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    fn trusted(list: &[&str]) -> Networks {
        Networks::parse(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>()).expect("test list")
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, HeaderValue::from_str(value).expect("header"));
        }
        h
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        let a = ClientIp(ip("2001:db8:1:2::1")).key();
        let b = ClientIp(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")).key();
        let other = ClientIp(ip("2001:db8:1:3::1")).key();
        assert_eq!(a, b);
        assert_ne!(a, other);
        assert_eq!(a, ip("2001:db8:1:2::"));
        assert_eq!(ClientIp(ip("192.0.2.7")).key(), ip("192.0.2.7"));
    }

    #[test]
    fn headers_from_an_untrusted_peer_are_ignored() {
        let h = headers(&[
            ("x-forwarded-for", "198.51.100.1"),
            ("forwarded", "for=1.2.3.4"),
        ]);
        assert_eq!(
            client_of(ip("203.0.113.9"), &h, &Networks::default()),
            ip("203.0.113.9")
        );
        assert_eq!(
            client_of(ip("203.0.113.9"), &h, &trusted(&["127.0.0.1"])),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let proxies = trusted(&["127.0.0.1", "10.0.0.0/8"]);
        // A client wrote "6.6.6.6" itself; the proxies appended what they saw.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.1.2.3")]);
        assert_eq!(client_of(ip("127.0.0.1"), &h, &proxies), ip("198.51.100.7"));
        // Several header lines are one list.
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "198.51.100.7:5555"),
        ]);
        assert_eq!(client_of(ip("127.0.0.1"), &h, &proxies), ip("198.51.100.7"));
        // No header: the proxy itself.
        assert_eq!(
            client_of(ip("127.0.0.1"), &HeaderMap::new(), &proxies),
            ip("127.0.0.1")
        );
        // Garbage where the client's address should be: counted as the proxy.
        let h = headers(&[("x-forwarded-for", "1.1.1.1, unknown")]);
        assert_eq!(client_of(ip("127.0.0.1"), &h, &proxies), ip("127.0.0.1"));
        // A peer in a trusted block, and an IPv4-mapped peer.
        let h = headers(&[("x-forwarded-for", "198.51.100.8")]);
        assert_eq!(client_of(ip("10.9.9.9"), &h, &proxies), ip("198.51.100.8"));
        assert_eq!(
            client_of(ip("::ffff:127.0.0.1"), &h, &proxies),
            ip("198.51.100.8")
        );
    }

    #[test]
    fn forwarded_is_read_when_there_is_no_x_forwarded_for() {
        let proxies = trusted(&["::1"]);
        let h = headers(&[(
            "forwarded",
            r#"for=6.6.6.6;proto=https, For="[2001:db8:cafe::17]:4711";by=x"#,
        )]);
        assert_eq!(client_of(ip("::1"), &h, &proxies), ip("2001:db8:cafe::17"));
        let h = headers(&[("forwarded", "for=_hidden")]);
        assert_eq!(client_of(ip("::1"), &h, &proxies), ip("::1"));
    }

    #[test]
    fn proxy_lists_are_checked() {
        assert!(Networks::parse(&["10.0.0.0/8".into(), "::1".into()]).is_ok());
        let e = Networks::parse(&["10.0.0.0/33".into()]).expect_err("bad prefix");
        assert!(e.contains("10.0.0.0/33"), "{e}");
        assert!(Networks::parse(&["proxy.example".into()]).is_err());
    }
}
