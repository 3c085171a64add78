"""A CLIP-format BPE tokenizer for the toy world's captions, trained offline with the `tokenizers` library.

The vocabulary follows CLIP's layout: the 256 byte-level characters, the same with the end-of-word suffix
``</w>``, then one token per learned merge, then ``<|startoftext|>`` and ``<|endoftext|>`` (also the unknown and
padding token, as in SD 1.x). Merges are learned on the caption vocabulary until every caption word is a single
token, so "a red cube, front view" is 8 tokens with the start and end tokens; any other text still tokenises
(byte by byte).

Saved files: ``vocab.json`` + ``merges.txt`` (what CLIPTokenizer has always read, transformers 4.x included),
``tokenizer.json`` (the fast tokenizer) and ``tokenizer_config.json`` / ``special_tokens_map.json`` with
``model_max_length`` 77, so ``CLIPTokenizer.from_pretrained(folder)`` loads it.
"""

from __future__ import annotations

import json
from pathlib import Path

from lucidkit.export import publish, staging_folder
from lucidkit.prior.random_weights import bytes_to_unicode
from lucidkit.toyworld.captions import caption_words

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
MODEL_MAX_LENGTH = 77
EOW = "</w>"


def learn_merges(words: list[str]) -> list[tuple[str, str]]:
    """BPE merges (in order) that turn each of ``words`` into one token, learned with `tokenizers`' BpeTrainer
    (byte-level alphabet, CLIP's ``</w>`` end-of-word suffix)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=EOS, end_of_word_suffix=EOW))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=10_000,  # more than enough: training stops when no pair is left to merge
        min_frequency=1,
        special_tokens=[BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        end_of_word_suffix=EOW,
        show_progress=False,
    )
    tok.train_from_iterator(words, trainer=trainer)
    merges = json.loads(tok.to_str())["model"]["merges"]
    return [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in merges]


def clip_vocab(merges: list[tuple[str, str]]) -> dict[str, int]:
    """CLIP's vocabulary layout for ``merges``: bytes, bytes + </w>, merged tokens, then BOS and EOS."""
    alphabet = list(bytes_to_unicode().values())
    tokens = alphabet + [c + EOW for c in alphabet]
    seen = set(tokens)
    for a, b in merges:
        if a + b not in seen:
            tokens.append(a + b)
            seen.add(a + b)
    tokens += [BOS, EOS]
    return {t: i for i, t in enumerate(tokens)}


def build_tokenizer(words: list[str] | None = None):
    """A transformers ``CLIPTokenizer`` (model_max_length 77) whose merges make every word of ``words``
    (default: `caption_words()`) a single token."""
    from transformers import CLIPTokenizer

    merges = learn_merges(words or caption_words())
    vocab = clip_vocab(merges)
    return CLIPTokenizer(vocab=vocab, merges=[tuple(m) for m in merges], model_max_length=MODEL_MAX_LENGTH)


def save_tokenizer(tokenizer, folder: str | Path) -> Path:
    """Write ``tokenizer`` to ``folder`` in every format CLIPTokenizer reads (see the module doc), atomically:
    the files are written to a temporary sibling folder that then replaces ``folder``."""
    tmp = staging_folder(folder)
    tokenizer.save_pretrained(tmp)
    model = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
    merges = [m.split(" ") if isinstance(m, str) else m for m in model["merges"]]
    (tmp / "vocab.json").write_text(json.dumps(model["vocab"], ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    (tmp / "merges.txt").write_text(
        "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8"
    )
    config_path = tmp / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config.update(
        tokenizer_class="CLIPTokenizer", model_max_length=MODEL_MAX_LENGTH,
        bos_token=BOS, eos_token=EOS, unk_token=EOS, pad_token=EOS, do_lower_case=True, errors="replace",
    )
    config_path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    special = {"bos_token": BOS, "eos_token": EOS, "unk_token": EOS, "pad_token": EOS}
    (tmp / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n", encoding="utf-8")
    return publish(tmp, folder)
