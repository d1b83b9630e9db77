//! Bad input to the device API is an `Err`, never a silently wrong loss (issue 11: D5, D7,
//! D18, and reading a loss before anything ran).

mod common;

use common::ctx;
use wgpu_xent::{DType, DeviceTensor, LossCall, LossOptions, XentError};

/// D5: a u32 target of 2^31 or more is a class out of range, not the i32 ignore_index -1.
#[test]
fn u32_targets_past_2_31_are_out_of_bounds() {
    let ctx = ctx();
    let x = vec![0.5f32; 4 * 3];
    let logits = DeviceTensor::from_host(ctx, &x, &[4, 3], DType::F32).unwrap();
    for bad in [u32::MAX, 1 << 31, 3] {
        let t = DeviceTensor::from_host(ctx, &[0u32, 1, 2, bad], &[4], DType::U32).unwrap();
        let opts = LossOptions {
            ignore_index: -1,
            ..Default::default()
        };
        let step = ctx
            .prepare(&LossCall::cross_entropy(&logits, &t).options(opts))
            .unwrap();
        match step.run_timed().map(|_| ()).unwrap_err() {
            XentError::TargetOutOfBounds {
                position, value, ..
            } => assert_eq!((position, value), (vec![3], bad as i64)),
            e => panic!("expected TargetOutOfBounds, got {e}"),
        }
        let step = ctx
            .prepare(&LossCall::nll_loss(&logits, &t).options(opts))
            .unwrap();
        assert!(step.run_timed().is_err(), "nll_loss with target {bad}");
    }
}

/// D18 and D7: offsets and shapes whose byte counts overflow are refused at once.
#[test]
fn overflowing_offsets_and_shapes_are_refused() {
    let ctx = ctx();
    let t = DeviceTensor::from_host(ctx, &[0.0f32; 8], &[8], DType::F32).unwrap();
    let err = DeviceTensor::from_buffer(ctx, t.buffer(), !255u64, &[4], DType::F32).unwrap_err();
    assert!(matches!(err, XentError::InvalidShape(_)), "{err}");
    let huge = [1usize << 62, 4];
    let err = DeviceTensor::from_buffer(ctx, t.buffer(), 0, &huge, DType::F32).unwrap_err();
    assert!(matches!(err, XentError::InvalidShape(_)), "{err}");
    let err = DeviceTensor::from_host::<f32>(ctx, &[], &huge, DType::F32).unwrap_err();
    assert!(matches!(err, XentError::InvalidShape(_)), "{err}");
}

/// A loss read before the call was recorded or run is an error, not 0.
#[test]
fn reading_a_loss_before_any_run_is_an_error() {
    let ctx = ctx();
    let logits = DeviceTensor::from_host(ctx, &[0.5f32; 6], &[2, 3], DType::F32).unwrap();
    let t = DeviceTensor::from_host(ctx, &[0i32, 2], &[2], DType::I32).unwrap();
    let step = ctx
        .prepare(&LossCall::cross_entropy(&logits, &t).options(LossOptions::default()))
        .unwrap();
    let err = step.read_loss().unwrap_err();
    assert!(err.to_string().contains("has not run yet"), "{err}");
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    step.record(&mut encoder);
    ctx.queue().submit(Some(encoder.finish()));
    let loss = step.read_loss().unwrap().scalar();
    assert!((loss - 3f32.ln()).abs() < 1e-6, "{loss}");
}
