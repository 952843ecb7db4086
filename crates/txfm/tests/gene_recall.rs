//! Gene-relationship recall: planted structure is recalled far above chance, random vectors at
//! chance, the null's percentiles equal numpy's, and the streamed (bounded-memory) null gives
//! exactly the decisions of the sorted one.

use txfm::data::genes::{harmonise, GeneIdKind, GeneTable};
use txfm::eval::annotations::PairDatabase;
use txfm::eval::genes::{gene_recall, GeneRecallConfig, GeneVectors, NullMode};

use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("g{i:04}")).collect()
}

/// `n_groups` groups of `size` genes; a gene is its group's centre plus noise of sd `noise`.
fn planted(n_groups: usize, size: usize, dim: usize, noise: f64, seed: u64) -> (GeneVectors, PairDatabase) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut normal = || -> f64 { StandardNormal.sample(&mut rng) };
    let g = n_groups * size;
    let centres: Vec<f64> = (0..n_groups * dim).map(|_| normal()).collect();
    let values: Vec<f32> = (0..g).flat_map(|i| (0..dim).map(move |d| (i, d))).map(|(i, d)| (centres[(i / size) * dim + d] + noise * normal()) as f32).collect();
    let ids = names(g);
    let mut pairs = Vec::new();
    for grp in 0..n_groups {
        for a in 0..size {
            for b in a + 1..size {
                pairs.push((ids[grp * size + a].clone(), ids[grp * size + b].clone()));
            }
        }
    }
    let v = GeneVectors { source: "planted".into(), origin: "test".into(), gene_ids: ids.clone(), symbols: ids, values, dim };
    (v, PairDatabase::from_pairs("groups", pairs))
}

fn config(components: usize) -> GeneRecallConfig {
    GeneRecallConfig { components, ..GeneRecallConfig::default() }
}

#[test]
fn planted_pairs_are_recalled_and_random_vectors_are_not() {
    let (v, db) = planted(40, 8, 48, 0.3, 1);
    let r = gene_recall(&v, std::slice::from_ref(&db), &config(32), NullMode::Streamed).unwrap();
    assert_eq!(r.n_genes_covered, 320);
    assert_eq!(r.n_components, 32);
    let d = &r.databases[0];
    assert_eq!((d.n_pairs, d.n_pairs_covered), (40 * 28, 40 * 28));
    assert!(d.recall > 0.9, "planted recall {}", d.recall);
    assert!((d.null_mean - 0.10).abs() < 0.03 && d.null_sd < 0.03, "null {} ± {}", d.null_mean, d.null_sd);
    assert_eq!(r.databases[1].database, "combined");
    assert_eq!(r.databases[1].recall, d.recall);

    // Unrelated vectors with the same pairs: recall at chance, like the null.
    let (noise, _) = planted(320, 1, 48, 1.0, 2);
    let noise = GeneVectors { gene_ids: v.gene_ids.clone(), symbols: v.symbols.clone(), ..noise };
    let r = gene_recall(&noise, &[db], &config(32), NullMode::Streamed).unwrap();
    let d = &r.databases[0];
    assert!((d.recall - 0.10).abs() < 0.03, "random recall {}", d.recall);
    assert!((d.null_mean - 0.10).abs() < 0.03, "null {}", d.null_mean);
}

#[test]
fn streamed_null_equals_the_sorted_null() {
    let (v, db) = planted(30, 6, 20, 1.5, 3);
    // A second database sharing genes, with a pair named twice in either order.
    let other = PairDatabase::from_pairs("other", [("g0000", "g0100"), ("g0100", "g0000"), ("g0001", "g0007"), ("g0003", "nope")]);
    let dbs = [db, other];
    let a = gene_recall(&v, &dbs, &config(16), NullMode::Streamed).unwrap();
    let b = gene_recall(&v, &dbs, &config(16), NullMode::Sorted).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.databases[1].n_pairs_covered, 2);
    assert_eq!(a.databases[2].n_pairs_covered, a.databases[0].n_pairs_covered + 2);
}

#[test]
fn null_percentiles_equal_numpy() {
    let (v, db) = planted(12, 5, 10, 1.0, 4);
    let r = gene_recall(&v, &[db], &config(10), NullMode::Streamed).unwrap();
    // With as many components as features, PCA is a rotation: cosines are those of the
    // standardised vectors.
    let code = r#"
import sys, json, numpy as np
x = np.array(json.loads(sys.argv[1]), dtype=np.float64).reshape(-1, int(sys.argv[2]))
z = (x - x.mean(0)) / x.std(0)
u = z / np.linalg.norm(z, axis=1, keepdims=True)
s = (u @ u.T)[np.triu_indices(len(u), 1)]
print(json.dumps(np.percentile(s, [5, 95]).tolist()))
"#;
    let values = serde_json::to_string(&v.values).unwrap();
    let out = txfm::testing::run_python(code, &[&values, &v.dim.to_string()]);
    let want: Vec<f64> = serde_json::from_str(out.trim()).unwrap();
    assert!((r.percentiles.0 - want[0]).abs() < 1e-5, "{} vs {}", r.percentiles.0, want[0]);
    assert!((r.percentiles.1 - want[1]).abs() < 1e-5, "{} vs {}", r.percentiles.1, want[1]);
    assert_eq!(r.n_null_pairs, 60 * 59 / 2);
}

#[test]
fn annotation_symbols_reach_ensembl_vocabularies_through_aliases() {
    // A vocabulary of Ensembl IDs, as a corpus-trained checkpoint has; the database names one gene
    // by its previous symbol (SEPT9, now SEPTIN9) and one gene the vocabulary lacks.
    let symbols: Vec<String> = ["SEPTIN9", "TP53", "MDM2", "ACTB", "GAPDH", "CDK1"].iter().map(|s| s.to_string()).collect();
    let ids = harmonise(&symbols, GeneIdKind::Symbol, GeneTable::human()).ids;
    assert_eq!(ids.len(), 6);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let values: Vec<f32> = (0..6 * 4).map(|_| rng.random::<f32>()).collect();
    let v = GeneVectors { source: "t".into(), origin: "t".into(), gene_ids: ids, symbols, values, dim: 4 };
    let db = PairDatabase::from_pairs("db", [("SEPT9", "TP53"), ("TP53", "MDM2"), ("ACTB", "NOTAGENE1")]);
    let r = gene_recall(&v, &[db], &config(4), NullMode::Sorted).unwrap();
    let d = &r.databases[0];
    assert_eq!((d.n_pairs, d.n_pairs_covered, d.n_genes, d.n_genes_covered), (3, 2, 5, 3));
    assert_eq!(r.n_genes_covered, 4, "SEPTIN9, TP53, MDM2, ACTB");
}
