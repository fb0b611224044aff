//! The dashboard's files, built into the binary (no build step for the user, nothing loaded
//! from outside the node). See docs/api.md, "The dashboard".

use axum::http::header;
use axum::response::IntoResponse;

const INDEX: &str = include_str!("dashboard/index.html");
const APP: &str = include_str!("dashboard/app.js");
const STYLE: &str = include_str!("dashboard/style.css");

/// Pages that must not be framed or sniffed, and scripts only from the node itself.
const SECURITY: [(header::HeaderName, &str); 3] = [
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'",
    ),
];

fn asset(kind: &'static str, body: &'static str) -> impl IntoResponse {
    let [a, b, c] = SECURITY;
    ([(header::CONTENT_TYPE, kind), a, b, c], body)
}

pub async fn index() -> impl IntoResponse {
    asset("text/html; charset=utf-8", INDEX)
}

pub async fn app() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", APP)
}

pub async fn style() -> impl IntoResponse {
    asset("text/css; charset=utf-8", STYLE)
}
