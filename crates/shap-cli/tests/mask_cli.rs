//! `shap-cli mask` run as a real process.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use shap_io::npy::{NpyArray, NpyData};
use shap_mask::npy;
use shap_mask::{ImageShape, MaskMode, Masker, MaskerSpec};

mod common;
use common::{real_data, shap_cli, text};

const H: usize = 9;
const W: usize = 11;

/// A grey 9x11 PNG with a bright blob; returns its pixels in [0,1].
fn write_png(path: &Path) -> Vec<f32> {
    let px: Vec<u8> = (0..H * W)
        .map(|p| {
            let (r, c) = ((p / W) as f32 - 4.0, (p % W) as f32 - 5.0);
            (255.0 * (-(r * r + c * c) / 12.0).exp()).round() as u8
        })
        .collect();
    image::GrayImage::from_raw(W as u32, H as u32, px.clone())
        .unwrap()
        .save(path)
        .unwrap();
    px.iter().map(|&v| f32::from(v) / 255.0).collect()
}

fn keep_mask() -> Vec<bool> {
    (0..H * W)
        .map(|p| !(p * 7 + p / W).is_multiple_of(3))
        .collect()
}

fn read_f32(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let a = npy::read(path).unwrap();
    match a.data {
        NpyData::F32(v) => (a.shape, v),
        other => panic!("expected f32, got {other:?}"),
    }
}

#[test]
fn png_input_matches_the_library_and_writes_npy_and_png() {
    let d = tempfile::tempdir().unwrap();
    let png = d.path().join("in.png");
    let image = write_png(&png);
    let keep = keep_mask();
    let keep_path = d.path().join("keep.npy");
    npy::write_bool(&keep_path, &[H, W], &keep).unwrap();
    let shape = ImageShape::new(H, W, 1);
    for (spec, compat) in [
        ("inpaint_telea", false),
        ("inpaint_ns", false),
        ("inpaint_telea", true),
        ("blur(3,5)", false),
        ("0.25", false),
    ] {
        let out = d.path().join("out.npy");
        let out_png = d.path().join("out.png");
        let mut args = vec![
            "mask",
            "--masker",
            spec,
            "--image",
            png.to_str().unwrap(),
            "--keep",
            keep_path.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--png",
            out_png.to_str().unwrap(),
        ];
        if compat {
            args.push("--shap-compat");
        }
        let res = shap_cli(&args);
        assert!(res.status.success(), "{spec}: {}", text(&res.stderr));
        assert!(text(&res.stdout).contains(spec), "{}", text(&res.stdout));
        let (dims, got) = read_f32(&out);
        assert_eq!(dims, vec![H, W]);
        let mode = if compat {
            MaskMode::ShapCompat
        } else {
            MaskMode::Default
        };
        let want = Masker::new(spec.parse::<MaskerSpec>().unwrap(), mode)
            .prepare(&image, shape)
            .unwrap()
            .masked(&keep)
            .unwrap();
        assert_eq!(got, want, "{spec} compat={compat}");
        if !compat {
            for j in (0..H * W).filter(|&j| keep[j]) {
                assert_eq!(got[j], image[j], "{spec}: kept pixel {j} changed");
            }
        } else {
            // shap truncates the [0,1] image to u8: only integer values come out.
            assert!(got.iter().all(|v| v.fract() == 0.0));
        }
        let decoded = image::open(&out_png).unwrap().to_luma8();
        assert_eq!((decoded.width(), decoded.height()), (W as u32, H as u32));
        let expect_px: Vec<u8> = got
            .iter()
            .map(|&v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
            .collect();
        assert_eq!(decoded.into_raw(), expect_px);
    }
}

#[test]
fn uint8_masks_are_accepted_and_nonzero_means_keep() {
    let d = tempfile::tempdir().unwrap();
    let png = d.path().join("in.png");
    let image = write_png(&png);
    let keep: Vec<u8> = (0..H * W).map(|p| if p % 2 == 0 { 7 } else { 0 }).collect();
    let keep_path = d.path().join("keep.npy");
    npy::write(
        &keep_path,
        &NpyArray {
            shape: vec![H, W],
            data: NpyData::U8(keep.clone()),
        },
    )
    .unwrap();
    let out = d.path().join("o.npy");
    let res = shap_cli(&[
        "mask",
        "--masker",
        "0.5",
        "--image",
        png.to_str().unwrap(),
        "--keep",
        keep_path.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(res.status.success(), "{}", text(&res.stderr));
    let (_, got) = read_f32(&out);
    for j in 0..H * W {
        assert_eq!(got[j], if keep[j] != 0 { image[j] } else { 0.5 });
    }
}

#[test]
fn bad_inputs_fail_with_clear_messages() {
    let d = tempfile::tempdir().unwrap();
    let png = d.path().join("in.png");
    write_png(&png);
    let keep_path = d.path().join("keep.npy");
    npy::write_bool(&keep_path, &[H, W], &keep_mask()).unwrap();
    let wrong = d.path().join("wrong.npy");
    npy::write_bool(&wrong, &[W, H], &keep_mask()).unwrap();
    let out = d.path().join("o.npy");
    let (png, keep, wrong, out) = (
        png.to_str().unwrap(),
        keep_path.to_str().unwrap(),
        wrong.to_str().unwrap(),
        out.to_str().unwrap(),
    );
    let res = shap_cli(&[
        "mask", "--masker", "blur(28)", "--image", png, "--keep", keep, "--out", out,
    ]);
    assert!(!res.status.success());
    let err = text(&res.stderr);
    assert!(
        err.contains("\"blur(28)\"") && err.contains("inpaint_telea"),
        "{err}"
    );
    let res = shap_cli(&[
        "mask",
        "--masker",
        "inpaint_ns",
        "--image",
        png,
        "--keep",
        wrong,
        "--out",
        out,
    ]);
    assert!(!res.status.success());
    assert!(
        text(&res.stderr).contains("does not match"),
        "{}",
        text(&res.stderr)
    );
    let res = shap_cli(&[
        "mask",
        "--masker",
        "blur(30,3)",
        "--image",
        png,
        "--keep",
        keep,
        "--out",
        out,
    ]);
    assert!(!res.status.success());
    assert!(
        text(&res.stderr).contains("too large"),
        "{}",
        text(&res.stderr)
    );
    let res = shap_cli(&[
        "mask",
        "--masker",
        "inpaint_ns",
        "--indices",
        "0",
        "--image",
        png,
        "--keep",
        keep,
        "--out",
        out,
    ]);
    assert!(!res.status.success());
    let res = shap_cli(&[
        "mask",
        "--masker",
        "inpaint_ns",
        "--keep",
        keep,
        "--out",
        out,
    ]);
    assert!(!res.status.success());
    assert!(!Path::new(out).exists(), "no output on failure");
}

#[test]
fn index_reads_the_fashion_mnist_test_image() {
    // The CLI below searches for the data exactly as `real_data` does (no `--data-dir`).
    let Some(data) = real_data() else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let keep: Vec<bool> = (0..784).map(|p| p % 28 >= 14).collect();
    let keep_path = d.path().join("keep.npy");
    npy::write_bool(&keep_path, &[28, 28], &keep).unwrap();
    let out = d.path().join("o.npy");
    let res = shap_cli(&[
        "mask",
        "--masker",
        "inpaint_telea",
        "--index",
        "3",
        "--keep",
        keep_path.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(res.status.success(), "{}", text(&res.stderr));
    let (dims, got) = read_f32(&out);
    assert_eq!(dims, vec![28, 28]);
    let image = data.test.images_f32(&[3]).unwrap();
    let want = Masker::new(MaskerSpec::InpaintTelea, MaskMode::Default)
        .prepare(&image, ImageShape::new(28, 28, 1))
        .unwrap()
        .masked(&keep)
        .unwrap();
    assert_eq!(got, want);
}
