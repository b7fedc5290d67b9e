//! Colour maps (shap's `red_transparent_blue`, a Blues ramp), NumPy's percentile and tick choice.

use std::sync::OnceLock;

/// Number of entries in the `red_transparent_blue` lookup table (matplotlib's default N).
pub const LUT_SIZE: usize = 256;

/// NumPy's `linspace(start, stop, num)` element `i` (endpoint included, last element exact).
fn linspace(start: f64, stop: f64, num: usize, i: usize) -> f64 {
    if i + 1 == num {
        return stop;
    }
    let step = (stop - start) / (num - 1) as f64;
    i as f64 * step + start
}

/// The 200 RGBA stops shap passes to matplotlib's `LinearSegmentedColormap.from_list`.
fn stop(i: usize) -> [f64; 4] {
    if i < 100 {
        [
            30.0 / 255.0,
            136.0 / 255.0,
            229.0 / 255.0,
            linspace(1.0, 0.0, 100, i),
        ]
    } else {
        [
            1.0,
            13.0 / 255.0,
            87.0 / 255.0,
            linspace(0.0, 1.0, 100, i - 100),
        ]
    }
}

fn build_lut() -> [[f64; 4]; LUT_SIZE] {
    // matplotlib `_create_lookup_table`, with its exact float operations: stop positions
    // x_j = 255 * linspace(0,1,200)[j]; entry t interpolates at xi = 255 * linspace(0,1,256)[t],
    // in the segment found by `searchsorted` (left side); the end entries are the end stops.
    const NSTOPS: usize = 200;
    let scale = (LUT_SIZE - 1) as f64;
    let xs: Vec<f64> = (0..NSTOPS)
        .map(|j| linspace(0.0, 1.0, NSTOPS, j) * scale)
        .collect();
    let mut lut = [[0.0; 4]; LUT_SIZE];
    lut[0] = stop(0);
    lut[LUT_SIZE - 1] = stop(NSTOPS - 1);
    for (t, entry) in lut.iter_mut().enumerate().take(LUT_SIZE - 1).skip(1) {
        let xi = scale * linspace(0.0, 1.0, LUT_SIZE, t);
        // searchsorted(left): first j with xs[j] >= xi; 0 < xi < 255 so 1 <= j <= 199.
        let j = xs.partition_point(|&x| x < xi).clamp(1, NSTOPS - 1);
        let distance = (xi - xs[j - 1]) / (xs[j] - xs[j - 1]);
        let (lo, hi) = (stop(j - 1), stop(j));
        for c in 0..4 {
            entry[c] = (distance * (hi[c] - lo[c]) + lo[c]).clamp(0.0, 1.0);
        }
    }
    lut
}

/// shap's `red_transparent_blue` as matplotlib samples it: 256 RGBA entries in [0, 1].
///
/// Built like matplotlib's `LinearSegmentedColormap.from_list` from 200 evenly spaced stops:
/// blue (30, 136, 229) with alpha falling 1 → 0, then red (255, 13, 87) with alpha rising
/// 0 → 1. Entry 0 is opaque blue, entries 127 and 128 are fully transparent, entry 255 is opaque
/// red (docs/image-plot.md#the-colormap-red_transparent_blue). Equals matplotlib's `red_transparent_blue(np.arange(256))` bit for bit (tested).
pub fn red_transparent_blue_lut() -> &'static [[f64; 4]; LUT_SIZE] {
    static LUT: OnceLock<[[f64; 4]; LUT_SIZE]> = OnceLock::new();
    LUT.get_or_init(build_lut)
}

/// The LUT index matplotlib uses for value `v` on the scale `vmin..vmax`.
///
/// `u = (v - vmin) / (vmax - vmin)`, index `floor(u * 256)` clipped to `0..=255` (so `u = 1`
/// gives 255, values below/above the range give the end entries). NaN and a degenerate range
/// (`vmax <= vmin`) give `None` (drawn fully transparent).
pub fn lut_index(v: f64, vmin: f64, vmax: f64) -> Option<usize> {
    if v.is_nan() || vmax.partial_cmp(&vmin) != Some(std::cmp::Ordering::Greater) {
        return None;
    }
    let u = (v - vmin) / (vmax - vmin);
    let x = u * LUT_SIZE as f64;
    if x.is_nan() {
        return None;
    }
    if x < 0.0 {
        return Some(0);
    }
    if x >= (LUT_SIZE - 1) as f64 {
        return Some(LUT_SIZE - 1);
    }
    // 0 <= x < 255 here, so the cast is exact truncation (= floor).
    Some(x as usize)
}

/// RGBA in [0, 1] of `v` in [-1, 1] under `red_transparent_blue` (-1 blue, 0 transparent,
/// +1 red). Values outside [-1, 1] clip to the end colours; NaN is fully transparent.
pub fn red_transparent_blue_rgba(v: f64) -> [f64; 4] {
    match lut_index(v, -1.0, 1.0) {
        Some(i) => red_transparent_blue_lut()[i],
        None => [0.0; 4],
    }
}

/// RGBA bytes of `v` in [-1, 1] under `red_transparent_blue`, exactly as matplotlib's
/// `cmap(x, bytes=True)` gives them: each channel is `floor(255 * c)` (truncation), with
/// `x = (v + 1) / 2`. Value 0 maps to LUT entry 128, which is fully transparent.
pub fn red_transparent_blue(v: f64) -> [u8; 4] {
    let c = red_transparent_blue_rgba(v);
    // c is in [0, 1], so c*255 is in [0, 255]: truncating cast as matplotlib does.
    [
        (c[0] * 255.0) as u8,
        (c[1] * 255.0) as u8,
        (c[2] * 255.0) as u8,
        (c[3] * 255.0) as u8,
    ]
}

/// A light-to-dark blue ramp (matplotlib's "Blues" end points and three inner stops) for
/// `t` in [0, 1]; used by the confusion-matrix heat map.
pub fn blues(t: f64) -> [u8; 3] {
    const STOPS: [[f64; 3]; 5] = [
        [247.0, 251.0, 255.0],
        [198.0, 219.0, 239.0],
        [107.0, 174.0, 214.0],
        [33.0, 113.0, 181.0],
        [8.0, 48.0, 107.0],
    ];
    let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
    let x = t * (STOPS.len() - 1) as f64;
    let i = (x.floor() as usize).min(STOPS.len() - 2);
    let f = x - i as f64;
    let mut out = [0u8; 3];
    for (c, o) in out.iter_mut().enumerate() {
        *o = (STOPS[i][c] + f * (STOPS[i + 1][c] - STOPS[i][c])).round() as u8;
    }
    out
}

/// NumPy's `percentile(a, q)` with the default "linear" method, for `sorted` ascending.
///
/// Reproduces NumPy ≥ 1.22 bit for bit: `q` is divided by 100, the virtual index is
/// `(n - 1) * q/100`, and the interpolation `a + (b - a) * g` is computed as
/// `b - (b - a) * (1 - g)` when `g >= 0.5` (NumPy's `_lerp`). Returns `None` for an empty slice
/// or `q` outside [0, 100].
pub fn numpy_percentile(sorted: &[f64], q: f64) -> Option<f64> {
    let n = sorted.len();
    if n == 0 || !(0.0..=100.0).contains(&q) {
        return None;
    }
    let quantile = q / 100.0;
    let virtual_index = (n - 1) as f64 * quantile;
    let prev = virtual_index.floor();
    let gamma = virtual_index - prev;
    let lo_i = (prev as usize).min(n - 1);
    let hi_i = (lo_i + 1).min(n - 1);
    let (a, b) = (*sorted.get(lo_i)?, *sorted.get(hi_i)?);
    let diff = b - a;
    Some(if gamma >= 0.5 {
        b - diff * (1.0 - gamma)
    } else {
        a + diff * gamma
    })
}

/// A colour-bar tick: its value and label text.
#[derive(Debug, Clone, PartialEq)]
pub struct Tick {
    /// The tick value.
    pub value: f64,
    /// The label, with a typographic minus sign (U+2212) like matplotlib's.
    pub label: String,
}

/// "Nice" ticks for the range `vmin..=vmax`: multiples of a step of 1, 2, 2.5 or 5 times a
/// power of ten, at most `max_ticks` of them (at least 2 are requested). Empty for an invalid
/// range.
pub fn colorbar_ticks(vmin: f64, vmax: f64, max_ticks: usize) -> Vec<Tick> {
    let max_ticks = max_ticks.max(2);
    if !(vmin.is_finite() && vmax.is_finite()) || vmax <= vmin {
        return Vec::new();
    }
    let span = vmax - vmin;
    let mut exp = (span / max_ticks as f64).log10().floor() as i32 - 1;
    loop {
        for (mant, extra_digit) in [(1.0, 0), (2.0, 0), (2.5, 1), (5.0, 0)] {
            let step = mant * 10f64.powi(exp);
            // Small tolerance so that e.g. vmax = 0.02 exactly counts 0.02 as inside.
            let eps = step * 1e-9;
            let k0 = ((vmin - eps) / step).ceil() as i64;
            let k1 = ((vmax + eps) / step).floor() as i64;
            let count = k1 - k0 + 1;
            if count >= 1 && count as usize <= max_ticks {
                let decimals = (-exp).max(0) as usize + extra_digit;
                return (k0..=k1)
                    .map(|k| {
                        let value = k as f64 * step;
                        Tick {
                            value,
                            label: format_tick(value, decimals, step),
                        }
                    })
                    .collect();
            }
        }
        exp += 1;
        if exp > 400 {
            return Vec::new();
        }
    }
}

fn format_tick(value: f64, decimals: usize, step: f64) -> String {
    let value = if value.abs() < step * 1e-6 {
        0.0
    } else {
        value
    };
    let text = if step < 1e-4 || value.abs() >= 1e6 {
        format!("{value:.1e}")
    } else {
        format!("{value:.decimals$}")
    };
    text.replace('-', "\u{2212}")
}
