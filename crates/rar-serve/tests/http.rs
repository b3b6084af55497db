//! The HTTP server on 127.0.0.1 (port 0) with small random models, driven by a real HTTP
//! client (ureq) and raw sockets: the PNGs decode to the images of the library sampler's
//! tokens for the same seeds, the stream fills in, every bad input is a 4xx naming its field,
//! a full queue is 429 with `Retry-After`, and a client that leaves frees its rows.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use burn::tensor::Device;
use common::wait_until;
use image::RgbImage;
use rar_core::GuidanceSchedule;
use rar_model::{Rar, RarConfig};
use rar_sample::{SampleRequest, Sampler, SamplingConfig};
use rar_serve::{
    ClassNames, Engine, EngineConfig, GRID_GAP, PENDING_GREY, Renderer, RunningServer, Server,
    ServerConfig,
};
use serde_json::Value;

const SCALE: usize = 3;

fn model(tokens: usize, hidden: usize, depth: usize) -> Rar {
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

fn defaults() -> SamplingConfig {
    SamplingConfig {
        guidance: GuidanceSchedule::power_cosine(3.0, 1.0).unwrap(),
        ..SamplingConfig::default()
    }
}

fn start(model: Rar, engine: EngineConfig, server: ServerConfig) -> RunningServer {
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

fn server_config() -> ServerConfig {
    ServerConfig {
        max_images_per_request: 4,
        defaults: defaults(),
        stream_every: 4,
        ..ServerConfig::default()
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

fn post(url: &str, body: &str) -> (u16, Vec<u8>, ureq::http::HeaderMap) {
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

fn get_json(url: &str) -> Value {
    let mut response = agent().get(url).call().unwrap();
    assert_eq!(response.status().as_u16(), 200, "{url}");
    serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap()
}

fn decode_png(bytes: &[u8]) -> RgbImage {
    image::load_from_memory_with_format(bytes, image::ImageFormat::Png)
        .unwrap()
        .to_rgb8()
}

/// The library's tokens and pictures for `count` images of `class` from `seed` on.
fn expected(model: &Rar, class: usize, seed: u64, count: u64) -> (Vec<Vec<u32>>, Vec<RgbImage>) {
    let requests: Vec<SampleRequest> = (0..count)
        .map(|i| SampleRequest::new(class, &defaults(), seed + i))
        .collect();
    let tokens = Sampler::new(model).sample_requests(&requests).unwrap();
    let n = model.config().image_seq_len;
    let images = Renderer::palette(n, SCALE).render(&tokens, n).unwrap();
    (tokens, images)
}

#[test]
fn pngs_hold_the_images_of_the_library_sampler_for_the_same_seeds() {
    let model = model(16, 32, 1);
    let server = start(model.clone(), EngineConfig::default(), server_config());
    let url = format!("{}/v1/generate", server.url());
    let (want_tokens, want_images) = expected(&model, 3, 40, 3);

    let (status, body, headers) = post(
        &url,
        r#"{"class": 3, "count": 3, "seed": 40, "format": "images"}"#,
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers["x-rar-seed"], "40");
    let json: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["class_name"], ClassNames::toy().name(3).unwrap());
    let images = json["images"].as_array().unwrap();
    assert_eq!(images.len(), 3);
    for (i, image) in images.iter().enumerate() {
        assert_eq!(image["seed"], 40 + i as u64);
        let tokens: Vec<u32> = serde_json::from_value(image["tokens"].clone()).unwrap();
        assert_eq!(tokens, want_tokens[i], "tokens of image {i}");
        let png = BASE64
            .decode(image["png_base64"].as_str().unwrap())
            .unwrap();
        assert_eq!(decode_png(&png), want_images[i], "pixels of image {i}");
    }

    // The default answer is one PNG grid: the same images, two columns, by class name.
    let (status, body, headers) = post(
        &url,
        r#"{"class": "HORIZONTAL BAR", "count": 3, "seed": 40, "columns": 2}"#,
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers["content-type"], "image/png");
    let (_, class0_images) = expected(&model, 0, 40, 3);
    let grid = decode_png(&body);
    let side = class0_images[0].width();
    let pitch = side + GRID_GAP;
    assert_eq!(grid.dimensions(), (side + pitch, side + pitch));
    for (i, want) in class0_images.iter().enumerate() {
        let (x, y) = ((i as u32 % 2) * pitch, (i as u32 / 2) * pitch);
        let cell = image::imageops::crop_imm(&grid, x, y, side, side).to_image();
        assert_eq!(&cell, want, "grid cell {i}");
    }
}

/// Reads server-sent events from a stream until `done` or `error`: `(event, data)` pairs.
fn read_events(reader: impl Read) -> Vec<(String, Value)> {
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

#[test]
fn the_stream_sends_partial_images_every_k_tokens_then_the_final_ones() {
    let model = model(16, 32, 1);
    let server = start(model.clone(), EngineConfig::default(), server_config());
    let (want_tokens, want_images) = expected(&model, 5, 7, 2);
    let mut response = agent()
        .post(format!("{}/v1/generate/stream", server.url()))
        .header("content-type", "application/json")
        .send(r#"{"class": 5, "count": 2, "seed": 7, "columns": 2, "stream_every": 4}"#)
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let events = read_events(response.body_mut().as_reader());
    let (last, frames) = events.split_last().unwrap();
    assert_eq!(last.0, "done", "{last:?}");
    assert!(!frames.is_empty(), "no progress frame before the end");
    let side = want_images[0].width();
    for (name, frame) in frames {
        assert_eq!(name, "progress");
        let steps = frame["steps"].as_u64().unwrap() as usize;
        assert!(
            steps.is_multiple_of(4) && steps < 16,
            "frame at {steps} tokens"
        );
        let png = decode_png(
            &BASE64
                .decode(frame["png_base64"].as_str().unwrap())
                .unwrap(),
        );
        assert_eq!(png.dimensions(), (2 * side + GRID_GAP, side));
        // The drawn part matches the final image, the rest is grey.
        let partial: Vec<Vec<u32>> = want_tokens.iter().map(|t| t[..steps].to_vec()).collect();
        let n = model.config().image_seq_len;
        let want = Renderer::palette(n, SCALE).render(&partial, n).unwrap();
        let cell = image::imageops::crop_imm(&png, 0, 0, side, side).to_image();
        assert_eq!(cell, want[0], "frame at {steps} tokens");
        assert_eq!(png.get_pixel(side - 1, side - 1).0, PENDING_GREY);
    }
    let tokens: Vec<Vec<u32>> = serde_json::from_value(last.1["tokens"].clone()).unwrap();
    assert_eq!(tokens, want_tokens);
    let png = decode_png(
        &BASE64
            .decode(last.1["png_base64"].as_str().unwrap())
            .unwrap(),
    );
    let cell = image::imageops::crop_imm(&png, side + GRID_GAP, 0, side, side).to_image();
    assert_eq!(cell, want_images[1]);
}

/// Sends raw bytes and returns the status line and body of the answer.
fn raw_exchange(addr: SocketAddr, request: &[u8], pause_after: Option<Duration>) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(request).unwrap();
    if let Some(pause) = pause_after {
        std::thread::sleep(pause);
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, answer)
}

#[test]
fn every_bad_input_is_a_4xx_json_error_naming_the_field_and_the_server_keeps_serving() {
    let model = model(16, 32, 1);
    let config = ServerConfig {
        max_body_bytes: 512,
        body_timeout: Duration::from_millis(400),
        ..server_config()
    };
    let server = start(model, EngineConfig::default(), config);
    let url = format!("{}/v1/generate", server.url());
    let cases = [
        (r#"{"class": "dragon"}"#, 422, Some("class")),
        (r#"{"class": 10}"#, 422, Some("class")),
        (r#"{"class": 1, "count": 5}"#, 422, Some("count")),
        (r#"{"class": 1, "guidance": -2}"#, 422, Some("guidance")),
        (r#"{"class": 1, "guidance": NaN}"#, 400, None),
        (r#"{"class": 1, "guidance": "NaN"}"#, 400, Some("guidance")),
        (
            r#"{"class": 1, "temperature": 0}"#,
            422,
            Some("temperature"),
        ),
        (
            r#"{"class": 1, "temperature": -1}"#,
            422,
            Some("temperature"),
        ),
        (r#"{"class": 1, "top_p": 0}"#, 422, Some("top_p")),
        (r#"{"class": 1, "count": [2]}"#, 400, Some("count")),
        (r#"{"class": 1, "sed": 3}"#, 400, None),
        (r#"{"class": 1"#, 400, None),
        ("", 400, None),
    ];
    for (body, status, field) in cases {
        let (got, bytes, headers) = post(&url, body);
        let text = String::from_utf8_lossy(&bytes);
        assert_eq!(got, status, "{body} → {text}");
        assert_eq!(headers["content-type"], "application/json");
        let json: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["error"]["status"], status);
        assert!(!json["error"]["message"].as_str().unwrap().is_empty());
        if let Some(field) = field {
            assert_eq!(json["error"]["field"], field, "{body} → {text}");
        }
    }
    // The same checks guard the stream.
    let (got, bytes, _) = post(
        &format!("{url}/stream"),
        r#"{"class": 1, "stream_every": 0}"#,
    );
    assert_eq!(got, 422);
    assert!(String::from_utf8_lossy(&bytes).contains("stream_every"));

    // Oversized (declared and undeclared), not JSON, slow, unknown route.
    let big = format!(r#"{{"class": 1, "seed": 1{}}}"#, " ".repeat(600));
    let (got, bytes, _) = post(&url, &big);
    assert_eq!(got, 413, "{}", String::from_utf8_lossy(&bytes));
    let addr = server.local_addr();
    let chunked = format!(
        "POST /v1/generate HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         transfer-encoding: chunked\r\nconnection: close\r\n\r\n{:x}\r\n{big}\r\n0\r\n\r\n",
        big.len()
    );
    assert_eq!(raw_exchange(addr, chunked.as_bytes(), None).0, 413);
    let mut response = agent()
        .post(&url)
        .header("content-type", "text/plain")
        .send(r#"{"class": 1}"#)
        .unwrap();
    assert_eq!(response.status().as_u16(), 415);
    let _ = response.body_mut().read_to_string();
    let slow = b"POST /v1/generate HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
                 content-length: 40\r\n\r\n{\"class\": 1";
    let (status, answer) = raw_exchange(addr, slow, None);
    assert_eq!(status, 408, "{answer}");
    assert!(answer.contains("did not arrive"), "{answer}");
    let mut response = agent()
        .get(format!("{}/v2/nothing", server.url()))
        .call()
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    let _ = response.body_mut().read_to_string();

    // Still serving, and the refusals were counted.
    let (got, _, _) = post(&url, r#"{"class": 1, "seed": 3}"#);
    assert_eq!(got, 200);
    let metrics = get_json(&format!("{}/v1/metrics", server.url()));
    assert_eq!(metrics["responses"]["422"], 8, "{metrics}");
    assert_eq!(metrics["images"], 1);
}

/// About 0.8 s per image here (1.6 s for two) — long enough to watch a job run and queue
/// another behind it even on a loaded machine.
fn slow_model() -> Rar {
    model(1024, 128, 4)
}

fn running_images(server: &RunningServer) -> u64 {
    get_json(&format!("{}/v1/metrics", server.url()))["engine"]["running_images"]
        .as_u64()
        .unwrap()
}

#[test]
fn a_full_queue_answers_429_with_retry_after() {
    let engine = EngineConfig {
        max_batch_images: 4,
        max_jobs_per_batch: 1,
        queue_capacity: 1,
        ..EngineConfig::default()
    };
    let config = ServerConfig {
        retry_after_s: 3,
        ..server_config()
    };
    let server = start(slow_model(), engine, config);
    let url = format!("{}/v1/generate", server.url());
    let running = {
        let url = url.clone();
        std::thread::spawn(move || post(&url, r#"{"class": 1, "count": 2, "seed": 1}"#).0)
    };
    wait_until("the first job to run", || running_images(&server) == 2);
    let queued = {
        let url = url.clone();
        std::thread::spawn(move || post(&url, r#"{"class": 2, "seed": 2}"#).0)
    };
    wait_until("the second job to wait", || {
        get_json(&format!("{}/v1/metrics", server.url()))["engine"]["queue_depth"] == 1
    });
    let (status, body, headers) = post(&url, r#"{"class": 3}"#);
    assert_eq!(status, 429, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers["retry-after"], "3");
    let json: Value = serde_json::from_slice(&body).unwrap();
    assert!(json["error"]["message"].as_str().unwrap().contains("busy"));
    assert_eq!(running.join().unwrap(), 200);
    assert_eq!(queued.join().unwrap(), 200);
    let metrics = get_json(&format!("{}/v1/metrics", server.url()));
    assert_eq!(metrics["engine"]["jobs_rejected"], 1);
    assert_eq!(metrics["responses"]["429"], 1);
}

#[test]
fn a_client_that_leaves_frees_its_rows_for_the_others() {
    let server = start(slow_model(), EngineConfig::default(), server_config());
    let addr = server.local_addr();
    let engine = |key: &str| {
        get_json(&format!("{}/v1/metrics", server.url()))["engine"][key]
            .as_u64()
            .unwrap()
    };

    // A plain request whose client hangs up while it runs.
    let body = r#"{"class": 4, "count": 2, "seed": 9}"#;
    let request = format!(
        "POST /v1/generate HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    wait_until("the job to run", || running_images(&server) == 2);
    drop(stream);
    wait_until("the job to be cancelled", || engine("jobs_cancelled") == 1);
    wait_until("its rows to be freed", || running_images(&server) == 0);
    assert_eq!(engine("jobs_completed"), 0);

    // A stream whose reader leaves after the first frame.
    let mut response = agent()
        .post(format!("{}/v1/generate/stream", server.url()))
        .header("content-type", "application/json")
        .send(r#"{"class": 4, "seed": 9, "stream_every": 8}"#)
        .unwrap();
    let mut reader = BufReader::new(response.body_mut().as_reader());
    let mut line = String::new();
    while !line.starts_with("data:") {
        line.clear();
        reader.read_line(&mut line).unwrap();
    }
    drop(reader);
    drop(response);
    wait_until("the stream's job to be cancelled", || {
        engine("jobs_cancelled") == 2
    });
    wait_until("its rows to be freed", || running_images(&server) == 0);

    // The engine still serves.
    let (status, _, _) = post(
        &format!("{}/v1/generate", server.url()),
        r#"{"class": 1, "guidance": 0}"#,
    );
    assert_eq!(status, 200);
    assert_eq!(engine("jobs_completed"), 1);
}

#[test]
fn page_classes_health_and_metrics_are_served() {
    let server = start(model(16, 32, 1), EngineConfig::default(), server_config());
    let mut page = agent().get(server.url()).call().unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.body_mut().read_to_string().unwrap();
    assert!(html.contains("id=\"generate\"") && html.contains("/v1/generate/stream"));
    assert_eq!(
        get_json(&format!("{}/healthz", server.url()))["status"],
        "ok"
    );
    let classes = get_json(&format!("{}/v1/classes", server.url()));
    assert_eq!(classes["classes"].as_array().unwrap().len(), 10);
    assert_eq!(classes["classes"][0], ClassNames::toy().name(0).unwrap());
    let config = get_json(&format!("{}/v1/config", server.url()));
    assert_eq!(config["max_images"], 4);
    assert_eq!(config["defaults"]["guidance"], 3.0);
    assert_eq!(config["defaults"]["guidance_schedule"], "power-cosine");

    let (status, _, _) = post(
        &format!("{}/v1/generate", server.url()),
        r#"{"class": 2, "count": 2}"#,
    );
    assert_eq!(status, 200);
    let mut text = agent()
        .get(format!("{}/metrics", server.url()))
        .call()
        .unwrap();
    let text = text.body_mut().read_to_string().unwrap();
    assert!(text.contains("rar_images_total 2"), "{text}");
    assert!(
        text.contains("rar_generation_latency_seconds{quantile=\"0.99\"}"),
        "{text}"
    );
    assert!(text.contains("rar_queue_depth 0"), "{text}");
}

#[test]
fn with_a_tokenizer_the_server_sends_its_decoded_images_and_grey_partial_frames() {
    use rar_vq::TokenizerConfig;
    let device = Device::flex();
    device.seed(2);
    // A tiny MaskGIT-VQGAN-shaped tokenizer: 4 × 4 tokens of 16 codes → 8 × 8 pixels.
    let tokenizer = TokenizerConfig::new()
        .with_base_channels(8)
        .with_channel_multipliers(vec![1, 2])
        .with_num_res_blocks(1)
        .with_z_channels(4)
        .with_codebook_size(16)
        .with_norm_groups(4)
        .with_resolution(8)
        .init(&device)
        .unwrap();
    let model = RarConfig::new(32, 1, 2, 64)
        .with_image_seq_len(16)
        .with_codebook_size(16)
        .with_num_classes(10)
        .init(&device);
    let requests: Vec<SampleRequest> = (0..2)
        .map(|i| SampleRequest::new(6, &defaults(), 70 + i))
        .collect();
    let want_tokens = Sampler::new(&model).sample_requests(&requests).unwrap();
    let want_images = tokenizer
        .decode_tokens_to_images(&want_tokens.concat(), 16)
        .unwrap();
    let engine = Engine::start(model, EngineConfig::default()).unwrap();
    let server = Server::new(
        engine,
        Renderer::tokenizer(tokenizer),
        ClassNames::numbered(10),
        server_config(),
    )
    .unwrap()
    .spawn("127.0.0.1:0")
    .unwrap();

    let (status, body, _) = post(
        &format!("{}/v1/generate", server.url()),
        r#"{"class": "class 6", "count": 2, "seed": 70, "format": "images"}"#,
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let json: Value = serde_json::from_slice(&body).unwrap();
    for (i, image) in json["images"].as_array().unwrap().iter().enumerate() {
        let png = BASE64
            .decode(image["png_base64"].as_str().unwrap())
            .unwrap();
        let got = decode_png(&png);
        assert_eq!(got.dimensions(), (8, 8));
        assert_eq!(got, want_images[i], "image {i}");
    }

    let mut response = agent()
        .post(format!("{}/v1/generate/stream", server.url()))
        .header("content-type", "application/json")
        .send(r#"{"class": 6, "seed": 70, "stream_every": 5}"#)
        .unwrap();
    let events = read_events(response.body_mut().as_reader());
    let (last, frames) = events.split_last().unwrap();
    assert_eq!(last.0, "done");
    let png = decode_png(
        &BASE64
            .decode(last.1["png_base64"].as_str().unwrap())
            .unwrap(),
    );
    assert_eq!(png, want_images[0]);
    for (_, frame) in frames {
        let steps = frame["steps"].as_u64().unwrap() as u32;
        let png = decode_png(
            &BASE64
                .decode(frame["png_base64"].as_str().unwrap())
                .unwrap(),
        );
        // Tokens `steps..` are 2 × 2 grey blocks; the last one always is.
        assert!(steps < 16);
        assert_eq!(png.get_pixel(7, 7).0, PENDING_GREY);
        let (bx, by) = (steps % 4, steps / 4);
        assert_eq!(png.get_pixel(bx * 2, by * 2).0, PENDING_GREY, "at {steps}");
    }
}
