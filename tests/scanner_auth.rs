//! Scanner bearer-token flow against the scripted emulator: the challenge, anonymous, Basic and
//! identity-token exchanges, token caching across scans, one refresh on a 401 mid-listing.

mod emulator;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use emulator::{many_tags, page_after, tags_body, Emulator, Request, Response};
use tagline::image::ImageName;
use tagline::scanner::{scan, Credentials, RetryPolicy, ScanError, ScanOptions};

fn options(credentials: Option<Credentials>) -> ScanOptions {
    ScanOptions {
        credentials,
        insecure: true,
        timeout: Duration::from_secs(20),
        exclusion: vec![],
        retry: RetryPolicy {
            initial_backoff: Duration::from_millis(10),
            ..RetryPolicy::default()
        },
        ..ScanOptions::default()
    }
}

fn image(e: &Emulator, repo: &str) -> ImageName {
    ImageName::parse(&format!("{}/{repo}", e.host())).unwrap()
}

fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

/// A registry with a token server at `/token` (Docker Hub's shape, on one host). Tokens are
/// `tok-<n>`; `valid` decides whether the tags endpoint accepts a token (given the token number
/// and how many pages it has served); `token_auth` checks the token request.
struct Bearer {
    issued: AtomicUsize,
    served: Mutex<std::collections::HashMap<String, usize>>,
}

fn bearer_registry(
    tags: Vec<String>,
    page: usize,
    token_field: &'static str,
    expires_in: Option<u64>,
    token_auth: impl Fn(&Request) -> bool + Send + Sync + 'static,
    valid: impl Fn(usize, usize) -> bool + Send + Sync + 'static,
) -> (
    impl Fn(&Request) -> Response + Send + Sync + 'static,
    Arc<Bearer>,
) {
    let state = Arc::new(Bearer {
        issued: AtomicUsize::new(0),
        served: Mutex::new(Default::default()),
    });
    let st = state.clone();
    let handler = move |r: &Request| {
        if r.path == "/token" {
            if !token_auth(r) {
                return Response::json(401, r#"{"details":"incorrect username or password"}"#);
            }
            let n = st.issued.fetch_add(1, Ordering::SeqCst) + 1;
            let mut body = serde_json::json!({ token_field: format!("tok-{n}") });
            if let Some(e) = expires_in {
                body["expires_in"] = e.into();
            }
            return Response::json(200, body.to_string());
        }
        let challenge = || {
            Response::json(401, r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#)
                .header(
                    "WWW-Authenticate",
                    format!(
                        "Bearer realm=\"http://{}/token\",service=\"emulator\",scope=\"repository:team/app:pull\"",
                        r.header("host").unwrap()
                    ),
                )
        };
        let Some(tok) = r
            .header("authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
        else {
            return challenge();
        };
        let Some(n) = tok
            .strip_prefix("tok-")
            .and_then(|n| n.parse::<usize>().ok())
        else {
            return challenge();
        };
        let mut served = st.served.lock().unwrap();
        let count = served.entry(tok.to_string()).or_default();
        if !valid(n, *count) {
            return challenge();
        }
        *count += 1;
        let p = page_after(&tags, page, r.q("last"));
        let mut resp = Response::json(200, tags_body("team/app", p));
        if p.last().is_some_and(|l| l != tags.last().unwrap()) {
            resp = resp.header(
                "Link",
                format!(
                    "</v2/team/app/tags/list?n={page}&last={}>; rel=\"next\"",
                    p.last().unwrap()
                ),
            );
        }
        resp
    };
    (handler, state)
}

#[tokio::test]
async fn docker_hub_anonymous_bearer_token() {
    let (h, state) = bearer_registry(
        many_tags(5),
        100,
        "token",
        Some(300),
        |r| r.header("authorization").is_none(),
        |_, _| true,
    );
    let e = Emulator::start(h).await;
    let r = scan(&image(&e, "team/app"), &options(None)).await.unwrap();
    assert_eq!(r.tags.len(), 5);
    assert_eq!(state.issued.load(Ordering::SeqCst), 1);
    let token_req = e
        .requests()
        .into_iter()
        .find(|r| r.path == "/token")
        .unwrap();
    assert_eq!(token_req.q("service"), Some("emulator"));
    assert_eq!(token_req.q("scope"), Some("repository:team/app:pull"));
    assert_eq!(token_req.method, "GET");
}

/// Basic credentials go to the token server; the answer carries only `access_token`.
#[tokio::test]
async fn basic_credentials_are_exchanged_for_an_access_token() {
    let (h, state) = bearer_registry(
        many_tags(3),
        100,
        "access_token",
        None,
        |r| r.header("authorization") == Some(basic("bob", "pw").as_str()),
        |_, _| true,
    );
    let e = Emulator::start(h).await;
    let creds = Credentials::Basic {
        username: "bob".into(),
        password: "pw".into(),
    };
    let r = scan(&image(&e, "team/app"), &options(Some(creds)))
        .await
        .unwrap();
    assert_eq!(r.tags, ["t00002", "t00001", "t00000"]);
    assert_eq!(state.issued.load(Ordering::SeqCst), 1);
    // The registry itself never saw the Basic credentials.
    assert!(e
        .requests()
        .iter()
        .filter(|r| r.path != "/token")
        .all(|r| !r.header("authorization").unwrap_or("").starts_with("Basic")));
}

#[tokio::test]
async fn a_wrong_password_at_the_token_server_is_an_auth_error() {
    let (h, _) = bearer_registry(
        many_tags(3),
        100,
        "token",
        None,
        |r| r.header("authorization") == Some(basic("bob", "pw").as_str()),
        |_, _| true,
    );
    let e = Emulator::start(h).await;
    let creds = Credentials::Basic {
        username: "bob".into(),
        password: "wrong-Secret".into(),
    };
    let err = scan(&image(&e, "team/app"), &options(Some(creds)))
        .await
        .unwrap_err();
    assert!(matches!(err, ScanError::Auth { .. }), "{err:?}");
    let msg = format!("{err} {err:?}");
    assert!(
        msg.contains("token request to 127.0.0.1 answered HTTP 401"),
        "{msg}"
    );
    assert!(!msg.contains("wrong-Secret"), "{msg}");
}

/// A docker config `identitytoken` is an OAuth2 refresh token: POSTed to the realm.
#[tokio::test]
async fn an_identity_token_is_exchanged_with_a_refresh_token_grant() {
    let (h, state) = bearer_registry(
        many_tags(2),
        100,
        "access_token",
        None,
        |r| {
            let form: std::collections::HashMap<String, String> =
                url::form_urlencoded::parse(&r.body).into_owned().collect();
            r.method == "POST"
                && form.get("grant_type").map(String::as_str) == Some("refresh_token")
                && form.get("refresh_token").map(String::as_str) == Some("idtok-123")
                && form.get("service").map(String::as_str) == Some("emulator")
                && form.get("scope").map(String::as_str) == Some("repository:team/app:pull")
        },
        |_, _| true,
    );
    let e = Emulator::start(h).await;
    let creds = Credentials::IdentityToken("idtok-123".into());
    let r = scan(&image(&e, "team/app"), &options(Some(creds)))
        .await
        .unwrap();
    assert_eq!(r.tags.len(), 2);
    assert_eq!(state.issued.load(Ordering::SeqCst), 1);
}

/// A second scan reuses the token: no token request, no challenge round trip.
#[tokio::test]
async fn tokens_are_cached_across_scans() {
    let (h, state) = bearer_registry(many_tags(3), 100, "token", Some(300), |_| true, |_, _| true);
    let e = Emulator::start(h).await;
    scan(&image(&e, "team/app"), &options(None)).await.unwrap();
    assert_eq!(e.tag_requests(), 2);
    let r = scan(&image(&e, "team/app"), &options(None)).await.unwrap();
    assert_eq!(r.tags.len(), 3);
    assert_eq!(state.issued.load(Ordering::SeqCst), 1);
    assert_eq!(e.tag_requests(), 3);
}

/// A token that expires mid-listing (here: each token serves one page) is refreshed on the 401,
/// and the listing completes.
#[tokio::test]
async fn a_401_mid_listing_refreshes_the_token() {
    let tags = many_tags(250);
    let (h, state) = bearer_registry(
        tags.clone(),
        100,
        "token",
        Some(300),
        |_| true,
        |_, served| served < 1,
    );
    let e = Emulator::start(h).await;
    let r = scan(&image(&e, "team/app"), &options(None)).await.unwrap();
    assert_eq!(r.tags.len(), 250);
    assert_eq!(r.pages, 3);
    assert_eq!(state.issued.load(Ordering::SeqCst), 3);
}

/// A registry that rejects every fresh token: one refresh, then an auth error.
#[tokio::test]
async fn a_rejected_fresh_token_is_an_auth_error_after_one_refresh() {
    let (h, state) = bearer_registry(many_tags(3), 100, "token", None, |_| true, |_, _| false);
    let e = Emulator::start(h).await;
    let err = scan(&image(&e, "team/app"), &options(None))
        .await
        .unwrap_err();
    assert!(matches!(err, ScanError::Auth { .. }), "{err:?}");
    assert_eq!(state.issued.load(Ordering::SeqCst), 1);
    assert_eq!(e.tag_requests(), 2);
}

/// A realm that is not an http(s) URL is refused (no request to it).
#[tokio::test]
async fn a_realm_that_is_not_http_is_refused() {
    let e = Emulator::start(|_r: &Request| {
        Response::json(401, "{}").header("WWW-Authenticate", "Bearer realm=\"file:///etc/passwd\"")
    })
    .await;
    let err = scan(&image(&e, "team/app"), &options(None))
        .await
        .unwrap_err();
    assert!(matches!(err, ScanError::Auth { .. }), "{err:?}");
    assert!(err.to_string().contains("not an http(s) URL"), "{err}");
}

/// A Basic challenge without credentials: clear auth error, not a retry loop.
#[tokio::test]
async fn a_basic_challenge_without_credentials() {
    let e = Emulator::start(|_r: &Request| {
        Response::json(401, "{}").header("WWW-Authenticate", "Basic realm=\"Registry\"")
    })
    .await;
    let err = scan(&image(&e, "team/app"), &options(None))
        .await
        .unwrap_err();
    assert!(matches!(err, ScanError::Auth { .. }), "{err:?}");
    assert!(err.to_string().contains("none given"), "{err}");
    assert_eq!(e.tag_requests(), 1);
}
