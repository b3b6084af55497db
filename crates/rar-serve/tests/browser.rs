//! The web page in a real browser: headless Chromium (Debian's `chromium` and
//! `chromium-driver`) driven over the W3C WebDriver protocol opens the page of a server with
//! a toy-sized model, searches a class, presses Generate and waits for the image to fill in.
//! The screenshot of the image must show the palette colours of the tokens the library
//! sampler draws for the same seed — present, not blank, and the right picture.
//!
//! Without a browser the test prints a skip; `RAR_REQUIRE_BROWSER=1` (CI) makes that a
//! failure. `RAR_CHROMIUM` / `RAR_CHROMEDRIVER` override `/usr/bin/chromium` and
//! `/usr/bin/chromedriver`.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use burn::tensor::Device;
use rar_core::GuidanceSchedule;
use rar_data::toy::{PALETTE, TOY_CLASSES, TOY_CODEBOOK, TOY_SIDE, TOY_TOKENS};
use rar_model::RarConfig;
use rar_sample::{SampleRequest, Sampler, SamplingConfig};
use rar_serve::{ClassNames, Engine, EngineConfig, Renderer, Server, ServerConfig};
use serde_json::{Value, json};

fn browser() -> Option<(PathBuf, PathBuf)> {
    let path = |var: &str, default: &str| {
        PathBuf::from(std::env::var(var).unwrap_or_else(|_| default.to_owned()))
    };
    let chromium = path("RAR_CHROMIUM", "/usr/bin/chromium");
    let driver = path("RAR_CHROMEDRIVER", "/usr/bin/chromedriver");
    (chromium.exists() && driver.exists()).then_some((chromium, driver))
}

/// Kills the driver (and with it the browser) when the test ends, passed or not.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct WebDriver {
    agent: ureq::Agent,
    base: String,
}

impl WebDriver {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let mut response = match (method, body) {
            ("GET", _) => self.agent.get(&url).call(),
            ("DELETE", _) => self.agent.delete(&url).call(),
            (_, body) => self
                .agent
                .post(&url)
                .header("content-type", "application/json")
                .send(body.unwrap_or_else(|| json!({})).to_string()),
        }
        .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        assert_eq!(status, 200, "WebDriver {method} {path}: {text}");
        serde_json::from_str::<Value>(&text).unwrap()["value"].take()
    }

    fn script(&self, session: &str, script: &str) -> Value {
        self.call(
            "POST",
            &format!("/session/{session}/execute/sync"),
            Some(json!({ "script": script, "args": [] })),
        )
    }

    fn element(&self, session: &str, css: &str) -> String {
        let found = self.call(
            "POST",
            &format!("/session/{session}/element"),
            Some(json!({ "using": "css selector", "value": css })),
        );
        found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}: {found}"))
            .to_owned()
    }

    fn wait_for(&self, session: &str, what: &str, script: &str) {
        let start = Instant::now();
        while self.script(session, script) != json!(true) {
            let status = self.script(
                session,
                "return document.getElementById('status').textContent",
            );
            assert!(
                start.elapsed() < Duration::from_secs(90),
                "timed out waiting for {what} (page status: {status})"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn the_page_generates_an_image_in_headless_chromium() {
    let Some((chromium, driver_path)) = browser() else {
        assert!(
            std::env::var("RAR_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "RAR_REQUIRE_BROWSER=1 but /usr/bin/chromium or /usr/bin/chromedriver is missing \
             (apt-get install chromium chromium-driver)"
        );
        eprintln!("skipped: no chromium/chromedriver (apt-get install chromium chromium-driver)");
        return;
    };

    // A toy-shaped random model and the library's tokens for the page's request.
    let device = Device::flex();
    device.seed(5);
    let model = RarConfig::new(32, 1, 2, 64)
        .with_image_seq_len(TOY_TOKENS)
        .with_codebook_size(TOY_CODEBOOK)
        .with_num_classes(TOY_CLASSES)
        .init(&device);
    let defaults = SamplingConfig {
        guidance: GuidanceSchedule::power_cosine(2.0, 1.0).unwrap(),
        ..SamplingConfig::default()
    };
    let ring = ClassNames::toy().resolve("ring").unwrap();
    let want = Sampler::new(&model)
        .sample_requests(&[SampleRequest::new(ring, &defaults, 1234)])
        .unwrap()
        .remove(0);
    let engine = Engine::start(model, EngineConfig::default()).unwrap();
    let config = ServerConfig {
        defaults,
        stream_every: 8,
        ..ServerConfig::default()
    };
    let server = Server::new(
        engine,
        Renderer::palette(TOY_TOKENS, 16),
        ClassNames::toy(),
        config,
    )
    .unwrap()
    .spawn("127.0.0.1:0")
    .unwrap();

    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _driver = Driver(
        Command::new(&driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", driver_path.display())),
    );
    let wd = WebDriver {
        agent: ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into(),
        base: format!("http://127.0.0.1:{port}"),
    };
    let start = Instant::now();
    while wd.agent.get(format!("{}/status", wd.base)).call().is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "chromedriver did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let session = wd.call(
        "POST",
        "/session",
        Some(json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1200,900",
                         "--force-device-scale-factor=1"],
            },
        }}})),
    )["sessionId"]
        .as_str()
        .unwrap()
        .to_owned();

    wd.call(
        "POST",
        &format!("/session/{session}/url"),
        Some(json!({ "url": server.url() })),
    );
    wd.wait_for(
        &session,
        "the class list",
        "return document.getElementById('class-list').options.length === 10",
    );
    // Search a class by typing, set the seed and count, press Generate.
    let search = wd.element(&session, "#class-search");
    wd.call(
        "POST",
        &format!("/session/{session}/element/{search}/value"),
        Some(json!({ "text": "ring" })),
    );
    wd.wait_for(
        &session,
        "the search to filter the list",
        "return document.getElementById('class-list').options.length === 1",
    );
    for (css, value) in [("#seed", "1234"), ("#count", "1")] {
        let id = wd.element(&session, css);
        wd.call(
            "POST",
            &format!("/session/{session}/element/{id}/clear"),
            None,
        );
        wd.call(
            "POST",
            &format!("/session/{session}/element/{id}/value"),
            Some(json!({ "text": value })),
        );
    }
    let button = wd.element(&session, "#generate");
    wd.call(
        "POST",
        &format!("/session/{session}/element/{button}/click"),
        None,
    );
    wd.wait_for(
        &session,
        "the image",
        "const i = document.getElementById('result'); \
         return i.dataset.done === '1' && i.complete && i.naturalWidth > 0",
    );
    let status = wd.script(
        &session,
        "return document.getElementById('status').textContent",
    );
    assert!(status.as_str().unwrap().contains("ring"), "{status}");

    // The screenshot of the image: each token's block shows its palette colour.
    let img = wd.element(&session, "#result");
    let shot = wd.call(
        "GET",
        &format!("/session/{session}/element/{img}/screenshot"),
        None,
    );
    let png = BASE64.decode(shot.as_str().unwrap()).unwrap();
    let shot = image::load_from_memory(&png).unwrap().to_rgb8();
    let page = wd.call("GET", &format!("/session/{session}/screenshot"), None);
    let page_png = BASE64.decode(page.as_str().unwrap()).unwrap();
    std::fs::write(
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("rar-serve-page.png"),
        &page_png,
    )
    .unwrap();
    wd.call("DELETE", &format!("/session/{session}"), None);

    let (w, h) = shot.dimensions();
    assert!(w >= 64 && h >= 64, "the image is {w}×{h} on screen");
    let distinct: std::collections::HashSet<[u8; 3]> = shot.pixels().map(|p| p.0).collect();
    assert!(distinct.len() >= 2, "the image is blank: one colour");
    let block = (w as f64 / TOY_SIDE as f64, h as f64 / TOY_SIDE as f64);
    let matching = want
        .iter()
        .enumerate()
        .filter(|(i, t)| {
            let (x, y) = (
                ((i % TOY_SIDE) as f64 + 0.5) * block.0,
                ((i / TOY_SIDE) as f64 + 0.5) * block.1,
            );
            let seen = shot.get_pixel(x as u32, y as u32).0;
            let want = PALETTE[**t as usize];
            seen.iter().zip(want).all(|(a, b)| a.abs_diff(b) <= 3)
        })
        .count();
    assert_eq!(
        matching, TOY_TOKENS,
        "{matching} of {TOY_TOKENS} token blocks show the sampler's colours"
    );
}
