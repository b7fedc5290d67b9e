//! Every kind of bad input, built on the fly, gives a typed error naming the file and problem.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use shap_data::{DataError, DataSource, FashionMnist};

const TRAIN_IMAGES: &str = "train-images-idx3-ubyte.gz";
const TRAIN_LABELS: &str = "train-labels-idx1-ubyte.gz";
const TEST_LABELS: &str = "t10k-labels-idx1-ubyte.gz";

fn load_err(dir: &tempfile::TempDir) -> DataError {
    match FashionMnist::load_dir(dir.path()) {
        Ok(_) => panic!("loading {} should fail", dir.path().display()),
        Err(e) => e,
    }
}

/// The message names the file.
fn assert_names(e: &DataError, name: &str) {
    let msg = e.to_string();
    assert!(msg.contains(name), "message {msg:?} does not name {name}");
}

#[test]
fn valid_gzip_and_plain_dirs_load_the_same_data() {
    let gz_dir = valid_dir();
    let plain_dir = tempfile::tempdir().unwrap();
    write_all(plain_dir.path(), &dataset_files(20, 10, false));
    let a = FashionMnist::load_dir(gz_dir.path()).unwrap();
    let b = FashionMnist::load_dir(plain_dir.path()).unwrap();
    assert_eq!(a.train, b.train);
    assert_eq!(a.test, b.test);
    assert_eq!((a.train.len(), a.test.len()), (20, 10));
    assert_eq!((a.train.rows(), a.train.cols()), (28, 28));
    assert_eq!(a.train.images(), &pixels(20)[..]);
    assert_eq!(a.test.labels(), &labels(10)[..]);
    assert_eq!(a.source, DataSource::Directory(gz_dir.path().to_path_buf()));
    assert_eq!(
        a.source.to_string(),
        format!("directory {}", gz_dir.path().display())
    );
}

#[test]
fn alternative_file_names_are_accepted() {
    let d = tempfile::tempdir().unwrap();
    let files: Vec<(String, Vec<u8>)> = dataset_files(5, 3, false)
        .into_iter()
        .map(|(n, b)| (n.replace("-idx", ".idx"), b))
        .collect();
    assert!(files[0].0.starts_with("train-images.idx3"));
    write_all(d.path(), &files);
    let data = FashionMnist::load_dir(d.path()).unwrap();
    assert_eq!((data.train.len(), data.test.len()), (5, 3));
}

#[test]
fn truncated_gzip() {
    let full = gz(&idx_images(0x803, 20, 28, 28, &pixels(20)));
    let d = dir_with(TRAIN_IMAGES, full[..full.len() / 2].to_vec());
    let e = load_err(&d);
    assert!(matches!(e, DataError::Gzip { .. }), "{e:?}");
    assert_names(&e, TRAIN_IMAGES);
    assert!(e.to_string().contains("gzip"));
}

#[test]
fn gzip_cut_inside_its_header() {
    let full = gz(&idx_labels(0x801, 20, &labels(20)));
    let d = dir_with(TRAIN_LABELS, full[..5].to_vec());
    let e = load_err(&d);
    assert!(
        matches!(e, DataError::Gzip { .. } | DataError::BadHeader { .. }),
        "{e:?}"
    );
    assert_names(&e, TRAIN_LABELS);
}

#[test]
fn corrupt_gzip_stream() {
    let mut bytes = gz(&idx_images(0x803, 20, 28, 28, &pixels(20)));
    // Scribble over the middle of the deflate stream.
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid - 8..mid + 8] {
        *b ^= 0xA5;
    }
    let d = dir_with(TRAIN_IMAGES, bytes);
    let e = load_err(&d);
    // A scribbled stream either fails its checks or inflates past the header's promise, where
    // decompression stops rather than inflate on.
    assert!(
        matches!(
            e,
            DataError::Gzip { .. } | DataError::LongerThanHeader { .. }
        ),
        "{e:?}"
    );
    assert_names(&e, TRAIN_IMAGES);
}

#[test]
fn gzip_checksum_mismatch() {
    let mut bytes = gz(&idx_labels(0x801, 20, &labels(20)));
    // The CRC32 sits in the 8-byte trailer.
    let n = bytes.len();
    bytes[n - 8] ^= 0xFF;
    let d = dir_with(TRAIN_LABELS, bytes);
    let e = load_err(&d);
    assert!(matches!(e, DataError::Gzip { .. }), "{e:?}");
    assert_names(&e, TRAIN_LABELS);
}

#[test]
fn wrong_magic_in_image_file() {
    // A label-file magic where an image file is expected.
    let d = dir_with(
        TRAIN_IMAGES,
        gz(&idx_images(0x801, 20, 28, 28, &pixels(20))),
    );
    let e = load_err(&d);
    match &e {
        DataError::BadMagic {
            found, expected, ..
        } => assert_eq!((*found, *expected), (0x801, 0x803)),
        other => panic!("expected BadMagic, got {other:?}"),
    }
    assert_names(&e, TRAIN_IMAGES);
    assert!(e.to_string().contains("0x00000801"), "{e}");
}

#[test]
fn wrong_magic_in_plain_label_file() {
    let d = valid_dir();
    std::fs::remove_file(d.path().join(TEST_LABELS)).unwrap();
    std::fs::write(
        d.path().join("t10k-labels-idx1-ubyte"),
        b"PK\x03\x04 not an idx file at all",
    )
    .unwrap();
    let e = load_err(&d);
    assert!(
        matches!(e, DataError::BadMagic { kind: "label", .. }),
        "{e:?}"
    );
    assert_names(&e, "t10k-labels-idx1-ubyte");
}

#[test]
fn header_dimensions_longer_than_data() {
    // Header says 20 images, data holds 19 and a half.
    let px = pixels(20);
    let d = dir_with(
        TRAIN_IMAGES,
        gz(&idx_images(0x803, 20, 28, 28, &px[..px.len() - 392])),
    );
    let e = load_err(&d);
    match &e {
        DataError::LengthMismatch {
            expected, actual, ..
        } => {
            assert_eq!((*expected, *actual), (20 * 784, 20 * 784 - 392));
        }
        other => panic!("expected LengthMismatch, got {other:?}"),
    }
    assert_names(&e, TRAIN_IMAGES);
}

#[test]
fn header_dimensions_shorter_than_data_plain() {
    // Plain file whose header says 28x27 while the data is 28x28.
    let d = valid_dir();
    std::fs::remove_file(d.path().join(TRAIN_IMAGES)).unwrap();
    let name = "train-images-idx3-ubyte";
    std::fs::write(
        d.path().join(name),
        idx_images(0x803, 20, 28, 27, &pixels(20)),
    )
    .unwrap();
    let e = load_err(&d);
    match &e {
        DataError::LengthMismatch {
            expected, actual, ..
        } => {
            assert_eq!((*expected, *actual), (20 * 28 * 27, 20 * 784));
        }
        other => panic!("expected LengthMismatch, got {other:?}"),
    }
    assert_names(&e, name);
}

#[test]
fn trailing_bytes_after_labels_in_gzip() {
    let mut l = labels(20);
    l.push(3);
    let d = dir_with(TRAIN_LABELS, gz(&idx_labels(0x801, 20, &l)));
    let e = load_err(&d);
    assert!(matches!(e, DataError::LongerThanHeader { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("promises 20 data bytes (20 labels) but the gzip data holds more"),
        "{e}"
    );
}

#[test]
fn image_and_label_counts_disagree() {
    let d = dir_with(TRAIN_LABELS, gz(&idx_labels(0x801, 19, &labels(19))));
    let e = load_err(&d);
    match &e {
        DataError::CountMismatch {
            n_images, n_labels, ..
        } => assert_eq!((*n_images, *n_labels), (20, 19)),
        other => panic!("expected CountMismatch, got {other:?}"),
    }
    assert_names(&e, TRAIN_IMAGES);
    assert_names(&e, TRAIN_LABELS);
}

#[test]
fn label_above_nine() {
    let mut l = labels(10);
    l[7] = 10;
    let d = dir_with(TEST_LABELS, gz(&idx_labels(0x801, 10, &l)));
    let e = load_err(&d);
    match &e {
        DataError::BadLabel { index, label, .. } => assert_eq!((*index, *label), (7, 10)),
        other => panic!("expected BadLabel, got {other:?}"),
    }
    assert_names(&e, TEST_LABELS);
}

#[test]
fn header_claiming_billions_of_images_fails_fast() {
    for count in [u32::MAX, 2_000_000_000] {
        // gzip: the claimed size cannot be checked before decompressing.
        let d = dir_with(
            TRAIN_IMAGES,
            gz(&idx_images(0x803, count, 28, 28, &pixels(2))),
        );
        let e = load_err(&d);
        match &e {
            DataError::LengthMismatch {
                expected, actual, ..
            } => {
                assert_eq!(*expected, u64::from(count) * 784);
                assert_eq!(*actual, 2 * 784);
            }
            other => panic!("expected LengthMismatch, got {other:?}"),
        }
        // Plain: the file length says it all.
        let d = valid_dir();
        std::fs::remove_file(d.path().join(TRAIN_LABELS)).unwrap();
        std::fs::write(
            d.path().join("train-labels-idx1-ubyte"),
            idx_labels(0x801, count, &labels(3)),
        )
        .unwrap();
        let e = load_err(&d);
        assert!(matches!(e, DataError::LengthMismatch { .. }), "{e:?}");
    }
}

#[test]
fn absurd_or_zero_image_sides() {
    for (rows, cols) in [(0, 28), (28, 0), (1_000_000, 1_000_000)] {
        let d = dir_with(
            TRAIN_IMAGES,
            gz(&idx_images(0x803, 20, rows, cols, &pixels(20))),
        );
        let e = load_err(&d);
        assert!(
            matches!(e, DataError::BadHeader { .. }),
            "{rows}x{cols}: {e:?}"
        );
        assert_names(&e, TRAIN_IMAGES);
    }
}

#[test]
fn wrong_image_size_for_fashion_mnist() {
    let px = vec![0u8; 20 * 20 * 20];
    let d = dir_with(TRAIN_IMAGES, gz(&idx_images(0x803, 20, 20, 20, &px)));
    let e = load_err(&d);
    assert!(
        matches!(
            e,
            DataError::WrongImageSize {
                rows: 20,
                cols: 20,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn empty_and_short_files() {
    for bytes in [Vec::new(), vec![0, 0, 8]] {
        let d = valid_dir();
        std::fs::remove_file(d.path().join(TRAIN_IMAGES)).unwrap();
        std::fs::write(d.path().join("train-images-idx3-ubyte"), &bytes).unwrap();
        let e = load_err(&d);
        assert!(matches!(e, DataError::BadHeader { .. }), "{e:?}");
        assert!(
            e.to_string()
                .contains(&format!("ends after {} bytes", bytes.len())),
            "{e}"
        );
    }
}

#[test]
fn missing_file() {
    let d = valid_dir();
    std::fs::remove_file(d.path().join(TEST_LABELS)).unwrap();
    let e = load_err(&d);
    match &e {
        DataError::MissingFile { tried, .. } => {
            assert!(
                tried.contains(&"t10k-labels-idx1-ubyte.gz".to_string()),
                "{tried:?}"
            );
            assert!(
                tried.contains(&"t10k-labels-idx1-ubyte".to_string()),
                "{tried:?}"
            );
        }
        other => panic!("expected MissingFile, got {other:?}"),
    }
    assert_names(&e, &d.path().display().to_string());
}

#[test]
fn empty_directory_reports_the_first_missing_file() {
    let d = tempfile::tempdir().unwrap();
    let e = load_err(&d);
    assert!(matches!(e, DataError::MissingFile { .. }), "{e:?}");
    assert!(e.to_string().contains("train-images-idx3-ubyte"), "{e}");
}

#[test]
fn missing_directory() {
    let d = tempfile::tempdir().unwrap();
    let gone = d.path().join("no-such-dir");
    let e = FashionMnist::load_dir(&gone).unwrap_err();
    assert!(matches!(e, DataError::DirNotFound { .. }), "{e:?}");
    assert_names(&e, "no-such-dir");
}

#[test]
fn data_file_that_is_a_directory() {
    let d = valid_dir();
    std::fs::remove_file(d.path().join(TRAIN_IMAGES)).unwrap();
    std::fs::create_dir(d.path().join(TRAIN_IMAGES)).unwrap();
    let e = load_err(&d);
    assert!(matches!(e, DataError::Io { .. }), "{e:?}");
    assert_names(&e, TRAIN_IMAGES);
}

#[test]
fn unreadable_directory() {
    // A "directory" that is a regular file.
    let d = valid_dir();
    let file = d.path().join(TRAIN_IMAGES);
    let e = FashionMnist::load_dir(&file).unwrap_err();
    assert!(matches!(e, DataError::NotADirectory { .. }), "{e:?}");
    assert_names(&e, TRAIN_IMAGES);

    // A directory without permissions. Root ignores permission bits, so this half can only be
    // checked when the directory really became unreadable.
    use std::os::unix::fs::PermissionsExt;
    let locked = d.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    write_all(&locked, &dataset_files(2, 2, true));
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    let enforced = std::fs::read_dir(&locked).is_err();
    let result = FashionMnist::load_dir(&locked);
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    if enforced {
        let e = result.unwrap_err();
        assert!(matches!(e, DataError::UnreadableDir { .. }), "{e:?}");
        assert_names(&e, "locked");
    } else {
        println!(
            "running as root: permission bits are not enforced, checked the not-a-directory case only"
        );
        assert!(result.is_ok());
    }
}

#[test]
fn gzip_bomb_stops_inflating_at_the_header_promise() {
    // 2 images promised, 64 MiB of zeros behind them: a ~64 KB file.
    let mut file = idx_images(0x803, 2, 28, 28, &pixels(2));
    file.resize(file.len() + (64 << 20), 0);
    let d = dir_with(TRAIN_IMAGES, gz(&file));
    let e = load_err(&d);
    match &e {
        DataError::LongerThanHeader { expected, .. } => assert_eq!(*expected, 2 * 784),
        other => panic!("expected LongerThanHeader, got {other:?}"),
    }
    assert_names(&e, TRAIN_IMAGES);
}

/// `load_image` on `bytes` written to a temporary file named `name`.
fn load_bytes(name: &str, bytes: &[u8]) -> Result<shap_data::UserImage, DataError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    shap_data::load_image(&path, 32, 32, 3)
}

#[test]
fn truncated_jpeg_and_png_files_are_refused() {
    let assets = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets");
    let jpeg = std::fs::read(assets.join("rgb/hillside.jpg")).unwrap();
    let png = std::fs::read(assets.join("fashion-mnist/test_0_ankle-boot.png")).unwrap();
    for (name, bytes) in [("whole.jpg", &jpeg[..]), ("whole.png", &png[..])] {
        load_bytes(name, bytes).unwrap();
    }
    // A JPEG cut at 30% decodes "successfully" (the rest grey); a PNG cut before its end.
    for (name, cut) in [
        ("cut.jpg", &jpeg[..jpeg.len() * 3 / 10]),
        ("cut.jpg", &jpeg[..jpeg.len() - 2]),
        ("cut.png", &png[..png.len() - 12]),
    ] {
        match load_bytes(name, cut) {
            Err(DataError::ImageTruncated { .. }) | Err(DataError::Image { .. }) => {}
            other => panic!("{name} of {} bytes: {other:?}", cut.len()),
        }
    }
    // The JPEG cut at 30%: the decoder accepts it, so the refusal is ours and says so.
    let e = load_bytes("cut.jpg", &jpeg[..jpeg.len() * 3 / 10]).unwrap_err();
    assert!(
        matches!(e, DataError::ImageTruncated { format: "JPEG", .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("ends early"), "{e}");
}
