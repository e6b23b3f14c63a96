"""Encoder-decoder for generation: the family supplies both sides.

Each family module that can generate exports ``DECODER``, a causal decoder with
``forward(y (B, S, D), y_mask (B, S), memory (B, T, D), memory_mask (B, T)) -> (B, S, D)``.
Source and target share one (joint subword) vocabulary and one embedding,
tied with the output projection. Decoding runs one position at a time: each
DECODER also has ``start(memory, memory_mask) -> DecoderState`` and
``step(y (N, 1, D), state) -> (out (N, 1, D), state)``, carrying what the
earlier positions left (the Transformer's keys and values, the LSTM's states,
each causal convolution's last inputs), so a step costs the same at any length.
"""

from __future__ import annotations

import functools
import importlib
import inspect

import torch
from torch import nn

from models import build_encoder, fixed_width
from models.heads import TokenEmbedding


class EncoderDecoder(nn.Module):
    """A family's encoder and decoder at one width: the part the parameter budget sizes."""

    def __init__(self, name: str, d_model: int | None = None, causal: bool = False, **options):
        super().__init__()
        module = importlib.import_module(f"models.{name}")
        if not hasattr(module, "DECODER"):
            raise ValueError(f"encoder {name!r} exports no DECODER, so it cannot run generation tasks")
        self.encoder = build_encoder(name, d_model=d_model, causal=causal, **options)  # causal: a GPT-style encoder
        accepted = inspect.signature(module.DECODER.__init__).parameters
        self.decoder = module.DECODER(
            d_model=self.encoder.d_model, **{k: v for k, v in options.items() if k in accepted}
        )
        self.d_model = self.encoder.d_model


def build_encoder_decoder(name: str, d_model: int | None = None, param_budget: int | None = None, **options):
    """EncoderDecoder sized like ``build_encoder``: a budget counts encoder and decoder together."""
    return EncoderDecoder(
        **fixed_width(name, d_model, param_budget, factory=functools.partial(EncoderDecoder, name), **options)
    )


class Seq2Seq(nn.Module):
    def __init__(self, core: EncoderDecoder, vocab_size: int, bos: int, eos: int, embed_dim: int | None = None):
        super().__init__()
        self.core, self.bos, self.eos = core, bos, eos
        self.embed = TokenEmbedding(vocab_size, core.d_model, embed_dim)

    def encode(self, src: torch.Tensor, src_mask: torch.Tensor) -> torch.Tensor:
        return self.core.encoder(self.embed(src), src_mask)

    def decode(self, tgt_in, tgt_mask, memory, src_mask) -> torch.Tensor:
        """Logits (B, S, V) for every prefix of ``tgt_in``."""
        return self.embed.logits(self.core.decoder(self.embed(tgt_in), tgt_mask, memory, src_mask))

    def forward(self, src, src_mask, tgt_in, tgt_mask) -> torch.Tensor:
        return self.decode(tgt_in, tgt_mask, self.encode(src, src_mask), src_mask)

    @torch.no_grad()
    def generate(self, src, src_mask, max_len: int, beam_size: int = 1, alpha: float = 0.6) -> list[list[int]]:
        """Beam search (greedy when beam_size is 1) with GNMT length normalisation; token ids
        without bos and eos."""
        B, K = src.shape[0], beam_size
        memory = self.encode(src, src_mask).repeat_interleave(K, 0)  # (B*K, T, D)
        state = self.core.decoder.start(memory, src_mask.repeat_interleave(K, 0))
        seqs = torch.full((B * K, 1), self.bos, dtype=torch.long, device=src.device)
        scores = torch.full((B, K), float("-inf"), device=src.device)
        scores[:, 0] = 0.0
        done = torch.zeros(B, K, dtype=torch.bool, device=src.device)
        lengths = torch.zeros(B, K, device=src.device)
        offsets = torch.arange(B, device=src.device)[:, None] * K
        for _ in range(max_len):
            out, state = self.core.decoder.step(self.embed(seqs[:, -1:]), state)  # only the newest position
            logp = self.embed.logits(out)[:, -1].float().log_softmax(-1).view(B, K, -1)  # (B, K, V)
            V = logp.shape[-1]
            # a finished beam only extends with padding (id 0), at no cost
            logp = torch.where(done[..., None], torch.full_like(logp, float("-inf")), logp)
            logp[..., 0] = torch.where(done, 0.0, float("-inf"))
            best, flat = (scores[..., None] + logp).view(B, K * V).topk(K, dim=-1)  # (B, K)
            beam, token = flat // V, flat % V
            seqs = torch.cat(
                [seqs.view(B, K, -1).gather(1, beam[..., None].expand(-1, -1, seqs.shape[1])), token[..., None]], dim=-1
            ).view(B * K, -1)
            state.reorder((offsets + beam).view(-1))
            done, lengths = done.gather(1, beam), lengths.gather(1, beam)
            lengths = lengths + (~done).float()
            scores, done = best, done | (token == self.eos)
            if bool(done.all()):
                break
        penalty = ((5 + lengths) / 6) ** alpha
        pick = (scores / penalty).argmax(-1)  # (B,)
        chosen = seqs.view(B, K, -1)[torch.arange(B), pick].tolist()
        out = []
        for row in chosen:
            row = row[1:]
            out.append([t for t in row[: row.index(self.eos)] if t] if self.eos in row else [t for t in row if t])
        return out
