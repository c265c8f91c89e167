//! The rollout console, `GET /console`: a browser view of the rollout flags (and their
//! changes), the live A/B comparison's charts, the policy canary and the bundle, served from
//! assets embedded in the binary (`host/console/`: nothing from a CDN, nothing downloaded
//! at run time).
//!
//! It sits behind the admin token like the admin API (off, 404, when the admin API is off).
//! A browser cannot add an `Authorization` header to a page's `<script src>`, so the page is
//! a small bootstrap: `/console` answers 401 without the token, its body the sign-in form;
//! the form checks the token against `/admin/features`, keeps it in the tab
//! (`sessionStorage`), and fetches the application's assets (`/console/{asset}`, 401
//! without the token) with the header and injects them. With a valid header on the request
//! itself (a proxy that adds it), `/console` answers 200 and the page uses that header.
//! The Content-Security-Policy allows exactly these inline scripts and styles, by their
//! sha-256, and connections to this server only.

use super::AppState;
use super::admin::authorize;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::sync::{Arc, LazyLock};

/// The page: the bootstrap's markup, with its style and script put in at the markers.
const INDEX_HTML: &str = include_str!("../../console/index.html");
const BOOT_CSS: &str = include_str!("../../console/boot.css");
const BOOT_JS: &str = include_str!("../../console/boot.js");
const APP_CSS: &str = include_str!("../../console/app.css");
const APP_JS: &str = include_str!("../../console/app.js");
const UPLOT_CSS: &str = include_str!("../../console/vendor/uplot/uPlot.min.css");
const UPLOT_JS: &str = include_str!("../../console/vendor/uplot/uPlot.iife.min.js");

/// Where the bootstrap's style goes in `index.html`.
const STYLE_MARKER: &str = "<!--boot.css-->";
/// Where the bootstrap's script goes in `index.html`.
const SCRIPT_MARKER: &str = "<!--boot.js-->";
/// Replaced by how the page was authorized: `header` (200) or `token` (401: sign in).
const AUTH_MARKER: &str = "__SARK_AUTH__";

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// The assets the page fetches with the token and injects, by the name in their URL.
static ASSETS: [(&str, &str, &str); 4] = [
    ("uplot.css", CSS, UPLOT_CSS),
    ("app.css", CSS, APP_CSS),
    ("uplot.js", JS, UPLOT_JS),
    ("app.js", JS, APP_JS),
];

/// The assets' own policy: they are fetched as text, never rendered.
const ASSET_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// The page in both forms, and its Content-Security-Policy.
struct Page {
    /// Served with 200 to a request that carried the token.
    with_header: String,
    /// Served with 401: the sign-in form.
    sign_in: String,
    csp: HeaderValue,
}

static PAGE: LazyLock<Page> = LazyLock::new(|| {
    let page = INDEX_HTML
        .replacen(STYLE_MARKER, &format!("<style>{BOOT_CSS}</style>"), 1)
        .replacen(SCRIPT_MARKER, &format!("<script>{BOOT_JS}</script>"), 1);
    let hashes = |texts: &[&str]| -> String {
        texts
            .iter()
            .map(|t| {
                format!(
                    "'sha256-{}'",
                    data_encoding::BASE64.encode(&Sha256::digest(t.as_bytes()))
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let csp = format!(
        "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; img-src data:; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        hashes(&[BOOT_JS, UPLOT_JS, APP_JS]),
        hashes(&[BOOT_CSS, UPLOT_CSS, APP_CSS]),
    );
    Page {
        with_header: page.replacen(AUTH_MARKER, "header", 1),
        sign_in: page.replacen(AUTH_MARKER, "token", 1),
        // Base64 and the policy's words are ASCII.
        csp: HeaderValue::from_str(&csp).expect("the policy is a valid header value"),
    }
});

/// A console response: `body` as `content_type`, never cached, never sniffed, never framed.
fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: &'static str,
    csp: HeaderValue,
) -> Response {
    let mut response = (status, body).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CONTENT_SECURITY_POLICY, csp);
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// `GET /console`: 200 with the page for a request with the admin token; 401 with the
/// sign-in page without it; 404 (as the admin API) while the admin API is off.
pub async fn page(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let page: &'static Page = &PAGE;
    let html = "text/html; charset=utf-8";
    match authorize(&state, &headers) {
        Ok(()) => respond(StatusCode::OK, html, &page.with_header, page.csp.clone()),
        Err(refused) if refused.status() == StatusCode::UNAUTHORIZED => {
            let mut response = respond(
                StatusCode::UNAUTHORIZED,
                html,
                &page.sign_in,
                page.csp.clone(),
            );
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"sark console\""),
            );
            response
        }
        Err(off) => off,
    }
}

/// `GET /console/{asset}`: the application's scripts and styles, with the admin token only.
pub async fn asset(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    if let Err(refused) = authorize(&state, &headers) {
        return refused;
    }
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some(&(_, content_type, body)) => respond(
            StatusCode::OK,
            content_type,
            body,
            HeaderValue::from_static(ASSET_CSP),
        ),
        None => super::respond::not_found().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text between `open` and `close` in `page`, once.
    fn between<'a>(page: &'a str, open: &str, close: &str) -> &'a str {
        assert_eq!(page.matches(open).count(), 1, "one {open}");
        let start = page.find(open).unwrap() + open.len();
        let end = start + page[start..].find(close).unwrap();
        &page[start..end]
    }

    #[test]
    fn the_policy_allows_exactly_the_inline_script_and_style() {
        let page = &PAGE.sign_in;
        assert!(!page.contains(STYLE_MARKER) && !page.contains(SCRIPT_MARKER));
        assert!(page.contains(r#"data-auth="token""#));
        assert!(PAGE.with_header.contains(r#"data-auth="header""#));
        let csp = PAGE.csp.to_str().unwrap();
        let allows = |directive: &str, text: &str| {
            let hash = data_encoding::BASE64.encode(&Sha256::digest(text.as_bytes()));
            let allowed = csp
                .split(';')
                .map(str::trim)
                .find(|d| d.starts_with(directive))
                .unwrap();
            assert!(allowed.contains(&hash), "{directive} lacks {hash}: {csp}");
        };
        // The bootstrap sits in the page's markup: it must not end its element early.
        assert!(!BOOT_JS.contains("</script") && !BOOT_CSS.contains("</style"));
        let script = between(page, "<script>", "</script>");
        let style = between(page, "<style>", "</style>");
        assert_eq!(script, BOOT_JS, "the inline script is the file, unchanged");
        assert_eq!(style, BOOT_CSS, "the inline style is the file, unchanged");
        allows("script-src", script);
        allows("style-src", style);
        // The injected assets run as inline scripts and styles too.
        for &(name, _, body) in ASSETS.iter() {
            allows(
                if name.ends_with(".js") {
                    "script-src"
                } else {
                    "style-src"
                },
                body,
            );
        }
        // No external references: the page loads nothing but what it injects.
        for forbidden in [
            "src=\"http",
            "href=\"http",
            "src='http",
            "href='http",
            "@import",
        ] {
            assert!(!page.contains(forbidden), "{forbidden} in the page");
        }
    }
}
