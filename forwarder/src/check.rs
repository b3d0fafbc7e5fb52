//! What `hopd check` reports: one finding per thing looked at, with how to fix it.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Ok,
    Warning,
    Error,
}

/// One result of a check: what was found and, when something is wrong, how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    /// Whose finding, printed after the severity (`warning: border: …`); empty for none.
    pub scope: &'static str,
    pub what: String,
    pub fix: Option<String>,
}

impl Finding {
    pub fn new(severity: Severity, what: impl Into<String>, fix: Option<String>) -> Finding {
        Finding {
            severity,
            scope: "",
            what: what.into(),
            fix,
        }
    }

    pub fn ok(what: impl Into<String>) -> Finding {
        Finding {
            severity: Severity::Ok,
            scope: "",
            what: what.into(),
            fix: None,
        }
    }

    pub fn bad(severity: Severity, what: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            severity,
            scope: "",
            what: what.into(),
            fix: Some(fix.into()),
        }
    }
}

impl Finding {
    /// The same finding, said to be `scope`'s.
    pub fn of(self, scope: &'static str) -> Finding {
        Finding { scope, ..self }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = match self.severity {
            Severity::Ok => "ok",
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        write!(f, "{tag}: ")?;
        if !self.scope.is_empty() {
            write!(f, "{}: ", self.scope)?;
        }
        f.write_str(&self.what)?;
        if let Some(fix) = &self.fix {
            write!(f, "\n  fix: {fix}")?;
        }
        Ok(())
    }
}
