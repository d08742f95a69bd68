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

/// Displays the innermost cause of an error: what actually failed ("Connection refused"), for
/// messages that name the cause without repeating the whole chain.
pub(crate) struct Root<'a>(pub(crate) &'a (dyn Error + 'static));

impl fmt::Display for Root<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut error = self.0;
        while let Some(source) = error.source() {
            error = source;
        }
        write!(f, "{error}")
    }
}

/// The `Debug` of the crate's start-up errors: the message, then each cause on its own line,
/// so `fn main() -> Result<..>` with `?` prints something a person can act on.
pub(crate) fn report(error: &(dyn Error + 'static), f: &mut fmt::Formatter<'_>) -> fmt::Result {
    write!(f, "{error}")?;
    let mut source = error.source();
    if source.is_some() {
        write!(f, "\n\nCaused by:")?;
    }
    while let Some(cause) = source {
        write!(f, "\n    {cause}")?;
        source = cause.source();
    }
    Ok(())
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
