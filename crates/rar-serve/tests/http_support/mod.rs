//! Helpers of the HTTP server tests (`http.rs`, `http_server.rs`): small random models, a
//! server on 127.0.0.1 port 0, a ureq client that returns every status, and the library
//! sampler's images to compare the server's with. Each test binary uses a part of them.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};

use burn::tensor::Device;
use image::RgbImage;
use rar_core::GuidanceSchedule;
use rar_model::{Rar, RarConfig};
use rar_sample::{SampleRequest, Sampler, SamplingConfig};
use rar_serve::{ClassNames, Engine, EngineConfig, Renderer, RunningServer, Server, ServerConfig};
use serde_json::Value;

pub const SCALE: usize = 3;

pub fn model(tokens: usize, hidden: usize, depth: usize) -> Rar {
    let device = Device::flex();
    device.seed(11);
    RarConfig::new(hidden, depth, 2, 2 * hidden)
        .with_image_seq_len(tokens)
        .with_codebook_size(8)
        .with_num_classes(10)
        .with_dropout(0.0)
        .with_attn_drop(0.0)
        .init(&device)
}

pub fn defaults() -> SamplingConfig {
    SamplingConfig {
        guidance: GuidanceSchedule::power_cosine(3.0, 1.0).unwrap(),
        ..SamplingConfig::default()
    }
}

pub fn start(model: Rar, engine: EngineConfig, server: ServerConfig) -> RunningServer {
    let tokens = model.config().image_seq_len;
    let engine = Engine::start(model, engine).unwrap();
    Server::new(
        engine,
        Renderer::palette(tokens, SCALE),
        ClassNames::toy(),
        server,
    )
    .unwrap()
    .spawn("127.0.0.1:0")
    .unwrap()
}

pub fn server_config() -> ServerConfig {
    ServerConfig {
        max_images_per_request: 4,
        defaults: defaults(),
        stream_every: 4,
        ..ServerConfig::default()
    }
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

pub fn post(url: &str, body: &str) -> (u16, Vec<u8>, ureq::http::HeaderMap) {
    let mut response = agent()
        .post(url)
        .header("content-type", "application/json")
        .send(body)
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.body_mut().read_to_vec().unwrap();
    (status, bytes, headers)
}

pub fn get_json(url: &str) -> Value {
    let mut response = agent().get(url).call().unwrap();
    assert_eq!(response.status().as_u16(), 200, "{url}");
    serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap()
}

pub fn decode_png(bytes: &[u8]) -> RgbImage {
    image::load_from_memory_with_format(bytes, image::ImageFormat::Png)
        .unwrap()
        .to_rgb8()
}

/// The library's tokens and pictures for `count` images of `class` from `seed` on.
pub fn expected(
    model: &Rar,
    class: usize,
    seed: u64,
    count: u64,
) -> (Vec<Vec<u32>>, Vec<RgbImage>) {
    let requests: Vec<SampleRequest> = (0..count)
        .map(|i| SampleRequest::new(class, &defaults(), seed + i))
        .collect();
    let tokens = Sampler::new(model).sample_requests(&requests).unwrap();
    let n = model.config().image_seq_len;
    let images = Renderer::palette(n, SCALE).render(&tokens, n).unwrap();
    (tokens, images)
}

/// Reads server-sent events from a stream until `done` or `error`: `(event, data)` pairs.
pub fn read_events(reader: impl Read) -> Vec<(String, Value)> {
    let mut events = Vec::new();
    let (mut name, mut data) = (String::new(), String::new());
    for line in BufReader::new(reader).lines() {
        let line = line.unwrap();
        if let Some(v) = line.strip_prefix("event:") {
            name = v.trim().to_owned();
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push_str(v.trim());
        } else if line.is_empty() && !data.is_empty() {
            let value: Value = serde_json::from_str(&data).unwrap();
            let last = name == "done" || name == "error";
            events.push((std::mem::take(&mut name), value));
            data.clear();
            if last {
                break;
            }
        }
    }
    events
}
