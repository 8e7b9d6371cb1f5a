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

/// Threads per block of the row reductions (`{sum,max}_rows` in `cuda/reduce.cu`): whole warps.
pub const ROW_BLOCK: u32 = 256;
/// Shortest rows the block-per-row kernels take; shorter rows keep a thread per row
/// (`{sum,max}_axis`), which a block of `ROW_BLOCK` threads would mostly leave idle.
pub const ROW_MIN_DIM: usize = 1024;
/// Blocks a first pass over few long rows aims at: several for every multiprocessor of a large
/// GPU (an H100 has 132).
pub const ROW_TARGET_BLOCKS: usize = 1024;
/// Elements a segment keeps at least when a row is cut into several.
pub const ROW_MIN_CHUNK: usize = 4096;

/// How the GPU reduces the contiguous rows of `[rows, dim]` (an axis with nothing after it):
/// `None` — a thread per row (`{sum,max}_axis`); `Some(chunk)` — one block per segment of
/// `chunk` elements (`{sum,max}_rows`), rows of `dim / chunk > 1` segments then reduced again
/// by a second launch over `[rows, parts]` (with `chunk = parts`: one block per row). Rows are
/// cut when there are too few of them to give the GPU [`ROW_TARGET_BLOCKS`] blocks.
pub fn row_chunk(rows: usize, dim: usize) -> Option<usize> {
    if rows == 0 || dim < ROW_MIN_DIM {
        return None;
    }
    let parts = ROW_TARGET_BLOCKS
        .div_ceil(rows)
        .min(dim / ROW_MIN_CHUNK)
        .max(1);
    Some(dim.div_ceil(parts))
}

/// `(grid, block)` of a `{sum,max}_rows` launch over `segments` segments: a block each, capped
/// at [`MAX_GRID`] (the kernel loops over the rest).
pub fn row_dims(segments: usize) -> (u32, u32) {
    let blocks = segments.clamp(1, MAX_GRID as usize) as u32;
    (blocks, ROW_BLOCK)
}

/// Threads a column reduction (an axis with more axes after it) aims at: enough to fill a large
/// GPU several times over.
pub const COLUMN_TARGET_THREADS: usize = 1 << 17;
/// Elements each thread of a split column reduction sums at least.
pub const COLUMN_MIN_RUN: usize = 64;

/// Into how many parts the GPU cuts the reduced axis of `[outer, dim, inner]` (`inner > 1`,
/// a thread per output of `{sum,max}_axis`, neighbouring threads on neighbouring elements): a
/// divisor `p` of `dim`; with `p > 1` a first launch reduces `[outer·p, dim/p, inner]` and a
/// second `[outer, p, inner]`, so that `outer·p·inner` threads share the work when
/// `outer·inner` alone are too few for the GPU (`[8192, 8192]` over its first axis: 8192
/// threads, 16 parts). 1 when the outputs already fill the GPU, or the axis has no divisor
/// that leaves each thread [`COLUMN_MIN_RUN`] elements.
pub fn column_parts(outer: usize, dim: usize, inner: usize) -> usize {
    let threads = outer * inner;
    if threads == 0 || threads >= COLUMN_TARGET_THREADS {
        return 1;
    }
    let cap = COLUMN_TARGET_THREADS
        .div_ceil(threads)
        .min(dim / COLUMN_MIN_RUN);
    (2..=cap)
        .rev()
        .find(|&p| dim.is_multiple_of(p))
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_rows_take_blocks_and_few_rows_are_cut() {
        assert_eq!(row_chunk(1000, 1023), None);
        assert_eq!(row_chunk(0, 1 << 20), None);
        // Many rows: one segment each.
        assert_eq!(row_chunk(8192, 8192), Some(8192));
        // One row of 64 Mi: 1024 segments of 64 Ki.
        assert_eq!(row_chunk(1, 1 << 26), Some(1 << 16));
        // Too short to cut into segments of 4096.
        assert_eq!(row_chunk(1, 6000), Some(6000));
        assert_eq!(row_chunk(3, 10_000), Some(5000));
        assert_eq!(row_dims(10), (10, ROW_BLOCK));
        assert_eq!(column_parts(1, 8192, 8192), 16);
        assert_eq!(column_parts(4, 1 << 20, 1 << 16), 1);
        // 1009 is prime: no divisor to cut it by.
        assert_eq!(column_parts(1, 1009 * 64, 2), 1009);
        assert_eq!(column_parts(1, 1009, 2), 1);
        assert_eq!(column_parts(3, 100, 5), 1);
        assert_eq!(row_dims(1 << 20), (MAX_GRID, ROW_BLOCK));
    }

    #[test]
    fn covers_every_item_or_loops() {
        assert_eq!(launch_dims(0), (1, BLOCK));
        assert_eq!(launch_dims(1), (1, BLOCK));
        assert_eq!(launch_dims(257), (2, BLOCK));
        assert_eq!(launch_dims(10_000_000), (MAX_GRID, BLOCK));
    }
}
