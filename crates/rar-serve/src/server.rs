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
//! encoding run on tokio's blocking pool, so the event loop only moves bytes. A client that
//! goes away drops its handler, which drops the job's [`crate::Ticket`] and frees its rows.

use std::convert::Infallible;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures_util::{Stream, StreamExt};
use rar_core::GuidanceSchedule;
use rar_sample::SamplingConfig;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::api::{Generation, OutputFormat, RequestLimits, parse_body};
use crate::classes::ClassNames;
use crate::engine::Engine;
use crate::error::EngineError;
use crate::http_error::ApiError;
use crate::job::{JobEvent, JobResult, Ticket};
use crate::metrics::Metrics;
use crate::render::{RenderError, Renderer, grid, png_bytes};

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

struct AppState {
    engine: Engine,
    renderer: Renderer,
    classes: ClassNames,
    config: ServerConfig,
    limits: RequestLimits,
    metrics: Metrics,
    seeds: AtomicU64,
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

fn json_response(status: StatusCode, value: &impl Serialize) -> Response {
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

/// Reads the whole body within the time and size limits (408, 413), JSON only (415).
async fn read_body(s: &AppState, headers: &HeaderMap, body: Body) -> Result<Vec<u8>, ApiError> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("");
        if !ct
            .trim_start()
            .to_ascii_lowercase()
            .starts_with("application/json")
        {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                None,
                format!("the body must be application/json, not '{ct}'"),
            ));
        }
    }
    let limit = s.config.max_body_bytes;
    let too_large = |n: usize| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            None,
            format!("the body of {n} bytes exceeds the limit of {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if let Some(n) = declared.filter(|&n| n > limit) {
        return Err(too_large(n));
    }
    let deadline = tokio::time::Instant::now() + s.config.body_timeout;
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => {
                return Err(ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    None,
                    format!(
                        "the body did not arrive within {:.1} s ({} bytes received)",
                        s.config.body_timeout.as_secs_f64(),
                        bytes.len()
                    ),
                ));
            }
            Ok(None) => return Ok(bytes),
            Ok(Some(Err(e))) => {
                return Err(ApiError::malformed(None, format!("reading the body: {e}")));
            }
            Ok(Some(Ok(chunk))) => {
                bytes.extend_from_slice(&chunk);
                if bytes.len() > limit {
                    return Err(too_large(bytes.len()));
                }
            }
        }
    }
}

/// Checks a body and queues its job.
fn admit(s: &AppState, bytes: &[u8], streaming: bool) -> Result<(Generation, Ticket), ApiError> {
    let request = parse_body(bytes)?;
    if streaming && request.format.is_some() {
        return Err(ApiError::invalid(
            "format",
            "the stream always sends grids; format is for /v1/generate",
        ));
    }
    let fresh = s.seeds.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    let generation = request.check(&s.classes, &s.limits, fresh)?;
    let every = streaming.then_some(generation.stream_every);
    let ticket = s
        .engine
        .submit(generation.requests.clone(), every)
        .map_err(|e| ApiError::from_engine(e, s.config.retry_after_s))?;
    Ok((generation, ticket))
}

/// What the waiting thread passes to the handler.
enum Update {
    Progress(JobEvent),
    Done(JobResult),
}

/// Follows a job on the blocking pool. When the handler goes away (its client left), the
/// receiver closes, this thread returns and the ticket's drop cancels the job.
fn follow(ticket: Ticket, progress: bool) -> mpsc::Receiver<Update> {
    let (tx, rx) = mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        let poll = Duration::from_millis(20);
        loop {
            if tx.is_closed() {
                return;
            }
            if progress && let Some(event) = ticket.next_progress(poll) {
                // A full channel means a slow reader: it skips this frame.
                let _ = tx.try_send(Update::Progress(event));
            }
            let wait = if progress { Duration::ZERO } else { poll };
            if let Some(result) = ticket.wait_timeout(wait) {
                // The newest frame drawn before the end still goes first.
                if let Some(event) = ticket.try_progress().filter(|_| progress) {
                    let _ = tx.try_send(Update::Progress(event));
                }
                let _ = tx.blocking_send(Update::Done(result));
                return;
            }
        }
    });
    rx
}

fn render_grid_png(
    s: &AppState,
    rows: &[Vec<u32>],
    columns: usize,
) -> Result<Vec<u8>, RenderError> {
    let images = s.renderer.render(rows, s.limits.num_tokens)?;
    png_bytes(&grid(&images, columns)?)
}

fn render_error(e: RenderError) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, None, e.to_string())
}

fn joined<T>(r: Result<Result<T, RenderError>, tokio::task::JoinError>) -> Result<T, ApiError> {
    r.map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, None, e.to_string()))?
        .map_err(render_error)
}

#[derive(Serialize)]
struct ImageOut {
    seed: u64,
    png_base64: String,
    tokens: Vec<u32>,
}

async fn generate(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let bytes = read_body(&s, &headers, body).await?;
    let (generation, ticket) = admit(&s, &bytes, false)?;
    let mut updates = follow(ticket, false);
    let tokens = loop {
        match updates.recv().await {
            Some(Update::Done(result)) => {
                break result.map_err(|e| ApiError::from_engine(e, s.config.retry_after_s))?;
            }
            Some(Update::Progress(_)) => {}
            None => return Err(ApiError::from_engine(EngineError::Stopped, 0)),
        }
    };
    let count = tokens.len();
    let state = s.clone();
    let gen2 = generation.clone();
    let mut response = joined(
        tokio::task::spawn_blocking(move || -> Result<Response, RenderError> {
            match gen2.format {
                OutputFormat::Grid => {
                    let png = render_grid_png(&state, &tokens, gen2.columns)?;
                    Ok(([(header::CONTENT_TYPE, "image/png")], png).into_response())
                }
                OutputFormat::Images => {
                    let images = state.renderer.render(&tokens, state.limits.num_tokens)?;
                    let out = images
                        .iter()
                        .zip(tokens)
                        .zip(&gen2.requests)
                        .map(|((img, tokens), req)| {
                            Ok(ImageOut {
                                seed: req.seed,
                                png_base64: BASE64.encode(png_bytes(img)?),
                                tokens,
                            })
                        })
                        .collect::<Result<Vec<_>, RenderError>>()?;
                    Ok(json_response(
                        StatusCode::OK,
                        &serde_json::json!({
                            "class": gen2.class,
                            "class_name": state.classes.name(gen2.class),
                            "seed": gen2.seed,
                            "images": out,
                        }),
                    ))
                }
            }
        })
        .await,
    )?;
    let h = response.headers_mut();
    h.insert("x-rar-seed", HeaderValue::from(generation.seed));
    h.insert("x-rar-class", HeaderValue::from(generation.class as u64));
    h.insert("x-rar-images", HeaderValue::from(count as u64));
    s.metrics.record_generation(count, started.elapsed());
    Ok(response)
}

/// The state of a stream between events.
struct StreamState {
    app: Arc<AppState>,
    generation: Generation,
    updates: mpsc::Receiver<Update>,
    /// An update read ahead while skipping frames.
    pending: Option<Update>,
    started: Instant,
    done: bool,
}

fn event(name: &str, value: &serde_json::Value) -> Event {
    Event::default().event(name).data(value.to_string())
}

impl StreamState {
    /// The next event: the newest progress frame (older queued frames are skipped), the
    /// final images, or an error.
    async fn next_event(&mut self) -> Option<Event> {
        if self.done {
            return None;
        }
        let mut update = match self.pending.take() {
            Some(update) => Some(update),
            None => self.updates.recv().await,
        };
        // Skip to the newest progress frame, but never past the end: a `done` waiting
        // behind a frame is kept for the next event.
        while let Some(Update::Progress(_)) = &update {
            match self.updates.try_recv() {
                Ok(newer @ Update::Progress(_)) => update = Some(newer),
                Ok(done) => {
                    self.pending = Some(done);
                    break;
                }
                Err(_) => break,
            }
        }
        let (rows, finished) = match update {
            None => {
                self.done = true;
                let e = ApiError::from_engine(EngineError::Stopped, 0);
                return Some(event("error", &serde_json::from_str(&e.to_json()).ok()?));
            }
            Some(Update::Done(Err(e))) => {
                self.done = true;
                let e = ApiError::from_engine(e, self.app.config.retry_after_s);
                return Some(event("error", &serde_json::from_str(&e.to_json()).ok()?));
            }
            Some(Update::Done(Ok(rows))) => (rows, true),
            Some(Update::Progress(p)) => (p.tokens, false),
        };
        let steps = rows.first().map_or(0, Vec::len);
        let app = self.app.clone();
        let columns = self.generation.columns;
        let png = tokio::task::spawn_blocking(move || {
            let png = render_grid_png(&app, &rows, columns)?;
            Ok::<_, RenderError>((png, rows))
        })
        .await;
        let (png, rows) = match joined(png) {
            Ok(v) => v,
            Err(e) => {
                self.done = true;
                return Some(event("error", &serde_json::from_str(&e.to_json()).ok()?));
            }
        };
        let mut value = serde_json::json!({
            "steps": steps,
            "num_tokens": self.app.limits.num_tokens,
            "png_base64": BASE64.encode(png),
        });
        if finished {
            self.done = true;
            self.app
                .metrics
                .record_generation(rows.len(), self.started.elapsed());
            value["class"] = self.generation.class.into();
            value["class_name"] = self.app.classes.name(self.generation.class).into();
            value["seed"] = self.generation.seed.into();
            value["tokens"] = serde_json::to_value(&rows).ok()?;
            Some(event("done", &value))
        } else {
            Some(event("progress", &value))
        }
    }
}

async fn generate_stream(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let started = Instant::now();
    let bytes = read_body(&s, &headers, body).await?;
    let (generation, ticket) = admit(&s, &bytes, true)?;
    let state = StreamState {
        app: s.clone(),
        generation,
        updates: follow(ticket, true),
        pending: None,
        started,
        done: false,
    };
    let stream = futures_util::stream::unfold(state, |mut state| async move {
        let event = state.next_event().await?;
        Some((Ok(event), state))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
