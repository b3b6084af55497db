//! The HTTP server's load and lifetime behaviour with small random models, driven by a real
//! HTTP client (ureq): a full queue is 429 with `Retry-After`, a client that leaves frees its
//! rows, the page, classes, health and metrics are served, and with a tokenizer the server
//! sends decoded images and grey partial frames.

mod common;
mod http_support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use burn::tensor::Device;
use common::wait_until;
use http_support::*;
use rar_model::{Rar, RarConfig};
use rar_sample::{SampleRequest, Sampler};
use rar_serve::{
    ClassNames, Engine, EngineConfig, PENDING_GREY, Renderer, RunningServer, Server, ServerConfig,
};
use serde_json::Value;

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
