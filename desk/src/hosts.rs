//! Which hosts are this machine: clear text to them crosses no network, so settings that
//! allow a connection without TLS (a mailbox source, the outbound relay) allow it only there.

/// `localhost`, 127.0.0.0/8 or ::1 (brackets allowed around an IPv6 address).
pub fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for yes in [
            "localhost",
            "LocalHost",
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "[::1]",
        ] {
            assert!(is_loopback(yes), "{yes}");
        }
        for no in [
            "example.org",
            "10.0.0.1",
            "[2001:db8::1]",
            "localhost.example.org",
            "",
        ] {
            assert!(!is_loopback(no), "{no}");
        }
    }
}
