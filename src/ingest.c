/* ingest: not written yet */
