//! Gradient averaging overlapped with the backward pass, as PyTorch DDP's Reducer does it: the
//! parameters are grouped into buckets of about `bucket_bytes`, and a hook on each parameter
//! ([`crate::runtime::hooks`]) copies its gradient into its bucket's flat buffer as soon as the
//! backward pass has written it; the moment a bucket is complete its all-reduce starts
//! (non-blocking MPI on CPU, NCCL on a side stream on CUDA) while the backward pass goes on with
//! earlier layers. [`GradReducer::finish`] waits for the sums and writes the means back into the
//! gradients.
//!
//! Buckets start in a fixed order on every rank (bucket i only after buckets 0..i), which
//! collectives require. Their membership first follows the reverse of the parameters' order; after
//! the first step it is rebuilt from the order in which rank 0's hooks fired, the order gradients
//! actually become ready, so a bucket fills in one stretch of the backward pass (DDP's bucket
//! rebuild). A parameter that got no gradient in a step is sent as it stands after `zero_grad`
//! (zeros) if it has a gradient tensor from an earlier step, and is an error otherwise.

use std::ffi::c_void;
use std::sync::Mutex;

use tch::{Kind, Tensor};

use super::{buckets, World};
use crate::runtime::hooks::{clear_grad_ready_hook, set_grad_ready_hook};
use crate::{Error, Result};

/// Averages the gradients of a fixed list of parameters over the world, bucket by bucket during
/// the backward pass. Drop it to remove its hooks.
pub struct GradReducer {
    /// Boxed: the hooks hold its address.
    state: Box<Mutex<State>>,
}

struct State {
    world: &'static World,
    names: Vec<String>,
    params: Vec<Tensor>,
    bucket_bytes: usize,
    buckets: Vec<Bucket>,
    /// Each parameter's bucket and element offset in it.
    place: Vec<(usize, i64)>,
    /// Whether a backward pass is under way ([`GradReducer::prepare`] .. [`GradReducer::finish`]).
    armed: bool,
    /// Whether each parameter's gradient is in its bucket this step.
    copied: Vec<bool>,
    /// Buckets before this one have started.
    next: usize,
    /// The order this rank's hooks fired in, recorded until the buckets are rebuilt.
    fired: Vec<usize>,
    rebuilt: bool,
    /// The first failure inside a hook, reported by `finish`.
    error: Option<Error>,
}

struct Bucket {
    members: Vec<usize>,
    /// `[Σ numel of members]` float32 on the parameters' device.
    flat: Tensor,
    /// Members whose gradient is not yet in `flat`.
    waiting: usize,
}

impl GradReducer {
    /// Hooks `params` (named, float32 leaves on one device, the same list in the same order on
    /// every rank). With `bucket_bytes = 0` every parameter is a bucket of its own.
    pub fn new(world: &'static World, params: &[(String, Tensor)], bucket_bytes: usize) -> Result<GradReducer> {
        if let Some((name, t)) = params.iter().find(|(_, t)| t.kind() != Kind::Float) {
            return Err(Error::Invalid(format!("data-parallel gradients are float32; parameter {name} is {:?}", t.kind())));
        }
        let order: Vec<usize> = (0..params.len()).rev().collect();
        let mut state = State {
            world,
            names: params.iter().map(|(n, _)| n.clone()).collect(),
            params: params.iter().map(|(_, t)| t.shallow_clone()).collect(),
            bucket_bytes,
            buckets: Vec::new(),
            place: Vec::new(),
            armed: false,
            copied: vec![false; params.len()],
            next: 0,
            fired: Vec::with_capacity(params.len()),
            rebuilt: false,
            error: None,
        };
        state.assign(&order);
        let reducer = GradReducer { state: Box::new(Mutex::new(state)) };
        let ctx = &*reducer.state as *const Mutex<State> as *mut c_void;
        for (i, (_, p)) in params.iter().enumerate() {
            // SAFETY: `ctx` is the boxed state, which lives until `drop` has removed every hook.
            unsafe { set_grad_ready_hook(p, on_grad_ready, ctx, i) }.map_err(|e| Error::Invalid(format!("parameter {}: {e}", params[i].0)))?;
        }
        Ok(reducer)
    }

    /// The buckets as lists of parameter names, in the order they start.
    pub fn bucket_names(&self) -> Vec<Vec<String>> {
        let s = self.state.lock().expect("reducer state");
        s.buckets.iter().map(|b| b.members.iter().map(|&i| s.names[i].clone()).collect()).collect()
    }

    /// Call right before the backward pass whose gradients are to be averaged.
    pub fn prepare(&self) {
        let mut s = self.state.lock().expect("reducer state");
        s.armed = true;
        s.next = 0;
        s.copied.iter_mut().for_each(|c| *c = false);
        for b in &mut s.buckets {
            b.waiting = b.members.len();
        }
        s.fired.clear();
    }

    /// Call right after the backward pass: starts the buckets still waiting, waits for every sum
    /// and replaces each gradient with its mean over the world. Collective.
    pub fn finish(&self) -> Result<()> {
        let mut s = self.state.lock().expect("reducer state");
        s.armed = false;
        if let Some(e) = s.error.take() {
            return Err(e);
        }
        tch::no_grad(|| {
            for i in 0..s.params.len() {
                if !s.copied[i] {
                    s.copy_in(i)?;
                }
            }
            s.start_ready()?;
            s.world.finish_sums(s.params.first().map_or(tch::Device::Cpu, Tensor::device))?;
            let size = s.world.size as f64;
            for b in &s.buckets {
                let _ = b.flat.shallow_clone().g_div_scalar_(size);
                let mut at = 0;
                for &i in &b.members {
                    let mut g = s.params[i].grad();
                    let n = g.numel() as i64;
                    // `copy_` follows the gradient's strides, whatever its layout.
                    g.copy_(&b.flat.narrow(0, at, n).view_as(&g));
                    at += n;
                }
            }
            Ok::<_, Error>(())
        })?;
        if !s.rebuilt {
            s.rebuild()?;
        }
        Ok(())
    }
}

impl Drop for GradReducer {
    fn drop(&mut self) {
        // A hook that panicked poisoned the lock, but the parameters are still there to unhook.
        let s = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for p in &s.params {
            clear_grad_ready_hook(p);
        }
    }
}

/// The hook: runs on the thread executing the backward pass, while the training loop waits in it.
extern "C" fn on_grad_ready(ctx: *mut c_void, index: usize) {
    // SAFETY: `ctx` is a live `GradReducer`'s boxed state (see `GradReducer::new`).
    let state = unsafe { &*(ctx as *const Mutex<State>) };
    let Ok(mut s) = state.lock() else { return };
    if !s.armed || s.error.is_some() {
        return;
    }
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| tch::no_grad(|| s.ready(index))));
    let failure = match outcome {
        Ok(Ok(())) => return,
        Ok(Err(e)) => e,
        Err(_) => Error::Invalid(format!("the gradient hook of parameter {} panicked", s.names[index])),
    };
    s.error = Some(failure);
}

impl State {
    /// Places the parameters into buckets following `order`.
    fn assign(&mut self, order: &[usize]) {
        let numels: Vec<usize> = order.iter().map(|&i| self.params[i].numel()).collect();
        let cap = (self.bucket_bytes / 4).max(1);
        self.place = vec![(0, 0); self.params.len()];
        self.buckets = buckets(&numels, cap)
            .into_iter()
            .enumerate()
            .map(|(b, range)| {
                let members = order[range].to_vec();
                let mut at = 0i64;
                for &i in &members {
                    self.place[i] = (b, at);
                    at += self.params[i].numel() as i64;
                }
                let p = &self.params[members[0]];
                Bucket { waiting: members.len(), flat: Tensor::zeros([at], (Kind::Float, p.device())), members }
            })
            .collect();
    }

    fn ready(&mut self, index: usize) -> Result<()> {
        if self.copied[index] {
            return Err(Error::Invalid(format!("parameter {}: its gradient was ready twice in one backward pass", self.names[index])));
        }
        if !self.rebuilt {
            self.fired.push(index);
        }
        self.copy_in(index)?;
        if self.start_ready()? == 0 {
            self.world.progress_sums()?;
        }
        Ok(())
    }

    /// Copies parameter `index`'s gradient into its bucket.
    fn copy_in(&mut self, index: usize) -> Result<()> {
        let g = self.params[index].grad();
        if !g.defined() {
            return Err(Error::Invalid(format!(
                "parameter {} got no gradient; data-parallel training needs one for every parameter",
                self.names[index]
            )));
        }
        let (b, at) = self.place[index];
        let bucket = &mut self.buckets[b];
        bucket.flat.narrow(0, at, g.numel() as i64).copy_(&g.reshape([-1]));
        bucket.waiting -= 1;
        self.copied[index] = true;
        Ok(())
    }

    /// Starts the complete buckets that are next in line; how many it started.
    fn start_ready(&mut self) -> Result<usize> {
        let first = self.next;
        while self.next < self.buckets.len() && self.buckets[self.next].waiting == 0 {
            self.world.start_sum(&self.buckets[self.next].flat)?;
            self.next += 1;
        }
        Ok(self.next - first)
    }

    /// Rebuilds the buckets in the order rank 0's gradients became ready (parameters whose hook
    /// did not fire go last, in their previous order).
    fn rebuild(&mut self) -> Result<()> {
        let mut order: Vec<u32> = self.fired.iter().map(|&i| i as u32).collect();
        let mut seen = vec![false; self.params.len()];
        order.iter().for_each(|&i| seen[i as usize] = true);
        let rest: Vec<u32> = self.buckets.iter().flat_map(|b| b.members.iter().copied()).filter(|&i| !seen[i]).map(|i| i as u32).collect();
        order.extend(rest);
        let mut bytes: Vec<u8> = order.iter().flat_map(|i| i.to_le_bytes()).collect();
        self.world.broadcast_bytes(&mut bytes, 0)?;
        let order: Vec<usize> = bytes.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")) as usize).collect();
        let mut check = order.clone();
        check.sort_unstable();
        if check != (0..self.params.len()).collect::<Vec<_>>() {
            return Err(Error::Invalid(format!(
                "rank {}: rank 0's gradient order does not cover this rank's {} parameters",
                self.world.rank,
                self.params.len()
            )));
        }
        self.assign(&order);
        self.rebuilt = true;
        self.fired = Vec::new();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use tch::Device;

    use super::*;

    fn world_of_one() -> &'static World {
        Box::leak(Box::new(World::single()))
    }

    /// A three-layer chain whose gradients are known: each step's gradients must come out of the
    /// reducer unchanged in a world of one, whatever the buckets.
    #[test]
    fn gradients_pass_through_the_buckets_and_the_buckets_follow_the_backward_order() {
        let opts = (Kind::Float, Device::Cpu);
        tch::manual_seed(3);
        // Named so that name order is not backward order: "a" is the last layer.
        let names = ["c_first", "b_middle", "a_last", "d_unused"];
        let shapes: [&[i64]; 4] = [&[6, 5], &[5, 4], &[4, 3], &[10]];
        let params: Vec<(String, Tensor)> =
            names.iter().zip(shapes).map(|(n, s)| (n.to_string(), Tensor::randn(s, opts).set_requires_grad(true))).collect();
        // 20 floats per bucket: no two of the 30/20/12/10-float tensors fit together.
        let reducer = GradReducer::new(world_of_one(), &params, 20 * 4).unwrap();
        assert_eq!(reducer.bucket_names(), vec![vec!["d_unused"], vec!["a_last"], vec!["b_middle"], vec!["c_first"]]);
        let x = Tensor::randn([7, 6], opts);
        let forward = || x.matmul(&params[0].1).tanh().matmul(&params[1].1).tanh().matmul(&params[2].1).pow_tensor_scalar(2).sum(Kind::Float);

        // "d_unused" has no gradient tensor yet: the first step says so.
        reducer.prepare();
        forward().backward();
        let err = reducer.finish().unwrap_err().to_string();
        assert!(err.contains("d_unused got no gradient"), "{err}");

        drop(reducer);
        for (_, p) in &params {
            p.shallow_clone().zero_grad();
        }
        // Give the unused parameter a gradient tensor (as an earlier step would have).
        (params[3].1.sum(Kind::Float) * 0.0).backward();
        let reducer = GradReducer::new(world_of_one(), &params, 20 * 4).unwrap();
        for step in 0..3 {
            for (_, p) in &params {
                p.shallow_clone().zero_grad();
            }
            reducer.prepare();
            forward().backward();
            let expected: Vec<Tensor> = params.iter().map(|(_, p)| p.grad().copy()).collect();
            reducer.finish().unwrap();
            for ((name, p), e) in params.iter().zip(&expected) {
                assert!(p.grad().allclose(e, 0.0, 0.0, false), "step {step}: {name}'s gradient changed");
            }
            if step == 0 {
                // Rebuilt from the order the hooks fired: last layer first, the unused one last.
                assert_eq!(reducer.bucket_names(), vec![vec!["a_last"], vec!["b_middle"], vec!["c_first"], vec!["d_unused"]]);
            }
        }
        assert!(params[0].1.grad().abs().sum(Kind::Float).double_value(&[]) > 0.0);
    }
}
