//! A scripted registry emulator: a tiny HTTP/1.1 server on 127.0.0.1 that plays the quirks a
//! real registry here cannot show (page caps, missing `Link`, oldest-first order, loops, 429,
//! huge or cut bodies). Each quirk is named after the registry that behaves so.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request as the emulator saw it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
    /// Header names lower-cased.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn q(&self, k: &str) -> Option<&str> {
        self.query.get(k).map(String::as_str)
    }
    pub fn header(&self, k: &str) -> Option<&str> {
        self.headers.get(k).map(String::as_str)
    }
}

/// What to answer.
pub enum Body {
    Bytes(Vec<u8>),
    /// `len` bytes of `fill`, streamed in chunks; with `declared` as Content-Length if given,
    /// else chunked. The connection is closed after `len` bytes even if `declared` is larger.
    Stream {
        len: u64,
        fill: u8,
        declared: Option<u64>,
    },
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
    /// Wait this long before answering.
    pub delay: Option<std::time::Duration>,
}

impl Response {
    pub fn json(status: u16, body: impl Into<String>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: Body::Bytes(body.into().into_bytes()),
            delay: None,
        }
    }
    pub fn stream(len: u64, declared: Option<u64>) -> Response {
        Response {
            status: 200,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: Body::Stream {
                len,
                fill: b' ',
                declared,
            },
            delay: None,
        }
    }
    pub fn delayed(mut self, d: std::time::Duration) -> Response {
        self.delay = Some(d);
        self
    }
    pub fn header(mut self, k: &str, v: impl Into<String>) -> Response {
        self.headers.push((k.into(), v.into()));
        self
    }
}

type Handler = dyn Fn(&Request) -> Response + Send + Sync;

/// A running emulator; every request is logged.
pub struct Emulator {
    pub port: u16,
    pub log: Arc<Mutex<Vec<Request>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Emulator {
    pub async fn start(handler: impl Fn(&Request) -> Response + Send + Sync + 'static) -> Emulator {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let log2 = log.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let handler = handler.clone();
                let log = log2.clone();
                tokio::spawn(async move {
                    let _ = serve(sock, handler, log).await;
                });
            }
        });
        Emulator { port, log, task }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().unwrap().clone()
    }

    pub fn tag_requests(&self) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.path.ends_with("/tags/list"))
            .count()
    }
}

async fn serve(
    mut sock: TcpStream,
    handler: Arc<Handler>,
    log: Arc<Mutex<Vec<Request>>>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    let head_end = loop {
        let n = sock.read(&mut tmp).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&tmp[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_string();
    let target = first.next().unwrap_or_default().to_string();
    let mut headers = BTreeMap::new();
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = sock.read(&mut tmp).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&tmp[..n]);
    }
    let url = url::Url::parse(&format!("http://x{target}")).unwrap();
    let req = Request {
        method,
        path: url.path().to_string(),
        query: url.query_pairs().into_owned().collect(),
        headers,
        body,
    };
    log.lock().unwrap().push(req.clone());
    let resp = handler(&req);
    if let Some(d) = resp.delay {
        tokio::time::sleep(d).await;
    }
    let reason = match resp.status {
        200 => "OK",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        _ => "Status",
    };
    let mut out = format!("HTTP/1.1 {} {reason}\r\nConnection: close\r\n", resp.status);
    for (k, v) in &resp.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    let head_only = req.method == "HEAD";
    match resp.body {
        Body::Bytes(b) => {
            out.push_str(&format!("Content-Length: {}\r\n\r\n", b.len()));
            sock.write_all(out.as_bytes()).await?;
            if !head_only {
                sock.write_all(&b).await?;
            }
        }
        Body::Stream {
            len,
            fill,
            declared,
        } => {
            match declared {
                Some(d) => out.push_str(&format!("Content-Length: {d}\r\n\r\n")),
                None => out.push_str("Transfer-Encoding: chunked\r\n\r\n"),
            }
            sock.write_all(out.as_bytes()).await?;
            let chunk = vec![fill; 64 * 1024];
            let mut sent = 0u64;
            while sent < len {
                let n = (len - sent).min(chunk.len() as u64) as usize;
                if declared.is_none() {
                    sock.write_all(format!("{n:x}\r\n").as_bytes()).await?;
                    sock.write_all(&chunk[..n]).await?;
                    sock.write_all(b"\r\n").await?;
                } else {
                    sock.write_all(&chunk[..n]).await?;
                }
                sent += n as u64;
            }
            if declared.is_none() {
                sock.write_all(b"0\r\n\r\n").await?;
            }
        }
    }
    sock.flush().await?;
    let _ = sock.shutdown().await;
    Ok(())
}

/// `{"name": repo, "tags": [...]}`.
pub fn tags_body(repo: &str, tags: &[String]) -> String {
    serde_json::json!({ "name": repo, "tags": tags }).to_string()
}

/// `n` distinct tags `t00000`, `t00001`, ...
pub fn many_tags(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("t{i:05}")).collect()
}

/// Slices `tags` (in the given order) after `last` (by position of `last` in that order; from
/// the start if absent or unknown), at most `n`.
pub fn page_after<'a>(tags: &'a [String], n: usize, last: Option<&str>) -> &'a [String] {
    let start = match last {
        Some(l) => tags.iter().position(|t| t == l).map_or(0, |i| i + 1),
        None => 0,
    };
    let end = (start + n).min(tags.len());
    &tags[start.min(end)..end]
}

/// Distribution-spec paging with a `Link` to the next page: sorted tags, `n` (default `default_n`,
/// capped at `max_n`) and `last` honoured. `absolute` picks an absolute Link (to the Host the
/// request named) or a relative one.
pub fn spec_paging(
    repo: &'static str,
    mut tags: Vec<String>,
    default_n: usize,
    max_n: usize,
    absolute: bool,
) -> impl Fn(&Request) -> Response + Send + Sync + 'static {
    tags.sort();
    move |r: &Request| {
        if r.path != format!("/v2/{repo}/tags/list") {
            return Response::json(404, r#"{"errors":[{"code":"NAME_UNKNOWN"}]}"#);
        }
        let n = r
            .q("n")
            .and_then(|v| v.parse().ok())
            .unwrap_or(default_n)
            .min(max_n);
        let page = page_after(&tags, n, r.q("last"));
        let mut resp = Response::json(200, tags_body(repo, page));
        if let Some(lastp) = page.last() {
            if lastp != tags.last().unwrap() {
                let path = format!("/v2/{repo}/tags/list?n={n}&last={lastp}");
                let link = if absolute {
                    format!(
                        "<http://{}{path}>; rel=\"next\"",
                        r.header("host").unwrap_or("")
                    )
                } else {
                    format!("<{path}>; rel=\"next\"")
                };
                resp = resp.header("Link", link);
            }
        }
        resp
    }
}
