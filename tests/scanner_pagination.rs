//! Scanner pagination and body limits against the scripted emulator: `Link` (relative and
//! absolute), registries that cap the page, send no `Link`, list oldest first, repeat or loop;
//! cross-origin links; budgets; huge and cut bodies; odd tag lists.

mod emulator;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use emulator::{many_tags, page_after, spec_paging, tags_body, Emulator, Request, Response};
use tagline::image::ImageName;
use tagline::scanner::{scan, Credentials, Limits, RetryPolicy, ScanError, ScanOptions};

fn options() -> ScanOptions {
    ScanOptions {
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

fn image(e: &Emulator) -> ImageName {
    ImageName::parse(&format!("{}/team/app", e.host())).unwrap()
}

/// What the scan must return: the set, sorted descending byte-wise.
fn expected(tags: &[String]) -> Vec<String> {
    let mut t = tags.to_vec();
    t.sort_by(|a, b| b.cmp(a));
    t.dedup();
    t
}

#[tokio::test]
async fn distribution_relative_link_is_followed() {
    let tags = many_tags(2500);
    let e = Emulator::start(spec_paging("team/app", tags.clone(), 100, 1000, false)).await;
    let r = scan(&image(&e), &options()).await.unwrap();
    assert_eq!(r.tags, expected(&tags));
    assert_eq!(r.pages, 3);
    // The first page asks for n=1000, like Flux.
    assert_eq!(e.requests()[0].q("n"), Some("1000"));
}

#[tokio::test]
async fn distribution_absolute_link_is_followed() {
    let tags = many_tags(1500);
    let e = Emulator::start(spec_paging("team/app", tags.clone(), 100, 1000, true)).await;
    let r = scan(&image(&e), &options()).await.unwrap();
    assert_eq!(r.tags, expected(&tags));
    assert_eq!(r.pages, 2);
}

/// Quay refuses `n` above 100 with `TOO_MANY_TAGS_REQUESTED` instead of truncating
/// (IRC#585); the scanner asks again with the cap it names.
#[tokio::test]
async fn quay_page_cap() {
    let tags = many_tags(250);
    let paging = spec_paging("team/app", tags.clone(), 50, 100, false);
    let e = Emulator::start(move |r: &Request| {
        if r.q("n").and_then(|n| n.parse::<usize>().ok()).unwrap_or(0) > 100 {
            return Response::json(
                400,
                r#"{"errors":[{"code":"TOO_MANY_TAGS_REQUESTED","message":"Requested page size is too large: max is 100","detail":{}}]}"#,
            );
        }
        paging(r)
    })
    .await;
    let r = scan(&image(&e), &options()).await.unwrap();
    assert_eq!(r.tags, expected(&tags));
    assert_eq!(r.pages, 3);
    let asked: Vec<_> = e
        .requests()
        .iter()
        .map(|r| r.q("n").unwrap_or("").to_string())
        .collect();
    assert_eq!(asked, ["1000", "100", "100", "100"]);
}

/// ECR rejects `n` above 1000; asking for exactly 1000 pages through everything.
#[tokio::test]
async fn ecr_page_cap() {
    let tags = many_tags(2001);
    let paging = spec_paging("team/app", tags.clone(), 100, 1000, false);
    let e = Emulator::start(move |r: &Request| {
        if r.q("n").and_then(|n| n.parse::<usize>().ok()).unwrap_or(0) > 1000 {
            return Response::json(
                400,
                r#"{"errors":[{"code":"INVALID_PARAMETER","message":"Invalid parameter at 'maxResults'"}]}"#,
            );
        }
        paging(r)
    })
    .await;
    let r = scan(&image(&e), &options()).await.unwrap();
    assert_eq!(r.tags, expected(&tags));
    assert_eq!(r.pages, 3);
}

/// A page refusal that names no cap is an error naming the registry's message.
#[tokio::test]
async fn a_refusal_without_a_cap_is_a_status_error() {
    let e = Emulator::start(|_r: &Request| {
        Response::json(
            400,
            r#"{"errors":[{"code":"PAGINATION_NUMBER_INVALID","message":"bad n"}]}"#,
        )
    })
    .await;
    let err = scan(&image(&e), &options()).await.unwrap_err();
    assert!(
        matches!(err, ScanError::Status { status: 400, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("PAGINATION_NUMBER_INVALID bad n"),
        "{err}"
    );
    assert!(!err.is_retryable());
}

fn nexus(tags: Vec<String>) -> impl Fn(&Request) -> Response + Send + Sync + 'static {
    let mut tags = tags;
    tags.sort();
    move |r: &Request| {
        let n = r.q("n").and_then(|v| v.parse().ok()).unwrap_or(usize::MAX);
        Response::json(
            200,
            tags_body("team/app", page_after(&tags, n, r.q("last"))),
        )
    }
}

/// Nexus honours `n` and `last` but sends no `Link`: continue with `last` while pages are full.
#[tokio::test]
async fn nexus_no_link() {
    let tags = many_tags(2500);
    let e = Emulator::start(nexus(tags.clone())).await;
    let r = scan(&image(&e), &options()).await.unwrap();
    assert_eq!(r.tags, expected(&tags));
    assert_eq!(r.pages, 3);
}

/// Same, with a multiple of the page size: the last request comes back empty and ends it.
#[tokio::test]
async fn nexus_no_link_exact_multiple() {
    let tags = many_tags(2000);
    let e = Emulator::start(nexus(tags.clone())).await;
    let r = scan(&image(&e), &options()).await.unwrap();
    assert_eq!(r.tags, expected(&tags));
    assert_eq!(e.tag_requests(), 3);
}

/// docker-registry 2.8 ignores `n` and `last`: a big repository comes back whole, longer than
/// the `n` asked for, so there is nothing more to ask.
#[tokio::test]
async fn distribution_2_8_ignores_n_and_last() {
    let tags = many_tags(1200);
    let t = tags.clone();
    let e =
        Emulator::start(move |_r: &Request| Response::json(200, tags_body("team/app", &t))).await;
    let r = scan(&image(&e), &options()).await.unwrap();
    assert_eq!(r.tags, expected(&tags));
    assert_eq!(e.tag_requests(), 1);
    // Exactly `n` tags: one more request (as for Nexus), which repeats the list and ends it.
    let tags = many_tags(1000);
    let t = tags.clone();
    let e =
        Emulator::start(move |_r: &Request| Response::json(200, tags_body("team/app", &t))).await;
    let r = scan(&image(&e), &options()).await.unwrap();
    assert_eq!(r.tags, expected(&tags));
    assert_eq!(e.tag_requests(), 2);
    // That answer (the `last` tag again) showed the registry ignores `last`: from now on an
    // exactly-`n` page from it is the whole list, one request per repository.
    let other = ImageName::parse(&format!("{}/team/other", e.host())).unwrap();
    let r = scan(&other, &options()).await.unwrap();
    assert_eq!(r.tags, expected(&tags));
    assert_eq!(e.tag_requests(), 3);
}

/// docker-registry 2.8 again, with many repositories of exactly `n` tags scanned at once
/// from a fresh start (the service's first pass): one listing asks the continuation that
/// shows `last` is ignored, the others wait for its answer, so the registry serves one
/// extra page in all, not one per repository.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn distribution_2_8_exact_pages_scanned_at_once_are_continued_once() {
    let tags = many_tags(10);
    let t = tags.clone();
    let e =
        Emulator::start(move |_r: &Request| Response::json(200, tags_body("team/app", &t))).await;
    let options = ScanOptions {
        limits: Limits {
            page_size: 10,
            ..Limits::default()
        },
        ..options()
    };
    let scans: Vec<_> = (0..12)
        .map(|i| {
            let image = ImageName::parse(&format!("{}/team/app{i}", e.host())).unwrap();
            let options = options.clone();
            tokio::spawn(async move { scan(&image, &options).await })
        })
        .collect();
    for s in scans {
        assert_eq!(s.await.unwrap().unwrap().tags, expected(&tags));
    }
    assert_eq!(e.tag_requests(), 12 + 1);
}

/// GHCR lists oldest first (upload order), and its `last` is a position in that order.
#[tokio::test]
async fn ghcr_oldest_first() {
    // Upload order unrelated to byte order.
    let tags: Vec<String> = (0..2300)
        .map(|i| format!("{}.{}.{}", (i * 7919) % 13, i % 17, i))
        .collect();
    let t = tags.clone();
    let e = Emulator::start(move |r: &Request| {
        let n: usize = r.q("n").and_then(|v| v.parse().ok()).unwrap_or(100);
        let page = page_after(&t, n, r.q("last"));
        let mut resp = Response::json(200, tags_body("team/app", page));
        if page.last().is_some_and(|l| l != t.last().unwrap()) {
            resp = resp.header(
                "Link",
                format!(
                    "</v2/team/app/tags/list?last={}&n={n}>; rel=\"next\"",
                    page.last().unwrap()
                ),
            );
        }
        resp
    })
    .await;
    let r = scan(&image(&e), &options()).await.unwrap();
    assert_eq!(r.tags, expected(&tags));
    assert_eq!(r.pages, 3);
}

/// Pages that overlap (each repeats the previous page's last tag, as with an inclusive
/// `last`): every tag once.
#[tokio::test]
async fn overlapping_pages_give_each_tag_once() {
    let mut tags = many_tags(950);
    tags.sort();
    let t = tags.clone();
    let e = Emulator::start(move |r: &Request| {
        let start = match r.q("last") {
            Some(l) => t.iter().position(|x| x == l).unwrap(),
            None => 0,
        };
        let end = (start + 400).min(t.len());
        let page = &t[start..end];
        let mut resp = Response::json(200, tags_body("team/app", page));
        if end < t.len() {
            resp = resp.header(
                "Link",
                format!(
                    "</v2/team/app/tags/list?n=400&last={}>; rel=\"next\"",
                    page.last().unwrap()
                ),
            );
        }
        resp
    })
    .await;
    let r = scan(&image(&e), &options()).await.unwrap();
    assert_eq!(r.tags, expected(&tags));
    assert_eq!(r.pages, 3);
}

/// A `Link` chain that loops back to the first page ends, each tag once.
#[tokio::test]
async fn a_looping_link_ends_the_listing() {
    let tags = many_tags(300);
    let t = tags.clone();
    let e = Emulator::start(move |r: &Request| {
        let second = r.q("page") == Some("2");
        let page = if second { &t[150..] } else { &t[..150] };
        let next = if second {
            "</v2/team/app/tags/list?n=1000>; rel=\"next\""
        } else {
            "</v2/team/app/tags/list?page=2>; rel=\"next\""
        };
        Response::json(200, tags_body("team/app", page)).header("Link", next)
    })
    .await;
    let r = scan(&image(&e), &options()).await.unwrap();
    assert_eq!(r.tags, expected(&tags));
    assert_eq!(e.tag_requests(), 2);
}

/// A loop through ever-new URLs that repeat the same tags ends too (the page brings nothing).
#[tokio::test]
async fn a_link_loop_with_fresh_urls_ends_the_listing() {
    let tags = many_tags(10);
    let t = tags.clone();
    let counter = Arc::new(AtomicUsize::new(0));
    let e = Emulator::start(move |_r: &Request| {
        let i = counter.fetch_add(1, Ordering::SeqCst);
        Response::json(200, tags_body("team/app", &t)).header(
            "Link",
            format!("</v2/team/app/tags/list?cursor={i}>; rel=\"next\""),
        )
    })
    .await;
    let r = scan(&image(&e), &options()).await.unwrap();
    assert_eq!(r.tags, expected(&tags));
    assert_eq!(e.tag_requests(), 2);
}

/// A `Link` to another origin is refused, and no credentials (no request at all) go there.
#[tokio::test]
async fn a_cross_origin_link_is_refused_and_gets_no_credentials() {
    let other = Emulator::start(|_r: &Request| Response::json(200, r#"{"tags":["evil"]}"#)).await;
    let other_host = format!("localhost:{}", other.port);
    let e = Emulator::start(move |r: &Request| {
        if r.header("authorization").is_none() {
            return Response::json(401, r#"{"errors":[{"code":"UNAUTHORIZED"}]}"#)
                .header("WWW-Authenticate", "Basic realm=\"x\"");
        }
        Response::json(200, r#"{"tags":["a"]}"#).header(
            "Link",
            format!("<http://{other_host}/v2/team/app/tags/list?last=a>; rel=\"next\""),
        )
    })
    .await;
    let opts = ScanOptions {
        credentials: Some(Credentials::Basic {
            username: "u".into(),
            password: "p".into(),
        }),
        ..options()
    };
    let err = scan(&image(&e), &opts).await.unwrap_err();
    assert!(matches!(err, ScanError::CrossOriginLink { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains(&format!("http://localhost:{}", other.port)),
        "{err}"
    );
    assert!(!err.is_retryable());
    assert!(other.requests().is_empty());
    // The registry itself did get the credentials.
    assert!(e
        .requests()
        .iter()
        .any(|r| r.header("authorization").is_some()));
}

#[tokio::test]
async fn the_page_budget_truncates() {
    let e = Emulator::start(spec_paging("team/app", many_tags(2500), 100, 1000, false)).await;
    let opts = ScanOptions {
        limits: Limits {
            max_pages: 2,
            ..Limits::default()
        },
        ..options()
    };
    let err = scan(&image(&e), &opts).await.unwrap_err();
    match &err {
        ScanError::Truncated { tags, reason, .. } => {
            assert_eq!(*tags, 2000);
            assert!(reason.contains("page budget of 2 pages"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(e.tag_requests(), 2);
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn the_tag_budget_truncates() {
    let e = Emulator::start(spec_paging("team/app", many_tags(2500), 100, 1000, false)).await;
    let opts = ScanOptions {
        limits: Limits {
            max_tags: 1500,
            ..Limits::default()
        },
        ..options()
    };
    let err = scan(&image(&e), &opts).await.unwrap_err();
    assert!(
        matches!(err, ScanError::Truncated { tags: 1500, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("truncated"), "{err}");
}

#[tokio::test]
async fn the_byte_budget_truncates_across_pages() {
    let e = Emulator::start(spec_paging("team/app", many_tags(2500), 100, 1000, false)).await;
    // One page is about 9 kB: two fit, three do not.
    let opts = ScanOptions {
        limits: Limits {
            max_bytes: 20_000,
            ..Limits::default()
        },
        ..options()
    };
    let err = scan(&image(&e), &opts).await.unwrap_err();
    assert!(
        matches!(err, ScanError::Truncated { tags: 2000, .. }),
        "{err:?}"
    );
}

/// A 100 MB streamed body (no Content-Length) stops at the cap instead of filling memory.
#[tokio::test]
async fn a_huge_streamed_body_is_too_large() {
    let e = Emulator::start(|_r: &Request| Response::stream(100 << 20, None)).await;
    let err = scan(&image(&e), &options()).await.unwrap_err();
    assert!(
        matches!(err, ScanError::TooLarge { limit, .. } if limit == 64 << 20),
        "{err:?}"
    );
    assert!(!err.is_retryable());
}

/// A declared Content-Length above the cap is refused before reading.
#[tokio::test]
async fn a_huge_declared_body_is_too_large() {
    let e = Emulator::start(|_r: &Request| Response::stream(1 << 20, Some(100 << 20))).await;
    let opts = ScanOptions {
        limits: Limits {
            max_bytes: 1 << 20,
            ..Limits::default()
        },
        ..options()
    };
    let err = scan(&image(&e), &opts).await.unwrap_err();
    assert!(matches!(err, ScanError::TooLarge { .. }), "{err:?}");
}

/// A body cut short of its Content-Length is a (retryable) transport failure, not a list.
#[tokio::test]
async fn a_cut_body_is_a_connect_error() {
    let e = Emulator::start(|_r: &Request| Response::stream(10, Some(1000))).await;
    let err = scan(&image(&e), &options()).await.unwrap_err();
    assert!(matches!(err, ScanError::Connect { .. }), "{err:?}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn a_body_that_is_not_a_tag_list_is_a_decode_error() {
    let e = Emulator::start(|_r: &Request| Response::json(200, "<html>hello</html>")).await;
    let err = scan(&image(&e), &options()).await.unwrap_err();
    assert!(matches!(err, ScanError::Decode { .. }), "{err:?}");
    assert!(err.to_string().contains("tags/list"), "{err}");
}

/// Names a registry must not send (they would end up in YAML) are dropped and counted.
#[tokio::test]
async fn invalid_tag_names_are_dropped() {
    let e = Emulator::start(|_r: &Request| {
        Response::json(
            200,
            r#"{"tags":["1.0.0","a b","x\ny: z","-rf","1.0.0",".hidden","ok_1"]}"#,
        )
    })
    .await;
    let r = scan(&image(&e), &options()).await.unwrap();
    assert_eq!(r.tags, ["ok_1", "1.0.0"]);
    assert_eq!(r.invalid_tags, 4);
}

#[tokio::test]
async fn null_tags_is_an_empty_list() {
    let e =
        Emulator::start(|_r: &Request| Response::json(200, r#"{"name":"team/app","tags":null}"#))
            .await;
    let r = scan(&image(&e), &options()).await.unwrap();
    assert!(r.tags.is_empty());
}

/// The timeout bounds the whole listing, even when each page answers.
#[tokio::test]
async fn the_timeout_bounds_the_whole_listing() {
    let paging = spec_paging("team/app", many_tags(5000), 100, 100, false);
    let e = Emulator::start(move |r: &Request| paging(r).delayed(Duration::from_millis(100))).await;
    let opts = ScanOptions {
        timeout: Duration::from_millis(700),
        ..options()
    };
    let err = scan(&image(&e), &opts).await.unwrap_err();
    assert!(matches!(err, ScanError::Timeout { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert!(err.to_string().contains("team/app"), "{err}");
}

/// A redirect to another origin may be followed (some registries front a CDN), but the
/// credentials stay behind.
#[tokio::test]
async fn a_cross_origin_redirect_gets_no_credentials() {
    let other = Emulator::start(|_r: &Request| Response::json(200, r#"{"tags":["x"]}"#)).await;
    let other_host = format!("localhost:{}", other.port);
    let e = Emulator::start(move |r: &Request| {
        if r.header("authorization").is_none() {
            return Response::json(401, "{}").header("WWW-Authenticate", "Basic realm=\"x\"");
        }
        let mut resp = Response::json(307, "");
        resp.headers.push((
            "Location".into(),
            format!("http://{other_host}/v2/team/app/tags/list"),
        ));
        resp
    })
    .await;
    let opts = ScanOptions {
        credentials: Some(Credentials::Basic {
            username: "u".into(),
            password: "p".into(),
        }),
        ..options()
    };
    let r = scan(&image(&e), &opts).await.unwrap();
    assert_eq!(r.tags, ["x"]);
    let seen = other.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("authorization"), None);
}
