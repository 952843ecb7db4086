//! Bounded mutation fuzzing of the parsers a user's files reach: the 10x MTX reader, the bulk
//! table reader, the corpus manifest, the run config and the h5ad CSR decoder. Each target starts
//! from a valid input and applies seeded random mutations (byte flips, truncation, deletions,
//! duplicated spans, swapped numbers and sign flips in the text formats; out-of-range,
//! decreasing, short and negative index arrays in the h5ad), a fixed number of cases per target
//! so CI time stays bounded and failures reproduce from the case number. Every case must end in
//! `Ok` or a clean `Err`: no input may panic.
//!
//! `TXFM_FUZZ_CASES=N` runs N cases per target instead of the default (for a longer local run).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use txfm::data::mtx::MtxSource;
use txfm::data::table::TableSource;
use txfm::data::{open_source, ExpressionSource, SourceOptions};

thread_local! {
    /// Set while a fuzz case runs on this thread: its panic is the finding, reported by the
    /// test with the input, so the hook does not print it.
    static IN_CASE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs one case, catching a panic without printing it; every other panic (a failed assertion,
/// a panic in the harness itself) prints as usual. The hook is process-wide and tests run on
/// several threads, hence the per-thread flag rather than swapping hooks per test.
fn run_case(f: impl FnOnce()) -> bool {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_CASE.with(|c| c.get()) {
                default(info)
            }
        }));
    });
    IN_CASE.with(|c| c.set(true));
    let ok = catch_unwind(AssertUnwindSafe(f)).is_ok();
    IN_CASE.with(|c| c.set(false));
    ok
}

fn cases(default: usize) -> usize {
    std::env::var("TXFM_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// One random mutation of `bytes`.
fn mutate(bytes: &[u8], rng: &mut ChaCha8Rng) -> Vec<u8> {
    let mut b = bytes.to_vec();
    if b.is_empty() {
        return vec![rng.random()];
    }
    let n = b.len();
    match rng.random_range(0..8) {
        0 => {
            let i = rng.random_range(0..n);
            b[i] = rng.random();
        }
        1 => b.truncate(rng.random_range(0..n)),
        2 => {
            let (i, j) = (rng.random_range(0..n), rng.random_range(0..n));
            b.drain(i.min(j)..i.max(j));
        }
        3 => {
            let (i, j) = (rng.random_range(0..n), rng.random_range(0..n));
            let span = b[i.min(j)..i.max(j)].to_vec();
            let at = rng.random_range(0..=b.len());
            b.splice(at..at, span);
        }
        4 => {
            // A number-like token: huge, negative, fractional, NaN or empty.
            let tokens: [&[u8]; 8] = [b"-1", b"0", b"99999999999999999999", b"1.5", b"nan", b"inf", b"", b"4294967296"];
            let t = tokens[rng.random_range(0..tokens.len())];
            let i = rng.random_range(0..n);
            let end = (i + rng.random_range(1..4)).min(n);
            b.splice(i..end, t.iter().copied());
        }
        5 => {
            let i = rng.random_range(0..n);
            b.insert(i, [b'\n', b'\t', b' ', b'%', b'"', b'[', b'='][rng.random_range(0..7)]);
        }
        6 => {
            // Swap two lines.
            let text = String::from_utf8_lossy(&b).into_owned();
            let mut lines: Vec<&str> = text.lines().collect();
            if lines.len() > 1 {
                let (i, j) = (rng.random_range(0..lines.len()), rng.random_range(0..lines.len()));
                lines.swap(i, j);
            }
            b = lines.join("\n").into_bytes();
        }
        _ => {
            let i = rng.random_range(0..n);
            b[i] ^= 1 << rng.random_range(0..8);
        }
    }
    b
}

/// Runs `f` on `n` mutants of `seed_input` (up to three mutations each), failing on a panic with
/// the case number and the input that caused it.
fn fuzz(name: &str, seed_input: &[u8], n: usize, mut f: impl FnMut(&[u8])) {
    let mut rng = ChaCha8Rng::seed_from_u64(0x7478_666d);
    for case in 0..n {
        let mut input = seed_input.to_vec();
        for _ in 0..rng.random_range(1..=3) {
            input = mutate(&input, &mut rng);
        }
        if !run_case(|| f(&input)) {
            panic!("{name}: case {case} panicked on input:\n{}", String::from_utf8_lossy(&input));
        }
    }
}

/// Reads every row of `src`, the way each command streams it.
fn read_all(src: &mut dyn ExpressionSource) {
    let n = src.n_obs();
    let _ = src.read_rows(0, n);
}

const MTX: &str = "%%MatrixMarket matrix coordinate integer general\n% genes x cells\n4 3 6\n1 1 3\n2 1 1\n4 2 7\n3 3 2\n1 3 5\n2 2 4\n";

#[test]
fn the_mtx_reader_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("features.tsv"), "ENSG1\tA\tGene Expression\nENSG2\tB\tGene Expression\nENSG3\tC\tGene Expression\nENSG4\tD\tGene Expression\n").unwrap();
    std::fs::write(d.join("barcodes.tsv"), "c1\nc2\nc3\n").unwrap();
    fuzz("matrix.mtx", MTX.as_bytes(), cases(400), |input| {
        std::fs::write(d.join("matrix.mtx"), input).unwrap();
        if let Ok(mut src) = MtxSource::open(d) {
            read_all(&mut src);
        }
    });
    // The gene and barcode lists, under a valid matrix.
    std::fs::write(d.join("matrix.mtx"), MTX).unwrap();
    let features = std::fs::read(d.join("features.tsv")).unwrap();
    fuzz("features.tsv", &features, cases(200), |input| {
        std::fs::write(d.join("features.tsv"), input).unwrap();
        if let Ok(mut src) = MtxSource::open(d) {
            read_all(&mut src);
        }
    });
}

#[test]
fn the_table_reader_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.tsv");
    let table = "gene\ts1\ts2\ts3\nA\t1\t0\t3\nB\t0\t2\t0\nC\t5\t0\t1\n";
    for genes_as_columns in [false, true] {
        fuzz("table", table.as_bytes(), cases(300), |input| {
            std::fs::write(&path, input).unwrap();
            if let Ok(mut src) = TableSource::open(&path, genes_as_columns) {
                read_all(&mut src);
            }
        });
    }
    // Through `open_source`, which adds the raw-count check, with a .csv name.
    let csv = dir.path().join("t.csv");
    fuzz("csv", table.replace('\t', ",").as_bytes(), cases(200), |input| {
        std::fs::write(&csv, input).unwrap();
        if let Ok(mut src) = open_source(&csv, &SourceOptions::default()) {
            read_all(src.as_mut());
        }
    });
}

#[test]
fn the_manifest_and_run_config_parsers_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("corpus.toml");
    let text = "[filters]\nmin_cells_per_gene = 3\nmin_genes_per_cell = 50\n\n[[dataset]]\nname = \"sim\"\npath = \"sim.h5ad\"\n\
                gene_ids = \"raw\"\nobs_columns = [\"perturbation\"]\nmax_samples = 100\n\n[[dataset.obs_filter]]\ncolumn = \"cond\"\n\
                values = [\"ctrl\"]\nexclude = true\n";
    fuzz("manifest", text.as_bytes(), cases(400), |input| {
        std::fs::write(&manifest, input).unwrap();
        let _ = txfm::corpus::Manifest::load(&manifest);
    });
    let config = dir.path().join("run.toml");
    let text = txfm::train::RunConfig::tiny().to_toml();
    fuzz("run config", text.as_bytes(), cases(400), |input| {
        std::fs::write(&config, input).unwrap();
        let _ = txfm::train::RunConfig::load(&config);
    });
}

/// An h5ad whose X is a CSR group written by hand from `indptr`, `indices` and `data`.
fn write_csr_h5ad(path: &Path, n_obs: usize, n_vars: usize, indptr: &[i64], indices: &[i64], data: &[f32]) -> hdf5::Result<()> {
    let f = hdf5::File::create(path)?;
    let x = f.create_group("X")?;
    let attr = |g: &hdf5::Group, k: &str, v: &str| -> hdf5::Result<()> {
        let v: hdf5::types::VarLenUnicode = v.parse().unwrap();
        g.new_attr::<hdf5::types::VarLenUnicode>().create(k)?.write_scalar(&v)
    };
    attr(&x, "encoding-type", "csr_matrix")?;
    attr(&x, "encoding-version", "0.1.0")?;
    x.new_attr::<i64>().shape([2]).create("shape")?.write(&[n_obs as i64, n_vars as i64])?;
    x.new_dataset_builder().with_data(indptr).create("indptr")?;
    x.new_dataset_builder().with_data(indices).create("indices")?;
    x.new_dataset_builder().with_data(data).create("data")?;
    for (name, n, prefix) in [("obs", n_obs, "c"), ("var", n_vars, "g")] {
        let g = f.create_group(name)?;
        attr(&g, "encoding-type", "dataframe")?;
        attr(&g, "encoding-version", "0.2.0")?;
        attr(&g, "_index", "_index")?;
        let names: Vec<hdf5::types::VarLenUnicode> = (0..n).map(|i| format!("{prefix}{i}").parse().unwrap()).collect();
        g.new_attr::<hdf5::types::VarLenUnicode>().shape([0]).create("column-order")?;
        g.new_dataset_builder().with_data(&names).create("_index")?;
    }
    Ok(())
}

#[test]
fn the_h5ad_csr_decoder_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.h5ad");
    let (n_obs, n_vars) = (4usize, 5usize);
    let indptr: Vec<i64> = vec![0, 2, 3, 5, 6];
    let indices: Vec<i64> = vec![0, 3, 1, 2, 4, 0];
    let data: Vec<f32> = vec![1.0, 2.0, 3.0, 1.0, 5.0, 4.0];
    write_csr_h5ad(&path, n_obs, n_vars, &indptr, &indices, &data).unwrap();
    assert!(open_source(&path, &SourceOptions::default()).is_ok(), "the unmutated file reads");
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for case in 0..cases(150) {
        let (mut p, mut i, mut v) = (indptr.clone(), indices.clone(), data.clone());
        let (mut obs, mut vars) = (n_obs, n_vars);
        for _ in 0..rng.random_range(1..=2) {
            match rng.random_range(0..9) {
                0 if !p.is_empty() => {
                    let k = rng.random_range(0..p.len());
                    p[k] = rng.random_range(-3..12);
                }
                1 if !i.is_empty() => {
                    let k = rng.random_range(0..i.len());
                    i[k] = rng.random_range(-3..9);
                }
                2 => p.truncate(rng.random_range(0..=p.len())),
                3 => i.truncate(rng.random_range(0..=i.len())),
                4 => v.truncate(rng.random_range(0..=v.len())),
                5 => p.reverse(),
                6 => obs = rng.random_range(0..7),
                7 => vars = rng.random_range(0..8),
                8 if !v.is_empty() => {
                    let k = rng.random_range(0..v.len());
                    v[k] = [f32::NAN, -1.0, 0.5, f32::INFINITY][rng.random_range(0..4)];
                }
                _ => {}
            }
        }
        let _ = std::fs::remove_file(&path);
        if write_csr_h5ad(&path, obs, vars, &p, &i, &v).is_err() {
            continue;
        }
        let ok = run_case(|| {
            if let Ok(mut src) = open_source(&path, &SourceOptions::default()) {
                read_all(src.as_mut());
            }
        });
        assert!(ok, "the h5ad CSR decoder panicked: case {case}: shape ({obs}, {vars}), indptr {p:?}, indices {i:?}, data {v:?}");
    }
}
