"""Derives the bundled human gene table `crates/txfm/assets/hs_genes.tsv.gz` from the two shared
annotation files, deterministically (same inputs -> byte-identical output).

    python scripts/make_gene_table.py [SHARED_DATA_DIR]   # default: ../shared/data

Inputs (read, never copied into the repository):
  annotations/GENCODEv44_Gene_id2name.csv            Ensembl gene ID -> GENCODE v44 name (celltypist wheel, MIT)
  annotations/hs_gene_map_entrez_symbol_ensembl.tsv.gz  NCBI Gene symbol, type, Ensembl ID
                                                     (Bioconductor org.Hs.eg.db 3.16, Artistic-2.0)

Output: one row per (Ensembl ID, symbol) pair, sorted by ID, then `gencode`/`both` before `ncbi`,
then symbol:
  ensembl_id  symbol  source  ncbi_type
`source` says which annotation names the gene so: `both` (GENCODE name == NCBI symbol), `gencode`
or `ncbi`. Both are kept where they disagree so that old and new symbols map to the same ID.
`ncbi_type` is NCBI's gene type (`protein-coding`, `ncRNA`, ...) on rows NCBI supports, else empty;
txfm uses it to resolve a symbol shared by several genes. GENCODE genes without a name (named by
their own ID) and unknown to NCBI get one row with an empty symbol, so the table lists every
GENCODE v44 gene ID.
"""

import csv
import gzip
import io
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "crates/txfm/assets/hs_genes.tsv.gz"
ENSG = re.compile(r"^ENSG\d{11}$")

HEADER = """\
# Human genes keyed by unversioned Ensembl gene ID, for txfm's gene harmonisation.
# Derived by scripts/make_gene_table.py from:
#   GENCODE v44 gene ID -> name (GENCODEv44_Gene_id2name.csv from the celltypist 1.7.1 wheel, MIT)
#   NCBI Gene symbols and Ensembl links (Bioconductor org.Hs.eg.db 3.16: NCBI Gene 2022-09,
#   Ensembl 2022-06; Artistic-2.0)
# source: both = GENCODE name equals NCBI symbol; gencode / ncbi = only that annotation uses it.
# An empty symbol: a GENCODE v44 gene without a name.
ensembl_id\tsymbol\tsource\tncbi_type
"""


def read_gencode(path):
    """Ensembl ID -> GENCODE name, or None for genes GENCODE names by their own ID."""
    names = {}
    with open(path, newline="") as f:
        for row in csv.reader(f):
            ens, name = row
            if not ENSG.match(ens):
                raise SystemExit(f"{path}: unexpected gene ID {ens!r}")
            names[ens] = None if name == ens else name
    return names


def read_ncbi(path, gencode_ids):
    """Ensembl ID -> {symbol: ncbi_type}; a few Ensembl IDs are linked to several NCBI genes.

    An NCBI gene may list several Ensembl IDs (`;`-separated): the primary-assembly gene plus its
    copies on alternate haplotypes (ABCF1 has seven). Only IDs GENCODE v44 knows are kept when there
    are any, so the symbol is not made ambiguous by haplotype copies no dataset is keyed by.
    """
    links = {}
    with gzip.open(path, "rt", newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if row["ensembl"] in ("", "NA"):
                continue
            ids = row["ensembl"].split(";")
            bad = [i for i in ids if not ENSG.match(i)]
            if bad:
                raise SystemExit(f"{path}: entrez {row['entrez']}: unexpected Ensembl ID {bad[0]!r}")
            known = [i for i in ids if i in gencode_ids]
            for ens in known or ids:
                links.setdefault(ens, {})[row["symbol"]] = row["gene_type"]
    return links


def rows(gencode, ncbi):
    for ens in sorted(gencode.keys() | ncbi.keys()):
        syms = ncbi.get(ens, {})
        name = gencode.get(ens)
        if name is not None:
            yield ens, name, "both" if name in syms else "gencode", syms.get(name, "")
        elif ens in gencode and not syms:
            yield ens, "", "gencode", ""
        for sym in sorted(syms):
            if sym != name:
                yield ens, sym, "ncbi", syms[sym]


def main():
    shared = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO.parent / "shared/data"
    gencode = read_gencode(shared / "annotations/GENCODEv44_Gene_id2name.csv")
    ncbi = read_ncbi(shared / "annotations/hs_gene_map_entrez_symbol_ensembl.tsv.gz", gencode.keys())
    text = io.StringIO()
    text.write(HEADER)
    n = 0
    for r in rows(gencode, ncbi):
        text.write("\t".join(r) + "\n")
        n += 1
    OUT.parent.mkdir(parents=True, exist_ok=True)
    # mtime=0 and no stored file name keep the output byte-identical across runs.
    with open(OUT, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz:
        gz.write(text.getvalue().encode())
    print(f"{OUT}: {n} rows, {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
