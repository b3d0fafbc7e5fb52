//! `hop get -w/--write-out FORMAT`: curl's `-w`, after the transfer (also after a failed
//! one), on stdout. `%{name}` is a variable, `%header{name}` a response header, `%%` a `%`,
//! `\n`, `\r` and `\t` are what they say, `%{stderr}`/`%{stdout}` switch the stream, and
//! `@FILE` (`@-`: stdin) reads the format from a file. curl's variable names mean what they
//! mean in curl (times in seconds, six decimals); hopstack's own start with `hop_`.

use std::time::Duration;

use super::get::Transfer;
use crate::error::ClientError;
use crate::timing::{PathSource, Timings};

/// Everything `-w` can tell about a finished `hop get`.
pub(super) struct Report<'a> {
    pub(super) t: &'a Timings,
    pub(super) st: &'a Transfer,
    pub(super) error: Option<&'a ClientError>,
    pub(super) exit_code: u8,
}

/// Where a piece of the output goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stream {
    Stdout,
    Stderr,
}

enum Value {
    Int(u64),
    /// A time since the start: curl prints seconds with six decimals, 0 for a phase that did
    /// not happen.
    Secs(Option<Duration>),
    Str(String),
}

impl Value {
    fn text(&self) -> String {
        match self {
            Value::Int(n) => n.to_string(),
            Value::Secs(d) => format!("{:.6}", d.unwrap_or_default().as_secs_f64()),
            Value::Str(s) => s.clone(),
        }
    }

    fn json(&self) -> serde_json::Value {
        match self {
            Value::Int(n) => (*n).into(),
            Value::Secs(d) => {
                let s = d.unwrap_or_default().as_secs_f64();
                ((s * 1e6).round() / 1e6).into()
            }
            Value::Str(s) => s.clone().into(),
        }
    }
}

/// The variables `%{json}` lists, in this order: curl's, then hopstack's.
pub(super) const VARIABLES: &[&str] = &[
    "content_type",
    "errormsg",
    "exitcode",
    "filename_effective",
    "http_code",
    "http_version",
    "local_ip",
    "local_port",
    "method",
    "num_connects",
    "num_headers",
    "num_redirects",
    "num_retries",
    "redirect_url",
    "remote_ip",
    "remote_port",
    "response_code",
    "scheme",
    "size_download",
    "size_header",
    "size_request",
    "size_upload",
    "speed_download",
    "speed_upload",
    "time_appconnect",
    "time_connect",
    "time_namelookup",
    "time_pretransfer",
    "time_redirect",
    "time_starttransfer",
    "time_total",
    "url",
    "url_effective",
    "hop_connect_record",
    "hop_direct_port",
    "hop_error_layer",
    "hop_error_reason",
    "hop_fast_path",
    "hop_hops",
    "hop_path",
    "hop_path_source",
    "hop_port",
    "hop_probed",
    "hop_segments",
    "hop_time_dns",
    "hop_time_probe",
];

impl Report<'_> {
    fn value(&self, name: &str) -> Option<Value> {
        let (t, st) = (self.t, self.st);
        let speed = |bytes: u64| {
            let secs = t.total.unwrap_or_default().as_secs_f64();
            Value::Int(if secs > 0.0 {
                (bytes as f64 / secs) as u64
            } else {
                0
            })
        };
        let flag = |b: bool| Value::Int(u64::from(b));
        let opt = |s: Option<String>| Value::Str(s.unwrap_or_default());
        Some(match name {
            "content_type" => opt(st.header("content-type").map(str::to_owned)),
            "errormsg" => opt(self.error.map(|e| e.to_string())),
            "exitcode" => Value::Int(u64::from(self.exit_code)),
            "filename_effective" => opt(st.filename.as_ref().map(|p| p.display().to_string())),
            // curl's three digits, 000 when no response came.
            "http_code" | "response_code" => {
                Value::Str(format!("{:03}", t.http_status.unwrap_or(0)))
            }
            "http_version" => Value::Str(st.version.unwrap_or("0").to_owned()),
            "local_ip" => opt(st.local.map(|a| a.ip().to_string())),
            "local_port" => Value::Int(st.local.map_or(0, |a| u64::from(a.port()))),
            "method" => Value::Str(st.method.clone()),
            "num_connects" => Value::Int(u64::from(st.connects)),
            "num_headers" => Value::Int(st.headers.len() as u64),
            "num_redirects" => Value::Int(u64::from(st.redirects)),
            "num_retries" => Value::Int(u64::from(st.retries)),
            "redirect_url" => opt(st.redirect_url.clone()),
            "remote_ip" => opt(st.remote.map(|a| a.ip().to_string())),
            "remote_port" => Value::Int(st.remote.map_or(0, |a| u64::from(a.port()))),
            "scheme" => Value::Str(st.scheme.to_owned()),
            "size_download" => Value::Int(t.bytes),
            "size_header" => Value::Int(st.header_bytes),
            "size_request" => Value::Int(st.request_bytes),
            "size_upload" => Value::Int(st.upload_bytes),
            "speed_download" => speed(t.bytes),
            "speed_upload" => speed(st.upload_bytes),
            "time_appconnect" => Value::Secs(t.tls),
            "time_connect" => Value::Secs(t.connect),
            // What stands for the name lookup in hopstack: the path, by DNS and probe.
            "time_namelookup" => Value::Secs(t.probe.or(t.dns)),
            "time_pretransfer" => Value::Secs(t.tls.or(t.connect)),
            "time_redirect" => Value::Secs(st.redirect_time),
            "time_starttransfer" => Value::Secs(t.first_byte),
            "time_total" => Value::Secs(t.total),
            "url" => Value::Str(st.url.clone()),
            "url_effective" => Value::Str(st.url_effective.clone()),
            "hop_connect_record" => flag(t.connect_record),
            "hop_direct_port" => flag(t.direct_port),
            "hop_error_layer" => opt(self.error.map(|e| e.layer.to_string())),
            "hop_error_reason" => opt(self.error.map(|e| e.reason.to_string())),
            "hop_fast_path" => flag(t.hops.iter().any(|h| h.fast_path)),
            "hop_hops" => Value::Int(t.hops.len() as u64),
            // The path as a stack address's hops part of literals: it reaches the same
            // final hop, and says who is where.
            "hop_path" => Value::Str(
                t.hops
                    .iter()
                    .map(|h| format!("[{}]", h.address))
                    .collect::<Vec<_>>()
                    .join(">"),
            ),
            "hop_path_source" => Value::Str(
                match t.path_source {
                    Some(PathSource::Client) => "client",
                    Some(PathSource::Probe) => "probe",
                    Some(PathSource::Cache) => "cache",
                    Some(PathSource::Direct) => "direct",
                    None => "",
                }
                .to_owned(),
            ),
            "hop_port" => Value::Int(t.port.map_or(0, u64::from)),
            "hop_probed" => flag(t.probed),
            "hop_segments" => Value::Str(
                t.hops
                    .iter()
                    .map(|h| h.segment.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            "hop_time_dns" => Value::Secs(t.dns),
            "hop_time_probe" => Value::Secs(t.probe),
            _ => return None,
        })
    }

    /// `%{json}`: every variable in one object.
    fn json(&self) -> String {
        let mut m = serde_json::Map::new();
        for name in VARIABLES {
            if let Some(v) = self.value(name) {
                m.insert((*name).to_owned(), v.json());
            }
        }
        serde_json::Value::Object(m).to_string()
    }
}

/// The format expanded, as pieces for stdout and stderr in order; `warn` hears of unknown
/// variables (curl warns and prints nothing for them).
pub(super) fn render(
    format: &str,
    r: &Report<'_>,
    warn: &mut dyn FnMut(String),
) -> Vec<(Stream, String)> {
    let mut out: Vec<(Stream, String)> = Vec::new();
    let mut stream = Stream::Stdout;
    let mut text = String::new();
    let mut rest = format;
    let flush = |out: &mut Vec<(Stream, String)>, stream, text: &mut String| {
        if !text.is_empty() {
            out.push((stream, std::mem::take(text)));
        }
    };
    while let Some(c) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix("%%") {
            text.push('%');
            rest = after;
        } else if let Some(after) = rest.strip_prefix("%{")
            && let Some(end) = after.find('}')
        {
            let name = &after[..end];
            rest = &after[end + 1..];
            match name {
                "stdout" | "stderr" => {
                    flush(&mut out, stream, &mut text);
                    stream = if name == "stdout" {
                        Stream::Stdout
                    } else {
                        Stream::Stderr
                    };
                }
                "json" => text.push_str(&r.json()),
                _ => match r.value(name) {
                    Some(v) => text.push_str(&v.text()),
                    None => warn(format!("unknown --write-out variable: '{name}'")),
                },
            }
        } else if let Some(after) = rest.strip_prefix("%header{")
            && let Some(end) = after.find('}')
        {
            text.push_str(r.st.header(&after[..end]).unwrap_or_default());
            rest = &after[end + 1..];
        } else if let Some(after) = rest.strip_prefix('\\')
            && let Some(e) = after.chars().next()
            && matches!(e, 'n' | 'r' | 't')
        {
            text.push(match e {
                'n' => '\n',
                'r' => '\r',
                _ => '\t',
            });
            rest = &after[1..];
        } else {
            text.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    flush(&mut out, stream, &mut text);
    out
}

/// The `-w` argument as a format: itself, or `@FILE`'s (`@-`: stdin's) contents.
pub(super) fn format_of(arg: &str) -> Result<String, ClientError> {
    match arg.strip_prefix('@') {
        Some("-") => {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                .map_err(|e| ClientError::usage(format!("--write-out @-: {e}")))?;
            Ok(s)
        }
        Some(file) => std::fs::read_to_string(file)
            .map_err(|e| ClientError::usage(format!("--write-out @{file}: {e}"))),
        None => Ok(arg.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorLayer;
    use crate::timing::HopTiming;

    fn ms(n: u64) -> Option<Duration> {
        Some(Duration::from_millis(n))
    }

    fn sample() -> (Timings, Transfer) {
        let mut t = Timings::start();
        t.path_source = Some(PathSource::Probe);
        t.probed = true;
        t.dns = ms(2);
        t.probe = ms(12);
        t.connect = ms(14);
        t.tls = ms(20);
        t.first_byte = ms(25);
        t.total = ms(50);
        t.bytes = 2035;
        t.http_status = Some(200);
        t.port = Some(7443);
        for (i, (name, a)) in [("github.com", "fc00:1::e"), ("org", "fc00:2::e")]
            .into_iter()
            .enumerate()
        {
            t.hops.push(HopTiming {
                hop: i + 1,
                name: name.into(),
                address: a.parse().unwrap(),
                segment: a.parse().unwrap(),
                fast_path: false,
                resolved_by: "client".into(),
                trace_status: None,
            });
        }
        let st = Transfer {
            url: "github.com>org:tcp+http+web/a".into(),
            url_effective: "github.com>org:tcp+http+web/b".into(),
            method: "GET".into(),
            scheme: "http",
            version: Some("1.1"),
            redirects: 1,
            headers: vec![("content-type".into(), "text/plain".into())],
            remote: Some("[fd00:3::2]:7443".parse().unwrap()),
            ..Transfer::default()
        };
        (t, st)
    }

    fn expand(format: &str, r: &Report<'_>) -> (Vec<(Stream, String)>, Vec<String>) {
        let mut warnings = Vec::new();
        let out = render(format, r, &mut |w| warnings.push(w));
        (out, warnings)
    }

    #[test]
    fn curls_variables_and_hopstacks_expand() {
        let (t, st) = sample();
        let r = Report {
            t: &t,
            st: &st,
            error: None,
            exit_code: 0,
        };
        let (out, warnings) = expand(
            "%{http_code} %{time_namelookup} %{time_connect} %{time_appconnect} \
             %{time_starttransfer} %{time_total} %{size_download} %{url_effective}\\n\
             %{hop_path} %{hop_fast_path} %{hop_path_source} %{num_redirects} \
             %header{Content-Type} %{remote_ip} %{remote_port} 100%%\\t.",
            &r,
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            out,
            [(
                Stream::Stdout,
                "200 0.012000 0.014000 0.020000 0.025000 0.050000 2035 \
                 github.com>org:tcp+http+web/b\n[fc00:1::e]>[fc00:2::e] 0 probe 1 text/plain \
                 fd00:3::2 7443 100%\t."
                    .to_owned()
            )]
        );
    }

    #[test]
    fn streams_unknown_variables_and_json() {
        let (mut t, st) = sample();
        t.http_status = None;
        let e = ClientError::new(
            ErrorLayer::Timeout,
            crate::error::ClientReason::MaxTime,
            "x",
        );
        let r = Report {
            t: &t,
            st: &st,
            error: Some(&e),
            exit_code: 28,
        };
        let (out, warnings) = expand(
            "a%{stderr}%{http_code} %{exitcode} %{nosuch}%{stdout}b %{hop_error_reason}",
            &r,
        );
        assert_eq!(
            out,
            [
                (Stream::Stdout, "a".to_owned()),
                (Stream::Stderr, "000 28 ".to_owned()),
                (Stream::Stdout, "b max-time".to_owned()),
            ]
        );
        assert_eq!(warnings, ["unknown --write-out variable: 'nosuch'"]);
        let (out, _) = expand("%{json}", &r);
        let j: serde_json::Value = serde_json::from_str(&out[0].1).unwrap();
        assert_eq!(j["exitcode"], 28);
        assert_eq!(j["time_connect"], 0.014);
        assert_eq!(j["hop_path"], "[fc00:1::e]>[fc00:2::e]");
        assert_eq!(j.as_object().unwrap().len(), VARIABLES.len());
    }
}
