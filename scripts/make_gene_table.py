"""Derives the bundled human gene table `crates/txfm/assets/hs_genes.tsv.gz` from the two shared
annotation files and the org.Hs.eg.db SQLite database, deterministically (same inputs ->
byte-identical output).

    python scripts/make_gene_table.py [SHARED_DATA_DIR] [--orgdb org.Hs.eg.sqlite]

SHARED_DATA_DIR defaults to ../shared/data. Without --orgdb the database is taken from Debian's
`r-bioc-org.hs.eg.db` 3.16.0-1 package, fetched with `apt-get download` into a temporary directory
(37 MB; no R needed, nothing installed, nothing kept).

Inputs (read, never copied into the repository):
  annotations/GENCODEv44_Gene_id2name.csv            Ensembl gene ID -> GENCODE v44 name (celltypist wheel, MIT)
  annotations/hs_gene_map_entrez_symbol_ensembl.tsv.gz  NCBI Gene symbol, type, Ensembl ID
                                                     (Bioconductor org.Hs.eg.db 3.16, Artistic-2.0)
  org.Hs.eg.sqlite                                   NCBI Gene aliases and previous symbols, from the
                                                     same org.Hs.eg.db 3.16 (Artistic-2.0)

Output: one row per (Ensembl ID, symbol) pair, sorted by ID, then `gencode`/`both` before `ncbi`,
then `alias`, then symbol:
  ensembl_id  symbol  source  ncbi_type
`source` says which annotation names the gene so: `both` (GENCODE name == NCBI symbol), `gencode`
or `ncbi`. Both are kept where they disagree so that old and new symbols map to the same ID, as
long as the NCBI link is one gene to one gene (`one_to_one`). `alias` rows carry NCBI aliases and
previous symbols that name one gene only (`aliases`); txfm uses them only for names no current
symbol matches.
`ncbi_type` is NCBI's gene type (`protein-coding`, `ncRNA`, ...) on rows NCBI supports, else empty;
txfm uses it to resolve a symbol shared by several genes. GENCODE genes without a name (named by
their own ID) and unknown to NCBI get one row with an empty symbol, so the table lists every
GENCODE v44 gene ID.
"""

import argparse
import csv
import gzip
import io
import re
import sqlite3
import subprocess
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "crates/txfm/assets/hs_genes.tsv.gz"
ENSG = re.compile(r"^ENSG\d{11}$")
# org.Hs.eg.db 3.16's NCBI Gene snapshot, the one the shared NCBI table was made from, and the
# Debian package that ships it.
ORGDB_NCBI_DATE = "2022-Sep12"
ORGDB_DEB = "r-bioc-org.hs.eg.db=3.16.0-1"

HEADER = """\
# Human genes keyed by unversioned Ensembl gene ID, for txfm's gene harmonisation.
# Derived by scripts/make_gene_table.py from:
#   GENCODE v44 gene ID -> name (GENCODEv44_Gene_id2name.csv from the celltypist 1.7.1 wheel, MIT)
#   NCBI Gene symbols and Ensembl links (Bioconductor org.Hs.eg.db 3.16: NCBI Gene 2022-09,
#   Ensembl 2022-06; Artistic-2.0)
#   NCBI Gene aliases and previous symbols (the same org.Hs.eg.db 3.16, Artistic-2.0)
# source: both = GENCODE name equals NCBI symbol; gencode / ncbi = only that annotation uses it;
# alias = an NCBI alias or previous symbol naming this gene only, for names no symbol matches.
# NCBI links are kept where one NCBI gene matches one Ensembl gene, else only where the symbols agree.
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


def read_ncbi(path, gencode):
    """The NCBI links kept (see `one_to_one`): (entrez, symbol, ncbi_type, Ensembl ID) tuples."""
    links = []
    with gzip.open(path, "rt", newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if row["ensembl"] in ("", "NA"):
                continue
            ids = row["ensembl"].split(";")
            bad = [i for i in ids if not ENSG.match(i)]
            if bad:
                raise SystemExit(f"{path}: entrez {row['entrez']}: unexpected Ensembl ID {bad[0]!r}")
            # An NCBI gene may list its copies on alternate haplotypes too (ABCF1 has seven);
            # datasets are keyed by the primary-assembly gene, the one GENCODE v44 lists.
            known = [i for i in ids if i in gencode]
            for ens in known or ids:
                links.append((row["entrez"], row["symbol"], row["gene_type"], ens))
    return one_to_one(links, gencode)


def read_symbols(path):
    """Entrez ID -> NCBI symbol, for every NCBI gene."""
    with gzip.open(path, "rt", newline="") as f:
        return {row["entrez"]: row["symbol"] for row in csv.DictReader(f, delimiter="\t")}


def one_to_one(links, gencode):
    """Keeps the NCBI links that identify one gene with one gene.

    Where an NCBI gene links to several Ensembl genes, or several NCBI genes to one Ensembl gene,
    only the links whose symbol equals the GENCODE name survive, and none if no link agrees:
    NCBI ties antisense and read-through genes to the gene they overlap (STT3A-AS1 to FEZ1's
    Ensembl ID), which kept would sum one gene's counts into another's. An NCBI gene left with
    several agreeing links keeps the lowest ID. A link that is the only one on both sides is kept
    whatever its symbol: mostly renames (SLC9A3R2, now NHERF2).
    """
    agrees = lambda link: gencode.get(link[3]) == link[1]
    by_entrez, by_ens = {}, {}
    for link in links:
        by_entrez.setdefault(link[0], []).append(link)
    links = []
    for group in by_entrez.values():
        kept = sorted((l for l in group if len(group) == 1 or agrees(l)), key=lambda l: l[3])
        # GENCODE sometimes names a second, newer model of the gene the same (MATR3 has
        # ENSG00000015479 and ENSG00000280987); the NCBI gene keeps the oldest, lowest ID.
        links.extend(kept[:1] if len(kept) > 1 else kept)
    for link in links:
        by_ens.setdefault(link[3], []).append(link)
    return [l for group in by_ens.values() for l in group if len(group) == 1 or agrees(l)]


def read_aliases(orgdb, symbols):
    """Entrez ID -> its aliases and previous symbols, from org.Hs.eg.sqlite.

    Refuses a database from another NCBI Gene snapshot than the shared table's (`symbols`:
    entrez -> symbol), whose Entrez IDs and symbols could disagree with it.
    """
    db = sqlite3.connect(f"file:{orgdb}?mode=ro", uri=True)
    (date,) = db.execute("SELECT value FROM metadata WHERE name = 'EGSOURCEDATE'").fetchone()
    if date != ORGDB_NCBI_DATE:
        raise SystemExit(f"{orgdb}: NCBI Gene of {date}, expected {ORGDB_NCBI_DATE} (org.Hs.eg.db 3.16)")
    current = dict(db.execute("SELECT g.gene_id, i.symbol FROM genes g JOIN gene_info i USING (_id)"))
    if current != symbols:
        raise SystemExit(f"{orgdb}: gene symbols differ from the shared NCBI table")
    aliases = {}
    for entrez, alias in db.execute("SELECT g.gene_id, a.alias_symbol FROM alias a JOIN genes g USING (_id)"):
        aliases.setdefault(entrez, set()).add(alias)
    return aliases


def aliases_to_ensembl(aliases, links, gencode, symbols):
    """Alias -> Ensembl ID for the aliases that name one gene, unmistakably.

    An alias is kept when no gene has it (or it ignoring case) as its current symbol, GENCODE's
    or NCBI's, it belongs to one NCBI gene, and that gene keeps a link to an Ensembl gene. An
    alias several NCBI genes share goes to the one renamed from it by appending `1` (GBA, now
    GBA1, beside the pseudogene GBAP1; SARS, now SARS1, beside SARS2): HGNC's rename when a
    family grows, and the old symbol of a gene beats an alias another gene picked up. Otherwise
    it is dropped: NCBI lists LCA10 for both CEP290 and L1CAM-AS1. Aliases with spaces
    (`COX IV-1`) are descriptions, never var names.
    """
    taken = {s.upper() for s in symbols.values()} | {n.upper() for n in gencode.values() if n}
    ens_of = {entrez: ens for entrez, _, _, ens in links}
    owners = {}
    for entrez, names in aliases.items():
        for alias in names:
            if alias.upper() not in taken and not any(c.isspace() for c in alias):
                owners.setdefault(alias, set()).add(entrez)
    out = {}
    for alias, entrez_ids in owners.items():
        if len(entrez_ids) > 1:
            entrez_ids = {e for e in entrez_ids if symbols[e] == alias + "1"}
        if len(entrez_ids) == 1 and (ens := ens_of.get(entrez_ids.pop())):
            out[alias] = ens
    return out


def fetch_orgdb(tmp):
    """Downloads Debian's `ORGDB_DEB` into `tmp` and returns its org.Hs.eg.sqlite."""
    subprocess.run(["apt-get", "download", ORGDB_DEB], cwd=tmp, check=True)
    (deb,) = Path(tmp).glob("r-bioc-org.hs.eg.db_*.deb")
    subprocess.run(["dpkg-deb", "-x", deb, Path(tmp) / "x"], check=True)
    (db,) = (Path(tmp) / "x").rglob("org.Hs.eg.sqlite")
    return db


def rows(gencode, ncbi, aliases):
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
        for alias in sorted(aliases.get(ens, ())):
            yield ens, alias, "alias", ""


def main():
    args = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    args.add_argument("shared", nargs="?", type=Path, default=REPO.parent / "shared/data",
                      help="the shared data folder (default: ../shared/data)")
    args.add_argument("--orgdb", type=Path,
                      help="org.Hs.eg.sqlite of org.Hs.eg.db 3.16 (default: fetch Debian's r-bioc-org.hs.eg.db)")
    args = args.parse_args()
    gencode = read_gencode(args.shared / "annotations/GENCODEv44_Gene_id2name.csv")
    ncbi_tsv = args.shared / "annotations/hs_gene_map_entrez_symbol_ensembl.tsv.gz"
    links = read_ncbi(ncbi_tsv, gencode)
    symbols = read_symbols(ncbi_tsv)
    with tempfile.TemporaryDirectory() as tmp:
        orgdb = args.orgdb or fetch_orgdb(tmp)
        alias_ens = aliases_to_ensembl(read_aliases(orgdb, symbols), links, gencode, symbols)
    ncbi, aliases = {}, {}
    for _, symbol, gene_type, ens in links:
        ncbi.setdefault(ens, {})[symbol] = gene_type
    for alias, ens in alias_ens.items():
        aliases.setdefault(ens, []).append(alias)
    text = io.StringIO()
    text.write(HEADER)
    n = 0
    for r in rows(gencode, ncbi, aliases):
        text.write("\t".join(r) + "\n")
        n += 1
    OUT.parent.mkdir(parents=True, exist_ok=True)
    # mtime=0 and no stored file name keep the output byte-identical across runs.
    with open(OUT, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz:
        gz.write(text.getvalue().encode())
    print(f"{OUT}: {n} rows, {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
