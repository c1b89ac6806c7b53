"""vllm-console: a terminal console for one vLLM inference box.

The package is a headless core (profiles, runtimes, metrics, log events, GPU
sampler, chat client, benchmark runner) plus a Textual UI in ``app.py``,
``screens/`` and ``widgets/``. Only those UI modules import Textual.
"""

__version__ = "0.1.0"
