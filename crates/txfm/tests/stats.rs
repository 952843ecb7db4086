//! The ablation tables' significance tests against scipy on the same inputs: Student's two-sample
//! and one-sample t-tests, the pooled two-proportion z-test (`2·norm.sf(|z|)`), and
//! Benjamini–Hochberg (`false_discovery_control`).

use serde_json::Value;
use txfm::eval::stats::{benjamini_hochberg, ttest_1samp, ttest_ind, two_proportion_z};

const SCIPY: &str = r#"
import sys, json, numpy as np
from scipy import stats
cases = json.loads(sys.argv[1])
out = {"ind": [], "one": [], "z": [], "bh": None}
for a, b in cases["ind"]:
    r = stats.ttest_ind(a, b); out["ind"].append([float(r.statistic), float(r.pvalue)])
for x, mu in cases["one"]:
    r = stats.ttest_1samp(x, mu); out["one"].append([float(r.statistic), float(r.pvalue)])
for x1, n1, x2, n2 in cases["z"]:
    p1, p2, p = x1 / n1, x2 / n2, (x1 + x2) / (n1 + n2)
    z = (p1 - p2) / np.sqrt(p * (1 - p) * (1 / n1 + 1 / n2)); out["z"].append([float(z), float(2 * stats.norm.sf(abs(z)))])
out["bh"] = stats.false_discovery_control(cases["bh"], method="bh").tolist()
print(json.dumps(out))
"#;

fn close(a: f64, b: f64, what: &str) {
    assert!((a - b).abs() <= 1e-10 * b.abs().max(1e-300) + 1e-300, "{what}: {a} vs scipy {b}");
}

#[test]
fn tests_equal_scipy() {
    // Recalls of three nulls against three nulls, small and large differences, and a tail far out.
    let ind: Vec<(Vec<f64>, Vec<f64>)> = vec![
        (vec![0.12, 0.10, 0.15], vec![0.09, 0.08, 0.11]),
        (vec![0.30, 0.31, 0.29], vec![0.10, 0.11, 0.09]),
        (vec![0.5, 0.4, 0.6, 0.55], vec![0.45, 0.52, 0.48]),
        (vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], vec![30.0, 31.0, 32.5, 29.0, 30.5, 31.5]),
    ];
    let one: Vec<(Vec<f64>, f64)> = vec![(vec![0.09, 0.11, 0.1], 0.2), (vec![0.21, 0.25, 0.19, 0.22], 0.1), (vec![1.0, 1.1, 0.9], 1.0)];
    let z: Vec<(u64, u64, u64, u64)> = vec![(13, 20, 8, 20), (73, 100, 58, 100), (5, 60, 6, 60), (900, 1000, 100, 1000)];
    let bh = vec![0.001, 0.2, 0.04, 0.03, 0.9, 0.049, 0.5];
    let cases = serde_json::json!({
        "ind": ind, "one": one, "z": z.iter().map(|c| [c.0, c.1, c.2, c.3]).collect::<Vec<_>>(), "bh": bh,
    });
    let out: Value = serde_json::from_str(&txfm::testing::run_python(SCIPY, &[&cases.to_string()])).unwrap();
    let pair = |v: &Value| (v[0].as_f64().unwrap(), v[1].as_f64().unwrap());
    for (i, (a, b)) in ind.iter().enumerate() {
        let (t, p) = ttest_ind(a, b).unwrap();
        let (wt, wp) = pair(&out["ind"][i]);
        close(t, wt, "ttest_ind t");
        close(p, wp, "ttest_ind p");
    }
    for (i, (x, mu)) in one.iter().enumerate() {
        let (t, p) = ttest_1samp(x, *mu).unwrap();
        let (wt, wp) = pair(&out["one"][i]);
        close(t, wt, "ttest_1samp t");
        close(p, wp, "ttest_1samp p");
    }
    for (i, &(x1, n1, x2, n2)) in z.iter().enumerate() {
        let (zz, p) = two_proportion_z(x1, n1, x2, n2).unwrap();
        let (wz, wp) = pair(&out["z"][i]);
        close(zz, wz, "z");
        close(p, wp, "z-test p");
    }
    let want: Vec<f64> = out["bh"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    for (a, w) in benjamini_hochberg(&bh).iter().zip(&want) {
        close(*a, *w, "BH");
    }
}
