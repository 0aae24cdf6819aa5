//! TODO: see the engine issue.
