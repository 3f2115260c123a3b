"""ckpt.to_transformers and ckpt.from_transformers (docs/TRANSFORMERS.md)."""

import os

from ckpt import _ckpt
from ckpt._operations import Result


class TransformersResult(Result):
    """to_transformers: out, architecture, melody, decoder_only, tensors, bytes,
    files, notes. from_transformers: out, melody, tensors, compression, files, notes."""

    out: str
    architecture: str
    melody: bool
    decoder_only: bool
    tensors: int
    bytes: int
    compression: str
    files: list[str]
    notes: list[str]


def _path(p: "str | os.PathLike[str]") -> str:
    return os.fspath(p) if p else ""


def to_transformers(file: "str | os.PathLike[str]", out: "str | os.PathLike[str]", *, state: str = "",
                    text_encoder: "str | os.PathLike[str]" = "", audio_encoder: "str | os.PathLike[str]" = "",
                    dtype: str = "", max_shard_size: str = "", force: bool = False) -> TransformersResult:
    """``ckpt to-transformers``: an AudioCraft MusicGen LM (training checkpoint,
    state_dict.bin, bundle folder) as the folder transformers' from_pretrained
    loads; with text_encoder (a T5 folder) and audio_encoder (an EnCodec folder)
    the composite model, else the decoder alone."""
    return TransformersResult(_ckpt.to_transformers(_path(file), _path(out), state, _path(text_encoder),
                                                    _path(audio_encoder), dtype, max_shard_size, force))


def from_transformers(dir: "str | os.PathLike[str]", out: "str | os.PathLike[str]", *,
                      compression: "str | os.PathLike[str]" = "", force: bool = False) -> TransformersResult:
    """``ckpt from-transformers``: a transformers MusicGen folder as the folder
    MusicGen.get_pretrained loads (state_dict.bin, compression_state_dict.bin)."""
    return TransformersResult(_ckpt.from_transformers(_path(dir), _path(out), _path(compression), force))
