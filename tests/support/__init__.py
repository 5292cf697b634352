"""What the tests share, so that no test module imports another.

- :mod:`support.data`: the small clip sizes and little file helpers;
- :mod:`support.cli`: the one ``audioprep()`` helper and the helpers that start and watch a real run;
- :mod:`support.compare`: comparing outputs with the serial reference and with each other;
- :mod:`support.reference`: the independent serial reference itself;
- :mod:`support.probes`: connecting to a run's ports as an outsider would.
"""
