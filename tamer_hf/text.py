"""A report tokenizer and a small BERT encoder built locally, for offline runs, tests and the quick start.

The paper's report encoder is the frozen `ncbi/MedCPT-Query-Encoder`; with no network, a WordPiece tokenizer trained
on the reports at hand plus a small randomly initialised BERT take its place (frozen all the same).
"""

from collections.abc import Iterable

from tokenizers import BertWordPieceTokenizer
from transformers import BertConfig, BertTokenizer

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # ids 0-4, as in MedCPT's vocabulary

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


def train_report_tokenizer(texts: Iterable[str] = (), vocab_size: int = 2000, lowercase: bool = True) -> BertTokenizer:
    """Train a WordPiece tokenizer on `texts` (plus the built-in clinical statements) and wrap it as a transformers
    `BertTokenizer` that saves and reloads like any Hub tokenizer."""
    corpus = list(CLINICAL_STATEMENTS) + [str(text) for text in texts]
    wordpiece = BertWordPieceTokenizer(lowercase=lowercase)
    wordpiece.train_from_iterator(corpus, vocab_size=vocab_size, min_frequency=1, special_tokens=SPECIAL_TOKENS)
    return BertTokenizer(vocab=wordpiece.get_vocab(), do_lower_case=lowercase)


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
