//! The test harness of hopstack's end-to-end tests: libtest's output and command line, plus a
//! third outcome besides passed and failed: **skipped**, with its reason.
//!
//! Some tests cannot run on every machine: their subject is a kernel feature the running
//! kernel lacks (kernels differ: see [`crate::kernel`]), or they need `/dev/net/tun`, real
//! root, or a program that is not installed. libtest can only pass such a test, which would
//! report something that did not run as checked. Under this harness a test declares what it
//! needs; when something is missing it is reported `ignored (<why>)` and, after the summary,
//! in one line
//!
//! ```text
//! SKIP <test>: kernel lacks seg6local End (CONFIG_IPV6_SEG6_LWTUNNEL; ...)
//! ```
//!
//! and is counted as *ignored* in the summary, never as passed. A test (or a helper it
//! calls) can also find out late that it cannot run and call [`skip`].
//!
//! A test file opts in with `harness = false` in its crate's `Cargo.toml` and ends with
//!
//! ```ignore
//! hopstack_testbed::tests! {
//!     plain_test,
//!     kernel_end_interop needs [Kernel(Seg6LocalEnd), Tun],
//!     helper_run_by_another_test ignored = "helper: run by plain_test",
//! }
//! ```
//!
//! where each name is a `fn()` of the file (without `#[test]`). `Kernel(..)` takes a
//! [`crate::kernel::Feature`]; the other needs are the variants of [`Need`].

use std::any::Any;
use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::process::ExitCode;
use std::sync::Once;

use libtest_mimic::{Arguments, Completion, Failed, Trial};

use crate::kernel::{Feature, Features};

/// Something a test needs from the machine it runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// A kernel SRv6 feature (the test is about it, or about interop with it).
    Kernel(Feature),
    /// `/dev/net/tun` openable by this user: hopd's border role.
    Tun,
    /// Root of the initial user namespace (e.g. the kernel's SRH HMAC key table).
    InitialRoot,
    /// Network namespaces: root, or a user namespace in which to re-run the test as root
    /// ([`crate::userns::rerun_in_userns`]).
    Netns,
    /// A program found on `PATH` (or in the sbin directories).
    Program(&'static str),
}

impl Need {
    /// Why this need is not met here, if it is not.
    pub fn missing(self) -> Option<String> {
        match self {
            Need::Kernel(f) => Features::get().missing(f),
            Need::Tun => crate::userns::tun_unavailable(),
            Need::InitialRoot => (!crate::userns::initial_root()).then(|| {
                "needs root of the initial user namespace (CAP_NET_ADMIN there); run as real root"
                    .to_string()
            }),
            Need::Netns => crate::userns::netns_unavailable(),
            Need::Program(p) => crate::supervisor::find_program(p).is_none().then(|| {
                format!("needs `{p}`, which is not installed (.ci/setup installs it as root)")
            }),
        }
    }
}

/// One test: a name, what it needs, and its body.
pub struct Test {
    name: &'static str,
    needs: Vec<Need>,
    body: fn(),
    ignored: bool,
}

impl Test {
    pub fn new(name: &'static str, body: fn(), needs: Vec<Need>) -> Test {
        Test {
            name,
            needs,
            body,
            ignored: false,
        }
    }

    /// Run only when asked for (`--ignored`, `--include-ignored`), like `#[ignore]`: for
    /// helpers that another test runs in a child process.
    pub fn ignored(mut self, yes: bool) -> Test {
        self.ignored = yes;
        self
    }
}

/// The payload of the panic [`skip`] raises; the harness turns it into a skipped test.
struct Skip(String);

thread_local! {
    static CURRENT: RefCell<Option<&'static str>> = const { RefCell::new(None) };
}

/// The name of the test running on this thread, when it runs under this harness.
pub fn current_test() -> Option<&'static str> {
    CURRENT.with(|c| *c.borrow())
}

/// Stop the calling test and count it as skipped, saying why on the `SKIP` line. Only for
/// tests run by this harness (under libtest it is a failure that names the reason).
pub fn skip(why: impl Into<String>) -> ! {
    panic::panic_any(Skip(why.into()))
}

/// Skip the calling test unless `need` is met.
pub fn require(need: Need) {
    if let Some(why) = need.missing() {
        skip(why);
    }
}

fn skip_reason(payload: &(dyn Any + Send)) -> Option<&str> {
    payload.downcast_ref::<Skip>().map(|s| s.0.as_str())
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "the test panicked".to_string()
    }
}

/// Skips of this run, printed after the summary: tests run on several threads, and a line
/// printed while another test's result line is half written would be cut in two.
static SKIPPED: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());

fn skipped(name: &str, why: String) -> Result<Completion, Failed> {
    SKIPPED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((name.to_owned(), why.clone()));
    Ok(Completion::ignored_with(why))
}

fn run_one(test: &Test) -> Result<Completion, Failed> {
    if let Some(why) = test.needs.iter().find_map(|n| n.missing()) {
        return skipped(test.name, why);
    }
    CURRENT.with(|c| *c.borrow_mut() = Some(test.name));
    let outcome = panic::catch_unwind(AssertUnwindSafe(test.body));
    CURRENT.with(|c| *c.borrow_mut() = None);
    match outcome {
        Ok(()) => Ok(Completion::Completed),
        Err(payload) => match skip_reason(payload.as_ref()) {
            Some(why) => skipped(test.name, why.to_string()),
            None => Err(panic_message(payload.as_ref()).into()),
        },
    }
}

/// Run `tests` with libtest's command line (filters, `--exact`, `--list`, `--test-threads`,
/// `--include-ignored`, ...). The exit status fails only for failed tests.
pub fn run(tests: Vec<Test>) -> ExitCode {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            // A skip is not a crash: its SKIP line is enough.
            if skip_reason(info.payload()).is_none() {
                default(info);
            }
        }));
    });
    let args = Arguments::from_args();
    let trials = tests
        .into_iter()
        .map(|t| {
            let ignored = t.ignored;
            Trial::ignorable_test(t.name, move || run_one(&t)).with_ignored_flag(ignored)
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    for (name, why) in SKIPPED.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        println!("SKIP {name}: {why}");
    }
    conclusion.exit_code()
}

/// The `main` of a test file run by this harness; see the module documentation.
#[macro_export]
macro_rules! tests {
    ($($name:ident $(needs [$($need:expr),* $(,)?])? $(ignored = $why:literal)?),* $(,)?) => {
        fn main() -> ::std::process::ExitCode {
            #[allow(unused_imports)]
            use $crate::harness::Need::*;
            #[allow(unused_imports)]
            use $crate::kernel::Feature::*;
            $crate::harness::run(vec![$(
                $crate::harness::Test::new(stringify!($name), $name, vec![$($($need),*)?])
                    .ignored(false $(|| { let _: &str = $why; true })?)
            ),*])
        }
    };
}
