"""Tiny models, tokenizers and processors built locally, for tests and examples that must run offline."""

import torch

from .modeling.feature_extraction_tamer import TamerFeatureExtractor
from .modeling.modeling_tamer import TamerModel
from .modeling.processing_tamer import TamerProcessor
from .presets import preset_config
from .text import small_text_config, train_report_tokenizer


def tiny_tokenizer(texts=(), vocab_size: int = 300):
    return train_report_tokenizer(texts, vocab_size=vocab_size)


def tiny_config(tokenizer=None, **overrides):
    tokenizer = tokenizer if tokenizer is not None else tiny_tokenizer()
    text_config = small_text_config(tokenizer, hidden_size=32, num_layers=2, num_heads=2, max_positions=128)
    return preset_config("tiny", text_config=text_config.to_dict(), **overrides)


def tiny_model_and_processor(seed: int = 0, texts=(), **overrides):
    """A randomly initialised tiny TamerModel (eval mode) and its matching processor."""
    tokenizer = tiny_tokenizer(texts)
    torch.manual_seed(seed)
    model = TamerModel(tiny_config(tokenizer, **overrides)).eval()
    processor = TamerProcessor(TamerFeatureExtractor(), tokenizer, max_text_length=64)
    return model, processor


# Python source run in a child process to prove that a checkpoint needs no tamer_hf: it makes `import tamer_hf` fail.
BLOCK_TAMER_HF = '''
import sys

class _BlockTamerHF:
    def find_spec(self, name, path=None, target=None):
        if name == "tamer_hf" or name.startswith("tamer_hf."):
            raise ImportError("tamer_hf is blocked in this process")

sys.meta_path.insert(0, _BlockTamerHF())
'''


def make_hub_cache(hf_home, folder, repo_id: str = "org/tamer-ecg",
                   commit: str = "0123456789abcdef0123456789abcdef01234567"):
    """Lay out `folder` as a Hub download of `repo_id` under `hf_home` (what `from_pretrained(repo_id)` reads with
    HF_HUB_OFFLINE=1): hub/models--org--name/refs/main + snapshots/<commit>/<files>."""
    from pathlib import Path

    repo = Path(hf_home) / "hub" / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    for file in Path(folder).iterdir():
        if file.is_file():
            (snapshot / file.name).write_bytes(file.read_bytes())
    return snapshot


def tiny_cmelt_model_and_processor(seed: int = 0, texts=(), tokenizer=None, **overrides):
    """A randomly initialised `cmelt-tiny` CmeltModel (eval mode) with a local T5 tokenizer and its processor.

    `tokenizer`: reuse one (Unigram training is not bit-reproducible from run to run); else one is trained on `texts`.
    """
    from .families.cmelt import MODEL_PRESETS, make_processor
    from .modeling.configuration_cmelt import CmeltConfig
    from .modeling.modeling_cmelt import CmeltModel
    from .text import small_t5_config, train_t5_tokenizer

    tokenizer = tokenizer if tokenizer is not None else train_t5_tokenizer(texts, vocab_size=300)
    text_config = small_t5_config(tokenizer, d_model=32, num_layers=1, num_heads=2)
    torch.manual_seed(seed)
    config = CmeltConfig(text_config=text_config.to_dict(), **{**MODEL_PRESETS["cmelt-tiny"], **overrides})
    return CmeltModel(config).eval(), make_processor(tokenizer, max_text_length=64)


def tiny_cgdmer_model_and_processor(seed: int = 0, texts=(), tokenizer=None, **overrides):
    """A randomly initialised `cgdmer-tiny` CgdmerModel (eval mode) with a local WordPiece tokenizer and its processor.

    `tokenizer`: reuse one (WordPiece training is not bit-reproducible from run to run); else one is trained on `texts`.
    """
    from .families.cgdmer import MODEL_PRESETS, local_text_config, make_processor
    from .modeling.configuration_cgdmer import CgdmerConfig
    from .modeling.modeling_cgdmer import CgdmerModel

    tokenizer = tokenizer if tokenizer is not None else train_report_tokenizer(texts, vocab_size=300)
    text_config = local_text_config(tokenizer, "tiny", max_text_length=64)
    torch.manual_seed(seed)
    fields = {"mlm_mask_token_id": tokenizer.mask_token_id, **MODEL_PRESETS["cgdmer-tiny"], **overrides}
    config = CgdmerConfig(text_config=text_config.to_dict(), **fields)
    return CgdmerModel(config).eval(), make_processor(tokenizer, max_text_length=64)
