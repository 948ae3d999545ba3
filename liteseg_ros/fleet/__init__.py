"""A fleet's recordings on a Ray cluster (or in this process): the engine that maps pieces of recordings onto
workers (:mod:`.engine`), and the jobs of ``liteseg-mine`` and ``liteseg-replay`` on it (:mod:`.jobs`)."""
