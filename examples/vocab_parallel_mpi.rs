//! A vocabulary-parallel `linear_cross_entropy` over MPI ranks: each rank holds the batch's
//! hidden states and its own slice of the classifier (C / R classes of the weight and bias),
//! on its own device. Each rank's shard is fused: its logits `[N, C / R]` are computed a
//! budget's worth of rows at a time (`DEFAULT_LINEAR_BUDGET`), never more. The ranks
//! exchange only each row's partials (an all-gather, merged in rank order, so every rank
//! holds the same bits) and their shares of the input's gradient (summed in rank order). Rank 0 then checks the loss and every gradient against the
//! unsharded call on one device, prints both, and each rank's peak memory (its growth after
//! the device was made, measured before rank 0 builds the unsharded check). Any error on any
//! rank aborts them all.
//!
//! ```text
//! cargo build --release --features mpi --example vocab_parallel_mpi
//! mpirun -n 3 target/release/examples/vocab_parallel_mpi [N D C]
//! ```

use mpi::datatype::PartitionMut;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use wgpu_xent::shard::{loss_of_merged, merge, Partial};
use wgpu_xent::{
    Context, Linear, LinearShard, LossOptions, Output, PreparedLinearShard, Target, Tensor,
};

type Error = Box<dyn std::error::Error>;

/// f64s a row's partial takes on the wire: max, sum_exp, q, qd, the target's logit, found.
const WIRE: usize = 6;

/// A value in [-scale, scale) from its index alone, so that a rank makes only its own slice.
fn value(seed: u64, i: usize, scale: f32) -> f32 {
    let mut z = seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    ((z >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
}

fn to_wire(p: &Partial) -> [f64; WIRE] {
    let found = p.target.is_some();
    [
        p.max,
        p.sum_exp,
        p.q,
        p.qd,
        p.target.unwrap_or(0.0),
        found as u8 as f64,
    ]
}

fn from_wire(w: &[f64]) -> Partial {
    Partial {
        max: w[0],
        sum_exp: w[1],
        q: w[2],
        qd: w[3],
        target: (w[5] != 0.0).then_some(w[4]),
    }
}

/// Peak resident memory of this process, in MiB (Linux; 0 elsewhere).
fn peak_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok());
    kb.unwrap_or(0.0) / 1024.0
}

/// The problem every rank builds the same: sizes, hidden states, targets and options.
struct Problem {
    n: usize,
    d: usize,
    c: usize,
    x: Vec<f32>,
    t: Vec<i64>,
    opts: LossOptions<'static>,
    /// Rank k holds classes `bounds[k]..bounds[k + 1]` (uneven when R does not divide C).
    bounds: Vec<usize>,
}

impl Problem {
    fn new(args: &[String], ranks: usize) -> Result<Self, Error> {
        let (n, d, c) = match args {
            [] => (64, 96, 5003),
            [n, d, c] => (n.parse()?, d.parse()?, c.parse()?),
            _ => return Err("usage: vocab_parallel_mpi [N D C]".into()),
        };
        if c < ranks || n == 0 || d == 0 {
            return Err(
                format!("N={n} D={d} C={c}: every rank needs a class, N and D at least 1").into(),
            );
        }
        let t = (0..n)
            .map(|i| match i % 7 == 3 {
                true => -100,
                false => ((value(4, i, 1.0) + 1.0) / 2.0 * c as f32) as i64 % c as i64,
            })
            .collect();
        Ok(Problem {
            n,
            d,
            c,
            x: (0..n * d).map(|i| value(1, i, 1.0)).collect(),
            t,
            opts: LossOptions {
                label_smoothing: 0.1,
                ..Default::default()
            },
            bounds: wgpu_xent::shard::even_bounds(c, ranks),
        })
    }

    /// Classes `c0..c1` of the weight and the bias.
    fn slice(&self, c0: usize, c1: usize) -> (Vec<f32>, Vec<f32>) {
        let d = self.d;
        let w = (c0 * d..c1 * d).map(|i| value(2, i, 0.2)).collect();
        (w, (c0..c1).map(|i| value(3, i, 1.0)).collect())
    }
}

/// One sharded forward and backward: the loss, dX (summed over the ranks), this rank's dW
/// and db.
type Run = (Output, Vec<f32>, Vec<f32>, Vec<f32>);

fn sharded(
    world: &SimpleCommunicator,
    p: &Problem,
    shard: &PreparedLinearShard,
) -> Result<Run, Error> {
    let ranks = world.size() as usize;
    let send: Vec<f64> = shard.partials()?.iter().flat_map(to_wire).collect();
    let mut all = vec![0f64; send.len() * ranks];
    world.all_gather_into(&send[..], &mut all[..]);
    let per_rank: Vec<Vec<Partial>> = all
        .chunks(p.n * WIRE)
        .map(|r| r.chunks(WIRE).map(from_wire).collect())
        .collect();
    let merged = merge(&per_rank)?;
    let rows = [p.n];
    let loss = loss_of_merged(&merged, p.c, Target::I64(Tensor::new(&p.t, &rows)), &p.opts)?;
    let grads = shard.grad(&merged)?;
    let mut shares = vec![0f32; p.n * p.d * ranks];
    world.all_gather_into(&grads.grad_input.data[..], &mut shares[..]);
    let mut dx = vec![0f32; p.n * p.d];
    for share in shares.chunks(p.n * p.d) {
        dx.iter_mut().zip(share).for_each(|(a, v)| *a += v);
    }
    let db = grads.grad_linear_bias.map(|b| b.data).unwrap_or_default();
    Ok((loss, dx, grads.grad_linear_weight.data, db))
}

fn run(world: &SimpleCommunicator) -> Result<(), Error> {
    let (rank, ranks) = (world.rank() as usize, world.size() as usize);
    let args: Vec<String> = std::env::args().skip(1).collect();
    let p = Problem::new(&args, ranks)?;
    let (c0, c1) = (p.bounds[rank], p.bounds[rank + 1]);
    // The device first: its own memory (the driver, the pipelines) is not the shard's.
    let ctx = Context::new()?;
    let base = peak_mib();
    let (w, b) = p.slice(c0, c1);
    let (xs, ws, bs, rows) = ([p.n, p.d], [c1 - c0, p.d], [c1 - c0], [p.n]);
    let shard = LinearShard {
        input: Tensor::new(&p.x, &xs),
        linear_weight: Tensor::new(&w, &ws),
        linear_bias: Some(Tensor::new(&b, &bs)),
        first_class: c0,
        classes: p.c,
        target: Target::I64(Tensor::new(&p.t, &rows)),
        options: p.opts,
        grad: wgpu_xent::Grad::Returned,
        budget: wgpu_xent::DEFAULT_LINEAR_BUDGET,
    };
    let prepared = ctx.prepare(&shard)?;
    // Twice: the second run must give the same bits.
    let (a, again) = (
        sharded(world, &p, &prepared)?,
        sharded(world, &p, &prepared)?,
    );
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let repeatable = bits(&a.0.data) == bits(&again.0.data)
        && [(&a.1, &again.1), (&a.2, &again.2), (&a.3, &again.3)]
            .iter()
            .all(|(u, v)| bits(u) == bits(v));
    let mib = |floats: usize| (floats * 4) as f64 / (1 << 20) as f64;
    let memory = [
        peak_mib() - base,
        mib(p.d * (c1 - c0)),
        mib(p.n * (c1 - c0)),
    ];
    let root = world.process_at_rank(0);
    if rank != 0 {
        root.gather_varcount_into(&a.2[..]);
        root.gather_varcount_into(&a.3[..]);
        root.gather_into(&memory[..]);
        return Ok(());
    }
    let gather = |mine: &[f32], per_class: usize| -> Vec<f32> {
        let counts: Vec<i32> = p
            .bounds
            .windows(2)
            .map(|s| ((s[1] - s[0]) * per_class) as i32)
            .collect();
        let displs: Vec<i32> = p
            .bounds
            .iter()
            .take(ranks)
            .map(|&s| (s * per_class) as i32)
            .collect();
        let mut all = vec![0f32; p.c * per_class];
        root.gather_varcount_into_root(
            mine,
            &mut PartitionMut::new(&mut all[..], counts, &displs[..]),
        );
        all
    };
    let (dw, db) = (gather(&a.2, p.d), gather(&a.3, 1));
    let mut memories = vec![0f64; 3 * ranks];
    root.gather_into_root(&memory[..], &mut memories[..]);
    let ok = check(&ctx, &p, (&a.0, &a.1, &dw, &db), repeatable)?;
    for k in 0..ranks {
        println!(
            "  rank {k}: classes {}..{}: peak resident memory grew {:.1} MiB after its device was made; its weight slice is {:.2} MiB, its logits {:.2} MiB (held {} MiB at most at a time)",
            p.bounds[k], p.bounds[k + 1], memories[3 * k], memories[3 * k + 1], memories[3 * k + 2], wgpu_xent::DEFAULT_LINEAR_BUDGET >> 20
        );
    }
    if !ok {
        return Err("the sharded result differs from the unsharded one".into());
    }
    println!("  ok");
    Ok(())
}

/// Rank 0: the unsharded call on one device, with the whole classifier (for the check only),
/// against the sharded results; prints both. Whether they agree and were repeatable.
fn check(
    ctx: &Context,
    p: &Problem,
    got: (&Output, &[f32], &[f32], &[f32]),
    repeatable: bool,
) -> Result<bool, Error> {
    let (w, b) = p.slice(0, p.c);
    let (xs, ws, bs, rows) = ([p.n, p.d], [p.c, p.d], [p.c], [p.n]);
    let linear =
        Linear::new(Tensor::new(&p.x, &xs), Tensor::new(&w, &ws)).bias(Tensor::new(&b, &bs));
    let target = Target::I64(Tensor::new(&p.t, &rows));
    let truth = ctx.linear_cross_entropy_backward(linear, target, &p.opts)?;
    let worst = |ours: &[f32], want: Option<&Output>| -> f32 {
        let want = want.map_or(&[][..], |w| &w.data[..]);
        let far = ours
            .iter()
            .zip(want)
            .map(|(a, b)| (a - b).abs() / (1e-5 + 1e-4 * b.abs()));
        match ours.len() == want.len() {
            true => far.fold(0.0, f32::max),
            false => f32::INFINITY,
        }
    };
    let checks = [
        ("loss", worst(&got.0.data, Some(&truth.loss))),
        ("grad_input", worst(got.1, truth.grad_input.as_ref())),
        (
            "grad_linear_weight",
            worst(got.2, truth.grad_linear_weight.as_ref()),
        ),
        (
            "grad_linear_bias",
            worst(got.3, truth.grad_linear_bias.as_ref()),
        ),
    ];
    let ranks = p.bounds.len() - 1;
    println!(
        "vocab_parallel_mpi: N={} D={} C={} over {ranks} ranks ({:?})",
        p.n,
        p.d,
        p.c,
        ctx.adapter_info().name
    );
    println!(
        "  loss sharded {:.9}  unsharded {:.9}",
        got.0.data[0], truth.loss.data[0]
    );
    for (what, ratio) in &checks {
        println!("  {what}: worst error {ratio:.3} of the tolerance (1e-5 + 1e-4·|x|)");
    }
    println!("  two sharded runs bitwise equal: {repeatable}");
    println!(
        "  bytes exchanged per row: {} (partials, all-gather) + {} (dX shares, all-gather)",
        ranks * WIRE * 8,
        ranks * p.d * 4
    );
    Ok(repeatable && checks.iter().all(|(_, r)| *r <= 1.0))
}

fn main() {
    let Some(universe) = mpi::initialize() else {
        eprintln!("vocab_parallel_mpi: MPI was already initialised");
        std::process::exit(1);
    };
    let world = universe.world();
    if let Err(e) = run(&world) {
        // Every rank waits in the collectives: one failing rank must stop them all.
        eprintln!("vocab_parallel_mpi: rank {}: {e}", world.rank());
        world.abort(1);
    }
}
