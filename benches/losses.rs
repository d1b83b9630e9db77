//! Criterion benchmarks of the main ops on data already on the device (prepared once; no
//! upload in the timed loop). GPU time comes from timestamp queries where the adapter has
//! them, wall time (submit to result on the host) otherwise. Throughput is the logits' bytes.
//!
//!     cargo bench --bench losses -- --quick

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::time::{Duration, Instant};
use wgpu_xent::{Context, Grad, LossCall, SoftmaxCall, Target, Tensor};

/// Sums `iters` runs: GPU time when `run` reports it, wall time otherwise.
fn timed(iters: u64, mut run: impl FnMut() -> Option<Duration>) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let start = Instant::now();
        let gpu = run();
        total += gpu.unwrap_or_else(|| start.elapsed());
    }
    total
}

fn losses(cr: &mut Criterion) {
    let ctx = Context::new().expect("benchmarks need an adapter");
    let mut group = cr.benchmark_group("xent-gpu");
    group.sample_size(10);
    for (n, c) in [(256usize, 4096usize), (64, 32000)] {
        let x: Vec<f32> = (0..n * c)
            .map(|i| ((i * 7919) % 1000) as f32 / 100.0)
            .collect();
        let t: Vec<i64> = (0..n).map(|i| ((i * 31) % c) as i64).collect();
        let (shape, tshape) = ([n, c], [n]);
        let (input, target) = (
            Tensor::new(&x, &shape),
            Target::I64(Tensor::new(&t, &tshape)),
        );
        group.throughput(Throughput::Bytes((n * c * 4) as u64));
        let id = format!("{n}x{c}");
        let call = LossCall::cross_entropy(input, target);
        let ce = ctx.prepare(&call).unwrap();
        group.bench_function(BenchmarkId::new("cross_entropy", &id), |b| {
            b.iter_custom(|iters| timed(iters, || ce.run_timed().unwrap().1))
        });
        let grad = ctx.prepare(&call.grad(Grad::Returned)).unwrap();
        group.bench_function(BenchmarkId::new("cross_entropy_grad", &id), |b| {
            b.iter_custom(|iters| timed(iters, || grad.run_timed().unwrap().1))
        });
        let ls = ctx.prepare(&SoftmaxCall::log_softmax(input, 1)).unwrap();
        group.bench_function(BenchmarkId::new("log_softmax", &id), |b| {
            b.iter_custom(|iters| timed(iters, || ls.run_timed().unwrap().1))
        });
    }
    group.finish();
}

criterion_group!(benches, losses);
criterion_main!(benches);
