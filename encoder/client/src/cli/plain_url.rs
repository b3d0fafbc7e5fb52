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

impl PlainUrl {
    /// The Host header: the host, bracketed if a literal, and the port unless the scheme's.
    pub(super) fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == if self.tls { 443 } else { 80 } {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// Where a redirect's Location leads from here: an http(s) URL, or a reference
    /// relative to this one. `Err` says why it cannot be followed.
    pub(super) fn join(&self, location: &str) -> Result<PlainUrl, String> {
        let absolute = if location.contains("://") {
            location.to_owned()
        } else if location.starts_with("//") {
            format!("{}:{location}", self.scheme())
        } else {
            format!(
                "{}://{}{}",
                self.scheme(),
                self.authority(),
                super::get::relative_path(&self.path, location)
            )
        };
        match PlainUrl::parse(&absolute) {
            Ok(Some(u)) => Ok(u),
            Ok(None) => Err("not an http:// or https:// URL".into()),
            Err(e) => Err(e.message),
        }
    }

    fn scheme(&self) -> &'static str {
        if self.tls { "https" } else { "http" }
    }
}

impl std::fmt::Display for PlainUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}{}", self.scheme(), self.authority(), self.path)
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
        let base = p("http://[fd00::1]:8080/a/b?q").unwrap();
        assert_eq!(base.authority(), "[fd00::1]:8080");
        assert_eq!(base.to_string(), "http://[fd00::1]:8080/a/b?q");
        let join = |l: &str| base.join(l).map(|u| u.to_string());
        assert_eq!(join("c").unwrap(), "http://[fd00::1]:8080/a/c");
        assert_eq!(join("/d").unwrap(), "http://[fd00::1]:8080/d");
        assert_eq!(join("https://yc/").unwrap(), "https://yc/");
        assert_eq!(join("//yc:81/e").unwrap(), "http://yc:81/e");
        assert!(join("ftp://yc/").unwrap_err().contains("http"));
        assert!(join("http://192.0.2.1/").unwrap_err().contains("IPv6 only"));
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
