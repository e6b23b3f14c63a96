"""The four real datasets of ``data.root`` (see ../shared/data/README.md), with fixed, documented splits.

=================== ============== =========================================================
name                task type      splits
=================== ============== =========================================================
``ud_ewt_pos``      labelling      dev + test files pooled (4,078 sentences), split by hash
                                   of the sentence text: 3,264 / 416 / 398
``sst2``            classification train / dev / test files as given: 67,349 / 872 / 1,821
``sick``            pair           split by hash of the sentence pair: 7,970 / 1,012 / 945
``multi30k_de_en``  generation     train / val / test_2016_flickr, German to English:
                                   29,000 / 1,014 / 1,000
=================== ============== =========================================================

Hash split (``split_of``): a row's key (UD: its FORMs joined by single spaces; SICK:
``sentence_A + TAB + sentence_B``) goes to bucket ``int(sha256(key).hexdigest(), 16) % 10``:
buckets 0-7 train, 8 validation, 9 test. The rule needs no seed, does not depend on file
order, and keeps identical rows (85 repeated SICK pairs, short UD sentences such as
"Thank you .") in one split, so no evaluation row is also a training row. Rows keep their
file order within a split. SST-2 labels 0/1 become negative/positive, the names the HF hub
copy (``nyu-mll/glue``, ``sst2``) uses.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from datasets import Dataset, DatasetDict, concatenate_datasets

from bench.data import DataError
from bench.data.readers import dataset_dict, read_conllu, read_pair, read_parallel, read_table

REAL_DATASETS = {
    "ud_ewt_pos": "labelling",
    "sst2": "classification",
    "sick": "pair",
    "multi30k_de_en": "generation",
}
FILES = {
    "ud_ewt_pos": ["en_ewt-ud-dev.conllu.gz", "en_ewt-ud-test.conllu.gz"],
    "sst2": ["train.tsv.gz", "dev.tsv.gz", "test.tsv.gz"],
    "sick": ["SICK.txt.gz"],
    "multi30k_de_en": [f"{split}.{lang}.gz" for split in ("train", "val", "test_2016_flickr") for lang in ("de", "en")],
}
SST2_LABELS = {"0": "negative", "1": "positive"}
SETTING = "data.root"


def split_of(key: str) -> str:
    """The split of a row whose key is ``key``: sha256 bucket 0-7 train, 8 validation, 9 test."""
    bucket = int(hashlib.sha256(key.encode("utf-8")).hexdigest(), 16) % 10
    return "train" if bucket < 8 else "validation" if bucket == 8 else "test"


def hash_split(rows: Dataset, keys: list[str]) -> dict[str, Dataset]:
    """``rows`` divided by ``split_of`` of each row's key, file order kept within each split."""
    chosen = {"train": [], "validation": [], "test": []}
    for index, key in enumerate(keys):
        chosen[split_of(key)].append(index)
    return {split: rows.select(indices) for split, indices in chosen.items()}


def load_real(name: str, root: str | Path) -> DatasetDict:
    """The real dataset ``name`` from the folder ``root`` (``data.root``), as train/validation/test."""
    if name not in REAL_DATASETS:
        raise DataError(f"{name!r} is not a real dataset; choose one of {', '.join(REAL_DATASETS)}.")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(
            f"{SETTING}={root} is not a folder; point it at the folder that holds {', '.join(REAL_DATASETS)}."
        )
    folder = root / name
    for file in FILES[name]:
        if not (folder / file).is_file():
            raise DataError(f"{SETTING}={root} lacks the file {name}/{file} (looked for {folder / file}).")
    source = f"{name} in {SETTING}={root}"
    if name == "ud_ewt_pos":
        pooled = concatenate_datasets([read_conllu(folder / file, setting=SETTING) for file in FILES[name]])
        splits = hash_split(pooled, [" ".join(tokens) for tokens in pooled["tokens"]])
    elif name == "sst2":
        files = {"train": "train.tsv.gz", "validation": "dev.tsv.gz", "test": "test.tsv.gz"}
        # by position: the text column is "sentence" in train but "content" in dev and test
        splits = {
            split: read_table(folder / file, {"text": 1, "label": 0}, label_map=SST2_LABELS, setting=SETTING)
            for split, file in files.items()
        }
    elif name == "sick":
        rows = read_pair(folder / "SICK.txt.gz", "sentence_A", "sentence_B", "entailment_judgment", setting=SETTING)
        splits = hash_split(rows, [f"{a}\t{b}" for a, b in zip(rows["text_a"], rows["text_b"], strict=True)])
    else:
        files = {"train": "train", "validation": "val", "test": "test_2016_flickr"}
        splits = {
            split: read_parallel(folder / f"{stem}.de.gz", folder / f"{stem}.en.gz", setting=SETTING)
            for split, stem in files.items()
        }
    return dataset_dict(splits, REAL_DATASETS[name], source)
