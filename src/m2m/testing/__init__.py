"""Testing code that talks to the M2M API against the sandbox: ``m2m.testing.plugin`` is a pytest
plugin (registered as ``m2m`` through the ``pytest11`` entry point) giving the ``m2m_sandbox``
fixture; ``m2m.testing.sandbox`` is the handle it gives, usable without pytest too."""
