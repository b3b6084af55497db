//! `examples/serve` with checkpoints in the official release's formats: the parity fixtures'
//! generator `.bin` (with its reference `config.json`) and MaskGIT-VQGAN `.bin`, made by the
//! official PyTorch code. The binary is started on port 0, its printed address is read, and a
//! request's PNGs must be the tokenizer's pictures of the tokens the library sampler draws
//! from the same files for the same seeds. A generator with more codes than the tokenizer is
//! refused at start with both sizes named.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rar::core::GuidanceSchedule;
use rar::core::parity::{parity_dir_for_tests, rar_model_dirs};
use rar::model::{LoadConfig, Rar, RarConfig};
use rar::sample::{SampleRequest, Sampler};
use rar::vq::Tokenizer;
use serde_json::Value;

fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    dir.join("examples").join(name)
}

/// Kills the server when the test ends, passed or not.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve_args<'a>(checkpoint: &'a Path, config: &'a Path, tokenizer: &'a Path) -> Vec<&'a str> {
    vec![
        "--checkpoint",
        checkpoint.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--tokenizer",
        tokenizer.to_str().unwrap(),
        "--addr",
        "127.0.0.1:0",
        "--max-batch",
        "4",
    ]
}

#[test]
fn serve_loads_official_format_checkpoints_and_answers_with_their_images() {
    let Some(parity) = parity_dir_for_tests() else {
        return;
    };
    let tokenizer_file = parity.join("maskgit_vqgan").join("model.bin");
    let device = burn::tensor::Device::flex();
    let (tokenizer, _) = Tokenizer::from_file(&tokenizer_file, &device).unwrap();
    let bin = example("serve");
    assert!(bin.is_file(), "{} was not built", bin.display());
    let mut served = 0;
    for dir in rar_model_dirs(&parity).unwrap() {
        let (checkpoint, config_file) = (dir.join("model.bin"), dir.join("config.json"));
        let config = RarConfig::from_reference_json(&config_file).unwrap();
        let args = serve_args(&checkpoint, &config_file, &tokenizer_file);
        if config.codebook_size > tokenizer.codebook_size() {
            let out = Command::new(&bin).args(&args).output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{}: served", dir.display());
            assert!(err.contains("codes"), "{}: {err}", dir.display());
            continue;
        }
        let mut child = Command::new(&bin)
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let _server = Server(child);
        let url = BufReader::new(stdout)
            .lines()
            .map(Result::unwrap)
            .find_map(|line| {
                line.strip_prefix("open ")
                    .map(|rest| rest.split_whitespace().next().unwrap().to_owned())
            })
            .expect("serve printed no address");

        let body = r#"{"class": 1, "count": 2, "seed": 3, "guidance": 2.0,
                       "guidance_power": 1.0, "temperature": 1.0, "format": "images"}"#;
        let mut response = ureq::post(format!("{url}/v1/generate"))
            .header("content-type", "application/json")
            .send(body)
            .unwrap();
        let json: Value =
            serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();

        // The library on the same files.
        let model =
            Rar::load_checkpoint(&checkpoint, Some(&config), &device, LoadConfig::default())
                .unwrap()
                .model;
        let requests: Vec<SampleRequest> = (0..2)
            .map(|i| SampleRequest {
                class: 1,
                guidance: GuidanceSchedule::power_cosine(2.0, 1.0).unwrap(),
                temperature: 1.0,
                top_k: None,
                top_p: None,
                seed: 3 + i,
            })
            .collect();
        let tokens = Sampler::new(&model).sample_requests(&requests).unwrap();
        let images = tokenizer
            .decode_tokens_to_images(&tokens.concat(), config.image_seq_len)
            .unwrap();
        let got = json["images"].as_array().unwrap();
        assert_eq!(got.len(), 2);
        for (i, image) in got.iter().enumerate() {
            let got_tokens: Vec<u32> = serde_json::from_value(image["tokens"].clone()).unwrap();
            assert_eq!(
                got_tokens,
                tokens[i],
                "{}: tokens of image {i}",
                dir.display()
            );
            let png = BASE64
                .decode(image["png_base64"].as_str().unwrap())
                .unwrap();
            let png = image::load_from_memory(&png).unwrap().to_rgb8();
            assert_eq!(png, images[i], "{}: pixels of image {i}", dir.display());
        }
        served += 1;
    }
    assert!(
        served > 0,
        "no fixture generator fits the fixture tokenizer"
    );
}
