//! The browser page, served by the local runtime from the same origin as the API: `/` and
//! `/app/` (index.html), its assets at `/<name>` and `/app/<name>`, and `/config.json`
//! (`{"api": "", "ws": "ws://<host>/v1/ws"}`, built from the request's `Host`, so the page talks
//! to whichever port it was loaded from).
//!
//! The files in `infra/web/` are plain ES modules with no build step; they are embedded in the
//! binary (`include_str!`), so `tessera up` needs nothing beside itself. Deployed elsewhere, the
//! same files go to any static host next to a `config.json` naming the API and WebSocket URLs.
//! These routes need no token (the page is public; its API calls carry one).
//!
//! Not here: anything about the API itself (the gateway dispatches every other path).

use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

/// One embedded file: its name, content type and bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const INDEX: Asset = Asset {
    name: "index.html",
    content_type: "text/html; charset=utf-8",
    body: include_str!("../web/index.html"),
};

const ASSETS: &[Asset] = &[
    INDEX,
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../web/app.js"),
    },
    Asset {
        name: "upload.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../web/upload.js"),
    },
    Asset {
        name: "query.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../web/query.js"),
    },
    Asset {
        name: "agent.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../web/agent.js"),
    },
    Asset {
        name: "sentiment.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../web/sentiment.js"),
    },
    Asset {
        name: "chart.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../web/chart.js"),
    },
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../web/style.css"),
    },
];

fn serve(asset: &'static Asset) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            // The files change with the binary; always revalidate.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        asset.body,
    )
        .into_response()
}

/// The page's configuration: the API on this origin, the WebSocket on this host.
async fn config(headers: HeaderMap) -> Json<serde_json::Value> {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        })
        .unwrap_or("127.0.0.1");
    Json(serde_json::json!({ "api": "", "ws": format!("ws://{host}/v1/ws") }))
}

/// The page's routes (no authorization: mount outside the gateway's token check).
pub fn router() -> Router {
    let mut r = Router::new()
        .route("/", get(|| async { serve(&INDEX) }))
        .route("/app", get(|| async { serve(&INDEX) }))
        .route("/app/", get(|| async { serve(&INDEX) }))
        .route("/config.json", get(config))
        .route("/app/config.json", get(config));
    for asset in ASSETS {
        let h = move || async move { serve(asset) };
        r = r
            .route(&format!("/{}", asset.name), get(h))
            .route(&format!("/app/{}", asset.name), get(h));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    async fn get_path(path: &str) -> (StatusCode, String, String) {
        let resp = router()
            .oneshot(
                Request::get(path)
                    .header("host", "127.0.0.1:3456")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = resp.status();
        let ct = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, ct, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn serves_the_page_its_modules_and_config() {
        for path in ["/", "/app/", "/app/index.html", "/index.html"] {
            let (s, ct, body) = get_path(path).await;
            assert_eq!(s, StatusCode::OK, "{path}");
            assert!(ct.starts_with("text/html"), "{path}");
            assert!(body.contains("app.js"), "{path}");
        }
        for path in [
            "/app.js",
            "/app/upload.js",
            "/query.js",
            "/app/chart.js",
            "/agent.js",
        ] {
            let (s, ct, _) = get_path(path).await;
            assert_eq!(s, StatusCode::OK, "{path}");
            assert!(ct.starts_with("text/javascript"), "{path}");
        }
        let (s, _, body) = get_path("/app/config.json").await;
        assert_eq!(s, StatusCode::OK);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["api"], "");
        assert_eq!(v["ws"], "ws://127.0.0.1:3456/v1/ws");
        assert_eq!(get_path("/app/nope.js").await.0, StatusCode::NOT_FOUND);
    }

    /// A new file in `infra/web/` that is not embedded would be a 404 in the browser (a module
    /// import fails and the page stops): every file there is served, and every module a served
    /// module imports is too.
    #[tokio::test]
    async fn every_file_of_the_page_and_every_import_is_embedded() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
        let names: Vec<&str> = ASSETS.iter().map(|a| a.name).collect();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            assert!(
                names.contains(&name.as_str()),
                "infra/web/{name} is not embedded in ASSETS"
            );
            let (s, _, body) = get_path(&format!("/app/{name}")).await;
            assert_eq!(s, StatusCode::OK, "{name}");
            let on_disk = std::fs::read_to_string(dir.join(&name)).unwrap();
            assert_eq!(body, on_disk, "{name}");
        }
        for asset in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            for part in asset.body.split(" from './").skip(1) {
                let import = part.split('\'').next().unwrap();
                assert!(
                    names.contains(&import),
                    "{} imports {import}, which is not embedded",
                    asset.name
                );
            }
        }
    }

    #[tokio::test]
    async fn the_gateway_serves_the_page_without_a_token_and_still_guards_the_api() {
        let gw =
            crate::gateway::router(Router::new(), Router::new(), crate::auth::JwtKey::random());
        let status = |path: &'static str| {
            let gw = gw.clone();
            async move {
                gw.oneshot(Request::get(path).body(Body::empty()).unwrap())
                    .await
                    .unwrap()
                    .status()
            }
        };
        assert_eq!(status("/").await, StatusCode::OK);
        assert_eq!(status("/app/app.js").await, StatusCode::OK);
        assert_eq!(status("/config.json").await, StatusCode::OK);
        assert_eq!(status("/v1/jobs").await, StatusCode::UNAUTHORIZED);
        assert_eq!(status("/app/other").await, StatusCode::UNAUTHORIZED);
    }
}
