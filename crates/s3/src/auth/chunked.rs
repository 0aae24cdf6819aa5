//! Streaming decoder for `Content-Encoding: aws-chunked` request bodies.
//!
//! Wire format (signed): `hex-size;chunk-signature=sig\r\n data \r\n` repeated, a final
//! `0;chunk-signature=sig\r\n`, then optional trailer lines (`name:value\r\n`, plus
//! `x-amz-trailer-signature:sig\r\n` when signed) and an empty line. Unsigned bodies omit
//! the `;chunk-signature=` extension.
//!
//! The decoder is a state machine fed with arbitrary `Bytes` frames. Chunk data is
//! returned as zero-copy slices of the input, so memory stays bounded by one header line
//! (at most [`MAX_LINE`] bytes) whatever the chunk size. Data is handed out *before* its
//! chunk signature is checked (a chunk may be gigabytes); a mismatch makes the stream end
//! in an error, so a consumer must only commit an object after a clean end of stream.

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::checksum::{ChecksumAlgorithm, ChecksumHasher};
use super::sigv4::{ChunkSigner, ct_eq};
use crate::error::{S3Error, S3ErrorCode};

/// Longest chunk-size line or trailer line.
pub const MAX_LINE: usize = 4096;
/// Most trailer lines.
pub const MAX_TRAILERS: usize = 8;

/// What the decoder checks.
#[derive(Debug, Clone)]
pub struct ChunkedConfig {
    /// Chunk-signature chain (signed streaming); `None` for unsigned bodies.
    pub signer: Option<ChunkSigner>,
    /// The checksum trailer announced by `x-amz-trailer`, if any.
    pub trailer: Option<ChecksumAlgorithm>,
    /// The trailer must carry `x-amz-trailer-signature` (signed trailer mode).
    pub signed_trailer: bool,
    /// `x-amz-decoded-content-length`.
    pub decoded_length: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    SizeLine,
    Data { remaining: u64 },
    DataCr,
    DataLf,
    Trailers,
    Done,
}

/// The aws-chunked state machine.
#[derive(Debug)]
pub struct ChunkedDecoder {
    cfg: ChunkedConfig,
    state: State,
    line: Vec<u8>,
    chunk_sha: Option<Sha256>,
    chunk_sig: Option<String>,
    checksum: Option<ChecksumHasher>,
    decoded: u64,
    trailers: Vec<(String, String)>,
    trailer_sig: Option<String>,
}

fn malformed(msg: &'static str) -> S3Error {
    S3Error::with_message(
        S3ErrorCode::InvalidRequest,
        format!("malformed aws-chunked body: {msg}"),
    )
}

fn incomplete() -> S3Error {
    S3Error::with_message(
        S3ErrorCode::IncompleteBody,
        "The request body ended before the declared length",
    )
}

impl ChunkedDecoder {
    /// A decoder at the start of a body.
    pub fn new(cfg: ChunkedConfig) -> Self {
        let checksum = cfg.trailer.map(ChecksumAlgorithm::hasher);
        Self {
            cfg,
            state: State::SizeLine,
            line: Vec::new(),
            chunk_sha: None,
            chunk_sig: None,
            checksum,
            decoded: 0,
            trailers: Vec::new(),
            trailer_sig: None,
        }
    }

    /// Decoded bytes so far.
    pub fn decoded_len(&self) -> u64 {
        self.decoded
    }

    /// Feeds one frame; decoded data slices are appended to `out`.
    pub fn push(&mut self, mut input: Bytes, out: &mut Vec<Bytes>) -> Result<(), S3Error> {
        while !input.is_empty() {
            match self.state {
                State::SizeLine | State::Trailers => {
                    let Some(nl) = input.iter().position(|&b| b == b'\n') else {
                        if self.line.len() + input.len() > MAX_LINE {
                            return Err(malformed("line too long"));
                        }
                        self.line.extend_from_slice(&input);
                        return Ok(());
                    };
                    if self.line.len() + nl > MAX_LINE {
                        return Err(malformed("line too long"));
                    }
                    self.line.extend_from_slice(&input[..nl]);
                    let _ = input.split_to(nl + 1);
                    if self.line.pop() != Some(b'\r') {
                        return Err(malformed("line not terminated by CRLF"));
                    }
                    let line = std::mem::take(&mut self.line);
                    if self.state == State::SizeLine {
                        self.size_line(&line)?;
                    } else {
                        self.trailer_line(&line)?;
                    }
                }
                State::Data { remaining } => {
                    let n = remaining.min(input.len() as u64) as usize;
                    let data = input.split_to(n);
                    if let Some(h) = &mut self.chunk_sha {
                        h.update(&data);
                    }
                    if let Some(c) = &mut self.checksum {
                        c.update(&data);
                    }
                    out.push(data);
                    let remaining = remaining - n as u64;
                    self.state = if remaining == 0 {
                        self.end_chunk()?
                    } else {
                        State::Data { remaining }
                    };
                }
                State::DataCr => {
                    if input[0] != b'\r' {
                        return Err(malformed("chunk data longer than its declared size"));
                    }
                    let _ = input.split_to(1);
                    self.state = State::DataLf;
                }
                State::DataLf => {
                    if input[0] != b'\n' {
                        return Err(malformed("chunk data not followed by CRLF"));
                    }
                    let _ = input.split_to(1);
                    self.state = State::SizeLine;
                }
                State::Done => {
                    if input.iter().all(|b| *b == b'\r' || *b == b'\n') {
                        return Ok(());
                    }
                    return Err(malformed("data after the final chunk"));
                }
            }
        }
        Ok(())
    }

    fn size_line(&mut self, line: &[u8]) -> Result<(), S3Error> {
        let line = std::str::from_utf8(line).map_err(|_| malformed("chunk header is not ASCII"))?;
        let mut parts = line.split(';');
        let size_hex = parts.next().unwrap_or("").trim();
        if size_hex.is_empty()
            || size_hex.len() > 15
            || !size_hex.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(malformed("bad chunk size"));
        }
        let size = u64::from_str_radix(size_hex, 16).map_err(|_| malformed("bad chunk size"))?;
        let mut sig = None;
        for ext in parts {
            if let Some(v) = ext.trim().strip_prefix("chunk-signature=") {
                sig = Some(v.to_string());
            }
        }
        if self.cfg.signer.is_some() && sig.is_none() {
            return Err(S3Error::with_message(
                S3ErrorCode::SignatureDoesNotMatch,
                "chunk without chunk-signature",
            ));
        }
        if let Some(declared) = self.cfg.decoded_length {
            if self.decoded.saturating_add(size) > declared {
                return Err(malformed("chunks exceed x-amz-decoded-content-length"));
            }
        }
        self.decoded += size;
        self.chunk_sig = sig;
        self.chunk_sha = self.cfg.signer.as_ref().map(|_| Sha256::new());
        if size == 0 {
            self.verify_chunk()?;
            self.state = State::Trailers;
        } else {
            self.state = State::Data { remaining: size };
        }
        Ok(())
    }

    fn verify_chunk(&mut self) -> Result<(), S3Error> {
        if let Some(signer) = &mut self.cfg.signer {
            let digest: [u8; 32] = self.chunk_sha.take().unwrap_or_default().finalize().into();
            let expected = signer.next_chunk(&digest);
            if !ct_eq(&expected, self.chunk_sig.as_deref().unwrap_or("")) {
                return Err(S3Error::with_message(
                    S3ErrorCode::SignatureDoesNotMatch,
                    "The chunk signature we calculated does not match the one you provided.",
                ));
            }
        }
        Ok(())
    }

    fn end_chunk(&mut self) -> Result<State, S3Error> {
        self.verify_chunk()?;
        Ok(State::DataCr)
    }

    fn trailer_line(&mut self, line: &[u8]) -> Result<(), S3Error> {
        if line.is_empty() {
            return self.finish_trailers();
        }
        if self.cfg.trailer.is_none() {
            return Err(malformed("trailer lines without x-amz-trailer"));
        }
        if self.trailers.len() >= MAX_TRAILERS {
            return Err(malformed("too many trailer lines"));
        }
        let line = std::str::from_utf8(line).map_err(|_| malformed("trailer is not UTF-8"))?;
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| malformed("trailer line without ':'"))?;
        let name = name.trim().to_ascii_lowercase();
        let value = value.trim().to_string();
        if name == "x-amz-trailer-signature" {
            self.trailer_sig = Some(value);
        } else {
            self.trailers.push((name, value));
        }
        Ok(())
    }

    fn finish_trailers(&mut self) -> Result<(), S3Error> {
        if self.state == State::Done {
            return Ok(());
        }
        if let Some(algo) = self.cfg.trailer {
            if self.cfg.signed_trailer {
                let signer = self
                    .cfg
                    .signer
                    .as_mut()
                    .ok_or_else(|| malformed("signed trailer without signer"))?;
                let mut canonical = String::new();
                for (n, v) in &self.trailers {
                    canonical.push_str(n);
                    canonical.push(':');
                    canonical.push_str(v);
                    canonical.push('\n');
                }
                let expected = signer.trailer(&canonical);
                if !ct_eq(&expected, self.trailer_sig.as_deref().unwrap_or("")) {
                    return Err(S3Error::with_message(
                        S3ErrorCode::SignatureDoesNotMatch,
                        "The trailer signature we calculated does not match the one you provided.",
                    ));
                }
            }
            let sent = self
                .trailers
                .iter()
                .find(|(n, _)| n == algo.header_name())
                .map(|(_, v)| v.clone())
                .ok_or_else(|| {
                    S3Error::with_message(
                        S3ErrorCode::InvalidRequest,
                        format!("missing trailer {}", algo.header_name()),
                    )
                })?;
            let computed = self
                .checksum
                .take()
                .map(ChecksumHasher::finish_base64)
                .unwrap_or_default();
            if sent != computed {
                return Err(S3Error::with_message(
                    S3ErrorCode::BadDigest,
                    format!(
                        "The {} you specified did not match the calculated checksum.",
                        algo.header_name()
                    ),
                ));
            }
        }
        self.state = State::Done;
        Ok(())
    }

    /// Call at the end of the input; checks that the body was complete.
    pub fn finish(&mut self) -> Result<(), S3Error> {
        match self.state {
            State::Done => {}
            // Tolerate a missing final empty line after the last chunk / trailers.
            State::Trailers if self.line.is_empty() => self.finish_trailers()?,
            _ => return Err(incomplete()),
        }
        if let Some(declared) = self.cfg.decoded_length {
            if self.decoded != declared {
                return Err(incomplete());
            }
        }
        Ok(())
    }

    /// The trailers received (after [`finish`](Self::finish)).
    pub fn trailers(&self) -> &[(String, String)] {
        &self.trailers
    }
}

/// Encodes `data` as an aws-chunked body in chunks of `chunk_size` (for tests and tools).
/// With `signer`, every chunk (and the trailer) is signed; with `trailer`, the checksum of
/// `data` is sent as a trailer.
pub fn encode(
    data: &[u8],
    chunk_size: usize,
    mut signer: Option<ChunkSigner>,
    trailer: Option<ChecksumAlgorithm>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 256);
    let write_chunk = |out: &mut Vec<u8>, c: &[u8], signer: &mut Option<ChunkSigner>| {
        out.extend_from_slice(format!("{:x}", c.len()).as_bytes());
        if let Some(s) = signer {
            let sig = s.next_chunk(&Sha256::digest(c).into());
            out.extend_from_slice(format!(";chunk-signature={sig}").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(c);
        if !c.is_empty() {
            out.extend_from_slice(b"\r\n");
        }
    };
    for c in data.chunks(chunk_size.max(1)) {
        write_chunk(&mut out, c, &mut signer);
    }
    write_chunk(&mut out, &[], &mut signer);
    if let Some(algo) = trailer {
        let mut h = algo.hasher();
        h.update(data);
        let line = format!("{}:{}", algo.header_name(), h.finish_base64());
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
        if let Some(s) = &mut signer {
            let sig = s.trailer(&format!("{line}\n"));
            out.extend_from_slice(format!("x-amz-trailer-signature:{sig}\r\n").as_bytes());
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::sigv4::{
        AuthRequest, Credentials, PayloadMode, SigV4Verifier, parse_amz_date, signing_key,
    };
    use http::{HeaderMap, HeaderValue};
    use proptest::prelude::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    fn key() -> [u8; 32] {
        signing_key(SECRET, "20130524", "us-east-1", "s3")
    }
    const SCOPE: &str = "20130524/us-east-1/s3/aws4_request";

    /// Verifies the header-signed request of one of AWS's streaming "PUT Object" examples
    /// (`headers` after `host` and `x-amz-date`) and returns its chunk signer.
    fn aws_example_signer(
        headers: &[(&'static str, &'static str)],
        auth: &str,
        trailer: bool,
    ) -> ChunkSigner {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("s3.amazonaws.com"));
        h.insert("x-amz-date", HeaderValue::from_static("20130524T000000Z"));
        for (k, v) in headers {
            h.insert(*k, HeaderValue::from_static(v));
        }
        let mut c = Credentials::new();
        c.insert("AKIAIOSFODNN7EXAMPLE", SECRET);
        let req = AuthRequest {
            method: "PUT",
            raw_path: "/examplebucket/chunkObject.txt",
            raw_query: "",
            headers: &h,
        };
        let v = SigV4Verifier::new(&c)
            .verify_header(&req, auth, parse_amz_date("20130524T000000Z").unwrap())
            .unwrap();
        assert_eq!(v.payload, PayloadMode::StreamingSigned { trailer });
        v.chunk_signer.unwrap()
    }

    fn decode_all(cfg: ChunkedConfig, body: &[u8], piece: usize) -> Result<Vec<u8>, S3Error> {
        let mut d = ChunkedDecoder::new(cfg);
        let mut out = Vec::new();
        for p in body.chunks(piece.max(1)) {
            d.push(Bytes::copy_from_slice(p), &mut out)?;
        }
        d.finish()?;
        Ok(out.concat())
    }

    /// AWS example "PUT Object" with STREAMING-AWS4-HMAC-SHA256-PAYLOAD: seed and chunk
    /// signatures reproduce exactly.
    #[test]
    fn aws_chunked_example() {
        let auth = "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";
        let signer = aws_example_signer(
            &[
                ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
                ("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
                ("content-encoding", "aws-chunked"),
                ("x-amz-decoded-content-length", "66560"),
                ("content-length", "66824"),
            ],
            auth,
            false,
        );

        let data = vec![b'a'; 66560];
        let body = encode(&data, 65536, Some(signer.clone()), None);
        assert_eq!(body.len(), 66824);
        let text = String::from_utf8_lossy(&body);
        for sig in [
            "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
            "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
            "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
        ] {
            assert!(text.contains(&format!("chunk-signature={sig}")), "{sig}");
        }
        let cfg = ChunkedConfig {
            signer: Some(signer),
            trailer: None,
            signed_trailer: false,
            decoded_length: Some(66560),
        };
        for piece in [1, 7, 1000, 65536, 100_000] {
            assert_eq!(decode_all(cfg.clone(), &body, piece).unwrap(), data);
        }
        // Any flipped data byte breaks a chunk signature.
        let mut bad = body.clone();
        bad[200] = b'b';
        assert_eq!(
            decode_all(cfg.clone(), &bad, 4096).unwrap_err().code(),
            S3ErrorCode::SignatureDoesNotMatch
        );
        // Truncated body.
        assert_eq!(
            decode_all(cfg.clone(), &body[..body.len() - 90], 4096)
                .unwrap_err()
                .code(),
            S3ErrorCode::IncompleteBody
        );
    }

    /// AWS example with STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER and a CRC32C trailer.
    #[test]
    fn aws_trailer_example() {
        let auth = "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=content-encoding;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class;x-amz-trailer,Signature=106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e";
        let signer = aws_example_signer(
            &[
                ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
                (
                    "x-amz-content-sha256",
                    "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
                ),
                ("content-encoding", "aws-chunked"),
                ("x-amz-decoded-content-length", "66560"),
                ("x-amz-trailer", "x-amz-checksum-crc32c"),
            ],
            auth,
            true,
        );
        let data = vec![b'a'; 66560];
        let body = encode(
            &data,
            65536,
            Some(signer.clone()),
            Some(ChecksumAlgorithm::Crc32c),
        );
        let text = String::from_utf8_lossy(&body);
        for sig in [
            "chunk-signature=b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
            "chunk-signature=1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7",
            "chunk-signature=2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992",
            "x-amz-checksum-crc32c:sOO8/Q==\r\n",
            "x-amz-trailer-signature:d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435",
        ] {
            assert!(text.contains(sig), "{sig}");
        }
        let cfg = ChunkedConfig {
            signer: Some(signer),
            trailer: Some(ChecksumAlgorithm::Crc32c),
            signed_trailer: true,
            decoded_length: Some(66560),
        };
        assert_eq!(decode_all(cfg.clone(), &body, 333).unwrap(), data);
        // Without the final empty line (some clients) it is still accepted.
        assert_eq!(
            decode_all(cfg.clone(), &body[..body.len() - 2], 333).unwrap(),
            data
        );
        // A wrong checksum with a valid-looking layout: signature fails first.
        let bad = text.replace("sOO8/Q==", "sOO8/Q=A");
        assert_eq!(
            decode_all(cfg.clone(), bad.as_bytes(), 4096)
                .unwrap_err()
                .code(),
            S3ErrorCode::SignatureDoesNotMatch
        );
    }

    #[test]
    fn unsigned_trailer_checksums() {
        for algo in ChecksumAlgorithm::ALL {
            let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
            let body = encode(&data, 8192, None, Some(algo));
            let cfg = ChunkedConfig {
                signer: None,
                trailer: Some(algo),
                signed_trailer: false,
                decoded_length: Some(data.len() as u64),
            };
            assert_eq!(decode_all(cfg.clone(), &body, 5000).unwrap(), data);
            // Corrupt one data byte: BadDigest.
            let mut bad = body.clone();
            bad[10] ^= 1;
            assert_eq!(
                decode_all(cfg, &bad, 5000).unwrap_err().code(),
                S3ErrorCode::BadDigest,
                "{algo:?}"
            );
        }
    }

    #[test]
    fn framing_errors() {
        let cfg = |len| ChunkedConfig {
            signer: None,
            trailer: None,
            signed_trailer: false,
            decoded_length: len,
        };
        // Body larger than declared.
        assert!(decode_all(cfg(Some(3)), b"5\r\nhello\r\n0\r\n\r\n", 3).is_err());
        // Declared larger than sent.
        assert_eq!(
            decode_all(cfg(Some(10)), b"5\r\nhello\r\n0\r\n\r\n", 3)
                .unwrap_err()
                .code(),
            S3ErrorCode::IncompleteBody
        );
        // Chunk longer than its size.
        assert!(decode_all(cfg(None), b"3\r\nhello\r\n0\r\n\r\n", 3).is_err());
        // Missing CR.
        assert!(decode_all(cfg(None), b"5\nhello\r\n0\r\n\r\n", 3).is_err());
        // Bad hex and giant sizes.
        assert!(decode_all(cfg(None), b"zz\r\n", 3).is_err());
        assert!(decode_all(cfg(None), b"ffffffffffffffffff\r\n", 3).is_err());
        // Long line.
        assert!(decode_all(cfg(None), &vec![b'1'; MAX_LINE + 10], 100).is_err());
        // Data after the end.
        assert!(decode_all(cfg(None), b"0\r\n\r\nextra", 100).is_err());
        // Truncated mid-data.
        assert_eq!(
            decode_all(cfg(None), b"5\r\nhel", 100).unwrap_err().code(),
            S3ErrorCode::IncompleteBody
        );
        // Unsigned body with signatures is fine.
        assert_eq!(
            decode_all(
                cfg(Some(5)),
                b"5;chunk-signature=00\r\nhello\r\n0;chunk-signature=11\r\n\r\n",
                2
            )
            .unwrap(),
            b"hello"
        );
        // Signed decoder rejects a chunk without signature.
        let s = ChunkSigner::new(key(), "20130524T000000Z", SCOPE, "00");
        let scfg = ChunkedConfig {
            signer: Some(s),
            trailer: None,
            signed_trailer: false,
            decoded_length: None,
        };
        assert_eq!(
            decode_all(scfg, b"5\r\nhello\r\n0\r\n\r\n", 2)
                .unwrap_err()
                .code(),
            S3ErrorCode::SignatureDoesNotMatch
        );
        // Missing trailer.
        let tcfg = ChunkedConfig {
            signer: None,
            trailer: Some(ChecksumAlgorithm::Crc32),
            signed_trailer: false,
            decoded_length: None,
        };
        assert!(decode_all(tcfg, b"5\r\nhello\r\n0\r\n\r\n", 2).is_err());
    }

    proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..600), piece in 1usize..50, signed in any::<bool>()) {
            let signer = signed.then(|| ChunkSigner::new(key(), "20130524T000000Z", SCOPE, "00"));
            let cfg = ChunkedConfig { signer, trailer: Some(ChecksumAlgorithm::Crc32), signed_trailer: signed, decoded_length: Some(100) };
            let _ = decode_all(cfg, &data, piece);
        }

        #[test]
        fn never_panics_on_chunkish(s in "([0-9a-f]{1,3}(;chunk-signature=[0-9a-f]{0,4})?\r\n[a-z]{0,20}\r\n|x-amz-checksum-crc32:[A-Za-z0-9=]{0,8}\r\n|\r\n)*", piece in 1usize..30) {
            let cfg = ChunkedConfig { signer: None, trailer: Some(ChecksumAlgorithm::Crc32), signed_trailer: false, decoded_length: None };
            let _ = decode_all(cfg, s.as_bytes(), piece);
        }

        #[test]
        fn round_trip(data in proptest::collection::vec(any::<u8>(), 0..3000), chunk in 1usize..700, piece in 1usize..900) {
            let signer = ChunkSigner::new(key(), "20130524T000000Z", SCOPE, "seed");
            let body = encode(&data, chunk, Some(signer.clone()), Some(ChecksumAlgorithm::Crc64Nvme));
            let cfg = ChunkedConfig { signer: Some(signer), trailer: Some(ChecksumAlgorithm::Crc64Nvme), signed_trailer: true, decoded_length: Some(data.len() as u64) };
            prop_assert_eq!(decode_all(cfg, &body, piece).unwrap(), data);
        }
    }
}
