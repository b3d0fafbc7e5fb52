//! Final-hop role: listeners, layer descriptor, service hand-off. (Being written: issue 5.)
