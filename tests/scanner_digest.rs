//! Digest lookups against the scripted emulator: the Accept header, a HEAD without
//! `Docker-Content-Digest` (fall back to hashing the manifest), a malformed digest header.

mod emulator;

use std::time::Duration;

use emulator::{Emulator, Request, Response};
use tagline::image::ImageName;
use tagline::scanner::{digest, ScanError, ScanOptions, MANIFEST_MEDIA_TYPES};

const MANIFEST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;

fn options() -> ScanOptions {
    ScanOptions {
        insecure: true,
        timeout: Duration::from_secs(20),
        ..ScanOptions::default()
    }
}

fn image(e: &Emulator) -> ImageName {
    ImageName::parse(&format!("{}/team/app", e.host())).unwrap()
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn head_sends_every_manifest_media_type_and_reads_the_header() {
    let want = format!("sha256:{}", "ab".repeat(32));
    let w = want.clone();
    let e = Emulator::start(move |_r: &Request| {
        Response::json(200, MANIFEST).header("Docker-Content-Digest", w.clone())
    })
    .await;
    let d = digest(&image(&e), "1.0.0", &options()).await.unwrap();
    assert_eq!(d, want);
    let reqs = e.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].method, "HEAD");
    assert_eq!(reqs[0].path, "/v2/team/app/manifests/1.0.0");
    let accept = reqs[0].header("accept").unwrap();
    for mt in MANIFEST_MEDIA_TYPES {
        assert!(accept.contains(mt), "{accept}");
    }
}

/// Some registries (and proxies) drop `Docker-Content-Digest` on HEAD: hash the manifest.
#[tokio::test]
async fn a_head_without_digest_falls_back_to_hashing_the_manifest() {
    let e = Emulator::start(|_r: &Request| Response::json(200, MANIFEST)).await;
    let d = digest(&image(&e), "1.0.0", &options()).await.unwrap();
    assert_eq!(d, format!("sha256:{}", sha256_hex(MANIFEST.as_bytes())));
    let methods: Vec<_> = e.requests().into_iter().map(|r| r.method).collect();
    assert_eq!(methods, ["HEAD", "GET"]);
}

#[tokio::test]
async fn a_malformed_digest_header_is_a_decode_error() {
    let e = Emulator::start(|_r: &Request| {
        Response::json(200, MANIFEST).header("Docker-Content-Digest", "md5:abc")
    })
    .await;
    let err = digest(&image(&e), "1.0.0", &options()).await.unwrap_err();
    assert!(matches!(err, ScanError::Decode { .. }), "{err:?}");
}
