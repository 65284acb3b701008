"""Compressed weight schedules for the matrix-vector unit (zero-weight skipping).

A layer's weight matrix (rows = output channels, columns = the input vector in
stream order) is cut into words of ``simd`` columns. Each PE works through a
list of the words it needs: with skipping, only the words holding a non-zero
weight, each stored with its column-word index; without, all of them. The PEs
run in lock step, one word each per cycle, over *folds* of ``pe`` output
channels, so a fold takes as many cycles as its PE with the most non-zero words
(at least one). Sorting the channels by their non-zero word count and cutting
the sorted list into folds groups channels of similar cost -- for lock-stepped
folds this order minimises the total (the sum of the fold maxima) -- so the
non-zeros are balanced across PEs. The output then leaves in this sorted
channel order, which the builder tracks (``order``).
"""

from dataclasses import dataclass
from functools import cached_property

import numpy as np

__all__ = ["Schedule", "compile_schedule", "schedule_length"]


@dataclass(frozen=True, eq=False)
class Schedule:
    """A compiled schedule; arrays are indexed by entry ``t`` and PE ``p``.

    Attributes
    ----------
    pe, simd : int
        Output channels per fold, and weights (input values) per word.
    in_words : int
        Words of the input vector (``fan_in / simd``).
    folds : int
        Output folds (``out_channels / pe``).
    order : ndarray (folds * pe,)
        Output channel at each output stream position: fold ``f``, PE ``p`` is
        position ``f * pe + p``.
    index : ndarray (T, pe)
        Input word each PE reads.
    active : ndarray (T, pe) of bool
        False for the padding entries of PEs that have finished their fold.
    codes : ndarray (T, pe, simd)
        Weight codes of the multiply units.
    channel : ndarray (T, pe)
        The output channel each entry belongs to (per-channel codebooks).
    first, last : ndarray (T,) of bool
        The entry starts / ends a fold.
    bias : ndarray (folds, pe)
    nonzero_words : int
        Active entries over all PEs (useful work).
    """

    pe: int
    simd: int
    in_words: int
    folds: int
    order: np.ndarray
    index: np.ndarray
    active: np.ndarray
    codes: np.ndarray
    channel: np.ndarray
    first: np.ndarray
    last: np.ndarray
    bias: np.ndarray
    nonzero_words: int

    @property
    def length(self):
        """Entries T: cycles per input vector when the unit is not input-bound."""
        return self.index.shape[0]

    @property
    def shared_index(self):
        """Every entry reads the same input word in all PEs (dense schedules)."""
        return bool(np.all(self.index == self.index[:, :1]))

    @cached_property
    def dense(self):
        """Every PE reads input word ``t mod in_words`` at entry ``t`` and every entry
        is active: a counter can replace the stored indices and flags.

        Cached (a frozen dataclass still takes it): the scan is of the whole
        schedule, and elaboration asks once per ROM row."""
        if self.length != self.folds * self.in_words or not self.active.all():
            return False
        expected = np.arange(self.length) % self.in_words
        return bool(np.all(self.index == expected[:, None]))

    @property
    def cycles_per_vector(self):
        return max(self.length, self.in_words)


def _check(values, pe, simd):
    out_channels, fan_in = values.shape
    if not isinstance(pe, int) or pe < 1 or out_channels % pe:
        raise ValueError(f"PE count must be a positive divisor of the {out_channels} output "
                         f"channels, not {pe!r}")
    if not isinstance(simd, int) or simd < 1 or fan_in % simd:
        raise ValueError(f"SIMD width must be a positive divisor of the fan-in {fan_in}, "
                         f"not {simd!r}")


def _word_counts(values, simd, skip_zeros, mask=None):
    out_channels, fan_in = values.shape
    nonzero = (values.reshape(out_channels, fan_in // simd, simd) != 0).any(axis=2)
    if not skip_zeros:
        nonzero[:] = True
    if mask is not None:
        # Structural zeros (outside a group) are never scheduled.
        nonzero &= np.asarray(mask).reshape(out_channels, fan_in // simd, simd).any(axis=2)
    return nonzero


def _folds(counts, pe, balance):
    order = np.argsort(-counts, kind="stable") if balance else np.arange(counts.shape[0])
    return order.reshape(-1, pe)


def schedule_length(values, pe, simd, *, skip_zeros=True, balance=True, mask=None):
    """Entries T of the schedule :func:`compile_schedule` would build (fast)."""
    values = np.asarray(values)
    _check(values, pe, simd)
    counts = _word_counts(values, simd, skip_zeros, mask).sum(axis=1)
    folds = _folds(counts, pe, balance)
    return int(np.maximum(counts[folds].max(axis=1), 1).sum())


def compile_schedule(values, codes, pe, simd, bias=None, *, skip_zeros=True, balance=True,
                     mask=None):
    """Build the schedule of a weight matrix.

    Parameters
    ----------
    values : array (out_channels, fan_in)
        Decoded weights, columns in input stream order (which words are zero).
    codes : array (out_channels, fan_in)
        The codes the multiply units take, same order.
    pe, simd : int
        Divisors of out_channels and fan_in.
    bias : array (out_channels,), optional
    skip_zeros : bool
        Leave out the words whose weights are all zero.
    balance : bool
        Sort channels by non-zero count before cutting folds (else natural order).
    mask : array of bool (out_channels, fan_in), optional
        False where a weight is structurally absent (a grouped convolution
        expanded to a dense matrix); words that are all absent are never scheduled.

    Raises
    ------
    ValueError
        When ``pe`` or ``simd`` does not divide the matrix.
    """
    values = np.asarray(values, dtype=np.int64)
    codes = np.asarray(codes, dtype=np.int64)
    _check(values, pe, simd)
    out_channels, fan_in = values.shape
    in_words = fan_in // simd
    nonzero = _word_counts(values, simd, skip_zeros, mask)
    folds = _folds(nonzero.sum(axis=1), pe, balance)
    bias = np.zeros(out_channels, dtype=np.int64) if bias is None else np.asarray(bias, np.int64)
    word_codes = codes.reshape(out_channels, in_words, simd)
    rows = {name: [] for name in ("index", "active", "codes", "channel", "first", "last")}
    for fold in folds:
        lists = [np.flatnonzero(nonzero[channel]) for channel in fold]
        length = max(1, max(len(entries) for entries in lists))
        for t in range(length):
            index = np.zeros(pe, dtype=np.int64)
            active = np.zeros(pe, dtype=bool)
            entry_codes = np.zeros((pe, simd), dtype=np.int64)
            for p, (channel, entries) in enumerate(zip(fold, lists)):
                if t < len(entries):
                    index[p] = entries[t]
                    active[p] = True
                    entry_codes[p] = word_codes[channel, entries[t]]
                elif len(entries):
                    index[p] = entries[-1]   # a word this PE already reads: no new address
            rows["index"].append(index)
            rows["active"].append(active)
            rows["codes"].append(entry_codes)
            rows["channel"].append(np.asarray(fold))
            rows["first"].append(t == 0)
            rows["last"].append(t == length - 1)
    arrays = {name: np.array(value) for name, value in rows.items()}
    return Schedule(pe=pe, simd=simd, in_words=in_words, folds=out_channels // pe,
                    order=folds.reshape(-1), bias=bias[folds], nonzero_words=int(nonzero.sum()),
                    **arrays)
