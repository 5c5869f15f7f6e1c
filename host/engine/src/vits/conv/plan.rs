//! How the direct convolutions cut their work: register tiles (output channels ×
//! samples one kernel call keeps in registers), the blocks of output channels a layer's
//! weights are packed into, and the size of the time chunks the workers take — per
//! instruction set, since the register file decides the tiles.
//!
//! [`TILES`] / [`TR_TILES`] are the shapes the AVX2 kernels (`avx2.rs`) are compiled
//! for, [`TILES_512`] / [`TR_TILES_512`] those of the AVX-512 kernels (`avx512.rs`); the
//! portable kernel (`scalar.rs`) takes any, and is given the AVX2 layout.

use crate::vits::isa::Isa;

/// Floats of activated input one work chunk may stage (`in · (width + halo)`): 128 KiB,
/// well inside L2, so every output-channel block re-reads it from cache.
pub(super) const WINDOW_FLOATS: usize = 32 * 1024;
/// At least this many units ([`chunk_unit`]) per chunk, whatever the channel count, so
/// the halo and the per-chunk overhead stay small.
pub(super) const MIN_TILES_PER_CHUNK: usize = 2;

/// Register tile of the forward convolution: `co_block` output channels × `nv` vectors
/// of samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tile {
    pub(crate) co_block: usize,
    pub(crate) nv: usize,
}

const fn t(co_block: usize, nv: usize) -> Tile {
    Tile { co_block, nv }
}

/// Tiles with a compiled AVX2 kernel (8-sample vectors, `co_block · nv` ≤ 12 of the 16
/// registers holding accumulators). The default plan uses 6 × 16 and 4 × 16: the old
/// 4 × 24 tile needs all 16 registers (12 accumulators, 3 inputs, 1 weight) and LLVM
/// compiles it with register-rotating moves and spills in the inner loop, which made it
/// about 2× slower per multiply-add than 6 × 16 (15 registers, a clean loop).
pub(crate) const TILES: [Tile; 8] = [
    t(6, 2),
    t(4, 2),
    t(4, 3),
    t(5, 2),
    t(3, 4),
    t(2, 6),
    t(1, 12),
    t(1, 4),
];

/// Tiles with a compiled AVX-512 kernel (16-sample vectors, up to 24 accumulators of
/// the 32 registers, the inputs of one tap in registers beside them). The default plan
/// uses 8 × 48: eight channels divide every width of the Piper voices (32 … 768), and
/// three input vectors per eight broadcast weights keep the loads well below the
/// multiply-adds. A row's last, partial tile runs with only the vectors it needs
/// (`avx512.rs`). 16 × 16 is the alternative the benchmark compares (it measured the
/// same as 8 × 48, 8 × 32, 12 × 32 and 6 × 64 on the project's Zen 4 machine, all
/// within 5 %); the rest are the tails.
pub(crate) const TILES_512: [Tile; 9] = [
    t(8, 3),
    t(16, 1),
    t(7, 3),
    t(6, 3),
    t(5, 3),
    t(4, 6),
    t(3, 6),
    t(2, 6),
    t(1, 6),
];

/// The forward tiles compiled for `isa`.
pub(crate) fn tiles(isa: Isa) -> &'static [Tile] {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => &TILES_512,
        _ => &TILES,
    }
}

/// The tile for a last block of `cb` (< the main block size) output channels.
fn tail_tile(cb: usize, isa: Isa) -> Tile {
    let nv = match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => match cb {
            1..=4 => 6,
            _ => 3,
        },
        _ => match cb {
            1 => 12,
            2 => 6,
            3 => 4,
            _ => 2,
        },
    };
    t(cb, nv)
}

/// Samples per chunk are a multiple of this: whole main tiles (AVX2: 16-, 24- and
/// 48-sample tiles; AVX-512: 32- and 48-sample ones).
pub(super) fn chunk_unit(isa: Isa) -> usize {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => 96,
        _ => 48,
    }
}

/// A run of output channels computed together by one kernel.
#[derive(Debug, Clone, Copy)]
pub(super) struct Block {
    pub(super) co0: usize,
    pub(super) tile: Tile,
    /// Offset of its `[in, k, co_block]` weights in `packed`.
    pub(super) offset: usize,
}

/// Splits `out` channels into register-tile blocks for `isa`. `Some(tile)`: blocks of
/// that tile, the rest in one tail block. `None`, AVX-512: blocks of 8 × 48, the rest
/// in a tail block. `None`, AVX2 and portable: blocks of 6 and 4 (6 × 16 tiles use 12
/// accumulators with 3 spare registers; a 4 × 16 block instead of a partly empty
/// 6-block when `out` is not a multiple of 6), the rest in one tail block.
pub(super) fn plan(out: usize, tile: Option<Tile>, isa: Isa) -> Vec<Tile> {
    let mut tiles = Vec::new();
    let uniform = |tiles: &mut Vec<Tile>, tile: Tile| {
        tiles.extend(std::iter::repeat_n(tile, out / tile.co_block));
        let mut rest = out % tile.co_block;
        // Tails have kernels below 8 channels (AVX2 tiles are at most 6 wide).
        while rest >= 8 {
            tiles.push(t(8, 3));
            rest -= 8;
        }
        if rest > 0 {
            tiles.push(tail_tile(rest, isa));
        }
    };
    match (tile, isa) {
        (Some(t), _) => uniform(&mut tiles, t),
        #[cfg(target_arch = "x86_64")]
        (None, Isa::Avx512) => uniform(&mut tiles, t(8, 3)),
        (None, _) => {
            let six = t(6, 2);
            let four = t(4, 2);
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
                tiles.push(tail_tile(rest % 4, isa));
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

/// Tiles with a compiled AVX2 transposed kernel.
pub(crate) const TR_TILES: [Tile; 4] = [t(4, 3), t(2, 6), t(6, 2), t(4, 2)];

/// Tiles with a compiled AVX-512 transposed kernel.
pub(crate) const TR_TILES_512: [Tile; 3] = [t(4, 6), t(2, 6), t(8, 3)];

/// The transposed tiles compiled for `isa`.
pub(crate) fn tr_tiles(isa: Isa) -> &'static [Tile] {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => &TR_TILES_512,
        _ => &TR_TILES,
    }
}

/// Default transposed tile. AVX2: 2 output channels × 6 vectors, the two weight
/// vectors of a (channel, tap) stay in registers while six input broadcasts stream
/// past; it measured best or tied on the three upsampling layers. AVX-512: 4 × 6, the
/// same shape with twice the channels in twice the registers.
pub(super) fn tr_tile(isa: Isa) -> Tile {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => t(4, 6),
        _ => t(2, 6),
    }
}
