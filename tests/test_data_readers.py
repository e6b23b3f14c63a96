"""Local-file readers, the HF hub path (on parquet files) and the real datasets of data.root."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before datasets is imported: tests never reach the hub

import gzip
import logging
import shutil
from collections import Counter
from pathlib import Path

import pytest
from datasets import ClassLabel, Dataset, Features, Value

from bench.data import SPLITS, DataError
from bench.data.hub import PRESETS, load_hub, load_preset
from bench.data.readers import (
    read_conll,
    read_conllu,
    read_pair,
    read_parallel,
    read_splits,
    read_table,
    unseen_labels,
)
from bench.data.real import load_real, split_of

FIXTURES = Path(__file__).parent / "fixtures" / "data"
DATA_ROOT = Path(os.environ.get("FXBENCH_DATA_ROOT", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


def write(path: Path, text: str) -> Path:
    path.write_bytes(gzip.compress(text.encode()) if path.suffix == ".gz" else text.encode())
    return path


def tsv(path: Path, rows: list[str]) -> Path:
    return write(path, "".join(row + "\n" for row in rows))


# -- CoNLL-U and CoNLL-2003 --------------------------------------------------------------------


def test_conllu_reads_forms_and_upos_skipping_comments_multiword_tokens_and_empty_nodes():
    data = read_conllu(FIXTURES / "tiny.conllu")
    assert data["tokens"] == [["I", "can", "not", "go", "."], ["Dogs", "bark", "and", "cats"]]
    assert data["tags"] == [["PRON", "AUX", "PART", "VERB", "PUNCT"], ["NOUN", "VERB", "CCONJ", "NOUN"]]


def test_conllu_reads_xpos_when_asked():
    assert read_conllu(FIXTURES / "tiny.conllu", tag_column="xpos")["tags"][1] == ["NNS", "VBP", "CC", "NNS"]


def test_gzipped_file_reads_like_the_plain_one(tmp_path):
    gz = write(tmp_path / "tiny.conllu.gz", (FIXTURES / "tiny.conllu").read_text())
    assert read_conllu(gz).to_dict() == read_conllu(FIXTURES / "tiny.conllu").to_dict()


def test_conllu_wrong_column_count_names_file_and_line(tmp_path):
    path = write(tmp_path / "bad.conllu", "# sent_id = 1\n1\tA\ta\tDET\tDT\t_\t0\troot\t_\t_\n2\tb\tb\tNOUN\n\n")
    with pytest.raises(DataError, match=r"bad\.conllu:3: expected 10 .* found 4"):
        read_conllu(path)


def test_conllu_token_without_tag_names_file_and_line(tmp_path):
    path = write(tmp_path / "bad.conllu", "1\tA\ta\tDET\tDT\t_\t0\troot\t_\t_\n2\tdog\tdog\t_\tNN\t_\t1\tdep\t_\t_\n\n")
    with pytest.raises(DataError, match=r"bad\.conllu:2: the token 'dog' has no UPOS tag"):
        read_conllu(path)


def test_conllu_sentence_without_tokens_is_an_error(tmp_path):
    path = write(tmp_path / "bad.conllu", "1\tA\ta\tDET\tDT\t_\t0\troot\t_\t_\n\n# sent_id = 2\n# text = \n\n")
    with pytest.raises(DataError, match=r"bad\.conllu:3 starts an empty sentence"):
        read_conllu(path)


def test_conll2003_skips_docstart_and_splits_sentences_on_blank_lines():
    data = read_conll(FIXTURES / "tiny.conll")
    assert data["tokens"] == [["EU", "rejects", "German"], ["Peter", "Blackburn"]]
    assert data["tags"] == [["B-ORG", "O", "B-MISC"], ["B-PER", "I-PER"]]
    assert read_conll(FIXTURES / "tiny.conll", tag_column=1)["tags"][0] == ["NNP", "VBZ", "JJ"]


def test_conll2003_wrong_column_count_names_file_and_line(tmp_path):
    path = write(tmp_path / "bad.conll", "EU NNP B-ORG\nrejects O\n\n")
    with pytest.raises(DataError, match=r"bad\.conll:2: expected 3 columns .* found 2"):
        read_conll(path)


def test_conll2003_missing_tag_column_is_an_error(tmp_path):
    with pytest.raises(DataError, match=r"tiny\.conll:3 has 4 columns, so there is no tag column 5"):
        read_conll(FIXTURES / "tiny.conll", tag_column=5)


# -- TSV, CSV, JSON lines ----------------------------------------------------------------------


def test_tsv_columns_by_name_or_position_give_the_same_stripped_rows():
    by_name = read_table(FIXTURES / "tiny_sst.tsv", {"text": "sentence", "label": "label"})
    by_position = read_table(FIXTURES / "tiny_sst.tsv", {"text": 1, "label": 0})
    assert by_name.to_dict() == by_position.to_dict()
    assert by_name["text"] == ["a gripping , funny film", "dull and lifeless", "warm"]
    assert by_name["label"] == ["1", "0", "1"]


def test_crlf_gzipped_tsv_with_another_header_reads_by_position(tmp_path):
    # SST-2's train file: CRLF endings and "sentence" where dev and test say "content"
    path = write(tmp_path / "train.tsv.gz", "label\tsentence\r\n0\thide new secretions \r\n1\tfunny\r\n")
    data = read_table(path, {"text": 1, "label": 0}, label_map={"0": "negative", "1": "positive"})
    assert data.to_dict() == {"text": ["hide new secretions", "funny"], "label": ["negative", "positive"]}


def test_byte_order_mark_does_not_hide_the_first_header_name(tmp_path):
    path = write(tmp_path / "bom.csv", "\ufefflabel,text\npos,fine\n")
    assert read_table(path, {"text": "text", "label": "label"})["label"] == ["pos"]


def test_csv_pair_keeps_quoted_commas():
    data = read_pair(FIXTURES / "tiny_pair.csv", "premise", "hypothesis", "label")
    assert data[0] == {"text_a": "A man, smiling, waves.", "text_b": "A man waves.", "label": "entailment"}
    assert data["text_b"][1] == "The dog runs, fast."


def test_jsonl_reads_fields_by_name_and_skips_blank_lines():
    data = read_table(FIXTURES / "tiny.jsonl", {"text": "text", "label": "label"})
    assert data.to_dict() == {"text": ["great movie", "bad plot", "fine"], "label": ["pos", "neg", "pos"]}
    with pytest.raises(DataError, match="give column names, not positions"):
        read_table(FIXTURES / "tiny.jsonl", {"text": 0, "label": 1})


def test_table_without_header_reads_by_position_and_rejects_names(tmp_path):
    path = tsv(tmp_path / "plain.tsv", ["good film\tpos", "bad film\tneg"])
    assert read_table(path, {"text": 0, "label": 1}, header=False)["label"] == ["pos", "neg"]
    with pytest.raises(DataError, match="no header, so columns must be positions"):
        read_table(path, {"text": "text", "label": 1}, header=False)


def test_table_wrong_column_count_names_file_and_line(tmp_path):
    path = tsv(tmp_path / "bad.tsv", ["label\tsentence", "1\tfine", "0\tbad\textra"])
    with pytest.raises(DataError, match=r"bad\.tsv:3: expected 2 columns, found 3"):
        read_table(path, {"text": 1, "label": 0})


def test_missing_label_column_names_the_header(tmp_path):
    path = tsv(tmp_path / "bad.tsv", ["sentence\tscore", "fine\t1"])
    with pytest.raises(DataError, match=r"bad\.tsv:1 has no column 'label' .* it has sentence, score"):
        read_table(path, {"text": "sentence", "label": "label"})
    with pytest.raises(DataError, match=r"bad\.tsv:1 has 2 columns, so there is no column 2 for label"):
        read_table(path, {"text": 0, "label": 2})


def test_empty_text_or_label_names_file_and_line(tmp_path):
    path = tsv(tmp_path / "bad.tsv", ["label\tsentence", "1\tfine", "0\t   "])
    with pytest.raises(DataError, match=r"bad\.tsv:3: the text column \(1\) is empty"):
        read_table(path, {"text": 1, "label": 0})
    path = write(tmp_path / "bad.jsonl", '{"text": "ok", "label": 1}\n{"text": "no label"}\n')
    with pytest.raises(DataError, match=r"bad\.jsonl:2 has no field 'label'"):
        read_table(path, {"text": "text", "label": "label"})


def test_missing_file_names_the_path_and_the_setting(tmp_path):
    with pytest.raises(DataError, match=r"nope\.tsv \(set by data\.files\.train\) does not exist"):
        read_splits({"train": tmp_path / "nope.tsv"}, "tsv", setting="data.files", columns={"text": 0, "label": 1})


def test_not_gzip_despite_the_name_is_a_data_error(tmp_path):
    path = write(tmp_path / "x.tsv", "label\ttext\n")
    with pytest.raises(DataError, match="cannot be read"):
        read_table(path.rename(tmp_path / "x.tsv.gz"), {"text": 1, "label": 0})


# -- parallel text -----------------------------------------------------------------------------


def test_parallel_files_pair_lines():
    data = read_parallel(FIXTURES / "tiny.de", FIXTURES / "tiny.en")
    assert data[1] == {"source": "Zwei Kinder spielen.", "target": "Two children play."}
    assert len(data) == 3


def test_parallel_line_count_mismatch_names_both_files_and_counts(tmp_path):
    short = write(tmp_path / "short.en.gz", "A dog runs.\nTwo children play.\n")
    with pytest.raises(DataError, match=r"tiny\.de has 3 lines but .*short\.en\.gz has 2"):
        read_parallel(FIXTURES / "tiny.de", short)


def test_parallel_empty_line_names_file_and_line(tmp_path):
    gap = write(tmp_path / "gap.en", "A dog runs.\n \nA woman reads.\n")
    with pytest.raises(DataError, match=r"gap\.en:2 is empty"):
        read_parallel(FIXTURES / "tiny.de", gap)


# -- splits ------------------------------------------------------------------------------------


def test_an_empty_split_names_its_file_and_setting(tmp_path):
    empty = tsv(tmp_path / "empty.tsv", ["label\tsentence"])
    files = {"train": FIXTURES / "tiny_sst.tsv", "validation": FIXTURES / "tiny_sst.tsv", "test": empty}
    with pytest.raises(DataError, match=r"empty.tsv \(set by data.files.test\) holds only its header row"):
        read_splits(files, "tsv", setting="data.files", columns={"text": 1, "label": 0})
    (tmp_path / "blank.conllu").write_text("")
    files = {
        "train": FIXTURES / "tiny.conllu",
        "validation": FIXTURES / "tiny.conllu",
        "test": tmp_path / "blank.conllu",
    }
    with pytest.raises(DataError, match=r"blank.conllu \(set by data.files.test\) holds no examples"):
        read_splits(files, "conllu", setting="data.files")


def test_split_missing_from_the_files_is_an_error():
    with pytest.raises(DataError, match="has no validation split"):
        read_splits({"train": FIXTURES / "tiny.conll", "test": FIXTURES / "tiny.conll"}, "conll", source="ner")


def test_labels_unseen_in_train_are_reported_with_counts_and_kept(tmp_path, caplog):
    train = tsv(tmp_path / "train.tsv", ["label\ttext", "pos\tgood", "neg\tbad"])
    dev = tsv(tmp_path / "dev.tsv", ["label\ttext", "pos\tfine", "mixed\tso so", "mixed\tmeh"])
    test = tsv(tmp_path / "test.tsv", ["label\ttext", "neg\tawful"])
    with caplog.at_level(logging.WARNING, logger="bench.data"):
        data = read_splits(
            {"train": train, "validation": dev, "test": test}, "tsv", source="toy", columns={"text": 1, "label": 0}
        )
    assert unseen_labels(data, "classification") == {"validation": Counter({"mixed": 2})}
    assert "the validation split of toy has labels the train split never holds: mixed (2)" in caplog.text
    assert data["validation"]["label"] == ["pos", "mixed", "mixed"]


def test_tags_unseen_in_train_are_reported_for_labelling(tmp_path):
    other = write(tmp_path / "other.conll", "Paris NNP B-LOC\n\n")
    data = read_splits({"train": FIXTURES / "tiny.conll", "validation": other, "test": other}, "conll")
    assert unseen_labels(data, "labelling") == {"validation": Counter({"B-LOC": 1}), "test": Counter({"B-LOC": 1})}


def test_read_splits_reads_parallel_pairs_into_the_contract():
    pair = (FIXTURES / "tiny.de", FIXTURES / "tiny.en")
    data = read_splits(dict.fromkeys(SPLITS, pair), "parallel")
    assert list(data) == list(SPLITS) and data["test"].column_names == ["source", "target"]


# -- the HF hub path, on parquet files with the hub's layout -----------------------------------


def parquet(path: Path, columns: dict, features: Features) -> str:
    Dataset.from_dict(columns, features=features).to_parquet(path)
    return str(path)


SST2_FEATURES = Features(
    {"sentence": Value("string"), "label": ClassLabel(names=["negative", "positive"]), "idx": Value("int32")}
)


def glue_sst2_files(tmp_path: Path, order=range(20)) -> dict[str, str]:
    rows = {
        "train": {"sentence": [f"train {i}" for i in order], "label": [i % 2 for i in order], "idx": list(order)},
        "validation": {"sentence": ["dev a", "dev b", "dev c"], "label": [0, 1, 1], "idx": [0, 1, 2]},
        "test": {"sentence": ["test a", "test b"], "label": [-1, -1], "idx": [0, 1]},  # hidden labels, as on the hub
    }
    return {split: parquet(tmp_path / f"{split}.parquet", columns, SST2_FEATURES) for split, columns in rows.items()}


def test_hub_glue_sst2_maps_classlabels_and_carves_validation_out_of_train(tmp_path):
    files = glue_sst2_files(tmp_path)
    data = load_preset(
        "glue_sst2",
        path="parquet",
        name=None,
        data_files=files,
        cache_dir=str(tmp_path / "hf"),
        carve={"split": "validation", "from": "train", "size": 5},
    )
    assert {split: len(data[split]) for split in SPLITS} == {"train": 15, "validation": 5, "test": 3}
    assert data["test"]["label"] == ["negative", "positive", "positive"]
    assert not set(data["train"]["text"]) & set(data["validation"]["text"])
    # the carved rows depend on content, not on row order
    (tmp_path / "shuffled").mkdir()
    order = [7, 3, 19, 0, 12, 5, 1, 18, 9, 2, 14, 6, 11, 4, 17, 8, 16, 10, 15, 13]
    shuffled = glue_sst2_files(tmp_path / "shuffled", order)
    again = load_preset(
        "glue_sst2",
        path="parquet",
        name=None,
        data_files=shuffled,
        cache_dir=str(tmp_path / "hf"),
        carve={"split": "validation", "from": "train", "size": 5},
    )
    assert sorted(again["validation"]["text"]) == sorted(data["validation"]["text"])


def test_hub_split_of_only_unlabelled_rows_says_to_carve(tmp_path):
    files = glue_sst2_files(tmp_path)
    with pytest.raises(DataError, match=r"the test split of parquet \(hub split 'test'\) is empty: all its 2 rows"):
        load_hub(
            "parquet",
            None,
            {"text": "sentence", "label": "label"},
            {s: s for s in SPLITS},
            "classification",
            data_files=files,
            cache_dir=str(tmp_path / "hf"),
        )


def test_hub_snli_drops_rows_without_gold_label(tmp_path):
    features = Features(
        {
            "premise": Value("string"),
            "hypothesis": Value("string"),
            "label": ClassLabel(names=["entailment", "neutral", "contradiction"]),
        }
    )
    columns = {"premise": ["p1", "p2", "p3"], "hypothesis": ["h1", "h2", "h3"], "label": [0, -1, 2]}
    files = {split: parquet(tmp_path / f"{split}.parquet", columns, features) for split in SPLITS}
    data = load_preset("snli", path="parquet", data_files=files, cache_dir=str(tmp_path / "hf"))
    assert data["test"].to_dict() == {
        "text_a": ["p1", "p3"],
        "text_b": ["h1", "h3"],
        "label": ["entailment", "contradiction"],
    }


def test_hub_wmt16_reads_source_and_target_from_the_translation_column(tmp_path):
    features = Features({"translation": {"en": Value("string"), "ro": Value("string")}})
    columns = {"translation": [{"en": "Hello.", "ro": "Salut."}, {"en": "Thanks.", "ro": "Mersi."}]}
    files = {split: parquet(tmp_path / f"{split}.parquet", columns, features) for split in SPLITS}
    data = load_preset("wmt16_ro_en", path="parquet", name=None, data_files=files, cache_dir=str(tmp_path / "hf"))
    assert data["validation"][0] == {"source": "Salut.", "target": "Hello."}
    with pytest.raises(DataError, match="the column 'translation' has no field 'de'; it has en, ro"):
        load_preset(
            "wmt16_ro_en",
            path="parquet",
            name=None,
            data_files=files,
            cache_dir=str(tmp_path / "hf"),
            column_map={"source": "translation.de", "target": "translation.en"},
        )


def test_hub_missing_column_or_split_is_a_data_error(tmp_path):
    files = glue_sst2_files(tmp_path)
    with pytest.raises(DataError, match="has no column 'text'; it has sentence, label, idx"):
        load_hub(
            "parquet",
            None,
            {"text": "text", "label": "label"},
            {"train": "train"},
            "classification",
            data_files=files,
            cache_dir=str(tmp_path / "hf"),
        )
    with pytest.raises(DataError, match="has no split 'dev' for validation; it has train, validation, test"):
        load_hub(
            "parquet",
            None,
            {"text": "sentence", "label": "label"},
            {"validation": "dev"},
            "classification",
            data_files=files,
            cache_dir=str(tmp_path / "hf"),
        )


def test_hub_id_that_cannot_be_reached_is_a_data_error(tmp_path):
    from huggingface_hub import constants

    if not constants.HF_HUB_OFFLINE:
        pytest.skip("HF_HUB_OFFLINE was not set before huggingface_hub was imported; not calling the hub")
    with pytest.raises(DataError, match="stanfordnlp/snli cannot be loaded"):
        load_preset("snli", cache_dir=str(tmp_path / "hf"))


def test_presets_name_a_hub_id_and_every_contract_split():
    for preset in PRESETS.values():
        assert "/" in preset["path"]
        assert set(preset["splits"]) | {preset.get("carve", {}).get("split")} >= set(SPLITS)


# -- the real datasets (skipped without data.root) ---------------------------------------------


@pytest.fixture(scope="module")
def real_root() -> Path:
    if not DATA_ROOT.is_dir():
        pytest.skip(f"no real data at {DATA_ROOT} (set FXBENCH_DATA_ROOT)")
    return DATA_ROOT


@pytest.fixture(scope="module")
def real(real_root):
    cache = {}

    def load(name):
        if name not in cache:
            cache[name] = load_real(name, real_root)
        return cache[name]

    return load


@pytest.mark.parametrize(
    "name, sizes",
    [
        ("ud_ewt_pos", (3264, 416, 398)),  # 2,001 + 2,077 sentences pooled
        ("sst2", (67349, 872, 1821)),
        ("sick", (7970, 1012, 945)),  # 9,927 pairs
        ("multi30k_de_en", (29000, 1014, 1000)),
    ],
)
def test_real_split_sizes(real, name, sizes):
    assert tuple(len(real(name)[split]) for split in SPLITS) == sizes


def test_real_label_sets(real):
    tags = {split: {t for tags in real("ud_ewt_pos")[split]["tags"] for t in tags} for split in SPLITS}
    assert len(tags["train"]) == 17 and tags["validation"] <= tags["train"] and tags["test"] <= tags["train"]
    sst2 = {split: set(real("sst2")[split]["label"]) for split in SPLITS}
    assert sst2 == {split: {"negative", "positive"} for split in SPLITS}
    assert Counter(label for split in SPLITS for label in real("sick")[split]["label"]) == {
        "NEUTRAL": 5611,
        "ENTAILMENT": 2857,
        "CONTRADICTION": 1459,
    }


def rows(data, split) -> set:
    return {tuple(tuple(v) if isinstance(v, list) else v for v in row.values()) for row in data[split]}


@pytest.mark.parametrize("name", ["ud_ewt_pos", "sick", "multi30k_de_en"])
def test_real_splits_do_not_overlap(real, name):
    train, validation, test = (rows(real(name), split) for split in SPLITS)
    assert not train & validation and not train & test and not validation & test


def test_real_sst2_given_splits_overlap_only_as_distributed(real):
    texts = {split: set(real("sst2")[split]["text"]) for split in SPLITS}
    assert not texts["validation"] & texts["test"] and not texts["train"] & texts["validation"]
    assert len(texts["train"] & texts["test"]) == 1  # one test sentence is also a train phrase in GLUE's files


def test_real_ud_split_partitions_the_pooled_files(real, real_root):
    pooled = [read_conllu(real_root / "ud_ewt_pos" / f"en_ewt-ud-{part}.conllu.gz") for part in ("dev", "test")]
    expected = Counter(tuple(tokens) for part in pooled for tokens in part["tokens"])
    assert Counter(tuple(t) for split in SPLITS for t in real("ud_ewt_pos")[split]["tokens"]) == expected
    assert all(split_of(" ".join(t)) == "test" for t in real("ud_ewt_pos")["test"]["tokens"])


def test_real_missing_root_names_the_setting(tmp_path):
    with pytest.raises(DataError, match=r"data\.root=.*nowhere is not a folder"):
        load_real("sst2", tmp_path / "nowhere")


def test_real_missing_file_names_the_setting_and_the_path(tmp_path):
    (tmp_path / "sst2").mkdir()
    shutil.copy(FIXTURES / "tiny_sst.tsv", tmp_path / "sst2" / "train.tsv.gz")
    with pytest.raises(DataError, match=r"data\.root=.* lacks the file sst2/dev\.tsv\.gz"):
        load_real("sst2", tmp_path)


def test_unknown_real_name_lists_the_choices(tmp_path):
    with pytest.raises(DataError, match="choose one of ud_ewt_pos, sst2, sick, multi30k_de_en"):
        load_real("imdb", tmp_path)
