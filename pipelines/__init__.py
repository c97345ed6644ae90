"""Pipelines: a domain's reader and writer, a model and the engine, connected.

- :mod:`.restore`: :func:`~srrestore.pipelines.restore.restore` (what ``srrestore restore`` runs) picks
  the pipeline by the input's format;
- :mod:`.image`, :mod:`.satellite`, :mod:`.medical`: one package per domain, each with its
  ``restore`` entry point (and fine-tuning for scenes and scans);
- :mod:`.options`: :class:`~srrestore.pipelines.options.RestoreOptions`, shared by every pipeline;
- :mod:`.evaluate`, :mod:`.report`: scoring and drawing restored images.
"""
