"""Reports: what turns a run's recordings into summaries, files and verdicts (no Locust, no
gevent; used by the load process at the end of a run and by ``amlc report`` alike).

* ``summary`` / ``summarize`` — the versioned :class:`~aml_client.bench.report.summary.BenchSummary`
  and how a result becomes one;
* ``directory`` / ``files`` / ``render`` / ``svgchart`` — report directories, HdrHistogram's
  files, Markdown/HTML and their charts;
* ``compare`` / ``junit`` / ``slo`` / ``capacity`` — comparisons with confidence intervals,
  JUnit XML, objectives, the capacity search's decisions;
* ``results_dir`` / ``merge`` — each load process's results as files and their exact merge;
* ``redact`` — keeps credentials out of every report.
"""
