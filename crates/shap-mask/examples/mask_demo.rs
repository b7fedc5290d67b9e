//! Apply every masker to a synthetic 28x28 image with its left half hidden and print the
//! results as ASCII art (default mode, and shap-compatible mode for the inpainting maskers).
//!
//! Run: `cargo run --release -p shap-mask --example mask_demo`

use shap_mask::{ImageShape, MaskMode, Masker, MaskerSpec};

fn ascii(img: &[f32], w: usize) -> String {
    const RAMP: &[u8] = b" .:-=+*#%@";
    img.chunks(w)
        .map(|row| {
            row.iter()
                .map(|&v| RAMP[((v.clamp(0.0, 1.0) * 9.0).round()) as usize] as char)
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn main() -> Result<(), shap_mask::MaskError> {
    let shape = ImageShape::new(28, 28, 1);
    // A ring-shaped "object" in [0,1].
    let image: Vec<f32> = (0..shape.features())
        .map(|p| {
            let (r, c) = ((p / 28) as f32 - 13.5, (p % 28) as f32 - 13.5);
            let d = (r * r + c * c).sqrt();
            (1.0 - (d - 8.0).abs() / 4.0).clamp(0.0, 1.0)
        })
        .collect();
    // Keep the right half (columns 14..28), hide the left half.
    let keep: Vec<bool> = (0..shape.features()).map(|p| p % 28 >= 14).collect();
    println!("original:\n{}\n", ascii(&image, 28));
    for text in ["blur(28,28)", "inpaint_telea", "inpaint_ns", "0.5"] {
        let spec: MaskerSpec = text.parse()?;
        for mode in [MaskMode::Default, MaskMode::ShapCompat] {
            if mode == MaskMode::ShapCompat && !spec.is_inpaint() {
                continue; // identical to the default mode
            }
            let prepared = Masker::new(spec, mode).prepare(&image, shape)?;
            let out = prepared.masked(&keep)?;
            let changed_kept = (0..out.len())
                .filter(|&j| keep[j] && out[j] != image[j])
                .count();
            println!(
                "{spec} ({mode}): {changed_kept} kept pixels changed\n{}\n",
                ascii(&out, 28)
            );
        }
    }
    Ok(())
}
