//! A vocabulary-parallel `linear_cross_entropy` over MPI ranks: each rank holds the batch's
//! hidden states and its own slice of the classifier (C / R classes of the weight and bias),
//! on its own device. The ranks exchange only each row's partials (an all-gather, merged in
//! rank order, so every rank holds the same bits) and their shares of the input's gradient
//! (summed in rank order). Rank 0 then checks the loss and every gradient against the
//! unsharded call on one device, prints both, and each rank's peak memory (its growth after
//! the device was made, measured before rank 0 builds the unsharded check).
//!
//! ```text
//! cargo build --release --features mpi --example vocab_parallel_mpi
//! mpirun -n 3 target/release/examples/vocab_parallel_mpi [N D C]
//! ```

use mpi::datatype::PartitionMut;
use mpi::traits::*;
use wgpu_xent::cpu::shard::{merge, Partial};
use wgpu_xent::{
    loss_of_merged, Context, Linear, LinearShard, LossOptions, Output, Target, Tensor,
};

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

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let universe = mpi::initialize().ok_or("MPI was already initialised")?;
    let world = universe.world();
    let (rank, ranks) = (world.rank() as usize, world.size() as usize);
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (n, d, c) = match args[..] {
        [n, d, c] => (n, d, c),
        _ => (64, 96, 5003),
    };
    // Uneven slices: rank k holds classes [k·C/R, (k+1)·C/R).
    let bounds: Vec<usize> = (0..=ranks).map(|k| k * c / ranks).collect();
    let (c0, c1) = (bounds[rank], bounds[rank + 1]);
    let cs = c1 - c0;
    // The device first: its own memory (the driver, the pipelines) is not the shard's.
    let ctx = Context::new()?;
    let base = peak_mib();
    let x: Vec<f32> = (0..n * d).map(|i| value(1, i, 1.0)).collect();
    let w: Vec<f32> = (c0 * d..c1 * d).map(|i| value(2, i, 0.2)).collect();
    let b: Vec<f32> = (c0..c1).map(|i| value(3, i, 1.0)).collect();
    let t: Vec<i64> = (0..n)
        .map(|i| match i % 7 == 3 {
            true => -100,
            false => ((value(4, i, 1.0) + 1.0) / 2.0 * c as f32) as i64 % c as i64,
        })
        .collect();
    let opts = LossOptions {
        label_smoothing: 0.1,
        ..Default::default()
    };
    let (xs, ws, bs, rows) = ([n, d], [cs, d], [cs], [n]);
    let target = Target::I64(Tensor::new(&t, &rows));
    let shard = LinearShard {
        input: Tensor::new(&x, &xs),
        weight: Tensor::new(&w, &ws),
        bias: Some(Tensor::new(&b, &bs)),
        first_class: c0,
        classes: c,
    };
    let prepared = ctx.prepare_linear_cross_entropy_shard(shard, target, &opts, true)?;

    // The sharded call, twice: the second must give the same bits.
    let mut runs = vec![];
    for _ in 0..2 {
        let send: Vec<f64> = prepared.partials()?.iter().flat_map(to_wire).collect();
        let mut all = vec![0f64; send.len() * ranks];
        world.all_gather_into(&send[..], &mut all[..]);
        let per_rank: Vec<Vec<Partial>> = all
            .chunks(n * WIRE)
            .map(|r| r.chunks(WIRE).map(from_wire).collect())
            .collect();
        let merged = merge(&per_rank);
        let loss = loss_of_merged(&merged, c, target, &opts)?;
        let grads = prepared.grads(&merged)?;
        let mut shares = vec![0f32; n * d * ranks];
        world.all_gather_into(&grads.input.data[..], &mut shares[..]);
        let mut dx = vec![0f32; n * d];
        for share in shares.chunks(n * d) {
            dx.iter_mut().zip(share).for_each(|(a, v)| *a += v);
        }
        runs.push((loss, dx, grads.weight.data, grads.bias.map(|b| b.data)));
    }
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let (a, again) = (&runs[0], &runs[1]);
    let repeatable = bits(&a.0.data) == bits(&again.0.data)
        && bits(&a.1) == bits(&again.1)
        && bits(&a.2) == bits(&again.2);

    // dW and db to rank 0, slice by slice in rank order; each rank's peak memory beside.
    let (dw, db) = (&a.2, a.3.clone().unwrap_or_default());
    let root = world.process_at_rank(0);
    let peak = [
        peak_mib() - base,
        (n * cs * 4 + cs * d * 4) as f64 / (1 << 20) as f64,
    ];
    if rank != 0 {
        root.gather_varcount_into(&dw[..]);
        root.gather_varcount_into(&db[..]);
        root.gather_into(&peak[..]);
        return Ok(());
    }
    let gather = |mine: &[f32], per_class: usize| -> Vec<f32> {
        let counts: Vec<i32> = bounds
            .windows(2)
            .map(|s| ((s[1] - s[0]) * per_class) as i32)
            .collect();
        let displs: Vec<i32> = bounds
            .iter()
            .take(ranks)
            .map(|&s| (s * per_class) as i32)
            .collect();
        let mut all = vec![0f32; c * per_class];
        let mut part = PartitionMut::new(&mut all[..], counts, &displs[..]);
        root.gather_varcount_into_root(mine, &mut part);
        all
    };
    let dw_all = gather(dw, d);
    let db_all = gather(&db, 1);
    let mut peaks = vec![0f64; 2 * ranks];
    root.gather_into_root(&peak[..], &mut peaks[..]);

    // The unsharded call on one device, with the whole classifier (for the check only).
    let w_all: Vec<f32> = (0..c * d).map(|i| value(2, i, 0.2)).collect();
    let b_all: Vec<f32> = (0..c).map(|i| value(3, i, 1.0)).collect();
    let (wa, ba) = ([c, d], [c]);
    let linear =
        Linear::new(Tensor::new(&x, &xs), Tensor::new(&w_all, &wa)).bias(Tensor::new(&b_all, &ba));
    let truth = ctx.linear_cross_entropy_backward(linear, target, &opts)?;
    let worst = |ours: &[f32], want: &Output| -> f32 {
        ours.iter()
            .zip(&want.data)
            .map(|(a, b)| (a - b).abs() / (1e-5 + 1e-4 * b.abs()))
            .fold(0.0, f32::max)
    };
    let checks = [
        ("loss", worst(&a.0.data, &truth.loss)),
        (
            "grad_input",
            worst(&a.1, truth.grad_input.as_ref().ok_or("no dX")?),
        ),
        (
            "grad_linear_weight",
            worst(&dw_all, truth.grad_linear_weight.as_ref().ok_or("no dW")?),
        ),
        (
            "grad_linear_bias",
            worst(&db_all, truth.grad_linear_bias.as_ref().ok_or("no db")?),
        ),
    ];
    println!(
        "vocab_parallel_mpi: N={n} D={d} C={c} over {ranks} ranks ({:?})",
        ctx.adapter_info().name
    );
    println!(
        "  loss sharded {:.9}  unsharded {:.9}",
        a.0.data[0], truth.loss.data[0]
    );
    for (what, ratio) in &checks {
        println!("  {what}: worst error {ratio:.3} of the tolerance (1e-5 + 1e-4·|x|)");
    }
    println!("  two sharded runs bitwise equal: {repeatable}");
    println!(
        "  bytes exchanged per row: {} (partials, all-gather) + {} (dX shares)",
        ranks * WIRE * 8,
        ranks * d * 4
    );
    for k in 0..ranks {
        println!(
            "  rank {k}: classes {}..{}: peak resident memory grew {:.1} MiB after its device was made; its logits and weight slice are {:.2} MiB",
            bounds[k], bounds[k + 1], peaks[2 * k], peaks[2 * k + 1]
        );
    }
    let ok = repeatable && checks.iter().all(|(_, r)| *r <= 1.0);
    if !ok {
        eprintln!("vocab_parallel_mpi: the sharded result differs from the unsharded one");
        world.abort(1);
    }
    println!("  ok");
    Ok(())
}
