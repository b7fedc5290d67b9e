//! Explain your own Candle model: a small candle-nn CNN on 3-channel images, built with a
//! `VarBuilder`, wrapped by `shap_model::CandleClassifier`, explained with the Partition
//! explainer and drawn like `shap.image_plot`.
//!
//! `cargo run --release --example explain_candle_module [OUT.png]`
//!
//! The network here is untrained (its weights come from the `VarMap`'s initialiser), so the
//! explanation shows what an untrained network responds to; load trained weights with
//! `VarBuilder::from_mmaped_safetensors` to explain a real one.

use anyhow::Result;
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Conv2dConfig, VarBuilder, VarMap};
use shap_explain::{Explainer, ImageShape, InputLayout, Normalize};
use shap_model::CandleClassifier;

/// conv 3->8 + ReLU, 2x2 max-pool, conv 8->16 + ReLU, global average pool, linear 16->4.
fn network(vb: VarBuilder) -> Result<impl Module + Sync> {
    let pad = Conv2dConfig {
        padding: 1,
        ..Default::default()
    };
    let c1 = candle_nn::conv2d(3, 8, 3, pad, vb.pp("c1"))?;
    let c2 = candle_nn::conv2d(8, 16, 3, pad, vb.pp("c2"))?;
    let fc = candle_nn::linear(16, 4, vb.pp("fc"))?;
    Ok(move |x: &Tensor| {
        let h = c1.forward(x)?.relu()?.max_pool2d(2)?;
        let h = c2.forward(&h)?.relu()?.mean((2, 3))?;
        fc.forward(&(h * 4.0)?)
    })
}

/// Two pictures as a Candle batch in the network's layout, (2, 3, 32, 32), pixels in [0, 1]:
/// red discs of radius 6 and 10 on a blue-to-green gradient.
fn pictures() -> Result<Tensor> {
    let mut px = Vec::with_capacity(2 * 32 * 32 * 3);
    for r in [6.0f32, 10.0] {
        for y in 0..32 {
            for x in 0..32 {
                let (dx, dy) = (x as f32 - 16.0, y as f32 - 16.0);
                if dx * dx + dy * dy < r * r {
                    px.extend([0.9, 0.1, 0.1]);
                } else {
                    px.extend([0.1, y as f32 / 32.0, 1.0 - x as f32 / 32.0]);
                }
            }
        }
    }
    Ok(Tensor::from_vec(px, (2, 32, 32, 3), &Device::Cpu)?.permute((0, 3, 1, 2))?)
}

fn main() -> Result<()> {
    let out = std::env::args().nth(1);
    let vars = VarMap::new();
    let net = network(VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu))?;
    let model = CandleClassifier::builder(net, ImageShape::new(32, 32, 3))
        .layout(InputLayout::Nchw)
        .normalize(Normalize::imagenet())?
        .softmax(true)
        .build()?;
    let explainer = Explainer::partition("blur(8,8)")
        .top_k(2)
        .output_names(["sky", "apple", "grass", "sea"])
        .build()?;
    let e = model.explain(&explainer, &pictures()?)?;
    println!("explained {:?}", e.output_names);
    shap_plot::save_explanation(
        &e,
        out.as_deref().unwrap_or("target/explain_candle_module.png"),
    )?;
    Ok(())
}
