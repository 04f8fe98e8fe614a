"""The ``ctc`` task: a text (sequence) recognizer judged by the text it reads, not by its log-probabilities.

Greedy CTC decoding (argmax per time step, repeats merged, the blank removed) of the float and the int8 output;
per line (sample): exact match, and the character error rate (edit distance over the float text's length)
over all lines.  Lines where the float model reads nothing are listed, not judged (a spurious int8 text on them
is counted).  A cosine of 0.96 on log-probabilities can hide a model whose text changed on every line: this
task is what decides.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np


def greedy_decode(x: np.ndarray, blank: int = 0) -> list[int]:
    """Class indices of a (1, T, C) or (T, 1, C) or (T, C) CTC output: argmax per step, repeats merged, blanks out."""
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[0] if x.shape[0] == 1 else x[:, 0]
    best = x.argmax(axis=-1)
    keep = np.ones(best.shape, bool)
    keep[1:] = best[1:] != best[:-1]
    return [int(c) for c in best[keep] if c != blank]


def edit_distance(a: Sequence[int], b: Sequence[int]) -> int:
    """Levenshtein distance (insertions, deletions, substitutions)."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


@dataclass(frozen=True)
class CTCTask:
    """Decoded-sequence exact match and character error rate of ``output`` (int8 vs float)."""

    output: str
    blank: int = 0
    class_names: tuple[str, ...] = ()
    name: str = "ctc"

    def record(self, reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray]) -> dict:
        return {"float": greedy_decode(reference[self.output], self.blank),
                "int8": greedy_decode(candidate[self.output], self.blank)}

    def summarize(self, names: Sequence[str], records: Sequence[dict], labels: Sequence[Any]) -> dict:
        if not records:
            return {}
        lines = [i for i, r in enumerate(records) if r["float"]]
        exact = [records[i]["float"] == records[i]["int8"] for i in lines]
        errors = sum(edit_distance(records[i]["float"], records[i]["int8"]) for i in lines)
        chars = sum(len(records[i]["float"]) for i in lines)
        changed = [{"sample": names[i], "float": self._text(records[i]["float"]),
                    "int8": self._text(records[i]["int8"])} for i, same in zip(lines, exact) if not same]
        empty = [i for i, r in enumerate(records) if not r["float"]]
        return {"output": self.output, "blank": self.blank, "samples": len(records), "lines": len(lines),
                "sequence_match": float(np.mean(exact)) if lines else None,
                "char_error_rate": errors / chars if chars else None,
                "lines_matched": int(sum(exact)),
                "changed": changed[:50],
                "skipped_samples": [names[i] for i in empty],
                "spurious_int8_text": [names[i] for i in empty if records[i]["int8"]]}

    def failures(self, summary: dict, thresholds: Mapping[str, float]) -> list[str]:
        if not summary:
            return []
        if not summary["lines"]:
            return [f"ctc: the float model reads no text on any of the {summary['samples']} verification samples "
                    f"(output '{self.output}', blank {self.blank}), so the decoded text cannot be compared; verify on "
                    f"images of text lines (or check --blank)"]
        fails = []
        example = summary["changed"][0] if summary["changed"] else None
        shown = f"; e.g. {example['sample']}: float {example['float']!r} -> int8 {example['int8']!r}" if example else ""
        need = thresholds.get("sequence_match")
        if need is not None and summary["sequence_match"] < need:
            fails.append(f"ctc: decoded text identical on {summary['lines_matched']} of {summary['lines']} lines "
                         f"(sequence match {summary['sequence_match']:.3f} < {need}) on output '{self.output}'{shown}")
        most = thresholds.get("char_error_rate")
        if most is not None and summary["char_error_rate"] > most:
            fails.append(f"ctc: character error rate of the int8 text vs the float text {summary['char_error_rate']:.4f} "
                         f"> {most} on output '{self.output}'")
        return fails

    def _text(self, seq: list[int]) -> str:
        if self.class_names:
            return "".join(self.class_names[c] if 0 <= c < len(self.class_names) else f"<{c}>" for c in seq)
        return " ".join(map(str, seq))
