//! The GPU runtime: the device and its capabilities (`context`, `adapter`, `probe`, `info`),
//! the tuning resolved once per device (`tuning`, `switches`), buffers and device tensors,
//! `Program` (ordered dispatches as data), staging and readback (`readback`, `cancel`),
//! waiting (`poller`), error scopes (`scope`), each prepared call's run lock (`run_lock`)
//! and timestamp queries. Nothing here knows an op.

pub(crate) mod adapter;
pub(crate) mod buffers;
pub(crate) mod cancel;
pub(crate) mod context;
pub(crate) mod device_tensor;
pub(crate) mod info;
pub(crate) mod poller;
pub(crate) mod probe;
pub(crate) mod program;
pub(crate) mod readback;
pub(crate) mod run_lock;
pub(crate) mod scope;
pub(crate) mod switches;
pub(crate) mod timestamps;
pub(crate) mod tuning;
