//! Service-side API: `Listener::register("name")` for hand-off mode. (Being written: issue 5.)
