//! # rar-serve — serving RAR
//!
//! The batching engine of an image-generation server: concurrent jobs (one or more images,
//! each with its own class, guidance, temperature, filtering and seed) wait in a bounded queue
//! and run together as one KV-cached batch ([`rar_sample::RequestBatch`]), with progress
//! events every `k` tokens and cancellation that frees a job's rows between steps.
//!
//! * [`Engine`], [`EngineConfig`] — the worker thread and its batching limits;
//! * [`Ticket`], [`JobEvent`] — what a submitted job returns (drop it to cancel);
//! * [`EngineError`] — full queue, oversized or invalid jobs, device failures.
//!
//! On top of it, the HTTP server ([`Server`], axum on tokio): `POST /v1/generate` (PNG grid
//! or JSON), `POST /v1/generate/stream` (server-sent events with the partial images every
//! `k` tokens), `GET /v1/classes`, `/healthz`, `/metrics` (Prometheus) and a web page at `/`.
//! Bad input is a 4xx JSON error naming the field ([`ApiError`]); a full queue is 429 with
//! `Retry-After`.
//!
//! * [`Server`], [`ServerConfig`], [`RunningServer`] — routes, limits, a listening server;
//! * [`Renderer`] — tokens to pictures (toy palette or the VQ tokenizer);
//! * [`ClassNames`] — the ImageNet-1k names (embedded) or any list;
//! * [`GenerateRequest`] — the JSON body.
//!
//! ```
//! use burn::tensor::Device;
//! use rar_model::RarConfig;
//! use rar_sample::{SampleRequest, SamplingConfig};
//! use rar_serve::{Engine, EngineConfig};
//!
//! let device = Device::flex();
//! let model = RarConfig::new(32, 1, 2, 64)
//!     .with_image_seq_len(16)
//!     .with_codebook_size(16)
//!     .with_num_classes(3)
//!     .init(&device);
//! let engine = Engine::start(model, EngineConfig::default()).unwrap();
//! let options = SamplingConfig::default();
//! let ticket = engine
//!     .submit(vec![SampleRequest::new(2, &options, 7)], None)
//!     .unwrap();
//! let images = ticket.wait().unwrap();
//! assert_eq!((images.len(), images[0].len()), (1, 16));
//! ```
#![warn(missing_docs)]

mod api;
mod classes;
mod engine;
mod error;
mod generate;
mod http_error;
mod job;
mod metrics;
mod queue;
mod render;
mod server;

pub use api::{ClassSpec, GenerateRequest, OutputFormat, ScheduleKind};
pub use classes::ClassNames;
pub use engine::{Engine, EngineConfig, EngineSnapshot};
pub use error::EngineError;
pub use http_error::ApiError;
pub use job::{JobEvent, JobResult, Ticket};
pub use metrics::{Latency, MetricsReport};
pub use render::{GRID_GAP, PENDING_GREY, RenderError, Renderer};
pub use server::{RunningServer, Server, ServerConfig};
