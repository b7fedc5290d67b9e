//! The colour map, lookup and colour scale against shap 0.51 / matplotlib 3.11 / numpy 2.4
//! (fixtures/colormap_fixture.json, written by fixtures/gen_fixtures.py).
#![allow(clippy::unwrap_used)]

mod common;

use serde_json::Value;
use shap_plot::{
    ColorScale, ImagePlot, ImagePlotRow, LUT_SIZE, colorbar_ticks, lut_index, numpy_percentile,
    red_transparent_blue, red_transparent_blue_lut, red_transparent_blue_rgba, resolve_vmax,
};

fn fixture() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/colormap_fixture.json"
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A float stored as the 16 hex digits of its IEEE-754 bits.
fn bits(v: &Value) -> f64 {
    f64::from_bits(u64::from_str_radix(v.as_str().unwrap(), 16).unwrap())
}

fn bits_vec(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(bits).collect()
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[test]
fn lut_matches_matplotlib_bit_for_bit() {
    let fx = fixture();
    let lut = red_transparent_blue_lut();
    let rows = fx["lut"].as_array().unwrap();
    assert_eq!(rows.len(), LUT_SIZE);
    for (t, row) in rows.iter().enumerate() {
        for (c, want) in bits_vec(row).into_iter().enumerate() {
            assert_eq!(lut[t][c].to_bits(), want.to_bits(), "entry {t} channel {c}");
        }
    }
}

#[test]
fn lut_matches_spec_table() {
    // Reference entries of docs/image-plot.md#reference-entries (6 decimals).
    let table: [(usize, [f64; 4]); 7] = [
        (0, [0.117647, 0.533333, 0.898039, 1.0]),
        (1, [0.117647, 0.533333, 0.898039, 0.992117]),
        (126, [0.117647, 0.533333, 0.898039, 0.006774]),
        (127, [0.214533, 0.480369, 0.836894, 0.0]),
        (128, [0.903114, 0.103945, 0.402322, 0.0]),
        (129, [1.0, 0.050980, 0.341176, 0.006774]),
        (255, [1.0, 0.050980, 0.341176, 1.0]),
    ];
    let lut = red_transparent_blue_lut();
    for (i, want) in table {
        for c in 0..4 {
            assert!((lut[i][c] - want[c]).abs() < 1e-6, "entry {i} channel {c}");
        }
    }
}

#[test]
fn bytes_match_matplotlib_for_every_entry_and_sample() {
    let fx = fixture();
    // Entry t is hit by v at the centre of its bin: u = (t + 0.5) / 256.
    for (t, row) in fx["lut_bytes"].as_array().unwrap().iter().enumerate() {
        let want: Vec<u8> = f64s(row).iter().map(|&x| x as u8).collect();
        let v = (t as f64 + 0.5) / 256.0 * 2.0 - 1.0;
        assert_eq!(red_transparent_blue(v).to_vec(), want, "entry {t}");
    }
    let vs = bits_vec(&fx["samples"]["v"]);
    let bytes = fx["samples"]["bytes"].as_array().unwrap();
    for (v, row) in vs.iter().zip(bytes) {
        let want: Vec<u8> = f64s(row).iter().map(|&x| x as u8).collect();
        assert_eq!(red_transparent_blue(*v).to_vec(), want, "v = {v}");
    }
}

#[test]
fn zero_is_transparent_and_ends_are_opaque() {
    assert_eq!(red_transparent_blue_rgba(0.0)[3], 0.0);
    assert_eq!(lut_index(0.0, -1.0, 1.0), Some(128));
    assert_eq!(red_transparent_blue(-1.0), [30, 136, 229, 255]);
    assert_eq!(red_transparent_blue(1.0), [255, 13, 87, 255]);
    assert_eq!(red_transparent_blue(f64::NAN), [0, 0, 0, 0]);
    assert_eq!(lut_index(5.0, -1.0, 1.0), Some(255));
    assert_eq!(lut_index(-5.0, -1.0, 1.0), Some(0));
    assert_eq!(lut_index(0.5, 1.0, 1.0), None);
}

#[test]
fn percentile_matches_numpy() {
    let fx = fixture();
    for case in fx["percentiles"].as_array().unwrap() {
        let mut a = bits_vec(&case["values"]);
        a.sort_by(f64::total_cmp);
        let got = numpy_percentile(&a, 99.9).unwrap();
        let want = bits(&case["p999"]);
        assert_eq!(
            got.to_bits(),
            want.to_bits(),
            "n = {}: {got} vs {want}",
            a.len()
        );
    }
    for case in fx["formula_percentiles"].as_array().unwrap() {
        let n = case["n"].as_u64().unwrap() as usize;
        let ties = case["ties"].as_bool().unwrap();
        let mut a: Vec<f64> = (0..n)
            .map(|i| {
                if ties && i % 3 == 0 {
                    0.0
                } else {
                    ((i * 7919) % 10007) as f64 / 10007.0 * 0.01
                }
            })
            .collect();
        a.sort_by(f64::total_cmp);
        let got = numpy_percentile(&a, 99.9).unwrap();
        let want = bits(&case["p999"]);
        assert_eq!(got.to_bits(), want.to_bits(), "n = {n}: {got} vs {want}");
    }
    assert_eq!(numpy_percentile(&[], 50.0), None);
    assert_eq!(numpy_percentile(&[1.0], 101.0), None);
}

#[test]
fn global_scale_matches_shap_image_plot_clim() {
    let fx = fixture();
    let ip = &fx["image_plot"];
    let shape: Vec<usize> = f64s(&ip["shape"]).iter().map(|&x| x as usize).collect();
    let (n, h, w, c, k) = (shape[0], shape[1], shape[2], shape[3], shape[4]);
    let vals = bits_vec(&ip["values"]);
    // values are (n, h, w, c, k) in C order: split the last axis into k outputs.
    let rows = (0..n)
        .map(|i| ImagePlotRow {
            image: vec![0.5; h * w * c],
            title: None,
            values: (0..k)
                .map(|o| {
                    (0..h * w * c)
                        .map(|p| vals[(i * h * w * c + p) * k + o])
                        .collect()
                })
                .collect(),
            output_names: vec![String::new(); k],
        })
        .collect();
    let plot = ImagePlot {
        height: h,
        width: w,
        channels: c,
        rows,
    };
    let clim = bits_vec(&ip["clim"]);
    let vmax = resolve_vmax(&plot, ColorScale::Global).unwrap();
    assert_eq!(vmax.len(), n);
    for v in vmax {
        assert_eq!(v.to_bits(), clim[1].to_bits(), "{v} vs shap {}", clim[1]);
        assert_eq!((-v).to_bits(), clim[0].to_bits());
    }
    // shap's figure: n x (k + 1) axes plus the colour bar.
    assert_eq!(
        ip["n_axes_including_colorbar"].as_u64().unwrap() as usize,
        n * (k + 1) + 1
    );
}

#[test]
fn ticks_are_nice_symmetric_and_inside() {
    for vmax in [0.0123, 0.05, 0.2880086830100479, 1.0, 3.7, 250.0, 4e-6] {
        let ticks = colorbar_ticks(-vmax, vmax, 7);
        assert!(
            ticks.len() >= 3 && ticks.len() <= 7,
            "vmax {vmax}: {ticks:?}"
        );
        assert!(ticks.iter().all(|t| t.value.abs() <= vmax * (1.0 + 1e-9)));
        assert!(
            ticks.iter().any(|t| t.value == 0.0),
            "vmax {vmax}: 0 missing"
        );
        assert!(ticks.windows(2).all(|w| w[0].value < w[1].value));
        // Symmetric labels: the negative side mirrors the positive side with a minus sign.
        let first = ticks.first().unwrap();
        let last = ticks.last().unwrap();
        assert_eq!(
            first.label,
            format!("\u{2212}{}", last.label),
            "vmax {vmax}"
        );
    }
    let t = colorbar_ticks(-0.05, 0.05, 5);
    let labels: Vec<&str> = t.iter().map(|t| t.label.as_str()).collect();
    assert_eq!(
        labels,
        ["\u{2212}0.04", "\u{2212}0.02", "0.00", "0.02", "0.04"]
    );
    assert!(colorbar_ticks(1.0, 1.0, 5).is_empty());
}
