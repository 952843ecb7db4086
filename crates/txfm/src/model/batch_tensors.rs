//! The loader's host [`Batch`] as tensors on the model's device.

use tch::{Device, Tensor};

use super::encoder::VisibleTokens;
use crate::train::Batch;

/// A batch ready for [`TxFm::forward`](super::TxFm::forward).
#[derive(Debug)]
pub struct BatchTensors {
    /// The encoder's input: `[n, k]` genes, values and padding.
    pub visible: VisibleTokens,
    /// Preprocessed values of every vocabulary gene `[n, G]` (f32); 0 where not profiled.
    pub target: Tensor,
    /// `[n, G]` bool, true where the sample's dataset profiles the gene.
    pub target_mask: Tensor,
}

impl BatchTensors {
    /// Copies `batch` to `device`: genes as i64, values as f32, masks as bool. For CUDA the host
    /// arrays are staged in pinned memory and copied without blocking the host, so the CPU goes
    /// on queueing the step's kernels while the copy runs; the kernels that read the batch come
    /// after the copy on the same stream.
    ///
    /// Panics if an array's length is not the product of its declared dimensions.
    pub fn from_batch(batch: &Batch, device: Device) -> Self {
        let (n, k, g) = (batch.n as i64, batch.k as i64, batch.g as i64);
        let to = |t: Tensor, shape: [i64; 2]| {
            let t = t.view(shape);
            match device {
                Device::Cuda(_) => crate::runtime::pinned(&t, device).to_device_(device, t.kind(), true, false),
                _ => t.to_device(device),
            }
        };
        BatchTensors {
            visible: VisibleTokens {
                genes: to(Tensor::from_slice(&batch.visible_genes), [n, k]),
                values: to(Tensor::from_slice(&batch.visible_values), [n, k]),
                pad: to(Tensor::from_slice(&batch.visible_pad), [n, k]),
            },
            target: to(Tensor::from_slice(&batch.target), [n, g]),
            target_mask: to(Tensor::from_slice(&batch.target_mask), [n, g]),
        }
    }

    /// Rows `start..start + len` as views of this batch's tensors (no copy): a micro-batch.
    pub fn rows(&self, start: usize, len: usize) -> BatchTensors {
        let slice = |t: &Tensor| t.narrow(0, start as i64, len as i64);
        BatchTensors {
            visible: VisibleTokens { genes: slice(&self.visible.genes), values: slice(&self.visible.values), pad: slice(&self.visible.pad) },
            target: slice(&self.target),
            target_mask: slice(&self.target_mask),
        }
    }

    /// Number of samples `n`.
    pub fn len(&self) -> usize {
        self.target.size()[0] as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
