//! The JSON body of `POST /v1/generate` and its checks: every bad value is refused with the
//! field it came from before anything is queued.

use rar_core::GuidanceSchedule;
use rar_sample::{SampleRequest, SamplingConfig};
use serde::{Deserialize, Serialize};

use crate::classes::ClassNames;
use crate::http_error::ApiError;

/// A class given by index or by name (`207` or `"golden retriever"`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum ClassSpec {
    /// The class index.
    Index(u64),
    /// A class name of `GET /v1/classes` (case-insensitive) or a decimal index.
    Name(String),
}

/// The shape of the guidance scale over the steps (`GuidanceSchedule`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScheduleKind {
    /// `g = G` at every step.
    Constant,
    /// A linear ramp from 1 to `G`.
    Linear,
    /// The power-cosine ramp of the released models (paper §4, the official sampler).
    PowerCosine,
}

/// What `POST /v1/generate` answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutputFormat {
    /// One PNG: the images tiled in a grid (`image/png`).
    #[default]
    Grid,
    /// JSON with one base64 PNG, seed and token list per image.
    Images,
}

/// The body of a generation request. Every field but `class` is optional: the server's
/// defaults (the checkpoint's recommended settings) fill the rest.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateRequest {
    /// The class: an index or a name.
    pub class: Option<ClassSpec>,
    /// Number of images (1 … the server's limit).
    pub count: Option<usize>,
    /// Guidance scale `G ≥ 0` (0 turns classifier-free guidance off).
    pub guidance: Option<f32>,
    /// Power `p ≥ 0` of the power-cosine schedule.
    pub guidance_power: Option<f32>,
    /// Shape of the guidance schedule (default: the server's).
    pub guidance_schedule: Option<ScheduleKind>,
    /// Softmax temperature `τ > 0`.
    pub temperature: Option<f32>,
    /// Keep only the `k ≥ 1` most likely tokens.
    pub top_k: Option<usize>,
    /// Nucleus mass `p ∈ (0, 1]`.
    pub top_p: Option<f32>,
    /// Seed of image 0; image `i` uses `seed + i` (default: a fresh seed, returned in the
    /// `x-rar-seed` header and the JSON).
    pub seed: Option<u64>,
    /// `grid` (a PNG) or `images` (JSON) — `POST /v1/generate` only.
    pub format: Option<OutputFormat>,
    /// Columns of the grid (default: a near-square grid).
    pub columns: Option<usize>,
    /// Streaming only: send the partial images every this many tokens.
    pub stream_every: Option<usize>,
}

/// A checked request: what to queue and how to answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// The class index.
    pub class: usize,
    /// The seed of image 0.
    pub seed: u64,
    /// One sampler request per image, seeds `seed, seed + 1, …`.
    pub requests: Vec<SampleRequest>,
    /// The answer's format.
    pub format: OutputFormat,
    /// Grid columns.
    pub columns: usize,
    /// Tokens between streamed frames.
    pub stream_every: usize,
}

/// Server-side bounds and defaults a request is checked against.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestLimits {
    /// Most images in one request.
    pub max_images: usize,
    /// Settings of fields a request leaves out.
    pub defaults: SamplingConfig,
    /// Default tokens between streamed frames.
    pub stream_every: usize,
    /// Tokens per image (bounds `stream_every` and `top_k`).
    pub num_tokens: usize,
    /// Codebook size (bounds `top_k`).
    pub codebook_size: usize,
}

/// Parses a body, naming the JSON path of a value that does not fit (`count`, `class` …).
pub fn parse_body(bytes: &[u8]) -> Result<GenerateRequest, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed: Result<GenerateRequest, _> = serde_path_to_error::deserialize(&mut de);
    let request = parsed.map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let field = (path != "." && !path.is_empty()).then_some(path);
        let what = if inner.is_syntax() || inner.is_eof() {
            "malformed JSON"
        } else {
            "invalid request body"
        };
        ApiError::malformed(field.as_deref(), format!("{what}: {inner}"))
    })?;
    de.end()
        .map_err(|e| ApiError::malformed(None, format!("malformed JSON: {e}")))?;
    Ok(request)
}

fn check_finite(field: &str, v: f32, min: f32, inclusive: bool) -> Result<f32, ApiError> {
    let ok = v.is_finite() && if inclusive { v >= min } else { v > min };
    if ok {
        Ok(v)
    } else {
        let op = if inclusive { "≥" } else { ">" };
        Err(ApiError::invalid(
            field,
            format!("{field} must be a finite number {op} {min}, got {v}"),
        ))
    }
}

impl GenerateRequest {
    /// Checks every field against the model's classes and the server's limits.
    /// `fresh_seed` is used when the request has no seed.
    pub fn check(
        &self,
        classes: &ClassNames,
        limits: &RequestLimits,
        fresh_seed: u64,
    ) -> Result<Generation, ApiError> {
        let class = match &self.class {
            None => {
                return Err(ApiError::invalid(
                    "class",
                    "a class (index or name) is required",
                ));
            }
            Some(ClassSpec::Index(i)) => {
                classes.check_index(usize::try_from(*i).unwrap_or(usize::MAX))?
            }
            Some(ClassSpec::Name(name)) => classes.resolve(name)?,
        };
        let count = self.count.unwrap_or(1);
        if count == 0 || count > limits.max_images {
            return Err(ApiError::invalid(
                "count",
                format!(
                    "count must be between 1 and {} images, got {count}",
                    limits.max_images
                ),
            ));
        }
        let defaults = &limits.defaults;
        let scale = match self.guidance {
            Some(g) => check_finite("guidance", g, 0.0, true)?,
            None => defaults.guidance.scale(),
        };
        let default_power = match defaults.guidance {
            GuidanceSchedule::PowerCosine { power, .. } => power,
            _ => 0.0,
        };
        let power = match self.guidance_power {
            Some(p) => check_finite("guidance_power", p, 0.0, true)?,
            None => default_power,
        };
        let kind = self.guidance_schedule.unwrap_or(match defaults.guidance {
            GuidanceSchedule::Constant { .. } => ScheduleKind::Constant,
            GuidanceSchedule::Linear { .. } => ScheduleKind::Linear,
            GuidanceSchedule::PowerCosine { .. } => ScheduleKind::PowerCosine,
        });
        // A power asks for the power-cosine shape unless a shape was named.
        let kind = if self.guidance_power.is_some() && self.guidance_schedule.is_none() {
            ScheduleKind::PowerCosine
        } else {
            kind
        };
        let guidance = match kind {
            ScheduleKind::Constant => GuidanceSchedule::Constant { scale },
            ScheduleKind::Linear => GuidanceSchedule::Linear { scale },
            ScheduleKind::PowerCosine => GuidanceSchedule::PowerCosine { scale, power },
        };
        let temperature = match self.temperature {
            Some(t) => check_finite("temperature", t, 0.0, false)?,
            None => defaults.temperature,
        };
        let top_k = match self.top_k {
            Some(0) => return Err(ApiError::invalid("top_k", "top_k must be at least 1")),
            Some(k) if k > limits.codebook_size => {
                return Err(ApiError::invalid(
                    "top_k",
                    format!(
                        "top_k {k} exceeds the codebook size {}",
                        limits.codebook_size
                    ),
                ));
            }
            Some(k) => Some(k),
            None => defaults.top_k,
        };
        let top_p = match self.top_p {
            Some(p) if !(p.is_finite() && p > 0.0 && p <= 1.0) => {
                return Err(ApiError::invalid(
                    "top_p",
                    format!("top_p must be in (0, 1], got {p}"),
                ));
            }
            Some(p) => Some(p),
            None => defaults.top_p,
        };
        let columns = match self.columns {
            Some(0) => return Err(ApiError::invalid("columns", "columns must be at least 1")),
            Some(c) => c.min(count),
            None => (count as f64).sqrt().ceil() as usize,
        };
        let stream_every = match self.stream_every {
            Some(k) if k == 0 || k > limits.num_tokens => {
                return Err(ApiError::invalid(
                    "stream_every",
                    format!(
                        "stream_every must be between 1 and {} tokens, got {k}",
                        limits.num_tokens
                    ),
                ));
            }
            Some(k) => k,
            None => limits.stream_every.clamp(1, limits.num_tokens.max(1)),
        };
        let seed = self.seed.unwrap_or(fresh_seed);
        let options = SamplingConfig {
            guidance,
            temperature,
            top_k,
            top_p,
            ..defaults.clone()
        };
        let requests = (0..count as u64)
            .map(|i| SampleRequest::new(class, &options, seed.wrapping_add(i)))
            .collect();
        Ok(Generation {
            class,
            seed,
            requests,
            format: self.format.unwrap_or_default(),
            columns,
            stream_every,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> RequestLimits {
        RequestLimits {
            max_images: 4,
            defaults: SamplingConfig::default(),
            stream_every: 8,
            num_tokens: 64,
            codebook_size: 8,
        }
    }

    fn check(body: &str) -> Result<Generation, ApiError> {
        parse_body(body.as_bytes())?.check(&ClassNames::numbered(10), &limits(), 99)
    }

    #[test]
    fn a_minimal_request_takes_the_defaults_and_consecutive_seeds() {
        let g = check(r#"{"class": 3, "count": 3, "seed": 10}"#).unwrap();
        assert_eq!(g.class, 3);
        let seeds: Vec<u64> = g.requests.iter().map(|r| r.seed).collect();
        assert_eq!(seeds, [10, 11, 12]);
        assert_eq!(
            g.requests[0].options().guidance,
            SamplingConfig::default().guidance
        );
        assert_eq!(check(r#"{"class": "class 2"}"#).unwrap().seed, 99);
    }

    #[test]
    fn each_bad_value_names_its_field() {
        let cases = [
            (r#"{"class": 10}"#, 422, Some("class")),
            (r#"{"class": "zebra"}"#, 422, Some("class")),
            (r#"{"count": 1}"#, 422, Some("class")),
            (r#"{"class": 1, "count": 5}"#, 422, Some("count")),
            (r#"{"class": 1, "count": 0}"#, 422, Some("count")),
            (r#"{"class": 1, "guidance": -1}"#, 422, Some("guidance")),
            (r#"{"class": 1, "guidance": 1e40}"#, 422, Some("guidance")),
            (
                r#"{"class": 1, "guidance_power": -0.5}"#,
                422,
                Some("guidance_power"),
            ),
            (
                r#"{"class": 1, "temperature": 0}"#,
                422,
                Some("temperature"),
            ),
            (r#"{"class": 1, "top_k": 9}"#, 422, Some("top_k")),
            (r#"{"class": 1, "top_p": 1.5}"#, 422, Some("top_p")),
            (
                r#"{"class": 1, "stream_every": 65}"#,
                422,
                Some("stream_every"),
            ),
            (r#"{"class": 1, "count": "three"}"#, 400, Some("count")),
            (r#"{"class": 1, "guidance": NaN}"#, 400, None),
            (r#"{"class": 1, "colour": 2}"#, 400, None),
            (r#"{"class": 1,"#, 400, None),
            (r#"{"class": 1} trailing"#, 400, None),
        ];
        for (body, status, field) in cases {
            let err = check(body).expect_err(body);
            assert_eq!(err.status().as_u16(), status, "{body}: {err}");
            if field.is_some() {
                assert_eq!(err.field(), field, "{body}: {err}");
            }
        }
        let err = check(r#"{"class": 1, "colour": 2}"#).unwrap_err();
        assert!(err.message().contains("colour"), "{err}");
    }
}
