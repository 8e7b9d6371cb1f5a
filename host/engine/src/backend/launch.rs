//! Launch geometry shared by the CUDA backend and the CPU emulation of its kernels (so the
//! emulation tests run the kernels exactly as the GPU does).

/// Threads per block for Keel's elementwise kernels.
pub const BLOCK: u32 = 256;
/// Most blocks launched; kernels use grid-stride loops, so larger sizes loop.
pub const MAX_GRID: u32 = 4096;

/// `(grid, block)` for `n` work items: enough blocks to give every item a thread, capped at
/// [`MAX_GRID`] (at least one block, so an empty launch is still valid).
pub fn launch_dims(n: usize) -> (u32, u32) {
    let blocks = n.div_ceil(BLOCK as usize).clamp(1, MAX_GRID as usize) as u32;
    (blocks, BLOCK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covers_every_item_or_loops() {
        assert_eq!(launch_dims(0), (1, BLOCK));
        assert_eq!(launch_dims(1), (1, BLOCK));
        assert_eq!(launch_dims(257), (2, BLOCK));
        assert_eq!(launch_dims(10_000_000), (MAX_GRID, BLOCK));
    }
}
