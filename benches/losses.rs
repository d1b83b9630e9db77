//! Criterion benchmarks of the main ops through the host API (upload and readback included).
//!
//!     cargo bench --bench losses -- --quick

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use wgpu_xent::{Context, LossOptions, Target, Tensor};

fn losses(cr: &mut Criterion) {
    let ctx = Context::new().expect("benchmarks need an adapter");
    let mut group = cr.benchmark_group("host-api");
    group.sample_size(10);
    for (n, c) in [(256usize, 4096usize), (64, 32000)] {
        let x: Vec<f32> = (0..n * c)
            .map(|i| ((i * 7919) % 1000) as f32 / 100.0)
            .collect();
        let t: Vec<i64> = (0..n).map(|i| ((i * 31) % c) as i64).collect();
        let (shape, tshape) = ([n, c], [n]);
        group.throughput(Throughput::Bytes((n * c * 4) as u64));
        let id = format!("{n}x{c}");
        group.bench_function(BenchmarkId::new("cross_entropy", &id), |b| {
            b.iter(|| {
                ctx.cross_entropy(
                    Tensor::new(&x, &shape),
                    Target::I64(Tensor::new(&t, &tshape)),
                    &LossOptions::default(),
                )
                .unwrap()
            })
        });
        group.bench_function(BenchmarkId::new("log_softmax", &id), |b| {
            b.iter(|| ctx.log_softmax(Tensor::new(&x, &shape), 1).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, losses);
criterion_main!(benches);
