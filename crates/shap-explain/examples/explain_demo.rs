//! Explain two synthetic 28x28 images with a small dense softmax model, using the Partition
//! (blur masker, 500 evaluations, top-3) and Permutation (2 passes) explainers, then save the
//! Partition explanation as `.npz` + JSON.
//!
//! Run: `cargo run --release -p shap-explain --example explain_demo [OUT_DIR]`

use shap_explain::timing::time_model_only;
use shap_explain::{
    BatchModel, ExplainerConfig, FnModel, ImageShape, Method, ModelError, OutputSelection,
    PermutationBudget, PermutationSettings,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let shape = ImageShape::new(28, 28, 1);
    let m = shape.features();
    let k = 10;
    // A dense 784 -> 10 layer with softmax, weights from a fixed formula.
    let w: Vec<f32> = (0..m * k)
        .map(|i| ((i * 7919 % 1000) as f32 / 1000.0 - 0.5) * 0.1)
        .collect();
    let model = FnModel::new(
        k,
        move |x: &[f32], n: usize, s: ImageShape, out: &mut [f32]| {
            if x.len() != n * s.features() || out.len() != n * k {
                return Err(ModelError::Shape(format!("{n} images of {s}")));
            }
            for (img, o) in x.chunks_exact(m).zip(out.chunks_exact_mut(k)) {
                let mut z = [0.0f32; 10];
                for (j, &v) in img.iter().enumerate() {
                    for (c, zc) in z.iter_mut().enumerate() {
                        *zc += v * w[j * k + c];
                    }
                }
                let mx = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let e: Vec<f32> = z.iter().map(|v| (v - mx).exp()).collect();
                let sum: f32 = e.iter().sum();
                for (oc, ec) in o.iter_mut().zip(&e) {
                    *oc = ec / sum;
                }
            }
            Ok(())
        },
    );
    // Two synthetic images: a bright square and a bright ring.
    let mut images = vec![0.0f32; 2 * m];
    for r in 0..28 {
        for c in 0..28 {
            let (dr, dc) = (r as f32 - 13.5, c as f32 - 13.5);
            images[r * 28 + c] = if (8..20).contains(&r) && (8..20).contains(&c) {
                0.9
            } else {
                0.05
            };
            let d = (dr * dr + dc * dc).sqrt();
            images[m + r * 28 + c] = if (6.0..10.0).contains(&d) { 1.0 } else { 0.0 };
        }
    }
    let partition = ExplainerConfig {
        outputs: OutputSelection::TopK(3),
        ..ExplainerConfig::partition()
    }
    .check()?;
    let masker = partition.masker("blur(28,28)".parse()?);
    let e = partition.explain(&model, &images, shape, &masker)?;
    for i in 0..e.num_images {
        println!(
            "partition image {i}: classes {:?}, f(x) {:?}, evals {}, efficiency error {:.2e}",
            &e.output_indices[i * 3..i * 3 + 3],
            &e.fx[i * 3..i * 3 + 3],
            e.evals[i],
            e.efficiency_errors[i]
        );
    }
    let pure = time_model_only(
        &model,
        &images,
        shape,
        &e.evals,
        partition
            .as_partition()
            .map_or(10, |p| p.settings().batch_size),
    )?;
    println!(
        "partition: {:.2} ms total, {:.2} ms in the model, overhead {:.1}% of model time; model alone {:.2} ms",
        e.stats.wall_time.as_secs_f64() * 1e3,
        e.stats.model_time.as_secs_f64() * 1e3,
        100.0 * e.stats.overhead_ratio(),
        pure.as_secs_f64() * 1e3
    );

    let permutation = ExplainerConfig {
        outputs: OutputSelection::TopK(3),
        method: Method::Permutation(PermutationSettings {
            budget: PermutationBudget::Passes(2),
            std_errors: true,
        }),
        ..ExplainerConfig::permutation()
    }
    .check()?;
    let p = permutation.explain(&model, &images, shape, &masker)?;
    println!(
        "permutation: {} evals per image, {:.2} ms, max efficiency error {:.2e}",
        p.evals[0],
        p.stats.wall_time.as_secs_f64() * 1e3,
        p.max_efficiency_error()
    );
    let _ = model.num_outputs();

    let out_dir = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&out_dir)?;
    let npz = out_dir.join("explain_demo.npz");
    e.save_npz(&npz)?;
    e.save_json(out_dir.join("explain_demo.json"))?;
    println!("saved {}", npz.display());
    Ok(())
}
