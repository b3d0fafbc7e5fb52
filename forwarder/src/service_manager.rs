//! Telling systemd how hopd is doing (the sd_notify datagram protocol, `NOTIFY_SOCKET`):
//! `READY=1` once the TUN, its routes and every listener are up, `RELOADING=1` … `READY=1`
//! around a SIGHUP reload, `STATUS=` with one line of counters, and `WATCHDOG=1` only while
//! every packet loop still turns ([`crate::liveness`]). Without `NOTIFY_SOCKET` (not run by
//! systemd with `Type=notify`) every call does nothing.

use std::time::Duration;

use sd_notify::NotifyState;

/// The service manager hopd reports to, if any.
#[derive(Debug, Clone)]
pub struct ServiceManager {
    /// Half of `WATCHDOG_USEC`, as sd_watchdog_enabled(3) advises; `None` without a watchdog.
    watchdog_every: Option<Duration>,
}

impl ServiceManager {
    /// From the environment systemd gives a `Type=notify` service.
    pub fn from_env() -> ServiceManager {
        ServiceManager {
            watchdog_every: sd_notify::watchdog_enabled().map(|d| d / 2),
        }
    }

    fn send(&self, states: &[NotifyState<'_>]) {
        if let Err(e) = sd_notify::notify(states) {
            tracing::warn!(error = %e, "cannot notify the service manager (NOTIFY_SOCKET)");
        }
    }

    /// Start-up is done: every role is serving.
    pub fn ready(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// A reload starts (SIGHUP). systemd 253 and later want the monotonic time with it.
    pub fn reloading(&self) {
        match NotifyState::monotonic_usec_now() {
            Ok(now) => self.send(&[NotifyState::Reloading, now]),
            Err(_) => self.send(&[NotifyState::Reloading]),
        }
    }

    pub fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }

    /// How often to send [`ServiceManager::watchdog`], when systemd watches.
    pub fn watchdog_every(&self) -> Option<Duration> {
        self.watchdog_every
    }

    /// The watchdog keep-alive, sent only while every packet loop beats (within twice its
    /// beat interval): a stuck loop lets the watchdog fire and systemd restart hopd.
    pub fn watchdog_if_alive(&self) -> Result<(), Vec<String>> {
        let stale = crate::liveness::global().stale(2 * crate::liveness::BEAT_EVERY);
        if !stale.is_empty() {
            return Err(stale);
        }
        self.send(&[NotifyState::Watchdog]);
        Ok(())
    }
}
