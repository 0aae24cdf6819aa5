//! Persistent xorb chunk cache. Not yet implemented: see the cache issue.
