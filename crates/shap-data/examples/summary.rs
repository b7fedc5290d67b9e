//! Finds Fashion-MNIST, prints where it came from, the counts and the class histogram, and
//! draws the first test image as text.
//!
//! `cargo run --release -p shap-data --example summary [-- DIR]`

use shap_data::{CLASS_NAMES, FashionMnist, shuffled_batches};

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Display, not Debug: the not-found error lists the places tried and the fixes.
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), shap_data::DataError> {
    let dir = std::env::args_os().nth(1).map(std::path::PathBuf::from);
    let data = FashionMnist::load(dir.as_deref())?;
    println!("source: {}", data.source);
    println!(
        "train: {} images, test: {} images",
        data.train.len(),
        data.test.len()
    );
    let (train, test) = (data.train.class_histogram(), data.test.class_histogram());
    for (i, name) in CLASS_NAMES.iter().enumerate() {
        println!("{i} {name:<12} train {:>5}  test {:>5}", train[i], test[i]);
    }

    if let (Some(img), Some(label)) = (data.test.image(0), data.test.label(0)) {
        println!("\ntest image 0: {}", CLASS_NAMES[usize::from(label)]);
        for row in img.chunks(data.test.cols()) {
            let line: String = row
                .iter()
                .map(|&p| [' ', '.', ':', 'o', '#'][usize::from(p) * 5 / 256])
                .collect();
            println!("{line}");
        }
    }

    let batches = shuffled_batches(data.train.len(), 256, 42)?;
    let x = data.train.images_f32(&batches[0])?;
    println!(
        "\n{} batches of 256 (seed 42); the first holds {} floats, mean {:.4}",
        batches.len(),
        x.len(),
        x.iter().sum::<f32>() / x.len() as f32
    );
    Ok(())
}
