//! The matrix product of shaders/matmul.wgsl: operands by strides, so that one kernel takes
//! every product of linear_cross_entropy (and the prepared product of matmul_prepared.rs).

use crate::error::{Result, XentError};
use crate::geometry::tiles::{Blocks, Design};
use crate::geometry::windows::{window, Cut, Piece, Strides};
use crate::gpu::kernels::{uniform, Entry, Family, KernelKey};
use crate::gpu::runtime::buffers::Bound;
use crate::gpu::runtime::buffers::{bind, uniform};
use crate::gpu::runtime::context::Context;
use crate::gpu::runtime::program::push;
use crate::gpu::runtime::program::Program;
use crate::options::Float;
use std::ops::Range;

uniform! {
    /// The uniform of shaders/matmul.wgsl: what each field means is documented there.
    pub(crate) struct MatmulParams in Matmul {
        m: u32,
        n: u32,
        k: u32,
        tiles_n: u32,
        a_off: u32,
        a_sm: u32,
        a_sk: u32,
        b_off: u32,
        b_sn: u32,
        b_sk: u32,
        c_off: u32,
        c_sm: u32,
        alpha: f32,
        accumulate: u32,
        has_bias: u32,
        a_layout: u32,
        b_layout: u32,
        bias_off: u32,
        n_major: u32,
        _pad2: u32,
    }
}

/// One operand of a product: element `(i, k)` is `buffer[offset + i · major + k · step]`.
#[derive(Clone, Debug)]
pub(crate) struct Operand {
    pub buffer: wgpu::Buffer,
    pub offset: usize,
    /// The stride between rows of A (columns of C: rows of B).
    pub major: usize,
    /// The stride along K.
    pub step: usize,
}

/// How the kernel reads an operand (`LAYOUT_*` in matmul.wgsl), by what its strides allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    /// One element at a time, by the strides.
    Scalar = 0,
    /// vec4s along K: K stride 1, offset and row stride multiples of 4.
    AlongK = 1,
    /// vec4s along the rows: row stride 1, offset and K stride multiples of 4.
    AlongRows = 2,
}

impl Operand {
    fn strides(&self) -> Strides {
        Strides {
            offset: self.offset,
            major: self.major,
            step: self.step,
        }
    }

    /// The window of its buffer that rows `rows` and k `ks` read, and the view of those rows
    /// and k within it.
    fn view(&self, rows: &Range<usize>, ks: &Range<usize>, align: usize) -> View {
        let reach = self.strides().reach(rows, ks);
        let w = window(&reach, align, self.buffer.size() as usize / 4);
        View {
            bound: Bound {
                buffer: self.buffer.clone(),
                offset: w.start as u64 * 4,
                size: w.len().max(1) as u64 * 4,
            },
            offset: self.offset + rows.start * self.major + ks.start * self.step - w.start,
            major: self.major,
            step: self.step,
        }
    }
}

/// One piece's operand: a window of a buffer, and where the rows lie in it.
struct View {
    bound: Bound,
    offset: usize,
    major: usize,
    step: usize,
}

impl View {
    /// How matmul_lanes.wgsl can read it, 8 floats a load, if at all: the vec4 layouts with
    /// the offset and the other stride multiples of 8, in a window of whole 32-byte units.
    fn lane_layout(&self) -> Option<Layout> {
        let aligned = |v: usize| v.is_multiple_of(8);
        if !self.bound.size.is_multiple_of(32) || !aligned(self.offset) {
            return None;
        }
        if self.step == 1 && aligned(self.major) {
            Some(Layout::AlongK)
        } else if self.major == 1 && aligned(self.step) {
            Some(Layout::AlongRows)
        } else {
            None
        }
    }

    /// The fastest layout matmul.wgsl can read it as: vec4s need the offset and the other
    /// stride multiples of 4, in a window of whole 16-byte units.
    fn layout(&self) -> Layout {
        let aligned = |v: usize| v.is_multiple_of(4);
        if !self.bound.size.is_multiple_of(16) || !aligned(self.offset) {
            Layout::Scalar
        } else if self.step == 1 && aligned(self.major) {
            Layout::AlongK
        } else if self.major == 1 && aligned(self.step) {
            Layout::AlongRows
        } else {
            Layout::Scalar
        }
    }
}

/// `C(m, n) = alpha · Σ_k A(m, k) B(n, k) [+ C] [+ bias(n)]` over `[m, n]` of `c`, whose rows
/// start at element `c_offset` and lie `c_major` apart.
pub(crate) struct Product<'a> {
    pub a: &'a Operand,
    pub b: &'a Operand,
    pub c: &'a wgpu::Buffer,
    pub c_offset: usize,
    pub c_major: usize,
    /// The bias `[N]`: a buffer and the element where bias(0) lies.
    pub bias: Option<(&'a wgpu::Buffer, usize)>,
    pub dims: [usize; 3],
    pub alpha: f32,
    pub accumulate: bool,
}

/// Whether an index fits the kernel's u32 arithmetic.
fn u32_of(v: usize, what: &str) -> Result<u32> {
    u32::try_from(v).map_err(|_| {
        XentError::Unsupported(format!(
            "matmul: {what} ({v}) does not fit the kernel's 32-bit indices"
        ))
    })
}

/// Appends the product `p` to `program` (nothing when M or N is 0), cut into pieces
/// whose operands each fit a window of one binding and whose K is within the loop-trip
/// limit (src/geometry/windows.rs), the later K pieces of each block accumulating. Each
/// piece runs on matmul_lanes.wgsl where the tuning chooses it and both operands allow
/// it, else on matmul.wgsl.
pub(crate) fn push_matmul(ctx: &Context, program: &mut Program, p: &Product) -> Result<()> {
    let [m, n, k] = p.dims;
    if m == 0 || n == 0 {
        return Ok(());
    }
    // The last element each operand (and C, and the bias) reaches must lie in its buffer.
    let c = Strides {
        offset: p.c_offset,
        major: p.c_major,
        step: 1,
    };
    let mut reaches = vec![
        ("A", p.a.strides().reach(&(0..m), &(0..k)), &p.a.buffer),
        ("B", p.b.strides().reach(&(0..n), &(0..k)), &p.b.buffer),
        ("C", c.reach(&(0..m), &(0..n)), p.c),
    ];
    if let Some((bias, at)) = p.bias {
        reaches.push(("the bias", at..at + n, bias));
    }
    for (what, reach, buffer) in reaches {
        if reach.end * 4 > buffer.size() as usize {
            return Err(XentError::InvalidShape(format!(
                "matmul: {what} reaches element {}, past its buffer",
                reach.end - 1
            )));
        }
    }
    let align = (ctx.limits().min_storage_buffer_offset_alignment as usize / 4).max(8);
    let cut = Cut {
        dims: p.dims,
        a: p.a.strides(),
        b: p.b.strides(),
        c_major: p.c_major,
        // Within the loop-trip limit of the kernel with the smaller k step, and a whole
        // number of the larger step, so that every piece keeps the lanes kernel's 8-float
        // alignment.
        max_k: (Design::Tiles.k_step() * ctx.tuning().max_loop_trips as usize)
            .max(Design::Lanes.k_step())
            / Design::Lanes.k_step()
            * Design::Lanes.k_step(),
        max_elems: ctx.max_binding_bytes() as usize / 4,
        align,
    };
    let pieces = cut.pieces().ok_or_else(|| {
        XentError::Unsupported(format!(
            "matmul {m}x{n}x{k}: one element's operands do not fit one binding ({} bytes)",
            ctx.max_binding_bytes()
        ))
    })?;
    for piece in pieces {
        push_piece(ctx, program, p, &piece, align)?;
    }
    Ok(())
}

/// One dispatch: the piece `q` of `p`, on the kernel its operands' windows allow.
fn push_piece(
    ctx: &Context,
    program: &mut Program,
    p: &Product,
    q: &Piece,
    align: usize,
) -> Result<()> {
    let (a, b) = (p.a.view(&q.m, &q.k, align), p.b.view(&q.n, &q.k, align));
    let c_strides = Strides {
        offset: p.c_offset,
        major: p.c_major,
        step: 1,
    };
    let c_window = window(&c_strides.reach(&q.m, &q.n), align, p.c.size() as usize / 4);
    let bias_at = p.bias.map_or(0, |(_, at)| at);
    let bias_reach = bias_at + q.n.start..bias_at + q.n.end;
    let bias_len = p.bias.map_or(0, |(b, _)| b.size() as usize / 4);
    let bias_window = window(&bias_reach, align, bias_len);
    let (design, (a_layout, b_layout)) = match (a.lane_layout(), b.lane_layout()) {
        (Some(la), Some(lb)) if ctx.tuning().lane_matmul => (Design::Lanes, (la, lb)),
        _ => (Design::Tiles, (a.layout(), b.layout())),
    };
    let (m, n, k) = (q.m.len(), q.n.len(), q.k.len());
    let blocks = Blocks::ordered(m, n, design);
    let has_bias = p.bias.is_some() && q.k.start == 0;
    let params = MatmulParams {
        m: u32_of(m, "M")?,
        n: u32_of(n, "N")?,
        k: u32_of(k, "K")?,
        tiles_n: u32_of(blocks.tiles_n(), "blocks")?,
        a_off: u32_of(a.offset, "A's offset")?,
        a_sm: u32_of(a.major, "A's stride")?,
        a_sk: u32_of(a.step, "A's stride")?,
        b_off: u32_of(b.offset, "B's offset")?,
        b_sn: u32_of(b.major, "B's stride")?,
        b_sk: u32_of(b.step, "B's stride")?,
        c_off: u32_of(
            p.c_offset + q.m.start * p.c_major + q.n.start - c_window.start,
            "C's offset",
        )?,
        c_sm: u32_of(p.c_major, "C's stride")?,
        alpha: p.alpha,
        // The first K piece writes C as asked; the rest add to it.
        accumulate: (p.accumulate || q.k.start > 0) as u32,
        has_bias: has_bias as u32,
        a_layout: a_layout as u32,
        b_layout: b_layout as u32,
        bias_off: u32_of(bias_reach.start - bias_window.start, "the bias offset")?,
        n_major: blocks.n_major as u32,
        _pad2: 0,
    };
    let uniform = uniform(ctx, "matmul params", &params);
    let window_of = |buffer: &wgpu::Buffer, w: Range<usize>| Bound {
        buffer: buffer.clone(),
        offset: w.start as u64 * 4,
        size: w.len().max(1) as u64 * 4,
    };
    // Without a bias the binding still needs a buffer other than C's: A's window, also
    // read only, and never read there (has_bias = 0).
    let bias = match p.bias {
        Some((buffer, _)) if has_bias => window_of(buffer, bias_window),
        _ => a.bound.clone(),
    };
    let (family, entry) = match design {
        Design::Tiles => (Family::Matmul, Entry::Matmul),
        Design::Lanes => (Family::MatmulLanes, Entry::MatmulLanes),
    };
    let bind = bind(
        ctx,
        family,
        &[
            &uniform,
            &a.bound,
            &b.bound,
            &bias,
            &window_of(p.c, c_window),
        ],
    );
    let key = KernelKey::new(entry, Float::F32.into());
    let label = format!("{m}x{n}x{k} {a_layout:?}x{b_layout:?}");
    push(ctx, program, key, bind, blocks.workgroups(), &label)
}
