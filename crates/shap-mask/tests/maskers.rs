//! Golden tests against shap 0.51 / OpenCV 5.0 fixtures (see `fixtures/gen_masker_fixtures.py`),
//! property tests and bad-input tests for the maskers.

use std::path::{Path, PathBuf};

use serde_json::Value;
use shap_io::npy::NpyData;
use shap_mask::npy;
use shap_mask::{
    ImageShape, InpaintMethod, MaskError, MaskMode, Masker, MaskerSpec, box_blur, inpaint_u8,
    inpaint_u8_channels,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

fn json(name: &str) -> Result<Value, Box<dyn std::error::Error>> {
    Ok(serde_json::from_str(&std::fs::read_to_string(fixture(
        name,
    ))?)?)
}

fn hex(v: &Value) -> Vec<u8> {
    let s = v.as_str().unwrap_or_default();
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap_or(0))
        .collect()
}

fn hex_f32(v: &Value) -> Vec<f32> {
    hex(v)
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn num(v: &Value, key: &str) -> usize {
    v[key].as_u64().unwrap_or(0) as usize
}

fn f32s(name: &str) -> Result<(Vec<usize>, Vec<f32>), Box<dyn std::error::Error>> {
    let a = npy::read(&fixture(name))?;
    match a.data {
        NpyData::F32(v) => Ok((a.shape, v)),
        _ => Err(format!("{name}: expected f32").into()),
    }
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Small deterministic generator for the property loops.
struct SplitMix(u64);
impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[test]
fn box_blur_matches_cv2_blur() -> TestResult {
    let doc = json("blur_cases.json")?;
    let cases = doc["cases"].as_array().ok_or("no cases")?;
    assert!(cases.len() >= 10);
    for case in cases {
        let shape = ImageShape::new(num(case, "h"), num(case, "w"), num(case, "c"));
        let (kw, kh) = (num(case, "kw"), num(case, "kh"));
        let got = box_blur(&hex_f32(&case["src"]), shape, kw, kh)?;
        let want = hex_f32(&case["expected"]);
        // Exactly cv2.blur's f32 values, not merely close.
        assert_eq!(got, want, "blur {shape} kernel ({kw},{kh})");
    }
    Ok(())
}

#[test]
fn inpaint_u8_is_pixel_identical_to_cv2() -> TestResult {
    let doc = json("inpaint_u8_cases.json")?;
    let cases = doc["cases"].as_array().ok_or("no cases")?;
    assert!(cases.len() >= 30);
    for (n, case) in cases.iter().enumerate() {
        let shape = ImageShape::new(num(case, "h"), num(case, "w"), num(case, "c"));
        let src = hex(&case["src"]);
        let fill: Vec<bool> = hex(&case["fill"]).iter().map(|&b| b != 0).collect();
        for (key, method) in [("telea", InpaintMethod::Telea), ("ns", InpaintMethod::Ns)] {
            let got = if shape.channels == 1 {
                inpaint_u8(&src, &fill, shape.height, shape.width, method)?
            } else {
                inpaint_u8_channels(&src, &fill, shape, method)?
            };
            let want = hex(&case[key]);
            let bad = got.iter().zip(&want).filter(|(a, b)| a != b).count();
            assert_eq!(
                bad, 0,
                "case {n} {shape} {key}: {bad} pixels differ\n got {got:?}\nwant {want:?}"
            );
        }
    }
    Ok(())
}

#[test]
fn spec_example_6x6_values() -> TestResult {
    // docs/maskers.md#worked-example-6x6: OpenCV 5.0 fills the centre 2x2 with Telea 41 and NS 43.
    let mut img = vec![10u8; 36];
    for r in 1..5 {
        for c in 1..5 {
            img[r * 6 + c] = if (2..4).contains(&r) && (2..4).contains(&c) {
                200
            } else {
                50
            };
        }
    }
    let fill: Vec<bool> = (0..36)
        .map(|p| (2..4).contains(&(p / 6)) && (2..4).contains(&(p % 6)))
        .collect();
    let telea = inpaint_u8(&img, &fill, 6, 6, InpaintMethod::Telea)?;
    let ns = inpaint_u8(&img, &fill, 6, 6, InpaintMethod::Ns)?;
    for p in (0..36).filter(|&p| fill[p]) {
        assert_eq!((telea[p], ns[p]), (41, 43), "pixel {p}");
    }
    Ok(())
}

struct MaskerFixture {
    images: Vec<f32>,
    keeps: Vec<bool>,
}

const M: usize = 784;
const SHAPE: ImageShape = ImageShape::new(28, 28, 1);

fn masker_fixture() -> Result<MaskerFixture, Box<dyn std::error::Error>> {
    let (ishape, images) = f32s("masker_images.npy")?;
    assert_eq!(ishape, vec![2, 28, 28, 1]);
    let k = npy::read(&fixture("masker_keeps.npy"))?;
    assert_eq!(k.shape, vec![4, M]);
    let NpyData::Bool(keeps) = k.data else {
        return Err("keeps: expected bool".into());
    };
    Ok(MaskerFixture { images, keeps })
}

impl MaskerFixture {
    fn image(&self, i: usize) -> &[f32] {
        &self.images[i * M..(i + 1) * M]
    }
    fn keep(&self, k: usize) -> &[bool] {
        &self.keeps[k * M..(k + 1) * M]
    }
}

#[test]
fn blur_and_constant_maskers_match_shap_in_both_modes() -> TestResult {
    let fx = masker_fixture()?;
    let (_, blur) = f32s("masker_blur.npy")?;
    let (_, constant) = f32s("masker_const.npy")?;
    for mode in [MaskMode::Default, MaskMode::ShapCompat] {
        let masker = Masker::new("blur(28,28)".parse()?, mode);
        for i in 0..2 {
            let prepared = masker.prepare(fx.image(i), SHAPE)?;
            for k in 0..4 {
                let got = prepared.masked(fx.keep(k))?;
                let want = &blur[(i * 4 + k) * M..(i * 4 + k + 1) * M];
                assert_eq!(
                    got, want,
                    "blur image {i} mask {k} {mode}: exactly shap's values"
                );
            }
        }
        let prepared = Masker::new(MaskerSpec::Constant(0.5), mode).prepare(fx.image(0), SHAPE)?;
        for k in 0..4 {
            assert_eq!(prepared.masked(fx.keep(k))?, &constant[k * M..(k + 1) * M]);
        }
    }
    Ok(())
}

#[test]
fn inpaint_maskers_match_shap_in_compat_mode() -> TestResult {
    let fx = masker_fixture()?;
    let compat = npy::read(&fixture("masker_inpaint_compat.npy"))?;
    assert_eq!(compat.shape, vec![2, 2, 3, M]);
    let NpyData::U8(compat) = compat.data else {
        return Err("expected u8".into());
    };
    let (_, all_hidden) = f32s("masker_inpaint_compat_all_hidden.npy")?;
    for (a, spec) in [MaskerSpec::InpaintTelea, MaskerSpec::InpaintNs]
        .into_iter()
        .enumerate()
    {
        let masker = Masker::new(spec, MaskMode::ShapCompat);
        for i in 0..2 {
            let prepared = masker.prepare(fx.image(i), SHAPE)?;
            for k in 0..3 {
                let got = prepared.masked(fx.keep(k))?;
                let off = ((a * 2 + i) * 3 + k) * M;
                let want: Vec<f32> = compat[off..off + M].iter().map(|&v| f32::from(v)).collect();
                assert_eq!(got, want, "{spec} image {i} mask {k}");
            }
            let got = prepared.masked(fx.keep(3))?;
            let d = max_abs_diff(&got, &vec![all_hidden[a * 2 + i]; M]);
            assert!(d <= 1e-6, "{spec} image {i} all hidden: {d}");
            // Nothing hidden: shap returns the truncated image.
            let got = prepared.masked(&[true; M])?;
            let trunc: Vec<f32> = fx.image(i).iter().map(|x| x.trunc()).collect();
            assert_eq!(got, trunc);
        }
    }
    Ok(())
}

#[test]
fn inpaint_maskers_match_cv2_at_byte_scale_in_default_mode() -> TestResult {
    let fx = masker_fixture()?;
    let (shape, default) = f32s("masker_inpaint_default.npy")?;
    assert_eq!(shape, vec![2, 2, 3, M]);
    for (a, spec) in [MaskerSpec::InpaintTelea, MaskerSpec::InpaintNs]
        .into_iter()
        .enumerate()
    {
        let masker = Masker::new(spec, MaskMode::Default);
        for i in 0..2 {
            let prepared = masker.prepare(fx.image(i), SHAPE)?;
            assert_eq!(
                prepared.inpaint_scale(),
                Some(shap_mask::InpaintScale::Unit)
            );
            assert_eq!(prepared.clamped_values(), 0);
            for k in 0..3 {
                let got = prepared.masked(fx.keep(k))?;
                let off = ((a * 2 + i) * 3 + k) * M;
                assert_eq!(got, &default[off..off + M], "{spec} image {i} mask {k}");
            }
        }
    }
    Ok(())
}

#[test]
fn three_channel_maskers_match_shap_and_cv2() -> TestResult {
    let doc = json("masker_rgb.json")?;
    let shape = ImageShape::new(num(&doc, "h"), num(&doc, "w"), num(&doc, "c"));
    let image = hex_f32(&doc["image"]);
    for case in doc["cases"].as_array().ok_or("no cases")? {
        let keep: Vec<bool> = case["keep"]
            .as_array()
            .ok_or("no keep")?
            .iter()
            .map(|v| v.as_u64() == Some(1))
            .collect();
        for (key, want) in case["outputs"].as_object().ok_or("no outputs")? {
            let (spec, mode) = key.split_once('/').ok_or("bad key")?;
            let mode = if mode == "shap" {
                MaskMode::ShapCompat
            } else {
                MaskMode::Default
            };
            let want = hex_f32(want);
            let got = Masker::new(spec.parse()?, mode)
                .prepare(&image, shape)?
                .masked(&keep)?;
            if spec.starts_with("blur") {
                // Blur is exactly cv2.blur's f32 values.
                assert_eq!(got, want, "{key}");
                continue;
            }
            for (j, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - w).abs() <= 1e-6 * w.abs().max(1.0),
                    "{key} feature {j}: {g} vs {w}"
                );
            }
        }
    }
    Ok(())
}

fn all_specs() -> Vec<MaskerSpec> {
    vec![
        MaskerSpec::Blur { kw: 28, kh: 28 },
        MaskerSpec::Blur { kw: 3, kh: 6 },
        MaskerSpec::InpaintTelea,
        MaskerSpec::InpaintNs,
        MaskerSpec::Constant(0.25),
    ]
}

#[test]
fn default_mode_never_changes_kept_features_and_all_true_is_identity() -> TestResult {
    let fx = masker_fixture()?;
    let mut rng = SplitMix(7);
    // A 0..255 image with fractions and a 3-channel image too.
    let byte: Vec<f32> = fx.image(1).iter().map(|x| x * 250.0 + 0.37).collect();
    let rgb_shape = ImageShape::new(9, 8, 3);
    let rgb: Vec<f32> = (0..rgb_shape.features())
        .map(|_| rng.unit() as f32)
        .collect();
    let images: Vec<(&[f32], ImageShape)> =
        vec![(fx.image(0), SHAPE), (&byte, SHAPE), (&rgb, rgb_shape)];
    for spec in all_specs() {
        let masker = Masker::new(spec, MaskMode::Default);
        for &(image, shape) in &images {
            if matches!(spec, MaskerSpec::Blur { kw: 28, .. }) && shape.width < 28 {
                continue; // kernel larger than 2W-1: rejected (tested below)
            }
            let prepared = masker.prepare(image, shape)?;
            assert_eq!(
                prepared.masked(&vec![true; image.len()])?,
                image,
                "{spec}: all kept"
            );
            for trial in 0..12 {
                let p = rng.unit();
                let keep: Vec<bool> = (0..image.len()).map(|_| rng.unit() < p).collect();
                let out = prepared.masked(&keep)?;
                for j in 0..image.len() {
                    if keep[j] {
                        assert_eq!(
                            out[j], image[j],
                            "{spec} {shape} trial {trial}: kept feature {j} changed"
                        );
                    }
                }
                assert!(out.iter().all(|v| v.is_finite()));
            }
        }
    }
    Ok(())
}

#[test]
fn fill_batch_equals_fill_for_any_thread_count() -> TestResult {
    let fx = masker_fixture()?;
    let mut rng = SplitMix(11);
    let n = 37;
    let keeps: Vec<bool> = (0..n * M).map(|_| rng.unit() < 0.5).collect();
    for spec in all_specs() {
        for mode in [MaskMode::Default, MaskMode::ShapCompat] {
            let prepared = Masker::new(spec, mode).prepare(fx.image(0), SHAPE)?;
            let mut single = vec![0.0f32; n * M];
            for (o, k) in single.chunks_exact_mut(M).zip(keeps.chunks_exact(M)) {
                prepared.fill(k, o)?;
            }
            for threads in [1, 3] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()?;
                let mut batch = vec![f32::NAN; n * M];
                pool.install(|| prepared.fill_batch(&keeps, &mut batch))?;
                assert_eq!(batch, single, "{spec} {mode} with {threads} threads");
            }
        }
    }
    Ok(())
}

#[test]
fn specs_parse_strictly_and_round_trip() -> TestResult {
    for (text, want) in [
        ("blur(28,28)", MaskerSpec::Blur { kw: 28, kh: 28 }),
        ("blur(28, 28)", MaskerSpec::Blur { kw: 28, kh: 28 }),
        (" blur(3,5) ", MaskerSpec::Blur { kw: 3, kh: 5 }),
        ("inpaint_telea", MaskerSpec::InpaintTelea),
        ("inpaint_ns", MaskerSpec::InpaintNs),
        ("0.5", MaskerSpec::Constant(0.5)),
        ("-1", MaskerSpec::Constant(-1.0)),
        ("0", MaskerSpec::Constant(0.0)),
    ] {
        let spec: MaskerSpec = text.parse()?;
        assert_eq!(spec, want, "{text}");
        assert_eq!(spec.to_string().parse::<MaskerSpec>()?, spec);
    }
    assert_eq!(
        MaskerSpec::Blur { kw: 28, kh: 28 }.to_string(),
        "blur(28,28)"
    );
    assert_eq!(MaskerSpec::Constant(0.5).to_string(), "0.5");
    assert_eq!(MaskerSpec::InpaintNs.to_string(), "inpaint_ns");
    for bad in [
        "blur(0,28)",
        "blur(28)",
        "blur(28,28",
        "inpaint",
        "",
        "   ",
        "blur(28,28,1)",
        "blur(-1,3)",
        "blur(a,b)",
        "blur 28,28",
        "Inpaint_telea",
        "nan",
        "inf",
        "1e99",
        "0.5x",
        "blur(2.5,3)",
    ] {
        match bad.parse::<MaskerSpec>() {
            Err(e @ MaskError::InvalidSpec { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains(&format!("{bad:?}")), "{msg}");
                assert!(
                    msg.contains("blur(KW,KH)") && msg.contains("inpaint_telea"),
                    "{msg}"
                );
            }
            other => panic!("{bad:?} parsed as {other:?}"),
        }
    }
    Ok(())
}

#[test]
fn bad_inputs_are_typed_errors() -> TestResult {
    let shape = ImageShape::new(4, 5, 1);
    let image = vec![0.5f32; 20];
    let blur = Masker::new(MaskerSpec::Blur { kw: 3, kh: 3 }, MaskMode::Default);
    let telea = Masker::new(MaskerSpec::InpaintTelea, MaskMode::Default);
    assert!(matches!(
        blur.prepare(&image[..19], shape),
        Err(MaskError::ImageLength { .. })
    ));
    let mut nan = image.clone();
    nan[7] = f32::NAN;
    assert!(matches!(
        telea.prepare(&nan, shape),
        Err(MaskError::NonFinite { index: 7, .. })
    ));
    nan[7] = f32::INFINITY;
    assert!(matches!(
        blur.prepare(&nan, shape),
        Err(MaskError::NonFinite { index: 7, .. })
    ));
    for empty in [
        ImageShape::new(0, 5, 1),
        ImageShape::new(4, 0, 1),
        ImageShape::new(4, 5, 0),
    ] {
        assert!(matches!(
            blur.prepare(&[], empty),
            Err(MaskError::EmptyImage { .. })
        ));
        assert!(matches!(
            box_blur(&[], empty, 1, 1),
            Err(MaskError::EmptyImage { .. })
        ));
    }
    let huge = ImageShape::new(usize::MAX, 2, 2);
    assert!(matches!(
        blur.prepare(&image, huge),
        Err(MaskError::EmptyImage { .. })
    ));
    for (kw, kh) in [(0, 3), (3, 0)] {
        let m = Masker::new(MaskerSpec::Blur { kw, kh }, MaskMode::Default);
        assert!(matches!(
            m.prepare(&image, shape),
            Err(MaskError::ZeroKernel { .. })
        ));
    }
    // 2*W-1 = 9 and 2*H-1 = 7 are the largest allowed.
    assert!(
        Masker::new(MaskerSpec::Blur { kw: 9, kh: 7 }, MaskMode::Default)
            .prepare(&image, shape)
            .is_ok()
    );
    for (kw, kh) in [(10, 3), (3, 8)] {
        let m = Masker::new(MaskerSpec::Blur { kw, kh }, MaskMode::Default);
        assert!(matches!(
            m.prepare(&image, shape),
            Err(MaskError::KernelTooLarge { .. })
        ));
    }
    let c = Masker::new(MaskerSpec::Constant(f32::NAN), MaskMode::Default);
    assert!(matches!(
        c.prepare(&image, shape),
        Err(MaskError::NonFiniteConstant { .. })
    ));
    let thin = ImageShape::new(1, 20, 1);
    assert!(matches!(
        telea.prepare(&image, thin),
        Err(MaskError::ImageTooSmall { .. })
    ));
    let four = ImageShape::new(2, 2, 5);
    let compat = Masker::new(MaskerSpec::InpaintNs, MaskMode::ShapCompat);
    assert!(matches!(
        compat.prepare(&image, four),
        Err(MaskError::UnsupportedChannels { .. })
    ));
    assert!(telea.prepare(&image, four).is_ok());
    Ok(())
}

#[test]
fn masks_and_outputs_of_the_wrong_length_are_typed_errors() -> TestResult {
    let shape = ImageShape::new(4, 5, 1);
    let image = vec![0.5f32; 20];
    let telea = Masker::new(MaskerSpec::InpaintTelea, MaskMode::Default);
    let prepared = telea.prepare(&image, shape)?;
    let mut out = vec![0.0f32; 20];
    assert!(matches!(
        prepared.fill(&[true; 19], &mut out),
        Err(MaskError::MaskLength {
            expected: 20,
            actual: 19
        })
    ));
    assert!(matches!(
        prepared.fill(&[true; 20], &mut out[..3]),
        Err(MaskError::ImageLength { .. })
    ));
    let mut out2 = [0.0f32; 40];
    assert!(matches!(
        prepared.fill_batch(&[true; 30], &mut out2[..30]),
        Err(MaskError::BatchLength { .. })
    ));
    assert!(matches!(
        prepared.fill_batch(&[true; 40], &mut out2[..20]),
        Err(MaskError::BatchLength { .. })
    ));
    prepared.fill_batch(&[], &mut [])?;

    assert!(matches!(
        inpaint_u8(&[0; 6], &[false; 6], 1, 6, InpaintMethod::Ns),
        Err(MaskError::ImageTooSmall { .. })
    ));
    assert!(matches!(
        inpaint_u8(&[0; 5], &[false; 6], 2, 3, InpaintMethod::Ns),
        Err(MaskError::ImageLength { .. })
    ));
    assert!(matches!(
        inpaint_u8(&[0; 6], &[false; 5], 2, 3, InpaintMethod::Telea),
        Err(MaskError::MaskLength { .. })
    ));
    assert!(matches!(
        inpaint_u8(&[], &[], 0, 3, InpaintMethod::Telea),
        Err(MaskError::EmptyImage { .. })
    ));
    assert!(matches!(
        inpaint_u8(&[], &[], usize::MAX, 2, InpaintMethod::Telea),
        Err(MaskError::EmptyImage { .. })
    ));
    assert!(matches!(
        inpaint_u8(&[], &[], 1 << 20, 1 << 20, InpaintMethod::Ns),
        Err(MaskError::EmptyImage { .. })
    ));
    Ok(())
}

#[test]
fn default_mode_scales_and_reports_out_of_range_values() -> TestResult {
    let shape = ImageShape::new(3, 3, 1);
    let keep = [true, true, true, true, false, true, true, true, true];
    let masker = Masker::new(MaskerSpec::InpaintNs, MaskMode::Default);
    // Unit scale: a constant 0.4 image is filled with round(0.4*255)/255 = 102/255.
    let p = masker.prepare(&[0.4; 9], shape)?;
    assert_eq!(p.masked(&keep)?[4], 102.0 / 255.0);
    // Byte scale: a constant 100.4 image is filled with 100.
    let p = masker.prepare(&[100.4; 9], shape)?;
    assert_eq!(p.inpaint_scale(), Some(shap_mask::InpaintScale::Byte));
    assert_eq!(p.masked(&keep)?[4], 100.0);
    // Out of range: clamped and counted.
    let mut img = [0.2f32; 9];
    img[0] = -3.0;
    img[8] = 300.0;
    assert_eq!(masker.prepare(&img, shape)?.clamped_values(), 2);
    // Compat mode truncates: a [0,1) image becomes zeros.
    let p = Masker::new(MaskerSpec::InpaintNs, MaskMode::ShapCompat).prepare(&[0.9; 9], shape)?;
    assert_eq!(p.masked(&keep)?, vec![0.0; 9]);
    Ok(())
}
