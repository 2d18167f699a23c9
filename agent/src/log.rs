//! Logs: `tracing` events on stderr, human-readable or one JSON object per
//! line (`--log-format json`).

use std::time::{Duration, Instant};

/// How log lines look.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `2025-01-01T00:00:00.000Z  INFO connected feed=...`
    #[default]
    Human,
    /// `{"timestamp":"...","level":"INFO","fields":{"message":"connected",...}}`
    Json,
}

/// Installs the process-wide subscriber (the binary calls it once; a
/// second call is ignored).
pub fn init(format: LogFormat, level: tracing::Level) {
    let b = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_target(false);
    let _ = match format {
        LogFormat::Human => b.with_ansi(false).try_init(),
        LogFormat::Json => b.json().try_init(),
    };
}

/// Lets one line through per interval and counts the rest.
#[derive(Debug)]
pub struct RateLimit {
    every: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimit {
    /// At most one line per `every`.
    pub fn new(every: Duration) -> RateLimit {
        RateLimit {
            every,
            last: None,
            suppressed: 0,
        }
    }
    /// `Some(lines suppressed since the last one)` when a line may go out.
    pub fn allow(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|l| now.duration_since(l) < self.every)
        {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit() {
        let mut r = RateLimit::new(Duration::from_secs(3600));
        assert_eq!(r.allow(), Some(0));
        assert_eq!(r.allow(), None);
        assert_eq!(r.allow(), None);
    }
}
