"""Sinks: predictions and dead letters as JSON lines in files, or kept in memory."""

from __future__ import annotations

import json
import pathlib

from stream_moe.events import DeadLetter, Prediction


class JsonlPredictionSink:
    """Appends each prediction as one JSON object per line, in the wire format (docs/serving.md)."""

    def __init__(self, path: str | pathlib.Path, model_name: str, model_version: str):
        self.path = pathlib.Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "ab")
        self.model_name = model_name
        self.model_version = model_version

    def write(self, predictions: list[Prediction]) -> None:
        name, version = self.model_name, self.model_version
        self._file.writelines(p.to_bytes(name, version) + b"\n" for p in predictions)

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class JsonlDeadLetterSink:
    """Appends dead letters (raw input, reason, position) as JSON lines; keeps the first `keep` for reports."""

    def __init__(self, path: str | pathlib.Path, keep: int = 10):
        self.path = pathlib.Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")
        self.keep = keep
        self.first: list[dict] = []

    def write(self, letters: list[DeadLetter]) -> None:
        for letter in letters:
            record = letter.to_json()
            if len(self.first) < self.keep:
                self.first.append(record)
            self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class ListSink:
    """Keeps what is written (predictions or dead letters) in `items`, in order: for embedding the loop in a program
    that consumes its output directly, and for tests."""

    def __init__(self):
        self.items: list = []

    def write(self, items: list) -> None:
        self.items.extend(items)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass
