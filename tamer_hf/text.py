"""A report tokenizer and a small BERT encoder built locally, for offline runs, tests and the quick start.

The paper's report encoder is the frozen `ncbi/MedCPT-Query-Encoder`; with no network, a WordPiece tokenizer trained
on the reports at hand plus a small randomly initialised BERT take its place (frozen all the same).
"""

from collections.abc import Iterable

from tokenizers import BertWordPieceTokenizer
from transformers import BertConfig, BertTokenizer

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # ids 0-4, as in MedCPT's vocabulary
# Longest input the local tokenizers announce (`model_max_length`, what `truncation=True` cuts to): 512 as MedCPT's
# and Flan-T5's tokenizers; without it transformers reports 1e30 and nothing is ever truncated.
MODEL_MAX_LENGTH = 512

# Clinical ECG statements so that a tokenizer trained offline knows the usual vocabulary even on a tiny corpus.
CLINICAL_STATEMENTS = [
    "sinus rhythm. normal ecg.",
    "sinus tachycardia. sinus bradycardia. sinus arrhythmia.",
    "atrial fibrillation with rapid ventricular response. atrial flutter with variable block.",
    "first degree av block. second degree av block mobitz type i wenckebach. complete heart block.",
    "left bundle branch block. right bundle branch block. incomplete right bundle branch block.",
    "left anterior fascicular block. nonspecific intraventricular conduction delay.",
    "st elevation. st depression. t wave inversion. nonspecific st-t changes. possible ischemia.",
    "premature ventricular contractions. premature atrial contractions. ventricular bigeminy.",
    "left ventricular hypertrophy. right ventricular hypertrophy. left atrial enlargement.",
    "inferior myocardial infarction age undetermined. anterior infarct. lateral injury pattern.",
    "low qrs voltages. prolonged qt interval. left axis deviation. right axis deviation.",
    "abnormal ecg. borderline ecg. otherwise normal ecg. pacemaker rhythm. supraventricular tachycardia.",
    "wolff-parkinson-white pattern. early repolarization. poor r wave progression. junctional rhythm.",
]


def train_report_tokenizer(texts: Iterable[str] = (), vocab_size: int = 2000, lowercase: bool = True,
                           model_max_length: int = MODEL_MAX_LENGTH) -> BertTokenizer:
    """Train a WordPiece tokenizer on `texts` (plus the built-in clinical statements) and wrap it as a transformers
    `BertTokenizer` that saves and reloads like any Hub tokenizer."""
    corpus = list(CLINICAL_STATEMENTS) + [str(text) for text in texts]
    wordpiece = BertWordPieceTokenizer(lowercase=lowercase)
    wordpiece.train_from_iterator(corpus, vocab_size=vocab_size, min_frequency=1, special_tokens=SPECIAL_TOKENS)
    return BertTokenizer(vocab=wordpiece.get_vocab(), do_lower_case=lowercase, model_max_length=model_max_length)


def small_text_config(tokenizer, hidden_size: int = 128, num_layers: int = 2, num_heads: int = 4,
                      max_positions: int = 512) -> BertConfig:
    """A small BERT shaped for `tokenizer`: the frozen report encoder of offline runs."""
    return BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=4 * hidden_size,
        max_position_embeddings=max_positions,
        pad_token_id=tokenizer.pad_token_id,
    )


# ----------------------------------------------------------------------------------------------------------------------
# T5-style tokenizer and encoder (C-MELT's text side), for offline runs, tests and the quick start

T5_SPECIAL_TOKENS = ["<pad>", "</s>", "<unk>", "<extra_id_0>"]  # ids 0-3: T5's pad 0, eos 1, unk 2 + one sentinel
T5_MASK_TOKEN = "<extra_id_0>"  # T5 tokenizers have no mask token; C-MELT's MLM uses the first sentinel instead


def train_t5_tokenizer(texts: Iterable[str] = (), vocab_size: int = 1000, lowercase: bool = True,
                       model_max_length: int = MODEL_MAX_LENGTH):
    """Train a SentencePiece-style Unigram tokenizer on `texts` (plus the built-in clinical statements) with T5's
    conventions (pad 0, `</s>` 1 appended to every sequence, unk 2, Metaspace word boundaries) and the sentinel
    `<extra_id_0>` as its `mask_token`. Returns a transformers fast tokenizer that saves and reloads (AutoTokenizer)
    with its whole pipeline, lower-casing included (C-MELT's code lower-cases every report)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = list(CLINICAL_STATEMENTS) + [str(text) for text in texts]
    unigram = Tokenizer(models.Unigram())
    if lowercase:
        unigram.normalizer = normalizers.Lowercase()
    unigram.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")]
    )
    unigram.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=T5_SPECIAL_TOKENS, unk_token="<unk>")
    unigram.train_from_iterator(corpus, trainer)
    eos_id = unigram.token_to_id("</s>")
    unigram.post_processor = processors.TemplateProcessing(
        single=["$A", "</s>"], pair=["$A", "</s>", "$B", "</s>"], special_tokens=[("</s>", eos_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=unigram, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", mask_token=T5_MASK_TOKEN,
        additional_special_tokens=[T5_MASK_TOKEN], model_max_length=model_max_length,
    )


def small_t5_config(tokenizer, d_model: int = 128, num_layers: int = 2, num_heads: int = 4, d_ff: int | None = None,
                    dropout_rate: float = 0.1):
    """A small T5 encoder shaped for `tokenizer`, with Flan-T5's gated-GELU feed-forward."""
    from transformers import T5Config

    return T5Config(
        vocab_size=len(tokenizer), d_model=d_model, d_kv=d_model // num_heads, d_ff=d_ff or 2 * d_model,
        num_layers=num_layers, num_heads=num_heads, dropout_rate=dropout_rate, feed_forward_proj="gated-gelu",
        tie_word_embeddings=False, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
