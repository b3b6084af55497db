//! The HTTP server on 127.0.0.1 (port 0) with small random models, driven by a real HTTP
//! client (ureq) and raw sockets: the PNGs decode to the images of the library sampler's
//! tokens for the same seeds, the stream fills in, and every bad input is a 4xx naming its
//! field while the server keeps serving. Queueing, cancellation, the page and the tokenizer
//! are in `http_server.rs`.

mod http_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use http_support::*;
use rar_serve::{ClassNames, EngineConfig, GRID_GAP, PENDING_GREY, Renderer, ServerConfig};
use serde_json::Value;

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
