//! PLACEHOLDER written by the lead so the workspace builds; the thumbnails engineer replaces this
//! whole file with the real implementation (same public API).

#[derive(Debug, Clone, Copy)]
pub struct ThumbnailLimits {
    pub max_pixels: u64,
    pub max_alloc_bytes: u64,
}

impl Default for ThumbnailLimits {
    fn default() -> Self {
        ThumbnailLimits {
            max_pixels: 100_000_000,
            max_alloc_bytes: 512 * 1024 * 1024,
        }
    }
}

pub struct Thumbnail {
    pub size: u32,
    pub width: u32,
    pub height: u32,
    pub jpeg: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum ThumbnailError {
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("corrupt: {0}")]
    Corrupt(String),
    #[error("too large: {width}x{height}")]
    TooLarge { width: u32, height: u32 },
}

pub fn make_thumbnails(
    _bytes: &[u8],
    _sizes: &[u32],
    _limits: &ThumbnailLimits,
) -> Result<Vec<Thumbnail>, ThumbnailError> {
    Err(ThumbnailError::Unsupported("placeholder".into()))
}
