"""N3S: nearest-neighbour negative sampling (C-MELT, Pham et al. 2024), independent of the model family.

C-MELT's ECG-text matching (ETM) head needs mismatched pairs; N3S makes them by swapping the report of about half
of a batch for a report that reads *least* like it, so that negatives are true negatives and not a paraphrase of
the positive. The pieces, in the order the data goes through them:

1. `embed_reports` / `cached_report_embeddings`: every unique report -> a frozen text encoder (paper: the encoder
   of google/flan-t5-small) -> mean of `last_hidden_state` over the report's tokens -> L2-normalised (R, D) float32,
   computed once and kept in an on-disk cache.
2. `NeighbourIndex`: the least cosine-similar reports of any report (FAISS flat index, or an exact chunked matmul).
3. `NegativeSampler`: the per-batch rule. `int(0.5 * B + U[0, 1))` positions are chosen without replacement; each
   chosen report is replaced by one drawn uniformly from the k = 64 least-similar reports of its own report, and
   the pair is marked `is_aligned = 0`.

Report ids everywhere are indices into the table of unique reports (`tamer_hf.training.ReportTable.reports`), so
identical texts share one id.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "faiss", "exact")
MODES = ("n3s", "random")
CACHE_FORMAT = "n3s-report-embeddings-v1"  # bump when the pooling or the key changes meaning
DUPLICATE_COSINE = 1.0 - 1e-6  # candidates at or above this cosine to the positive count as the positive itself
FAISS_MISSING = ("backend='faiss' needs the faiss package: pip install faiss-cpu (or faiss-gpu), "
                 "or use backend='exact' (numpy/torch, exact, fine for small corpora)")


# ----------------------------------------------------------------------------------------------------------------
# report embeddings
# ----------------------------------------------------------------------------------------------------------------
def text_encoder(model: torch.nn.Module) -> torch.nn.Module:
    """The module that maps input_ids to `last_hidden_state`: the encoder of an encoder-decoder model (T5Model,
    T5ForConditionalGeneration), the model itself otherwise (T5EncoderModel, BERT, ...)."""
    config = getattr(model, "config", None)
    if getattr(config, "is_encoder_decoder", False) and hasattr(model, "get_encoder"):
        return model.get_encoder()
    return model


@torch.no_grad()
def embed_reports(reports: Sequence[str], model: torch.nn.Module, tokenizer, batch_size: int = 256,
                  max_length: int = 256, device: str | torch.device | None = None,
                  include_padding: bool = False, progress: bool = False) -> np.ndarray:
    """(R, D) float32, L2-normalised: the mean of the encoder's `last_hidden_state` over each report's tokens.

    `model` is any Hugging Face encoder whose output has `last_hidden_state` (paper: `T5EncoderModel` of
    google/flan-t5-small, D = 512); an encoder-decoder model contributes its encoder. Dropout is off while embedding.

    The mean runs over the attention mask (the report's own tokens, EOS included), which is what the paper means by
    the token mean. C-MELT's released code averages over the batch padding as well, so a report's vector there
    depends on the longest report of its batch; `include_padding=True` reproduces that (reports are then embedded in
    the given order, as there). With the default, reports are batched by length, which changes nothing but speed.
    """
    if len(reports) == 0:
        raise ValueError("embed_reports needs at least one report")
    encoder = text_encoder(model)
    device = torch.device(device) if device is not None else next(encoder.parameters()).device
    order = np.arange(len(reports)) if include_padding else np.argsort([len(r) for r in reports], kind="stable")
    was_training = encoder.training
    encoder.eval()
    embeddings = None
    try:
        starts = range(0, len(reports), batch_size)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc="embedding reports", unit="batch")
        for start in starts:
            rows = order[start:start + batch_size]
            tokens = tokenizer([reports[i] for i in rows], padding=True, truncation=True, max_length=max_length,
                               return_tensors="pt")
            input_ids = tokens["input_ids"].to(device)  # (b, L)
            mask = tokens["attention_mask"].to(device)  # (b, L)
            hidden = encoder(input_ids=input_ids, attention_mask=mask).last_hidden_state.float()  # (b, L, D)
            if include_padding:
                pooled = hidden.mean(dim=1)  # (b, D)
            else:
                weights = mask.unsqueeze(-1).to(hidden.dtype)  # (b, L, 1)
                pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)  # (b, D)
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
            if embeddings is None:
                embeddings = np.empty((len(reports), pooled.shape[1]), dtype=np.float32)  # (R, D)
            embeddings[rows] = pooled.cpu().numpy()
    finally:
        encoder.train(was_training)
    return embeddings


# ----------------------------------------------------------------------------------------------------------------
# on-disk cache
# ----------------------------------------------------------------------------------------------------------------
def _hash_reports(digest, reports: Sequence[str]) -> None:
    digest.update(len(reports).to_bytes(8, "little"))
    for report in reports:
        data = str(report).encode("utf-8")
        digest.update(len(data).to_bytes(8, "little"))  # length-prefixed: no separator can be forged by a report
        digest.update(data)


def _hash_encoder(digest, encoder: torch.nn.Module, config) -> None:
    """Class + config (without its path and version fields) + every weight and buffer, byte for byte."""
    digest.update(type(encoder).__qualname__.encode())
    if config is not None:
        fields = {key: value for key, value in config.to_dict().items()
                  if key not in ("_name_or_path", "transformers_version", "architectures")}
        digest.update(json.dumps(fields, sort_keys=True, default=str).encode())
    for name, tensor in sorted(encoder.state_dict().items()):
        flat = tensor.detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"{name}:{flat.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(flat.view(torch.uint8).numpy().data)  # bf16 has no numpy dtype; its bytes do


def _hash_tokenizer(digest, tokenizer) -> None:
    digest.update(type(tokenizer).__qualname__.encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:  # a fast tokenizer: its serialisation (model, normaliser, post-processor), without the
        # padding/truncation state, which every call with padding=True or max_length rewrites
        fields = json.loads(backend.to_str())
        fields.pop("padding", None)
        fields.pop("truncation", None)
        digest.update(json.dumps(fields, sort_keys=True).encode())
    else:
        digest.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())


def report_embeddings_key(reports: Sequence[str], model: torch.nn.Module, tokenizer, max_length: int,
                          include_padding: bool, batch_size: int) -> str:
    """sha256 of everything the embeddings depend on: the reports in order, the encoder (class, config, weights),
    the tokenizer, max_length and the pooling (with padding included, the batch size changes the result too)."""
    digest = hashlib.sha256(CACHE_FORMAT.encode())
    _hash_reports(digest, reports)
    _hash_encoder(digest, text_encoder(model), getattr(model, "config", None))
    _hash_tokenizer(digest, tokenizer)
    pooling = f"mean-with-padding:batch={batch_size}" if include_padding else "mean-over-mask"
    digest.update(f"max_length={max_length};pooling={pooling}".encode())
    return digest.hexdigest()


def _save_atomically(path: Path, array: np.ndarray) -> None:
    """Write to a temporary file in the same folder, then rename: a reader never sees a half-written cache."""
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            np.save(file, array)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def _read_cache(path: Path, num_reports: int) -> np.ndarray | None:
    """The cached (R, D) float32 array, or None when there is none or it is unusable (then it is recomputed)."""
    if not path.exists():
        return None
    try:
        embeddings = np.load(path)
    except (OSError, ValueError, EOFError) as error:  # e.g. truncated by a full disk, or written by other code
        logger.warning("N3S cache %s is unreadable (%s): recomputing", path, error)
        return None
    if embeddings.ndim != 2 or embeddings.shape[0] != num_reports or embeddings.dtype != np.float32:
        logger.warning("N3S cache %s holds %s %s, expected %d float32 rows: recomputing", path, embeddings.shape,
                       embeddings.dtype, num_reports)
        return None
    logger.info("N3S report embeddings read from %s", path)
    return embeddings


def load_text_encoder(name_or_path: str) -> tuple[torch.nn.Module, object]:
    """Encoder + tokenizer from the Hub or a folder. A family with an encoder-only class (T5Config -> T5EncoderModel,
    also MT5, UMT5) loads only the encoder weights, whatever the checkpoint's head (google/flan-t5-small is a
    T5ForConditionalGeneration); others load through `AutoModel`."""
    import transformers
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    config = AutoConfig.from_pretrained(name_or_path)
    encoder_class = getattr(transformers, type(config).__name__.replace("Config", "EncoderModel"), None)
    if encoder_class is not None:
        return encoder_class.from_pretrained(name_or_path), tokenizer
    return AutoModel.from_pretrained(name_or_path), tokenizer


def cached_report_embeddings(reports: Sequence[str], encoder: str | torch.nn.Module, cache_dir: str | os.PathLike,
                             tokenizer=None, batch_size: int = 256, max_length: int = 256,
                             device: str | torch.device | None = None, include_padding: bool = False,
                             progress: bool = False) -> np.ndarray:
    """`embed_reports`, computed once per (reports, encoder weights, tokenizer, max_length, pooling) and then read
    from `cache_dir/n3s_embeddings_<sha256>.npy`.

    `encoder` is a model (then `tokenizer` is required) or a Hub name / folder (e.g. "google/flan-t5-small", whose
    tokenizer is loaded with it). The model is always loaded and fingerprinted, so a changed checkpoint under the
    same name never returns stale vectors. In a multi-process run, call it on the main process first
    (`accelerator.main_process_first()`): concurrent writers are safe (atomic rename) but would each compute.
    """
    if isinstance(encoder, (str, os.PathLike)):
        model, loaded_tokenizer = load_text_encoder(str(encoder))
        tokenizer = tokenizer if tokenizer is not None else loaded_tokenizer
    elif tokenizer is None:
        raise ValueError("cached_report_embeddings: pass the tokenizer that goes with the encoder model")
    else:
        model = encoder
    key = report_embeddings_key(reports, model, tokenizer, max_length, include_padding, batch_size)
    path = Path(cache_dir) / f"n3s_embeddings_{key}.npy"
    embeddings = _read_cache(path, len(reports))
    if embeddings is not None:
        return embeddings
    embeddings = embed_reports(reports, model, tokenizer, batch_size=batch_size, max_length=max_length,
                               device=device, include_padding=include_padding, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    _save_atomically(path, embeddings)
    logger.info("N3S report embeddings (%d x %d) written to %s", *embeddings.shape, path)
    return embeddings


# ----------------------------------------------------------------------------------------------------------------
# least-similar search
# ----------------------------------------------------------------------------------------------------------------
class Neighbours(NamedTuple):
    ids: np.ndarray  # (Q, k) int64 report ids, least similar first
    similarities: np.ndarray  # (Q, k) float32 cosine to the query report


def _import_faiss():
    try:
        import faiss
    except ImportError as error:
        raise ImportError(FAISS_MISSING) from error
    return faiss


def resolve_backend(backend: str) -> str:
    """"auto" -> "faiss" when faiss imports, else "exact"; "faiss" without faiss raises an ImportError saying how to
    install it."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        try:
            _import_faiss()
        except ImportError:
            return "exact"
        return "faiss"
    if backend == "faiss":
        _import_faiss()
    return backend


class NeighbourIndex:
    """The reports least cosine-similar to a given report, over the (R, D) L2-normalised report embeddings.

    `faiss`: a flat (exact, brute-force) FAISS index searched with the *negated* query, so the best matches are the
    least similar reports. C-MELT's code uses `IndexFlatL2`; for unit vectors ||-q - x||^2 = 2 + 2 q.x, so
    `IndexFlatIP` with -q returns the same ranking and gives the cosine directly. FAISS keeps its own copy of the
    vectors. `exact`: chunked torch matmul + running top-k over a view of the given array (no copy), memory bounded
    by `query_chunk x corpus_chunk` floats; the reference the tests compare FAISS with. With `device` (exact only,
    e.g. "cuda") the vectors are copied there once and every search runs there.
    """

    def __init__(self, embeddings: np.ndarray, backend: str = "auto", corpus_chunk: int = 16384,
                 query_chunk: int = 1024, device: str | torch.device | None = None):
        embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)  # (R, D)
        if embeddings.ndim != 2 or embeddings.shape[0] == 0:
            raise ValueError(f"NeighbourIndex needs an (R, D) array with R >= 1, got shape {embeddings.shape}")
        norms = np.sqrt(np.einsum("ij,ij->i", embeddings, embeddings))  # (R,)
        if not np.allclose(norms, 1.0, atol=1e-3):
            worst = int(np.argmax(np.abs(norms - 1.0)))
            raise ValueError(f"NeighbourIndex needs L2-normalised rows (embed_reports returns them so); row {worst} "
                             f"has norm {norms[worst]:.4g}")
        self.backend = resolve_backend(backend)
        if device is not None and self.backend == "faiss":
            raise ValueError("device= applies to backend='exact' only (this index wraps faiss' CPU IndexFlatIP)")
        self.num_reports, self.dim = embeddings.shape
        self.corpus_chunk, self.query_chunk = corpus_chunk, query_chunk
        if self.backend == "faiss":
            faiss = _import_faiss()
            self._faiss = faiss.IndexFlatIP(self.dim)
            self._faiss.add(embeddings)
            self._vectors = None
        else:
            self._faiss = None
            self._vectors = torch.from_numpy(embeddings).to(device or "cpu")  # (R, D); on CPU a view, no copy

    @property
    def nbytes(self) -> int:
        """Bytes of the vectors the index holds (R x D float32)."""
        return self.num_reports * self.dim * 4

    def vectors(self, ids) -> np.ndarray:
        """(n, D) float32 embeddings of the reports `ids`."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if self._faiss is not None:
            return self._faiss.reconstruct_batch(ids)
        return self._vectors[torch.from_numpy(ids).to(self._vectors.device)].cpu().numpy()

    def least_similar(self, query_ids, k: int) -> Neighbours:
        """For each query report, the min(k, R) reports with the lowest cosine similarity to it, least similar
        first (the query itself is among them only when k >= R, or all others are duplicates of it)."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        query_ids = np.asarray(query_ids, dtype=np.int64).reshape(-1)  # (Q,)
        k = min(k, self.num_reports)
        if len(query_ids) == 0:
            return Neighbours(np.empty((0, k), np.int64), np.empty((0, k), np.float32))
        if self._faiss is not None:
            scores, ids = self._faiss.search(-self.vectors(query_ids), k)  # scores = -cosine, best (largest) first
            return Neighbours(ids.astype(np.int64), -scores)
        query_ids = torch.from_numpy(query_ids).to(self._vectors.device)
        ids, sims = [], []
        for start in range(0, len(query_ids), self.query_chunk):
            block_ids, block_sims = self._exact_block(self._vectors[query_ids[start:start + self.query_chunk]], k)
            ids.append(block_ids.cpu())
            sims.append(block_sims.cpu())
        return Neighbours(torch.cat(ids).numpy(), torch.cat(sims).numpy())

    def _exact_block(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        best_sims = queries.new_empty(len(queries), 0)  # (q, <=k), ascending
        best_ids = torch.empty(len(queries), 0, dtype=torch.long, device=queries.device)
        for start in range(0, self.num_reports, self.corpus_chunk):
            chunk = self._vectors[start:start + self.corpus_chunk]  # (c, D)
            chunk_top = (queries @ chunk.T).topk(min(k, len(chunk)), dim=1, largest=False)  # (q, <=k)
            sims = torch.cat([best_sims, chunk_top.values], dim=1)  # (q, <=2k)
            ids = torch.cat([best_ids, chunk_top.indices + start], dim=1)
            top = sims.topk(min(k, sims.shape[1]), dim=1, largest=False, sorted=True)
            best_sims, best_ids = top.values, ids.gather(1, top.indices)
        return best_ids, best_sims

    def pair_similarities(self, ids_a, ids_b) -> np.ndarray:
        """(n,) cosine between report ids_a[i] and report ids_b[i]."""
        return np.einsum("ij,ij->i", self.vectors(ids_a), self.vectors(ids_b))


# ----------------------------------------------------------------------------------------------------------------
# per-batch negative sampling
# ----------------------------------------------------------------------------------------------------------------
class NegativeSampler:
    """C-MELT's per-batch N3S rule: swap the reports of `int(negative_fraction * B + U[0, 1))` batch positions
    (without replacement; the expectation is exactly `negative_fraction * B`) for mismatched ones.

    `mode="n3s"`: the new report is drawn uniformly from the `k` least cosine-similar reports of the positive's
    report (one batched search over the chosen positions only). `mode="random"` (the "random negatives" ablation):
    uniformly from all other reports. Either way a candidate is never the positive's own id nor an embedding
    duplicate of it (cosine >= `duplicate_cosine`, e.g. texts that differ only after truncation). With R <= k the
    candidates are all other non-duplicate reports; a position with no candidate at all stays aligned (one warning).

    All randomness comes from `generator` (torch's global RNG when None), so the same ids and generator state give
    the same output, and a run that checkpoints that state resumes exactly.
    """

    def __init__(self, index: NeighbourIndex, k: int = 64, negative_fraction: float = 0.5, mode: str = "n3s",
                 duplicate_cosine: float = DUPLICATE_COSINE, max_redraws: int = 8):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if not 0.0 <= negative_fraction <= 1.0:
            raise ValueError(f"negative_fraction must be in [0, 1], got {negative_fraction}")
        self.index, self.k, self.negative_fraction, self.mode = index, k, negative_fraction, mode
        self.duplicate_cosine, self.max_redraws = duplicate_cosine, max_redraws
        self._warned_no_candidate = False

    def num_negatives(self, batch_size: int, generator: torch.Generator | None = None) -> int:
        """int(negative_fraction * B + U[0, 1)): B/2 for an even B at 0.5, floor(B/2) or ceil(B/2) for an odd B."""
        u = torch.rand((), generator=generator, dtype=torch.float64).item()
        return min(batch_size, int(self.negative_fraction * batch_size + u))

    def __call__(self, report_ids, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """report_ids (B,) -> (new report ids (B,) long, is_aligned (B,) long: 1 kept, 0 swapped)."""
        device = report_ids.device if isinstance(report_ids, torch.Tensor) else torch.device("cpu")
        ids = torch.as_tensor(report_ids, dtype=torch.long).cpu().reshape(-1).clone()  # (B,)
        if len(ids) and (int(ids.min()) < 0 or int(ids.max()) >= self.index.num_reports):
            raise ValueError(f"report ids must lie in [0, {self.index.num_reports}), got {ids.min()}..{ids.max()}")
        is_aligned = torch.ones_like(ids)  # (B,)
        count = self.num_negatives(len(ids), generator)
        positions = torch.randperm(len(ids), generator=generator)[:count]  # (n,)
        positives = ids[positions].numpy()  # (n,)
        if self.mode == "n3s":
            negatives = self._least_similar_negatives(positives, generator)
        else:
            negatives = self._random_negatives(positives, generator)
        found = negatives >= 0
        if not found.all():
            self._warn_no_candidate(positives[~found])
        swapped = positions[torch.from_numpy(found)]
        ids[swapped] = torch.from_numpy(negatives[found])
        is_aligned[swapped] = 0
        return ids.to(device), is_aligned.to(device)

    def _least_similar_negatives(self, positives: np.ndarray, generator) -> np.ndarray:
        """(n,) one report per positive from its k least-similar non-duplicates; -1 where there is none."""
        u = torch.rand(len(positives), generator=generator, dtype=torch.float64).numpy()  # (n,) drawn first: fixed use
        if len(positives) == 0:
            return np.empty(0, np.int64)
        unique, inverse = np.unique(positives, return_inverse=True)
        neighbours = self.index.least_similar(unique, self.k)
        candidate_ids = neighbours.ids[inverse]  # (n, k)
        valid = (candidate_ids != positives[:, None]) & (neighbours.similarities[inverse] < self.duplicate_cosine)
        negatives = np.full(len(positives), -1, dtype=np.int64)
        for row in range(len(positives)):
            candidates = candidate_ids[row][valid[row]]
            if len(candidates):
                negatives[row] = candidates[min(int(u[row] * len(candidates)), len(candidates) - 1)]
        return negatives

    def _random_negatives(self, positives: np.ndarray, generator) -> np.ndarray:
        """(n,) a uniformly random other non-duplicate report per positive (rejection, then enumeration); -1 where
        there is none."""
        num_reports = self.index.num_reports
        if num_reports == 1 or len(positives) == 0:
            return np.full(len(positives), -1, dtype=np.int64)
        draws = torch.randint(0, num_reports - 1, (len(positives),), generator=generator).numpy()
        negatives = draws + (draws >= positives)  # skips the positive's own id, still uniform over the others
        for _ in range(self.max_redraws):
            duplicate = self.index.pair_similarities(positives, negatives) >= self.duplicate_cosine
            if not duplicate.any():
                return negatives
            redraw = torch.randint(0, num_reports - 1, (int(duplicate.sum()),), generator=generator).numpy()
            negatives[duplicate] = redraw + (redraw >= positives[duplicate])
        duplicate = self.index.pair_similarities(positives, negatives) >= self.duplicate_cosine
        for row in np.flatnonzero(duplicate):  # rare: most of the corpus duplicates this report; enumerate it
            everything = self.index.least_similar([positives[row]], num_reports)
            keep = (everything.ids[0] != positives[row]) & (everything.similarities[0] < self.duplicate_cosine)
            candidates = np.sort(everything.ids[0][keep])  # sorted: independent of the search's tie order
            pick = torch.randint(0, max(len(candidates), 1), (), generator=generator).item()
            negatives[row] = candidates[pick] if len(candidates) else -1
        return negatives

    def _warn_no_candidate(self, report_ids: np.ndarray) -> None:
        if self._warned_no_candidate:
            return
        self._warned_no_candidate = True
        warnings.warn(f"N3S: report id(s) {sorted(set(report_ids.tolist()))[:10]} have no negative candidate (every "
                      "other report is a duplicate of them, or the corpus has a single distinct report); those pairs "
                      "stay aligned. This warning is shown once per sampler.", stacklevel=3)


# ----------------------------------------------------------------------------------------------------------------
# a local T5 encoder for offline runs, tests and the benchmark
# ----------------------------------------------------------------------------------------------------------------
def local_t5_encoder(texts: Sequence[str] = (), d_model: int = 64, num_layers: int = 2, num_heads: int = 4,
                     seed: int = 0):
    """A randomly initialised `T5EncoderModel` (flan-t5's gated-GELU layout, small) and a word-level tokenizer
    trained on `texts` plus the built-in clinical statements, both built offline: the stand-in for
    google/flan-t5-small where the Hub cannot be reached. Returns (model in eval mode, tokenizer)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel

    from .text import CLINICAL_STATEMENTS

    word_level = Tokenizer(models.WordLevel(unk_token="<unk>"))
    word_level.normalizer = normalizers.Lowercase()
    word_level.pre_tokenizer = pre_tokenizers.Whitespace()
    special = ["<pad>", "</s>", "<unk>"]  # T5's ids 0, 1, 2
    word_level.train_from_iterator(list(CLINICAL_STATEMENTS) + [str(t) for t in texts],
                                   trainers.WordLevelTrainer(special_tokens=special))
    word_level.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=word_level, pad_token="<pad>", eos_token="</s>",
                                        unk_token="<unk>")
    config = T5Config(vocab_size=len(tokenizer), d_model=d_model, d_kv=d_model // num_heads, d_ff=2 * d_model,
                      num_layers=num_layers, num_heads=num_heads, feed_forward_proj="gated-gelu", dropout_rate=0.0,
                      pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    with torch.random.fork_rng(devices=[]):  # seeded weights without touching the caller's RNG
        torch.manual_seed(seed)
        model = T5EncoderModel(config).eval()
    return model, tokenizer
