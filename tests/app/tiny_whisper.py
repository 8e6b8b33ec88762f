"""A tiny, randomly initialised English-only Whisper converted to a CTranslate2 directory here, offline: the
model the speech-recognition tests run faster-whisper on (plumbing, not quality; nothing is downloaded).

The tokenizer is a word-level one made on the spot (words w0…w199) with Whisper's special tokens in Whisper's
order after them (end of text, start of transcript, task tokens, no-timestamps, then the 1501 timestamp
tokens <|0.00|>…<|30.00|>): CTranslate2 and faster-whisper find each special token by its text, and a
vocabulary under 51865 tokens makes the model English-only.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["build_tiny_whisper"]

SPECIALS = ["<|endoftext|>", "<|startoftranscript|>", "<|translate|>", "<|transcribe|>", "<|startoflm|>",
            "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>", *(f"<|{i * 0.02:.2f}|>" for i in range(1501))]


def build_tiny_whisper(out: Path, *, words: int = 200, seed: int = 0) -> Path:
    """Write the CTranslate2 model to `out` (a Hugging Face copy beside it, in `out`.hf); returns `out`."""
    import ctranslate2
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GenerationConfig, WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

    hf = out.with_name(out.name + ".hf")
    hf.mkdir(parents=True, exist_ok=True)
    vocab = {t: i for i, t in enumerate([f"w{i}" for i in range(words)] + SPECIALS)}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="w0"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.add_special_tokens(SPECIALS)
    tokenizer.save(str(hf / "tokenizer.json"))
    eot, sot = vocab["<|endoftext|>"], vocab["<|startoftranscript|>"]
    config = WhisperConfig(vocab_size=len(vocab), num_mel_bins=80, encoder_layers=1, decoder_layers=1,
                           encoder_attention_heads=2, decoder_attention_heads=2, d_model=64, encoder_ffn_dim=128,
                           decoder_ffn_dim=128, max_source_positions=1500, max_target_positions=448,
                           pad_token_id=eot, bos_token_id=eot, eos_token_id=eot, decoder_start_token_id=sot,
                           begin_suppress_tokens=[], suppress_tokens=[])
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=sot, eos_token_id=eot, pad_token_id=eot, bos_token_id=eot,
        no_timestamps_token_id=vocab["<|notimestamps|>"], is_multilingual=False, suppress_tokens=[],
        begin_suppress_tokens=[], alignment_heads=[[0, 0]], max_length=448)
    model.save_pretrained(hf)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(hf)
    ctranslate2.converters.TransformersConverter(
        str(hf), copy_files=["tokenizer.json", "preprocessor_config.json"]).convert(str(out), force=True)
    return out
