//! All cells of a simulation, sampled in parallel and handed over in row order.
//!
//! Worker `w` of `W` samples chunks `w, w + W, w + 2W, …` and sends each through its own
//! one-slot channel; the caller's thread takes chunk `c` from worker `c mod W`. Order needs no
//! reorder buffer, and memory stays at about two chunks per worker whatever `n_cells` is.

use std::num::NonZeroUsize;
use std::sync::mpsc::{Receiver, sync_channel};

use super::cells::{CHUNK_ROWS, CellLabels, simulate_rows};
use super::truth::SimTruth;
use crate::Result;
use crate::data::CsrChunk;

/// Samples every cell in chunks of [`CHUNK_ROWS`] on all cores and calls `sink` with each chunk,
/// in row order, on the calling thread. Stops at the first error `sink` returns.
pub fn simulate_chunks(
    truth: &SimTruth,
    mut sink: impl FnMut(CsrChunk, Vec<CellLabels>) -> Result<()>,
) -> Result<()> {
    let n_chunks = truth.config.n_cells.div_ceil(CHUNK_ROWS);
    let n_workers = std::thread::available_parallelism().map_or(1, NonZeroUsize::get).min(n_chunks);
    std::thread::scope(|scope| {
        let workers: Vec<Receiver<(CsrChunk, Vec<CellLabels>)>> = (0..n_workers)
            .map(|w| {
                let (tx, rx) = sync_channel(1);
                scope.spawn(move || {
                    for c in (w..n_chunks).step_by(n_workers) {
                        let start = c * CHUNK_ROWS;
                        // A closed channel means the sink failed: stop quietly, the error is
                        // already on its way to the caller.
                        if tx.send(simulate_rows(truth, start..start + CHUNK_ROWS)).is_err() {
                            return;
                        }
                    }
                });
                rx
            })
            .collect();
        for c in 0..n_chunks {
            // A worker only hangs up early by panicking, which the scope re-raises on exit.
            let Ok((chunk, labels)) = workers[c % n_workers].recv() else { break };
            sink(chunk, labels)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::SimConfig;

    /// Chunks arrive in order, and match rows sampled alone: chunking and threads do not change
    /// the data.
    #[test]
    fn chunks_arrive_in_order_and_match_sequential_sampling() {
        let cfg = SimConfig {
            n_cells: 2 * CHUNK_ROWS + 100,
            n_genes: 60,
            n_perturbations: 30,
            ..SimConfig::tiny()
        };
        let truth = SimTruth::new(&cfg).unwrap();
        let mut starts = Vec::new();
        let mut n_rows = 0;
        simulate_chunks(&truth, |chunk, labels| {
            assert_eq!(chunk.n_rows(), labels.len());
            if chunk.row_start == CHUNK_ROWS {
                let (alone, alone_labels) = simulate_rows(&truth, CHUNK_ROWS + 5..CHUNK_ROWS + 7);
                assert_eq!(chunk.row(5), alone.row(0));
                assert_eq!(chunk.row(6), alone.row(1));
                assert_eq!(&labels[5..7], &alone_labels[..]);
            }
            starts.push(chunk.row_start);
            n_rows += chunk.n_rows();
            Ok(())
        })
        .unwrap();
        assert_eq!(starts, vec![0, CHUNK_ROWS, 2 * CHUNK_ROWS]);
        assert_eq!(n_rows, cfg.n_cells);
    }

    #[test]
    fn sink_error_stops_the_run() {
        let cfg =
            SimConfig { n_cells: 3 * CHUNK_ROWS, n_genes: 60, n_perturbations: 30, ..SimConfig::tiny() };
        let truth = SimTruth::new(&cfg).unwrap();
        let mut calls = 0;
        let err = simulate_chunks(&truth, |_, _| {
            calls += 1;
            Err(crate::Error::Invalid("disk full".into()))
        });
        assert!(err.is_err());
        assert_eq!(calls, 1);
    }
}
