"""Hub-facing TAMER files (flat; each imports the others only with ``from .x import``).

Installed as ``tamer_hf.modeling``. These files are copied next to a saved checkpoint so that it loads with
``trust_remote_code=True`` where ``tamer_hf`` is not installed; they depend only on torch, numpy and transformers.
"""
