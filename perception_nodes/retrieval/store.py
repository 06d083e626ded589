"""The metadata store: every indexed observation with its embedding, in SQLite (WAL), plus thumbnails on disk.

It is the source of truth: vector indexes are derived from it and rebuilt from it when their file is missing or
corrupt. An insert is acknowledged only after its transaction committed with ``synchronous=FULL``, so a killed
process (or a power cut) loses no acknowledged observation. Thumbnails are written (atomically) before the rows
that name them; one left behind by a crash before the commit is removed on the next open.
"""
from __future__ import annotations

import os
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from perception_nodes.retrieval.types import Observation, RetrievalError, RetrievalErrorCode

SCHEMA_VERSION = 1
THUMBNAIL_DIR = "thumbnails"
DATABASE_FILE = "metadata.sqlite3"

_COLUMNS = ("id", "embedder", "camera_id", "stamp_ns", "class_id", "class_name", "track_id", "global_id",
            "has_pos", "x", "y", "heading", "zone", "x1", "y1", "x2", "y2", "quality", "thumbnail", "vector")


class MetadataStore:
    """SQLite store of observations; thread-safe (one connection behind a lock)."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / THUMBNAIL_DIR).mkdir(exist_ok=True)
        self.path = self.directory / DATABASE_FILE
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._create()
        except sqlite3.DatabaseError as exc:
            raise RetrievalError(RetrievalErrorCode.UNAVAILABLE,
                                 f"metadata store {self.path} is not a readable SQLite database: {exc}") from exc
        self._remove_orphan_thumbnails()

    def _create(self) -> None:
        self._db.executescript("""
            CREATE TABLE IF NOT EXISTS info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS items (
                id INTEGER PRIMARY KEY AUTOINCREMENT, embedder TEXT NOT NULL, camera_id TEXT NOT NULL,
                stamp_ns INTEGER NOT NULL, class_id INTEGER NOT NULL, class_name TEXT NOT NULL,
                track_id INTEGER NOT NULL, global_id INTEGER NOT NULL, has_pos INTEGER NOT NULL,
                x REAL, y REAL, heading REAL, zone TEXT NOT NULL,
                x1 REAL, y1 REAL, x2 REAL, y2 REAL, quality REAL NOT NULL, thumbnail TEXT NOT NULL,
                vector BLOB NOT NULL);
            CREATE INDEX IF NOT EXISTS items_embedder ON items (embedder, id);
            CREATE INDEX IF NOT EXISTS items_track ON items (camera_id, track_id);
            CREATE INDEX IF NOT EXISTS items_global ON items (global_id);
        """)
        self._db.execute("INSERT OR IGNORE INTO info VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        # This store's own name, made once: a shared Milvus server keeps one collection per store under it, so two
        # sites' stores (each numbering its items from 1) never meet in one collection.
        self._db.execute("INSERT OR IGNORE INTO info VALUES ('store_id', ?)", (uuid.uuid4().hex,))
        self.store_id = str(self._db.execute("SELECT value FROM info WHERE key='store_id'").fetchone()[0])
        version = int(self._db.execute("SELECT value FROM info WHERE key='schema_version'").fetchone()[0])
        if version != SCHEMA_VERSION:
            raise RetrievalError(RetrievalErrorCode.UNAVAILABLE,
                                 f"metadata store {self.path} has schema {version}, this version reads {SCHEMA_VERSION}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- writing ---------------------------------------------------------------------------------------------
    def insert(self, embedder: str, observations: Sequence[Observation], vectors: np.ndarray) -> list[int]:
        """Store observations with their (normalised) vectors in one durable transaction; their new ids."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if len(vectors) != len(observations):
            raise ValueError("one vector per observation")
        rows = []
        for obs, vec in zip(observations, vectors):
            has_pos = obs.map_xy is not None
            rows.append((embedder, obs.camera_id, int(obs.stamp_ns), int(obs.class_id), obs.class_name,
                         int(obs.track_id), int(obs.global_id), int(has_pos),
                         float(obs.map_xy[0]) if has_pos else None, float(obs.map_xy[1]) if has_pos else None,
                         obs.heading, obs.zone, *map(float, obs.box), float(obs.quality), obs.thumbnail,
                         vec.tobytes()))
        with self._lock:
            cursor = self._db.cursor()
            cursor.execute("BEGIN IMMEDIATE")
            try:
                first = None
                for row in rows:
                    cursor.execute(f"INSERT INTO items ({', '.join(_COLUMNS[1:])}) VALUES "
                                   f"({', '.join('?' * (len(_COLUMNS) - 1))})", row)
                    first = cursor.lastrowid if first is None else first
                cursor.execute("COMMIT")
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
        # AUTOINCREMENT under BEGIN IMMEDIATE hands out consecutive ids to one transaction.
        return [] if first is None else list(range(first, first + len(rows)))

    def delete(self, ids: Sequence[int]) -> list[int]:
        """Remove observations (and their thumbnails); the ids that existed."""
        ids = [int(i) for i in ids]
        if not ids:
            return []
        with self._lock:
            found = []
            thumbs = []
            for chunk in _chunks(ids, 500):
                marks = ",".join("?" * len(chunk))
                for item_id, thumb in self._db.execute(f"SELECT id, thumbnail FROM items WHERE id IN ({marks})", chunk):
                    found.append(int(item_id))
                    thumbs.append(thumb)
            self._db.execute("BEGIN IMMEDIATE")
            for chunk in _chunks(found, 500):
                self._db.execute(f"DELETE FROM items WHERE id IN ({','.join('?' * len(chunk))})", chunk)
            self._db.execute("COMMIT")
        for thumb in thumbs:
            if thumb:
                (self.directory / THUMBNAIL_DIR / thumb).unlink(missing_ok=True)
        return found

    def thumbnail_path(self, name: str) -> Path:
        return self.directory / THUMBNAIL_DIR / name

    def write_thumbnail(self, name: str, data: bytes) -> None:
        """Write a thumbnail atomically (before the row that names it is committed)."""
        path = self.thumbnail_path(name)
        tmp = path.with_suffix(path.suffix + ".tmp")
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)

    def _remove_orphan_thumbnails(self) -> None:
        thumb_dir = self.directory / THUMBNAIL_DIR
        files = {p.name for p in thumb_dir.iterdir()}
        if not files:
            return
        with self._lock:
            named = {row[0] for row in self._db.execute("SELECT thumbnail FROM items WHERE thumbnail != ''")}
        for name in files - named:
            (thumb_dir / name).unlink(missing_ok=True)

    # -- reading ---------------------------------------------------------------------------------------------
    def count(self, embedder: str | None = None) -> int:
        with self._lock:
            if embedder is None:
                return int(self._db.execute("SELECT COUNT(*) FROM items").fetchone()[0])
            return int(self._db.execute("SELECT COUNT(*) FROM items WHERE embedder=?", (embedder,)).fetchone()[0])

    def embedders(self) -> dict[str, int]:
        """Items per embedder version (items of other versions are kept, never compared)."""
        with self._lock:
            return {name: int(n) for name, n in
                    self._db.execute("SELECT embedder, COUNT(*) FROM items GROUP BY embedder")}

    def ids(self, embedder: str) -> np.ndarray:
        with self._lock:
            return np.fromiter((r[0] for r in self._db.execute(
                "SELECT id FROM items WHERE embedder=? ORDER BY id", (embedder,))), dtype=np.int64)

    def get(self, ids: Sequence[int]) -> dict[int, Observation]:
        out = {}
        with self._lock:
            for chunk in _chunks([int(i) for i in ids], 500):
                marks = ",".join("?" * len(chunk))
                for row in self._db.execute(f"SELECT {', '.join(_COLUMNS[:-1])} FROM items WHERE id IN ({marks})",
                                            chunk):
                    out[int(row[0])] = _observation(row)
        return out

    def vectors(self, ids: Sequence[int], dim: int) -> np.ndarray:
        rows = {}
        with self._lock:
            for chunk in _chunks([int(i) for i in ids], 500):
                marks = ",".join("?" * len(chunk))
                for item_id, blob in self._db.execute(f"SELECT id, vector FROM items WHERE id IN ({marks})", chunk):
                    rows[int(item_id)] = np.frombuffer(blob, dtype=np.float32)
        return np.stack([rows[int(i)] for i in ids]) if ids else np.zeros((0, dim), np.float32)

    def by_track(self, camera_id: str, track_id: int, embedder: str) -> list[int]:
        with self._lock:
            return [int(r[0]) for r in self._db.execute(
                "SELECT id FROM items WHERE camera_id=? AND track_id=? AND embedder=? ORDER BY id",
                (camera_id, int(track_id), embedder))]

    def by_global(self, global_id: int, embedder: str) -> list[int]:
        with self._lock:
            return [int(r[0]) for r in self._db.execute(
                "SELECT id FROM items WHERE global_id=? AND embedder=? ORDER BY id", (int(global_id), embedder))]

    def scan(self, embedder: str, batch: int = 20000) -> Iterator[tuple[np.ndarray, list[Observation], np.ndarray]]:
        """(ids, observations, vectors) of every item of one embedder, in id order, in batches."""
        last = 0
        while True:
            with self._lock:
                rows = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM items WHERE embedder=? AND id>? "
                                        f"ORDER BY id LIMIT ?", (embedder, last, batch)).fetchall()
            if not rows:
                return
            ids = np.array([r[0] for r in rows], dtype=np.int64)
            vectors = np.stack([np.frombuffer(r[-1], dtype=np.float32) for r in rows])
            yield ids, [_observation(r[:-1]) for r in rows], vectors
            last = int(ids[-1])

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.directory.glob(DATABASE_FILE + "*"))


def _observation(row) -> Observation:
    (_, _, camera_id, stamp_ns, class_id, class_name, track_id, global_id, has_pos, x, y, heading, zone,
     x1, y1, x2, y2, quality, thumbnail) = row
    return Observation(camera_id=camera_id, stamp_ns=int(stamp_ns), class_id=int(class_id), class_name=class_name,
                       track_id=int(track_id), global_id=int(global_id),
                       map_xy=(float(x), float(y)) if has_pos else None,
                       heading=None if heading is None else float(heading), zone=zone,
                       box=(float(x1), float(y1), float(x2), float(y2)), quality=float(quality), thumbnail=thumbnail)


def _chunks(values: list, size: int):
    for i in range(0, len(values), size):
        yield values[i:i + size]
