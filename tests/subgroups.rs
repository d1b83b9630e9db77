//! The subgroup reductions assume that a subgroup is a run of consecutive
//! `local_invocation_index` values; each Context checks it with a probe kernel and falls back
//! to the workgroup-memory tree where it does not hold (issue 11, D22). Both outcomes are
//! forced here and must give the reference's results.

mod common;

use common::{assert_close, widen, Rng};
use wgpu_xent::{cpu, BackwardOptions, Context, ContextOptions, LossOptions, Target, Tensor};

fn with_layout(layout: Option<bool>) -> Context {
    Context::with_options(ContextOptions {
        subgroup_layout: layout,
        ..wgpu_xent::ContextOptions::from_env().unwrap()
    })
    .unwrap()
}

fn check(ctx: &Context) {
    let (n, c) = (37, 1000);
    let mut rng = Rng(5);
    let x = rng.logits(n * c, 3.0);
    let t: Vec<i64> = (0..n).map(|_| rng.below(c) as i64).collect();
    let (shape, tshape) = ([n, c], [n]);
    let (input, target) = (
        Tensor::new(&x, &shape),
        Target::I64(Tensor::new(&t, &tshape)),
    );
    let opts = LossOptions {
        label_smoothing: 0.1,
        ..Default::default()
    };
    let b = BackwardOptions::default();
    let ours = ctx
        .cross_entropy_backward(input, target, &opts, &b)
        .unwrap();
    let truth = cpu::cross_entropy_backward(input, target, &opts, &b).unwrap();
    let path = ctx.info().reduction_path;
    assert_close(path, &ours.loss.data, &widen(&truth.loss.data), 1e-5, 1e-5);
    let (g, tg) = (ours.grad.unwrap().data, truth.grad.unwrap().data);
    assert_close(path, &g, &widen(&tg), 1e-6, 1e-4);
    let ours = ctx.log_softmax(input, -1).unwrap();
    let truth = cpu::log_softmax(input, -1).unwrap();
    assert_close(path, &ours.data, &widen(&truth.data), 1e-5, 1e-5);
}

#[test]
fn the_probe_decides_and_both_answers_give_the_reference() {
    let probed = with_layout(None);
    let has = probed.info().features.contains(wgpu::Features::SUBGROUP)
        && std::env::var("XENT_NO_SUBGROUPS").as_deref() != Ok("1");
    assert_eq!(probed.info().subgroup_layout.is_some(), has);
    if probed.adapter_info().device_type == wgpu::DeviceType::Cpu && has {
        // Mesa's software adapters lay subgroups out as the kernels assume.
        assert_eq!(probed.info().subgroup_layout, Some(true));
    }
    check(&probed);
    let tree = with_layout(Some(false));
    assert!(
        tree.info().reduction_path.starts_with("tree"),
        "{}",
        tree.info().reduction_path
    );
    if has {
        assert!(tree
            .info()
            .reduction_path
            .contains("not runs of consecutive"));
        let forced = with_layout(Some(true));
        assert!(forced.info().reduction_path.starts_with("subgroup"));
        check(&forced);
    }
    check(&tree);
}
