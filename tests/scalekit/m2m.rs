//! (filled in by issue 13)
