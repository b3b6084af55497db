//! The generation endpoints: reading a body within its limits, queueing its job, following
//! the job from tokio's blocking pool, and answering with PNGs (`POST /v1/generate`) or
//! server-sent events (`POST /v1/generate/stream`). A client that goes away drops its
//! handler, which drops the job's [`crate::Ticket`] and frees its rows.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures_util::{Stream, StreamExt};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::api::{Generation, OutputFormat, parse_body};
use crate::error::EngineError;
use crate::http_error::ApiError;
use crate::job::{JobEvent, JobResult, Ticket};
use crate::render::{RenderError, grid, png_bytes};
use crate::server::{AppState, json_response};

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

pub(crate) async fn generate(
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
    let (state, seed, class) = (s.clone(), generation.seed, generation.class);
    let mut response = joined(
        tokio::task::spawn_blocking(move || -> Result<Response, RenderError> {
            match generation.format {
                OutputFormat::Grid => {
                    let png = render_grid_png(&state, &tokens, generation.columns)?;
                    Ok(([(header::CONTENT_TYPE, "image/png")], png).into_response())
                }
                OutputFormat::Images => {
                    let images = state.renderer.render(&tokens, state.limits.num_tokens)?;
                    let out = images
                        .iter()
                        .zip(tokens)
                        .zip(&generation.requests)
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
                            "class": generation.class,
                            "class_name": state.classes.name(generation.class),
                            "seed": generation.seed,
                            "images": out,
                        }),
                    ))
                }
            }
        })
        .await,
    )?;
    let h = response.headers_mut();
    h.insert("x-rar-seed", HeaderValue::from(seed));
    h.insert("x-rar-class", HeaderValue::from(class as u64));
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
                return Some(event("error", &e.to_value()));
            }
            Some(Update::Done(Err(e))) => {
                self.done = true;
                let e = ApiError::from_engine(e, self.app.config.retry_after_s);
                return Some(event("error", &e.to_value()));
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
                return Some(event("error", &e.to_value()));
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

pub(crate) async fn generate_stream(
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
