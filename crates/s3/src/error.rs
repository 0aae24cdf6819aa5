//! The S3 error type: standard error codes, their HTTP statuses and the XML error body.
//!
//! Every failure a client sees goes through [`S3Error`]. Errors from the gateway core are
//! mapped to it in exactly one place (`core_error.rs`, wired once `hugbucket-core` exists).

use std::borrow::Cow;
use std::fmt;

use http::{HeaderName, HeaderValue, StatusCode};

use crate::xml_writer::XmlWriter;

macro_rules! codes {
    ($( $(#[$doc:meta])* $name:ident => $status:expr, $msg:expr; )*) => {
        /// Standard S3 error codes used by this gateway (each documented by its default
        /// message).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum S3ErrorCode {
            $( $(#[$doc])* #[doc = $msg] $name, )*
        }

        impl S3ErrorCode {
            /// The `<Code>` string, exactly as S3 spells it.
            pub fn as_str(self) -> &'static str {
                match self { $( Self::$name => stringify!($name), )* }
            }
            /// The HTTP status S3 answers with for this code.
            pub fn status(self) -> StatusCode {
                match self { $( Self::$name => $status, )* }
            }
            /// S3's default message for this code.
            pub fn default_message(self) -> &'static str {
                match self { $( Self::$name => $msg, )* }
            }
        }
    };
}

codes! {
    AccessDenied => StatusCode::FORBIDDEN, "Access Denied";
    AuthorizationHeaderMalformed => StatusCode::BAD_REQUEST, "The authorization header is malformed.";
    AuthorizationQueryParametersError => StatusCode::BAD_REQUEST, "The authorization query parameters are malformed.";
    BadDigest => StatusCode::BAD_REQUEST, "The Content-MD5 or checksum value that you specified did not match what the server received.";
    BucketAlreadyExists => StatusCode::CONFLICT, "The requested bucket name is not available.";
    BucketAlreadyOwnedByYou => StatusCode::CONFLICT, "Your previous request to create the named bucket succeeded and you already own it.";
    BucketNotEmpty => StatusCode::CONFLICT, "The bucket you tried to delete is not empty";
    EntityTooLarge => StatusCode::BAD_REQUEST, "Your proposed upload exceeds the maximum allowed object size.";
    EntityTooSmall => StatusCode::BAD_REQUEST, "Your proposed upload is smaller than the minimum allowed object size.";
    IncompleteBody => StatusCode::BAD_REQUEST, "You did not provide the number of bytes specified by the Content-Length HTTP header.";
    InternalError => StatusCode::INTERNAL_SERVER_ERROR, "We encountered an internal error. Please try again.";
    InvalidAccessKeyId => StatusCode::FORBIDDEN, "The AWS Access Key Id you provided does not exist in our records.";
    InvalidArgument => StatusCode::BAD_REQUEST, "Invalid Argument";
    InvalidBucketName => StatusCode::BAD_REQUEST, "The specified bucket is not valid.";
    InvalidDigest => StatusCode::BAD_REQUEST, "The Content-MD5 you specified is not valid.";
    InvalidPart => StatusCode::BAD_REQUEST, "One or more of the specified parts could not be found. The part might not have been uploaded, or the specified entity tag might not have matched the part's entity tag.";
    InvalidPartNumber => StatusCode::RANGE_NOT_SATISFIABLE, "The requested partnumber is not satisfiable";
    InvalidPartOrder => StatusCode::BAD_REQUEST, "The list of parts was not in ascending order. Parts must be ordered by part number.";
    InvalidRange => StatusCode::RANGE_NOT_SATISFIABLE, "The requested range is not satisfiable";
    InvalidRequest => StatusCode::BAD_REQUEST, "Invalid Request";
    InvalidURI => StatusCode::BAD_REQUEST, "Couldn't parse the specified URI.";
    KeyTooLongError => StatusCode::BAD_REQUEST, "Your key is too long";
    MalformedXML => StatusCode::BAD_REQUEST, "The XML you provided was not well-formed or did not validate against our published schema.";
    MetadataTooLarge => StatusCode::BAD_REQUEST, "Your metadata headers exceed the maximum allowed metadata size.";
    MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED, "The specified method is not allowed against this resource.";
    MissingContentLength => StatusCode::LENGTH_REQUIRED, "You must provide the Content-Length HTTP header.";
    MissingSecurityHeader => StatusCode::BAD_REQUEST, "Your request is missing a required header.";
    NoSuchBucket => StatusCode::NOT_FOUND, "The specified bucket does not exist";
    NoSuchKey => StatusCode::NOT_FOUND, "The specified key does not exist.";
    NoSuchUpload => StatusCode::NOT_FOUND, "The specified multipart upload does not exist. The upload ID might be invalid, or the multipart upload might have been aborted or completed.";
    NotImplemented => StatusCode::NOT_IMPLEMENTED, "A header or query you provided implies functionality that is not implemented.";
    NotModified => StatusCode::NOT_MODIFIED, "Not Modified";
    PreconditionFailed => StatusCode::PRECONDITION_FAILED, "At least one of the preconditions you specified did not hold.";
    RequestHeaderSectionTooLarge => StatusCode::BAD_REQUEST, "Your request header section exceeds the maximum allowed size.";
    RequestTimeout => StatusCode::BAD_REQUEST, "Your socket connection to the server was not read from or written to within the timeout period.";
    RequestTimeTooSkewed => StatusCode::FORBIDDEN, "The difference between the request time and the server's time is too large.";
    ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE, "Service is unable to handle request.";
    SignatureDoesNotMatch => StatusCode::FORBIDDEN, "The request signature we calculated does not match the signature you provided. Check your key and signing method.";
    SlowDown => StatusCode::SERVICE_UNAVAILABLE, "Please reduce your request rate.";
    XAmzContentSHA256Mismatch => StatusCode::BAD_REQUEST, "The provided 'x-amz-content-sha256' header does not match what was computed.";
}

impl fmt::Display for S3ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An S3 error answer: code, message, optional resource and extra response headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Error {
    code: S3ErrorCode,
    message: Cow<'static, str>,
    resource: Option<String>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl std::error::Error for S3Error {}

impl fmt::Display for S3Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl From<S3ErrorCode> for S3Error {
    fn from(code: S3ErrorCode) -> Self {
        Self::new(code)
    }
}

impl S3Error {
    /// An error with S3's default message for `code`.
    pub fn new(code: S3ErrorCode) -> Self {
        Self {
            code,
            message: Cow::Borrowed(code.default_message()),
            resource: None,
            headers: Vec::new(),
        }
    }

    /// An error with a specific message.
    pub fn with_message(code: S3ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            message: message.into(),
            ..Self::new(code)
        }
    }

    /// Sets the `<Resource>` element (usually the request path).
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = Some(resource.into());
        self
    }

    /// Adds a response header (e.g. `Content-Range: bytes */size` for InvalidRange).
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// `InvalidRange` with the `Content-Range: bytes */{size}` header S3 sends.
    pub fn invalid_range(size: u64) -> Self {
        let value = HeaderValue::from_str(&format!("bytes */{size}")).expect("ascii digits");
        Self::new(S3ErrorCode::InvalidRange).header(http::header::CONTENT_RANGE, value)
    }

    /// The error code.
    pub fn code(&self) -> S3ErrorCode {
        self.code
    }
    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.code.status()
    }
    /// Extra response headers.
    pub fn headers(&self) -> &[(HeaderName, HeaderValue)] {
        &self.headers
    }

    /// The XML error document, as S3 sends it.
    pub fn to_xml(&self, request_id: &str, host_id: &str) -> String {
        let mut w = XmlWriter::new_plain("Error");
        w.elem("Code", self.code.as_str());
        w.elem("Message", &self.message);
        if let Some(r) = &self.resource {
            w.elem("Resource", r);
        }
        w.elem("RequestId", request_id);
        w.elem("HostId", host_id);
        w.finish()
    }

    /// Wraps this error into an `io::Error` so it survives a trip through a byte stream
    /// (and back: see [`S3Error::from_io`]).
    pub fn into_io(self) -> std::io::Error {
        std::io::Error::other(self)
    }

    /// Recovers an `S3Error` carried by an `io::Error` made with [`S3Error::into_io`].
    pub fn from_io(err: &std::io::Error) -> Option<&S3Error> {
        err.get_ref().and_then(|e| e.downcast_ref::<S3Error>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_body_has_all_elements() {
        let e = S3Error::with_message(S3ErrorCode::NoSuchKey, "no <such> key").resource("/b/k&1");
        let x = e.to_xml("REQ1", "HOST1");
        assert!(x.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>"));
        assert!(x.contains("<Code>NoSuchKey</Code>"));
        assert!(x.contains("<Message>no &lt;such&gt; key</Message>"));
        assert!(x.contains("<Resource>/b/k&amp;1</Resource>"));
        assert!(x.contains("<RequestId>REQ1</RequestId>"));
        assert_eq!(e.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn statuses() {
        assert_eq!(S3ErrorCode::SlowDown.status().as_u16(), 503);
        assert_eq!(S3ErrorCode::NotImplemented.status().as_u16(), 501);
        assert_eq!(S3ErrorCode::InvalidRange.status().as_u16(), 416);
        assert_eq!(S3ErrorCode::SignatureDoesNotMatch.status().as_u16(), 403);
        assert_eq!(
            S3ErrorCode::XAmzContentSHA256Mismatch.as_str(),
            "XAmzContentSHA256Mismatch"
        );
        let r = S3Error::invalid_range(10);
        assert_eq!(r.headers()[0].1, "bytes */10");
    }

    #[test]
    fn io_round_trip() {
        let io = S3Error::new(S3ErrorCode::BadDigest).into_io();
        assert_eq!(
            S3Error::from_io(&io).unwrap().code(),
            S3ErrorCode::BadDigest
        );
    }
}
