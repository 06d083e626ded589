"""Image retrieval: an index of observations (embedding + metadata + thumbnail) with filtered search and
re-ranking by context, metadata and scene cues (pure Python, no ROS).

- ``types``: observations, filters, hits, error codes.
- ``store``: the metadata store (SQLite in WAL mode), the source of truth the vector index is rebuilt from.
- ``backends``: vector indexes behind one interface, FAISS embedded (exact / HNSW) and Milvus (pymilvus).
- ``index``: ``RetrievalIndex``, the store and a backend together (insert, delete, query, snapshot, rebuild).
- ``rerank``: the switchable re-ranking stages, each reporting the hits it moved.
- ``crops``: which crop of a track to index (size, sharpness, visibility per time window).
"""
