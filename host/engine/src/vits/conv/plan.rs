//! How the direct convolutions cut their work: register tiles (output channels ×
//! samples one kernel call keeps in registers), the blocks of output channels a layer's
//! weights are packed into, and the size of the time chunks the workers take.
//!
//! [`TILES`] and [`TR_TILES`] are the shapes the AVX2 kernels (`avx2.rs`) are compiled
//! for; the portable kernel (`scalar.rs`) takes any.

/// Floats of activated input one work chunk may stage (`in · (width + halo)`): 128 KiB,
/// well inside L2, so every output-channel block re-reads it from cache.
pub(super) const WINDOW_FLOATS: usize = 32 * 1024;
/// At least this many tiles per chunk, whatever the channel count, so the halo and the
/// per-chunk overhead stay small.
pub(super) const MIN_TILES_PER_CHUNK: usize = 2;

/// Register tile of the forward convolution: `co_block` output channels × `8 · nv`
/// samples, `co_block · nv` ≤ 12 of the 16 AVX2 registers holding accumulators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tile {
    pub(crate) co_block: usize,
    pub(crate) nv: usize,
}

/// Tiles with a compiled AVX2 kernel. The default plan uses 6 × 16 and 4 × 16: the old
/// 4 × 24 tile needs all 16 registers (12 accumulators, 3 inputs, 1 weight) and LLVM
/// compiles it with register-rotating moves and spills in the inner loop, which made it
/// about 2× slower per multiply-add than 6 × 16 (15 registers, a clean loop).
pub(crate) const TILES: [Tile; 8] = [
    Tile { co_block: 6, nv: 2 },
    Tile { co_block: 4, nv: 2 },
    Tile { co_block: 4, nv: 3 },
    Tile { co_block: 5, nv: 2 },
    Tile { co_block: 3, nv: 4 },
    Tile { co_block: 2, nv: 6 },
    Tile {
        co_block: 1,
        nv: 12,
    },
    Tile { co_block: 1, nv: 4 },
];

/// The tile for a last block of `cb` (< the main block size) output channels.
fn tail_tile(cb: usize) -> Tile {
    let nv = match cb {
        1 => 12,
        2 => 6,
        3 => 4,
        _ => 2,
    };
    Tile { co_block: cb, nv }
}

/// Every tile's time width divides this, so windows rounded up to it cover whole tiles.
pub(super) const TB_LCM: usize = 96;

/// A run of output channels computed together by one kernel.
#[derive(Debug, Clone, Copy)]
pub(super) struct Block {
    pub(super) co0: usize,
    pub(super) tile: Tile,
    /// Offset of its `[in, k, co_block]` weights in `packed`.
    pub(super) offset: usize,
}

/// Splits `out` channels into register-tile blocks. `None`: blocks of 6 and 4
/// (6 × 16 tiles use 12 accumulators with 3 spare registers; a 4 × 16 block instead of a
/// partly empty 6-block when `out` is not a multiple of 6), the rest in one tail block.
/// `Some(tile)`: blocks of that tile, the rest in one tail block.
pub(super) fn plan(out: usize, tile: Option<Tile>) -> Vec<Tile> {
    let mut tiles = Vec::new();
    match tile {
        Some(t) => {
            tiles.extend(std::iter::repeat_n(t, out / t.co_block));
            if !out.is_multiple_of(t.co_block) {
                tiles.push(tail_tile(out % t.co_block));
            }
        }
        None => {
            let six = Tile { co_block: 6, nv: 2 };
            let four = Tile { co_block: 4, nv: 2 };
            // Largest a with out − 6a a multiple of 4 (or the remainder < 4).
            let mut a = out / 6;
            while a > 0 && !(out - 6 * a).is_multiple_of(4) {
                a -= 1;
            }
            if !(out - 6 * a).is_multiple_of(4) {
                a = out / 6;
            }
            tiles.extend(std::iter::repeat_n(six, a));
            let rest = out - 6 * a;
            tiles.extend(std::iter::repeat_n(four, rest / 4));
            if !rest.is_multiple_of(4) {
                tiles.push(tail_tile(rest % 4));
            }
        }
    }
    tiles
}

/// Into how many groups to split the output-channel blocks of each time chunk so that
/// `threads` workers get about 8 items each (dynamic scheduling then balances them).
pub(super) fn channel_groups(chunks: usize, blocks: usize, threads: usize) -> usize {
    if threads <= 1 {
        1
    } else {
        (8 * threads).div_ceil(chunks).clamp(1, blocks.max(1))
    }
}

/// Tiles with a compiled transposed kernel.
pub(crate) const TR_TILES: [Tile; 4] = [
    Tile { co_block: 4, nv: 3 },
    Tile { co_block: 2, nv: 6 },
    Tile { co_block: 6, nv: 2 },
    Tile { co_block: 4, nv: 2 },
];

/// Default transposed tile: 2 output channels × 6 vectors, the two weight vectors of a
/// (channel, tap) stay in registers while six input broadcasts stream past; it measured
/// best or tied on the three upsampling layers.
pub(super) const TR_TILE: Tile = Tile { co_block: 2, nv: 6 };
