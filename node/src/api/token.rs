//! The API's credential, as Jupyter does it: a random token written at each start to
//! `<data-dir>/api.token` (mode 0600, so only the node's user and root can read it), required
//! on every request: `Authorization: Bearer TOKEN` from programs, or `?token=TOKEN` once from a
//! browser, which then holds it in a cookie for that node.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The token file's name in the data directory.
pub const TOKEN_FILE: &str = "api.token";
/// The environment variable the CLI and the Rust client read a token from first.
pub const TOKEN_ENV: &str = "SHOAL_API_TOKEN";

/// A random token (64 hex digits).
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken(String);

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(..)")
    }
}

/// Why a token could not be written or found.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The node could not write its token file.
    #[error("cannot write the API token to {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The client found no token: it is not run by the node's user, or not pointed at the
    /// node's data directory.
    #[error(
        "cannot read the API token {path}: {source}; the token is readable only by the user the \
         node runs as: run the command as that user, pass --data-dir DIR of that node, or set \
         {TOKEN_ENV}"
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The operating system gave no random bytes.
    #[error("no randomness for the API token: {0}")]
    Random(String),
}

impl ApiToken {
    /// A fresh random token.
    pub fn generate() -> Result<Self, TokenError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| TokenError::Random(e.to_string()))?;
        Ok(Self(bytes.iter().map(|b| format!("{b:02x}")).collect()))
    }

    /// Wraps a token given by the user (from the environment or a file).
    pub fn from_text(text: &str) -> Self {
        Self(text.trim().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Writes the token to `<data_dir>/api.token`, readable by its owner only, replacing the
    /// previous node's (each start has its own token).
    pub fn write(&self, data_dir: &Path) -> Result<PathBuf, TokenError> {
        let path = data_dir.join(TOKEN_FILE);
        let tmp = data_dir.join(format!("{TOKEN_FILE}.tmp"));
        let err = |source| TokenError::Write {
            path: path.clone(),
            source,
        };
        let _ = std::fs::remove_file(&tmp);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp).map_err(err)?;
        writeln!(file, "{}", self.0).map_err(err)?;
        std::fs::rename(&tmp, &path).map_err(err)?;
        Ok(path)
    }

    /// The token for a node whose data directory is `data_dir`: `SHOAL_API_TOKEN` if set,
    /// else the node's token file.
    pub fn find(data_dir: &Path) -> Result<Self, TokenError> {
        if let Some(t) = std::env::var_os(TOKEN_ENV) {
            return Ok(Self::from_text(&t.to_string_lossy()));
        }
        let path = data_dir.join(TOKEN_FILE);
        std::fs::read_to_string(&path)
            .map(|t| Self::from_text(&t))
            .map_err(|source| TokenError::Read { path, source })
    }

    /// Compares in constant time (a timing side channel must not leak the token).
    fn matches(&self, given: &str) -> bool {
        blake3::hash(self.0.as_bytes()) == blake3::hash(given.as_bytes())
    }
}

/// What the middleware needs: the token, and the cookie name it goes under (per port: two
/// nodes on one host must not overwrite each other's cookie).
#[derive(Debug, Clone)]
pub struct Gate {
    pub token: ApiToken,
    pub cookie: String,
}

impl Gate {
    pub fn new(token: ApiToken, port: u16) -> Arc<Self> {
        Arc::new(Self {
            token,
            cookie: format!("shoal_token_{port}"),
        })
    }

    /// The token a request carries, and whether it came in the query (to be set as a cookie).
    fn presented<'a>(
        &self,
        headers: &'a HeaderMap,
        query: Option<&'a str>,
    ) -> (Option<&'a str>, bool) {
        if let Some(bearer) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        {
            return (Some(bearer.trim()), false);
        }
        if let Some(t) =
            query.and_then(|q| q.split('&').find_map(|pair| pair.strip_prefix("token=")))
        {
            return (Some(t), true);
        }
        let cookie = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|c| {
                c.trim()
                    .strip_prefix(self.cookie.as_str())?
                    .strip_prefix('=')
            });
        (cookie, false)
    }
}

/// Refuses every request without the right token (401, nothing done); a right token given as
/// `?token=` is set as a cookie, so that the browser's next requests carry it.
pub async fn require_token(
    State(gate): State<Arc<Gate>>,
    request: Request,
    next: Next,
) -> Response {
    let query = request.uri().query().map(str::to_string);
    let (given, from_query) = gate.presented(request.headers(), query.as_deref());
    match given {
        Some(t) if gate.token.matches(t) => {
            let mut response = next.run(request).await;
            if from_query {
                let cookie = format!(
                    "{}={}; Path=/; HttpOnly; SameSite=Strict",
                    gate.cookie,
                    gate.token.as_str()
                );
                if let Ok(v) = cookie.parse() {
                    response.headers_mut().insert(header::SET_COOKIE, v);
                }
            }
            response
        }
        Some(_) => unauthorized("wrong API token", request.uri().path()),
        None => unauthorized("missing API token", request.uri().path()),
    }
}

/// The page a browser gets at `/` without the token: how to get in.
const LOGIN_PAGE: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>Shoal: token \
needed</title></head><body style=\"font-family: system-ui, sans-serif; margin: 3em; max-width: 40em\"><h1>This \
dashboard needs the node's token</h1><p>Open the address the node printed at start \
(<code>dashboard: http://&hellip;/?token=&hellip;</code>), or add <code>?token=TOKEN</code> to this \
address; the token is in the node's data directory, in <code>api.token</code>, readable only by \
the node's user.</p></body></html>";

fn unauthorized(what: &str, path: &str) -> Response {
    if path == "/" {
        let page = [(header::CONTENT_TYPE, "text/html; charset=utf-8")];
        return (StatusCode::UNAUTHORIZED, page, LOGIN_PAGE).into_response();
    }
    let body = serde_json::json!({
        "error": format!(
            "{what}: send `Authorization: Bearer TOKEN` (or `?token=TOKEN` from a browser); the \
             token is in the node's data directory, in {TOKEN_FILE}, readable only by the node's user"
        )
    });
    (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_file_is_private_and_replaced_at_each_start() {
        let dir = tempfile::tempdir().unwrap();
        let a = ApiToken::generate().unwrap();
        let path = a.write(dir.path()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let b = ApiToken::generate().unwrap();
        b.write(dir.path()).unwrap();
        let read = std::fs::read_to_string(&path).unwrap();
        assert_eq!(ApiToken::from_text(&read), b);
        assert_ne!(a, b);
    }

    #[test]
    fn tokens_are_found_in_the_header_the_query_or_the_cookie() {
        let token = ApiToken::from_text("abc");
        let gate = Gate::new(token, 7070);
        let mut headers = HeaderMap::new();
        assert_eq!(gate.presented(&headers, None), (None, false));
        assert_eq!(
            gate.presented(&headers, Some("x=1&token=abc")),
            (Some("abc"), true)
        );
        headers.insert(
            header::COOKIE,
            "other=1; shoal_token_7070=abc".parse().unwrap(),
        );
        assert_eq!(gate.presented(&headers, None), (Some("abc"), false));
        headers.insert(header::COOKIE, "shoal_token_7071=abc".parse().unwrap());
        assert_eq!(
            gate.presented(&headers, None),
            (None, false),
            "another node's cookie"
        );
        headers.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(gate.presented(&headers, None), (Some("abc"), false));
        assert!(gate.token.matches("abc") && !gate.token.matches("abd"));
    }
}
