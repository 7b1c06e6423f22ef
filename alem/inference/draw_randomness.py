"""Where the randomness of joint draws comes from, split so that a pool can be drawn in chunks.

A joint draw has two kinds of randomness: choices made once per draw for every hop (which stack
component, which GNN member, which tree) and noise drawn per hop (a member's Laplace noise). With
one :class:`numpy.random.Generator` for a whole call, the per-hop noise of a hop depends on how many
hops came before it, so the rows of a chunk of the pool would not be the rows the whole pool gets.
Here the draw-level choices come from the seed (and the stream: which mixture, which component)
alone, and a hop's noise is a counter-based hash (SplitMix64) of the seed, the stream, the draw's
index and the hop's key: the same hop gets the same column whatever else is drawn with it, and
hops with the same key (the same hop listed twice, a symmetry-equivalent path: their descriptors
agree to :data:`DUPLICATE_DECIMALS` decimals) share their noise, wherever they are in the pool.
"""

from __future__ import annotations

import hashlib

import numpy as np

#: Decimals to which two hops' descriptors must agree to count as the same hop.
DUPLICATE_DECIMALS = 4

_U64 = np.uint64
_GOLDEN = _U64(0x9E3779B97F4A7C15)


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser on uint64 arrays (wrapping arithmetic): a bijection whose output
    bits each depend on every input bit."""
    x = np.bitwise_xor(x, x >> _U64(30))
    x = np.multiply(x, _U64(0xBF58476D1CE4E5B9), dtype=np.uint64)
    x = np.bitwise_xor(x, x >> _U64(27))
    x = np.multiply(x, _U64(0x94D049BB133111EB), dtype=np.uint64)
    return np.bitwise_xor(x, x >> _U64(31))


def hop_noise_keys(descriptors: np.ndarray) -> np.ndarray:
    """Per hop, a 64-bit key of its descriptors rounded to :data:`DUPLICATE_DECIMALS` decimals:
    equal for hops whose rounded descriptors are equal, whatever the other hops are."""
    rounded = np.round(np.asarray(descriptors, dtype=np.float64), DUPLICATE_DECIMALS) + 0.0  # -0.0 -> 0.0
    bits = np.ascontiguousarray(rounded).view(np.uint64).reshape(len(rounded), -1)
    key = np.full(len(rounded), _U64(len(bits[0]) if len(rounded) else 0), dtype=np.uint64)
    for column in bits.T:
        key = _mix(np.bitwise_xor(np.add(key, _GOLDEN, dtype=np.uint64), column))
    return key


class DrawRandomness:
    """The randomness of one stream of joint draws.

    Args:
        seed: the call's seed.
        stream: which part of the model draws with it (:meth:`child`); the root is ``()``.

    Attributes:
        choices: a generator for draw-level choices (seeded by the seed and stream alone: never
            use it for anything whose size depends on the hops).
    """

    def __init__(self, seed: int, stream: tuple[int, ...] = ()):
        self.seed = int(seed)
        self.stream = stream
        self.choices = np.random.default_rng([self.seed, *stream]) if stream else np.random.default_rng(self.seed)
        digest = hashlib.blake2b(repr((self.seed, stream)).encode(), digest_size=8).digest()
        self._stream_key = _U64(int.from_bytes(digest, "little"))
        self._draws_issued = 0

    def child(self, label: int) -> DrawRandomness:
        """An independent stream for one part of the model (a mixture, a component of it)."""
        return DrawRandomness(self.seed, (*self.stream, int(label)))

    def unit_laplace(self, hop_keys: np.ndarray, n_draws: int) -> np.ndarray:
        """``n_draws x n_hops`` standard Laplace noise: column ``j`` depends only on the seed, the
        stream, ``hop_keys[j]`` and how many draws this stream issued before (successive calls
        continue the stream)."""
        draw = np.arange(self._draws_issued, self._draws_issued + n_draws, dtype=np.uint64)
        self._draws_issued += n_draws
        per_hop = _mix(np.bitwise_xor(np.asarray(hop_keys, dtype=np.uint64), self._stream_key))
        per_draw = _mix(np.multiply(draw + _U64(1), _GOLDEN, dtype=np.uint64))
        bits = _mix(np.bitwise_xor(per_draw[:, None], per_hop[None, :]))
        uniform = ((bits >> _U64(11)).astype(np.float64) + 0.5) / 2.0**53  # in (0, 1), never 0 or 1
        centred = uniform - 0.5
        return -np.sign(centred) * np.log1p(-2.0 * np.abs(centred))
