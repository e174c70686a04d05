"""The load harness behind ``edgetb bench``: MLPerf-LoadGen-style scenarios against one target.

Modules, one job each:

- :mod:`.scenarios`: seeded arrival schedules, query inputs and run limits (pure functions);
- :mod:`.targets`: an EdgeAgent or a KServe v2 target behind one small interface;
- :mod:`.runner`: issues the queries of a scenario and records every one of them;
- :mod:`.validity`: measurement windows and the stability verdict;
- :mod:`.report`: the ``bench.json`` document and its summary;
- :mod:`.bench`: the whole run, from target address to report.
"""
