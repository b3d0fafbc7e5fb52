//! The client subcommands of `hop`: `get`, `cat`, `proxy`, `resolve`, `decode`. `bin/hop.rs` flattens
//! [`ClientCommand`] into its own subcommands and calls [`run`].

mod args;
mod cat;
mod connect;
mod decode;
mod get;
mod get_output;
mod get_quic;
mod plain_url;
mod proxy;
mod resolve;
mod write_out;

use clap::Subcommand;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::client::TlsStream;

use hopstack_encoder::address::StackAddress;

use crate::error::{ClientError, ErrorLayer, address_error_report};
use crate::timing::Timings;
use crate::tls::{self, TlsOptions};

pub use args::{
    CatArgs, CommonArgs, GetArgs, PerRequestProxyArgs, ProxyArgs, ResolveArgs, TlsArgs,
};
pub use decode::DecodeArgs;

/// Exit codes, for `--help` (kept equal to `ErrorLayer::table()` by a test).
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0   -            success
  1   local        local failure (cannot write the output file, ...)
  2   usage        bad command line
  3   address      the stack address does not parse
  4   route        a hop could not be resolved or reached (DNS, SRH, link)
  5   tcp/udp/quic the transport connection failed
  6   tls          TLS handshake or certificate failure
  7   http/h3      HTTP status >= 400 (unless --no-fail) or HTTP error
  8   service      the final hop has no such service, it is down, or it speaks other layers
  9   timeout      no answer in time (probe, connect, response)
  22  http         hop get -f/--fail: HTTP status >= 400 (curl's code)
  28  timeout      hop get -m/--max-time passed (curl's code)
  47  http         hop get -L: more redirects than --max-redirs (curl's code)
";

#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Fetch ADDRESS's path over its layers (tcp[+tls]+http|h2, udp+quic+h3) and print the response body.
    #[command(after_help = EXIT_CODES_HELP)]
    Get(Box<GetArgs>),
    /// Pipe stdin/stdout to a raw tcp or udp service (`...:tcp+echo`, `...:udp+dns+resolver`).
    #[command(after_help = EXIT_CODES_HELP)]
    Cat(CatArgs),
    /// Listen on -L and forward every connection to ADDRESS, or serve SOCKS5 (--socks5) or
    /// HTTP CONNECT (--http-connect) requests that name a stack address each, so unmodified
    /// programs (curl, a browser) can reach stack addresses: they speak the upper layers
    /// themselves.
    #[command(after_help = EXIT_CODES_HELP)]
    Proxy(ProxyArgs),
    /// Print the resolved path and who resolved each hop.
    #[command(after_help = EXIT_CODES_HELP)]
    Resolve(ResolveArgs),
    /// Decode packets from a pcap/pcapng capture (or hex with --hex): the SRH tree `hop
    /// encode` prints, and the stack reports and probe answers in UDP payloads.
    Decode(DecodeArgs),
}

/// Runs a client subcommand; returns the process exit code.
pub fn run(cmd: ClientCommand) -> u8 {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hop: cannot start the runtime: {e}");
            return 1;
        }
    };
    // Each subcommand's timings start here, after the runtime, and end with its result.
    macro_rules! timed {
        ($run:path, $args:expr) => {{
            let mut t = Timings::start();
            let r = $run($args, &mut t).await;
            t.finish();
            (t, r)
        }};
    }
    let code = rt.block_on(async {
        match cmd {
            ClientCommand::Get(a) => get::run(&a).await,
            ClientCommand::Cat(a) => finish(&a.common, timed!(cat::cat, &a)),
            ClientCommand::Proxy(a) => finish(&a.common, timed!(proxy::proxy, &a)),
            ClientCommand::Resolve(a) => finish(&a.common, timed!(resolve::resolve_cmd, &a)),
            ClientCommand::Decode(a) => decode::decode_cmd(&a),
        }
    });
    // Closes what the subcommand left open (its tasks go with the runtime); connections that
    // went round in UDP then say goodbye the same way.
    drop(rt);
    crate::encap::drain();
    code
}

/// Prints timings/errors as asked and picks the exit code.
fn finish(c: &CommonArgs, r: (Timings, Result<(), ClientError>)) -> u8 {
    let (mut t, res) = r;
    if t.total.is_none() {
        t.finish();
    }
    let code = res.as_ref().err().map_or(0, ClientError::exit_code);
    report(c, &t, &res, code, true);
    code
}

/// What every subcommand prints on stderr at its end: `-v`'s block, `--json`'s object and
/// the error line (with `error_line`; `hop get -s` leaves it out). With `--json` the object
/// carries the error (layer, reason, exit code, message) and is the last line: no error
/// line follows it, so a program reads one JSON object and nothing else.
fn report(c: &CommonArgs, t: &Timings, res: &Result<(), ClientError>, code: u8, error_line: bool) {
    if c.verbose {
        eprint!("{}", t.render());
    }
    if c.json && !t.printed {
        let mut v: serde_json::Value =
            serde_json::from_str(&t.to_json()).unwrap_or(serde_json::Value::Null);
        if let Err(e) = res {
            v["error"] = serde_json::json!({
                "layer": e.layer.as_str(),
                "reason": e.reason,
                "exit_code": code,
                "hop": e.hop.as_ref().map(|h| serde_json::json!({
                    "hop": h.index + 1,
                    "name": h.name,
                    "address": h.address.map(|a| a.to_string()),
                })),
                "message": e.to_string(),
            });
        }
        eprintln!("{v}");
        return;
    }
    if let Err(e) = res
        && error_line
    {
        let parse_error = (e.layer == ErrorLayer::Address)
            .then(|| StackAddress::parse(&c.address).err())
            .flatten();
        match parse_error {
            // Where in the address, as every tool shows it: the carets, the line last.
            Some(pe) => eprint!("{}", address_error_report("hop", &c.address, &pe)),
            None => eprintln!("{e}"),
        }
    }
}

/// TLS over `stream` with a configuration for `alpn` built now; sets `t.tls`.
async fn tls_handshake<IO: AsyncRead + AsyncWrite + Unpin>(
    stream: IO,
    topts: &TlsOptions,
    alpn: &[&[u8]],
    t: &mut Timings,
) -> Result<TlsStream<IO>, ClientError> {
    let cfg = tls::client_config(topts, alpn)?;
    let s = tls::handshake(stream, topts.sni.as_deref().unwrap_or_default(), cfg).await?;
    t.tls = Some(t.mark());
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_table_matches_error_layers() {
        let t = ErrorLayer::table();
        for line in t.lines() {
            assert!(
                EXIT_CODES_HELP.contains(line),
                "--help lacks {line:?}:\n{EXIT_CODES_HELP}"
            );
        }
    }
}
