//! `inpaint_u8` against cv2.inpaint (OpenCV 5.0) on 6000 pseudo-random cases per method: every
//! size from 2x2 to 39x39, smooth and noisy pixels, random / rectangular / blocky fill maps of
//! every density. The cases are rebuilt here from the xorshift64 stream that
//! `fixtures/gen_inpaint_stress.py` used; the fixture holds a 32-bit FNV-1a hash of each cv2
//! output.

use std::path::Path;

use shap_mask::{InpaintMethod, inpaint_u8};

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// One case, drawn exactly as `make_case` in the generator draws it.
fn make_case(rng: &mut XorShift) -> (usize, usize, Vec<u8>, Vec<bool>) {
    let h = 2 + rng.below(38);
    let w = 2 + rng.below(38);
    let smooth = rng.next().is_multiple_of(2);
    let src: Vec<u8> = (0..h * w)
        .map(|p| {
            if smooth {
                (((p / w) * 7 + (p % w) * 3 + rng.below(20)) & 255) as u8
            } else {
                rng.below(256) as u8
            }
        })
        .collect();
    let kind = rng.next() % 3;
    let dens = rng.below(100);
    let fill: Vec<bool> = match kind {
        0 => (0..h * w).map(|_| rng.below(100) < dens).collect(),
        1 => {
            let (r0, r1, c0, c1) = (rng.below(h), rng.below(h), rng.below(w), rng.below(w));
            (0..h * w)
                .map(|p| {
                    let (r, c) = (p / w, p % w);
                    (r0.min(r1)..=r0.max(r1)).contains(&r) && (c0.min(c1)..=c0.max(c1)).contains(&c)
                })
                .collect()
        }
        _ => {
            let b = 1 + rng.below(7);
            let bits = rng.next();
            (0..h * w)
                .map(|p| (bits >> (((p / w / b) * 7 + (p % w / b)) % 64)) & 1 == 1)
                .collect()
        }
    };
    (h, w, src, fill)
}

fn fnv32(values: &[u8]) -> u32 {
    let mut h = 0xCBF2_9CE4_8422_2325u64;
    for &v in values {
        h = (h ^ u64::from(v)).wrapping_mul(0x0100_0000_01B3);
    }
    (h & 0xFFFF_FFFF) as u32
}

#[test]
fn inpaint_u8_matches_cv2_on_6000_random_cases() -> Result<(), Box<dyn std::error::Error>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/inpaint_stress.txt");
    let text = std::fs::read_to_string(path)?;
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut checked = 0;
    let mut failures = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let mut parts = line.split_whitespace();
        let case: usize = parts.next().ok_or("no case")?.parse()?;
        assert_eq!(case, checked, "fixture cases must be consecutive");
        let (h, w, src, fill) = make_case(&mut rng);
        for method in [InpaintMethod::Telea, InpaintMethod::Ns] {
            let want = u32::from_str_radix(parts.next().ok_or("no hash")?, 16)?;
            let got = fnv32(&inpaint_u8(&src, &fill, h, w, method)?);
            if got != want {
                failures.push(format!("case {case} ({h}x{w}) {method:?}"));
            }
        }
        checked += 1;
    }
    assert_eq!(checked, 6000);
    assert!(failures.is_empty(), "differ from cv2: {failures:?}");
    Ok(())
}
