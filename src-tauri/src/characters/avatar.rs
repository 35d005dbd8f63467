//! Avatars: any picture a user brings (PNG, JPEG, WebP, GIF's first frame), made square and
//! stored as a 512 px PNG plus a 128 px thumbnail for the gallery.
//!
//! Contract: `prepare` reads the image's header before decoding anything and refuses files and
//! pictures over the limits below (a decompression bomb claims 100,000 × 100,000 pixels in a few
//! bytes), with an `AvatarError` that says which limit. No file IO: the caller writes the bytes.

use std::io::Cursor;

use image::{imageops::FilterType, DynamicImage, ImageFormat, ImageReader};

/// Largest picture file accepted.
pub const MAX_BYTES: usize = 20 << 20;
/// Largest side, and largest pixel count (8,000 × 5,000), accepted before decoding.
pub const MAX_SIDE: u32 = 16_384;
pub const MAX_PIXELS: u64 = 40_000_000;
/// Stored sizes.
pub const FULL: u32 = 512;
pub const THUMB: u32 = 128;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AvatarError {
    #[error("the picture is {size} bytes, over the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    #[error("the picture is {width} × {height} pixels, over the limit ({MAX_PIXELS} pixels, {MAX_SIDE} a side)")]
    TooManyPixels { width: u32, height: u32 },
    #[error("not a picture Troupe reads (PNG, JPEG, WebP or GIF)")]
    UnknownFormat,
    #[error("the picture is damaged: {0}")]
    Damaged(String),
}

/// The square the user picked: its side as a fraction of the picture's shorter side (1 is the
/// largest square, 0.25 zooms in four times), and where it sits in the room left on each axis:
/// 0 is the left (or top) edge, 0.5 the centre, 1 the right (or bottom) edge. `None` keeps the
/// largest square at the centre.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Crop {
    pub x: f32,
    pub y: f32,
    pub scale: f32,
}

/// The stored avatar: 512 px and 128 px square PNGs.
pub struct Avatar {
    pub full: Vec<u8>,
    pub thumb: Vec<u8>,
}

pub fn prepare(bytes: &[u8], crop: Option<Crop>) -> Result<Avatar, AvatarError> {
    let img = decode(bytes)?;
    let (w, h) = (img.width(), img.height());
    let crop = crop.unwrap_or(Crop {
        x: 0.5,
        y: 0.5,
        scale: 1.0,
    });
    let scale = if crop.scale.is_finite() {
        crop.scale.clamp(0.05, 1.0)
    } else {
        1.0
    };
    let side = ((w.min(h) as f32 * scale).round() as u32).clamp(1, w.min(h));
    let left = ((w - side) as f32 * crop.x.clamp(0.0, 1.0)).round() as u32;
    let top = ((h - side) as f32 * crop.y.clamp(0.0, 1.0)).round() as u32;
    let square = img.crop_imm(left, top, side, side);
    let encode = |size: u32| -> Result<Vec<u8>, AvatarError> {
        let filter = if side > size {
            FilterType::Lanczos3
        } else {
            FilterType::CatmullRom
        };
        let mut out = Vec::new();
        DynamicImage::ImageRgba8(square.resize_exact(size, size, filter).to_rgba8())
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .map_err(|e| AvatarError::Damaged(e.to_string()))?;
        Ok(out)
    };
    Ok(Avatar {
        full: encode(FULL)?,
        thumb: encode(THUMB)?,
    })
}

/// Decodes within the limits: header first, pixels only when they are within bounds.
pub fn decode(bytes: &[u8]) -> Result<DynamicImage, AvatarError> {
    if bytes.len() > MAX_BYTES {
        return Err(AvatarError::TooLarge {
            size: bytes.len(),
            limit: MAX_BYTES,
        });
    }
    let reader = || {
        ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| AvatarError::Damaged(e.to_string()))
    };
    let r = reader()?;
    if r.format().is_none() {
        return Err(AvatarError::UnknownFormat);
    }
    let (width, height) = r
        .into_dimensions()
        .map_err(|e| AvatarError::Damaged(e.to_string()))?;
    if width > MAX_SIDE || height > MAX_SIDE || width as u64 * height as u64 > MAX_PIXELS {
        return Err(AvatarError::TooManyPixels { width, height });
    }
    if width == 0 || height == 0 {
        return Err(AvatarError::Damaged("it has no pixels".into()));
    }
    let mut r = reader()?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_PIXELS * 4 * 2);
    r.limits(limits);
    r.decode().map_err(|e| AvatarError::Damaged(e.to_string()))
}

/// The thumbnail's file name beside an avatar file: `ada.png` → `ada.thumb.png`.
pub fn thumb_name(avatar: &str) -> String {
    match avatar.rsplit_once('.') {
        Some((stem, _)) => format!("{stem}.thumb.png"),
        None => format!("{avatar}.thumb.png"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let mut out = Vec::new();
        DynamicImage::new_rgb8(w, h)
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn any_shape_becomes_two_squares() {
        let a = prepare(&png(300, 120), None).unwrap();
        let full = image::load_from_memory(&a.full).unwrap();
        let thumb = image::load_from_memory(&a.thumb).unwrap();
        assert_eq!((full.width(), full.height()), (FULL, FULL));
        assert_eq!((thumb.width(), thumb.height()), (THUMB, THUMB));
    }

    #[test]
    fn a_header_claiming_a_huge_picture_is_refused_before_decoding() {
        // A real 1 × 1 PNG whose IHDR is rewritten to 100,000 × 100,000 (CRC fixed up).
        let mut p = png(1, 1);
        p[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        p[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        let crc = crc32fast::hash(&p[12..29]);
        p[29..33].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(
            prepare(&p, None).err(),
            Some(AvatarError::TooManyPixels {
                width: 100_000,
                height: 100_000
            })
        );
        assert_eq!(
            prepare(b"not an image", None).err(),
            Some(AvatarError::UnknownFormat)
        );
    }

    #[test]
    fn the_crop_picks_the_square_the_user_framed() {
        // 400 × 200: left half red, right half blue, with a green 50 px square at (340, 10).
        let mut img = image::RgbImage::from_fn(400, 200, |x, _| {
            if x < 200 {
                image::Rgb([255, 0, 0])
            } else {
                image::Rgb([0, 0, 255])
            }
        });
        for y in 10..60 {
            for x in 340..390 {
                img.put_pixel(x, y, image::Rgb([0, 255, 0]));
            }
        }
        let mut bytes = Vec::new();
        DynamicImage::ImageRgb8(img)
            .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
            .unwrap();
        let centre_of = |crop| {
            let a = prepare(&bytes, Some(crop)).unwrap();
            let full = image::load_from_memory(&a.full).unwrap().to_rgb8();
            full.get_pixel(FULL / 2, FULL / 2).0
        };
        assert_eq!(
            centre_of(Crop {
                x: 0.0,
                y: 0.5,
                scale: 1.0
            }),
            [255, 0, 0]
        );
        assert_eq!(
            centre_of(Crop {
                x: 1.0,
                y: 0.5,
                scale: 1.0
            }),
            [0, 0, 255]
        );
        // A 50 px square (scale 0.25 of 200) over the green block: x = 340 / (400 - 50),
        // y = 10 / (200 - 50).
        let green = Crop {
            x: 340.0 / 350.0,
            y: 10.0 / 150.0,
            scale: 0.25,
        };
        assert_eq!(centre_of(green), [0, 255, 0]);
        // Nonsense values stay inside the picture.
        let wild = Crop {
            x: f32::NAN,
            y: 7.0,
            scale: -3.0,
        };
        assert!(prepare(&bytes, Some(wild)).is_ok());
    }

    #[test]
    fn thumb_names() {
        assert_eq!(thumb_name("ada.png"), "ada.thumb.png");
    }
}
