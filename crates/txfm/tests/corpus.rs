//! Corpus building on simulated and real data: exact round trips, filters, several formats in one
//! corpus, and refusal of bad input with nothing left behind.

use std::path::Path;

use txfm::corpus::{build_corpus, BuildOptions, Corpus, DatasetMode, DatasetSpec, Filters, Manifest, ObsFilter};
use txfm::data::genes::GeneIdKind;
use txfm::data::h5ad::H5adWriter;
use txfm::data::{open_source, CsrChunk, ObsColumn, ObsFrame, SourceOptions};
use txfm::simulate::{simulate_to_h5ad, SimConfig};
use txfm::testing::{run_python, shared_data};

fn build(manifest: &Manifest, out: &Path) -> txfm::corpus::CorpusSummary {
    build_corpus(manifest, out, &BuildOptions::default()).expect("corpus builds")
}

/// Every stored row of the corpus, in sample order, as vocabulary-indexed CSR.
fn all_rows(corpus: &Corpus) -> (CsrChunk, Vec<f64>) {
    let mut rows = CsrChunk::new(0, corpus.n_vars());
    let mut lib = Vec::new();
    for i in 0..corpus.summary.shards.len() {
        let b = corpus.shard(i).unwrap().read_all().unwrap();
        let v = corpus.to_vocab(&b);
        for r in 0..v.n_rows() {
            let (idx, val) = v.row(r);
            rows.push_row(idx.iter().copied().zip(val.iter().copied()));
        }
        lib.extend(b.library_size);
    }
    (rows, lib)
}

#[test]
fn simulated_h5ad_round_trips_through_the_corpus_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let h5ad = dir.path().join("sim.h5ad");
    let mut cfg = SimConfig::tiny();
    cfg.n_cells = 1500;
    simulate_to_h5ad(&cfg, &h5ad, &indicatif::ProgressBar::hidden()).unwrap();

    let mut m = Manifest::new(vec![DatasetSpec::new("sim", &h5ad, GeneIdKind::Raw)], Filters::none());
    m.shard_rows = 600; // several shards, the last one partial
    let out = dir.path().join("corpus");
    let s = build(&m, &out);
    assert_eq!(s.n_samples, 1500);
    assert_eq!(s.shards.iter().map(|x| x.n_rows).collect::<Vec<_>>(), vec![600, 600, 300]);

    let corpus = Corpus::open(&out).unwrap();
    let mut src = open_source(&h5ad, &SourceOptions::default()).unwrap();
    assert_eq!(corpus.var_names, src.var_names(), "raw IDs keep the input's gene order");
    let input = src.read_rows(0, src.n_obs()).unwrap();
    let (rows, lib) = all_rows(&corpus);
    assert_eq!(rows.indptr, input.indptr);
    assert_eq!(rows.indices, input.indices);
    assert_eq!(rows.data, input.data, "stored counts equal the input counts exactly");
    assert_eq!(lib, input.row_sums());
    assert_eq!(corpus.profiled, vec![(0..corpus.n_vars() as u32).collect::<Vec<_>>()]);
}

/// A build that would keep no sample fails, says why per dataset, and writes nothing.
#[test]
fn a_corpus_of_nothing_is_an_error_that_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let h5ad = dir.path().join("sim.h5ad");
    let cfg = SimConfig { n_cells: 300, ..SimConfig::tiny() };
    simulate_to_h5ad(&cfg, &h5ad, &indicatif::ProgressBar::hidden()).unwrap();
    let out = dir.path().join("corpus");
    // The simulator's gene names (SIMG00001...) are no human symbols.
    let m = Manifest::new(vec![DatasetSpec::new("sim", &h5ad, GeneIdKind::Symbol)], Filters::none());
    let err = build_corpus(&m, &out, &BuildOptions::default()).unwrap_err().to_string();
    assert!(err.contains("300 samples × 0 genes") && err.contains("sim.h5ad") && err.contains("none of its 500 var names mapped as symbol"), "{err}");
    assert!(err.contains("gene_ids = \"raw\""), "{err}");
    // Mapped genes, but every cell below the QC threshold.
    let filters = Filters { min_genes_per_cell: 1_000_000, ..Filters::none() };
    let m = Manifest::new(vec![DatasetSpec::new("sim", &h5ad, GeneIdKind::Raw)], filters);
    let err = build_corpus(&m, &out, &BuildOptions::default()).unwrap_err().to_string();
    assert!(err.contains("0 samples × ") && err.contains("300 of 300 samples failed QC (min_genes_per_cell = 1000000)"), "{err}");
    assert!(!out.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3, "only the simulator's files: {:?}", std::fs::read_dir(dir.path()).unwrap().collect::<Vec<_>>());
}

/// 4 cells × 5 genes with hand-checked filter outcomes.
fn write_small(path: &Path) {
    let var = ObsFrame { names: ["g0", "g1", "g2", "g3", "g4"].map(String::from).to_vec(), columns: vec![] };
    let mut w = H5adWriter::create(path, &var).unwrap();
    let mut x = CsrChunk::new(0, 5);
    x.push_dense_row(&[1.0, 2.0, 0.0, 0.0, 0.0]); // 2 genes
    x.push_dense_row(&[3.0, 0.0, 1.0, 0.0, 0.0]); // 2 genes
    x.push_dense_row(&[0.0, 0.0, 0.0, 7.0, 0.0]); // 1 gene: fails min_genes = 2
    x.push_dense_row(&[5.0, 1.0, 0.0, 1.0, 0.0]); // 3 genes
    w.append_x(&x).unwrap();
    let obs = ObsFrame {
        names: ["c0", "c1", "c2", "c3"].map(String::from).to_vec(),
        columns: vec![(
            "cond".into(),
            ObsColumn::Categorical { codes: vec![0, 1, 0, 1], categories: vec!["ctrl".into(), "stim".into()] },
        )],
    };
    w.finish(&obs).unwrap();
}

#[test]
fn filters_follow_their_definitions() {
    let dir = tempfile::tempdir().unwrap();
    let h5ad = dir.path().join("small.h5ad");
    write_small(&h5ad);
    let mut ds = DatasetSpec::new("small", &h5ad, GeneIdKind::Raw);
    ds.obs_columns = vec!["cond".into()];
    let filters = Filters { min_genes_per_cell: 2, min_cells_per_gene: 2 };
    let out = dir.path().join("c");
    let s = build(&Manifest::new(vec![ds.clone()], filters), &out);
    // Cell c2 fails QC; among c0, c1, c3 genes are detected in 3, 2, 1, 1, 0 cells → g0, g1 kept.
    assert_eq!((s.n_samples, s.datasets[0].n_failed_qc), (3, 1));
    let corpus = Corpus::open(&out).unwrap();
    assert_eq!(corpus.var_names, vec!["g0", "g1"]);
    assert_eq!(corpus.n_cells, vec![3, 2]);
    let (rows, lib) = all_rows(&corpus);
    assert_eq!(rows.to_dense(), vec![1.0, 2.0, 3.0, 0.0, 5.0, 1.0]);
    assert_eq!(lib, vec![3.0, 4.0, 7.0], "library size counts every harmonised gene");

    // obs filter (exclude) then the cap.
    ds.obs_filter = vec![ObsFilter { column: "cond".into(), values: vec!["ctrl".into()], exclude: true }];
    let s = build(&Manifest::new(vec![ds.clone()], Filters::none()), &dir.path().join("c2"));
    assert_eq!((s.datasets[0].n_after_obs_filter, s.n_samples), (2, 2));
    // A filter that matches nothing is said to be the reason, not QC.
    let mut none = ds.clone();
    none.obs_filter = vec![ObsFilter { column: "cond".into(), values: vec!["no_such_condition".into()], exclude: false }];
    let err = build_corpus(&Manifest::new(vec![none], Filters::none()), &dir.path().join("c4"), &BuildOptions::default()).unwrap_err().to_string();
    assert!(err.contains("obs_filter (cond in [no_such_condition]) matched none of its 4 samples") && !err.contains("QC"), "{err}");
    ds.max_samples = Some(1);
    let s = build(&Manifest::new(vec![ds], Filters::none()), &dir.path().join("c3"));
    assert_eq!((s.datasets[0].n_after_cap, s.n_samples), (1, 1));
}

#[test]
fn one_corpus_from_every_real_format() {
    let dir = tempfile::tempdir().unwrap();
    let mut crop = DatasetSpec::new("jurkat_cropseq", shared_data("perturbation/datlinger2017_cropseq_scperturb_testsubset.h5ad"), GeneIdKind::Symbol);
    crop.obs_columns = vec!["target_gene".into(), "sample".into()];
    crop.max_samples = Some(3000);
    let mut kang = DatasetSpec::new("kang_pbmc", shared_data("perturbation/kang2018_pbmc_ifnb_scgen_valid_counts.h5ad"), GeneIdKind::Symbol);
    kang.obs_columns = vec!["condition".into(), "cell_type".into()];
    kang.obs_filter = vec![ObsFilter { column: "condition".into(), values: vec!["control".into()], exclude: false }];
    let celltypist = DatasetSpec::new("celltypist", shared_data("expression/celltypist_sample_cell_by_gene.h5ad"), GeneIdKind::Auto);
    let mtx = DatasetSpec::new("pbmc_mtx", shared_data("expression/sctransform_pbmc_10x_mtx"), GeneIdKind::Symbol);
    let seurat = DatasetSpec::new("seurat_txt", shared_data("expression/seurat_pbmc_raw.txt"), GeneIdKind::Symbol);
    let mut bulk = DatasetSpec::new("marioni_bulk", shared_data("expression/noiseq_marioni2008_kidney_liver_counts.tsv"), GeneIdKind::Ensembl);
    bulk.mode = DatasetMode::Bulk;
    let filters = Filters { min_cells_per_gene: 3, min_genes_per_cell: 5 };
    let m = Manifest::new(vec![crop, kang, celltypist, mtx, seurat, bulk], filters);
    let out = dir.path().join("corpus");
    let s = build(&m, &out);

    let by_name = |n: &str| s.datasets.iter().find(|d| d.name == n).unwrap();
    assert_eq!(by_name("jurkat_cropseq").n_after_cap, 3000);
    assert_eq!(by_name("kang_pbmc").n_after_obs_filter, 936, "936 control cells in Kang 2018");
    assert_eq!(by_name("celltypist").n_obs_input, 559);
    assert_eq!((by_name("pbmc_mtx").n_obs_input, by_name("pbmc_mtx").n_vars_input), (283, 914));
    assert_eq!((by_name("seurat_txt").n_obs_input, by_name("seurat_txt").n_vars_input), (80, 230));
    assert_eq!((by_name("marioni_bulk").n_obs_input, by_name("marioni_bulk").n_samples), (10, 10));
    for d in &s.datasets {
        assert!(d.n_samples > 0 && d.n_genes_profiled > 0, "{}: nothing kept", d.name);
        assert!(d.n_genes_profiled <= s.n_vars);
        let r = &d.mapping;
        assert_eq!(r.n_mapped + r.n_ambiguous + r.n_unmapped, r.n_input, "{}: report adds up", d.name);
    }
    assert_eq!(s.n_samples, s.datasets.iter().map(|d| d.n_samples as u64).sum::<u64>());
    // Human symbols and Ensembl IDs meet in one namespace: the bulk Ensembl genes overlap the
    // single-cell symbol genes.
    let corpus = Corpus::open(&out).unwrap();
    let prof = |n: &str| &corpus.profiled[by_name(n).id as usize];
    let shared = prof("marioni_bulk").iter().filter(|g| prof("celltypist").binary_search(g).is_ok()).count();
    assert!(shared > 3000, "bulk ∩ celltypist = {shared} genes");
    assert!(corpus.var_names.iter().all(|g| g.starts_with("ENSG")), "one namespace: Ensembl IDs");
    assert!(corpus.n_cells.iter().all(|&m| m >= 3));

    // Independent check with pyarrow: obs rows, labels, and shard sums equal library sizes.
    let py = run_python(
        r#"
import sys, json, glob, pyarrow.parquet as pq, pyarrow.compute as pc
d = sys.argv[1]
obs = pq.read_table(d + "/obs.parquet").to_pandas()
sh = pq.read_table(sorted(glob.glob(d + "/shards/*.parquet")))
sums = [sum(c) for c in sh.column("counts").to_pylist()]
ok = all(abs(a - b) < 1e-6 for a, b in zip(sums, sh.column("library_size").to_pylist()))
print(json.dumps({"n": len(obs), "ds": obs["dataset"].value_counts().to_dict(),
  "kang_conditions": sorted(obs.loc[obs.dataset == "kang_pbmc", "condition"].unique().tolist()),
  "crop_has_target": int(obs.loc[obs.dataset == "jurkat_cropseq", "target_gene"].notna().sum()),
  "crop_has_sample": int(obs.loc[obs.dataset == "jurkat_cropseq", "obs_sample"].notna().sum()),
  "sums_ok": ok, "rows": sh.num_rows}))
"#,
        &[out.to_str().unwrap()],
    );
    let v: serde_json::Value = serde_json::from_str(py.trim()).unwrap();
    assert_eq!(v["n"].as_u64().unwrap(), s.n_samples);
    assert_eq!(v["rows"].as_u64().unwrap(), s.n_samples);
    assert_eq!(v["ds"]["kang_pbmc"].as_u64().unwrap(), by_name("kang_pbmc").n_samples as u64);
    assert_eq!(v["kang_conditions"], serde_json::json!(["control"]));
    assert_eq!(v["crop_has_target"].as_u64().unwrap(), by_name("jurkat_cropseq").n_samples as u64);
    assert_eq!(v["crop_has_sample"], v["crop_has_target"], "obs column `sample` stored as `obs_sample`");
    assert_eq!(v["sums_ok"], serde_json::json!(true));

    // Seeded: a second build picks the same capped cells.
    let s2 = build(&m, &dir.path().join("again"));
    assert_eq!(s2.datasets.iter().map(|d| d.n_samples).collect::<Vec<_>>(), s.datasets.iter().map(|d| d.n_samples).collect::<Vec<_>>());
    let a = std::fs::read(out.join("obs.parquet")).unwrap();
    let b = std::fs::read(dir.path().join("again/obs.parquet")).unwrap();
    assert_eq!(a, b);
}

#[test]
fn real_counts_match_python_anndata() {
    let path = shared_data("perturbation/datlinger2017_cropseq_scperturb_testsubset.h5ad");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("c");
    build(&Manifest::new(vec![DatasetSpec::new("crop", &path, GeneIdKind::Raw)], Filters::none()), &out);
    let (rows, lib) = all_rows(&Corpus::open(&out).unwrap());
    let py = run_python(
        "import sys, json, anndata; a = anndata.read_h5ad(sys.argv[1]); X = a.X.tocsr(); X.eliminate_zeros()\n\
         print(json.dumps({'nnz': int(X.nnz), 'sums': [float(v) for v in X.sum(axis=1).A1]}))",
        &[path.to_str().unwrap()],
    );
    let v: serde_json::Value = serde_json::from_str(py.trim()).unwrap();
    assert_eq!(rows.nnz() as u64, v["nnz"].as_u64().unwrap());
    let sums: Vec<f64> = v["sums"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    assert_eq!(lib, sums);
}

#[test]
fn refuses_non_counts_naming_the_file_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let z = shared_data("expression/10x_pbmc68k_reduced.h5ad");
    let m = Manifest::new(vec![DatasetSpec::new("zscored", &z, GeneIdKind::Symbol)], Filters::none());
    let out = dir.path().join("corpus");
    let err = build_corpus(&m, &out, &BuildOptions::default()).unwrap_err().to_string();
    assert!(err.contains("10x_pbmc68k_reduced.h5ad") && err.contains("does not hold raw counts"), "{err}");
    assert!(err.contains("negative"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing half-written");

    // An explicit override accepts already-normalised values.
    let mut ds = DatasetSpec::new("zscored", &z, GeneIdKind::Symbol);
    ds.allow_non_counts = true;
    let s = build(&Manifest::new(vec![ds], Filters::none()), &out);
    assert_eq!(s.n_samples, 700);
    // An existing output is not replaced without --overwrite.
    let again = build_corpus(&Manifest::new(vec![DatasetSpec::new("x", &z, GeneIdKind::Symbol)], Filters::none()), &out, &BuildOptions::default());
    assert!(again.unwrap_err().to_string().contains("output folder exists"));
}

/// `--overwrite` replaces a corpus folder, and refuses anything else before doing any work: a
/// folder holding the manifest's own h5ad (the issue's case: it was deleted), or a corpus folder
/// with a file of the user's added.
#[test]
fn overwrite_replaces_only_a_corpus_folder() {
    let dir = tempfile::tempdir().unwrap();
    let h5ad = dir.path().join("sim.h5ad");
    simulate_to_h5ad(&SimConfig { n_cells: 200, ..SimConfig::tiny() }, &h5ad, &indicatif::ProgressBar::hidden()).unwrap();
    let m = Manifest::new(vec![DatasetSpec::new("sim", &h5ad, GeneIdKind::Raw)], Filters::none());
    let overwrite = BuildOptions { overwrite: true, ..BuildOptions::default() };

    // Onto the folder that holds the input: refused, the input untouched.
    let before = std::fs::read(&h5ad).unwrap();
    let err = build_corpus(&m, dir.path(), &overwrite).unwrap_err().to_string();
    assert!(err.contains("replaces only a txfm corpus folder") && err.contains("corpus.json"), "{err}");
    assert_eq!(std::fs::read(&h5ad).unwrap(), before);

    // A corpus is replaced.
    let out = dir.path().join("corpus");
    build(&m, &out);
    assert_eq!(build_corpus(&m, &out, &overwrite).unwrap().n_samples, 200);

    // A corpus with the user's notes in it is not, and says what is there.
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    let err = build_corpus(&m, &out, &overwrite).unwrap_err().to_string();
    assert!(err.contains("it also holds notes.txt"), "{err}");
    assert_eq!(std::fs::read_to_string(out.join("notes.txt")).unwrap(), "mine");
    assert!(Corpus::open(&out).is_ok());
}

/// `allow_non_counts` accepts normalised values, never NaN or infinity: a NaN let into a corpus
/// stopped training 32 steps in with no pointer to the data.
#[test]
fn non_finite_values_are_refused_even_where_non_counts_are_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("norm_nan.h5ad");
    let genes: Vec<String> = (0..8).map(|j| format!("g{j}")).collect();
    txfm::testing::write_dense_h5ad(&path, &genes, 50, |i| {
        let mut row: Vec<f32> = (0..8).map(|j| ((i + j) % 4) as f32 * 0.5).collect();
        if i == 40 {
            row[2] = f32::NAN;
        }
        row
    });
    let mut ds = DatasetSpec::new("norm", &path, GeneIdKind::Raw);
    ds.allow_non_counts = true;
    let out = dir.path().join("corpus");
    let err = build_corpus(&Manifest::new(vec![ds], Filters::none()), &out, &BuildOptions::default()).unwrap_err().to_string();
    assert!(err.contains("norm_nan.h5ad") && err.contains("NaN"), "{err}");
    assert!(!out.exists(), "nothing written");
}
