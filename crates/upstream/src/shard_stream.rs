//! Incremental parser of the `/v2/shards` NDJSON answer (spec §6.3).

use serde::Deserialize;

use crate::error::{Result, UpstreamError};

/// Longest accepted frame line, in bytes.
pub const MAX_FRAME_LINE: usize = 1 << 20;

const OP: &str = "upload shard v2";

/// A parsed frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardFrame {
    /// `{"type":"validating","verified":n,"total":m}`.
    Validating {
        /// Items verified so far.
        verified: u64,
        /// Items to verify.
        total: u64,
    },
    /// `{"type":"committing","stage":...}`.
    Committing {
        /// `uploading` or `syncing`.
        stage: String,
    },
    /// `{"type":"result"}`: terminal success.
    Result,
    /// `{"type":"error","message":...,"retryable":...}`: terminal failure.
    Error {
        /// The message.
        message: String,
        /// Whether repeating the upload may succeed.
        retryable: bool,
    },
    /// Any other type (ignored).
    Unknown(String),
}

#[derive(Deserialize)]
struct RawFrame {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    verified: u64,
    #[serde(default)]
    total: u64,
    #[serde(default)]
    stage: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    retryable: bool,
}

/// Parses one frame line (without its `\n`).
pub fn parse_frame(line: &[u8]) -> Result<ShardFrame> {
    let raw: RawFrame = crate::transport::parse_json(OP, line)?;
    Ok(match raw.kind.as_str() {
        "validating" => ShardFrame::Validating {
            verified: raw.verified,
            total: raw.total,
        },
        "committing" => ShardFrame::Committing { stage: raw.stage },
        "result" => ShardFrame::Result,
        "error" => ShardFrame::Error {
            message: raw.message,
            retryable: raw.retryable,
        },
        _ => ShardFrame::Unknown(raw.kind),
    })
}

/// Feeds body pieces in; reports the terminal frame as soon as it arrives.
#[derive(Debug, Default)]
pub struct ShardStreamParser {
    buf: Vec<u8>,
    frames: usize,
    last_progress: Option<ShardFrame>,
}

impl ShardStreamParser {
    /// A new parser.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of frames parsed so far.
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// The last non-terminal frame seen (progress), if any.
    pub fn last_progress(&self) -> Option<&ShardFrame> {
        self.last_progress.as_ref()
    }

    fn line(&mut self, line: &[u8]) -> Result<Option<()>> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        self.frames += 1;
        match parse_frame(line)? {
            ShardFrame::Result => Ok(Some(())),
            ShardFrame::Error { message, retryable } => {
                Err(UpstreamError::ShardRejected { message, retryable })
            }
            other => {
                self.last_progress = Some(other);
                Ok(None)
            }
        }
    }

    /// Feeds a piece of the body. `Ok(Some(()))` = a `result` frame arrived (success);
    /// an `error` frame gives [`UpstreamError::ShardRejected`]; `Ok(None)` = keep reading.
    pub fn push(&mut self, piece: &[u8]) -> Result<Option<()>> {
        let mut rest = piece;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            let (head, tail) = rest.split_at(nl);
            rest = &tail[1..];
            let done = if self.buf.is_empty() {
                self.line(head)?
            } else {
                self.check_len(head.len())?;
                let mut line = std::mem::take(&mut self.buf);
                line.extend_from_slice(head);
                self.line(&line)?
            };
            if done.is_some() {
                return Ok(Some(()));
            }
        }
        self.check_len(rest.len())?;
        self.buf.extend_from_slice(rest);
        Ok(None)
    }

    fn check_len(&self, extra: usize) -> Result<()> {
        if self.buf.len() + extra > MAX_FRAME_LINE {
            return Err(UpstreamError::decode(OP, "frame line too long"));
        }
        Ok(())
    }

    /// Ends the stream: a final unterminated line is parsed; a stream that ended without
    /// `result` or `error` is an error (retryable: the connection was probably cut).
    pub fn finish(&mut self) -> Result<()> {
        if !self.buf.is_empty() {
            let line = std::mem::take(&mut self.buf);
            if self.line(&line)?.is_some() {
                return Ok(());
            }
        }
        Err(UpstreamError::ShardRejected {
            message: "shard upload stream ended without a result".into(),
            retryable: true,
        })
    }
}

/// Parses a complete body.
pub fn parse_shard_stream(body: &[u8]) -> Result<()> {
    let mut p = ShardStreamParser::new();
    if p.push(body)?.is_some() {
        return Ok(());
    }
    p.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = concat!(
        r#"{"type": "validating", "verified": 0, "total": 5}"#,
        "\n",
        r#"{"type": "validating", "verified": 5, "total": 5}"#,
        "\n",
        r#"{"type": "committing", "stage": "uploading"}"#,
        "\n",
        r#"{"type": "heartbeat-new-kind", "x": [1,2]}"#,
        "\n",
        r#"{"type": "committing", "stage": "syncing"}"#,
        "\n",
        r#"{"type": "result"}"#,
        "\n"
    );

    #[test]
    fn full_success_stream() {
        parse_shard_stream(OK.as_bytes()).unwrap();
        // Without the final newline, too.
        parse_shard_stream(OK.trim_end().as_bytes()).unwrap();
    }

    #[test]
    fn byte_by_byte_feeding() {
        let mut p = ShardStreamParser::new();
        let bytes = OK.as_bytes();
        let mut done_at = None;
        for (i, b) in bytes.iter().enumerate() {
            if p.push(std::slice::from_ref(b)).unwrap().is_some() {
                done_at = Some(i);
                break;
            }
        }
        assert_eq!(done_at, Some(bytes.len() - 1));
        assert_eq!(p.frames(), 6);
        assert_eq!(
            p.last_progress(),
            Some(&ShardFrame::Committing {
                stage: "syncing".into()
            })
        );
    }

    #[test]
    fn error_frame() {
        let body = concat!(
            r#"{"type":"validating","verified":0,"total":1}"#,
            "\n",
            r#"{"type":"error","message":"shard references unknown xorbs","retryable":false}"#,
            "\n"
        );
        match parse_shard_stream(body.as_bytes()) {
            Err(UpstreamError::ShardRejected { message, retryable }) => {
                assert_eq!(message, "shard references unknown xorbs");
                assert!(!retryable);
            }
            other => panic!("{other:?}"),
        }
        let body = "{\"type\":\"error\",\"message\":\"busy\",\"retryable\":true}\n";
        let err = parse_shard_stream(body.as_bytes()).unwrap_err();
        assert!(err.is_retryable());
    }

    #[test]
    fn stream_without_result_is_an_error() {
        let body = "{\"type\":\"validating\",\"verified\":0,\"total\":1}\n";
        let err = parse_shard_stream(body.as_bytes()).unwrap_err();
        assert!(matches!(err, UpstreamError::ShardRejected { .. }));
        assert!(parse_shard_stream(b"").is_err());
        assert!(parse_shard_stream(b"\n\n").is_err());
    }

    #[test]
    fn garbage_and_overlong_lines() {
        assert!(matches!(
            parse_shard_stream(b"not json\n"),
            Err(UpstreamError::Decode { .. })
        ));
        assert!(matches!(
            parse_shard_stream(b"{\"no_type\":1}\n"),
            Err(UpstreamError::Decode { .. })
        ));
        let mut p = ShardStreamParser::new();
        let big = vec![b'x'; MAX_FRAME_LINE / 2 + 1];
        assert!(p.push(&big).unwrap().is_none());
        assert!(p.push(&big).is_err());
    }

    #[test]
    fn stops_at_first_terminal_frame() {
        let body = "{\"type\":\"result\"}\n{\"type\":\"error\",\"message\":\"x\"}\n";
        parse_shard_stream(body.as_bytes()).unwrap();
    }
}
