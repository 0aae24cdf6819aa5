//! Percent-encoding sets of the S3 protocol, shared by SigV4 canonicalisation and the
//! `encoding-type=url` listings (and the load generator's signer).

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};

/// AWS "URI encode" set for query names/values: everything but `A-Za-z0-9-_.~`.
pub const URI_ENCODE_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
/// The same for object keys in paths: `/` stays literal.
pub const KEY_ENCODE_SET: &AsciiSet = &URI_ENCODE_SET.remove(b'/');
