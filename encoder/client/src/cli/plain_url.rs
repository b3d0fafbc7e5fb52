//! A plain `http://` or `https://` URL given to `hop get` instead of a stack address.

use crate::error::ClientError;

/// The same client (socket options, TLS, HTTP, timings, exit codes) straight to the server,
/// with no SRH and no hopstack, like curl: for comparing a path with and without hopstack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PlainUrl {
    pub(super) tls: bool,
    /// A name (looked up as AAAA, like a first hop) or an IPv6 literal.
    pub(super) host: String,
    pub(super) port: u16,
    /// Path and query, with the leading `/`.
    pub(super) path: String,
}

impl PlainUrl {
    /// `None` when `s` is not a plain URL (then it is a stack address).
    pub(super) fn parse(s: &str) -> Result<Option<PlainUrl>, ClientError> {
        let tls = match s.split_once("://") {
            Some(("http", _)) => false,
            Some(("https", _)) => true,
            _ => return Ok(None),
        };
        let bad = |why: &str| ClientError::usage(format!("URL {s:?}: {why}"));
        let uri: hyper::Uri = s.parse().map_err(|e| bad(&format!("{e}")))?;
        let host = uri.host().ok_or_else(|| bad("no host"))?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.parse::<std::net::Ipv4Addr>().is_ok() {
            return Err(bad("hop speaks IPv6 only; give an IPv6 literal or a name"));
        }
        // `http` reads a port it cannot parse as none at all.
        let authority = uri.authority().map_or("", |a| a.as_str());
        let port_given = authority
            .rsplit_once(']')
            .map_or(authority, |(_, p)| p)
            .contains(':');
        let port = match uri.port_u16() {
            Some(p) => p,
            None if port_given => return Err(bad("the port is not a number 0-65535")),
            None if tls => 443,
            None => 80,
        };
        Ok(Some(PlainUrl {
            tls,
            host: host.to_owned(),
            port,
            path: uri
                .path_and_query()
                .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_urls_are_told_from_stack_addresses() {
        let p = |s: &str| PlainUrl::parse(s).unwrap();
        assert_eq!(
            p("http://[fd00:3::2]:8080/users/list?x=1"),
            Some(PlainUrl {
                tls: false,
                host: "fd00:3::2".into(),
                port: 8080,
                path: "/users/list?x=1".into(),
            })
        );
        assert_eq!(
            p("https://yc.example"),
            Some(PlainUrl {
                tls: true,
                host: "yc.example".into(),
                port: 443,
                path: "/".into(),
            })
        );
        assert_eq!(p("http://yc/").map(|u| u.port), Some(80));
        // Stack addresses, including ones whose service path looks like a URL's.
        for s in [
            "github.com>org>yc:tcp+tls+http+restapiv3/users/list",
            "[fd00::1]>yc:tcp+http+web/http://x",
            "yc:tcp+http+web",
        ] {
            assert_eq!(p(s), None, "{s}");
        }
        for (bad, why) in [
            ("http://192.0.2.1/", "IPv6 only"),
            ("http://[fd00::1]:99999/", "port"),
            ("http://yc:x/", "URL"),
            ("https:///x", "URL"),
        ] {
            let e = PlainUrl::parse(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad}");
            assert!(e.message.contains(why), "{bad}: {}", e.message);
        }
    }
}
