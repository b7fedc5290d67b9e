//! Masker specs (`blur(28,28)`, `inpaint_telea`, `inpaint_ns`, `0.5`) and masking modes.

use std::fmt;
use std::str::FromStr;

use crate::MaskError;

/// Which masker to apply, spelled as in shap's `shap.maskers.Image(mask_value, ...)`.
///
/// Parse one with [`str::parse`]; [`fmt::Display`] writes it back in shap's spelling.
///
/// ```
/// use shap_mask::MaskerSpec;
/// let spec: MaskerSpec = "blur(28, 28)".parse()?;
/// assert_eq!(spec, MaskerSpec::Blur { kw: 28, kh: 28 });
/// assert_eq!(spec.to_string(), "blur(28,28)");
/// assert!("blur(28)".parse::<MaskerSpec>().is_err());
/// # Ok::<(), shap_mask::MaskError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaskerSpec {
    /// `blur(kw,kh)`: hidden features take the value of `cv2.blur(image, (kw, kh))`.
    /// `kw` is the kernel width (columns), `kh` its height (rows), as in OpenCV's `Size(w, h)`.
    Blur {
        /// Kernel width (columns), >= 1.
        kw: usize,
        /// Kernel height (rows), >= 1.
        kh: usize,
    },
    /// `inpaint_telea`: OpenCV's `INPAINT_TELEA` fast-marching inpainting, radius 3.
    InpaintTelea,
    /// `inpaint_ns`: OpenCV's `INPAINT_NS`, radius 3 (despite the name, the same single
    /// fast-marching pass with a different weighting, not a Navier-Stokes solver).
    InpaintNs,
    /// A number: hidden features take this constant value.
    Constant(f32),
}

impl MaskerSpec {
    /// Whether this is one of the two inpainting maskers.
    pub fn is_inpaint(&self) -> bool {
        matches!(self, Self::InpaintTelea | Self::InpaintNs)
    }
}

fn invalid(spec: &str, reason: impl Into<String>) -> MaskError {
    MaskError::InvalidSpec {
        spec: spec.to_owned(),
        reason: reason.into(),
    }
}

fn parse_kernel_side(spec: &str, part: &str, name: &str) -> Result<usize, MaskError> {
    let t = part.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(
            spec,
            format!("kernel {name} {t:?} is not a non-negative integer"),
        ));
    }
    let v: usize = t
        .parse()
        .map_err(|_| invalid(spec, format!("kernel {name} {t:?} is too large")))?;
    if v == 0 {
        return Err(invalid(spec, format!("kernel {name} must be >= 1, got 0")));
    }
    Ok(v)
}

impl FromStr for MaskerSpec {
    type Err = MaskError;

    /// Strict parsing: `blur(KW,KH)` (spaces around the numbers allowed), `inpaint_telea`,
    /// `inpaint_ns`, or a finite decimal number. Surrounding whitespace is ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t.is_empty() {
            return Err(invalid(s, "the spec is empty"));
        }
        match t {
            "inpaint_telea" => return Ok(Self::InpaintTelea),
            "inpaint_ns" => return Ok(Self::InpaintNs),
            _ => {}
        }
        if let Some(rest) = t.strip_prefix("blur") {
            let Some(inner) = rest.strip_prefix('(') else {
                return Err(invalid(s, "expected `(` right after `blur`"));
            };
            let Some(inner) = inner.strip_suffix(')') else {
                return Err(invalid(s, "missing the closing `)`"));
            };
            let parts: Vec<&str> = inner.split(',').collect();
            let [w, h] = parts.as_slice() else {
                return Err(invalid(
                    s,
                    format!(
                        "blur needs exactly two kernel sizes (width,height), got {}",
                        parts.len()
                    ),
                ));
            };
            let kw = parse_kernel_side(s, w, "width")?;
            let kh = parse_kernel_side(s, h, "height")?;
            return Ok(Self::Blur { kw, kh });
        }
        let looks_numeric = t
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'));
        if looks_numeric && let Ok(v) = t.parse::<f32>() {
            if v.is_finite() {
                return Ok(Self::Constant(v));
            }
            return Err(invalid(s, "the constant is out of f32 range"));
        }
        Err(invalid(s, "unknown masker"))
    }
}

impl fmt::Display for MaskerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Blur { kw, kh } => write!(f, "blur({kw},{kh})"),
            Self::InpaintTelea => f.write_str("inpaint_telea"),
            Self::InpaintNs => f.write_str("inpaint_ns"),
            Self::Constant(v) => write!(f, "{v}"),
        }
    }
}

/// How the maskers treat the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MaskMode {
    /// The recommended behaviour on float images (docs/maskers.md#our-default-maskmodedefault): inpainting
    /// works at 0..255 scale (`round(x*255)` when the image lies in \[0,1\], `round(x)` otherwise)
    /// and converts back, and only hidden features change; kept features stay exactly as given.
    #[default]
    Default,
    /// Reproduce shap 0.51 exactly: inpainting truncates the image to u8 and replaces every
    /// pixel with the u8 result (on \[0,1\] images this binarises the image, as in the tutorial).
    ShapCompat,
}

impl fmt::Display for MaskMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Default => "default",
            Self::ShapCompat => "shap-compat",
        })
    }
}
