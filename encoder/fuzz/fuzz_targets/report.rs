//! Stack report parser on arbitrary bytes: the checked view's accessors never panic, and a
//! report `ReportRepr` accepts re-emits to bytes that parse to the same report.
#![no_main]

use hopstack_encoder::wire::report::{Report, ReportRepr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = Report::new_checked(data) {
        let _ = (r.version(), r.kind(), r.length(), r.nonce(), r.reporter());
        assert!(r.body().len() <= data.len());
    }
    let Ok(repr) = ReportRepr::parse_bytes(data) else {
        return;
    };
    let bytes = repr.to_vec().expect("a parsed report re-emits");
    assert_eq!(bytes.len(), repr.buffer_len());
    assert_eq!(ReportRepr::parse_bytes(&bytes).as_ref(), Ok(&repr));
    Report::new_checked(&bytes[..]).expect("re-emitted report passes the view check");
});
