//! The HTTP server (axum on tokio): the generation endpoints, the page, health and metrics.
//!
//! | route | answer |
//! |---|---|
//! | `GET /` | the web page |
//! | `POST /v1/generate` | a PNG grid, or JSON with one PNG per image (`"format": "images"`) |
//! | `POST /v1/generate/stream` | server-sent events: `progress` frames every `stream_every` tokens, then `done` |
//! | `GET /v1/classes`, `GET /v1/config` | class names; limits and default settings |
//! | `GET /healthz` | `{"status": "ok"}` |
//! | `GET /metrics`, `GET /v1/metrics` | counters in Prometheus' text format; the same as JSON |
//!
//! Sampling runs on the [`Engine`]'s worker thread; waiting for a job, decoding and PNG
//! encoding run on tokio's blocking pool, so the event loop only moves bytes (the
//! generation endpoints are in `generate.rs`).

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use rar_core::GuidanceSchedule;
use rar_sample::SamplingConfig;
use serde::Serialize;
use tokio::sync::oneshot;

use crate::api::RequestLimits;
use crate::classes::ClassNames;
use crate::engine::Engine;
use crate::error::EngineError;
use crate::generate::{generate, generate_stream};
use crate::http_error::ApiError;
use crate::metrics::Metrics;
use crate::render::Renderer;

/// The page: plain HTML and JavaScript, no build step.
const PAGE: &str = include_str!("page.html");

/// The HTTP side's limits and defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// Most images one request may ask for (at most the engine's batch size).
    pub max_images_per_request: usize,
    /// Largest request body accepted (413 above).
    pub max_body_bytes: usize,
    /// Time a client has to send its whole body (408 after).
    pub body_timeout: Duration,
    /// Default tokens between streamed frames.
    pub stream_every: usize,
    /// `Retry-After` of a 429, in seconds.
    pub retry_after_s: u64,
    /// Settings of the fields a request leaves out (the checkpoint's recommended ones).
    pub defaults: SamplingConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_images_per_request: 16,
            max_body_bytes: 16 * 1024,
            body_timeout: Duration::from_secs(10),
            stream_every: 16,
            retry_after_s: 2,
            defaults: SamplingConfig::default(),
        }
    }
}

/// What every handler shares.
pub(crate) struct AppState {
    pub(crate) engine: Engine,
    pub(crate) renderer: Renderer,
    pub(crate) classes: ClassNames,
    pub(crate) config: ServerConfig,
    pub(crate) limits: RequestLimits,
    pub(crate) metrics: Metrics,
    /// Seeds for requests without one.
    pub(crate) seeds: AtomicU64,
}

/// A configured server: the engine, how to draw its tokens, and the class names.
pub struct Server {
    state: Arc<AppState>,
}

/// A server listening on its own runtime thread (see [`Server::spawn`]).
pub struct RunningServer {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl Server {
    /// A server for `engine`. `classes` must name every class of the model, and the request
    /// limit must fit one batch of the engine.
    pub fn new(
        engine: Engine,
        renderer: Renderer,
        classes: ClassNames,
        config: ServerConfig,
    ) -> Result<Self, EngineError> {
        if classes.len() != engine.num_classes() {
            return Err(EngineError::InvalidRequest(format!(
                "{} class names for a model of {} classes",
                classes.len(),
                engine.num_classes()
            )));
        }
        let batch = engine.config().max_batch_images;
        if config.max_images_per_request == 0 || config.max_images_per_request > batch {
            return Err(EngineError::InvalidRequest(format!(
                "max_images_per_request {} must be in 1..={batch} (the engine's batch)",
                config.max_images_per_request
            )));
        }
        config
            .defaults
            .validate()
            .map_err(|e| EngineError::InvalidRequest(format!("default settings: {e}")))?;
        let limits = RequestLimits {
            max_images: config.max_images_per_request,
            defaults: config.defaults.clone(),
            stream_every: config.stream_every,
            num_tokens: engine.num_tokens(),
            codebook_size: engine.codebook_size(),
        };
        let clock = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Ok(Self {
            state: Arc::new(AppState {
                engine,
                renderer,
                classes,
                config,
                limits,
                metrics: Metrics::new(),
                seeds: AtomicU64::new(clock),
            }),
        })
    }

    /// The routes, for serving with your own listener and runtime (`axum::serve`).
    pub fn router(&self) -> Router {
        let state = self.state.clone();
        Router::new()
            .route("/", get(page))
            .route("/healthz", get(healthz))
            .route("/v1/classes", get(classes))
            .route("/v1/config", get(config))
            .route("/v1/generate", post(generate))
            .route("/v1/generate/stream", post(generate_stream))
            .route("/v1/metrics", get(metrics_json))
            .route("/metrics", get(metrics_text))
            .fallback(not_found)
            .layer(middleware::from_fn_with_state(
                state.clone(),
                count_responses,
            ))
            .with_state(state)
    }

    /// Binds `addr` (port 0: any free port) and serves on a new thread with its own
    /// multi-threaded tokio runtime, until [`RunningServer::shut_down`] or drop.
    pub fn spawn(self, addr: impl ToSocketAddrs) -> io::Result<RunningServer> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("rar-serve-http")
            .enable_all()
            .build()?;
        let router = self.router();
        let (shutdown, stop) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("rar-serve-http".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)?;
                    axum::serve(listener, router)
                        .with_graceful_shutdown(async move {
                            let _ = stop.await;
                        })
                        .await
                })
            })?;
        Ok(RunningServer {
            addr,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }
}

impl RunningServer {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://host:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, lets open requests finish, and waits for the thread.
    pub fn shut_down(mut self) -> io::Result<()> {
        self.stop()
    }

    /// Blocks until the server stops (an error of its listener, or never).
    pub fn wait(mut self) -> io::Result<()> {
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the server thread panicked"))),
            None => Ok(()),
        }
    }

    fn stop(&mut self) -> io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the server thread panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

async fn count_responses(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    state.metrics.record_response(response.status().as_u16());
    response
}

pub(crate) fn json_response(status: StatusCode, value: &impl Serialize) -> Response {
    match serde_json::to_string(value) {
        Ok(body) => (status, [(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, None, e.to_string()).into_response()
        }
    }
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

async fn not_found(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        None,
        format!("no route {} {}", req.method(), req.uri().path()),
    )
}

async fn healthz() -> Response {
    json_response(StatusCode::OK, &serde_json::json!({ "status": "ok" }))
}

async fn classes(State(s): State<Arc<AppState>>) -> Response {
    json_response(
        StatusCode::OK,
        &serde_json::json!({ "classes": s.classes.names() }),
    )
}

async fn config(State(s): State<Arc<AppState>>) -> Response {
    let d = &s.config.defaults;
    let (schedule, power) = match d.guidance {
        GuidanceSchedule::Constant { .. } => ("constant", 0.0),
        GuidanceSchedule::Linear { .. } => ("linear", 0.0),
        GuidanceSchedule::PowerCosine { power, .. } => ("power-cosine", power),
    };
    json_response(
        StatusCode::OK,
        &serde_json::json!({
            "num_classes": s.classes.len(),
            "num_tokens": s.limits.num_tokens,
            "codebook_size": s.limits.codebook_size,
            "max_images": s.limits.max_images,
            "stream_every": s.limits.stream_every,
            "renderer": match s.renderer { Renderer::Palette { .. } => "palette", Renderer::Tokenizer(_) => "tokenizer" },
            "defaults": {
                "guidance": d.guidance.scale(),
                "guidance_power": power,
                "guidance_schedule": schedule,
                "temperature": d.temperature,
                "top_k": d.top_k,
                "top_p": d.top_p,
            },
        }),
    )
}

async fn metrics_json(State(s): State<Arc<AppState>>) -> Response {
    json_response(StatusCode::OK, &s.metrics.report(s.engine.snapshot()))
}

async fn metrics_text(State(s): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.report(s.engine.snapshot()).prometheus(),
    )
        .into_response()
}
