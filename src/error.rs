//! Shared error plumbing: an underlying cause kept as a `source()`, and a display of a whole
//! chain of causes for log lines.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

/// An underlying error kept as the `source()` of one of ours. Shared (errors are cloned to
/// every request waiting on the same refresh or key fetch), and opaque: the public API does not
/// name the HTTP client's error type.
pub(crate) type Cause = Arc<dyn Error + Send + Sync + 'static>;

/// Wraps an error as a [`Cause`].
pub(crate) fn cause(error: impl Error + Send + Sync + 'static) -> Cause {
    Arc::new(error)
}

/// Displays an error and each of its sources, joined by `: `, for log lines and for errors
/// that keep a message rather than a source.
pub(crate) struct Chain<'a>(pub(crate) &'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(error) = source {
            write!(f, ": {error}")?;
            source = error.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn chain_lists_every_cause() {
        let error = Outer(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "connection refused",
        ));
        assert_eq!(Chain(&error).to_string(), "outer: connection refused");
        assert_eq!(
            Chain(&std::fmt::Error).to_string(),
            std::fmt::Error.to_string()
        );
    }
}
