//! The libunftp storage back-end over the gateway core.
//!
//! One instance per control connection (libunftp asks the generator for one per session),
//! so it also knows that connection: see [`ControlWatch`].

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use hugbucket_core::{
    ByteRange, ByteStream, CopyMetadata, CoreError, Gateway, ListRequest, ObjectRef, PutOptions,
};
use tokio::io::AsyncWriteExt;
use tokio_util::io::StreamReader;
use unftp_core::storage::{self, FEATURE_RESTART, Fileinfo, Metadata, StorageBackend};

use crate::auth::FtpUser;
use crate::drain::Drain;
use crate::error::{FtpError, Result};
use crate::path::Target;

/// STOR data is read in blocks of this size, handed to the core as they fill: the core
/// ingests blocks this large without copying them again.
const STOR_BLOCK: usize = hugbucket_core::INGEST_BLOCK;

/// Keys per listing page asked of the core.
const LIST_PAGE: usize = 1000;

/// The bytes of `input` as a stream of blocks of `size` bytes (the last one shorter; no
/// empty block), each filled by as many reads as it takes.
fn read_blocks<R>(input: R, size: usize) -> impl Stream<Item = io::Result<Bytes>> + Send
where
    R: tokio::io::AsyncRead + Send + Unpin + 'static,
{
    futures::stream::try_unfold(Some(input), move |input| async move {
        use tokio::io::AsyncReadExt;
        let Some(mut input) = input else {
            return Ok(None);
        };
        let mut block = bytes::BytesMut::with_capacity(size);
        while block.len() < size {
            if input.read_buf(&mut block).await? == 0 {
                return Ok((!block.is_empty()).then(|| (block.freeze(), None)));
            }
        }
        Ok(Some((block.freeze(), Some(input))))
    })
}

/// Metadata of a bucket, folder or object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    len: u64,
    dir: bool,
    modified: SystemTime,
}

impl Metadata for Meta {
    fn len(&self) -> u64 {
        self.len
    }
    fn is_dir(&self) -> bool {
        self.dir
    }
    fn is_file(&self) -> bool {
        !self.dir
    }
    fn is_symlink(&self) -> bool {
        false
    }
    fn modified(&self) -> storage::Result<SystemTime> {
        Ok(self.modified)
    }
    fn gid(&self) -> u32 {
        0
    }
    fn uid(&self) -> u32 {
        0
    }
    fn permissions(&self) -> storage::Permissions {
        storage::Permissions(if self.dir { 0o755 } else { 0o644 })
    }
}

impl Meta {
    fn dir(modified: SystemTime) -> Self {
        Meta {
            len: 0,
            dir: true,
            modified,
        }
    }
}

/// A duplicate of the control connection's socket, used to notice that the client went away.
///
/// In FTP stream mode the end of a STOR is the data connection's EOF, so a client that dies
/// mid-upload looks like one that finished. A client that is killed closes its control
/// connection too, so at the data EOF we peek at the control socket (for up to
/// `FtpConfig::upload_commit_grace`): if it closed, the upload is discarded, not committed.
/// A client that sends ABOR and then closes the data connection normally is not detected.
#[derive(Debug)]
pub(crate) struct ControlWatch {
    socket: std::net::TcpStream,
}

impl ControlWatch {
    pub(crate) fn new(socket: std::net::TcpStream) -> io::Result<Self> {
        socket.set_nonblocking(true)?;
        Ok(ControlWatch { socket })
    }

    /// Whether the peer has closed (or reset) the control connection.
    fn peer_gone(&self) -> bool {
        let mut b = [0u8; 1];
        match self.socket.peek(&mut b) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => {
                e.kind() != io::ErrorKind::WouldBlock && e.kind() != io::ErrorKind::Interrupted
            }
        }
    }
}

/// Whether the client hung up its control connection, waiting up to `grace` for its FIN:
/// a killed client's control FIN can trail its data FIN by a few milliseconds. No watch
/// left means the session already ended, so the client is gone as well.
async fn client_hung_up(control: &Weak<ControlWatch>, grace: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + grace;
    loop {
        match control.upgrade() {
            None => return true,
            Some(c) if c.peer_gone() => return true,
            Some(_) => {}
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The restart marker (`REST`) that libunftp may still hold after a failed transfer.
///
/// libunftp keeps a session's `REST` offset until a transfer *succeeds*, so after a failed
/// `REST n` + `RETR`/`STOR` (e.g. our refusal of `REST` + `STOR`) the next transfer would
/// silently start at `n` again, even when the client sent no `REST`: a plain `RETR` would
/// get the file's tail with a 226. The back-end cannot see the control commands, but it
/// sees every transfer it serves: after one that started at `n > 0` and failed, a transfer
/// asking for offset `n` may be that leftover, so it is refused (never served from a
/// guessed offset). A different offset (a new `REST`, including `REST 0`) or a successful
/// transfer clears it.
#[derive(Debug, Default)]
pub(crate) struct StaleRestart(AtomicU64);

impl StaleRestart {
    /// Called at the start of a transfer libunftp asked for at `start_pos`.
    fn check(&self, start_pos: u64) -> Result<()> {
        let stale = self.0.load(Ordering::Relaxed);
        if stale == 0 {
            return Ok(());
        }
        if start_pos == stale {
            return Err(FtpError::StaleRestart(stale));
        }
        // The client sent a new REST: libunftp's marker is fresh again.
        self.0.store(0, Ordering::Relaxed);
        Ok(())
    }

    /// Called when a transfer that started at `start_pos` ends.
    fn finished<T>(&self, start_pos: u64, result: &Result<T>) {
        match result {
            Ok(_) => self.0.store(0, Ordering::Relaxed),
            Err(FtpError::StaleRestart(_)) => {}
            Err(_) => self.0.store(start_pos, Ordering::Relaxed),
        }
    }
}

/// The storage back-end of one FTP session.
#[derive(Clone)]
pub struct GatewayStorage {
    gateway: Gateway,
    control: Weak<ControlWatch>,
    commit_grace: Duration,
    restart: Arc<StaleRestart>,
    drain: Arc<Drain>,
}

impl fmt::Debug for GatewayStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayStorage").finish_non_exhaustive()
    }
}

/// A `Sync` view of a body stream (libunftp wants `Sync` readers; the stream is only ever
/// polled through `&mut`, so the mutex is never contended).
struct SyncStream(Mutex<ByteStream>);

impl Stream for SyncStream {
    type Item = io::Result<Bytes>;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.get_mut().0.get_mut() {
            Ok(s) => s.as_mut().poll_next(cx),
            Err(_) => Poll::Ready(Some(Err(io::Error::other("body stream poisoned")))),
        }
    }
}

fn check_writable(user: &FtpUser) -> Result<()> {
    if user.writable {
        Ok(())
    } else {
        Err(FtpError::ReadOnly(user.name.clone()))
    }
}

impl GatewayStorage {
    pub(crate) fn new(
        gateway: Gateway,
        control: Weak<ControlWatch>,
        commit_grace: Duration,
        restart: Arc<StaleRestart>,
        drain: Arc<Drain>,
    ) -> Self {
        GatewayStorage {
            gateway,
            control,
            commit_grace,
            restart,
            drain,
        }
    }

    /// The core's reference to `bucket/key`; its calls run where the core puts them.
    fn object(&self, bucket: &str, key: &str) -> Result<ObjectRef> {
        Ok(self.gateway.object(bucket, key)?)
    }

    /// Whether `key/` holds anything (objects, folders or just its folder marker).
    async fn folder_exists(&self, bucket: &str, key: &str) -> Result<bool> {
        let marker = format!("{key}/");
        match self.object(bucket, &marker)?.head().await {
            Ok(_) => return Ok(true),
            Err(CoreError::NoSuchKey(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let page = self
            .gateway
            .list_objects(
                bucket,
                ListRequest {
                    prefix: marker,
                    delimiter: Some("/".into()),
                    max_keys: 1,
                    ..ListRequest::default()
                },
            )
            .await?;
        Ok(!page.objects.is_empty() || !page.common_prefixes.is_empty())
    }

    async fn meta_of(&self, target: &Target) -> Result<Meta> {
        match target {
            Target::Root => Ok(Meta::dir(UNIX_EPOCH)),
            Target::Bucket(b) => Ok(Meta::dir(self.gateway.head_bucket(b).await?.created)),
            Target::Object { bucket, key } => match self
                .object(bucket, key)?
                .head()
                .await
                .map_err(FtpError::from)
            {
                Ok(m) => Ok(Meta {
                    len: m.size,
                    dir: false,
                    modified: m.last_modified,
                }),
                Err(FtpError::Core(CoreError::NoSuchKey(_))) => {
                    if self.folder_exists(bucket, key).await? {
                        Ok(Meta::dir(UNIX_EPOCH))
                    } else {
                        Err(FtpError::NotFound(target.display()))
                    }
                }
                Err(e) => Err(e),
            },
        }
    }

    /// Every entry directly under `prefix` (which is empty or ends in `/`).
    async fn list_dir(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Result<(Vec<(String, Meta)>, Vec<String>)> {
        let mut files = Vec::new();
        let mut dirs = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .gateway
                .list_objects(
                    bucket,
                    ListRequest {
                        prefix: prefix.to_string(),
                        delimiter: Some("/".into()),
                        continuation_token: token.take(),
                        max_keys: LIST_PAGE,
                        ..ListRequest::default()
                    },
                )
                .await?;
            // A non-empty `dir/` object has no name inside `dir` (FTP shows the folder).
            for o in page.objects.into_iter().filter(|o| !o.key.ends_with('/')) {
                let meta = Meta {
                    len: o.size,
                    dir: false,
                    modified: o.last_modified,
                };
                files.push((o.key, meta));
            }
            dirs.extend(page.common_prefixes);
            match page.next_continuation_token {
                Some(t) if page.is_truncated => token = Some(t),
                _ => break,
            }
        }
        Ok((files, dirs))
    }

    /// Every object key under `prefix` and every folder (as `dir/`), walking the tree.
    async fn walk(&self, bucket: &str, prefix: &str) -> Result<(Vec<String>, Vec<String>)> {
        let mut keys = Vec::new();
        let mut folders = vec![prefix.to_string()];
        let mut i = 0;
        while i < folders.len() {
            let (files, dirs) = self.list_dir(bucket, &folders[i].clone()).await?;
            keys.extend(files.into_iter().map(|(k, _)| k));
            folders.extend(dirs);
            i += 1;
        }
        Ok((keys, folders))
    }

    async fn rename_folder(&self, sb: &str, sk: &str, db: &str, dk: &str) -> Result<()> {
        let src = format!("{sk}/");
        let dst = format!("{dk}/");
        if db == sb && dst.starts_with(&src) {
            return Err(FtpError::BadPath(format!(
                "/{db}/{dk} is inside /{sb}/{sk}"
            )));
        }
        let (keys, folders) = self.walk(sb, &src).await?;
        // Folders first (markers keep empty folders), then the objects, then remove the old.
        for f in &folders {
            let new = format!("{dst}{}", &f[src.len()..]);
            self.object(db, &new)?
                .put(Box::pin(futures::stream::empty()), PutOptions::default())
                .await?;
        }
        for k in &keys {
            let new = format!("{dst}{}", &k[src.len()..]);
            self.object(db, &new)?
                .copy_from(&self.object(sb, k)?, CopyMetadata::Copy)
                .await?;
        }
        let mut old: Vec<String> = keys;
        old.extend(folders);
        for chunk in old.chunks(1000) {
            for (key, r) in self.gateway.delete_objects(sb, chunk).await? {
                r.map_err(|e| {
                    tracing::warn!(
                        bucket = sb,
                        key,
                        "rename: could not delete the old key: {e}"
                    );
                    e
                })?;
            }
        }
        Ok(())
    }

    async fn get_stream(&self, path: &Path, start_pos: u64) -> Result<Option<ByteStream>> {
        let target = Target::parse(path)?;
        let Target::Object { bucket, key } = &target else {
            return Err(FtpError::IsDirectory(target.display()));
        };
        let range = (start_pos > 0).then_some(ByteRange::From(start_pos));
        let got = self
            .object(bucket, key)?
            .get(range)
            .await
            .map_err(FtpError::from);
        match got {
            Ok(r) => Ok(Some(r.body)),
            // REST exactly at the end: nothing left to send.
            Err(FtpError::Core(CoreError::InvalidRange { size })) if size == start_pos => Ok(None),
            Err(FtpError::Core(CoreError::NoSuchKey(_)))
                if self.folder_exists(bucket, key).await? =>
            {
                Err(FtpError::IsDirectory(target.display()))
            }
            Err(e) => Err(e),
        }
    }

    /// Sends the object at `path` from `start_pos` on to `output`.
    async fn retr_into<W>(&self, path: &Path, start_pos: u64, output: &mut W) -> Result<u64>
    where
        W: tokio::io::AsyncWrite + Unpin + ?Sized,
    {
        let Some(mut body) = self.get_stream(path, start_pos).await? else {
            return Ok(0);
        };
        let mut sent = 0u64;
        // The core yields large pieces (whole decoded chunk ranges): write them as they come.
        while let Some(piece) = body.next().await {
            let piece = piece?;
            output.write_all(&piece).await?;
            sent += piece.len() as u64;
        }
        output.flush().await?;
        Ok(sent)
    }

    /// Runs one RETR or STOR that starts at `start_pos` inside `span`: refused while the
    /// server drains or when it would replay a stale `REST` marker, then counted and logged.
    async fn transfer(
        &self,
        kind: crate::metrics::Transfer,
        span: tracing::Span,
        start_pos: u64,
        run: impl Future<Output = Result<u64>>,
    ) -> Result<u64> {
        let run = async {
            let _running = self.drain.begin()?;
            self.restart.check(start_pos)?;
            let result = run.await;
            self.restart.finished(start_pos, &result);
            result
        };
        crate::metrics::METRICS.transfer(kind, span, run).await
    }

    async fn put_stream<R>(
        &self,
        user: &FtpUser,
        input: R,
        path: &Path,
        start_pos: u64,
    ) -> Result<u64>
    where
        R: tokio::io::AsyncRead + Send + Unpin + 'static,
    {
        check_writable(user)?;
        if start_pos > 0 {
            return Err(FtpError::Unsupported(
                "writing at an offset (REST + STOR, APPE onto an existing file): objects are written whole",
            ));
        }
        let target = Target::parse(path)?;
        let Target::Object { bucket, key } = &target else {
            return Err(FtpError::IsDirectory(target.display()));
        };
        let control = self.control.clone();
        let grace = self.commit_grace;
        let shown = target.display();
        let data = read_blocks(input, STOR_BLOCK);
        // At the data EOF: refuse to commit when the client already hung up (see ControlWatch).
        let tail = futures::stream::once(async move {
            let gone = client_hung_up(&control, grace).await;
            gone.then(|| {
                Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    format!("the control connection closed during the upload of {shown}"),
                ))
            })
        })
        .filter_map(futures::future::ready);
        let body: ByteStream = Box::pin(data.chain(tail));
        let meta = self
            .object(bucket, key)?
            .put(body, PutOptions::default())
            .await?;
        Ok(meta.size)
    }

    async fn remove_dir(&self, target: &Target) -> Result<()> {
        match target {
            Target::Root => Err(FtpError::BadPath("/".into())),
            Target::Bucket(b) => Ok(self.gateway.delete_bucket(b).await?),
            Target::Object { bucket, key } => {
                let marker = format!("{key}/");
                let (files, dirs) = {
                    let page = self
                        .gateway
                        .list_objects(
                            bucket,
                            ListRequest {
                                prefix: marker.clone(),
                                delimiter: Some("/".into()),
                                max_keys: 1,
                                ..ListRequest::default()
                            },
                        )
                        .await?;
                    (page.objects, page.common_prefixes)
                };
                if !files.is_empty() || !dirs.is_empty() {
                    return Err(FtpError::NotEmpty(target.display()));
                }
                match self.object(bucket, &marker)?.head().await {
                    Ok(_) => Ok(self.object(bucket, &marker)?.delete().await?),
                    Err(CoreError::NoSuchKey(_)) => match self.object(bucket, key)?.head().await {
                        Ok(_) => Err(FtpError::NotDirectory(target.display())),
                        Err(_) => Err(FtpError::NotFound(target.display())),
                    },
                    Err(e) => Err(e.into()),
                }
            }
        }
    }
}

#[async_trait]
impl StorageBackend<FtpUser> for GatewayStorage {
    type Metadata = Meta;

    fn name(&self) -> &str {
        "hugbucket"
    }

    fn supported_features(&self) -> u32 {
        // REST for RETR; REST + STOR (and APPE onto data) is refused in `put` with 502.
        FEATURE_RESTART
    }

    async fn metadata<P: AsRef<Path> + Send + fmt::Debug>(
        &self,
        _user: &FtpUser,
        path: P,
    ) -> storage::Result<Meta> {
        let target = Target::parse(path.as_ref())?;
        Ok(self.meta_of(&target).await?)
    }

    async fn list<P: AsRef<Path> + Send + fmt::Debug>(
        &self,
        _user: &FtpUser,
        path: P,
    ) -> storage::Result<Vec<Fileinfo<PathBuf, Meta>>> {
        let target = Target::parse(path.as_ref())?;
        let base = PathBuf::from(target.display());
        let mut out = Vec::new();
        match &target {
            Target::Root => {
                for b in self.gateway.list_buckets().await.map_err(FtpError::from)? {
                    out.push(Fileinfo {
                        path: base.join(&b.name),
                        metadata: Meta::dir(b.created),
                    });
                }
            }
            Target::Bucket(_) | Target::Object { .. } => {
                let (bucket, prefix) = match &target {
                    Target::Bucket(b) => (b.as_str(), String::new()),
                    Target::Object { bucket, key } => (bucket.as_str(), format!("{key}/")),
                    Target::Root => unreachable!("handled above"),
                };
                let (files, dirs) = self.list_dir(bucket, &prefix).await?;
                if files.is_empty() && dirs.is_empty() {
                    // An empty listing: make sure the directory exists (LIST of a file lists it).
                    let meta = self.meta_of(&target).await?;
                    if !meta.dir {
                        return Ok(vec![Fileinfo {
                            path: base,
                            metadata: meta,
                        }]);
                    }
                }
                for d in dirs {
                    let name = d[prefix.len()..].trim_end_matches('/');
                    out.push(Fileinfo {
                        path: base.join(name),
                        metadata: Meta::dir(UNIX_EPOCH),
                    });
                }
                for (k, meta) in files {
                    out.push(Fileinfo {
                        path: base.join(&k[prefix.len()..]),
                        metadata: meta,
                    });
                }
            }
        }
        Ok(out)
    }

    async fn get_into<'a, P, W: ?Sized>(
        &self,
        user: &FtpUser,
        path: P,
        start_pos: u64,
        output: &'a mut W,
    ) -> storage::Result<u64>
    where
        W: tokio::io::AsyncWrite + Unpin + Sync + Send,
        P: AsRef<Path> + Send + fmt::Debug,
    {
        let path: std::path::PathBuf = path.as_ref().to_path_buf();
        let span = tracing::info_span!("ftp", command = "RETR", user = %user.name, path = %path.display(), start_pos);
        let retr = self.retr_into(&path, start_pos, output);
        let sent = self
            .transfer(crate::metrics::Transfer::Retr, span, start_pos, retr)
            .await?;
        Ok(sent)
    }

    async fn get<P: AsRef<Path> + Send + fmt::Debug>(
        &self,
        _user: &FtpUser,
        path: P,
        start_pos: u64,
    ) -> storage::Result<Box<dyn tokio::io::AsyncRead + Send + Sync + Unpin>> {
        let body = match self.get_stream(path.as_ref(), start_pos).await? {
            Some(b) => b,
            None => Box::pin(futures::stream::empty()),
        };
        Ok(Box::new(StreamReader::new(SyncStream(Mutex::new(body)))))
    }

    async fn put<
        P: AsRef<Path> + Send + fmt::Debug,
        R: tokio::io::AsyncRead + Send + Sync + Unpin + 'static,
    >(
        &self,
        user: &FtpUser,
        input: R,
        path: P,
        start_pos: u64,
    ) -> storage::Result<u64> {
        let path: PathBuf = path.as_ref().to_path_buf();
        let span =
            tracing::info_span!("ftp", command = "STOR", user = %user.name, path = %path.display());
        let stor = self.put_stream(user, input, &path, start_pos);
        let received = self
            .transfer(crate::metrics::Transfer::Stor, span, start_pos, stor)
            .await?;
        Ok(received)
    }

    async fn del<P: AsRef<Path> + Send + fmt::Debug>(
        &self,
        user: &FtpUser,
        path: P,
    ) -> storage::Result<()> {
        check_writable(user)?;
        let target = Target::parse(path.as_ref())?;
        let Target::Object { bucket, key } = &target else {
            return Err(FtpError::IsDirectory(target.display()).into());
        };
        match self.object(bucket, key)?.head().await {
            Ok(_) => {}
            Err(CoreError::NoSuchKey(_)) if self.folder_exists(bucket, key).await? => {
                return Err(FtpError::IsDirectory(target.display()).into());
            }
            Err(e) => return Err(FtpError::from(e).into()),
        }
        self.object(bucket, key)?
            .delete()
            .await
            .map_err(FtpError::from)?;
        Ok(())
    }

    async fn mkd<P: AsRef<Path> + Send + fmt::Debug>(
        &self,
        user: &FtpUser,
        path: P,
    ) -> storage::Result<()> {
        check_writable(user)?;
        let target = Target::parse(path.as_ref())?;
        match &target {
            Target::Root => Err(FtpError::Exists("/".into()).into()),
            Target::Bucket(b) => Ok(self
                .gateway
                .create_bucket(b)
                .await
                .map_err(FtpError::from)?),
            Target::Object { bucket, key } => {
                if self.object(bucket, key)?.head().await.is_ok() {
                    return Err(FtpError::Exists(target.display()).into());
                }
                self.object(bucket, &format!("{key}/"))?
                    .put(Box::pin(futures::stream::empty()), PutOptions::default())
                    .await
                    .map_err(FtpError::from)?;
                Ok(())
            }
        }
    }

    async fn rename<P: AsRef<Path> + Send + fmt::Debug>(
        &self,
        user: &FtpUser,
        from: P,
        to: P,
    ) -> storage::Result<()> {
        check_writable(user)?;
        let src = Target::parse(from.as_ref())?;
        let dst = Target::parse(to.as_ref())?;
        let (
            Target::Object {
                bucket: sb,
                key: sk,
            },
            Target::Object {
                bucket: db,
                key: dk,
            },
        ) = (&src, &dst)
        else {
            return Err(FtpError::Unsupported("renaming buckets or the root").into());
        };
        if src == dst {
            self.meta_of(&src).await?;
            return Ok(());
        }
        match self
            .object(db, dk)?
            .copy_from(&self.object(sb, sk)?, CopyMetadata::Copy)
            .await
        {
            Ok(_) => {
                self.object(sb, sk)?
                    .delete()
                    .await
                    .map_err(FtpError::from)?;
                Ok(())
            }
            Err(CoreError::NoSuchKey(_)) if self.folder_exists(sb, sk).await? => {
                Ok(self.rename_folder(sb, sk, db, dk).await?)
            }
            Err(e) => Err(FtpError::from(e).into()),
        }
    }

    async fn rmd<P: AsRef<Path> + Send + fmt::Debug>(
        &self,
        user: &FtpUser,
        path: P,
    ) -> storage::Result<()> {
        check_writable(user)?;
        let target = Target::parse(path.as_ref())?;
        Ok(self.remove_dir(&target).await?)
    }

    async fn cwd<P: AsRef<Path> + Send + fmt::Debug>(
        &self,
        _user: &FtpUser,
        path: P,
    ) -> storage::Result<()> {
        let target = Target::parse(path.as_ref())?;
        let meta = self.meta_of(&target).await.map_err(|e| match e {
            FtpError::NotFound(p) => FtpError::NotDirectory(p),
            e => e,
        })?;
        if meta.dir {
            Ok(())
        } else {
            Err(FtpError::NotDirectory(target.display()).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed() -> Result<u64> {
        Err(FtpError::Unsupported("test"))
    }

    #[test]
    fn stale_restart_offsets_are_refused_until_a_new_rest_or_a_success() {
        let r = StaleRestart::default();
        assert!(r.check(0).is_ok());
        assert!(r.check(7).is_ok());
        // A failed transfer from 0 leaves nothing behind.
        r.finished(0, &failed());
        assert!(r.check(0).is_ok());
        // A failed transfer from 10: the same offset again may be libunftp's leftover.
        r.finished(10, &failed());
        assert!(matches!(r.check(10), Err(FtpError::StaleRestart(10))));
        assert!(matches!(r.check(10), Err(FtpError::StaleRestart(10))));
        // Another offset means a new REST (here REST 0): allowed, and it clears the marker.
        assert!(r.check(0).is_ok());
        assert!(r.check(10).is_ok());
        // A success clears it as well.
        r.finished(10, &failed());
        assert!(r.check(10).is_err());
        r.finished(5, &Ok(1));
        assert!(r.check(10).is_ok());
    }
}
